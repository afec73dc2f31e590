use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const B3_KEY: &str = "E1F97A0D3E018BE0D64FA32C06DE4139";
const B3_SALT: &str = "0EC675AD498AFEEBB6960B3AABE6";

fn b3_master() -> MasterKey {
    MasterKey::new(&unhex(B3_KEY), &unhex(B3_SALT)).expect("key")
}

/// RFC 3711 Appendix B.2: AES-CM keystream for session key 2B7E..., IV F0F1...FD0000.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let aes = Aes128Enc::new(unhex("2B7E151628AED2A6ABF7158809CF4F3C")[..].into());
    let iv: [u8; 16] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        .try_into()
        .expect("16");
    let mut out = [0u8; 48];
    aes_cm(&aes, &iv, &mut out);
    assert_eq!(
        out.to_vec(),
        unhex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
    // The IV as SRTP builds it: salt F0F1...FD, SSRC 0, index 0.
    let salt: [u8; 14] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
        .try_into()
        .expect("14");
    assert_eq!(cm_iv(&salt, 0, 0), iv);
}

/// RFC 3711 Appendix B.3: key derivation (labels 0, 1, 2; KDR 0).
#[test]
fn rfc3711_b3_key_derivation() {
    let master = b3_master();
    let mut key = [0u8; 16];
    let mut auth = [0u8; 20];
    let mut salt = [0u8; 14];
    derive(&master, 0, &mut key);
    derive(&master, 1, &mut auth);
    derive(&master, 2, &mut salt);
    assert_eq!(key.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(
        auth.to_vec(),
        unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
    assert_eq!(salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
}

/// libsrtp's reference packets (test/srtp_driver.c) for AES_CM_128_HMAC_SHA1_80 with the B.3 master key: the
/// whole SRTP and SRTCP framing, not just the primitives.
#[test]
fn libsrtp_reference_packets_cm_80() {
    let plain = unhex("800f1234decafbadcafebabe abababababababababababababababab");
    let wire =
        unhex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let mut tx = SrtpContext::from_master(Suite::AesCm128HmacSha1_80, &b3_master()).unwrap();
    let mut p = plain.clone();
    tx.protect_rtp(&mut p).unwrap();
    assert_eq!(p, wire);
    let mut rx = SrtpContext::from_master(Suite::AesCm128HmacSha1_80, &b3_master()).unwrap();
    rx.unprotect_rtp(&mut p).unwrap();
    assert_eq!(p, plain);

    let plain = unhex("81c8000bcafebabe abababababababababababababababab");
    let wire =
        unhex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
    tx.set_rtcp_tx_index(0xcafebabe, 1);
    let mut p = plain.clone();
    tx.protect_rtcp(&mut p).unwrap();
    assert_eq!(p, wire);
    rx.unprotect_rtcp(&mut p).unwrap();
    assert_eq!(p, plain);
}

const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_SALT: &str = "517569642070726f2071756f";

fn gcm_vector_context() -> SrtpContext {
    SrtpContext::from_gcm_session(
        unhex(GCM_KEY).try_into().unwrap(),
        unhex(GCM_SALT).try_into().unwrap(),
    )
}

/// RFC 7714 §16.1 (AEAD_AES_128_GCM, RTP, ROC 0, sequence 0xf17b).
#[test]
fn rfc7714_16_gcm_rtp() {
    let plain = unhex(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120 696e2070 \
         61727465 73207472 6573",
    );
    let wire = unhex(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a \
         51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
    );
    let mut p = plain.clone();
    gcm_vector_context().protect_rtp(&mut p).unwrap();
    assert_eq!(p, wire);
    gcm_vector_context().unprotect_rtp(&mut p).unwrap();
    assert_eq!(p, plain);
}

/// RFC 7714 §17 (AEAD_AES_128_GCM, SRTCP index 0x5d4), encrypted and authenticated-only (E = 0).
#[test]
fn rfc7714_17_gcm_rtcp() {
    let plain = unhex(
        "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61 deadbeef deadbeef \
         deadbeef deadbeef deadbeef",
    );
    let wire = unhex(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1 730d6fda \
         4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4",
    );
    let mut tx = gcm_vector_context();
    tx.set_rtcp_tx_index(0x4d617273, 0x5d4);
    let mut p = plain.clone();
    tx.protect_rtcp(&mut p).unwrap();
    assert_eq!(p, wire);
    let mut rx = gcm_vector_context();
    rx.unprotect_rtcp(&mut p).unwrap();
    assert_eq!(p, plain);

    let authenticated = unhex(
        "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61 deadbeef deadbeef \
         deadbeef deadbeef deadbeef 841dd968 3dd78ec9 2ae58790 125f62b3 000005d4",
    );
    let mut p = authenticated.clone();
    gcm_vector_context().unprotect_rtcp(&mut p).unwrap();
    assert_eq!(p, plain);
    let mut p = authenticated;
    p[10] ^= 1;
    assert_eq!(
        gcm_vector_context().unprotect_rtcp(&mut p),
        Err(SrtpError::AuthFailed)
    );
}

fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload_len + MAX_TRAILER);
    p.extend_from_slice(&[0x80, 0]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..24).map(|i| i as u8));
    p
}

