//! May this provisioning fetch be served, does it bind the token, does it carry the credentials, or why is it
//! refused? Pure: the phone's stored state, what the request showed and the time are arguments.
//!
//! The rules (docs/security.md, "Provisioning"):
//! - An unknown token, a MAC (in the file name or the User-Agent) that is not the phone's, a device other than
//!   the one the token is bound to, or an unbound token whose window has closed: refused, counted toward the
//!   source's console ban. Every refusal looks the same to the client (404).
//! - The credentials (the only secret) are in the phone's own file, served once per window: that fetch binds
//!   the token to the device if it is not bound yet. Later fetches from the bound device get the same file
//!   without the password (the phone keeps the one it has), also after the window.
//! - A file name the model never asks for, from the right device, is a plain 404 and not counted: phones ask for
//!   optional files (directories, licences) that Palisade does not provide.

use super::model::{FileKind, Model, user_agent_mac};

/// What is stored about the phone whose token was presented.
#[derive(Debug, Clone)]
pub struct PhoneState<'a> {
    pub model: Model,
    pub mac: Option<&'a str>,
    pub window_expires_at: i64,
    pub credentials_served: bool,
    pub bound: Option<Bound<'a>>,
}

/// The device a token is bound to.
#[derive(Debug, Clone)]
pub struct Bound<'a> {
    pub cert_sha256: Option<&'a str>,
    pub source: &'a str,
}

/// What the request showed.
#[derive(Debug, Clone)]
pub struct Fetch<'a> {
    pub file: &'a str,
    pub user_agent: Option<&'a str>,
    pub cert_sha256: Option<&'a str>,
    pub source: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Serve {
        kind: FileKind,
        /// Generate a password, store its hashes and put it in this response (once per window).
        credentials: bool,
        /// Bind the token to this device (with the credentials).
        bind: bool,
    },
    /// 404, identical for every reason.
    Refuse { why: Refusal, counted: bool },
}

/// Why a fetch was refused: the security event's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownToken,
    WrongMac,
    UserAgentMac,
    OtherDevice,
    WindowClosed,
    UnknownFile,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownToken => "unknown_token",
            Refusal::WrongMac => "wrong_mac",
            Refusal::UserAgentMac => "user_agent_mac",
            Refusal::OtherDevice => "other_device",
            Refusal::WindowClosed => "window_closed",
            Refusal::UnknownFile => "unknown_file",
        }
    }
}

fn refuse(why: Refusal) -> Decision {
    Decision::Refuse {
        why,
        counted: why != Refusal::UnknownFile,
    }
}

