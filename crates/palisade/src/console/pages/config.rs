//! Configuration pages: the security checklist and settings, the blacklist and whitelist, trunks and routing,
//! voicemail; and the certificate and trunk views the API shares.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Form as AxForm, Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::monitor::sess;
use super::{
    Action, Cell, Field, Form, Nav, Row, Table, TablePage, actor, enc, may_change, or_dash, render,
    session,
};
use crate::admin::accounts;
use crate::admin::lists::{self, List, RuleView};
use crate::admin::time::{format_ms, now_ms};
use crate::console::api::{ApiError, message_id};
use crate::console::{Peer, State};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/security", get(security).post(security_set))
        .route("/blacklist", get(blacklist).post(blacklist_add))
        .route("/blacklist/remove", post(blacklist_remove))
        .route("/whitelist", get(whitelist).post(whitelist_add))
        .route("/whitelist/remove", post(whitelist_remove))
        .route("/voicemail", get(voicemail))
        .route("/voicemail/{number}/{id}", get(voicemail_play))
        .route("/voicemail/{number}/{id}/delete", post(voicemail_delete))
}

/// The certificate being served now, as JSON.
pub fn cert_json(s: &State) -> Result<Value, ApiError> {
    let key = s.cert.current();
    let Some(leaf) = key.cert.first() else {
        return Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no certificate loaded".into(),
        ));
    };
    let info = crate::tls::describe(leaf)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    let now = now_ms() / 1000;
    let mut v = json!(info);
    v["not_before"] = json!(format_ms(info.not_before * 1000));
    v["not_after"] = json!(format_ms(info.not_after * 1000));
    v["days_left"] = json!(info.days_left(now));
    v["cert_file"] = json!(s.cert.cert_path().display().to_string());
    v["key_file"] = json!(s.cert.key_path().display().to_string());
    Ok(v)
}

/// A trunk as shown: no password, with its registration state.
#[derive(Debug, Serialize)]
pub struct TrunkView {
    pub name: String,
    pub host: String,
    pub port: i64,
    pub transport: String,
    pub username: Option<String>,
    pub register: bool,
    pub caller_id: Option<String>,
    pub srtp: String,
    /// registered, registering, failed, unregistering; `null` when not registering.
    pub state: Option<String>,
    pub last_error: Option<String>,
}

pub async fn trunk_views(s: &State) -> Result<Vec<TrunkView>, ApiError> {
    let rows = s.db.list_trunk_rows().await.map_err(anyhow::Error::new)?;
    let status = s.db.list_trunk_status().await.map_err(anyhow::Error::new)?;
    Ok(rows
        .into_iter()
        .map(|t| {
            let st = status.iter().find(|x| x.trunk == t.name);
            TrunkView {
                state: st.map(|x| x.state.clone()),
                last_error: st.and_then(|x| x.last_error.clone()),
                srtp: t.srtp.to_string(),
                name: t.name,
                host: t.host,
                port: t.port,
                transport: t.transport,
                username: t.username,
                register: t.register,
                caller_id: t.caller_id,
            }
        })
        .collect())
}

// ---------------------------------------------------------------- security

struct Check {
    step: String,
    state: &'static str,
    detail: String,
    fix_url: String,
    fix_label: String,
}

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage {
    title: String,
    nav: Nav,
    checks: Vec<Check>,
    settings: Vec<(String, String, String, String, String)>,
}

fn check(step: &str, ok: bool, detail: String, fix_url: &str, fix_label: &str) -> Check {
    Check {
        step: step.into(),
        state: if ok { "ok" } else { "warn" },
        detail,
        fix_url: fix_url.into(),
        fix_label: fix_label.into(),
    }
}

