//! Each vendor's configuration file, from one [`Settings`]. Pure string building; every value written into XML
//! is escaped, and values written into key = value files are single-line.

use super::model::{FileKind, Model};

/// Everything a phone's file says.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub model: Model,
    pub mac: Option<&'a str>,
    /// The provisioning URL this file was fetched under, ending in `/`.
    pub base_url: &'a str,
    pub extension: &'a str,
    pub display_name: &'a str,
    pub auth_id: &'a str,
    /// Only in the one response per window that carries the credentials.
    pub secrets: Option<Secrets<'a>>,
    /// The SIP domain (the AOR's host) and the digest realm.
    pub domain: &'a str,
    pub realm: &'a str,
    /// Where the phone sends SIP: the host it provisioned from and the SIP port for `transport`.
    pub server_host: &'a str,
    pub server_port: u16,
    pub tls: bool,
    /// SRTP mandatory (the extension allows SRTP and the transport is TLS).
    pub srtp: bool,
    pub voicemail_number: &'a str,
    /// IANA name, and its offset from UTC now, in minutes.
    pub timezone: &'a str,
    pub utc_offset_minutes: i32,
    /// The server's certificate chain (PEM): trusted by the phone, so a self-signed Palisade verifies.
    pub ca_pem: &'a str,
}

#[derive(Debug, Clone)]
pub struct Secrets<'a> {
    pub sip_password: &'a str,
    pub admin_password: &'a str,
}

/// The file of `kind` for the phone.
pub fn render(s: &Settings<'_>, kind: &FileKind) -> String {
    match kind {
        FileKind::CaCert => s.ca_pem.to_string(),
        FileKind::Common => match s.model {
            Model::Yealink => yealink_common(s),
            Model::Snom => snom_list(s),
            Model::Grandstream => grandstream(s, false),
            Model::Polycom => polycom_master(s),
            Model::Linphone => linphone(s),
            Model::Generic => generic(s),
        },
        FileKind::Device => match s.model {
            Model::Yealink => yealink_device(s),
            Model::Snom => snom_settings(s),
            Model::Grandstream => grandstream(s, true),
            Model::Polycom => polycom_phone(s),
            Model::Linphone => linphone(s),
            Model::Generic => generic(s),
        },
    }
}

