//! The phone models Palisade provisions, their file names and MAC addresses. Pure: no I/O.

use std::fmt;

/// A family of phones sharing one provisioning format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Yealink T4x/T5x: `y0000000000XX.cfg` (common) and `<mac>.cfg` (the phone's own), key = value.
    Yealink,
    /// Snom D7xx: `snom<model>.xml` (lists the phone's file) and `<MAC>.xml` (settings XML).
    Snom,
    /// Grandstream GXP/GRP: `cfg<mac>.xml` (P-values in XML).
    Grandstream,
    /// Poly/Polycom VVX: `000000000000.cfg` or `<mac>.cfg` (master) and `<mac>-phone.cfg` (the phone's own).
    Polycom,
    /// Linphone's XML remote provisioning (lpconfig XML); no MAC.
    Linphone,
    /// Any other phone: a plain key = value file to copy settings from; no MAC.
    Generic,
}

pub const ALL_MODELS: [Model; 6] = [
    Model::Yealink,
    Model::Snom,
    Model::Grandstream,
    Model::Polycom,
    Model::Linphone,
    Model::Generic,
];

/// Which part of a phone's configuration a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Settings shared by all phones of the model (no secrets).
    Common,
    /// The phone's own file: the only one that carries the SIP password.
    Device,
    /// The server's certificate chain (PEM), for phones that load trusted certificates from a URL.
    CaCert,
}

/// A requested file, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    pub kind: FileKind,
    /// The MAC the file name carries (normalised), if it names one.
    pub mac: Option<String>,
}

/// The file name of the server certificate under the provisioning URL.
pub const CA_FILE: &str = "ca.pem";

