//! Header names: the ones Palisade reads get an id (so lookups are integer compares), with their compact forms.

/// A header name. Known names are matched case-insensitively, compact forms included (`v` = Via, `l` =
/// Content-Length, …); anything else is `Other` and compared by its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    ContentLength,
    ContentType,
    ContentEncoding,
    Route,
    RecordRoute,
    Expires,
    MinExpires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    AuthenticationInfo,
    Allow,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    UserAgent,
    Server,
    Accept,
    AcceptEncoding,
    AcceptLanguage,
    Event,
    SubscriptionState,
    ReferTo,
    ReferredBy,
    SessionExpires,
    MinSe,
    Date,
    Subject,
    Timestamp,
    RetryAfter,
    Warning,
    Other,
}

impl HeaderName {
    /// Every header name, `Other` last, in declaration order (for exhaustive tests and fuzzing).
    pub const ALL: &'static [HeaderName] = &[
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::Contact,
        HeaderName::MaxForwards,
        HeaderName::ContentLength,
        HeaderName::ContentType,
        HeaderName::ContentEncoding,
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::Expires,
        HeaderName::MinExpires,
        HeaderName::Authorization,
        HeaderName::ProxyAuthorization,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
        HeaderName::AuthenticationInfo,
        HeaderName::Allow,
        HeaderName::Supported,
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Unsupported,
        HeaderName::UserAgent,
        HeaderName::Server,
        HeaderName::Accept,
        HeaderName::AcceptEncoding,
        HeaderName::AcceptLanguage,
        HeaderName::Event,
        HeaderName::SubscriptionState,
        HeaderName::ReferTo,
        HeaderName::ReferredBy,
        HeaderName::SessionExpires,
        HeaderName::MinSe,
        HeaderName::Date,
        HeaderName::Subject,
        HeaderName::Timestamp,
        HeaderName::RetryAfter,
        HeaderName::Warning,
        HeaderName::Other,
    ];

    /// Identifies a header name as it appears on the wire (any case, compact or long form).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => Via,
                b'f' => From,
                b't' => To,
                b'i' => CallId,
                b'm' => Contact,
                b'l' => ContentLength,
                b'c' => ContentType,
                b'e' => ContentEncoding,
                b'k' => Supported,
                b's' => Subject,
                b'o' => Event,
                b'r' => ReferTo,
                b'b' => ReferredBy,
                b'x' => SessionExpires,
                _ => Other,
            };
        }
        // Dispatch on length first so that most names are rejected or matched with one comparison.
        let candidates: &[(&[u8], HeaderName)] = match name.len() {
            2 => &[(b"to", To)],
            3 => &[(b"via", Via)],
            4 => &[(b"from", From), (b"cseq", CSeq), (b"date", Date)],
            5 => &[(b"route", Route), (b"allow", Allow), (b"event", Event)],
            6 => &[(b"server", Server), (b"accept", Accept), (b"min-se", MinSe)],
            7 => &[
                (b"call-id", CallId),
                (b"contact", Contact),
                (b"expires", Expires),
                (b"require", Require),
            ],
            8 => &[(b"refer-to", ReferTo)],
            9 => &[(b"supported", Supported), (b"timestamp", Timestamp)],
            10 => &[(b"user-agent", UserAgent)],
            11 => &[
                (b"min-expires", MinExpires),
                (b"unsupported", Unsupported),
                (b"referred-by", ReferredBy),
            ],
            12 => &[
                (b"max-forwards", MaxForwards),
                (b"content-type", ContentType),
                (b"record-route", RecordRoute),
            ],
            13 => &[
                (b"authorization", Authorization),
                (b"proxy-require", ProxyRequire),
            ],
            14 => &[(b"content-length", ContentLength)],
            15 => &[
                (b"accept-encoding", AcceptEncoding),
                (b"accept-language", AcceptLanguage),
            ],
            16 => &[
                (b"www-authenticate", WwwAuthenticate),
                (b"content-encoding", ContentEncoding),
            ],
            18 => &[
                (b"proxy-authenticate", ProxyAuthenticate),
                (b"subscription-state", SubscriptionState),
            ],
            19 => &[
                (b"proxy-authorization", ProxyAuthorization),
                (b"authentication-info", AuthenticationInfo),
            ],
            _ => &[],
        };
        for (text, id) in candidates {
            if name.eq_ignore_ascii_case(text) {
                return *id;
            }
        }
        match name {
            n if n.eq_ignore_ascii_case(b"retry-after") => RetryAfter,
            n if n.eq_ignore_ascii_case(b"session-expires") => SessionExpires,
            n if n.eq_ignore_ascii_case(b"warning") => Warning,
            n if n.eq_ignore_ascii_case(b"subject") => Subject,
            _ => Other,
        }
    }

    /// The canonical long form, as Palisade writes it.
    pub fn as_str(self) -> &'static str {
        use HeaderName::*;
        match self {
            Via => "Via",
            From => "From",
            To => "To",
            CallId => "Call-ID",
            CSeq => "CSeq",
            Contact => "Contact",
            MaxForwards => "Max-Forwards",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            ContentEncoding => "Content-Encoding",
            Route => "Route",
            RecordRoute => "Record-Route",
            Expires => "Expires",
            MinExpires => "Min-Expires",
            Authorization => "Authorization",
            ProxyAuthorization => "Proxy-Authorization",
            WwwAuthenticate => "WWW-Authenticate",
            ProxyAuthenticate => "Proxy-Authenticate",
            AuthenticationInfo => "Authentication-Info",
            Allow => "Allow",
            Supported => "Supported",
            Require => "Require",
            ProxyRequire => "Proxy-Require",
            Unsupported => "Unsupported",
            UserAgent => "User-Agent",
            Server => "Server",
            Accept => "Accept",
            AcceptEncoding => "Accept-Encoding",
            AcceptLanguage => "Accept-Language",
            Event => "Event",
            SubscriptionState => "Subscription-State",
            ReferTo => "Refer-To",
            ReferredBy => "Referred-By",
            SessionExpires => "Session-Expires",
            MinSe => "Min-SE",
            Date => "Date",
            Subject => "Subject",
            Timestamp => "Timestamp",
            RetryAfter => "Retry-After",
            Warning => "Warning",
            Other => "",
        }
    }

    /// Headers whose value may legally be a comma-separated list (RFC 3261 §7.3.1). Everything else must
    /// appear at most once with a single value.
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Contact
                | Route
                | RecordRoute
                | Allow
                | Supported
                | Require
                | ProxyRequire
                | Unsupported
                | Accept
                | AcceptEncoding
                | AcceptLanguage
                | ContentEncoding
                | Warning
                | Other
        )
    }

    /// Headers that RFC 3261 allows only once per message; a second copy is a 400.
    pub fn is_single(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            From | To
                | CallId
                | CSeq
                | MaxForwards
                | ContentLength
                | ContentType
                | Expires
                | MinExpires
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_long_forms() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::from_bytes(b"WWW-Authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(
            HeaderName::from_bytes(b"Session-Expires"),
            HeaderName::SessionExpires
        );
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"NewFangledHeader"),
            HeaderName::Other
        );
    }

    #[test]
    fn all_lists_every_name_once_in_declaration_order() {
        assert_eq!(HeaderName::ALL.len(), HeaderName::Other as usize + 1);
        for (i, h) in HeaderName::ALL.iter().enumerate() {
            assert_eq!(*h as usize, i, "{h:?}");
        }
    }

    #[test]
    fn every_canonical_name_round_trips() {
        for &h in HeaderName::ALL.iter().filter(|h| **h != HeaderName::Other) {
            assert_eq!(
                HeaderName::from_bytes(h.as_str().as_bytes()),
                h,
                "{}",
                h.as_str()
            );
        }
    }
}