/// `<`, `>`, `&`, `"`, `'` escaped for XML text and attributes.
pub fn xml_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// A value for a key = value line: control characters (line breaks) dropped.
fn line(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

fn transport_param(s: &Settings<'_>) -> &'static str {
    if s.tls { "tls" } else { "tcp" }
}

/// `+1`, `-5`, `+5.5` hours: the form Yealink's `local_time.time_zone` takes.
fn offset_hours(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    if m.is_multiple_of(60) {
        format!("{sign}{}", m / 60)
    } else {
        format!("{sign}{}.{}", m / 60, (m % 60) * 10 / 60)
    }
}

fn yealink_common(s: &Settings<'_>) -> String {
    format!(
        "#!version:1.0.0.1\n\
         ## Palisade: settings common to every Yealink phone (no secrets). The phone's own file follows.\n\
         local_time.time_zone = {tz}\n\
         local_time.time_zone_name = {name}\n\
         local_time.summer_time = 2\n\
         security.trust_certificates = 1\n\
         security.only_trust_uploaded_certificates = 0\n\
         trusted_certificates.url = {base}ca.pem\n",
        tz = offset_hours(s.utc_offset_minutes),
        name = line(s.timezone),
        base = line(s.base_url),
    )
}

fn yealink_device(s: &Settings<'_>) -> String {
    let mut out = format!(
        "#!version:1.0.0.1\n\
         ## Palisade: extension {ext}\n\
         account.1.enable = 1\n\
         account.1.label = {label}\n\
         account.1.display_name = {label}\n\
         account.1.user_name = {ext}\n\
         account.1.auth_name = {auth}\n\
         account.1.sip_server.1.address = {host}\n\
         account.1.sip_server.1.port = {port}\n\
         account.1.sip_server.1.transport_type = {transport}\n\
         account.1.srtp_encryption = {srtp}\n\
         account.1.dtmf.type = 1\n\
         account.1.dtmf.dtmf_payload = 101\n\
         account.1.subscribe_mwi = 1\n\
         account.1.subscribe_mwi_to_vm = 1\n\
         voice_mail.number.1 = {vm}\n\
         local_time.time_zone = {tz}\n\
         local_time.time_zone_name = {tzname}\n\
         security.trust_certificates = 1\n\
         trusted_certificates.url = {base}ca.pem\n",
        ext = line(s.extension),
        label = line(s.display_name),
        auth = line(s.auth_id),
        host = line(s.server_host),
        port = s.server_port,
        transport = if s.tls { 2 } else { 1 },
        srtp = if s.srtp { 2 } else { 0 },
        vm = line(s.voicemail_number),
        tz = offset_hours(s.utc_offset_minutes),
        tzname = line(s.timezone),
        base = line(s.base_url),
    );
    if let Some(secrets) = &s.secrets {
        out.push_str(&format!(
            "account.1.password = {}\nstatic.security.user_password = admin:{}\n",
            line(secrets.sip_password),
            line(secrets.admin_password)
        ));
    }
    out
}

fn snom_list(s: &Settings<'_>) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<setting-files>\n  <file url=\"{}\"/>\n</setting-files>\n",
        xml_escape(&format!("{}{}", s.base_url, s.model.device_file(s.mac)))
    )
}

fn snom_settings(s: &Settings<'_>) -> String {
    let mut settings = vec![
        ("user_active", "on".to_string()),
        ("user_realname", s.display_name.to_string()),
        ("user_name", s.extension.to_string()),
        ("user_pname", s.auth_id.to_string()),
        ("user_host", s.domain.to_string()),
        (
            "user_outbound",
            format!(
                "{}:{};transport={}",
                s.server_host,
                s.server_port,
                transport_param(s)
            ),
        ),
        ("user_srtp", if s.srtp { "on" } else { "off" }.into()),
        ("user_savp", if s.srtp { "mandatory" } else { "off" }.into()),
        ("user_dtmf_info", "off".into()),
        ("user_mailbox", s.voicemail_number.to_string()),
        ("user_subscription_expiry", "3600".into()),
    ];
    if let Some(secrets) = &s.secrets {
        settings.push(("user_pass", secrets.sip_password.to_string()));
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<settings>\n  <phone-settings e=\"2\">\n",
    );
    for (k, v) in settings {
        out.push_str(&format!(
            "    <{k} idx=\"1\" perm=\"R\">{}</{k}>\n",
            xml_escape(&v)
        ));
    }
    out.push_str("    <dtmf_payload_type perm=\"R\">101</dtmf_payload_type>\n");
    out.push_str(&format!(
        "    <timezone_name perm=\"R\">{}</timezone_name>\n",
        xml_escape(s.timezone)
    ));
    if let Some(secrets) = &s.secrets {
        out.push_str(&format!(
            "    <admin_mode_password perm=\"R\">{0}</admin_mode_password>\n    <http_user perm=\"R\">admin</http_user>\n    <http_pass perm=\"R\">{0}</http_pass>\n",
            xml_escape(secrets.admin_password)
        ));
    }
    out.push_str("  </phone-settings>\n  <certificates>\n");
    out.push_str(&format!(
        "    <certificate type=\"trusted\">{}</certificate>\n",
        xml_escape(s.ca_pem)
    ));
    out.push_str("  </certificates>\n</settings>\n");
    out
}

fn grandstream(s: &Settings<'_>, device: bool) -> String {
    // P-values: P271 account active, P270 name, P47 SIP server, P35 user ID, P36 auth ID, P34 password,
    // P3 display name, P130 transport (2 = TLS, 1 = TCP), P183 SRTP (2 = enabled and forced), P79 DTMF payload,
    // P850-P852 DTMF in audio / RFC 2833 / SIP INFO, P33 voicemail, P99 MWI subscribe, P64 time zone, P2 admin.
    // The trusted CA's P-value differs between firmware lines: it is not set here (docs/provisioning.md says
    // how to load ca.pem, or use a publicly trusted certificate).
    let mut p: Vec<(&str, String)> = vec![
        ("P271", "1".into()),
        ("P270", s.display_name.to_string()),
        ("P47", format!("{}:{}", s.server_host, s.server_port)),
        ("P35", s.extension.to_string()),
        ("P36", s.auth_id.to_string()),
        ("P3", s.display_name.to_string()),
        ("P130", if s.tls { "2" } else { "1" }.into()),
        ("P183", if s.srtp { "2" } else { "0" }.into()),
        ("P79", "101".into()),
        ("P850", "0".into()),
        ("P851", "1".into()),
        ("P852", "0".into()),
        ("P33", s.voicemail_number.to_string()),
        ("P99", "1".into()),
        ("P64", s.timezone.to_string()),
    ];
    if device && let Some(secrets) = &s.secrets {
        p.push(("P34", secrets.sip_password.to_string()));
        p.push(("P2", secrets.admin_password.to_string()));
    }
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gs_provision version=\"1\">\n");
    if let Some(mac) = s.mac {
        out.push_str(&format!("  <mac>{}</mac>\n", xml_escape(mac)));
    }
    out.push_str("  <config version=\"1\">\n");
    for (k, v) in p {
        out.push_str(&format!("    <{k}>{}</{k}>\n", xml_escape(&v)));
    }
    out.push_str("  </config>\n</gs_provision>\n");
    out
}

