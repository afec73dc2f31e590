//! The registrar (RFC 3261 §10.3): bindings from an extension (its address of record) to the contacts where
//! its phones can be reached, with the transport and source address each REGISTER came from, so a phone
//! behind NAT is reached where it really is.
//!
//! Sans-IO: the caller authenticates the request first, passes the current time in, persists the returned
//! changes (write-behind; registrations are hot state, see docs/architecture.md, "Storage") and sends the response it builds from the
//! outcome.

use std::collections::HashMap;
use std::net::SocketAddr;

use sip::addr::Contact;
use sip::{HeaderName, Message};

/// Expiry limits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shorter requested intervals are refused with 423 Interval Too Brief.
    pub min_expires: u32,
    /// Used when the phone names no interval.
    pub default_expires: u32,
    /// Longer requested intervals are shortened to this.
    pub max_expires: u32,
    /// Contacts one extension may have at once; a new one beyond this replaces the binding closest to expiry.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            default_expires: 3600,
            max_expires: 7200,
            max_contacts: 10,
        }
    }
}

/// Where a REGISTER came from: the transport facts, never header contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub transport: sip::Transport,
    pub source: SocketAddr,
    pub local: SocketAddr,
}

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The extension number.
    pub aor: String,
    /// The Contact URI as the phone wrote it (without header parameters).
    pub contact: String,
    /// The transport the REGISTER came over (requests for this phone leave by it).
    pub transport: sip::Transport,
    /// Where the REGISTER came from: requests for this phone are sent here.
    pub source: SocketAddr,
    pub local: SocketAddr,
    /// Unix seconds.
    pub expires_at: u64,
    pub call_id: String,
    pub cseq: u32,
    /// `q` parameter in thousandths (1000 = 1.0), if given.
    pub q: Option<u16>,
    pub user_agent: Option<String>,
    /// `Some(node)`: not a flow of this node but a phone registered through another cluster node, reached by an
    /// internal hop to it (crate::cluster); never set for a REGISTER received here.
    pub via_node: Option<String>,
}

impl Binding {
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// A change to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(Binding),
    Remove { aor: String, contact: String },
}

/// Why a REGISTER was refused, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("Interval Too Brief")]
    IntervalTooBrief { min_expires: u32 },
    #[error("Contact * must be alone and come with Expires: 0")]
    BadWildcard,
    #[error("malformed Contact")]
    BadContact,
    #[error("REGISTER out of order")]
    OutOfOrder,
}

impl RegisterError {
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::BadWildcard | RegisterError::BadContact => 400,
            RegisterError::OutOfOrder => 500,
        }
    }
}

/// What a successful REGISTER did: the bindings now in force (for the 200's Contact list) and the changes to
/// persist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub bindings: Vec<Binding>,
    pub changes: Vec<Change>,
}