/// The eight hardening steps (README.md, docs/security.md) with the live state of each.
async fn checks(s: &State) -> anyhow::Result<Vec<Check>> {
    let db = &s.db;
    let exts = crate::admin::ext::list_views(db).await?;
    let total = exts.len();
    let algs = db.digest_algorithms().await?.join(", ");
    let len = db.credential_length().await?;
    let mailboxes = db.list_mailboxes().await?;
    let no_pin = mailboxes
        .iter()
        .filter(|m| m.enabled && m.pin_hash.is_none())
        .count();
    let policy = db.policy_settings().await?;
    let outside = exts.iter().filter(|e| !e.lan_only).count();
    let tls = exts.iter().filter(|e| e.require_tls).count();
    let srtp_enforced = exts
        .iter()
        .filter(|e| e.srtp.as_str() == "enforced")
        .count();
    let guard = db.guard_settings().await?;
    let failures = guard
        .iter()
        .find(|(k, _)| k == "auth_failures_before_ban")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| guard::config::AUTH_FAILURES_BEFORE_BAN.default.to_string());
    let now = now_ms();
    let rules = db.list_ip_rules().await?;
    let blocked = rules
        .iter()
        .filter(|r| r.action == "block" && r.is_live(now))
        .count();
    let auto = rules
        .iter()
        .filter(|r| r.action == "block" && r.is_live(now) && r.is_auto())
        .count();
    let broad_allow: Vec<&str> = rules
        .iter()
        .filter(|r| r.action == "allow" && r.is_live(now))
        .filter(|r| {
            r.net.ends_with("/0")
                || r.net
                    .split('/')
                    .nth(1)
                    .and_then(|p| p.parse::<u8>().ok())
                    .is_some_and(|p| p < 8)
        })
        .map(|r| r.net.as_str())
        .collect();
    let cert = cert_json(s).ok();
    let days_left = cert
        .as_ref()
        .and_then(|c| c["days_left"].as_i64())
        .unwrap_or(0);
    Ok(vec![
        check(
            "1. SIP authentication",
            len >= 10,
            format!(
                "{total} extensions with random auth IDs and passwords of {len} characters; digest {algs}."
            ),
            "/security",
            "Credential length and digest algorithms",
        ),
        check(
            "2. Voicemail PIN",
            no_pin == 0,
            if no_pin == 0 {
                "Every enabled mailbox has a PIN (random by default; trivial PINs are refused when set).".into()
            } else {
                format!("voicemail PINs: {no_pin} enabled mailboxes have no PIN")
            },
            "/extensions",
            "Give a mailbox a PIN",
        ),
        check(
            "3. Extension security settings",
            outside == 0 || total == 0,
            format!(
                "{outside} of {total} extensions may register from outside the LAN ({}).",
                if policy.local_networks.is_empty() {
                    "no local networks configured".to_string()
                } else {
                    policy.local_networks.join(", ")
                }
            ),
            "/extensions",
            "Restrict extensions",
        ),
        check(
            "4. Allowed country codes",
            !policy.country_code.is_empty(),
            if policy.country_code.is_empty() {
                "The home country is not set: international calls cannot be checked (`palisade policy set country_code …`).".into()
            } else {
                format!(
                    "Home country +{}; also allowed: {}.",
                    policy.country_code,
                    if policy.allowed_country_codes.is_empty() {
                        "none".into()
                    } else {
                        policy.allowed_country_codes.join(", ")
                    }
                )
            },
            "/routing",
            "Countries and rules",
        ),
        check(
            "5. Secure SIP (TLS)",
            days_left > 14 && (total == 0 || tls == total),
            format!(
                "TLS required on {tls} of {total} extensions; the certificate is valid for {days_left} more days."
            ),
            "/settings",
            "Certificate",
        ),
        check(
            "6. SRTP",
            total == 0 || srtp_enforced == total,
            format!("SRTP enforced on {srtp_enforced} of {total} extensions."),
            "/extensions",
            "Set SRTP per extension",
        ),
        check(
            "7. Anti-hacking",
            true,
            format!(
                "A source is blacklisted after {failures} failed authentications; {auto} automatic bans in force."
            ),
            "/security",
            "Anti-hacking settings",
        ),
        check(
            "8. IP blacklist / whitelist",
            broad_allow.is_empty(),
            if broad_allow.is_empty() {
                format!("{blocked} blocked entries in force; no broad whitelist entries.")
            } else {
                format!(
                    "{blocked} blocked entries; broad whitelist entries exempt much of the internet: {}",
                    broad_allow.join(", ")
                )
            },
            "/blacklist",
            "Blacklist and whitelist",
        ),
    ])
}