fn polycom_master(s: &Settings<'_>) -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"yes\"?>\n\
         <APPLICATION APP_FILE_PATH=\"sip.ld\" CONFIG_FILES=\"{}\" MISC_FILES=\"\" LOG_FILE_DIRECTORY=\"\" \
         OVERRIDES_DIRECTORY=\"\" CONTACTS_DIRECTORY=\"\" LICENSE_DIRECTORY=\"\"/>\n",
        xml_escape(&s.model.device_file(s.mac))
    )
}

fn polycom_phone(s: &Settings<'_>) -> String {
    let mut a: Vec<(&str, String)> = vec![
        ("reg.1.displayName", s.display_name.to_string()),
        ("reg.1.label", s.display_name.to_string()),
        ("reg.1.address", format!("{}@{}", s.extension, s.domain)),
        ("reg.1.auth.userId", s.auth_id.to_string()),
        ("reg.1.server.1.address", s.server_host.to_string()),
        ("reg.1.server.1.port", s.server_port.to_string()),
        (
            "reg.1.server.1.transport",
            if s.tls { "TLS" } else { "TCPOnly" }.into(),
        ),
        ("reg.1.srtp.enable", u8::from(s.srtp).to_string()),
        ("reg.1.srtp.offer", u8::from(s.srtp).to_string()),
        ("reg.1.srtp.require", u8::from(s.srtp).to_string()),
        ("sec.srtp.enable", u8::from(s.srtp).to_string()),
        ("sec.srtp.offer", u8::from(s.srtp).to_string()),
        ("sec.srtp.require", u8::from(s.srtp).to_string()),
        ("tone.dtmf.rfc2833Control", "1".into()),
        ("tone.dtmf.rfc2833Payload", "101".into()),
        (
            "msg.mwi.1.subscribe",
            format!("{}@{}", s.extension, s.domain),
        ),
        ("msg.mwi.1.callBackMode", "contact".into()),
        ("msg.mwi.1.callBack", s.voicemail_number.to_string()),
        (
            "tcpIpApp.sntp.gmtOffset",
            (s.utc_offset_minutes * 60).to_string(),
        ),
        ("device.set", "1".into()),
        ("device.sec.TLS.customCaCert1.set", "1".into()),
        ("device.sec.TLS.customCaCert1", s.ca_pem.to_string()),
    ];
    if let Some(secrets) = &s.secrets {
        a.push(("reg.1.auth.password", secrets.sip_password.to_string()));
        a.push(("device.auth.localAdminPassword.set", "1".into()));
        a.push((
            "device.auth.localAdminPassword",
            secrets.admin_password.to_string(),
        ));
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<polycomConfig>\n  <palisade\n",
    );
    for (k, v) in a {
        out.push_str(&format!("    {k}=\"{}\"\n", xml_escape(&v)));
    }
    out.push_str("  />\n</polycomConfig>\n");
    out
}

/// Linphone's remote provisioning (lpconfig XML). The certificate is not in it: Linphone 5.1 reads trusted
/// certificates only from a file (`[sip] root_ca`), and it must trust the server before its first HTTPS fetch
/// anyway; SIP over TLS then uses the same certificate, so the same trust covers it.
fn linphone(s: &Settings<'_>) -> String {
    let transport = transport_param(s);
    let identity = format!("\"{}\" <sip:{}@{}>", s.display_name, s.extension, s.domain);
    let proxy = format!(
        "<sip:{}:{};transport={transport}>",
        s.server_host, s.server_port
    );
    let mut sections: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "sip",
            vec![
                ("default_proxy", "0".into()),
                (
                    "media_encryption",
                    if s.srtp { "srtp" } else { "none" }.into(),
                ),
                ("media_encryption_mandatory", u8::from(s.srtp).to_string()),
                ("use_rfc2833", "1".into()),
                ("use_info", "0".into()),
                ("verify_server_certs", "1".into()),
                ("verify_server_cn", "1".into()),
            ],
        ),
        (
            "proxy_0",
            vec![
                ("reg_proxy", proxy.clone()),
                ("reg_route", proxy),
                ("reg_identity", identity),
                ("realm", s.realm.to_string()),
                ("reg_expires", "600".into()),
                ("reg_sendregister", "1".into()),
                ("publish", "0".into()),
                ("dial_escape_plus", "0".into()),
            ],
        ),
        // RFC 4733 (ex-2833) telephone events, never SIP INFO.
        ("rtp", vec![("audio_jitt_comp", "60".into())]),
        // Palisade relays audio: a video stream in the offer would only be refused.
        (
            "video",
            vec![
                ("automatically_initiate", "0".into()),
                ("automatically_accept", "0".into()),
                ("capture", "0".into()),
                ("display", "0".into()),
            ],
        ),
        // Linphone 5.1 has no voicemail number or MWI subscription setting: for the user to read, and for
        // `palisade ext set --mwi-unsolicited on`, which lights its indicator without a subscription.
        (
            "palisade",
            vec![
                ("voicemail_number", s.voicemail_number.to_string()),
                ("timezone", s.timezone.to_string()),
            ],
        ),
    ];
    let mut auth = vec![
        ("username", s.extension.to_string()),
        ("userid", s.auth_id.to_string()),
        ("realm", s.realm.to_string()),
        ("domain", s.domain.to_string()),
    ];
    if let Some(secrets) = &s.secrets {
        auth.push(("passwd", secrets.sip_password.to_string()));
    }
    sections.push(("auth_info_0", auth));
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config xmlns=\"http://www.linphone.org/xsds/lpconfig.xsd\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.linphone.org/xsds/lpconfig.xsd lpconfig.xsd\">\n",
    );
    for (name, entries) in sections {
        out.push_str(&format!("  <section name=\"{name}\">\n"));
        for (k, v) in entries {
            out.push_str(&format!(
                "    <entry name=\"{k}\" overwrite=\"true\">{}</entry>\n",
                xml_escape(&v)
            ));
        }
        out.push_str("  </section>\n");
    }
    out.push_str("</config>\n");
    out
}

