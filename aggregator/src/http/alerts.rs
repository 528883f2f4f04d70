//! The alert endpoints of the HTTP API (docs/api.md, "Alerts"): active alerts, their history,
//! the rules in force, the notification log, and silences. Reads need any token; creating and
//! expiring silences the admin role.

use std::sync::Arc;

use crate::alerts::{Alerting, Silence, persist};
use crate::http::AppState;
use crate::http::auth::{Caller, admin};
use crate::http::dto::{
    self, AlertList, AttemptList, ErrorBody, NewSilence, RuleList, SilenceList, SilenceState,
    SilenceStatus, TransitionList, rfc3339,
};
use crate::http::error::{ApiError, bad_request, internal, not_found};
use crate::http::params::{one, params, parse_time};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use nines_common::model::now_ms;

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
    state
        .alerts
        .clone()
        .ok_or_else(|| ApiError::Unavailable("alerting is not running".into()))
}

fn persist_error(e: persist::PersistError) -> ApiError {
    internal("alerts", e)
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

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", responses((status = 200, description = "Active alerts", body = AlertList), (status = 503, description = "Alerting not running", body = ErrorBody)))]
pub(crate) async fn alerts(State(state): State<AppState>) -> Result<Json<AlertList>, ApiError> {
    let a = engine(&state)?;
    let now = now_ms();
    let alerts = a.read(|e| {
        e.active(now)
            .into_iter()
            .map(|(al, muted)| dto::Alert {
                fingerprint: al.fingerprint.clone(),
                alertname: al.rule.clone(),
                state: al.state,
                severity: al.labels.get("severity").cloned(),
                since: rfc3339(al.firing_since_ms.unwrap_or(al.active_since_ms)),
                active_since: rfc3339(al.active_since_ms),
                value: al.value,
                labels: al.labels.clone(),
                annotations: al.annotations.clone(),
                flapping: al.flapping,
                muted: muted.map(dto::Muted::from),
            })
            .collect()
    });
    Ok(Json(AlertList { alerts }))
}

#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts", responses((status = 200, description = "Rules in force", body = RuleList), (status = 503, description = "Alerting not running", body = ErrorBody)))]
pub(crate) async fn rules(State(state): State<AppState>) -> Result<Json<RuleList>, ApiError> {
    let a = engine(&state)?;
    let reload_error = a.reload_error();
    Ok(Json(a.read(|e| {
        let r = e.rules();
        RuleList {
            evaluation_interval_seconds: r.evaluation_interval.as_secs_f64(),
            reload_error,
            rules: r
                .rules
                .iter()
                .map(|x| dto::Rule {
                    name: x.name.clone(),
                    kind: format!("{:?}", x.kind),
                    condition: x.condition(),
                    hosts: x.hosts.clone(),
                    for_seconds: x.for_.as_secs_f64(),
                    keep_firing_for_seconds: x.keep_firing_for.as_secs_f64(),
                    clear: x.clear,
                    severity: x.severity,
                    notify: x.notify.clone(),
                    summary: x.summary.clone(),
                    runbook: x.runbook.clone(),
                    group_by: x.group_by.clone(),
                })
                .collect(),
            notifiers: r.notifiers.keys().cloned().collect(),
            mute_windows: r.mutes.iter().map(|m| m.name.clone()).collect(),
        }
    })))
}

#[utoipa::path(get, path = "/api/v1/alerts/history", tag = "alerts", params(("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-6h)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now-6h)"), ("limit" = Option<usize>, Query, description = "1 to 10000")), responses((status = 200, description = "State changes, newest first", body = TransitionList), (status = 400, description = "Bad parameter", body = ErrorBody)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TransitionList>, ApiError> {
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
        .map_err(|e| internal("alerts task", e))?
        .map_err(persist_error)?;
    let transitions = rows
        .into_iter()
        .map(|t| dto::Transition {
            at: rfc3339(t.at_ms),
            fingerprint: t.fingerprint,
            alertname: t.labels.get("alertname").cloned(),
            labels: t.labels,
            from: t.from,
            to: t.to,
            value: t.value,
        })
        .collect();
    Ok(Json(TransitionList { transitions }))
}

