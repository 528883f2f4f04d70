//! The alert endpoints of the HTTP API (docs/api.md, "Alerts"): active alerts, their history,
//! the rules in force, the notification log, and silences. Reads need any token; creating and
//! expiring silences the admin role.

use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::alerts::matcher::MatcherJson;
use crate::alerts::{Alerting, Muted, Silence, persist};
use crate::http::availability::admin;
use crate::http::openapi::ErrorBody;
use crate::http::{ApiError, AppState, Caller, bad_request, one, params, parse_time, rfc3339};
use crate::ingest::now_ms;

/// The routes, to be merged behind the token check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/alerts/rules", get(rules))
        .route("/api/v1/alerts/notifications", get(notifications))
        .route("/api/v1/silences", get(silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
}

fn engine(state: &AppState) -> Result<Arc<Alerting>, ApiError> {
    state.alerts.clone().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "alerting is not running".into(),
        )
    })
}

fn internal(e: persist::PersistError) -> ApiError {
    crate::http::internal("alerts", e)
}

fn limit(p: &[(String, String)]) -> Result<usize, ApiError> {
    match one(p, "limit") {
        None => Ok(1000),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| bad_request(format!("limit={v:?}: use 1 to 10000"))),
    }
}

fn muted_json(m: &Option<Muted>) -> Value {
    match m {
        None => Value::Null,
        Some(m) => serde_json::to_value(m).unwrap_or(Value::Null),
    }
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", responses((status = 200, description = "Active alerts", body = Object), (status = 503, description = "Alerting not running", body = ErrorBody)))]
pub(crate) async fn alerts(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let a = engine(&state)?;
    let now = now_ms();
    let list: Vec<Value> = a.read(|e| {
        e.active(now)
            .into_iter()
            .map(|(al, muted)| {
                json!({
                    "fingerprint": al.fingerprint,
                    "alertname": al.rule,
                    "state": al.state,
                    "severity": al.labels.get("severity"),
                    "since": rfc3339(al.firing_since_ms.unwrap_or(al.active_since_ms)),
                    "active_since": rfc3339(al.active_since_ms),
                    "value": al.value,
                    "labels": al.labels,
                    "annotations": al.annotations,
                    "flapping": al.flapping,
                    "muted": muted_json(&muted),
                })
            })
            .collect()
    });
    Ok(Json(json!({ "alerts": list })))
}

#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts", responses((status = 200, description = "Rules in force", body = Object), (status = 503, description = "Alerting not running", body = ErrorBody)))]
pub(crate) async fn rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let a = engine(&state)?;
    let error = a.reload_error();
    Ok(Json(a.read(|e| {
        let r = e.rules();
        json!({
            "evaluation_interval_seconds": r.evaluation_interval.as_secs_f64(),
            "reload_error": error,
            "rules": r.rules.iter().map(|x| json!({
                "name": x.name,
                "kind": format!("{:?}", x.kind),
                "condition": x.condition(),
                "hosts": x.hosts,
                "for_seconds": x.for_.as_secs_f64(),
                "keep_firing_for_seconds": x.keep_firing_for.as_secs_f64(),
                "clear": x.clear,
                "severity": x.severity,
                "notify": x.notify,
                "summary": x.summary,
                "runbook": x.runbook,
                "group_by": x.group_by,
            })).collect::<Vec<_>>(),
            "notifiers": r.notifiers.keys().collect::<Vec<_>>(),
            "mute_windows": r.mutes.iter().map(|m| &m.name).collect::<Vec<_>>(),
        })
    })))
}

#[utoipa::path(get, path = "/api/v1/alerts/history", tag = "alerts", params(("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-6h)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now-6h)"), ("limit" = Option<usize>, Query, description = "1 to 10000")), responses((status = 200, description = "State changes, newest first", body = Object), (status = 400, description = "Bad parameter", body = ErrorBody)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let a = engine(&state)?;
    let p = params(raw);
    let to = match one(&p, "to") {
        Some(v) => parse_time("to", v)?,
        None => now_ms(),
    };
    let from = match one(&p, "from") {
        Some(v) => parse_time("from", v)?,
        None => 0,
    };
    let limit = limit(&p)?;
    let rows = tokio::task::spawn_blocking(move || persist::history(a.store(), (from, to), limit))
        .await
        .map_err(|e| crate::http::internal("alerts task", e))?
        .map_err(internal)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|t| {
            json!({
                "at": rfc3339(t.at_ms),
                "fingerprint": t.fingerprint,
                "alertname": t.labels.get("alertname"),
                "labels": t.labels,
                "from": t.from,
                "to": t.to,
                "value": t.value,
            })
        })
        .collect();
    Ok(Json(json!({ "transitions": list })))
}

