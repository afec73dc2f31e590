//! The PBX core with requests as phones send them: challenges, registrations, refusals, location rules.

use bytes::Bytes;
use sip::digest::{self, Qop};
use sip::{Framing, Limits};

use super::*;

const REALM: &str = "pbx.test";
const PASSWORD: &str = "Secr3tPassw0rd";

fn core() -> PbxCore {
    let mut c = PbxCore::new(CoreConfig::new(REALM), NonceKey::from_bytes([7; 32])).unwrap();
    c.set_extensions(vec![
        ext("100", "aUthId100x", true),
        ext("101", "aUthId101x", false),
    ]);
    c
}

fn ext(number: &str, auth_id: &str, enabled: bool) -> ExtensionAuth {
    ExtensionAuth {
        enabled,
        ..ExtensionAuth::new(
            number,
            auth_id,
            Credentials::from_password(auth_id, REALM, PASSWORD),
        )
    }
}

fn origin() -> Origin {
    Origin {
        transport: sip::Transport::Udp,
        source: "192.0.2.50:5062".parse().unwrap(),
        local: "192.0.2.1:5060".parse().unwrap(),
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn msg(method: &str, user: &str, cseq: u32, extra: &str) -> Message {
    let s = format!(
        "{method} sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{cseq}\r\n\
         From: <sip:{user}@{REALM}>;tag=f1\r\nTo: <sip:{user}@{REALM}>\r\nCall-ID: reg-{user}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:{user}@10.0.0.5:5062>\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(s), Framing::Stream, &Limits::default()).unwrap()
}

fn nonce_of(reply: &Reply) -> String {
    let v = &reply
        .headers
        .iter()
        .find(|(h, _)| {
            matches!(
                h,
                HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate
            )
        })
        .unwrap()
        .1;
    let start = v.find("nonce=\"").unwrap() + 7;
    v[start..start + v[start..].find('"').unwrap()].to_string()
}

fn authorization(auth_id: &str, password: &str, nonce: &str, method: &str, nc: u32) -> String {
    let uri = format!("sip:{REALM}");
    let ha1 = digest::ha1(Algorithm::Md5, auth_id, REALM, password);
    let nc = format!("{nc:08x}");
    let resp = digest::response(
        Algorithm::Md5,
        &ha1,
        nonce,
        &nc,
        "c0ffee",
        Some(Qop::Auth),
        method,
        &uri,
    );
    format!(
        "Digest username=\"{auth_id}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", \
         algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\""
    )
}

/// Extension 100 registers from `from`: an unauthenticated REGISTER (CSeq `cseq`), then one
/// answering its challenge (CSeq `cseq + 1`); returns the reply to the second.
fn register_100(c: &mut PbxCore, from: Origin, cseq: u32) -> Reply {
    let r = c.handle_request(&msg("REGISTER", "100", cseq, ""), from, now());
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
    let m = msg(
        "REGISTER",
        "100",
        cseq + 1,
        &format!("Authorization: {auth}\r\n"),
    );
    c.handle_request(&m, from, now())
}

fn header_names(r: &Reply) -> Vec<HeaderName> {
    r.headers.iter().map(|(h, _)| *h).collect()
}

#[test]
fn register_challenge_then_success_with_contact() {
    let mut c = core();
    let r = c.handle_request(&msg("REGISTER", "100", 1, ""), origin(), now());
    assert_eq!(r.status, 401);
    assert_eq!(header_names(&r), vec![HeaderName::WwwAuthenticate]);
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
    let r = c.handle_request(
        &msg("REGISTER", "100", 2, &format!("Authorization: {auth}\r\n")),
        origin(),
        now(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.headers,
        vec![(
            HeaderName::Contact,
            "<sip:100@10.0.0.5:5062>;expires=3600".to_string()
        )]
    );
    assert_eq!(c.registrar().lookup("100", unix_secs(now())).len(), 1);
    assert!(matches!(&c.take_changes()[..], [Change::Upsert(_)]));
    let kinds: Vec<_> = c
        .take_events()
        .into_iter()
        .map(|e| (e.kind, e.reason))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (event_kind::CHALLENGE.into(), "no_credentials".into()),
            (event_kind::SUCCESS.into(), "ok".into())
        ]
    );
}

#[test]
fn a_register_whose_to_is_not_a_sip_uri_gets_400_before_any_challenge() {
    let mut c = core();
    let unksm2 = "REGISTER sip:example.com SIP/2.0\r\nTo: isbn:2983792873\r\n\
        From: <http://www.example.com>;tag=3234233\r\nCall-ID: unksm2.daksdj@hyphenated-host.example.com\r\n\
        CSeq: 234902 REGISTER\r\nMax-Forwards: 70\r\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\r\n\
        Contact: <name:John_Smith>\r\nl: 0\r\n\r\n";
    let m = Message::parse(Bytes::from(unksm2), Framing::Datagram, &Limits::default()).unwrap();
    let r = c.handle_request(&m, origin(), now());
    assert_eq!(r.status, 400);
    assert!(r.headers.is_empty(), "no challenge: {r:?}");
    assert_eq!(r.auth, AuthSignal::None);
    assert!(c.take_events().is_empty());
    // A sips: To is fine (challenged as usual).
    let m = msg("REGISTER", "100", 1, "");
    let text = String::from_utf8(m.bytes().to_vec()).unwrap();
    let sips = text.replacen("To: <sip:", "To: <sips:", 1);
    let m = Message::parse(Bytes::from(sips), Framing::Stream, &Limits::default()).unwrap();
    assert_eq!(c.handle_request(&m, origin(), now()).status, 401);
}

#[test]
fn unknown_user_wrong_password_and_disabled_get_identical_answers() {
    let mut c = core();
    let mut answers = Vec::new();
    for (to, auth_id, password) in [
        ("100", "aUthId100x", "WrongPassword1"),
        ("555", "nobodyHere", PASSWORD),
        ("101", "aUthId101x", PASSWORD),
    ] {
        let r = c.handle_request(&msg("REGISTER", to, 1, ""), origin(), now());
        let auth = authorization(auth_id, password, &nonce_of(&r), "REGISTER", 1);
        let r = c.handle_request(
            &msg("REGISTER", to, 2, &format!("Authorization: {auth}\r\n")),
            origin(),
            now(),
        );
        answers.push((
            r.status,
            r.reason.clone(),
            header_names(&r),
            nonce_of(&r).len(),
        ));
    }
    assert_eq!(answers[0].0, 401);
    let r = c.handle_request(&msg("REGISTER", "100", 9, ""), origin(), now());
    assert_eq!(r.auth, AuthSignal::Challenged);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let reasons: Vec<_> = c
        .take_events()
        .into_iter()
        .filter(|e| e.kind == event_kind::FAILURE)
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, vec!["wrong_password", "unknown_user", "disabled"]);
    assert!(c.registrar().is_empty());
}

#[test]
fn replayed_credentials_are_refused() {
    let mut c = core();
    let r = c.handle_request(&msg("REGISTER", "100", 1, ""), origin(), now());
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
    let m = msg("REGISTER", "100", 2, &format!("Authorization: {auth}\r\n"));
    assert_eq!(c.handle_request(&m, origin(), now()).status, 200);
    // The same bytes again are a retransmission (a REGISTER keeps no server transaction to absorb it).
    assert_eq!(c.handle_request(&m, origin(), now()).status, 200);
    assert!(!c.take_events().iter().any(|e| e.reason == "replay"));
    // The same credentials on another request are a replay.
    let other = msg("REGISTER", "100", 3, &format!("Authorization: {auth}\r\n"));
    assert_eq!(c.handle_request(&other, origin(), now()).status, 401);
    assert!(c.take_events().iter().any(|e| e.reason == "replay"));
}

#[test]
fn credentials_of_one_extension_cannot_register_another() {
    let mut c = core();
    c.set_extensions(vec![
        ext("100", "aUthId100x", true),
        ext("102", "aUthId102x", true),
    ]);
    let r = c.handle_request(&msg("REGISTER", "102", 1, ""), origin(), now());
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
    let r = c.handle_request(
        &msg("REGISTER", "102", 2, &format!("Authorization: {auth}\r\n")),
        origin(),
        now(),
    );
    assert_eq!(r.status, 401, "refused like a wrong password");
    assert!(c.registrar().is_empty());
}

#[test]
fn other_methods_are_challenged_with_407_and_in_dialog_requests_get_481() {
    let mut c = core();
    let r = c.handle_request(&msg("MESSAGE", "100", 1, ""), origin(), now());
    assert_eq!(r.status, 407);
    assert_eq!(header_names(&r), vec![HeaderName::ProxyAuthenticate]);
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "MESSAGE", 1);
    let r = c.handle_request(
        &msg(
            "MESSAGE",
            "100",
            2,
            &format!("Proxy-Authorization: {auth}\r\n"),
        ),
        origin(),
        now(),
    );
    assert_eq!(r.status, 405);
    let bye = Message::parse(
        Bytes::from(
            "BYE sip:100@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKb\r\nFrom: <sip:x@y>;tag=1\r\n\
             To: <sip:100@pbx.test>;tag=2\r\nCall-ID: d\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        ),
        Framing::Stream,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(c.handle_request(&bye, origin(), now()).status, 481);
}

#[test]
fn challenges_follow_the_algorithm_setting_and_disabling_drops_bindings() {
    let mut c = core();
    c.set_algorithms(vec![Algorithm::Sha256, Algorithm::Md5]);
    let r = c.handle_request(&msg("REGISTER", "100", 1, ""), origin(), now());
    let algs: Vec<_> = r
        .headers
        .iter()
        .map(|(_, v)| v.contains("algorithm=SHA-256"))
        .collect();
    assert_eq!(algs, vec![true, false]);
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
    let r = c.handle_request(
        &msg("REGISTER", "100", 2, &format!("Authorization: {auth}\r\n")),
        origin(),
        now(),
    );
    assert_eq!(r.status, 200);
    c.take_changes();
    c.set_extensions(vec![ext("100", "aUthId100x", false)]);
    assert!(c.registrar().is_empty());
    assert!(matches!(&c.take_changes()[..], [Change::Remove { .. }]));
}

#[test]
fn an_extension_that_requires_tls_is_refused_over_udp_and_accepted_over_tls() {
    let mut c = core();
    let mut e = ext("100", "aUthId100x", true);
    e.require_tls = true;
    c.set_extensions(vec![e]);
    let r = register_100(&mut c, origin(), 1);
    assert_eq!(r.status, 403);
    assert!(
        c.take_events()
            .iter()
            .any(|e| e.kind == event_kind::POLICY && e.reason == "tls_required")
    );
    assert!(c.registrar().is_empty());
    let tls = Origin {
        transport: sip::Transport::Tls,
        ..origin()
    };
    let r = register_100(&mut c, tls, 3);
    assert_eq!(r.status, 200);
}

#[test]
fn lan_only_extensions_register_only_from_local_networks() {
    let mut c = core();
    let mut e = ext("100", "aUthId100x", true);
    e.lan_only = true;
    c.set_extensions(vec![e]);
    // origin() is 192.0.2.50: not a local network by default
    let r = register_100(&mut c, origin(), 1);
    assert_eq!(r.status, 403);
    assert!(
        c.take_events()
            .iter()
            .any(|e| e.kind == event_kind::POLICY && e.reason == "lan_only")
    );
    let lan = Origin {
        source: "192.168.1.20:5060".parse().unwrap(),
        ..origin()
    };
    let r = register_100(&mut c, lan, 3);
    assert_eq!(r.status, 200);
}

/// `method` from extension 100 at `from`: unauthenticated, then answering the 407; the second reply
/// (`authorize_call` for INVITE, as the call layer asks, `handle_request` otherwise).
fn request_as_100(c: &mut PbxCore, method: &str, from: Origin, cseq: u32) -> Reply {
    let send = |c: &mut PbxCore, m: &Message| {
        if method == "INVITE" {
            c.authorize_call(m, from, now())
                .err()
                .unwrap_or(Reply::status(200))
        } else {
            c.handle_request(m, from, now())
        }
    };
    let r = send(c, &msg(method, "100", cseq, ""));
    assert_eq!(r.status, 407, "{method}: {r:?}");
    let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), method, 1);
    let m = msg(
        method,
        "100",
        cseq + 1,
        &format!("Proxy-Authorization: {auth}\r\n"),
    );
    send(c, &m)
}

