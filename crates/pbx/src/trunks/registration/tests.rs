use super::*;
use sip::{Framing, ResponseBuilder};

const USER: &str = "acct";
const PASS: &str = "secret";

fn target() -> RegTarget {
    RegTarget {
        trunk: "carrier".into(),
        host: "sip.carrier.test".into(),
        port: 5060,
        transport: Transport::Udp,
        username: USER.into(),
        auth_user: None,
        password: PASS.into(),
        dest: Some("198.51.100.10:5060".parse().unwrap()),
        contact: Some("192.0.2.1:5060".parse().unwrap()),
        expires: DEFAULT_EXPIRES,
    }
}

fn parse(m: &Message) -> Message {
    m.clone()
}

fn respond(req: &RegSend, status: u16, headers: &[(HeaderName, &str)]) -> Message {
    let r = parse(&req.request);
    let mut b = ResponseBuilder::new(&r, status).to_tag("prov".to_string());
    for (n, v) in headers {
        b = b.header(*n, v);
    }
    Message::parse(b.build(), Framing::Stream, &sip::Limits::default()).unwrap()
}

const CHALLENGE: &str = "Digest realm=\"carrier.test\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"";

fn started() -> (Registrations, Instant, SystemTime, RegSend) {
    let mut regs = Registrations::new();
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    regs.sync(&[target()], now);
    assert_eq!(regs.poll_timeout(), Some(now));
    let mut out = regs.handle_timeout(now);
    assert_eq!(out.len(), 1);
    (regs, now, wall, out.remove(0))
}

fn header(m: &Message, h: HeaderName) -> String {
    m.header_str(h).unwrap_or_default().to_string()
}

#[test]
fn register_challenge_answer_and_refresh() {
    let (mut regs, now, wall, first) = started();
    assert_eq!(first.dest, "198.51.100.10:5060".parse().unwrap());
    let m = parse(&first.request);
    assert_eq!(m.method(), Some(sip::Method::Register));
    assert_eq!(m.request_uri_raw(), Some(&b"sip:sip.carrier.test:5060"[..]));
    assert!(header(&m, HeaderName::From).starts_with("<sip:acct@sip.carrier.test>;tag="));
    assert_eq!(header(&m, HeaderName::To), "<sip:acct@sip.carrier.test>");
    assert_eq!(header(&m, HeaderName::Contact), "<sip:192.0.2.1:5060>");
    assert_eq!(header(&m, HeaderName::Expires), "3600");
    assert_eq!(header(&m, HeaderName::CSeq), "1 REGISTER");
    assert!(m.header(HeaderName::Authorization).is_none());
    let call_id = header(&m, HeaderName::CallId);
    assert_eq!(regs.status(now, wall)[0].state, RegState::Registering);
    // Nothing else is due while the REGISTER is in flight.
    assert_eq!(regs.poll_timeout(), None);

    let challenge = respond(&first, 401, &[(HeaderName::WwwAuthenticate, CHALLENGE)]);
    let second = regs
        .on_response(first.id, &challenge, now, wall)
        .expect("answered");
    let m2 = parse(&second.request);
    assert_eq!(header(&m2, HeaderName::CSeq), "2 REGISTER");
    assert_eq!(header(&m2, HeaderName::CallId), call_id);
    let auth = header(&m2, HeaderName::Authorization);
    let parsed = sip::digest::DigestAuthorization::parse(&auth).unwrap();
    assert_eq!(parsed.username, USER);
    let ha1 = sip::digest::ha1(sip::digest::Algorithm::Md5, USER, "carrier.test", PASS);
    assert_eq!(parsed.expected_response(&ha1, "REGISTER"), parsed.response);
    assert!(auth.contains("uri=\"sip:sip.carrier.test:5060\""), "{auth}");

    let ok = respond(
        &second,
        200,
        &[(HeaderName::Contact, "<sip:192.0.2.1:5060>;expires=60")],
    );
    assert!(regs.on_response(second.id, &ok, now, wall).is_none());
    let st = &regs.status(now, wall)[0];
    assert_eq!(
        (st.state, st.last_error.as_deref()),
        (RegState::Registered, None)
    );
    for s in RegState::ALL {
        assert_eq!(RegState::from_stored(s.as_str()), Some(s));
    }
    assert_eq!(RegState::from_stored("Registered"), None);
    assert_eq!(st.registered_until, Some(wall + Duration::from_secs(60)));
    // Refreshed at 85 % of the 60 s granted, with the same Call-ID and a higher CSeq.
    assert_eq!(regs.poll_timeout(), Some(now + Duration::from_secs(51)));
    assert!(
        regs.handle_timeout(now + Duration::from_secs(50))
            .is_empty()
    );
    let later = now + Duration::from_secs(51);
    let refresh = regs.handle_timeout(later);
    assert_eq!(refresh.len(), 1);
    let m3 = parse(&refresh[0].request);
    assert_eq!(header(&m3, HeaderName::CSeq), "3 REGISTER");
    assert_eq!(header(&m3, HeaderName::CallId), call_id);
    assert_eq!(header(&m3, HeaderName::From), header(&m, HeaderName::From));
    assert!(m3.header(HeaderName::Authorization).is_none());
}

