//! The Trunks & rules page: the call policy, trunks (with registration state), outbound rules and DIDs, and the
//! forms that add, change and remove them through the same functions as `palisade trunk|rule|did|policy`.

use axum::Router;
use axum::extract::{Extension, Form as AxForm, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::monitor::sess;
use super::{
    Action, AuditedChange, Cell, Field, Form, Nav, Row, Table, TablePage, actor, audited_change,
    may_change, or_dash, render, session, trunk_views,
};
use crate::admin::accounts;
use crate::admin::policy::{self, RuleChange, RuleInput};
use crate::admin::trunks::{self, TrunkChange, TrunkInput};
use crate::console::{Peer, State};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/routing", get(routing))
        .route("/routing/policy", post(routing_policy_set))
        .route("/routing/trunks", post(trunk_add))
        .route("/routing/trunks/set", post(trunk_set))
        .route("/routing/trunks/remove", post(trunk_remove))
        .route("/routing/rules", post(rule_add))
        .route("/routing/rules/move", post(rule_move))
        .route("/routing/rules/remove", post(rule_remove))
        .route("/routing/dids", post(did_add))
        .route("/routing/dids/remove", post(did_remove))
}

/// A row's Remove button for admins (with a confirmation), nothing for viewers.
fn remove_action(
    admin: bool,
    url: &str,
    label: &'static str,
    name: &str,
    confirm: String,
) -> Vec<Action> {
    if !admin {
        return Vec::new();
    }
    vec![Action {
        url: url.into(),
        label,
        confirm,
        hidden: vec![("name", name.to_string())],
    }]
}

fn password_field(name: &'static str, label: &'static str) -> Field {
    Field {
        kind: "password",
        ..Field::text(name, label, "")
    }
}

/// The add and change forms for trunks, rules and DIDs.
fn change_forms(trunk_names: &[String]) -> Vec<Form> {
    let names: Vec<&str> = trunk_names.iter().map(String::as_str).collect();
    let mut forms = vec![Form {
        method: "post",
        action: "/routing/trunks".into(),
        heading: "Add a trunk".into(),
        submit: "Add trunk".into(),
        fields: vec![
            Field::text("name", "Name", "").required(),
            Field::text("host", "Provider host", "").required(),
            Field::text("port", "Port (default 5060, 5061 for tls)", ""),
            Field::select(
                "transport",
                "Transport",
                &store::trunks::TRANSPORTS.map(sip::Transport::name),
                sip::Transport::Udp.name(),
            ),
            Field::text("username", "Username", ""),
            password_field("password", "Password (never shown again)"),
            Field::checkbox("register", "Register to the provider", false),
            Field::text(
                "sources",
                "Provider source networks (comma list; empty: the host's addresses)",
                "",
            ),
            Field::text("caller_id", "Caller ID", ""),
            Field::select(
                "srtp",
                "SRTP",
                &["disabled", "enabled", "enforced"],
                "disabled",
            ),
        ],
    }];
    if !names.is_empty() {
        forms.push(Form {
            method: "post",
            action: "/routing/trunks/set".into(),
            heading: "Change a trunk (empty fields stay as they are)".into(),
            submit: "Change trunk".into(),
            fields: vec![
                Field::select("name", "Trunk", &names, names[0]),
                Field::text("host", "Provider host", ""),
                Field::text("port", "Port", ""),
                Field::text("username", "Username", ""),
                password_field("password", "New password"),
                Field::select("register", "Register", &["", "on", "off"], ""),
                Field::text(
                    "sources",
                    "Provider source networks (replaces the list)",
                    "",
                ),
                Field::text("caller_id", "Caller ID", ""),
                Field::text("max_calls", "Most concurrent calls (0: no cap)", ""),
            ],
        });
    }
    forms.push(Form {
        method: "post",
        action: "/routing/rules".into(),
        heading: "Add an outbound rule".into(),
        submit: "Add rule".into(),
        fields: vec![
            Field::text("name", "Name", "").required(),
            Field::text("prefix", "Dialled prefix (empty: any)", ""),
            Field::text("min_len", "Shortest number", ""),
            Field::text("max_len", "Longest number", ""),
            Field::text(
                "extensions",
                "Only for extensions (comma list; empty: all)",
                "",
            ),
            Field::text("strip", "Strip digits", ""),
            Field::text("prepend", "Prepend", ""),
            Field::text(
                "trunks",
                "Trunks in failover order (comma list)",
                names.join(","),
            )
            .required(),
            Field::text("position", "Position (empty: last)", ""),
        ],
    });
    forms.push(Form {
        method: "post",
        action: "/routing/rules/move".into(),
        heading: "Move an outbound rule".into(),
        submit: "Move".into(),
        fields: vec![
            Field::text("name", "Rule", "").required(),
            Field::text("position", "New position (1 is tried first)", "").required(),
        ],
    });
    if !names.is_empty() {
        forms.push(Form {
            method: "post",
            action: "/routing/dids".into(),
            heading: "Add an inbound number (DID)".into(),
            submit: "Add DID".into(),
            fields: vec![
                Field::text("number", "Number (e.g. +4930123456)", "").required(),
                Field::select("trunk", "Trunk", &names, names[0]),
                Field::text("extension", "Rings extension", "").required(),
            ],
        });
    }
    forms
}

