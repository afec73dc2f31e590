//! Calls out through trunks: SRTP by the trunk's mode, its digest challenge, failover.

use super::*;

pub(super) fn trunk_target(addr: &str) -> Target {
    Target {
        request_uri: format!("sip:4930123456@{addr}"),
        to_uri: format!("<sip:4930123456@{addr}>"),
        from_user: "4930999".into(),
        source: addr.parse().unwrap(),
        transport: sip::Transport::Udp,
        credentials: Some(("acct".into(), "s3cret".into())),
        is_trunk: true,
        srtp: None,
    }
}

/// The INVITE a trunk call sends to a target with `transport` and the trunk's `srtp` mode.
pub(super) fn trunk_invite_body(transport: &str, srtp: SrtpMode) -> String {
    let mut w = World::new();
    let wall = w.wall;
    let mut target = trunk_target("198.51.100.10:5061");
    target.transport = sip::Transport::parse(transport).unwrap();
    target.srtp = Some(srtp);
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![target],
        wall,
    );
    let out = w.outputs();
    match sent_requests(&out).into_iter().next() {
        Some((_, inv, _)) => std::str::from_utf8(inv.body()).unwrap().to_string(),
        None => String::new(),
    }
}

#[test]
pub(super) fn a_trunk_gets_srtp_keys_only_when_its_mode_asks_and_only_over_tls() {
    let tls_enabled = trunk_invite_body("TLS", SrtpMode::Enabled);
    assert!(tls_enabled.contains("RTP/SAVP"), "{tls_enabled}");
    assert!(tls_enabled.contains("a=crypto:"), "{tls_enabled}");
    let tls_disabled = trunk_invite_body("TLS", SrtpMode::Disabled);
    assert!(
        !tls_disabled.is_empty() && !tls_disabled.contains("a=crypto"),
        "{tls_disabled}"
    );
    let udp_enabled = trunk_invite_body("UDP", SrtpMode::Enabled);
    assert!(
        !udp_enabled.is_empty() && !udp_enabled.contains("a=crypto"),
        "keys never over UDP: {udp_enabled}"
    );
    assert_eq!(
        trunk_invite_body("UDP", SrtpMode::Enforced),
        "",
        "an enforced trunk is never used without TLS"
    );
}

#[test]
pub(super) fn trunk_call_answers_the_trunks_challenge_once_and_fails_over_on_server_errors() {
    let mut w = World::new();
    let wall = w.wall;
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![
            trunk_target("198.51.100.10:5060"),
            trunk_target("198.51.100.20:5060"),
        ],
        wall,
    );
    let out = w.outputs();
    let (leg, inv, peer) = sent_requests(&out).remove(0);
    assert_eq!(peer.addr, "198.51.100.10:5060".parse().unwrap());
    assert_eq!(
        inv.from().unwrap().uri.user,
        Some("4930999"),
        "the trunk's caller ID"
    );
    // the trunk challenges: answered with the trunk's credentials, same Call-ID, next CSeq
    let challenge = parse_bytes(
        &sip::ResponseBuilder::new(&inv, 407)
            .to_tag("t1")
            .header(
                sip::HeaderName::ProxyAuthenticate,
                "Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"",
            )
            .build(),
    );
    let out = w.respond(leg, &challenge);
    let (leg2, inv2, _) = sent_requests(&out).remove(0);
    assert_eq!(inv2.call_id(), inv.call_id());
    assert_eq!(inv2.cseq().unwrap().seq, 2);
    let auth = inv2
        .header_str(sip::HeaderName::ProxyAuthorization)
        .unwrap();
    assert!(
        auth.contains("username=\"acct\"") && auth.contains("realm=\"carrier\""),
        "{auth}"
    );
    // refused again: not retried a second time; a server error fails over to the next trunk
    let again = parse_bytes(
        &sip::ResponseBuilder::new(&inv2, 407)
            .to_tag("t1")
            .header(
                sip::HeaderName::ProxyAuthenticate,
                "Digest realm=\"carrier\", nonce=\"n2\"",
            )
            .build(),
    );
    let out = w.respond(leg2, &again);
    let next = sent_requests(&out);
    assert_eq!(
        next.len(),
        1,
        "credentials are tried once, then the next trunk"
    );
    assert_eq!(next[0].2.addr, "198.51.100.20:5060".parse().unwrap());
    // the last trunk refuses too: the caller gets 503, never the trunk's challenge
    let (leg3, inv3, _) = next.into_iter().next().unwrap();
    let out = w.respond(
        leg3,
        &parse_bytes(&sip::ResponseBuilder::new(&inv3, 407).to_tag("t3").build()),
    );
    assert_eq!(
        responses(&out)[0].status,
        503,
        "a trunk's challenge never reaches the caller"
    );

    let mut w = World::new();
    let wall = w.wall;
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![
            trunk_target("198.51.100.10:5060"),
            trunk_target("198.51.100.20:5060"),
        ],
        wall,
    );
    let (leg, inv, _) = sent_requests(&w.outputs()).remove(0);
    let out = w.respond(leg, &response_to(&inv, 503, "t", None));
    let (_, _, peer2) = sent_requests(&out).remove(0);
    assert_eq!(
        peer2.addr,
        "198.51.100.20:5060".parse().unwrap(),
        "failover to the second trunk"
    );
    assert!(
        responses(&out).iter().all(|r| r.status < 300),
        "the caller is not answered yet"
    );
}

#[test]
pub(super) fn a_silent_trunk_is_given_up_after_a_few_seconds_for_the_next() {
    let mut w = World::new();
    let (now, wall) = (w.now, w.wall);
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![
            trunk_target("198.51.100.10:5060"),
            trunk_target("198.51.100.20:5060"),
        ],
        wall,
    );
    w.outputs();
    let deadline = w.calls.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(4));
    w.calls.handle_timeout(&mut w.media, deadline, wall);
    let out = w.outputs();
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    let next = sent_requests(&out);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].2.addr, "198.51.100.20:5060".parse().unwrap());
}