async fn security_page(s: &State, sess: &crate::console::sessions::Session, nav: Nav) -> Response {
    let checks = match checks(s).await {
        Ok(c) => c,
        Err(e) => return super::error_page("Security", nav, format!("{e:#}"), "/"),
    };
    let v = crate::admin::security::settings_json(&s.db, &s.data_dir)
        .await
        .unwrap_or_default();
    let mut settings = Vec::new();
    for key in ["digest_algorithms", "credential_length", "domain"] {
        settings.push((
            key.to_string(),
            v[key].to_string().trim_matches('"').to_string(),
            String::new(),
            String::new(),
            String::new(),
        ));
    }
    let limits =
        |group: &str, values: &Value, out: &mut Vec<(String, String, String, String, String)>| {
            if let Some(m) = v[group].as_object() {
                for (k, l) in m {
                    out.push((
                        k.clone(),
                        values[k].to_string(),
                        l["default"].to_string(),
                        format!("{} to {}", l["min"], l["max"]),
                        l["about"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        };
    limits("guard_limits", &v, &mut settings);
    limits("console_limits", &v["console"], &mut settings);
    if let Some(m) = v["events"].as_object() {
        for (k, val) in m {
            settings.push((
                k.clone(),
                val.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ));
        }
    }
    let _ = sess;
    render(&SecurityPage {
        title: "Security".into(),
        nav,
        checks,
        settings,
    })
}

async fn security(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "security");
    security_page(&s, &sess, nav).await
}

#[derive(Deserialize)]
struct SettingForm {
    csrf: String,
    key: String,
    value: String,
}

async fn security_set(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<SettingForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, "security");
    let before = s.db.get_setting(&f.key).await.ok().flatten();
    let done = async {
        let value = store::settings::normalize(&f.key, &f.value)?;
        crate::admin::security::set(&s.db, &s.data_dir, &f.key, &value).await?;
        accounts::audit(
            &s.db,
            &actor(&sess, &peer),
            "security.set",
            Some(&f.key),
            before.map(|b| json!(b)),
            Some(json!(value)),
        )
        .await?;
        anyhow::Ok(value)
    }
    .await;
    match done {
        Ok(v) => nav.messages.push(format!("{} = {v}", f.key)),
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    security_page(&s, &sess, nav).await
}

// ---------------------------------------------------------------- blacklist, whitelist

#[derive(Deserialize)]
struct ListSearch {
    #[serde(default)]
    q: String,
}

async fn list_page(
    s: &State,
    sess: &crate::console::sessions::Session,
    list: List,
    mut nav: Nav,
    q: &str,
) -> Response {
    let now = now_ms();
    let admin = sess.role == store::admin::Role::Admin;
    let views: Vec<RuleView> = match s.db.list_ip_rules().await {
        Ok(r) => r
            .iter()
            .filter(|r| r.action == list.action() && r.is_live(now))
            .filter(|r| {
                q.is_empty()
                    || r.net.contains(q)
                    || r.note.as_deref().unwrap_or("").contains(q)
                    || r.reason.as_deref().unwrap_or("").contains(q)
            })
            .map(|r| RuleView::new(r, now))
            .collect(),
        Err(e) => {
            nav.errors.push(e.to_string());
            Vec::new()
        }
    };
    let name = list.name();
    let title = if list == List::Black {
        "Blacklist"
    } else {
        "Whitelist"
    };
    let mut page = TablePage::new(title, nav);
    page.intro.push(if list == List::Black {
        "Blocked sources are dropped before their packets are parsed. Automatic bans say why they happened.".into()
    } else {
        "Whitelisted sources are exempt from anti-hacking (failed-authentication and flood bans).".into()
    });
    page.forms.push(Form {
        method: "get",
        action: format!("/{name}"),
        heading: String::new(),
        submit: "Search".into(),
        fields: vec![Field::text("q", "Address, note or reason", q)],
    });
    if admin {
        page.forms.push(Form {
            method: "post",
            action: format!("/{name}"),
            heading: if list == List::Black {
                "Block an address or prefix".into()
            } else {
                "Exempt an address or prefix".into()
            },
            submit: "Add".into(),
            fields: vec![
                Field::text("prefix", "Address or CIDR", "").required(),
                Field::text("expires", "Expires after (seconds, empty: never)", ""),
                Field::text("note", "Note", ""),
            ],
        });
    }
    page.tables.push(Table {
        columns: vec!["Address", "Origin", "Why", "Note", "Expires", "Added"],
        empty: format!("The {name} is empty."),
        has_actions: admin,
        rows: views
            .into_iter()
            .map(|v| Row {
                actions: if admin {
                    vec![Action {
                        url: format!("/{name}/remove"),
                        label: if list == List::Black {
                            "Unban"
                        } else {
                            "Remove"
                        },
                        confirm: format!("Remove {} from the {name}?", v.net),
                        hidden: vec![("prefix", v.net.clone())],
                    }]
                } else {
                    Vec::new()
                },
                cells: vec![
                    Cell::from(v.net),
                    Cell::from(v.origin),
                    Cell::from(or_dash(v.reason.as_deref())),
                    Cell::from(or_dash(v.note.as_deref())),
                    Cell::from(v.expires_at.unwrap_or_else(|| "never".into())),
                    Cell::from(v.created_at),
                ],
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}

async fn blacklist(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<ListSearch>,
) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "blacklist");
    list_page(&s, &sess, List::Black, nav, q.q.trim()).await
}

async fn whitelist(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<ListSearch>,
) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "whitelist");
    list_page(&s, &sess, List::White, nav, q.q.trim()).await
}

#[derive(Deserialize)]
struct EntryForm {
    csrf: String,
    prefix: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    note: String,
}

async fn add(s: State, peer: Peer, headers: HeaderMap, f: EntryForm, list: List) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, list.name());
    let expires = Some(f.expires.trim()).filter(|e| !e.is_empty());
    let note = Some(f.note.trim().to_string()).filter(|n| !n.is_empty());
    match lists::add_entry(&s.db, list, f.prefix.trim(), expires, note).await {
        Ok((rule, replaced, warnings)) => {
            let now = now_ms();
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                &format!("{}.add", list.name()),
                Some(&rule.net),
                replaced.as_ref().map(|r| json!(RuleView::new(r, now))),
                Some(json!(RuleView::new(&rule, now))),
            )
            .await;
            nav.messages.push(format!(
                "Added {}. The running server applies it within a second.",
                rule.net
            ));
            nav.errors.extend(warnings);
        }
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    list_page(&s, &sess, list, nav, "").await
}

async fn remove(s: State, peer: Peer, headers: HeaderMap, f: EntryForm, list: List) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, list.name());
    match lists::remove_entry(&s.db, list, f.prefix.trim()).await {
        Ok(old) => {
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                &format!("{}.remove", list.name()),
                Some(&old.net),
                Some(json!(RuleView::new(&old, now_ms()))),
                None,
            )
            .await;
            nav.messages.push(format!(
                "Removed {} from the {}. The running server applies it within a second.",
                old.net,
                list.name()
            ));
        }
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    list_page(&s, &sess, list, nav, "").await
}