fn generic(s: &Settings<'_>) -> String {
    let mut out = format!(
        "# Palisade: settings for extension {ext}; copy them into the phone.\n\
         sip.domain = {domain}\n\
         sip.server = {host}\n\
         sip.port = {port}\n\
         sip.transport = {transport}\n\
         sip.user = {ext}\n\
         sip.auth_id = {auth}\n\
         sip.realm = {realm}\n\
         sip.display_name = {name}\n\
         media.srtp = {srtp}\n\
         dtmf.mode = rfc4733\n\
         dtmf.payload = 101\n\
         voicemail.number = {vm}\n\
         mwi.subscribe = yes\n\
         time.zone = {tz}\n\
         tls.ca_url = {base}ca.pem\n",
        ext = line(s.extension),
        domain = line(s.domain),
        host = line(s.server_host),
        port = s.server_port,
        transport = transport_param(s),
        auth = line(s.auth_id),
        realm = line(s.realm),
        name = line(s.display_name),
        srtp = if s.srtp { "mandatory" } else { "off" },
        vm = line(s.voicemail_number),
        tz = line(s.timezone),
        base = line(s.base_url),
    );
    if let Some(secrets) = &s.secrets {
        out.push_str(&format!(
            "sip.password = {}\nphone.admin_password = {}\n",
            line(secrets.sip_password),
            line(secrets.admin_password)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prov::model::ALL_MODELS;

    fn settings(model: Model, secrets: bool) -> Settings<'static> {
        Settings {
            model,
            mac: model.needs_mac().then_some("001565aabbcc"),
            base_url: "https://pbx.lan:8443/prov/TOKEN/",
            extension: "101",
            display_name: "Front <desk> & \"co\"",
            auth_id: "a7x9",
            secrets: secrets.then_some(Secrets {
                sip_password: "Pw1<&>\"x",
                admin_password: "Adm1n",
            }),
            domain: "pbx.lan",
            realm: "pbx.lan",
            server_host: "pbx.lan",
            server_port: 5061,
            tls: true,
            srtp: true,
            voicemail_number: "999",
            timezone: "Europe/Berlin",
            utc_offset_minutes: 60,
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        }
    }

    #[test]
    fn only_the_credentials_response_holds_secrets() {
        for m in ALL_MODELS {
            for kind in [FileKind::Common, FileKind::Device] {
                let without = render(&settings(m, false), &kind);
                assert!(
                    !without.contains("Pw1") && !without.contains("Adm1n"),
                    "{m}"
                );
            }
            let with = render(&settings(m, true), &FileKind::Device);
            assert!(
                with.contains("Pw1") || with.contains("Pw1&lt;&amp;&gt;&quot;x"),
                "{m}: {with}"
            );
        }
    }

    #[test]
    fn xml_values_are_escaped() {
        let out = render(&settings(Model::Snom, true), &FileKind::Device);
        assert!(out.contains("Front &lt;desk&gt; &amp; &quot;co&quot;"));
        assert!(!out.contains("<desk>"));
    }

    #[test]
    fn offsets_read_as_yealink_wants() {
        assert_eq!(offset_hours(60), "+1");
        assert_eq!(offset_hours(-300), "-5");
        assert_eq!(offset_hours(330), "+5.5");
        assert_eq!(offset_hours(0), "+0");
    }
}
