//! What is happening: the dashboard (live), security events, calls in progress, call records (CSV export), the
//! audit log, and the live stream the dashboard reads.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{
    Cell, Field, Form, Nav, Row, Table, TablePage, enc, error_page, or_dash, render, session,
};
use crate::admin::time::{format_ms, now_ms, parse_since};
use crate::admin::{calls, events};
use crate::console::State;
use crate::console::api::{CdrQuery, cdr_csv, cdr_rows, csv_response};
use pbx::model::SecurityEventKind;
use pbx::trunks::registration::RegState;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/", get(dashboard))
        .route("/live", get(live))
        .route("/events", get(events_page))
        .route("/calls", get(calls_page))
        .route("/cdr", get(cdr_page))
        .route("/cdr.csv", get(cdr_export))
        .route("/audit", get(audit_page))
}

macro_rules! sess {
    ($s:expr, $h:expr) => {
        match session(&$s, &$h) {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}
pub(super) use sess;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    title: String,
    nav: Nav,
    calls_now: usize,
    registered: usize,
    trunks_up: usize,
    trunks_total: usize,
    bans_live: usize,
    calls: Vec<calls::ActiveCallView>,
    events: Vec<events::EventView>,
    chart_svg: String,
}

async fn dashboard(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let calls = calls::active_call_views(&s.db).await.unwrap_or_default();
    let bindings = events::binding_views(&s.db, None).await.unwrap_or_default();
    let mut registered: Vec<&str> = bindings.iter().map(|b| b.extension.as_str()).collect();
    registered.sort_unstable();
    registered.dedup();
    let trunks = s.db.list_trunk_status().await.unwrap_or_default();
    let now = now_ms();
    let bans_live =
        s.db.list_ip_rules()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.action == store::ip_rules::ACTION_BLOCK && r.is_live(now))
            .count();
    let recent = events::event_views(&s.db, None, None, None, 20)
        .await
        .unwrap_or_default();
    let day =
        s.db.list_events(Some(now - 86_400_000), None, store::MAX_EVENT_LIST)
            .await
            .unwrap_or_default();
    let page = Dashboard {
        title: "Dashboard".into(),
        nav: Nav::new(&sess, "dashboard"),
        calls_now: calls.len(),
        registered: registered.len(),
        trunks_up: trunks
            .iter()
            .filter(|t| t.state == RegState::Registered.as_str())
            .count(),
        trunks_total: trunks.len(),
        bans_live,
        calls,
        events: recent,
        chart_svg: chart(
            &day.iter()
                .map(|e| (e.at, e.kind.as_str()))
                .collect::<Vec<_>>(),
            now,
        ),
    };
    render(&page)
}

