//! The Groups & queues page: ring groups and call queues (with each queue's statistics and agents' login state),
//! and the forms that add and remove them through the same functions as `palisade group|queue`.

use axum::Router;
use axum::extract::{Extension, Form as AxForm, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::monitor::sess;
use super::{
    Action, AuditedChange, Cell, Field, Form, Nav, Row, Table, TablePage, audited_change, render,
    session,
};
use crate::admin::groups::{self, GroupSettings, GroupView};
use crate::admin::queues::{self, QueueSettings};
use crate::console::{Peer, State};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/office", get(office))
        .route("/office/groups", post(group_add))
        .route("/office/groups/remove", post(group_remove))
        .route("/office/queues", post(queue_add))
        .route("/office/queues/remove", post(queue_remove))
}

#[derive(Deserialize)]
struct GroupForm {
    csrf: String,
    number: String,
    #[serde(default)]
    members: String,
    #[serde(default)]
    strategy: String,
    #[serde(default)]
    ring_seconds: String,
    #[serde(default)]
    fallback: String,
}

#[derive(Deserialize)]
struct QueueForm {
    csrf: String,
    number: String,
    #[serde(default)]
    agents: String,
    #[serde(default)]
    strategy: String,
    #[serde(default)]
    max_wait: String,
    #[serde(default)]
    fallback: String,
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

/// A comma list typed in a form.
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn given(v: &str) -> Option<String> {
    Some(v.trim().to_string()).filter(|v| !v.is_empty())
}

fn seconds(field: &str, v: &str) -> anyhow::Result<Option<u32>> {
    given(v)
        .map(|v| {
            v.parse()
                .map_err(|_| anyhow::anyhow!("{field}: '{v}' is not a number of seconds"))
        })
        .transpose()
}

/// Runs a change of the office page: CSRF and role checked, audited, the page shown with the outcome.
async fn change<F>(s: &State, peer: &Peer, headers: &HeaderMap, csrf: &str, run: F) -> Response
where
    F: AsyncFnOnce(&State) -> anyhow::Result<AuditedChange>,
{
    audited_change(s, peer, headers, csrf, "office", office_page, run).await
}

async fn group_add(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<GroupForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let settings = GroupSettings {
            members: Some(list(&f.members)),
            strategy: given(&f.strategy),
            ring_seconds: seconds("Ring time", &f.ring_seconds)?,
            fallback: given(&f.fallback),
        };
        let g = groups::add_group(&s.db, &f.number, &settings).await?;
        let v = GroupView::from(&g);
        let msg = format!(
            "Added ring group {}: {} ({}).",
            v.number,
            v.members.join(", "),
            v.strategy
        );
        Ok((
            "group.add".into(),
            v.number.clone(),
            None,
            Some(json!(v)),
            msg,
        ))
    })
    .await
}

async fn group_remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let g = GroupView::from(&groups::remove_group(&s.db, &f.name).await?);
        let msg = format!("Removed ring group {}.", g.number);
        Ok((
            "group.remove".into(),
            g.number.clone(),
            Some(json!(g)),
            None,
            msg,
        ))
    })
    .await
}

async fn queue_add(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<QueueForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let settings = QueueSettings {
            agents: Some(list(&f.agents)),
            strategy: given(&f.strategy),
            max_wait: seconds("Max wait", &f.max_wait)?,
            music: None,
            fallback: given(&f.fallback),
        };
        let q = queues::add_queue(&s.db, &f.number, &settings).await?;
        let msg = format!("Added queue {}: agents {}.", q.number, q.agents.join(", "));
        let after = json!({"number": q.number, "agents": q.agents, "strategy": q.strategy.as_str(),
                           "max_wait_secs": q.max_wait_secs, "fallback": q.fallback.to_string()});
        Ok(("queue.add".into(), q.number.clone(), None, Some(after), msg))
    })
    .await
}

async fn queue_remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let q = queues::remove_queue(&s.db, &f.name).await?;
        let msg = format!("Removed queue {}.", q.number);
        let before = json!({"number": q.number, "agents": q.agents});
        Ok((
            "queue.remove".into(),
            q.number.clone(),
            Some(before),
            None,
            msg,
        ))
    })
    .await
}

async fn office(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "office");
    office_page(&s, &sess, nav).await
}

fn remove_action(admin: bool, url: &str, name: &str, confirm: String) -> Vec<Action> {
    if !admin {
        return Vec::new();
    }
    vec![Action {
        url: url.into(),
        label: "Remove",
        confirm,
        hidden: vec![("name", name.to_string())],
    }]
}