impl Model {
    /// The model an administrator typed: a vendor or series name, case-insensitive.
    pub fn parse(s: &str) -> Option<Model> {
        let s = s.trim().to_ascii_lowercase();
        let m = match s.as_str() {
            "yealink" | "t4x" | "t5x" | "yealink-t4x" | "yealink-t5x" => Model::Yealink,
            "snom" | "d7xx" | "snom-d7xx" => Model::Snom,
            "grandstream" | "gxp" | "grp" | "grandstream-gxp" | "grandstream-grp" => {
                Model::Grandstream
            }
            "polycom" | "poly" | "vvx" | "polycom-vvx" | "poly-vvx" => Model::Polycom,
            "linphone" => Model::Linphone,
            "generic" => Model::Generic,
            _ => return None,
        };
        Some(m)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Model::Yealink => "yealink",
            Model::Snom => "snom",
            Model::Grandstream => "grandstream",
            Model::Polycom => "polycom",
            Model::Linphone => "linphone",
            Model::Generic => "generic",
        }
    }

    /// Desk phones are identified by their MAC (in file names and often the User-Agent); softphones are not.
    pub fn needs_mac(self) -> bool {
        !matches!(self, Model::Linphone | Model::Generic)
    }

    /// The name the phone asks for first under the provisioning URL (what an administrator may test with).
    pub fn device_file(self, mac: Option<&str>) -> String {
        // Without a MAC (the generic instructions): a placeholder the administrator reads as such.
        let mac = mac.unwrap_or("<mac>");
        match self {
            Model::Yealink => format!("{mac}.cfg"),
            Model::Snom => format!("{}.xml", mac.to_ascii_uppercase()),
            Model::Grandstream => format!("cfg{mac}.xml"),
            Model::Polycom => format!("{mac}-phone.cfg"),
            Model::Linphone => "linphone.xml".into(),
            Model::Generic => "phone.cfg".into(),
        }
    }

    /// Understands a file name requested under the provisioning URL; `None` for a name this model never asks for.
    pub fn classify(self, file: &str) -> Option<FileRequest> {
        let common = || {
            Some(FileRequest {
                kind: FileKind::Common,
                mac: None,
            })
        };
        let device = |mac: Option<String>| {
            Some(FileRequest {
                kind: FileKind::Device,
                mac,
            })
        };
        if file == CA_FILE {
            return Some(FileRequest {
                kind: FileKind::CaCert,
                mac: None,
            });
        }
        match self {
            Model::Yealink => {
                let stem = file.strip_suffix(".cfg")?;
                if let Some(code) = stem.strip_prefix("y0000000000")
                    && code.len() == 2
                    && code.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return common();
                }
                device(Some(mac_exact(stem)?))
            }
            Model::Snom => {
                let stem = file.strip_suffix(".xml")?;
                if let Some(m) = stem.strip_prefix("snom")
                    && !m.is_empty()
                    && m.len() <= 16
                    && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return common();
                }
                device(Some(mac_exact(stem)?))
            }
            Model::Grandstream => {
                if file == "cfg.xml" {
                    return common();
                }
                let stem = file.strip_prefix("cfg")?.strip_suffix(".xml")?;
                device(Some(mac_exact(stem)?))
            }
            Model::Polycom => {
                if let Some(stem) = file.strip_suffix("-phone.cfg") {
                    return device(Some(mac_exact(stem)?));
                }
                let stem = file.strip_suffix(".cfg")?;
                if stem == "000000000000" {
                    return common();
                }
                Some(FileRequest {
                    kind: FileKind::Common,
                    mac: Some(mac_exact(stem)?),
                })
            }
            Model::Linphone => matches!(file, "" | "linphone.xml")
                .then(|| FileKind::Device)
                .map(|kind| FileRequest { kind, mac: None }),
            Model::Generic => matches!(file, "" | "phone.cfg")
                .then(|| FileKind::Device)
                .map(|kind| FileRequest { kind, mac: None }),
        }
    }

    /// The Content-Type of its files.
    pub fn content_type(self, kind: &FileKind) -> &'static str {
        match (kind, self) {
            (FileKind::CaCert, _) => "application/x-pem-file",
            (_, Model::Snom | Model::Grandstream | Model::Polycom | Model::Linphone) => {
                "application/xml; charset=utf-8"
            }
            _ => "text/plain; charset=utf-8",
        }
    }

    /// How to point this model at `url` (the provisioning URL, ending in `/`), for the CLI and the console.
    pub fn instructions(self, url: &str, mac: Option<&str>) -> Vec<String> {
        let file = self.device_file(mac);
        match self {
            Model::Yealink => vec![
                format!(
                    "Web UI: Settings > Auto Provision > Server URL = {url}, then \"Autoprovision Now\"."
                ),
                format!(
                    "DHCP option 66 (or 160 on firmware that prefers it) = {url}; the phone fetches \
                     y0000000000XX.cfg, then {file}."
                ),
            ],
            Model::Snom => vec![
                format!(
                    "Web UI: Setup > Advanced > Update > Setting URL = {url}{file}, Update policy = \
                     \"Update automatically\", then reboot."
                ),
                format!(
                    "DHCP option 66 = {url} (the phone asks for snom<model>.xml, then {file})."
                ),
            ],
            Model::Grandstream => vec![
                format!(
                    "Web UI: Maintenance > Upgrade and Provisioning > Config Via = HTTPS, Config Server Path = \
                     {} ; then \"Provision\".",
                    url.trim_start_matches("https://")
                ),
                format!("DHCP option 66 = {url} (the phone asks for {file})."),
            ],
            Model::Polycom => vec![
                format!(
                    "Web UI: Settings > Provisioning Server: Server Type = HTTPS, Server Address = {url}; \
                     then reboot."
                ),
                format!(
                    "DHCP option 160 (Poly's, preferred) or 66 = {url} (the phone asks for {}.cfg or \
                     000000000000.cfg, then {file}).",
                    mac.unwrap_or("<mac>")
                ),
            ],
            Model::Linphone => vec![format!(
                "Linphone: Settings > Advanced > Remote provisioning URL = {url}{file} (or `linphonec -c` \
                     with [misc] config-uri={url}{file}); the first fetch replaces the extension's password."
            )],
            Model::Generic => vec![format!(
                "Fetch {url}{file} once (e.g. `curl -O {url}{file}`) and copy its settings into the phone; \
                 the fetch replaces the extension's password."
            )],
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A MAC as an administrator types it (`00:15:65:AA:BB:CC`, `0015.65aa.bbcc`, `001565aabbcc`, with `-` too),
/// normalised to 12 lowercase hex digits.
pub fn normalize_mac(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    mac_exact(&hex)
}

/// Exactly 12 hex digits (either case), lowercased; the all-zero and broadcast addresses are not a phone's.
fn mac_exact(s: &str) -> Option<String> {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let m = s.to_ascii_lowercase();
    (m != "000000000000" && m != "ffffffffffff").then_some(m)
}

/// The MAC a phone states in its User-Agent, if any: Yealink ends it with `00:15:65:aa:bb:cc`, Grandstream with
/// `DevId 000b82aabbcc`, Snom puts it in the parenthesised comment. The first word that is a MAC.
pub fn user_agent_mac(ua: &str) -> Option<String> {
    ua.split(|c: char| c.is_whitespace() || matches!(c, ';' | '(' | ')' | ',' | '/'))
        .filter(|w| w.len() == 12 || w.len() == 17)
        .find_map(|w| {
            let sep = w.len() == 17;
            if sep {
                let b = w.as_bytes();
                let ok = (2..17).step_by(3).all(|i| matches!(b[i], b':' | b'-'));
                if !ok {
                    return None;
                }
            }
            let hex: String = w.chars().filter(|c| !matches!(c, ':' | '-')).collect();
            // A 12-character word of only digits is more likely a version or a serial than a MAC.
            if !sep && hex.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            mac_exact(&hex)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_normalise_from_every_notation() {
        for s in [
            "00:15:65:AA:BB:CC",
            "0015.65aa.bbcc",
            "00-15-65-aa-bb-cc",
            "001565AABBCC",
        ] {
            assert_eq!(normalize_mac(s).as_deref(), Some("001565aabbcc"), "{s}");
        }
        for s in [
            "",
            "00:15:65:aa:bb",
            "00:15:65:aa:bb:cg",
            "000000000000",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert_eq!(normalize_mac(s), None, "{s}");
        }
    }

    #[test]
    fn user_agents_give_their_mac() {
        assert_eq!(
            user_agent_mac("Yealink SIP-T46S 66.86.0.15 00:15:65:aa:bb:cc").as_deref(),
            Some("001565aabbcc")
        );
        assert_eq!(
            user_agent_mac("Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82aabbcc")
                .as_deref(),
            Some("000b82aabbcc")
        );
        assert_eq!(
            user_agent_mac("Mozilla/4.0 (compatible; snomD735-SIP 10.1.33.33; 000413AABBCC)")
                .as_deref(),
            Some("000413aabbcc")
        );
        assert_eq!(
            user_agent_mac("FileTransport PolycomVVX-VVX_411-UA/6.3.0.14929"),
            None
        );
        assert_eq!(user_agent_mac("curl/8.0 build 202401011200"), None);
    }

    #[test]
    fn file_names_follow_each_vendor() {
        let y = Model::Yealink;
        assert_eq!(
            y.classify("y000000000044.cfg").unwrap().kind,
            FileKind::Common
        );
        let d = y.classify("001565aabbcc.cfg").unwrap();
        assert_eq!(
            (d.kind, d.mac.as_deref()),
            (FileKind::Device, Some("001565aabbcc"))
        );
        assert_eq!(y.classify("../etc/passwd"), None);
        assert_eq!(y.classify("001565aabbcc.xml"), None);
        let s = Model::Snom;
        assert_eq!(s.classify("snomD735.xml").unwrap().kind, FileKind::Common);
        assert_eq!(
            s.classify("000413AABBCC.xml").unwrap().mac.as_deref(),
            Some("000413aabbcc")
        );
        let g = Model::Grandstream;
        assert_eq!(
            g.classify("cfg000b82aabbcc.xml").unwrap().kind,
            FileKind::Device
        );
        assert_eq!(g.classify("cfg000b82aabbcc"), None);
        let p = Model::Polycom;
        assert_eq!(
            p.classify("000000000000.cfg").unwrap().kind,
            FileKind::Common
        );
        assert_eq!(
            p.classify("0004f2aabbcc.cfg").unwrap().kind,
            FileKind::Common
        );
        assert_eq!(
            p.classify("0004f2aabbcc-phone.cfg").unwrap().kind,
            FileKind::Device
        );
        assert_eq!(p.classify("0004f2aabbcc-directory.xml"), None);
        assert_eq!(Model::Linphone.classify("").unwrap().kind, FileKind::Device);
        assert_eq!(Model::Linphone.classify("linphone.xml").unwrap().mac, None);
        assert_eq!(
            Model::Generic.classify("ca.pem").unwrap().kind,
            FileKind::CaCert
        );
        for m in ALL_MODELS {
            let f = m.device_file(Some("001565aabbcc"));
            assert_eq!(m.classify(&f).unwrap().kind, FileKind::Device, "{m}: {f}");
        }
    }

    #[test]
    fn models_parse_by_vendor_or_series() {
        assert_eq!(Model::parse("Yealink"), Some(Model::Yealink));
        assert_eq!(Model::parse("vvx"), Some(Model::Polycom));
        assert_eq!(Model::parse("GRP"), Some(Model::Grandstream));
        assert_eq!(Model::parse("cisco"), None);
        for m in ALL_MODELS {
            assert_eq!(Model::parse(m.as_str()), Some(m));
        }
    }
}