/// Bars per hour over the last 24 h: authentication failures (SIP and console) and bans.
fn chart(events: &[(i64, &str)], now: i64) -> String {
    let mut fails = [0u32; 24];
    let mut bans = [0u32; 24];
    for (at, kind) in events {
        let age_h = (now - at) / 3_600_000;
        if !(0..24).contains(&age_h) {
            continue;
        }
        let slot = 23 - age_h as usize;
        match SecurityEventKind::from_stored(kind) {
            Some(k) if k.is_auth_failure() => fails[slot] += 1,
            Some(k) if k.is_ban() => bans[slot] += 1,
            _ => {}
        }
    }
    let max = fails
        .iter()
        .chain(bans.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::from(
        "<svg class=\"chart\" viewBox=\"0 0 480 130\" role=\"img\" aria-label=\"Authentication failures and bans per hour, last 24 hours\">",
    );
    for i in 0..24 {
        let x = i as u32 * 20;
        for (j, (n, class)) in [(fails[i], "fail"), (bans[i], "ban")]
            .into_iter()
            .enumerate()
        {
            let h = n * 110 / max;
            svg.push_str(&format!(
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"8\" height=\"{h}\"><title>{n}</title></rect>",
                x + 2 + j as u32 * 9,
                115 - h
            ));
        }
    }
    svg.push_str(
        "<text x=\"0\" y=\"127\" font-size=\"9\">24 h ago</text><text x=\"480\" y=\"127\" font-size=\"9\" \
         text-anchor=\"end\">now</text>",
    );
    svg.push_str(&format!(
        "<line x1=\"0\" y1=\"115\" x2=\"480\" y2=\"115\" stroke=\"#999\"/>\
         <text x=\"0\" y=\"10\" font-size=\"9\">{max}</text></svg>"
    ));
    svg
}

async fn live(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let _sess = sess!(s, headers);
    crate::console::live::stream(&s).into_response()
}

#[derive(Debug, Deserialize)]
struct EventFilter {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    source: String,
    before: Option<i64>,
}

async fn events_page(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<EventFilter>,
) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "events");
    let since = match Some(q.since.trim())
        .filter(|v| !v.is_empty())
        .map(|v| parse_since(v, now_ms()))
        .transpose()
    {
        Ok(v) => v,
        Err(e) => return error_page("Security events", nav, format!("{e:#}"), "/events"),
    };
    let kind = Some(q.kind.trim()).filter(|k| !k.is_empty());
    let list = match events::event_views(&s.db, since, kind, q.before, 100).await {
        Ok(v) => v,
        Err(e) => return error_page("Security events", nav, format!("{e:#}"), "/events"),
    };
    let source = q.source.trim();
    let next = list.last().map(|e| e.id);
    let full = list.len() == 100;
    let mut page = TablePage::new("Security events", nav);
    page.forms.push(Form {
        method: "get",
        action: "/events".into(),
        heading: String::new(),
        submit: "Filter".into(),
        fields: vec![
            Field::text("kind", "Kind (e.g. auth_failure, ban)", q.kind.clone()),
            Field::text("since", "Since (1h, 2d or RFC 3339)", q.since.clone()),
            Field::text("source", "Source contains", q.source.clone()),
        ],
    });
    let mut links = Vec::new();
    if full && let Some(n) = next {
        links.push((
            "Older events".into(),
            format!(
                "/events?kind={}&since={}&source={}&before={n}",
                enc(&q.kind),
                enc(&q.since),
                enc(&q.source)
            ),
        ));
    }
    page.tables.push(Table {
        columns: vec!["Time", "Kind", "Reason", "Source", "User", "Detail"],
        empty: "No security events match.".into(),
        rows: list
            .into_iter()
            .filter(|e| source.is_empty() || e.source.contains(source))
            .map(|e| Row {
                cells: vec![
                    Cell::from(e.at),
                    Cell::from(e.kind),
                    Cell::from(e.reason),
                    Cell::from(e.source),
                    Cell::from(or_dash(e.user.as_deref())),
                    Cell::from(or_dash(e.detail.as_deref())),
                ],
                actions: Vec::new(),
            })
            .collect(),
        links,
        ..Table::default()
    });
    render(&page)
}

