//! The availability endpoints of the HTTP API (docs/api.md, "Availability"): reports per
//! service or host, incidents, and maintenance windows. Reads need any token; writes the
//! admin role.

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::availability::config::ServiceConfig;
use crate::availability::records::{
    self, Change, Incident, Maintenance, MaintenanceWhen, RecordError,
};
use crate::availability::service::{self, ServiceReport};
use crate::availability::{Interval, Verdict, total};
use crate::config::Role;
use crate::http::openapi::ErrorBody;
use crate::http::{ApiError, AppState, Caller, bad_request, one, params, parse_time, rfc3339};
use crate::ingest::now_ms;

/// Default report period when `from` is not given: the last 30 days.
const DEFAULT_PERIOD_MS: i64 = 30 * 24 * 3600 * 1000;
/// Longest period one request may cover.
const MAX_PERIOD_MS: i64 = 400 * 24 * 3600 * 1000;

/// The routes, to be merged behind the token check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/availability", get(availability))
        .route(
            "/api/v1/incidents",
            get(list_incidents).post(create_incident),
        )
        .route("/api/v1/incidents/{id}", patch(update_incident))
        .route(
            "/api/v1/maintenance",
            get(list_maintenance).post(create_maintenance),
        )
        .route("/api/v1/maintenance/{id}", delete(delete_maintenance))
}

pub(crate) fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} has the read role; this needs admin",
                caller.name
            ),
        ))
    }
}

fn internal(e: RecordError) -> ApiError {
    crate::http::internal("availability", e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RecordError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::http::internal("availability task", e))?
        .map_err(internal)
}

fn period(p: &[(String, String)], now: i64) -> Result<Interval, ApiError> {
    let to = match one(p, "to") {
        Some(v) => parse_time("to", v)?,
        None => now,
    };
    let from = match one(p, "from") {
        Some(v) => parse_time("from", v)?,
        None => (to - DEFAULT_PERIOD_MS).max(crate::util::time::MIN_MS),
    };
    if from >= to {
        return Err(bad_request("from must be before to"));
    }
    if to - from > MAX_PERIOD_MS {
        return Err(bad_request("the period is longer than 400 days"));
    }
    Ok(Interval::new(from, to))
}

fn find_service<'a>(state: &'a AppState, name: &str) -> Result<&'a ServiceConfig, ApiError> {
    state
        .services
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown service {name:?}")))
}

fn known_host(state: &AppState, host: &str) -> Result<(), ApiError> {
    match state.store().host(host) {
        Some(_) => Ok(()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown host {host:?}"),
        )),
    }
}

fn minutes(v: f64) -> Value {
    // Stable JSON: minutes to 1/1000, percentages to 1e-6; `+ 0.0` turns a -0.0 (a tiny
    // negative rounded) into 0.
    json!((v * 1000.0).round() / 1000.0 + 0.0)
}

fn percent(v: f64) -> f64 {
    (v * 1e6).round() / 1e6 + 0.0
}

fn incident_json(i: &Incident, lost: Option<f64>) -> Value {
    let mut v = json!({
        "id": i.id,
        "service": i.service,
        "automatic": i.automatic,
        "title": i.title,
        "start": rfc3339(i.start_ms),
        "end": i.end_ms.map_or(Value::Null, rfc3339),
        "start_ms": i.start_ms,
        "end_ms": i.end_ms,
        "share": i.share,
        "impact": i.impact,
        "acknowledged": i.acknowledged,
        "root_cause": i.root_cause,
        "follow_up": i.follow_up,
        "customer_impacting": i.customer_impacting,
        "history": i.history.iter().map(|c| json!({
            "at": rfc3339(c.at_ms), "by": c.by, "what": c.what,
        })).collect::<Vec<_>>(),
    });
    if let Some(l) = lost {
        v["lost_minutes"] = minutes(l);
    }
    v
}