async fn blacklist_add(
    AxState(s): AxState<State>,
    Extension(p): Extension<Peer>,
    h: HeaderMap,
    AxForm(f): AxForm<EntryForm>,
) -> Response {
    add(s, p, h, f, List::Black).await
}
async fn whitelist_add(
    AxState(s): AxState<State>,
    Extension(p): Extension<Peer>,
    h: HeaderMap,
    AxForm(f): AxForm<EntryForm>,
) -> Response {
    add(s, p, h, f, List::White).await
}
async fn blacklist_remove(
    AxState(s): AxState<State>,
    Extension(p): Extension<Peer>,
    h: HeaderMap,
    AxForm(f): AxForm<EntryForm>,
) -> Response {
    remove(s, p, h, f, List::Black).await
}
async fn whitelist_remove(
    AxState(s): AxState<State>,
    Extension(p): Extension<Peer>,
    h: HeaderMap,
    AxForm(f): AxForm<EntryForm>,
) -> Response {
    remove(s, p, h, f, List::White).await
}

// ---------------------------------------------------------------- voicemail

#[derive(Deserialize)]
struct MailboxQuery {
    #[serde(default)]
    ext: String,
}

async fn voicemail_page(
    s: &State,
    sess: &crate::console::sessions::Session,
    mut nav: Nav,
    number: &str,
) -> Response {
    let admin = sess.role == store::admin::Role::Admin;
    let mut rows = Vec::new();
    if !number.is_empty() {
        match crate::admin::voicemail::message_views(&s.db, number).await {
            Ok(list) => {
                for m in list {
                    let url = format!("/voicemail/{}/{}", enc(number), m.id);
                    rows.push(Row {
                        cells: vec![
                            Cell {
                                text: format!("Message {} (WAV)", m.id),
                                link: Some(format!("{url}.wav")),
                                audio: Some(format!("{url}.wav")),
                            },
                            Cell::from(m.caller),
                            Cell::from(or_dash(m.caller_name.as_deref())),
                            Cell::from(m.received_at),
                            Cell::from(format!("{:.1}", m.duration_secs)),
                            Cell::from(if m.new { "yes" } else { "no" }),
                        ],
                        actions: if admin {
                            vec![Action {
                                url: format!("{url}/delete"),
                                label: "Delete",
                                confirm: format!("Delete message {}?", m.id),
                                hidden: Vec::new(),
                            }]
                        } else {
                            Vec::new()
                        },
                    });
                }
            }
            Err(e) => nav.errors.push(format!("{e:#}")),
        }
    }
    let mut page = TablePage::new("Voicemail", nav);
    page.forms.push(Form {
        method: "get",
        action: "/voicemail".into(),
        heading: String::new(),
        submit: "Show".into(),
        fields: vec![Field::text("ext", "Mailbox (extension)", number).required()],
    });
    page.tables.push(Table {
        heading: if number.is_empty() {
            String::new()
        } else {
            format!("Mailbox {number}")
        },
        columns: vec!["Message", "From", "Name", "Received", "Seconds", "New"],
        empty: if number.is_empty() {
            "Choose a mailbox.".into()
        } else {
            "No messages.".into()
        },
        has_actions: admin,
        rows,
        ..Table::default()
    });
    render(&page)
}