fn pair(suite: Suite) -> (SrtpContext, SrtpContext) {
    let key = MasterKey::generate(suite);
    (
        SrtpContext::from_master(suite, &key).unwrap(),
        SrtpContext::from_master(suite, &key).unwrap(),
    )
}

#[test]
fn round_trips_every_suite() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        for seq in [1u16, 2, 3, 500] {
            let plain = rtp(seq, 0x1234, 160);
            let mut p = Vec::with_capacity(plain.len() + MAX_TRAILER);
            p.extend_from_slice(&plain);
            let cap = p.capacity();
            tx.protect_rtp(&mut p).unwrap();
            assert_eq!(p.len(), plain.len() + suite.rtp_tag_len(), "{suite}");
            assert_ne!(p[12..172], plain[12..], "{suite}: payload encrypted");
            assert_eq!(p[..12], plain[..12], "{suite}: header in clear");
            rx.unprotect_rtp(&mut p).unwrap();
            assert_eq!(p, plain, "{suite}");
            assert_eq!(p.capacity(), cap, "{suite}: no reallocation");
        }
        let plain = rr(0x1234);
        let mut p = plain.clone();
        tx.protect_rtcp(&mut p).unwrap();
        assert_eq!(p.len(), plain.len() + 4 + suite.rtcp_tag_len(), "{suite}");
        rx.unprotect_rtcp(&mut p).unwrap();
        assert_eq!(p, plain, "{suite}");
    }
}

#[test]
fn header_with_csrcs_and_extension_stays_clear_and_authenticated() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        // CC = 1, X = 1: one CSRC, a one-word extension.
        let mut plain = vec![
            0x91, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 8, 0xbe, 0xde, 0, 1, 1, 2, 3, 4,
        ];
        plain.extend_from_slice(&[0x55; 40]);
        let mut p = plain.clone();
        tx.protect_rtp(&mut p).unwrap();
        assert_eq!(p[..24], plain[..24]);
        let mut forged = p.clone();
        forged[21] ^= 0x40; // the extension is authenticated
        assert_eq!(rx.unprotect_rtp(&mut forged), Err(SrtpError::AuthFailed));
        rx.unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, plain);
    }
}

#[test]
fn tampering_anywhere_fails_authentication() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let mut p = rtp(7, 42, 160);
        tx.protect_rtp(&mut p).unwrap();
        for i in [1, 3, 8, 20, p.len() - 1] {
            let mut t = p.clone();
            t[i] ^= 0x01;
            assert_eq!(
                rx.unprotect_rtp(&mut t),
                Err(SrtpError::AuthFailed),
                "{suite} byte {i}"
            );
        }
        // Nothing moved: the genuine packet still goes through.
        rx.unprotect_rtp(&mut p).unwrap();

        let mut c = rr(42);
        tx.protect_rtcp(&mut c).unwrap();
        for i in [1, 5, 10, c.len() - 8, c.len() - 1] {
            let mut t = c.clone();
            t[i] ^= 0x80;
            assert!(rx.unprotect_rtcp(&mut t).is_err(), "{suite} RTCP byte {i}");
        }
        rx.unprotect_rtcp(&mut c).unwrap();
    }
}

#[test]
fn wrong_key_and_plain_rtp_fail() {
    for suite in Suite::ALL {
        let (mut tx, _) = pair(suite);
        let (_, mut other) = pair(suite);
        let mut p = rtp(1, 1, 160);
        tx.protect_rtp(&mut p).unwrap();
        assert_eq!(other.unprotect_rtp(&mut p), Err(SrtpError::AuthFailed));
        let mut plain = rtp(2, 1, 160);
        assert_eq!(other.unprotect_rtp(&mut plain), Err(SrtpError::AuthFailed));
    }
}

#[test]
fn replays_are_refused_and_reordering_within_the_window_is_not() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let wire: Vec<Vec<u8>> = (100..200u16)
            .map(|seq| {
                let mut p = rtp(seq, 9, 20);
                tx.protect_rtp(&mut p).unwrap();
                p
            })
            .collect();
        // Out of order: 110 first, then 100..=109 (all within 64 of 110).
        rx.unprotect_rtp(&mut wire[10].clone()).unwrap();
        for p in &wire[..10] {
            rx.unprotect_rtp(&mut p.clone()).unwrap();
        }
        for p in &wire[..11] {
            assert_eq!(
                rx.unprotect_rtp(&mut p.clone()),
                Err(SrtpError::Replay),
                "{suite}"
            );
        }
        // Jump to 199: 135 is 64 behind and too old, though never received.
        rx.unprotect_rtp(&mut wire[99].clone()).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&mut wire[35].clone()),
            Err(SrtpError::Replay)
        );
        rx.unprotect_rtp(&mut wire[36].clone()).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&mut wire[99].clone()),
            Err(SrtpError::Replay)
        );

        // SRTCP has its own window.
        let mut c1 = rr(9);
        tx.protect_rtcp(&mut c1).unwrap();
        let mut c2 = rr(9);
        tx.protect_rtcp(&mut c2).unwrap();
        rx.unprotect_rtcp(&mut c2.clone()).unwrap();
        rx.unprotect_rtcp(&mut c1.clone()).unwrap();
        assert_eq!(rx.unprotect_rtcp(&mut c1), Err(SrtpError::Replay));
        assert_eq!(rx.unprotect_rtcp(&mut c2), Err(SrtpError::Replay));
    }
}