#[test]
fn location_rules_hold_for_every_authenticated_request() {
    let mut c = core();
    let mut e = ext("100", "aUthId100x", true);
    e.lan_only = true;
    c.set_extensions(vec![e]);
    let lan = Origin {
        source: "192.168.1.20:5060".parse().unwrap(),
        ..origin()
    };
    for (i, method) in ["INVITE", "SUBSCRIBE", "MESSAGE", "REFER"]
        .into_iter()
        .enumerate()
    {
        let cseq = 10 * i as u32;
        let r = request_as_100(&mut c, method, origin(), cseq);
        assert_eq!(r.status, 403, "{method} from outside: {r:?}");
        let events = c.take_events();
        let refusal = events
            .iter()
            .find(|e| e.kind == event_kind::POLICY)
            .unwrap_or_else(|| panic!("no policy event for {method}: {events:?}"));
        assert_eq!(refusal.reason, "lan_only");
        assert!(refusal.detail.as_deref().unwrap_or("").contains(method));
        let r = request_as_100(&mut c, method, lan, cseq + 2);
        assert_ne!(r.status, 403, "{method} from the LAN: {r:?}");
        assert_ne!(r.status, 407, "{method} from the LAN: {r:?}");
    }
    // TLS required: an INVITE over UDP is refused, over TLS it passes.
    let mut e = ext("100", "aUthId100x", true);
    e.require_tls = true;
    c.set_extensions(vec![e]);
    assert_eq!(request_as_100(&mut c, "INVITE", lan, 100).status, 403);
    assert!(c.take_events().iter().any(|e| e.reason == "tls_required"));
    let tls = Origin {
        transport: sip::Transport::Tls,
        ..lan
    };
    assert_eq!(request_as_100(&mut c, "INVITE", tls, 102).status, 200);
}