async fn voicemail(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<MailboxQuery>,
) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "voicemail");
    voicemail_page(&s, &sess, nav, q.ext.trim()).await
}

async fn voicemail_play(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Path((number, id)): Path<(String, String)>,
) -> Response {
    let _sess = sess!(s, headers);
    let id = match message_id(&id) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let root = crate::voicemail::files::root(&s.data_dir);
    match crate::admin::voicemail::message_wav(&s.db, &root, &number, id).await {
        Ok(bytes) => Response::builder()
            .header(header::CONTENT_TYPE, "audio/wav")
            .body(Body::from(bytes))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn voicemail_delete(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path((number, id)): Path<(String, String)>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, "voicemail");
    let root = crate::voicemail::files::root(&s.data_dir);
    let done = async {
        let id = message_id(&id).map_err(|e| anyhow::anyhow!(e.1))?;
        crate::admin::voicemail::delete(&s.db, &root, &number, id).await?;
        accounts::audit(
            &s.db,
            &actor(&sess, &peer),
            "voicemail.delete",
            Some(&format!("{number}/{id}")),
            None,
            None,
        )
        .await?;
        anyhow::Ok(id)
    }
    .await;
    match done {
        Ok(id) => nav.messages.push(format!("Deleted message {id}.")),
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    voicemail_page(&s, &sess, nav, &number).await
}
