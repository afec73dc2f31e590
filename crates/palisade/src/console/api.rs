//! `/api/v1`: the REST API. JSON in and out, bearer tokens (`palisade admin token create`), `read` tokens may
//! only GET. Every change goes through the same function as the CLI's (same validation, same messages, same
//! durability) and into the audit log. Errors answer `{"error": "…"}` with 400 (the CLI's message), 401, 403,
//! 404, 409 or 422; lists answer `{"items": […]}`.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Peer, State};
use crate::admin::accounts::{self, Actor};
use crate::admin::lists::{List, RuleView};
use crate::admin::time::{now_ms, parse_since};
use crate::admin::{calls, events, ext, lists, voicemail};
use pbx::model::ConsoleAuthReason;

/// An API error: a status and a message fit for the operator.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.0, axum::Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<anyhow::Error> for ApiError {
    /// The CLI's message, with the status its kind calls for: a missing thing 404, a taken name 409, anything
    /// else the caller gave 400. System errors (the database) are 500 and logged.
    fn from(e: anyhow::Error) -> Self {
        let msg = format!("{e:#}");
        if let Some(store::StoreError::Unreachable(detail)) = e.downcast_ref::<store::StoreError>()
        {
            tracing::error!(error = %detail, "API request failed: the database is unreachable");
            return ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unreachable; the change was not saved (try again when it is back)"
                    .into(),
            );
        }
        if let Some(se) = e.downcast_ref::<store::StoreError>()
            && !se.is_user_error()
        {
            tracing::error!(error = %msg, "API request failed");
            return ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log".into(),
            );
        }
        ApiError(status_for(&msg), msg)
    }
}

/// The status for a CLI error message.
pub fn status_for(msg: &str) -> StatusCode {
    if msg.contains("does not exist") || msg.contains(" is not on the ") {
        StatusCode::NOT_FOUND
    } else if msg.contains("already exists") || msg.contains("is the last account") {
        StatusCode::CONFLICT
    } else {
        StatusCode::BAD_REQUEST
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

/// A JSON body; a body that is not JSON is 400, JSON of the wrong shape 422, both with `{"error"}`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(ApiError(rej.status(), rej.body_text())),
        }
    }
}

/// Who is calling: the token's name and scope, and the client's address.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: String,
    /// `read` or `write`.
    pub scope: String,
    pub peer: Peer,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.peer.actor(format!("token:{}", self.token))
    }
}

fn items<T: serde::Serialize>(list: T) -> Response {
    axum::Json(json!({ "items": list })).into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

pub(super) fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

/// Writes an API change to the audit log under the calling token's name.
pub(super) async fn audited(
    s: &State,
    c: &Caller,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    accounts::audit(&s.db, &c.actor(), action, Some(target), before, after).await?;
    Ok(())
}

pub(super) fn no_such(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("{what} does not exist"))
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/extensions", get(list_extensions).post(create_extension))
        .route(
            "/extensions/{number}",
            get(get_extension)
                .patch(patch_extension)
                .delete(delete_extension),
        )
        .route("/extensions/{number}/reset-password", post(reset_password))
        .route("/extensions/{number}/reset-pin", post(reset_pin))
        .route("/registrations", get(registrations))
        .route("/calls", get(active_calls))
        .route("/cdr", get(cdr))
        .route("/events", get(list_events))
        .route("/stream", get(stream))
        .route("/blacklist", get(list_black).post(add_black))
        .route("/blacklist/{*prefix}", delete(remove_black))
        .route("/whitelist", get(list_white).post(add_white))
        .route("/whitelist/{*prefix}", delete(remove_white))
        .route("/security", get(get_security).patch(patch_security))
        .route("/policy", get(policy).patch(patch_policy))
        .route("/countries", get(countries))
        .route("/hours", get(hours))
        .route("/rules", get(rules))
        .route("/trunks", get(trunks))
        .route("/dids", get(dids))
        .route("/voicemail/{number}", get(voicemail_list))
        .route(
            "/voicemail/{number}/{id}",
            get(voicemail_wav).delete(voicemail_delete),
        )
        .route("/cert", get(cert))
        .route("/audit", get(audit))
        .merge(super::backups::api_routes())
        .merge(super::routing_api::api_routes())
        .merge(super::office_api::api_routes())
        .merge(super::media_api::api_routes())
        .merge(super::phones_api::api_routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no such API resource (see /api/v1/openapi.json)".into(),
    )
}