#[test]
fn location_rules_hold_inside_dialogs_too() {
    let mut c = core();
    let mut e = ext("100", "aUthId100x", true);
    e.lan_only = true;
    c.set_extensions(vec![e]);
    let r = c.in_dialog_location("100", "INVITE", origin(), now());
    assert_eq!(r.map(|r| r.status), Some(403));
    let events = c.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "lan_only");
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("inside a dialog")
    );
    let lan = Origin {
        source: "192.168.1.20:5060".parse().unwrap(),
        ..origin()
    };
    assert_eq!(c.in_dialog_location("100", "BYE", lan, now()), None);
    assert_eq!(c.in_dialog_location("555", "BYE", origin(), now()), None);
}

#[test]
fn remote_websocket_clients_can_be_blocked_per_extension() {
    let mut c = core();
    let mut e = ext("100", "aUthId100x", true);
    e.block_remote_ws = true;
    c.set_extensions(vec![e]);
    let ws = Origin {
        transport: sip::Transport::Wss,
        ..origin()
    };
    let r = register_100(&mut c, ws, 1);
    assert_eq!(r.status, 403);
    assert!(
        c.take_events()
            .iter()
            .any(|e| e.reason == "remote_ws_blocked")
    );
    // the same phone over plain UDP is not affected
    let r = register_100(&mut c, origin(), 3);
    assert_eq!(r.status, 200);
}