/// An optional number typed in a form: empty is none.
fn number<T: std::str::FromStr>(field: &str, v: &str) -> anyhow::Result<Option<T>> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{field}: '{v}' is not a number"))
}

/// A comma list typed in a form.
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Empty is "not given".
fn given(v: String) -> Option<String> {
    Some(v).filter(|v| !v.trim().is_empty())
}

#[derive(Deserialize)]
struct TrunkForm {
    csrf: String,
    name: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    register: String,
    #[serde(default)]
    sources: String,
    #[serde(default)]
    caller_id: String,
    #[serde(default)]
    srtp: String,
    #[serde(default)]
    max_calls: String,
}

/// Runs a change of the routing page: CSRF and role checked, audited, the page shown with the outcome.
async fn change<F>(s: &State, peer: &Peer, headers: &HeaderMap, csrf: &str, run: F) -> Response
where
    F: AsyncFnOnce(&State) -> anyhow::Result<AuditedChange>,
{
    audited_change(s, peer, headers, csrf, "routing", routing_page, run).await
}

async fn trunk_add(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<TrunkForm>,
) -> Response {
    let csrf = f.csrf.clone();
    change(&s, &peer, &headers, &csrf, async move |s: &State| {
        let input = TrunkInput {
            name: f.name.trim().to_string(),
            host: f.host.trim().to_string(),
            port: number("port", &f.port)?,
            transport: given(f.transport),
            username: given(f.username),
            password: given(f.password),
            register: Some(f.register == "on"),
            sources: list(&f.sources),
            caller_id: given(f.caller_id),
            max_calls: given(f.max_calls),
            srtp: given(f.srtp),
            ..TrunkInput::default()
        };
        let v = trunks::add_trunk(&s.db, input).await?;
        let msg = format!("Added trunk {}.", v.name);
        Ok((
            "trunk.add".into(),
            v.name.clone(),
            None,
            Some(json!(v)),
            msg,
        ))
    })
    .await
}

async fn trunk_set(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<TrunkForm>,
) -> Response {
    let csrf = f.csrf.clone();
    change(&s, &peer, &headers, &csrf, async move |s: &State| {
        let ch = TrunkChange {
            host: given(f.host),
            port: number("port", &f.port)?,
            username: given(f.username),
            password: given(f.password),
            register: match f.register.as_str() {
                "on" => Some(true),
                "off" => Some(false),
                _ => None,
            },
            sources: given(f.sources).map(|v| list(&v)),
            caller_id: given(f.caller_id),
            max_calls: given(f.max_calls),
            srtp: given(f.srtp),
            transport: given(f.transport),
            ..TrunkChange::default()
        };
        let before = json!(trunks::trunk_view(&s.db, &f.name).await?);
        let v = trunks::set_trunk(&s.db, &f.name, ch).await?;
        let msg = format!("Changed trunk {}.", v.name);
        Ok((
            "trunk.update".into(),
            v.name.clone(),
            Some(before),
            Some(json!(v)),
            msg,
        ))
    })
    .await
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

async fn trunk_remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let before = json!(trunks::trunk_view(&s.db, &f.name).await?);
        let (dids, rules) = trunks::remove_trunk(&s.db, &f.name).await?;
        let mut msg = format!("Removed trunk {}", f.name);
        if !dids.is_empty() {
            msg.push_str(&format!(" and its DIDs: {}", dids.join(", ")));
        }
        msg.push('.');
        if !rules.is_empty() {
            msg.push_str(&format!(
                " Outbound rules still name it: {} (change or remove them).",
                rules.join(", ")
            ));
        }
        Ok((
            "trunk.remove".into(),
            f.name.clone(),
            Some(before),
            None,
            msg,
        ))
    })
    .await
}

