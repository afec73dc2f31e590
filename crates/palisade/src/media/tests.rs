use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use media::{DropReason, Kind, Leg, PoolError, Remote};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout};

use super::{MediaError, MediaRelay};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn rtp(seq: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, seq, 0, 0, 0, 160, 1, 2, 3, 4];
    p.resize(12 + 160, 0xd5);
    p
}

/// A phone: RTP and RTCP sockets on loopback.
struct Phone {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Phone {
    async fn new(ip: IpAddr) -> Phone {
        let rtp = UdpSocket::bind((ip, 0)).await.unwrap();
        let rtcp = UdpSocket::bind((ip, 0)).await.unwrap();
        Phone { rtp, rtcp }
    }

    fn rtp_addr(&self) -> SocketAddr {
        self.rtp.local_addr().unwrap()
    }

    fn rtcp_addr(&self) -> SocketAddr {
        self.rtcp.local_addr().unwrap()
    }
}

async fn recv(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some((buf[..n].to_vec(), from))
}

async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn relays_both_ways_and_drops_bleed() {
    let relay = MediaRelay::new(LOOPBACK, LOOPBACK, 43100..=43139).unwrap();
    let session = relay.allocate().unwrap();
    let (a, b) = (session.ports(Leg::A), session.ports(Leg::B));
    assert_ne!(a, b);
    let caller = Phone::new(LOOPBACK).await;
    let callee = Phone::new(LOOPBACK).await;
    session.set_remote(
        Leg::A,
        Remote::exact(caller.rtp_addr()),
        Remote::exact(caller.rtcp_addr()),
    );
    session.set_remote(
        Leg::B,
        Remote::exact(callee.rtp_addr()),
        Remote::exact(callee.rtcp_addr()),
    );

    caller.rtp.send_to(&rtp(1), (LOOPBACK, a)).await.unwrap();
    let (got, from) = recv(&callee.rtp).await.expect("callee hears the caller");
    assert_eq!(got, rtp(1));
    assert_eq!(
        from,
        SocketAddr::new(LOOPBACK, b),
        "from the relay's leg-B port"
    );

    callee.rtp.send_to(&rtp(2), (LOOPBACK, b)).await.unwrap();
    let (got, from) = recv(&caller.rtp).await.expect("caller hears the callee");
    assert_eq!(got, rtp(2));
    assert_eq!(from, SocketAddr::new(LOOPBACK, a));

    let rr = [0x80u8, 201, 0, 1, 1, 2, 3, 4];
    callee.rtcp.send_to(&rr, (LOOPBACK, b + 1)).await.unwrap();
    let (got, from) = recv(&caller.rtcp).await.expect("RTCP relayed");
    assert_eq!(
        (got.as_slice(), from),
        (&rr[..], SocketAddr::new(LOOPBACK, a + 1))
    );

    // An attacker on another loopback address sprays the caller's relay port: nothing reaches the callee.
    let attacker = Phone::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).await;
    attacker.rtp.send_to(&rtp(3), (LOOPBACK, a)).await.unwrap();
    // Junk from the right peer is dropped too.
    caller.rtp.send_to(b"hello", (LOOPBACK, a)).await.unwrap();
    assert_eq!(recv(&callee.rtp).await, None);
    let stats = session.stats();
    assert_eq!(stats.a.drops(DropReason::UnknownSource), 1);
    assert_eq!(stats.a.drops(DropReason::Malformed), 1);
    assert_eq!((stats.a.packets_in, stats.b.packets_out), (1, 1));
    assert_eq!((stats.b.packets_in, stats.a.packets_out), (2, 2));
    assert_eq!(session.remote(Leg::A, Kind::Rtp), Some(caller.rtp_addr()));
    assert!(session.idle_for() < Duration::from_secs(5));

    session.close().await;
    assert_eq!(relay.available(), relay.capacity());
}

#[tokio::test]
async fn nat_latch_and_reinvite() {
    let relay = MediaRelay::new(LOOPBACK, LOOPBACK, 43140..=43179).unwrap();
    let session = relay.allocate().unwrap();
    let caller = Phone::new(LOOPBACK).await;
    let callee = Phone::new(LOOPBACK).await;
    let natted = Phone::new(LOOPBACK).await; // the callee's real source port differs from its SDP
    session.set_remote(
        Leg::A,
        Remote::exact(caller.rtp_addr()),
        Remote::exact(caller.rtcp_addr()),
    );
    session.set_remote(
        Leg::B,
        Remote::exact(callee.rtp_addr()),
        Remote::exact(callee.rtcp_addr()),
    );
    natted
        .rtp
        .send_to(&rtp(1), (LOOPBACK, session.ports(Leg::B)))
        .await
        .unwrap();
    assert!(recv(&caller.rtp).await.is_some());
    caller
        .rtp
        .send_to(&rtp(2), (LOOPBACK, session.ports(Leg::A)))
        .await
        .unwrap();
    assert!(
        recv(&natted.rtp).await.is_some(),
        "media follows the latched port"
    );
    assert_eq!(recv(&callee.rtp).await, None);

    // A re-INVITE moves the callee; its old source is now refused.
    let moved = Phone::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))).await;
    session.set_remote(
        Leg::B,
        Remote::exact(moved.rtp_addr()),
        Remote::exact(moved.rtcp_addr()),
    );
    caller
        .rtp
        .send_to(&rtp(3), (LOOPBACK, session.ports(Leg::A)))
        .await
        .unwrap();
    assert!(recv(&moved.rtp).await.is_some());
    natted
        .rtp
        .send_to(&rtp(4), (LOOPBACK, session.ports(Leg::B)))
        .await
        .unwrap();
    moved
        .rtp
        .send_to(&rtp(5), (LOOPBACK, session.ports(Leg::B)))
        .await
        .unwrap();
    let (got, _) = recv(&caller.rtp).await.unwrap();
    assert_eq!(got, rtp(5));
    assert_eq!(session.stats().b.drops(DropReason::UnknownSource), 1);
    drop(session);
    assert!(eventually(|| relay.available() == relay.capacity()).await);
}