/// The authenticator's one decision: a wrong password and credentials of another extension are the same
/// challenge (only the event differs); right credentials from outside the LAN for a LAN-only extension are a
/// refusal; inside a dialog only the location rules apply.
#[test]
fn the_authenticator_decides_once_with_the_event() {
    let mut c = core();
    let first = c.handle_request(&msg("INVITE", "100", 1, ""), origin(), now());
    let nonce = nonce_of(&first);
    let decide = |c: &mut PbxCore, claimed: &str, password: &str, nc: u32| {
        let auth = authorization("aUthId100x", password, &nonce, "INVITE", nc);
        let m = msg(
            "INVITE",
            claimed,
            2,
            &format!("Proxy-Authorization: {auth}\r\n"),
        );
        let directory = Directory {
            by_auth_id: &c.by_auth_id,
            by_number: &c.by_number,
            algorithms: &c.config.algorithms,
            restrictions: &c.restrictions,
        };
        c.authenticator.decide(
            &m,
            HeaderName::ProxyAuthorization,
            claimed,
            origin(),
            &directory,
            now(),
        )
    };
    let wrong = decide(&mut c, "100", "not-the-password", 1);
    let AuthDecision::Challenge {
        challenge, event, ..
    } = wrong
    else {
        panic!("{wrong:?}")
    };
    assert!(challenge.proxy);
    assert_eq!(
        (event.kind, event.reason),
        (
            SecurityEventKind::AuthFailure,
            AuthReason::WrongPassword.into()
        )
    );
    let other = decide(&mut c, "101", PASSWORD, 2);
    let AuthDecision::Challenge { event, .. } = other else {
        panic!("{other:?}")
    };
    assert_eq!(event.reason, AuthReason::AorMismatch.into());
    let right = decide(&mut c, "100", PASSWORD, 3);
    assert!(
        matches!(&right, AuthDecision::Accept { extension, event: Some(e) }
            if extension.number == "100" && e.kind == SecurityEventKind::AuthSuccess),
        "{right:?}"
    );

    let mut lan_only = ext("102", "aUthId102x", true);
    lan_only.lan_only = true;
    let lan_only = Arc::new(lan_only);
    let outside = Authenticator::decide_in_dialog(lan_only.clone(), "BYE", origin(), false);
    assert!(
        matches!(&outside, AuthDecision::Refuse { refusal: LocationRefusal::LanOnly, event }
            if event.kind == SecurityEventKind::PolicyRefusal
                && event.reason.as_str() == "lan_only"),
        "{outside:?}"
    );
    let inside = Authenticator::decide_in_dialog(lan_only, "BYE", origin(), true);
    assert!(matches!(inside, AuthDecision::Accept { event: None, .. }));
}