#[utoipa::path(get, path = "/api/v1/alerts/notifications", tag = "alerts", params(("limit" = Option<usize>, Query, description = "1 to 10000")), responses((status = 200, description = "Delivery attempts, newest first", body = Object), (status = 400, description = "Bad parameter", body = ErrorBody)))]
pub(crate) async fn notifications(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let a = engine(&state)?;
    let limit = limit(&params(raw))?;
    let rows = tokio::task::spawn_blocking(move || persist::attempts(a.store(), limit))
        .await
        .map_err(|e| crate::http::internal("alerts task", e))?
        .map_err(internal)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|t| {
            json!({
                "at": rfc3339(t.at_ms),
                "notification": t.notification,
                "notifier": t.notifier,
                "group_key": t.group_key,
                "status": t.status,
                "alerts": t.alerts,
                "attempt": t.attempt,
                "ok": t.ok,
                "error": t.error,
                "gave_up": t.gave_up,
            })
        })
        .collect();
    Ok(Json(json!({ "attempts": list })))
}

fn silence_json(s: &Silence, now: i64) -> Value {
    let status = if s.active(now) {
        "active"
    } else if now < s.starts_at_ms {
        "pending"
    } else {
        "expired"
    };
    json!({
        "id": s.id.to_string(),
        "matchers": s.matchers,
        "startsAt": rfc3339(s.starts_at_ms),
        "endsAt": rfc3339(s.ends_at_ms),
        "createdBy": s.created_by,
        "comment": s.comment,
        "status": { "state": status },
    })
}

#[utoipa::path(get, path = "/api/v1/silences", tag = "alerts", responses((status = 200, description = "Silences", body = Object)))]
pub(crate) async fn silences(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let a = engine(&state)?;
    let now = now_ms();
    let list: Vec<Value> = a.read(|e| e.silences().iter().map(|s| silence_json(s, now)).collect());
    Ok(Json(json!({ "silences": list })))
}

/// `POST /api/v1/silences`, in Alertmanager's shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewSilence {
    matchers: Vec<MatcherJson>,
    starts_at: Option<String>,
    ends_at: String,
    created_by: Option<String>,
    comment: String,
}

#[utoipa::path(post, path = "/api/v1/silences", tag = "alerts", request_body(content = Object, description = "Alertmanager-shaped silence: matchers, startsAt, endsAt, comment, createdBy", content_type = "application/json"), responses((status = 201, description = "The silence", body = Object), (status = 400, description = "Bad silence", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&caller)?;
    let a = engine(&state)?;
    let Json(b) = body.map_err(|e| bad_request(e.body_text()))?;
    let now = now_ms();
    let starts = match &b.starts_at {
        Some(v) => parse_time("startsAt", v)?,
        None => now,
    };
    let ends = parse_time("endsAt", &b.ends_at)?;
    if b.comment.trim().is_empty() {
        return Err(bad_request(
            "comment is required: say why alerts are silenced",
        ));
    }
    let s = Silence {
        id: 0,
        matchers: b.matchers,
        starts_at_ms: starts,
        ends_at_ms: ends,
        created_by: b.created_by.unwrap_or_else(|| caller.name.clone()),
        comment: b.comment,
    };
    let created = a
        .with_engine(|e| e.add_silence(s))
        .map_err(internal)?
        .map_err(bad_request)?;
    tracing::info!(id = created.id, by = %caller.name, "silence created");
    Ok((StatusCode::CREATED, Json(silence_json(&created, now))))
}

#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "alerts", params(("id" = String, Path, description = "Silence id")), responses((status = 200, description = "The expired silence", body = Object), (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 404, description = "No such silence", body = ErrorBody)))]
pub(crate) async fn expire_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    let a = engine(&state)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no silence {id:?}")))?;
    let now = now_ms();
    match a
        .with_engine(|e| e.expire_silence(id, now))
        .map_err(internal)?
    {
        Some(s) => Ok(Json(silence_json(&s, now))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no silence {id}"))),
    }
}