/// All bindings, in memory. Bounded per extension by `max_contacts`; the number of extensions is bounded by
/// the extension table (only authenticated extensions reach `register`).
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Self {
        Registrar {
            config,
            bindings: HashMap::new(),
        }
    }

    pub fn config(&self) -> RegistrarConfig {
        self.config
    }

    /// Restores bindings loaded from the store at start; expired ones are skipped.
    pub fn restore(&mut self, bindings: impl IntoIterator<Item = Binding>, now: u64) {
        for b in bindings {
            if b.expires_at > now {
                self.bindings.entry(b.aor.clone()).or_default().push(b);
            }
        }
    }

    /// Applies an authenticated REGISTER for extension `aor` (RFC 3261 §10.3 steps 6–8).
    pub fn register(
        &mut self,
        aor: &str,
        msg: &Message,
        origin: Origin,
        now: u64,
    ) -> Result<Outcome, RegisterError> {
        let header_expires = msg.expires().ok().flatten();
        let call_id = msg
            .call_id()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let user_agent = msg
            .user_agent()
            .map(|u| String::from_utf8_lossy(u).into_owned());

        let mut contacts = Vec::new();
        let mut star = false;
        for c in msg.contacts() {
            match c.map_err(|_| RegisterError::BadContact)? {
                Contact::Star => star = true,
                Contact::Addr(a) => {
                    let expires = match a.param("expires") {
                        Some(v) => v
                            .and_then(sip::text::parse_u32)
                            .ok_or(RegisterError::BadContact)?,
                        None => header_expires.unwrap_or(self.config.default_expires),
                    };
                    let q = a.param("q").flatten().and_then(parse_q);
                    contacts.push((a.uri.raw.to_string(), expires, q));
                }
            }
        }

        let mut outcome = Outcome::default();
        if star {
            if !contacts.is_empty() || header_expires != Some(0) {
                return Err(RegisterError::BadWildcard);
            }
            // §10.3 step 6: remove all bindings, unless one has the same Call-ID and a higher CSeq. An equal CSeq
            // is this request again: a REGISTER keeps no server transaction, so its retransmission lands here
            // and is applied again (the same change).
            let existing = self
                .bindings
                .get(aor)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if existing
                .iter()
                .any(|b| b.call_id == call_id && b.cseq > cseq)
            {
                return Err(RegisterError::OutOfOrder);
            }
            for b in self.bindings.remove(aor).unwrap_or_default() {
                outcome.changes.push(Change::Remove {
                    aor: b.aor,
                    contact: b.contact,
                });
            }
            return Ok(outcome);
        }

        // Check everything before changing anything, so a refused REGISTER changes nothing.
        let list = self
            .bindings
            .get(aor)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (contact, expires, _) in &contacts {
            if *expires != 0 && *expires < self.config.min_expires {
                return Err(RegisterError::IntervalTooBrief {
                    min_expires: self.config.min_expires,
                });
            }
            // Step 7: a lower CSeq in the same Call-ID is out of order; an equal one is a retransmission of the
            // request that set the binding (no server transaction absorbs it), applied again.
            if let Some(b) = list.iter().find(|b| b.contact == *contact)
                && b.call_id == call_id
                && b.cseq > cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
        }

        let list = self.bindings.entry(aor.to_string()).or_default();
        // Drop what expired meanwhile so it neither counts toward the limit nor appears in the answer.
        list.retain(|b| {
            let live = b.expires_at > now;
            if !live {
                outcome.changes.push(Change::Remove {
                    aor: b.aor.clone(),
                    contact: b.contact.clone(),
                });
            }
            live
        });
        for (contact, expires, q) in contacts {
            let pos = list.iter().position(|b| b.contact == contact);
            if expires == 0 {
                if let Some(i) = pos {
                    let b = list.remove(i);
                    outcome.changes.push(Change::Remove {
                        aor: b.aor,
                        contact: b.contact,
                    });
                }
                continue;
            }
            let binding = Binding {
                aor: aor.to_string(),
                contact,
                transport: origin.transport,
                source: origin.source,
                local: origin.local,
                expires_at: now + u64::from(expires.min(self.config.max_expires)),
                call_id: call_id.clone(),
                cseq,
                q,
                user_agent: user_agent.clone(),
                via_node: None,
            };
            match pos {
                Some(i) => list[i] = binding.clone(),
                None => {
                    if list.len() >= self.config.max_contacts
                        && let Some(oldest) = (0..list.len()).min_by_key(|&i| list[i].expires_at)
                    {
                        let b = list.remove(oldest);
                        outcome.changes.push(Change::Remove {
                            aor: b.aor,
                            contact: b.contact,
                        });
                    }
                    list.push(binding.clone());
                }
            }
            outcome.changes.push(Change::Upsert(binding));
        }
        outcome.bindings = list.clone();
        if list.is_empty() {
            self.bindings.remove(aor);
        }
        Ok(outcome)
    }

    /// The live bindings of an extension.
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<&Binding> {
        self.bindings
            .get(aor)
            .map(|l| l.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default()
    }

    /// Removes expired bindings; returns the removals to persist.
    pub fn expire(&mut self, now: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        self.bindings.retain(|_, list| {
            list.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    changes.push(Change::Remove {
                        aor: b.aor.clone(),
                        contact: b.contact.clone(),
                    });
                }
                live
            });
            !list.is_empty()
        });
        changes
    }

    /// Drops every binding of an extension (it was removed or disabled).
    pub fn remove_aor(&mut self, aor: &str) -> Vec<Change> {
        self.bindings
            .remove(aor)
            .unwrap_or_default()
            .into_iter()
            .map(|b| Change::Remove {
                aor: b.aor,
                contact: b.contact,
            })
            .collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values().flatten()
    }

    pub fn len(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

fn parse_q(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?;
    let q: f32 = s.parse().ok()?;
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

/// The Contact header values of a 200 OK to REGISTER: every binding with its remaining time.
pub fn contact_header_values(bindings: &[Binding], now: u64) -> Vec<String> {
    bindings
        .iter()
        .map(|b| format!("<{}>;expires={}", b.contact, b.remaining(now)))
        .collect()
}

/// The header to send with a 423.
pub fn min_expires_header(e: &RegisterError) -> Option<(HeaderName, String)> {
    match e {
        RegisterError::IntervalTooBrief { min_expires } => {
            Some((HeaderName::MinExpires, min_expires.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sip::{Framing, Limits};

    use super::*;

    fn origin() -> Origin {
        Origin {
            transport: sip::Transport::Udp,
            source: "203.0.113.5:40000".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
        }
    }

    fn register_msg(call_id: &str, cseq: u32, contacts: &[&str], expires: Option<u32>) -> Message {
        let mut s = format!(
            "REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK{cseq}\r\nFrom: <sip:100@pbx>;tag=1\r\n\
             To: <sip:100@pbx>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nUser-Agent: TestPhone 1.0\r\n"
        );
        for c in contacts {
            s.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(Bytes::from(s), Framing::Stream, &Limits::default()).unwrap()
    }

    #[test]
    fn register_query_refresh_and_unregister() {
        let mut r = Registrar::default();
        let out = r
            .register(
                "100",
                &register_msg("c1", 1, &["<sip:100@10.0.0.2:5060>"], None),
                origin(),
                1000,
            )
            .unwrap();
        assert_eq!(out.bindings.len(), 1);
        assert_eq!(out.bindings[0].expires_at, 1000 + 3600);
        assert_eq!(out.bindings[0].source, origin().source);
        assert_eq!(out.bindings[0].user_agent.as_deref(), Some("TestPhone 1.0"));
        assert!(matches!(&out.changes[..], [Change::Upsert(_)]));
        // query: no Contact changes nothing and lists what is there
        let q = r
            .register("100", &register_msg("c1", 2, &[], None), origin(), 1010)
            .unwrap();
        assert_eq!(q.bindings.len(), 1);
        assert!(q.changes.is_empty());
        assert_eq!(
            contact_header_values(&q.bindings, 1010),
            vec!["<sip:100@10.0.0.2:5060>;expires=3590"]
        );
        // refresh with a per-contact expires, clamped to the maximum
        let out = r.register(
            "100",
            &register_msg("c1", 3, &["<sip:100@10.0.0.2:5060>;expires=99999"], None),
            origin(),
            1020,
        );
        assert_eq!(out.unwrap().bindings[0].expires_at, 1020 + 7200);
        // unregister
        let out = r
            .register(
                "100",
                &register_msg("c1", 4, &["<sip:100@10.0.0.2:5060>"], Some(0)),
                origin(),
                1030,
            )
            .unwrap();
        assert!(out.bindings.is_empty());
        assert!(matches!(&out.changes[..], [Change::Remove { .. }]));
        assert!(r.is_empty());
    }

    #[test]
    fn interval_too_brief_changes_nothing() {
        let mut r = Registrar::default();
        let e = r
            .register(
                "100",
                &register_msg("c1", 1, &["<sip:a@h>"], Some(30)),
                origin(),
                0,
            )
            .unwrap_err();
        assert_eq!(e, RegisterError::IntervalTooBrief { min_expires: 60 });
        assert_eq!(e.status(), 423);
        assert_eq!(
            min_expires_header(&e),
            Some((HeaderName::MinExpires, "60".into()))
        );
        assert!(r.is_empty());
    }

    #[test]
    fn wildcard_rules() {
        let mut r = Registrar::default();
        r.register(
            "100",
            &register_msg("c1", 1, &["<sip:a@h>", "<sip:b@h>"], None),
            origin(),
            0,
        )
        .unwrap();
        assert_eq!(r.lookup("100", 1).len(), 2);
        let e = r
            .register("100", &register_msg("c2", 1, &["*"], None), origin(), 1)
            .unwrap_err();
        assert_eq!(e, RegisterError::BadWildcard);
        let e = r
            .register(
                "100",
                &register_msg("c2", 1, &["*", "<sip:c@h>"], Some(0)),
                origin(),
                1,
            )
            .unwrap_err();
        assert_eq!(e, RegisterError::BadWildcard);
        let out = r
            .register("100", &register_msg("c2", 1, &["*"], Some(0)), origin(), 1)
            .unwrap();
        assert_eq!(out.changes.len(), 2);
        assert!(r.lookup("100", 1).is_empty());
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let mut r = Registrar::default();
        r.register(
            "100",
            &register_msg("c1", 5, &["<sip:a@h>"], None),
            origin(),
            0,
        )
        .unwrap();
        let e = r
            .register(
                "100",
                &register_msg("c1", 4, &["<sip:a@h>"], None),
                origin(),
                1,
            )
            .unwrap_err();
        assert_eq!(e.status(), 500);
        // the same CSeq is the same request again (a retransmission): answered as the first time
        let again = r
            .register(
                "100",
                &register_msg("c1", 5, &["<sip:a@h>"], None),
                origin(),
                1,
            )
            .unwrap();
        assert_eq!(again.bindings.len(), 1);
        // a different Call-ID (the phone rebooted) may update it with any CSeq
        r.register(
            "100",
            &register_msg("c2", 1, &["<sip:a@h>"], None),
            origin(),
            2,
        )
        .unwrap();
    }

    #[test]
    fn contact_limit_replaces_the_binding_closest_to_expiry() {
        let mut r = Registrar::new(RegistrarConfig {
            max_contacts: 2,
            ..RegistrarConfig::default()
        });
        r.register(
            "100",
            &register_msg("c1", 1, &["<sip:a@h>;expires=100"], None),
            origin(),
            0,
        )
        .unwrap();
        r.register(
            "100",
            &register_msg("c2", 1, &["<sip:b@h>;expires=200"], None),
            origin(),
            0,
        )
        .unwrap();
        r.register(
            "100",
            &register_msg("c3", 1, &["<sip:c@h>;expires=300"], None),
            origin(),
            0,
        )
        .unwrap();
        let live: Vec<_> = r
            .lookup("100", 0)
            .iter()
            .map(|b| b.contact.clone())
            .collect();
        assert_eq!(live, vec!["sip:b@h", "sip:c@h"]);
    }

    #[test]
    fn expiry_and_restore() {
        let mut r = Registrar::default();
        let out = r
            .register(
                "100",
                &register_msg("c1", 1, &["<sip:a@h>;expires=60"], None),
                origin(),
                0,
            )
            .unwrap();
        assert_eq!(r.lookup("100", 59).len(), 1);
        assert!(r.lookup("100", 60).is_empty());
        assert_eq!(r.expire(60).len(), 1);
        assert!(r.is_empty());
        let mut restored = Registrar::default();
        restored.restore(out.bindings.clone(), 30);
        assert_eq!(restored.len(), 1);
        let mut late = Registrar::default();
        late.restore(out.bindings, 61);
        assert!(late.is_empty());
    }
}