#[derive(Deserialize)]
struct RuleForm {
    csrf: String,
    name: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    min_len: String,
    #[serde(default)]
    max_len: String,
    #[serde(default)]
    extensions: String,
    #[serde(default)]
    strip: String,
    #[serde(default)]
    prepend: String,
    #[serde(default)]
    trunks: String,
    #[serde(default)]
    position: String,
}

async fn rule_add(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<RuleForm>,
) -> Response {
    let csrf = f.csrf.clone();
    change(&s, &peer, &headers, &csrf, async move |s: &State| {
        let input = RuleInput {
            name: f.name.trim().to_string(),
            prefix: f.prefix,
            min_len: number("min_len", &f.min_len)?,
            max_len: number("max_len", &f.max_len)?,
            extensions: list(&f.extensions),
            strip: number("strip", &f.strip)?.unwrap_or(0),
            prepend: f.prepend,
            trunks: list(&f.trunks),
            position: number("position", &f.position)?,
        };
        let r = policy::add_rule(&s.db, input).await?;
        let msg = format!("Added outbound rule {} at position {}.", r.name, r.position);
        Ok(("rule.add".into(), r.name.clone(), None, Some(json!(r)), msg))
    })
    .await
}

async fn rule_move(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<RuleForm>,
) -> Response {
    let csrf = f.csrf.clone();
    change(&s, &peer, &headers, &csrf, async move |s: &State| {
        let ch = RuleChange {
            position: Some(number("position", &f.position)?.unwrap_or(0)),
            ..RuleChange::default()
        };
        let (before, after) = policy::change_rule(&s.db, f.name.trim(), ch).await?;
        let msg = format!(
            "Moved outbound rule {} to position {}.",
            after.name, after.position
        );
        Ok((
            "rule.update".into(),
            after.name.clone(),
            Some(json!(before)),
            Some(json!(after)),
            msg,
        ))
    })
    .await
}

async fn rule_remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let before = policy::remove_rule(&s.db, &f.name).await?;
        let msg = format!("Removed outbound rule {}.", before.name);
        Ok((
            "rule.remove".into(),
            before.name.clone(),
            Some(json!(before)),
            None,
            msg,
        ))
    })
    .await
}

#[derive(Deserialize)]
struct DidForm {
    csrf: String,
    number: String,
    trunk: String,
    extension: String,
}

async fn did_add(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<DidForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let d = trunks::add_did(&s.db, f.number.trim(), &f.trunk, f.extension.trim()).await?;
        let msg = format!(
            "Added DID {}: calls from trunk {} to it ring extension {}.",
            d.number, d.trunk, d.extension
        );
        Ok((
            "did.add".into(),
            d.number.clone(),
            None,
            Some(json!(d)),
            msg,
        ))
    })
    .await
}

async fn did_remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let d = trunks::remove_did(&s.db, &f.name).await?;
        let msg = format!("Removed DID {}.", d.number);
        Ok((
            "did.remove".into(),
            d.number.clone(),
            Some(json!(d)),
            None,
            msg,
        ))
    })
    .await
}

async fn routing(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "routing");
    routing_page(&s, &sess, nav).await
}

#[derive(Deserialize)]
struct PolicyForm {
    csrf: String,
    key: String,
    #[serde(default)]
    value: String,
}

/// One call-policy setting, through the same check as `palisade policy set`.
async fn routing_policy_set(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<PolicyForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, "routing");
    let done = async {
        let value = crate::admin::policy::check_policy(&f.key, &f.value)?;
        let before = s.db.get_setting(&f.key).await?;
        s.db.set_setting(&f.key, &value).await?;
        accounts::audit(
            &s.db,
            &actor(&sess, &peer),
            "policy.set",
            Some(&f.key),
            before.map(|b| json!(b)),
            Some(json!(value)),
        )
        .await?;
        anyhow::Ok(value)
    }
    .await;
    match done {
        Ok(v) => nav.messages.push(format!(
            "{} = {v}. The running server applies it within a second.",
            f.key
        )),
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    routing_page(&s, &sess, nav).await
}