async fn office_page(s: &State, sess: &crate::console::sessions::Session, nav: Nav) -> Response {
    let admin = sess.role == store::admin::Role::Admin;
    let mut page = TablePage::new("Ring groups and call queues", nav);
    page.intro.push(
        "Ring groups ring several phones for one number; call queues keep callers waiting with music until an agent \
         is free. Both are changed here through the same checks as `palisade group` and `palisade queue` (which \
         also change an existing one); members, agents and fallbacks are routed under the caller's call policy."
            .into(),
    );
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/office/groups".into(),
            heading: "Add a ring group".into(),
            submit: "Add group".into(),
            fields: vec![
                Field::text("number", "Number", "").required(),
                Field::text("members", "Members (e.g. 201,202,203)", "").required(),
                Field::select(
                    "strategy",
                    "Strategy",
                    &["all", "order", "round-robin"],
                    "all",
                ),
                Field::text("ring_seconds", "Ring time per step (s, default 20)", ""),
                Field::text(
                    "fallback",
                    "Fallback (voicemail:EXT, ext:NUMBER, hangup)",
                    "hangup",
                ),
            ],
        });
        page.forms.push(Form {
            method: "post",
            action: "/office/queues".into(),
            heading: "Add a call queue".into(),
            submit: "Add queue".into(),
            fields: vec![
                Field::text("number", "Number", "").required(),
                Field::text("agents", "Agents (e.g. 201,202)", "").required(),
                Field::select(
                    "strategy",
                    "Strategy",
                    &["longest-idle", "round-robin", "all"],
                    "longest-idle",
                ),
                Field::text("max_wait", "Max wait (s, default 300)", ""),
                Field::text("fallback", "Fallback (ext:NUMBER, hangup)", "hangup"),
            ],
        });
    }
    let group_views = groups::group_views(&s.db).await.unwrap_or_default();
    page.tables.push(Table {
        heading: "Ring groups".into(),
        columns: vec!["Number", "Members", "Strategy", "Ring time", "Fallback"],
        empty: "No ring groups.".into(),
        has_actions: admin,
        rows: group_views
            .into_iter()
            .map(|g| Row {
                cells: vec![
                    Cell::from(g.number.clone()),
                    Cell::from(g.members.join(", ")),
                    Cell::from(g.strategy.clone()),
                    Cell::from(format!("{} s", g.ring_seconds)),
                    Cell::from(g.fallback.clone()),
                ],
                actions: remove_action(
                    admin,
                    "/office/groups/remove",
                    &g.number,
                    format!("Remove ring group {}?", g.number),
                ),
            })
            .collect(),
        ..Table::default()
    });
    let queue_views = queues::queue_views(&s.db).await.unwrap_or_default();
    let stats = queues::stats_views(&s.db, None).await.unwrap_or_default();
    page.tables.push(Table {
        heading: "Call queues".into(),
        columns: vec![
            "Number",
            "Agents (– logged out)",
            "Strategy",
            "Max wait",
            "Waiting",
            "Answered",
            "Abandoned",
            "Timed out",
            "Average wait",
        ],
        empty: "No call queues.".into(),
        has_actions: admin,
        rows: queue_views
            .into_iter()
            .map(|q| {
                let st = stats.iter().find(|v| v.queue == q.number);
                let n = |f: fn(&queues::StatsView) -> String| st.map_or("-".to_string(), f);
                Row {
                    cells: vec![
                        Cell::from(q.number.clone()),
                        Cell::from(
                            q.agents
                                .iter()
                                .map(|a| {
                                    format!("{}{}", a.agent, if a.logged_in { "" } else { " –" })
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        Cell::from(q.strategy.clone()),
                        Cell::from(format!("{} s", q.max_wait_secs)),
                        Cell::from(n(|v| v.waiting.to_string())),
                        Cell::from(n(|v| v.stats.answered.to_string())),
                        Cell::from(n(|v| v.stats.abandoned.to_string())),
                        Cell::from(n(|v| v.stats.timeout.to_string())),
                        Cell::from(n(|v| format!("{:.1} s", v.stats.average_wait_secs))),
                    ],
                    actions: remove_action(
                        admin,
                        "/office/queues/remove",
                        &q.number,
                        format!("Remove queue {}?", q.number),
                    ),
                }
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}
