//! All 49 RFC 4475 torture messages (bit-exact copies in tests/rfc4475/), each checked against what the RFC
//! says an element must do with it: valid messages parse with every field intact, invalid ones are refused
//! with the status the RFC names (or dropped when they are responses, which are never answered).

use std::borrow::Cow;

use bytes::Bytes;
use sip::addr::Contact;
use sip::uri::{Host, Scheme};
use sip::validate::{Capabilities, Triage, triage};
use sip::{Framing, HeaderName, Limits, Message, Method};

fn load(name: &str) -> Bytes {
    let path = format!("{}/tests/rfc4475/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn run(name: &str) -> Triage {
    triage(
        load(name),
        Framing::Datagram,
        &Limits::default(),
        &Capabilities::default(),
    )
}

fn accepted_request(name: &str) -> Message {
    match run(name) {
        Triage::Request(m) => m,
        other => panic!("{name}: expected an accepted request, got {other:?}"),
    }
}

fn accepted_response(name: &str) -> Message {
    match run(name) {
        Triage::Response(m) => m,
        other => panic!("{name}: expected an accepted response, got {other:?}"),
    }
}

fn rejected(name: &str) -> (u16, Cow<'static, str>, Vec<(HeaderName, String)>) {
    match run(name) {
        Triage::Reject { rejection, request } => {
            // A rejection must be answerable: the response is built from the request's own headers.
            let resp =
                sip::ResponseBuilder::with_reason(&request, rejection.status, &rejection.reason)
                    .build();
            let parsed =
                Message::parse(resp, Framing::Stream, &Limits::default()).expect("response parses");
            assert_eq!(parsed.status(), Some(rejection.status));
            (rejection.status, rejection.reason, rejection.headers)
        }
        other => panic!("{name}: expected a rejection, got {other:?}"),
    }
}

fn dropped(name: &str) {
    match run(name) {
        Triage::Drop(_) => {}
        other => panic!("{name}: expected a drop, got {other:?}"),
    }
}

// ---- 3.1.1 Valid messages ----------------------------------------------------------------------------------

#[test]
fn wsinv_short_tortuous_invite() {
    let m = accepted_request("wsinv");
    assert_eq!(m.method(), Some(Method::Invite));
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(uri.user, Some("vivekg"));
    assert_eq!(uri.param("unknownparam"), Some(None));
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name().unwrap().as_ref(), br#"J Rosenberg \""#);
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    assert_eq!(m.call_id(), Some(&b"wsinv.ndaksdj@192.0.2.1"[..]));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].transport, vias[0].sent_by, vias[0].branch()),
        ("UDP", "192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(
        (vias[1].transport, vias[1].sent_by, vias[1].branch()),
        ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(
        (vias[2].sent_by, vias[2].branch()),
        ("192.168.255.111", Some("z9hG4bK30239"))
    );
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    assert_eq!(m.other_header_values("NewFangledHeader").count(), 1);
    let contacts: Vec<_> = m.contacts().map(Result::unwrap).collect();
    assert_eq!(contacts.len(), 1);
    let Contact::Addr(c) = contacts[0] else {
        panic!("star")
    };
    assert_eq!(c.display_name().unwrap().as_ref(), br#"Quoted string """#);
    assert_eq!(c.param("newparam"), Some(Some(&b"newvalue"[..])));
    assert_eq!(c.param("q"), Some(Some(&b"0.33"[..])));
    assert_eq!(m.routes(HeaderName::Route).count(), 1);
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = accepted_request("intmeth");
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(
        m.method_str(),
        Some("!interesting-Method0123456789_*+`.%indeed'~")
    );
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        uri.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(
        m.to().unwrap().display_name().unwrap().as_ref(),
        b"BEL:\x07 NUL:\x00 DEL:\x7f"
    );
    assert_eq!(m.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.call_id(),
        Some(&b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"[..])
    );
    assert_eq!(m.cseq().unwrap().seq, 139122385);
    assert_eq!(m.max_forwards(), Ok(Some(255)));
}

#[test]
fn esc01_valid_escaping() {
    let m = accepted_request("esc01");
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        uri.user_unescaped().unwrap().as_ref(),
        b"sips:user@example.com"
    );
    assert_eq!(m.from().unwrap().tag(), Some("938"));
}

#[test]
fn escnull_escaped_nulls() {
    let m = accepted_request("escnull");
    let to = m.to().unwrap();
    assert_eq!(to.uri.user_unescaped().unwrap().as_ref(), b"null-\0-null");
    assert_eq!(m.contacts().count(), 2);
}

#[test]
fn esc02_percent_not_an_escape() {
    let m = accepted_request("esc02");
    assert_eq!(m.method_str(), Some("RE%47IST%45R"));
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(m.other_header_values("C%6Fntact").count(), 1);
}

#[test]
fn lwsdisp_no_space_before_angle() {
    let m = accepted_request("lwsdisp");
    assert_eq!(m.from().unwrap().display_raw, Some(&b"caller"[..]));
    assert_eq!(m.from().unwrap().tag(), Some("323"));
}

#[test]
fn longreq_long_values() {
    let m = accepted_request("longreq");
    assert!(m.to().unwrap().display_name().unwrap().len() > 100);
    assert_eq!(m.vias().count(), 34);
    assert!(m.call_id().unwrap().starts_with(b"longreq.onereallyreally"));
    assert_eq!(m.contacts().count(), 1);
    assert!(m.header(HeaderName::From).unwrap().len() > 300);
    assert_eq!(m.body().len(), 150);
}

#[test]
fn dblreq_trailing_octets_ignored() {
    let m = accepted_request("dblreq");
    assert_eq!(m.method(), Some(Method::Register));
    assert!(m.body().is_empty());
    assert!(
        m.wire().len() < m.bytes().len(),
        "the second request in the datagram is not part of the first"
    );
}

#[test]
fn semiuri_semicolons_in_user_part() {
    let m = accepted_request("semiuri");
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(uri.user, Some("user;par=u%40example.net"));
    assert_eq!(uri.host, Some(Host::Name("example.com")));
}

#[test]
fn transports_varied_and_unknown() {
    let m = accepted_request("transports");
    let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(t, vec!["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_multipart_body() {
    let m = accepted_request("mpart01");
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.param("boundary"), Some(Some(&b"7a9cbec02ceef655"[..])));
    assert_eq!(m.body().len(), 553);
}

#[test]
fn unreason_unusual_reason_phrase() {
    let m = accepted_response("unreason");
    assert_eq!(m.status(), Some(200));
    assert!(
        std::str::from_utf8(m.reason().unwrap())
            .unwrap()
            .ends_with("простое")
    );
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = accepted_response("noreason");
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(&b""[..]));
}

// ---- 3.1.2 Invalid messages --------------------------------------------------------------------------------

#[test]
fn badinv01_extraneous_separators() {
    assert_eq!(rejected("badinv01").0, 400);
}

#[test]
fn clerr_content_length_larger_than_message() {
    let (status, reason, _) = rejected("clerr");
    assert_eq!(status, 400);
    assert!(reason.contains("Content-Length"), "{reason}");
}

#[test]
fn ncl_negative_content_length() {
    let (status, reason, _) = rejected("ncl");
    assert_eq!(status, 400);
    assert!(reason.contains("Content-Length"), "{reason}");
}

#[test]
fn scalar02_overlarge_request_scalars() {
    assert_eq!(rejected("scalar02").0, 400);
}

#[test]
fn scalarlg_overlarge_response_scalars() {
    dropped("scalarlg");
}

#[test]
fn quotbal_unterminated_quote() {
    assert_eq!(rejected("quotbal").0, 400);
}

#[test]
fn ltgtruri_angle_brackets_around_request_uri() {
    assert_eq!(rejected("ltgtruri").0, 400);
}

#[test]
fn lwsruri_white_space_in_request_uri() {
    assert_eq!(rejected("lwsruri").0, 400);
}

#[test]
fn lwsstart_multiple_spaces_in_request_line() {
    assert_eq!(rejected("lwsstart").0, 400);
}

#[test]
fn trws_trailing_space_in_request_line() {
    assert_eq!(rejected("trws").0, 400);
}

#[test]
fn escruri_headers_in_request_uri() {
    let (status, reason, _) = rejected("escruri");
    assert_eq!(status, 400);
    assert!(reason.contains("Request-URI"), "{reason}");
}

#[test]
fn baddate_time_zone_not_gmt() {
    let (status, reason, _) = rejected("baddate");
    assert_eq!(status, 400);
    assert!(reason.contains("Date"), "{reason}");
}

#[test]
fn regbadct_uri_with_header_not_in_brackets() {
    let (status, reason, _) = rejected("regbadct");
    assert_eq!(status, 400);
    assert!(reason.contains("Contact"), "{reason}");
}

#[test]
fn badaspec_spaces_in_addr_spec() {
    let (status, reason, _) = rejected("badaspec");
    assert_eq!(status, 400);
    assert!(reason.contains("To"), "{reason}");
}

#[test]
fn baddn_non_token_display_name() {
    let (status, reason, _) = rejected("baddn");
    assert_eq!(status, 400);
    assert!(reason.contains("From") || reason.contains("To"), "{reason}");
}

#[test]
fn badvers_unknown_version_is_505() {
    assert_eq!(rejected("badvers").0, 505);
}

#[test]
fn mismatch01_cseq_method_mismatch() {
    let (status, reason, _) = rejected("mismatch01");
    assert_eq!(status, 400);
    assert!(reason.contains("CSeq"), "{reason}");
}

#[test]
fn mismatch02_unknown_method_cseq_mismatch() {
    let (status, reason, _) = rejected("mismatch02");
    assert_eq!(status, 400);
    assert!(reason.contains("CSeq"), "{reason}");
}

#[test]
fn bigcode_overlarge_status_code() {
    dropped("bigcode");
}

// ---- 3.2 Transaction layer ---------------------------------------------------------------------------------

#[test]
fn badbranch_missing_transaction_identifier_still_parses() {
    let m = accepted_request("badbranch");
    let via = m.top_via().unwrap();
    assert!(
        !via.has_rfc3261_branch(),
        "the branch lacks the magic cookie: RFC 2543 matching applies"
    );
}

// ---- 3.3 Application layer ---------------------------------------------------------------------------------

#[test]
fn insuf_missing_required_headers() {
    let (status, reason, _) = rejected("insuf");
    assert_eq!(status, 400);
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn unkscm_unknown_request_uri_scheme_is_416() {
    assert_eq!(rejected("unkscm").0, 416);
}

#[test]
fn novelsc_atypical_request_uri_scheme_is_416() {
    assert_eq!(rejected("novelsc").0, 416);
}

#[test]
fn unksm2_unknown_schemes_in_headers_are_fine() {
    let m = accepted_request("unksm2");
    assert_eq!(m.to().unwrap().uri.scheme, Scheme::Other);
    assert_eq!(m.from().unwrap().uri.scheme, Scheme::Other);
}

#[test]
fn bext01_require_and_proxy_require_is_420() {
    let (status, _, headers) = rejected("bext01");
    assert_eq!(status, 420);
    let unsupported = &headers
        .iter()
        .find(|(h, _)| *h == HeaderName::Unsupported)
        .unwrap()
        .1;
    for tag in [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ] {
        assert!(unsupported.contains(tag), "{unsupported}");
    }
}

#[test]
fn invut_unknown_content_type_is_415() {
    let (status, _, headers) = rejected("invut");
    assert_eq!(status, 415);
    assert!(
        headers
            .iter()
            .any(|(h, v)| *h == HeaderName::Accept && v.contains("application/sdp"))
    );
}

#[test]
fn regaut01_unknown_authorization_scheme_reaches_the_registrar() {
    // The registrar answers it with a challenge; syntax-wise it is a fine request.
    let m = accepted_request("regaut01");
    assert_eq!(m.method(), Some(Method::Register));
    assert!(
        m.header(HeaderName::Authorization)
            .unwrap()
            .starts_with(b"NoOneKnowsThisScheme")
    );
}

#[test]
fn multi01_multiple_values_in_single_value_headers() {
    assert_eq!(rejected("multi01").0, 400);
}

#[test]
fn mcl01_multiple_content_length_values() {
    let (status, reason, _) = rejected("mcl01");
    assert_eq!(status, 400);
    assert!(reason.contains("Content-Length"), "{reason}");
}

#[test]
fn bcast_response_with_broadcast_via_parses_and_matches_nothing() {
    let m = accepted_response("bcast");
    assert_eq!(m.status(), Some(200));
}

#[test]
fn zeromf_options_with_max_forwards_zero_is_ours_to_answer() {
    let m = accepted_request("zeromf");
    assert_eq!(m.max_forwards(), Ok(Some(0)));
}

#[test]
fn cparam01_contact_header_parameter() {
    let m = accepted_request("cparam01");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.param("unknownparam"), Some(None));
    assert_eq!(c.uri.param("unknownparam"), None);
}

#[test]
fn cparam02_contact_uri_parameter() {
    let m = accepted_request("cparam02");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.uri.param("unknownparam"), Some(None));
    assert_eq!(c.param("unknownparam"), None);
}