/// Bearer token check, before any handler: a missing, unknown, revoked or expired token is 401 and counts toward
/// the console ban of the source; a `read` token is 403 on anything but GET.
async fn authenticate(AxState(state): AxState<State>, mut req: Request, next: Next) -> Response {
    let Some(peer) = req.extensions().get::<Peer>().copied() else {
        return ApiError(StatusCode::INTERNAL_SERVER_ERROR, "no peer address".into())
            .into_response();
    };
    let ip = peer.ip();
    let presented = bearer(req.headers());
    let token = match &presented {
        Some(t) => state
            .db
            .token_by_hash(&accounts::token_hash(t))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let now = now_ms();
    let Some(token) = token.filter(|t| t.is_live(now)) else {
        let what = if presented.is_some() {
            ConsoleAuthReason::BadToken
        } else {
            ConsoleAuthReason::NoToken
        };
        state.guard.fail(&state.db, ip, None, what).await;
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer TOKEN; create one with `palisade admin \
             token create NAME --scope read|write`)"
                .into(),
        )
        .into_response();
    };
    let _ = state.db.touch_token(token.id, now).await;
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if !reading && token.scope != "write" {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("token {} has the read scope: it may only GET", token.name),
        )
        .into_response();
    }
    req.extensions_mut().insert(Caller {
        token: token.name,
        scope: token.scope,
        peer,
    });
    next.run(req).await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty() && t.len() <= 200)
}

async fn openapi() -> Response {
    ok(super::openapi::document())
}

// ---------------------------------------------------------------- extensions

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtPage {
    /// Only extensions numbered after this one (the last of the previous page).
    after: Option<String>,
    /// At most this many; default: all.
    limit: Option<usize>,
}