fn report_json(r: &ServiceReport) -> Value {
    let s = &r.summary;
    let judged = r.verdict != Verdict::Unknown;
    json!({
        "service": r.service,
        "verdict": r.verdict,
        "monitored_since": r.monitored_since.map_or(Value::Null, rfc3339),
        "not_monitored_minutes": minutes(r.not_monitored_minutes),
        "scheduled_minutes": minutes(s.scheduled_minutes),
        "downtime_minutes": minutes(s.downtime_minutes),
        "availability_percent": if judged { json!(percent(s.availability_percent)) } else { Value::Null },
        "target_percent": s.target_percent,
        "met": r.verdict == Verdict::Met,
        "error_budget_minutes": minutes(s.error_budget_minutes),
        "error_budget_minutes_left": minutes(s.error_budget_minutes_left),
        "maintenance_minutes": minutes(r.maintenance_minutes),
        "incident_count": s.incident_count,
        "mttr_minutes": s.mttr_minutes.map(minutes),
        "mtbf_minutes": s.mtbf_minutes.map(minutes),
        "incidents": r.incidents.iter().map(|i| incident_json(&i.incident, Some(i.lost_minutes))).collect::<Vec<_>>(),
        "without_root_cause": r.without_root_cause,
    })
}

#[utoipa::path(get, path = "/api/v1/availability", tag = "availability", params(("service" = Option<String>, Query, description = "Service name"), ("host" = Option<String>, Query, description = "Host id"), ("target" = Option<f64>, Query, description = "Target percent for a host"), ("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-30d)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now)")), responses((status = 200, description = "Availability report", body = Object), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown service or host", body = ErrorBody)))]
pub(crate) async fn availability(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = params(raw);
    for (k, _) in &p {
        if !["service", "host", "from", "to", "target"].contains(&k.as_str()) {
            return Err(bad_request(format!("unknown parameter {k:?}")));
        }
    }
    let now = now_ms();
    let range = period(&p, now)?;
    let services: Vec<ServiceConfig> = match (one(&p, "service"), one(&p, "host")) {
        (Some(_), Some(_)) => return Err(bad_request("give service or host, not both")),
        (Some(s), None) => vec![find_service(&state, s)?.clone()],
        (None, Some(h)) => {
            known_host(&state, h)?;
            let target = match one(&p, "target") {
                None => 99.9,
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| *t > 0.0 && *t <= 100.0)
                    .ok_or_else(|| {
                        bad_request(format!("target={v:?}: use a percent such as 99.9"))
                    })?,
            };
            vec![ServiceConfig::for_host(h, target)]
        }
        (None, None) => state.services.to_vec(),
    };
    let store = state.store().clone();
    let reports = blocking(move || {
        services
            .iter()
            .map(|s| service::report(&store, s, range, now))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let summaries: Vec<_> = reports.iter().map(|r| r.summary.clone()).collect();
    let t = total(&summaries);
    let verdict = total_verdict(reports.iter().map(|r| r.verdict));
    let judged = reports.iter().any(|r| r.verdict != Verdict::Unknown);
    Ok(Json(json!({
        "from": rfc3339(range.start),
        "to": rfc3339(range.end.min(now)),
        "services": reports.iter().map(report_json).collect::<Vec<_>>(),
        "total": {
            "verdict": verdict,
            "weighted_percent": if judged { json!(percent(t.weighted_percent)) } else { Value::Null },
            "serial_percent": if judged { json!(percent(t.serial_percent)) } else { Value::Null },
            "met": verdict == Verdict::Met,
        },
    })))
}

/// Missed if any part missed; else unknown if any part has nothing to judge (or there is no
/// part); else met.
fn total_verdict(parts: impl Iterator<Item = Verdict>) -> Verdict {
    let parts: Vec<Verdict> = parts.collect();
    if parts.contains(&Verdict::Missed) {
        Verdict::Missed
    } else if parts.is_empty() || parts.contains(&Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Met
    }
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "availability", params(("service" = Option<String>, Query, description = "Service name"), ("host" = Option<String>, Query, description = "Host id: the host's own incidents"), ("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-30d)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now)")), responses((status = 200, description = "Incidents", body = Object), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown service", body = ErrorBody)))]
pub(crate) async fn list_incidents(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = params(raw);
    for (k, _) in &p {
        if !["service", "host", "from", "to"].contains(&k.as_str()) {
            return Err(bad_request(format!("unknown parameter {k:?}")));
        }
    }
    let now = now_ms();
    let range = period(&p, now)?;
    let services: Vec<ServiceConfig> = match (one(&p, "service"), one(&p, "host")) {
        (Some(_), Some(_)) => return Err(bad_request("give service or host, not both")),
        (Some(s), None) => vec![find_service(&state, s)?.clone()],
        (None, Some(h)) => {
            known_host(&state, h)?;
            vec![ServiceConfig::for_host(h, 99.9)]
        }
        // Every service's, and every host's own.
        (None, None) => {
            let mut all = state.services.to_vec();
            all.extend(
                state
                    .store()
                    .hosts()
                    .iter()
                    .map(|h| ServiceConfig::for_host(&h.host, 99.9)),
            );
            all
        }
    };
    let store = state.store().clone();
    let mut list = blocking(move || {
        let mut out = Vec::new();
        for s in &services {
            out.extend(service::report(&store, s, range, now)?.incidents);
        }
        Ok(out)
    })
    .await?;
    list.sort_by_key(|i| i.incident.start_ms);
    Ok(Json(json!({
        "incidents": list.iter().map(|i| incident_json(&i.incident, Some(i.lost_minutes))).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIncident {
    service: String,
    title: String,
    start: Value,
    #[serde(default)]
    end: Option<Value>,
    #[serde(default)]
    share: Option<f64>,
    #[serde(default)]
    share_group: Option<String>,
    #[serde(default)]
    impact: Option<f64>,
}

fn time_value(name: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => {
            let ms = n.as_i64().ok_or_else(|| {
                bad_request(format!(
                    "{name}: use milliseconds, RFC 3339 or now-relative (now-1h)"
                ))
            })?;
            crate::util::time::checked(name, &n.to_string(), ms)
                .map_err(|e| bad_request(e.to_string()))
        }
        Value::String(s) => parse_time(name, s),
        _ => Err(bad_request(format!(
            "{name}: use milliseconds, RFC 3339 or now-relative (now-1h)"
        ))),
    }
}

fn fraction(name: &str, v: Option<f64>) -> Result<f64, ApiError> {
    let v = v.unwrap_or(1.0);
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(bad_request(format!("{name} = {v}: use 0 to 1")))
    }
}

fn body<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| bad_request(format!("body: {e}")))
}

#[utoipa::path(post, path = "/api/v1/incidents", tag = "availability", request_body(content = Object, description = "A manual incident: service, title, start, end, share or share_group, impact", content_type = "application/json"), responses((status = 201, description = "The incident", body = Object), (status = 400, description = "Bad incident", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_incident(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    text: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&caller)?;
    let n: NewIncident = body(&text)?;
    let svc = find_service(&state, &n.service)?;
    let start_ms = time_value("start", &n.start)?;
    let end_ms = n.end.as_ref().map(|e| time_value("end", e)).transpose()?;
    if end_ms.is_some_and(|e| e <= start_ms) {
        return Err(bad_request("end must be after start"));
    }
    let share = match (&n.share_group, n.share) {
        (Some(_), Some(_)) => return Err(bad_request("give share or share_group, not both")),
        (Some(g), None) => svc.share_of(g).ok_or_else(|| {
            bad_request(format!("service {:?} has no share group {g:?}", svc.name))
        })?,
        (None, s) => fraction("share", s)?,
    };
    let inc = Incident {
        id: String::new(),
        service: svc.name.clone(),
        automatic: false,
        title: n.title,
        start_ms,
        end_ms,
        share,
        impact: fraction("impact", n.impact)?,
        acknowledged: false,
        root_cause: None,
        follow_up: Vec::new(),
        customer_impacting: true,
        history: vec![Change {
            at_ms: now_ms(),
            by: caller.name.clone(),
            what: "reported".into(),
        }],
    };
    let store = state.store().clone();
    let inc = blocking(move || records::create_incident(&store, inc)).await?;
    Ok((StatusCode::CREATED, Json(incident_json(&inc, None))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentPatch {
    #[serde(default)]
    acknowledged: Option<bool>,
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    follow_up: Option<Vec<String>>,
    #[serde(default)]
    customer_impacting: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    end: Option<Value>,
}

#[utoipa::path(patch, path = "/api/v1/incidents/{id}", tag = "availability", params(("id" = String, Path, description = "Incident id")), request_body(content = Object, description = "Fields to change: acknowledged, root_cause, follow_up, ...", content_type = "application/json"), responses((status = 200, description = "The incident", body = Object), (status = 400, description = "Bad change", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 404, description = "No such incident", body = ErrorBody)))]
pub(crate) async fn update_incident(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    text: String,
) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    let p: IncidentPatch = body(&text)?;
    if p.customer_impacting == Some(false)
        && p.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        return Err(bad_request("customer_impacting = false needs a reason"));
    }
    let end_ms = p.end.as_ref().map(|e| time_value("end", e)).transpose()?;
    let store = state.store().clone();
    let services = state.services.clone();
    let now = now_ms();
    let updated =
        tokio::task::spawn_blocking(move || -> Result<Result<Incident, ApiError>, RecordError> {
            let stored = records::incidents(&store)?.into_iter().find(|i| i.id == id);
            let mut inc = match stored {
                Some(i) => i,
                None => {
                    // An automatic incident is stored on its first annotation.
                    let Some((svc, start)) = id
                        .strip_prefix("auto:")
                        .and_then(|r| r.rsplit_once(':'))
                        .and_then(|(s, t)| Some((s.to_owned(), t.parse::<i64>().ok()?)))
                        .filter(|(_, t)| crate::util::time::in_range(*t) && *t < now)
                    else {
                        return Ok(Err(ApiError(
                            StatusCode::NOT_FOUND,
                            format!("no incident {id:?}"),
                        )));
                    };
                    let host = svc
                        .strip_prefix("host:")
                        .filter(|h| store.host(h).is_some())
                        .map(|h| ServiceConfig::for_host(h, 99.9));
                    let Some(cfg) = services.iter().find(|s| s.name == svc).or(host.as_ref())
                    else {
                        return Ok(Err(ApiError(
                            StatusCode::NOT_FOUND,
                            format!("no incident {id:?}"),
                        )));
                    };
                    let look = Interval::new(start, now);
                    match service::automatic_incidents(&store, cfg, look, now)?
                        .into_iter()
                        .find(|i| i.id == id)
                    {
                        Some(i) => i,
                        None => {
                            return Ok(Err(ApiError(
                                StatusCode::NOT_FOUND,
                                format!("no incident {id:?}"),
                            )));
                        }
                    }
                }
            };
            let mut what = Vec::new();
            if let Some(a) = p.acknowledged {
                inc.acknowledged = a;
                what.push(format!("acknowledged = {a}"));
            }
            if let Some(r) = p.root_cause {
                what.push(format!("root cause: {r}"));
                inc.root_cause = Some(r);
            }
            if let Some(f) = p.follow_up {
                what.push(format!("follow-up: {}", f.join("; ")));
                inc.follow_up = f;
            }
            if let Some(e) = end_ms {
                if inc.automatic || e <= inc.start_ms {
                    return Ok(Err(bad_request(
                        "end: only a manual incident's end can be set, after its start",
                    )));
                }
                inc.end_ms = Some(e);
                what.push("end set".into());
            }
            if let Some(c) = p.customer_impacting {
                inc.customer_impacting = c;
                let reason = p.reason.unwrap_or_default();
                what.push(format!("customer_impacting = {c}: {reason}"));
            }
            if what.is_empty() {
                return Ok(Err(bad_request("nothing to change")));
            }
            inc.history.push(Change {
                at_ms: now,
                by: caller.name.clone(),
                what: what.join(", "),
            });
            records::put_incident(&store, &inc)?;
            Ok(Ok(inc))
        })
        .await
        .map_err(|e| crate::http::internal("availability task", e))?
        .map_err(internal)??;
    Ok(Json(incident_json(&updated, None)))
}

fn maintenance_json(m: &Maintenance) -> Value {
    let mut v = json!({
        "id": m.id,
        "services": m.services,
        "title": m.title,
        "created_by": m.created_by,
    });
    match &m.when {
        MaintenanceWhen::Once { start_ms, end_ms } => {
            v["kind"] = json!("once");
            v["start"] = rfc3339(*start_ms);
            v["end"] = rfc3339(*end_ms);
        }
        MaintenanceWhen::Weekly {
            time_zone,
            days,
            start,
            end,
        } => {
            v["kind"] = json!("weekly");
            v["time_zone"] = json!(time_zone);
            v["days"] = json!(days);
            v["start"] = json!(start);
            v["end"] = json!(end);
        }
    }
    v
}

#[utoipa::path(get, path = "/api/v1/maintenance", tag = "availability", responses((status = 200, description = "Maintenance windows", body = Object)))]
pub(crate) async fn list_maintenance(
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store().clone();
    let list = blocking(move || records::maintenance(&store)).await?;
    Ok(Json(
        json!({ "maintenance": list.iter().map(maintenance_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMaintenance {
    #[serde(default)]
    services: Vec<String>,
    title: String,
    kind: String,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    end: Option<Value>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    days: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/maintenance", tag = "availability", request_body(content = Object, description = "services, title, kind (once or weekly), start, end, ...", content_type = "application/json"), responses((status = 201, description = "The window", body = Object), (status = 400, description = "Bad window", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_maintenance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    text: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&caller)?;
    let n: NewMaintenance = body(&text)?;
    for s in &n.services {
        find_service(&state, s)?;
    }
    let need = |v: &Option<Value>, name: &str| {
        v.clone()
            .ok_or_else(|| bad_request(format!("missing {name}")))
    };
    let when = match n.kind.as_str() {
        "once" => MaintenanceWhen::Once {
            start_ms: time_value("start", &need(&n.start, "start")?)?,
            end_ms: time_value("end", &need(&n.end, "end")?)?,
        },
        "weekly" => {
            let text = |v: Value, name: &str| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad_request(format!("{name}: use \"HH:MM\""))),
            };
            MaintenanceWhen::Weekly {
                time_zone: n.time_zone.unwrap_or_else(|| "UTC".into()),
                days: n.days,
                start: text(need(&n.start, "start")?, "start")?,
                end: text(need(&n.end, "end")?, "end")?,
            }
        }
        k => {
            return Err(bad_request(format!(
                "kind = {k:?}: use \"once\" or \"weekly\""
            )));
        }
    };
    when.validate().map_err(bad_request)?;
    let m = Maintenance {
        id: 0,
        services: n.services,
        title: n.title,
        when,
        created_by: caller.name.clone(),
    };
    let store = state.store().clone();
    let m = blocking(move || records::create_maintenance(&store, m)).await?;
    Ok((StatusCode::CREATED, Json(maintenance_json(&m))))
}

#[utoipa::path(delete, path = "/api/v1/maintenance/{id}", tag = "availability", params(("id" = String, Path, description = "Window id")), responses((status = 200, description = "The deleted window", body = Object), (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 404, description = "No such window", body = ErrorBody)))]
pub(crate) async fn delete_maintenance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    let store = state.store().clone();
    if blocking(move || records::delete_maintenance(&store, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no maintenance window {id}"),
        ))
    }
}
