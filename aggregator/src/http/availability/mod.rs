//! The availability endpoints of the HTTP API (docs/api.md, "Availability"): reports per
//! service or host here, [`incidents`] and [`maintenance`] windows beside. Reads need any
//! token; writes the admin role ([`crate::http::auth::admin`]).

pub mod incidents;
pub mod maintenance;

use axum::extract::{RawQuery, State};
use axum::routing::{delete, get, patch};
use axum::{Json, Router};

use crate::availability::config::ServiceConfig;
use crate::availability::records::{Incident, RecordError};
use crate::availability::service::{self, ServiceReport};
use crate::availability::{Interval, Verdict, total};
use crate::http::AppState;
use crate::http::dto::{
    self, AvailabilityReport, ErrorBody, IncidentChange, ServiceAvailability, TotalAvailability,
    rfc3339,
};
use crate::http::error::{ApiError, bad_request, internal, not_found};
use crate::http::params::{known_host, one, params, parse_time};
use nines_common::model::now_ms;

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
            get(incidents::list_incidents).post(incidents::create_incident),
        )
        .route("/api/v1/incidents/{id}", patch(incidents::update_incident))
        .route(
            "/api/v1/maintenance",
            get(maintenance::list_maintenance).post(maintenance::create_maintenance),
        )
        .route(
            "/api/v1/maintenance/{id}",
            delete(maintenance::delete_maintenance),
        )
}

/// Runs a read or write of the availability records off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RecordError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal("availability task", e))?
        .map_err(|e| internal("availability", e))
}

/// `from` and `to` (default: the 30 days up to now), at most 400 days apart.
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
        .ok_or_else(|| not_found(format!("unknown service {name:?}")))
}

/// Stable JSON: minutes to 1/1000; `+ 0.0` turns a -0.0 (a tiny negative rounded) into 0.
fn minutes(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0 + 0.0
}

/// Percentages to 1e-6, as [`minutes`].
fn percent(v: f64) -> f64 {
    (v * 1e6).round() / 1e6 + 0.0
}

/// An incident as the API shows it; `lost` minutes in reports and listings.
fn incident_dto(i: &Incident, lost: Option<f64>) -> dto::Incident {
    dto::Incident {
        id: i.id.clone(),
        service: i.service.clone(),
        automatic: i.automatic,
        title: i.title.clone(),
        start: rfc3339(i.start_ms),
        end: i.end_ms.and_then(rfc3339),
        start_ms: i.start_ms,
        end_ms: i.end_ms,
        share: i.share,
        impact: i.impact,
        acknowledged: i.acknowledged,
        root_cause: i.root_cause.clone(),
        follow_up: i.follow_up.clone(),
        customer_impacting: i.customer_impacting,
        history: i
            .history
            .iter()
            .map(|c| IncidentChange {
                at: rfc3339(c.at_ms),
                by: c.by.clone(),
                what: c.what.clone(),
            })
            .collect(),
        lost_minutes: lost.map(minutes),
    }
}

fn report_dto(r: &ServiceReport) -> ServiceAvailability {
    let s = &r.summary;
    let judged = r.verdict != Verdict::Unknown;
    ServiceAvailability {
        service: r.service.clone(),
        verdict: r.verdict,
        monitored_since: r.monitored_since.and_then(rfc3339),
        not_monitored_minutes: minutes(r.not_monitored_minutes),
        scheduled_minutes: minutes(s.scheduled_minutes),
        downtime_minutes: minutes(s.downtime_minutes),
        availability_percent: judged.then(|| percent(s.availability_percent)),
        target_percent: s.target_percent,
        met: r.verdict == Verdict::Met,
        error_budget_minutes: minutes(s.error_budget_minutes),
        error_budget_minutes_left: minutes(s.error_budget_minutes_left),
        maintenance_minutes: minutes(r.maintenance_minutes),
        incident_count: s.incident_count,
        mttr_minutes: s.mttr_minutes.map(minutes),
        mtbf_minutes: s.mtbf_minutes.map(minutes),
        incidents: r
            .incidents
            .iter()
            .map(|i| incident_dto(&i.incident, Some(i.lost_minutes)))
            .collect(),
        without_root_cause: r.without_root_cause.clone(),
    }
}

#[utoipa::path(get, path = "/api/v1/availability", tag = "availability", params(("service" = Option<String>, Query, description = "Service name"), ("host" = Option<String>, Query, description = "Host id"), ("target" = Option<f64>, Query, description = "Target percent for a host"), ("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-30d)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now)")), responses((status = 200, description = "Availability report", body = AvailabilityReport), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown service or host", body = ErrorBody)))]
pub(crate) async fn availability(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AvailabilityReport>, ApiError> {
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
            .map(|s| service::report(&store, &crate::alerts::persist::History, s, range, now))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let summaries: Vec<_> = reports.iter().map(|r| r.summary.clone()).collect();
    let t = total(&summaries);
    let verdict = total_verdict(reports.iter().map(|r| r.verdict));
    let judged = reports.iter().any(|r| r.verdict != Verdict::Unknown);
    Ok(Json(AvailabilityReport {
        from: rfc3339(range.start),
        to: rfc3339(range.end.min(now)),
        services: reports.iter().map(report_dto).collect(),
        total: TotalAvailability {
            verdict,
            weighted_percent: judged.then(|| percent(t.weighted_percent)),
            serial_percent: judged.then(|| percent(t.serial_percent)),
            met: verdict == Verdict::Met,
        },
    }))
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