async fn list_extensions(AxState(s): AxState<State>, Query(q): Query<ExtPage>) -> ApiResult {
    let Some(limit) = q.limit else {
        return Ok(ok(
            json!({ "items": ext::list_views(&s.db).await?, "next_after": null }),
        ));
    };
    let limit = u32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
    // One more than asked says whether there is a next page.
    let mut page = ext::page_views(&s.db, q.after.as_deref(), limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = more
        .then(|| page.last().map(|v| v.number.clone()))
        .flatten();
    Ok(ok(json!({ "items": page, "next_after": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewExtension {
    number: String,
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    require_tls: bool,
    srtp: Option<String>,
}

async fn create_extension(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(n): JsonBody<NewExtension>,
) -> ApiResult {
    let creds = ext::create(
        &s.db,
        &s.data_dir,
        n.number.clone(),
        n.name,
        n.email,
        n.require_tls,
        n.srtp.as_deref(),
    )
    .await?;
    let after = ext::show(&s.db, &n.number).await.ok();
    accounts::audit(
        &s.db,
        &c.actor(),
        "extension.create",
        Some(&n.number),
        None,
        after.map(|v| json!(v)),
    )
    .await?;
    Ok(created(json!(creds)))
}

async fn get_extension(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    Ok(ok(json!(ext::show(&s.db, &number).await?)))
}

async fn patch_extension(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    JsonBody(changes): JsonBody<ext::ExtChanges>,
) -> ApiResult {
    let before = ext::show(&s.db, &number).await?;
    let after = ext::set(&s.db, &number, changes).await?;
    let (before, after) = (json!(before), json!(after));
    accounts::audit(
        &s.db,
        &c.actor(),
        "extension.update",
        Some(&number),
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(ok(after))
}

async fn delete_extension(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let before = ext::show(&s.db, &number).await?;
    let warnings = ext::remove(&s.db, &s.data_dir, &number).await?;
    accounts::audit(
        &s.db,
        &c.actor(),
        "extension.remove",
        Some(&number),
        Some(json!(before)),
        None,
    )
    .await?;
    Ok(ok(json!({ "removed": number, "warnings": warnings })))
}

async fn reset_password(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let creds = ext::new_password(&s.db, &s.data_dir, &number).await?;
    accounts::audit(
        &s.db,
        &c.actor(),
        "extension.reset_password",
        Some(&number),
        None,
        None,
    )
    .await?;
    Ok(ok(json!(creds)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: Option<String>,
}

async fn reset_pin(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let given: PinBody = if body.is_empty() {
        PinBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?
    };
    let pin = ext::reset_pin(&s.db, &number, given.pin).await?;
    accounts::audit(
        &s.db,
        &c.actor(),
        "extension.reset_pin",
        Some(&number),
        None,
        None,
    )
    .await?;
    Ok(ok(json!({ "number": number, "voicemail_pin": pin })))
}

// ---------------------------------------------------------------- live state

#[derive(Debug, Deserialize)]
struct RegQuery {
    extension: Option<String>,
}

async fn registrations(AxState(s): AxState<State>, Query(q): Query<RegQuery>) -> ApiResult {
    Ok(items(
        events::binding_views(&s.db, q.extension.as_deref()).await?,
    ))
}

async fn active_calls(AxState(s): AxState<State>) -> ApiResult {
    Ok(items(calls::active_call_views(&s.db).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrQuery {
    pub since: Option<String>,
    pub ext: Option<String>,
    pub limit: Option<u32>,
    /// `csv` for a CSV file.
    pub format: Option<String>,
}

/// The CDR as CSV (RFC 4180 quoting), for the API and the console's export.
pub fn cdr_csv(rows: &[calls::CdrView]) -> String {
    let q = |s: &str| {
        // A leading =, +, - or @ would be a formula in a spreadsheet: prefix it with a quote.
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    let mut out = String::from(
        "id,call_id,caller,callee,started_at,answered_at,ended_at,duration_secs,disposition,hung_up_by,reason\r\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\r\n",
            r.id,
            q(&r.call_id),
            q(&r.caller),
            q(&r.callee),
            r.started_at,
            r.answered_at.as_deref().unwrap_or(""),
            r.ended_at,
            r.duration_secs,
            q(&r.disposition),
            q(&r.hung_up_by),
            q(&r.reason)
        ));
    }
    out
}

pub async fn cdr_rows(s: &State, q: &CdrQuery) -> Result<Vec<calls::CdrView>, ApiError> {
    let since = q
        .since
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| parse_since(v, now_ms()))
        .transpose()?;
    Ok(calls::cdr_views(
        &s.db,
        since,
        q.ext.as_deref().filter(|e| !e.is_empty()),
        q.limit.unwrap_or(100),
    )
    .await?)
}

pub fn csv_response(body: String, filename: &str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        )
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn cdr(AxState(s): AxState<State>, Query(q): Query<CdrQuery>) -> ApiResult {
    let rows = cdr_rows(&s, &q).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(items(rows)),
        Some("csv") => Ok(csv_response(cdr_csv(&rows), "cdr.csv")),
        Some(other) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown format '{other}': expected json or csv"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub since: Option<String>,
    pub kind: Option<String>,
    /// The id of the last event of the previous page.
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

async fn list_events(AxState(s): AxState<State>, Query(q): Query<EventQuery>) -> ApiResult {
    let since = q
        .since
        .as_deref()
        .map(|v| parse_since(v, now_ms()))
        .transpose()?;
    let list = events::event_views(
        &s.db,
        since,
        q.kind.as_deref().filter(|k| !k.is_empty()),
        q.before,
        q.limit.unwrap_or(100),
    )
    .await?;
    let next = list.last().map(|e| e.id);
    Ok(ok(json!({ "items": list, "next_before": next })))
}

async fn stream(AxState(s): AxState<State>) -> Response {
    super::live::stream(&s).into_response()
}

// ---------------------------------------------------------------- IP lists

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewListEntry {
    prefix: String,
    /// Seconds (a number or a string of digits).
    expires: Option<Value>,
    note: Option<String>,
}

async fn list_entries(s: &State, list: List) -> ApiResult {
    let now = now_ms();
    let views: Vec<RuleView> =
        s.db.list_ip_rules()
            .await
            .map_err(anyhow::Error::new)?
            .iter()
            .filter(|r| r.action == list.action() && r.is_live(now))
            .map(|r| RuleView::new(r, now))
            .collect();
    Ok(items(views))
}

async fn add_entry(s: &State, c: &Caller, list: List, n: NewListEntry) -> ApiResult {
    let expires = match &n.expires {
        None | Some(Value::Null) => None,
        Some(Value::Number(v)) => Some(v.to_string()),
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires must be a number of seconds".into(),
            ));
        }
    };
    let (rule, replaced, warnings) =
        lists::add_entry(&s.db, list, &n.prefix, expires.as_deref(), n.note).await?;
    let now = now_ms();
    let entry = json!(RuleView::new(&rule, now));
    accounts::audit(
        &s.db,
        &c.actor(),
        &format!("{}.add", list.name()),
        Some(&rule.net),
        replaced.as_ref().map(|r| json!(RuleView::new(r, now))),
        Some(entry.clone()),
    )
    .await?;
    Ok(created(json!({ "entry": entry, "warnings": warnings })))
}

async fn remove_entry(s: &State, c: &Caller, list: List, prefix: &str) -> ApiResult {
    let old = lists::remove_entry(&s.db, list, prefix.trim_start_matches('/')).await?;
    let before = json!(RuleView::new(&old, now_ms()));
    accounts::audit(
        &s.db,
        &c.actor(),
        &format!("{}.remove", list.name()),
        Some(&old.net),
        Some(before.clone()),
        None,
    )
    .await?;
    Ok(ok(json!({ "removed": before })))
}

async fn list_black(AxState(s): AxState<State>) -> ApiResult {
    list_entries(&s, List::Black).await
}
async fn list_white(AxState(s): AxState<State>) -> ApiResult {
    list_entries(&s, List::White).await
}
async fn add_black(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(n): JsonBody<NewListEntry>,
) -> ApiResult {
    add_entry(&s, &c, List::Black, n).await
}
async fn add_white(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(n): JsonBody<NewListEntry>,
) -> ApiResult {
    add_entry(&s, &c, List::White, n).await
}
async fn remove_black(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(prefix): Path<String>,
) -> ApiResult {
    remove_entry(&s, &c, List::Black, &prefix).await
}
async fn remove_white(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(prefix): Path<String>,
) -> ApiResult {
    remove_entry(&s, &c, List::White, &prefix).await
}

// ---------------------------------------------------------------- settings and configuration

async fn get_security(AxState(s): AxState<State>) -> ApiResult {
    Ok(ok(crate::admin::security::settings_json(
        &s.db,
        &s.data_dir,
    )
    .await?))
}

async fn patch_security(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(body): JsonBody<serde_json::Map<String, Value>>,
) -> ApiResult {
    if body.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "nothing to change: give {\"SETTING\": VALUE, …} (GET /api/v1/security lists them)"
                .into(),
        ));
    }
    let before = crate::admin::security::settings_json(&s.db, &s.data_dir).await?;
    // Every value is checked before any is written: one bad value changes nothing.
    let mut checked = Vec::new();
    for (key, value) in &body {
        let text = match value {
            Value::String(v) => v.clone(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        checked.push((
            key.clone(),
            store::settings::normalize(key, &text).map_err(anyhow::Error::new)?,
        ));
    }
    for (key, value) in &checked {
        crate::admin::security::set(&s.db, &s.data_dir, key, value).await?;
    }
    let after = crate::admin::security::settings_json(&s.db, &s.data_dir).await?;
    accounts::audit(
        &s.db,
        &c.actor(),
        "security.set",
        None,
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(ok(after))
}

async fn policy(AxState(s): AxState<State>) -> ApiResult {
    Ok(ok(json!(
        s.db.policy_settings().await.map_err(anyhow::Error::new)?
    )))
}

/// `{"SETTING": VALUE, …}` as `palisade policy set` takes them (countries, office hours, local networks, PIN
/// unlock, limits…): every value is checked before any is written.
async fn patch_policy(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(body): JsonBody<serde_json::Map<String, Value>>,
) -> ApiResult {
    if body.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "nothing to change: give {\"SETTING\": VALUE, …} (GET /api/v1/policy lists them)"
                .into(),
        ));
    }
    let before = json!(s.db.policy_settings().await.map_err(anyhow::Error::new)?);
    let mut checked = Vec::new();
    for (key, value) in &body {
        let text = match value {
            Value::String(v) => v.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        checked.push((key.clone(), crate::admin::policy::check_policy(key, &text)?));
    }
    for (key, value) in &checked {
        s.db.set_setting(key, value)
            .await
            .map_err(anyhow::Error::new)?;
    }
    let after = json!(s.db.policy_settings().await.map_err(anyhow::Error::new)?);
    accounts::audit(
        &s.db,
        &c.actor(),
        "policy.set",
        None,
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(ok(after))
}

async fn countries(AxState(s): AxState<State>) -> ApiResult {
    let p = s.db.policy_settings().await.map_err(anyhow::Error::new)?;
    Ok(ok(json!({
        "home": p.country_code,
        "items": p.allowed_country_codes,
        "emergency_numbers": p.emergency_numbers,
    })))
}

async fn hours(AxState(s): AxState<State>) -> ApiResult {
    let p = s.db.policy_settings().await.map_err(anyhow::Error::new)?;
    Ok(ok(json!({
        "timezone": p.office_hours_timezone,
        "hours": p.office_hours,
        "holidays": p.holidays,
    })))
}

async fn rules(AxState(s): AxState<State>) -> ApiResult {
    Ok(items(
        s.db.list_outbound_rules()
            .await
            .map_err(anyhow::Error::new)?,
    ))
}

async fn trunks(AxState(s): AxState<State>) -> ApiResult {
    Ok(items(super::pages::trunk_views(&s).await?))
}

async fn dids(AxState(s): AxState<State>) -> ApiResult {
    Ok(items(s.db.list_dids().await.map_err(anyhow::Error::new)?))
}

async fn voicemail_list(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    Ok(items(voicemail::message_views(&s.db, &number).await?))
}

async fn voicemail_wav(
    AxState(s): AxState<State>,
    Path((number, id)): Path<(String, String)>,
) -> ApiResult {
    let id = message_id(&id)?;
    let root = crate::voicemail::files::root(&s.data_dir);
    let bytes = voicemail::message_wav(&s.db, &root, &number, id).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "audio/wav")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn voicemail_delete(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path((number, id)): Path<(String, String)>,
) -> ApiResult {
    let id = message_id(&id)?;
    let root = crate::voicemail::files::root(&s.data_dir);
    voicemail::delete(&s.db, &root, &number, id).await?;
    accounts::audit(
        &s.db,
        &c.actor(),
        "voicemail.delete",
        Some(&format!("{number}/{id}")),
        None,
        None,
    )
    .await?;
    Ok(ok(json!({ "deleted": id })))
}

/// A message id in a path: digits, optionally `.wav`.
pub fn message_id(s: &str) -> Result<i64, ApiError> {
    s.trim_end_matches(".wav").parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid message id '{s}': expected a number"),
        )
    })
}

async fn cert(AxState(s): AxState<State>) -> ApiResult {
    Ok(ok(super::pages::cert_json(&s)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

async fn audit(AxState(s): AxState<State>, Query(q): Query<AuditQuery>) -> ApiResult {
    let list =
        s.db.list_audit(q.before, q.limit.unwrap_or(100))
            .await
            .map_err(anyhow::Error::new)?;
    let next = list.last().map(|e| e.id);
    Ok(ok(json!({ "items": list, "next_before": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_messages_map_to_statuses() {
        assert_eq!(
            status_for("extension 100 does not exist (list them…)"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_for("203.0.113.7/32 is not on the blacklist (see …)"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_for("extension 100 already exists (change it…)"),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_for("invalid extension number 'x'"),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let row = calls::CdrView {
            id: 1,
            call_id: "a\"b".into(),
            caller: "=cmd".into(),
            callee: "101".into(),
            started_at: "t".into(),
            answered_at: None,
            ended_at: "u".into(),
            duration_secs: 3,
            disposition: "answered".into(),
            hung_up_by: "caller".into(),
            reason: "".into(),
        };
        let csv = cdr_csv(&[row]);
        assert!(csv.contains("\"a\"\"b\""), "{csv}");
        assert!(csv.contains("\"'=cmd\""), "{csv}");
    }
}