#[test]
fn regescrt_contact_uri_with_escaped_header() {
    let m = accepted_request("regescrt");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.uri.headers, Some("Route=%3Csip:sip.example.com%3E"));
}

#[test]
fn sdp01_invite_that_refuses_sdp_is_406() {
    let (status, _, headers) = rejected("sdp01");
    assert_eq!(status, 406);
    assert!(headers.iter().any(|(h, _)| *h == HeaderName::Accept));
}

// ---- 3.4 Backward compatibility ----------------------------------------------------------------------------

#[test]
fn inv2543_rfc2543_syntax() {
    let m = accepted_request("inv2543");
    assert_eq!(m.method(), Some(Method::Invite));
    assert!(!m.top_via().unwrap().has_rfc3261_branch());
    assert_eq!(m.from().unwrap().tag(), None);
}

/// Every file is covered by a test above, and the copies are the RFC's bytes.
#[test]
fn all_49_messages_present_and_exact() {
    let dir = format!("{}/tests/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let count = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dat")
        })
        .count();
    assert_eq!(count, 49);
    // Spot-check exact bytes that git could mangle: CRLF endings, raw NUL, BEL and DEL.
    let intmeth = load("intmeth");
    assert!(intmeth.windows(2).any(|w| w == b"\r\n"));
    assert!(intmeth.contains(&0) && intmeth.contains(&7) && intmeth.contains(&0x7f));
}
