//! `/api/v1/trunks`, `/rules` and `/dids` changes: add, change, remove, through the same functions as
//! `palisade trunk|rule|did` (same checks, same messages), audited. Trunk passwords are write-only: answers show
//! `"password": "set"` at most.

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde::Deserialize;
use serde_json::json;

use super::State;
use super::api::{ApiError, Caller, JsonBody};
use crate::admin::policy::{self, RuleChange, RuleInput};
use crate::admin::trunks::{self, TrunkChange, TrunkInput};

pub fn api_routes() -> Router<State> {
    Router::new()
        .route("/trunks", post(add_trunk))
        .route(
            "/trunks/{name}",
            patch(set_trunk).delete(remove_trunk).get(get_trunk),
        )
        .route("/rules", post(add_rule))
        .route("/rules/{name}", patch(change_rule).delete(remove_rule))
        .route("/dids", post(add_did))
        .route("/dids/{number}", patch(set_did).delete(remove_did))
}

use super::api::{audited, created};

type ApiResult = Result<Response, ApiError>;

async fn get_trunk(AxState(s): AxState<State>, Path(name): Path<String>) -> ApiResult {
    Ok(axum::Json(json!(trunks::trunk_view(&s.db, &name).await?)).into_response())
}

async fn add_trunk(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(input): JsonBody<TrunkInput>,
) -> ApiResult {
    let v = json!(trunks::add_trunk(&s.db, input).await?);
    let name = v["name"].as_str().unwrap_or_default().to_string();
    audited(&s, &c, "trunk.add", &name, None, Some(v.clone())).await?;
    Ok(created(v))
}

async fn set_trunk(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(change): JsonBody<TrunkChange>,
) -> ApiResult {
    let password_changed = change.password.is_some();
    let before = json!(trunks::trunk_view(&s.db, &name).await?);
    let after = json!(trunks::set_trunk(&s.db, &name, change).await?);
    // The password itself is never in the audit log: only that it changed.
    let mut logged = after.clone();
    logged["password_changed"] = json!(password_changed);
    audited(&s, &c, "trunk.update", &name, Some(before), Some(logged)).await?;
    Ok(axum::Json(after).into_response())
}

async fn remove_trunk(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult {
    let before = json!(trunks::trunk_view(&s.db, &name).await?);
    let (dids, rules) = trunks::remove_trunk(&s.db, &name).await?;
    audited(&s, &c, "trunk.remove", &name, Some(before), None).await?;
    let mut warnings = Vec::new();
    if !rules.is_empty() {
        warnings.push(format!(
            "outbound rules still name trunk {name}: {} (calls matching them fail over to their other trunks or \
             are refused)",
            rules.join(", ")
        ));
    }
    Ok(axum::Json(json!({
        "removed": name,
        "dids_removed": dids,
        "rules_naming_it": rules,
        "warnings": warnings,
    }))
    .into_response())
}

async fn add_rule(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(input): JsonBody<RuleInput>,
) -> ApiResult {
    let rule = policy::add_rule(&s.db, input).await?;
    let v = json!(rule);
    audited(&s, &c, "rule.add", &rule.name, None, Some(v.clone())).await?;
    Ok(created(v))
}

async fn change_rule(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(change): JsonBody<RuleChange>,
) -> ApiResult {
    let (before, after) = policy::change_rule(&s.db, &name, change).await?;
    let after = json!(after);
    audited(
        &s,
        &c,
        "rule.update",
        &name,
        Some(json!(before)),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}

async fn remove_rule(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult {
    let before = json!(policy::remove_rule(&s.db, &name).await?);
    audited(&s, &c, "rule.remove", &name, Some(before.clone()), None).await?;
    Ok(axum::Json(json!({ "removed": before })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDid {
    number: String,
    trunk: String,
    extension: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DidChange {
    trunk: Option<String>,
    extension: Option<String>,
}

async fn add_did(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(n): JsonBody<NewDid>,
) -> ApiResult {
    let did = trunks::add_did(&s.db, &n.number, &n.trunk, &n.extension).await?;
    let v = json!(did);
    audited(&s, &c, "did.add", &did.number, None, Some(v.clone())).await?;
    Ok(created(v))
}

async fn set_did(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    JsonBody(ch): JsonBody<DidChange>,
) -> ApiResult {
    let (before, after) =
        trunks::set_did(&s.db, &number, ch.trunk.as_deref(), ch.extension.as_deref()).await?;
    let after = json!(after);
    audited(
        &s,
        &c,
        "did.update",
        &before.number,
        Some(json!(before)),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}

async fn remove_did(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let did = trunks::remove_did(&s.db, &number).await?;
    let before = json!(did);
    audited(
        &s,
        &c,
        "did.remove",
        &did.number,
        Some(before.clone()),
        None,
    )
    .await?;
    Ok(axum::Json(json!({ "removed": before })).into_response())
}