#[utoipa::path(get, path = "/api/v1/alerts/notifications", tag = "alerts", params(("limit" = Option<usize>, Query, description = "1 to 10000")), responses((status = 200, description = "Delivery attempts, newest first", body = AttemptList), (status = 400, description = "Bad parameter", body = ErrorBody)))]
pub(crate) async fn notifications(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AttemptList>, ApiError> {
    let a = engine(&state)?;
    let limit = limit(&params(raw))?;
    let rows = tokio::task::spawn_blocking(move || persist::attempts(a.store(), limit))
        .await
        .map_err(|e| internal("alerts task", e))?
        .map_err(persist_error)?;
    let attempts = rows
        .into_iter()
        .map(|t| dto::Attempt {
            at: rfc3339(t.at_ms),
            notification: t.notification,
            notifier: t.notifier,
            group_key: t.group_key,
            status: t.status,
            alerts: t.alerts,
            attempt: t.attempt,
            ok: t.ok,
            error: t.error,
            gave_up: t.gave_up,
        })
        .collect();
    Ok(Json(AttemptList { attempts }))
}

fn silence_dto(s: &Silence, now: i64) -> dto::Silence {
    let state = if s.active(now) {
        SilenceState::Active
    } else if now < s.starts_at_ms {
        SilenceState::Pending
    } else {
        SilenceState::Expired
    };
    dto::Silence {
        id: s.id.to_string(),
        matchers: s.matchers.iter().cloned().map(dto::Matcher::from).collect(),
        starts_at: rfc3339(s.starts_at_ms),
        ends_at: rfc3339(s.ends_at_ms),
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
        status: SilenceStatus { state },
    }
}

#[utoipa::path(get, path = "/api/v1/silences", tag = "alerts", responses((status = 200, description = "Silences", body = SilenceList)))]
pub(crate) async fn silences(State(state): State<AppState>) -> Result<Json<SilenceList>, ApiError> {
    let a = engine(&state)?;
    let now = now_ms();
    let silences = a.read(|e| e.silences().iter().map(|s| silence_dto(s, now)).collect());
    Ok(Json(SilenceList { silences }))
}

#[utoipa::path(post, path = "/api/v1/silences", tag = "alerts", request_body(content = NewSilence, description = "A silence, in Alertmanager's shape", content_type = "application/json"), responses((status = 201, description = "The silence", body = dto::Silence), (status = 400, description = "Bad silence", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<dto::Silence>), ApiError> {
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
        matchers: b.matchers.into_iter().map(Into::into).collect(),
        starts_at_ms: starts,
        ends_at_ms: ends,
        created_by: b.created_by.unwrap_or_else(|| caller.name.clone()),
        comment: b.comment,
    };
    let created = a
        .with_engine(|e| e.add_silence(s))
        .map_err(persist_error)?
        .map_err(bad_request)?;
    tracing::info!(id = created.id, by = %caller.name, "silence created");
    Ok((StatusCode::CREATED, Json(silence_dto(&created, now))))
}

#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "alerts", params(("id" = String, Path, description = "Silence id")), responses((status = 200, description = "The expired silence", body = dto::Silence), (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 404, description = "No such silence", body = ErrorBody)))]
pub(crate) async fn expire_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<dto::Silence>, ApiError> {
    admin(&caller)?;
    let a = engine(&state)?;
    let id: u64 = id
        .parse()
        .map_err(|_| not_found(format!("no silence {id:?}")))?;
    let now = now_ms();
    match a
        .with_engine(|e| e.expire_silence(id, now))
        .map_err(persist_error)?
    {
        Some(s) => Ok(Json(silence_dto(&s, now))),
        None => Err(not_found(format!("no silence {id}"))),
    }
}