#[tokio::test]
async fn ports_come_back_on_close_and_on_drop() {
    let relay = MediaRelay::new(LOOPBACK, LOOPBACK, 43180..=43187).unwrap(); // 4 pairs: 2 sessions
    assert_eq!(relay.capacity(), 4);
    let one = relay.allocate().unwrap();
    let two = relay.allocate().unwrap();
    assert_eq!(relay.available(), 0);
    assert!(matches!(
        relay.allocate(),
        Err(MediaError::Pool(PoolError::Exhausted { capacity: 4 }))
    ));
    one.close().await;
    assert_eq!(relay.available(), 2);
    // The call vanishes: the handle is dropped without close.
    drop(two);
    assert!(eventually(|| relay.available() == 4).await);
    // And every port can be bound again.
    let again = relay.allocate().unwrap();
    let again2 = relay.allocate().unwrap();
    again.close().await;
    again2.close().await;
}

#[tokio::test]
async fn ports_in_use_elsewhere_are_skipped() {
    let relay = MediaRelay::new(LOOPBACK, LOOPBACK, 43190..=43199).unwrap(); // 5 pairs
    let squatter = std::net::UdpSocket::bind((LOOPBACK, 43191)).unwrap(); // the RTCP port of the first pair
    let session = relay.allocate().unwrap();
    let ports = [session.ports(Leg::A), session.ports(Leg::B)];
    assert!(!ports.contains(&43190), "{ports:?}");
    assert_eq!(
        relay.available(),
        3,
        "the squatted pair went back to the pool"
    );
    session.close().await;
    drop(squatter);
    assert_eq!(relay.available(), 5);
}

#[test]
fn sessions_need_no_runtime_and_their_ports_come_back_on_drop() {
    let relay = MediaRelay::new(LOOPBACK, LOOPBACK, 43200..=43203).unwrap();
    let session = relay.allocate().unwrap();
    assert_eq!(relay.available(), 0);
    drop(session);
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.available() != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(relay.available(), 2);
}

#[tokio::test]
async fn bridges_a_plain_leg_and_an_srtp_leg_over_sockets() {
    use media::LegCrypto;
    use media::srtp::{MasterKey, SrtpContext, Suite};

    let relay = MediaRelay::new(LOOPBACK, LOOPBACK, 43300..=43339).unwrap();
    let session = relay.allocate().unwrap();
    let (a, b) = (session.ports(Leg::A), session.ports(Leg::B));
    let caller = Phone::new(LOOPBACK).await;
    let callee = Phone::new(LOOPBACK).await;
    session.set_remote(
        Leg::A,
        Remote::exact(caller.rtp_addr()),
        Remote::exact(caller.rtcp_addr()),
    );
    session.set_remote(
        Leg::B,
        Remote::exact(callee.rtp_addr()),
        Remote::exact(callee.rtcp_addr()),
    );
    let suite = Suite::AesCm128HmacSha1_80;
    let (phone_key, relay_key) = (MasterKey::generate(suite), MasterKey::generate(suite));
    session.set_crypto(
        Leg::B,
        Some(LegCrypto::new(suite, phone_key.clone(), relay_key.clone()).unwrap()),
    );
    let mut callee_send = SrtpContext::from_master(suite, &phone_key).unwrap();
    let mut callee_recv = SrtpContext::from_master(suite, &relay_key).unwrap();

    // Plain caller -> SRTP callee: encrypted on the wire, readable with the relay's key.
    caller.rtp.send_to(&rtp(1), (LOOPBACK, a)).await.unwrap();
    let (mut got, _) = recv(&callee.rtp).await.expect("callee hears the caller");
    assert_eq!(got.len(), 172 + 10);
    assert_ne!(
        got[12..172],
        rtp(1)[12..],
        "no audio in clear on the secure leg"
    );
    callee_recv.unprotect_rtp(&mut got).unwrap();
    assert_eq!(got, rtp(1));

    // SRTP callee -> plain caller, and the same packet again (a replay) is dropped.
    let mut p = rtp(2);
    callee_send.protect_rtp(&mut p).unwrap();
    callee.rtp.send_to(&p, (LOOPBACK, b)).await.unwrap();
    let (got, _) = recv(&caller.rtp).await.expect("caller hears the callee");
    assert_eq!(got, rtp(2));
    callee.rtp.send_to(&p, (LOOPBACK, b)).await.unwrap();
    // Plain RTP on the secure leg is refused.
    callee.rtp.send_to(&rtp(3), (LOOPBACK, b)).await.unwrap();
    assert_eq!(recv(&caller.rtp).await, None);
    let stats = session.stats();
    assert_eq!(stats.b.drops(DropReason::Replay), 1);
    assert_eq!(stats.b.drops(DropReason::AuthFailed), 1);
    assert_eq!(stats.b.packets_out, 1);

    session.close().await;
    assert_eq!(relay.available(), relay.capacity());
}