#[test]
fn refused_password_backs_off_instead_of_looping() {
    let (mut regs, now, wall, first) = started();
    let c = respond(&first, 401, &[(HeaderName::WwwAuthenticate, CHALLENGE)]);
    let second = regs.on_response(first.id, &c, now, wall).unwrap();
    let c2 = respond(&second, 401, &[(HeaderName::WwwAuthenticate, CHALLENGE)]);
    assert!(
        regs.on_response(second.id, &c2, now, wall).is_none(),
        "not answered twice"
    );
    let st = &regs.status(now, wall)[0];
    assert_eq!(st.state, RegState::Failed);
    assert!(
        st.last_error
            .as_deref()
            .unwrap()
            .contains("refused the credentials"),
        "{st:?}"
    );
    assert_eq!(regs.poll_timeout(), Some(now + Duration::from_secs(30)));
    assert!(
        regs.handle_timeout(now + Duration::from_secs(29))
            .is_empty()
    );
    // The retry starts a new attempt (which may answer one challenge again), then backs off 60 s.
    let t1 = now + Duration::from_secs(30);
    let retry = regs.handle_timeout(t1).remove(0);
    let c3 = respond(&retry, 401, &[(HeaderName::WwwAuthenticate, CHALLENGE)]);
    let answered = regs.on_response(retry.id, &c3, t1, wall).unwrap();
    let c4 = respond(&answered, 403, &[]);
    assert!(regs.on_response(answered.id, &c4, t1, wall).is_none());
    assert_eq!(regs.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    assert!(
        regs.status(t1, wall)[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("403")
    );
}

#[test]
fn backoff_doubles_to_ten_minutes_and_honours_retry_after() {
    assert_eq!(backoff(1), Duration::from_secs(30));
    assert_eq!(backoff(2), Duration::from_secs(60));
    assert_eq!(backoff(5), Duration::from_secs(480));
    assert_eq!(backoff(6), Duration::from_secs(600));
    assert_eq!(backoff(u32::MAX), Duration::from_secs(600));
    assert_eq!(refresh_after(3600), Duration::from_secs(3060));
    assert_eq!(refresh_after(2), MIN_REFRESH);
    let (mut regs, now, wall, first) = started();
    let busy = respond(&first, 503, &[(HeaderName::RetryAfter, "120")]);
    assert!(regs.on_response(first.id, &busy, now, wall).is_none());
    assert_eq!(regs.poll_timeout(), Some(now + Duration::from_secs(120)));
    let t = now + Duration::from_secs(120);
    let again = regs.handle_timeout(t).remove(0);
    regs.on_failure(again.id, t);
    assert_eq!(regs.poll_timeout(), Some(t + Duration::from_secs(60)));
    let st = &regs.status(t, wall)[0];
    assert!(
        st.last_error.as_deref().unwrap().contains("no answer"),
        "{st:?}"
    );
}

#[test]
fn stale_nonce_is_answered_once_more() {
    let (mut regs, now, wall, first) = started();
    let c = respond(&first, 407, &[(HeaderName::ProxyAuthenticate, CHALLENGE)]);
    let second = regs.on_response(first.id, &c, now, wall).unwrap();
    assert!(
        parse(&second.request)
            .header(HeaderName::ProxyAuthorization)
            .is_some()
    );
    let stale = format!("{CHALLENGE}, stale=true");
    let c2 = respond(&second, 407, &[(HeaderName::ProxyAuthenticate, &stale)]);
    let third = regs
        .on_response(second.id, &c2, now, wall)
        .expect("stale: answered again");
    let c3 = respond(&third, 407, &[(HeaderName::ProxyAuthenticate, &stale)]);
    assert!(regs.on_response(third.id, &c3, now, wall).is_none());
    assert_eq!(regs.status(now, wall)[0].state, RegState::Failed);
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let mut t = target();
    t.expires = 60;
    let mut regs = Registrations::new();
    let (now, wall) = (Instant::now(), SystemTime::now());
    regs.sync(&[t], now);
    let first = regs.handle_timeout(now).remove(0);
    let brief = respond(&first, 423, &[(HeaderName::MinExpires, "300")]);
    let second = regs.on_response(first.id, &brief, now, wall).unwrap();
    assert_eq!(header(&parse(&second.request), HeaderName::Expires), "300");
    // No Contact expiry in the 200: the Expires header, else what was asked.
    let ok = respond(&second, 200, &[]);
    regs.on_response(second.id, &ok, now, wall);
    assert_eq!(
        regs.status(now, wall)[0].registered_until,
        Some(wall + Duration::from_secs(300))
    );
}

#[test]
fn removal_unregisters_with_expires_zero() {
    let (mut regs, now, wall, first) = started();
    let ok = respond(&first, 200, &[(HeaderName::Expires, "600")]);
    regs.on_response(first.id, &ok, now, wall);
    regs.sync(&[], now);
    assert_eq!(regs.status(now, wall)[0].state, RegState::Unregistering);
    let bye = regs.handle_timeout(now).remove(0);
    let m = parse(&bye.request);
    assert_eq!(header(&m, HeaderName::Expires), "0");
    assert_eq!(header(&m, HeaderName::CSeq), "2 REGISTER");
    // Challenged: answered once, still with Expires 0.
    let c = respond(&bye, 401, &[(HeaderName::WwwAuthenticate, CHALLENGE)]);
    let bye2 = regs.on_response(bye.id, &c, now, wall).unwrap();
    assert_eq!(header(&parse(&bye2.request), HeaderName::Expires), "0");
    let done = respond(&bye2, 200, &[]);
    assert!(regs.on_response(bye2.id, &done, now, wall).is_none());
    assert!(regs.status(now, wall).is_empty());
    assert_eq!(regs.poll_timeout(), None);

    // Never registered: simply forgotten.
    let (mut regs, now, wall, first) = started();
    regs.on_failure(first.id, now);
    regs.sync(&[], now);
    assert!(regs.status(now, wall).is_empty());
}

#[test]
fn a_changed_trunk_starts_over_and_the_old_registration_is_removed() {
    let (mut regs, now, wall, first) = started();
    let ok = respond(&first, 200, &[(HeaderName::Expires, "600")]);
    regs.on_response(first.id, &ok, now, wall);
    let mut changed = target();
    changed.password = "new".into();
    regs.sync(&[changed.clone()], now);
    let sent = regs.handle_timeout(now);
    assert_eq!(sent.len(), 2);
    let expires: Vec<String> = sent
        .iter()
        .map(|s| header(&parse(&s.request), HeaderName::Expires))
        .collect();
    assert!(expires.contains(&"0".to_string()) && expires.contains(&"3600".to_string()));
    let ids: Vec<RegId> = sent.iter().map(|s| s.id).collect();
    assert_ne!(ids[0], ids[1]);
    // The same wanted set again changes nothing.
    regs.sync(&[changed], now);
    assert!(regs.handle_timeout(now).is_empty());
}

#[test]
fn unresolved_host_or_missing_listener_is_a_failure_with_a_reason() {
    let mut t = target();
    t.dest = None;
    let mut regs = Registrations::new();
    let (now, wall) = (Instant::now(), SystemTime::now());
    regs.sync(&[t], now);
    assert!(regs.handle_timeout(now).is_empty());
    let st = &regs.status(now, wall)[0];
    assert_eq!(st.state, RegState::Failed);
    assert!(
        st.last_error
            .as_deref()
            .unwrap()
            .contains("does not resolve")
    );
    assert_eq!(regs.poll_timeout(), Some(now + RETRY_MIN));
    let mut t = target();
    t.transport = Transport::Tcp;
    t.contact = None;
    let mut regs = Registrations::new();
    regs.sync(&[t], now);
    regs.handle_timeout(now);
    assert!(
        regs.status(now, wall)[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("--listen")
    );
}

#[test]
fn tcp_and_ipv6_uris() {
    let mut t = target();
    t.transport = Transport::Tcp;
    t.host = "2001:db8::10".into();
    t.contact = Some("[2001:db8::1]:5060".parse().unwrap());
    let mut regs = Registrations::new();
    let now = Instant::now();
    regs.sync(&[t], now);
    let s = regs.handle_timeout(now).remove(0);
    assert_eq!(s.transport, Transport::Tcp);
    let m = parse(&s.request);
    assert_eq!(
        m.request_uri_raw(),
        Some(&b"sip:[2001:db8::10]:5060;transport=tcp"[..])
    );
    assert_eq!(header(&m, HeaderName::To), "<sip:acct@[2001:db8::10]>");
    assert_eq!(
        header(&m, HeaderName::Contact),
        "<sip:[2001:db8::1]:5060;transport=tcp>"
    );
    assert!(
        header(&m, HeaderName::Via).starts_with("SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK")
    );
}

#[test]
fn late_or_foreign_answers_are_ignored() {
    let (mut regs, now, wall, first) = started();
    let ok = respond(&first, 200, &[]);
    assert!(regs.on_response(RegId(999), &ok, now, wall).is_none());
    assert_eq!(regs.status(now, wall)[0].state, RegState::Registering);
    regs.on_response(first.id, &ok, now, wall);
    // A second final answer for the same REGISTER changes nothing.
    let c = respond(&first, 401, &[(HeaderName::WwwAuthenticate, CHALLENGE)]);
    assert!(regs.on_response(first.id, &c, now, wall).is_none());
    assert_eq!(regs.status(now, wall)[0].state, RegState::Registered);
}

#[test]
fn a_failed_connection_fails_the_registration_at_once_with_its_reason() {
    let mut regs = Registrations::default();
    let now = Instant::now();
    let mut t = target();
    t.transport = Transport::Tls;
    regs.sync(&[t], now);
    let sent = regs.handle_timeout(now);
    assert_eq!(sent.len(), 1);
    let dest = sent[0].dest;
    // another address or transport: nothing happens
    assert!(
        regs.on_connect_failure(
            "198.51.100.99:5061".parse().unwrap(),
            Transport::Tls,
            "x",
            now
        )
        .is_empty()
    );
    assert!(
        regs.on_connect_failure(dest, Transport::Tcp, "x", now)
            .is_empty()
    );
    let failed = regs.on_connect_failure(
        dest,
        Transport::Tls,
        "invalid peer certificate: UnknownIssuer",
        now,
    );
    assert_eq!(failed, vec![sent[0].id]);
    let st = &regs.status(now, SystemTime::now())[0];
    assert_eq!(st.state, RegState::Failed);
    let err = st.last_error.clone().unwrap();
    assert!(
        err.contains(
            "cannot connect to the provider at 198.51.100.10:5060 (TLS): invalid peer certificate"
        ),
        "{err}"
    );
    // nothing in flight any more: a second report changes nothing
    assert!(
        regs.on_connect_failure(dest, Transport::Tls, "again", now)
            .is_empty()
    );
}