pub(super) async fn routing_page(
    s: &State,
    sess: &crate::console::sessions::Session,
    nav: Nav,
) -> Response {
    let admin = sess.role == store::admin::Role::Admin;
    let mut page = TablePage::new("Trunks, rules, countries, office hours, DIDs", nav);
    page.intro.push(
        "Trunks, outbound rules, DIDs and the call policy (countries, office hours, local networks, …) are changed \
         here, through the same checks as `palisade trunk`, `rule`, `did` and `policy set`. Trunk passwords are \
         stored for the provider's challenges and never shown back."
            .into(),
    );
    let policy_now = s.db.policy_settings().await.unwrap_or_default();
    let trunk_names: Vec<String> =
        s.db.list_trunk_rows()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect();
    if admin {
        page.forms.extend(change_forms(&trunk_names));
        let keys: Vec<&str> = store::POLICY_SETTINGS.iter().map(|p| p.key).collect();
        page.forms.push(Form {
            method: "post",
            action: "/routing/policy".into(),
            heading: "Change the call policy".into(),
            submit: "Set".into(),
            fields: vec![
                Field::select("key", "Setting", &keys, "allowed_country_codes"),
                Field::text("value", "Value", ""),
            ],
        });
    }
    page.tables.push(Table {
        heading: "Call policy".into(),
        columns: vec!["Setting", "Value", "Default", "Allowed values", "About"],
        rows: store::POLICY_SETTINGS
            .iter()
            .map(|p| Row {
                cells: vec![
                    Cell::from(p.key),
                    // Lists with a space after each comma, so a long one wraps.
                    Cell::from(
                        crate::admin::policy::value_of(&policy_now, p.key).replace(',', ", "),
                    ),
                    Cell::from(p.default.replace(',', ", ")),
                    Cell::from(p.allowed),
                    Cell::from(p.about),
                ],
                actions: Vec::new(),
            })
            .collect(),
        ..Table::default()
    });
    let trunks = trunk_views(s).await.unwrap_or_default();
    page.tables.push(Table {
        heading: "Trunks".into(),
        columns: vec![
            "Name",
            "Host",
            "Transport",
            "Registers",
            "State",
            "Last error",
        ],
        empty: "No trunks.".into(),
        has_actions: admin,
        rows: trunks
            .into_iter()
            .map(|t| Row {
                cells: vec![
                    Cell::from(t.name.clone()),
                    Cell::from(format!("{}:{}", t.host, t.port)),
                    Cell::from(t.transport),
                    Cell::from(if t.register { "yes" } else { "no" }),
                    Cell::from(or_dash(t.state.as_deref())),
                    Cell::from(or_dash(t.last_error.as_deref())),
                ],
                actions: remove_action(
                    admin,
                    "/routing/trunks/remove",
                    "Remove",
                    &t.name,
                    format!("Remove trunk {} and its DIDs?", t.name),
                ),
            })
            .collect(),
        ..Table::default()
    });
    let or_any = |v: &[String], any: &str| {
        if v.is_empty() {
            any.to_string()
        } else {
            v.join(", ")
        }
    };
    page.tables.push(Table {
        heading: "Outbound rules (tried in order)".into(),
        columns: vec![
            "#", "Name", "Prefix", "Length", "Callers", "Strip", "Prepend", "Trunks",
        ],
        empty: "No outbound rules.".into(),
        has_actions: admin,
        rows: policy_now
            .rules
            .iter()
            .map(|r| Row {
                cells: vec![
                    Cell::from(r.position.to_string()),
                    Cell::from(r.name.clone()),
                    Cell::from(or_dash(Some(&r.prefix))),
                    Cell::from(format!(
                        "{}–{}",
                        r.min_len.map_or("prefix".into(), |v| v.to_string()),
                        r.max_len.map_or("max".into(), |v| v.to_string())
                    )),
                    Cell::from(or_any(&r.extensions, "all")),
                    Cell::from(r.strip.to_string()),
                    Cell::from(or_dash(Some(&r.prepend))),
                    Cell::from(r.trunks.join(", ")),
                ],
                actions: remove_action(
                    admin,
                    "/routing/rules/remove",
                    "Remove",
                    &r.name,
                    format!("Remove outbound rule {}?", r.name),
                ),
            })
            .collect(),
        ..Table::default()
    });
    let dids = s.db.list_dids().await.unwrap_or_default();
    page.tables.push(Table {
        heading: "Inbound numbers (DIDs)".into(),
        columns: vec!["Number", "Trunk", "Rings extension"],
        empty: "No DIDs.".into(),
        has_actions: admin,
        rows: dids
            .into_iter()
            .map(|d| Row {
                cells: vec![
                    Cell::from(d.number.clone()),
                    Cell::from(d.trunk),
                    Cell::from(d.extension),
                ],
                actions: remove_action(
                    admin,
                    "/routing/dids/remove",
                    "Remove",
                    &d.number,
                    format!("Remove DID {}?", d.number),
                ),
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}