pub fn decide(phone: Option<&PhoneState<'_>>, fetch: &Fetch<'_>) -> Decision {
    let Some(phone) = phone else {
        return refuse(Refusal::UnknownToken);
    };
    let request = phone.model.classify(fetch.file);
    // The device must be the phone: its MAC wherever the request states one.
    if let Some(mac) = phone.mac {
        if let Some(path_mac) = request.as_ref().and_then(|r| r.mac.as_deref())
            && path_mac != mac
        {
            return refuse(Refusal::WrongMac);
        }
        if let Some(ua_mac) = fetch.user_agent.and_then(user_agent_mac)
            && ua_mac != mac
        {
            return refuse(Refusal::UserAgentMac);
        }
    }
    match &phone.bound {
        Some(bound) => {
            if let Some(cert) = bound.cert_sha256 {
                if fetch.cert_sha256 != Some(cert) {
                    return refuse(Refusal::OtherDevice);
                }
            } else if phone.mac.is_none() && bound.source != fetch.source {
                // A softphone has no MAC: without a client certificate, its address is all that identifies it.
                return refuse(Refusal::OtherDevice);
            }
        }
        None => {
            if fetch.now >= phone.window_expires_at {
                return refuse(Refusal::WindowClosed);
            }
        }
    }
    let Some(request) = request else {
        return refuse(Refusal::UnknownFile);
    };
    let credentials = request.kind == FileKind::Device
        && !phone.credentials_served
        && fetch.now < phone.window_expires_at;
    Decision::Serve {
        kind: request.kind,
        credentials,
        bind: credentials && phone.bound.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "001565aabbcc";
    const UA: &str = "Yealink SIP-T46S 66.86.0.15 00:15:65:aa:bb:cc";

    fn yealink(bound: Option<Bound<'static>>, served: bool) -> PhoneState<'static> {
        PhoneState {
            model: Model::Yealink,
            mac: Some(MAC),
            window_expires_at: 1_000,
            credentials_served: served,
            bound,
        }
    }

    fn fetch(file: &'static str, now: i64) -> Fetch<'static> {
        Fetch {
            file,
            user_agent: Some(UA),
            cert_sha256: None,
            source: "10.0.0.5",
            now,
        }
    }

    fn refused(d: Decision) -> Option<(Refusal, bool)> {
        match d {
            Decision::Refuse { why, counted } => Some((why, counted)),
            Decision::Serve { .. } => None,
        }
    }

    #[test]
    fn the_first_device_fetch_in_the_window_gets_credentials_and_binds() {
        let d = decide(Some(&yealink(None, false)), &fetch("001565aabbcc.cfg", 10));
        assert_eq!(
            d,
            Decision::Serve {
                kind: FileKind::Device,
                credentials: true,
                bind: true
            }
        );
        // The common file carries no secret and binds nothing.
        let d = decide(Some(&yealink(None, false)), &fetch("y000000000044.cfg", 10));
        assert_eq!(
            d,
            Decision::Serve {
                kind: FileKind::Common,
                credentials: false,
                bind: false
            }
        );
    }

    #[test]
    fn credentials_are_served_once_per_window() {
        let bound = Bound {
            cert_sha256: None,
            source: "10.0.0.5",
        };
        let d = decide(
            Some(&yealink(Some(bound.clone()), true)),
            &fetch("001565aabbcc.cfg", 20),
        );
        assert_eq!(
            d,
            Decision::Serve {
                kind: FileKind::Device,
                credentials: false,
                bind: false
            }
        );
        // After the window the bound phone still gets its (secret-free) file, from a new DHCP address too.
        let mut later = fetch("001565aabbcc.cfg", 5_000);
        later.source = "10.0.0.77";
        assert!(refused(decide(Some(&yealink(Some(bound), true)), &later)).is_none());
    }

    #[test]
    fn refusals_are_counted_except_unknown_files_of_the_right_phone() {
        assert_eq!(
            refused(decide(None, &fetch("001565aabbcc.cfg", 10))),
            Some((Refusal::UnknownToken, true))
        );
        assert_eq!(
            refused(decide(
                Some(&yealink(None, false)),
                &fetch("001565aabbcd.cfg", 10)
            )),
            Some((Refusal::WrongMac, true))
        );
        let mut other_ua = fetch("y000000000044.cfg", 10);
        other_ua.user_agent = Some("Yealink SIP-T46S 66.86.0.15 00:15:65:aa:bb:cd");
        assert_eq!(
            refused(decide(Some(&yealink(None, false)), &other_ua)),
            Some((Refusal::UserAgentMac, true))
        );
        assert_eq!(
            refused(decide(
                Some(&yealink(None, false)),
                &fetch("001565aabbcc.cfg", 1_000)
            )),
            Some((Refusal::WindowClosed, true))
        );
        assert_eq!(
            refused(decide(
                Some(&yealink(None, false)),
                &fetch("001565aabbcc-contacts.xml", 10)
            )),
            Some((Refusal::UnknownFile, false))
        );
    }

    #[test]
    fn a_bound_certificate_must_be_presented_again() {
        let bound = Bound {
            cert_sha256: Some("ab"),
            source: "10.0.0.5",
        };
        let phone = yealink(Some(bound), true);
        assert_eq!(
            refused(decide(Some(&phone), &fetch("001565aabbcc.cfg", 20))),
            Some((Refusal::OtherDevice, true))
        );
        let mut with_cert = fetch("001565aabbcc.cfg", 20);
        with_cert.cert_sha256 = Some("ab");
        assert!(refused(decide(Some(&phone), &with_cert)).is_none());
    }

    #[test]
    fn a_bound_softphone_is_its_address() {
        let phone = PhoneState {
            model: Model::Linphone,
            mac: None,
            window_expires_at: 1_000,
            credentials_served: true,
            bound: Some(Bound {
                cert_sha256: None,
                source: "10.0.0.5",
            }),
        };
        let mut f = fetch("linphone.xml", 20);
        f.user_agent = Some("Linphone/5.1.65 (belle-sip/5.1.0)");
        assert!(refused(decide(Some(&phone), &f)).is_none());
        f.source = "10.0.0.6";
        assert_eq!(
            refused(decide(Some(&phone), &f)),
            Some((Refusal::OtherDevice, true))
        );
    }

    #[test]
    fn a_reopened_window_serves_credentials_again() {
        // `reprovision` clears the binding and the served mark.
        let d = decide(Some(&yealink(None, false)), &fetch("001565aabbcc.cfg", 999));
        assert!(matches!(
            d,
            Decision::Serve {
                credentials: true,
                bind: true,
                ..
            }
        ));
    }
}