#[test]
fn rollover_counter_follows_the_sequence_wrap() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        let wire: Vec<Vec<u8>> = seqs
            .iter()
            .map(|&seq| {
                let mut p = rtp(seq, 5, 40);
                tx.protect_rtp(&mut p).unwrap();
                p
            })
            .collect();
        // Reordered across the wrap: 0 before 65535.
        for i in [0, 1, 2, 3, 4, 6, 5, 7, 8, 9, 10, 11] {
            let mut p = wire[i].clone();
            rx.unprotect_rtp(&mut p)
                .unwrap_or_else(|e| panic!("{suite} seq {}: {e}", seqs[i]));
            assert_eq!(p, rtp(seqs[i], 5, 40));
        }
        assert_eq!(rx.rx_highest(5), Some((1 << 16) | 5), "{suite}: ROC 1");
        // A packet from ROC 0 replayed after the wrap is still refused.
        assert_eq!(
            rx.unprotect_rtp(&mut wire[5].clone()),
            Err(SrtpError::Replay)
        );
        // The sender's ROC is in the tag/IV: once the sender is well into ROC 1, the same sequence number is a
        // different packet.
        let mut p1 = rtp(20000, 5, 40);
        tx.protect_rtp(&mut p1).unwrap();
        let mut p = rtp(40000, 5, 40);
        tx.protect_rtp(&mut p).unwrap();
        let mut again = rtp(65530, 5, 40);
        tx.protect_rtp(&mut again).unwrap();
        assert_ne!(again, wire[0]);
        rx.unprotect_rtp(&mut p1).unwrap();
        rx.unprotect_rtp(&mut p).unwrap();
        rx.unprotect_rtp(&mut again).unwrap();
        assert_eq!(rx.rx_highest(5), Some((1 << 16) | 65530));
    }
}

#[test]
fn index_estimation_rfc3711_appendix_a() {
    assert_eq!(estimate_index(None, 7), Some(7));
    assert_eq!(estimate_index(Some(100), 50), Some(50));
    assert_eq!(estimate_index(Some(100), 40000), None, "would be ROC -1");
    assert_eq!(estimate_index(Some(65535), 2), Some(65536 + 2));
    assert_eq!(estimate_index(Some(65536 + 3), 65534), Some(65534));
    assert_eq!(
        estimate_index(Some((7 << 16) | 40000), 10000),
        Some((7 << 16) | 10000)
    );
    assert_eq!(
        estimate_index(Some((7 << 16) | 40000), 7000),
        Some((8 << 16) | 7000)
    );
    assert_eq!(
        estimate_index(Some((7 << 16) | 10000), 50000),
        Some((6 << 16) | 50000)
    );
}

#[test]
fn many_ssrcs_share_a_context() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    for round in 0..3u16 {
        for ssrc in 0..(MAX_STREAMS as u32 + 3) {
            let mut p = rtp(round, ssrc, 20);
            tx.protect_rtp(&mut p).unwrap();
            rx.unprotect_rtp(&mut p).unwrap();
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        for len in 0..80 {
            for _ in 0..20 {
                let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if len > 0 && next() % 2 == 0 {
                    p[0] = 0x80 | (p[0] & 0x3f);
                }
                let _ = rx.unprotect_rtp(&mut p.clone());
                let _ = rx.unprotect_rtcp(&mut p.clone());
                let _ = tx.protect_rtp(&mut p.clone());
                let _ = tx.protect_rtcp(&mut p);
            }
        }
    }
}

#[test]
fn key_lengths_are_checked() {
    assert!(SrtpContext::new(Suite::AesCm128HmacSha1_80, &[0; 16], &[0; 14]).is_ok());
    assert!(SrtpContext::new(Suite::AeadAes128Gcm, &[0; 16], &[0; 12]).is_ok());
    for (suite, key, salt) in [
        (Suite::AesCm128HmacSha1_80, 16, 12),
        (Suite::AesCm128HmacSha1_32, 15, 14),
        (Suite::AeadAes128Gcm, 16, 14),
        (Suite::AeadAes128Gcm, 32, 12),
    ] {
        assert!(matches!(
            SrtpContext::new(suite, &vec![0; key], &vec![0; salt]),
            Err(SrtpError::BadKeyLength { .. })
        ));
    }
    let k = MasterKey::generate(Suite::AeadAes128Gcm);
    assert_eq!(k.concatenated().len(), 28);
    assert!(k.fits(Suite::AeadAes128Gcm) && !k.fits(Suite::AesCm128HmacSha1_80));
    assert_ne!(k, MasterKey::generate(Suite::AeadAes128Gcm));
    assert!(!format!("{k:?}").contains(&format!("{:?}", &k.key()[..4])));
}