async fn calls_page(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let list = calls::active_call_views(&s.db).await.unwrap_or_default();
    let mut page = TablePage::new("Calls in progress", Nav::new(&sess, "calls"));
    page.intro.push("As the server last wrote them (within a second of a change). Reload to refresh; the dashboard updates live.".into());
    page.tables.push(Table {
        columns: vec!["Caller", "Callee", "State", "Started", "Talk time (s)"],
        empty: "No calls in progress.".into(),
        rows: list
            .into_iter()
            .map(|c| Row {
                cells: vec![
                    Cell::from(c.caller),
                    Cell::from(or_dash(Some(&c.callee))),
                    Cell::from(c.state),
                    Cell::from(c.started_at),
                    Cell::from(
                        c.duration_secs
                            .map_or_else(|| "-".into(), |d| d.to_string()),
                    ),
                ],
                actions: Vec::new(),
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}

async fn cdr_page(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<CdrQuery>,
) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "cdr");
    let rows = match cdr_rows(&s, &q).await {
        Ok(r) => r,
        Err(e) => return error_page("Call records", nav, e.1, "/cdr"),
    };
    let since = q.since.clone().unwrap_or_default();
    let ext = q.ext.clone().unwrap_or_default();
    let mut page = TablePage::new("Call records", nav);
    page.forms.push(Form {
        method: "get",
        action: "/cdr".into(),
        heading: String::new(),
        submit: "Filter".into(),
        fields: vec![
            Field::text("since", "Since (1h, 2d or RFC 3339)", since.clone()),
            Field::text("ext", "Extension", ext.clone()),
        ],
    });
    page.tables.push(Table {
        columns: vec![
            "Started",
            "Caller",
            "Callee",
            "Disposition",
            "Seconds",
            "Hung up by",
            "Reason",
        ],
        empty: "No call records match.".into(),
        rows: rows
            .into_iter()
            .map(|c| Row {
                cells: vec![
                    Cell::from(c.started_at),
                    Cell::from(c.caller),
                    Cell::from(or_dash(Some(&c.callee))),
                    Cell::from(c.disposition),
                    Cell::from(c.duration_secs.to_string()),
                    Cell::from(c.hung_up_by),
                    Cell::from(or_dash(Some(&c.reason))),
                ],
                actions: Vec::new(),
            })
            .collect(),
        links: vec![(
            "Export as CSV".into(),
            format!("/cdr.csv?since={}&ext={}", enc(&since), enc(&ext)),
        )],
        ..Table::default()
    });
    render(&page)
}

async fn cdr_export(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(mut q): Query<CdrQuery>,
) -> Response {
    let sess = sess!(s, headers);
    q.limit = Some(q.limit.unwrap_or(store::MAX_CDR_LIST));
    match cdr_rows(&s, &q).await {
        Ok(rows) => csv_response(cdr_csv(&rows), "palisade-cdr.csv"),
        Err(e) => error_page("Call records", Nav::new(&sess, "cdr"), e.1, "/cdr"),
    }
}

#[derive(Debug, Deserialize)]
struct AuditFilter {
    before: Option<i64>,
}

async fn audit_page(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Query(q): Query<AuditFilter>,
) -> Response {
    let sess = sess!(s, headers);
    let list = s.db.list_audit(q.before, 100).await.unwrap_or_default();
    let next = (list.len() == 100)
        .then(|| list.last().map(|e| e.id))
        .flatten();
    let mut page = TablePage::new("Audit log", Nav::new(&sess, "audit"));
    page.intro.push(
        "Every change from the console, the API and the command line (`palisade audit`).".into(),
    );
    page.tables.push(Table {
        columns: vec!["Time", "Who", "From", "What", "Target", "Before", "After"],
        empty: "Nothing changed yet.".into(),
        rows: list
            .into_iter()
            .map(|e| Row {
                cells: vec![
                    Cell::from(format_ms(e.at)),
                    Cell::from(e.actor),
                    Cell::from(e.source),
                    Cell::from(e.action),
                    Cell::from(or_dash(e.target.as_deref())),
                    Cell::from(or_dash(e.before.as_deref())),
                    Cell::from(or_dash(e.after.as_deref())),
                ],
                actions: Vec::new(),
            })
            .collect(),
        links: next
            .map(|n| ("Older entries".to_string(), format!("/audit?before={n}")))
            .into_iter()
            .collect(),
        ..Table::default()
    });
    render(&page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_chart_scales_to_the_busiest_hour() {
        let now = 100 * 3_600_000;
        let svg = super::chart(
            &[
                (now - 10, "auth_failure"),
                (now - 20, "auth_failure"),
                (now - 30, "ban"),
            ],
            now,
        );
        assert!(svg.contains("height=\"110\""), "{svg}");
        assert!(svg.contains("height=\"55\""), "{svg}");
    }
}
