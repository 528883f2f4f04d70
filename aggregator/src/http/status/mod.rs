//! The status page (README, "Status page"): an overview of every service and host in red,
//! amber, green or grey, a page per host with SVG charts, a page per service with its
//! availability and incidents. Served on the API's port, behind the same tokens (entered once
//! at `/status/login` and kept in a cookie), or read-only without a token when `[status]
//! anonymous = true`.

pub mod health;
mod host;
mod login;
pub mod page;
mod service_page;
pub mod svg;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use jiff::tz::TimeZone;

use crate::alerts::{Data, StoreData};
use crate::availability::Interval;
use crate::availability::config::ServiceConfig;
use crate::availability::service;
use crate::http::AppState;
use crate::store::{HostRecord, Store};
use health::{HostFacts, Status};
use nines_common::model::now_ms;
use page::{AlertRow, IncidentRow, Overview};

/// How long month figures are reused before they are computed again.
const MONTH_CACHE_MS: i64 = 60_000;

/// Month figures of every service, computed at most once a minute.
#[derive(Debug, Default)]
pub struct MonthCache {
    inner: Mutex<Option<(i64, Vec<ServiceMonth>)>>,
}

/// One service this month.
#[derive(Debug, Clone)]
pub struct ServiceMonth {
    name: String,
    /// `None` when nothing of the month was monitored.
    percent: Option<f64>,
    target: f64,
    budget_left: f64,
    open: Vec<IncidentRow>,
}

fn month_start(now: i64) -> i64 {
    jiff::Timestamp::from_millisecond(now)
        .ok()
        .and_then(|t| {
            t.to_zoned(TimeZone::UTC)
                .date()
                .first_of_month()
                .to_zoned(TimeZone::UTC)
                .ok()
        })
        .map_or(now - 30 * 86_400_000, |z| z.timestamp().as_millisecond())
}

fn incident_row(r: &service::ReportedIncident) -> IncidentRow {
    IncidentRow {
        service: r.incident.service.clone(),
        title: r.incident.title.clone(),
        start_ms: r.incident.start_ms,
        end_ms: r.incident.end_ms,
        root_cause: r.incident.root_cause.clone(),
        lost_minutes: r.lost_minutes,
    }
}

impl MonthCache {
    fn get(&self, store: &Store, services: &[ServiceConfig], now: i64) -> Vec<ServiceMonth> {
        let mut g = crate::util::sync::lock(&self.inner);
        if let Some((at, v)) = &*g
            && now - at < MONTH_CACHE_MS
        {
            return v.clone();
        }
        let range = Interval::new(month_start(now), now);
        let v: Vec<ServiceMonth> = services
            .iter()
            .filter_map(|svc| {
                match service::report(store, &crate::alerts::persist::History, svc, range, now) {
                    Ok(r) => Some(ServiceMonth {
                        name: svc.name.clone(),
                        percent: (r.verdict != crate::availability::Verdict::Unknown)
                            .then_some(r.summary.availability_percent),
                        target: svc.target_percent,
                        budget_left: r.summary.error_budget_minutes_left,
                        open: r
                            .incidents
                            .iter()
                            .filter(|i| {
                                i.incident.end_ms.is_none() && i.incident.customer_impacting
                            })
                            .map(incident_row)
                            .collect(),
                    }),
                    Err(e) => {
                        tracing::warn!(service = %svc.name, "status: {e}");
                        None
                    }
                }
            })
            .collect();
        *g = Some((now, v.clone()));
        v
    }
}

/// The routes, with their own cookie check.
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/status", get(overview))
        .route("/status/live", get(live))
        .route("/status/host/{host}", get(host::host))
        .route("/status/service/{name}", get(service_page::service_page))
        .route_layer(middleware::from_fn_with_state(state, login::cookie_auth));
    Router::new()
        .route("/status/login", get(login::login_form).post(login::login))
        .route("/status/", get(|| async { Redirect::to("/status") }))
        .merge(pages)
}

/// Newest value per `label` of `metric` on `host` since `from`: what the host page's legends
/// show as "now".
fn newest(
    store: &Store,
    host: &str,
    metric: &str,
    label: &str,
    from: i64,
    now: i64,
) -> Vec<(String, f64)> {
    match store.query(host, metric, &[], (from, now), None, 100_000) {
        Ok((_, series)) => {
            let mut out: Vec<(String, f64)> = series
                .iter()
                .filter_map(|s| {
                    let name = s.labels.get(label).and_then(|v| v.as_str())?;
                    let last = s.points.iter().rev().find(|p| p.1.is_finite())?;
                    Some((name.to_owned(), last.1))
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Err(e) => {
            tracing::warn!(host, metric, "status: {e}");
            Vec::new()
        }
    }
}

/// What is known now about one host, from the store, the alerts and maintenance: the only
/// input of [`health::host_status`], for the overview and the host page alike.
pub fn host_facts(
    store: &Store,
    data: &StoreData<'_>,
    h: &HostRecord,
    alerts: &[AlertRow],
    now: i64,
) -> HostFacts {
    let interval_ms = i64::from(h.interval_ms.max(1000));
    // Around the newest sample: a watch the agent no longer reports is not "now".
    let from = h.last_sample_ms - crate::availability::gaps::DOWN_AFTER_INTERVALS * interval_ms;
    let (processes, checks) = if h.last_sample_ms > 0 {
        (
            newest(store, &h.host, "process_up", "process", from, now),
            newest(store, &h.host, "check_status", "check", from, now),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    HostFacts {
        host: h.host.clone(),
        interval_ms,
        last_sample_ms: h.last_sample_ms,
        maintenance: data.maintenance(&h.host, now),
        processes,
        checks,
        alerts: alerts
            .iter()
            .filter(|a| a.host == h.host)
            .cloned()
            .collect(),
        // Only a silent host can have stopped: no read for the others.
        stopped: now - h.last_sample_ms
            > crate::availability::gaps::DOWN_AFTER_INTERVALS * interval_ms
            && crate::alerts::said_goodbye(store, h),
    }
}

/// The address of a host's status page.
pub fn host_href(host: &str) -> String {
    format!("/status/host/{}", page::seg(host))
}

fn service_href(name: &str) -> String {
    format!("/status/service/{}", page::seg(name))
}

/// The state of everything, assessed once for a page.
struct Assessed {
    hosts: Vec<(HostFacts, Status)>,
    /// In `state.services` order.
    services: Vec<Status>,
    months: Vec<ServiceMonth>,
    alerts: Vec<AlertRow>,
}

fn assess(state: &AppState, now: i64) -> Assessed {
    let store = state.store();
    let alerts = alert_rows(state, now);
    let data = StoreData::new(store, &state.services);
    let hosts: Vec<(HostFacts, Status)> = store
        .hosts()
        .iter()
        .map(|h| {
            let f = host_facts(store, &data, h, &alerts, now);
            let s = health::host_status(&f, now);
            (f, s)
        })
        .collect();
    let months = state.month_cache.get(store, &state.services, now);
    let services = state
        .services
        .iter()
        .map(|svc| {
            let members: Vec<(&HostFacts, &Status)> = hosts
                .iter()
                .filter(|(f, _)| svc.members.contains(&f.host))
                .map(|(f, s)| (f, s))
                .collect();
            let open = months
                .iter()
                .find(|m| m.name == svc.name)
                .map(|m| m.open.as_slice())
                .unwrap_or_default();
            health::service_status(svc, &members, open, now)
        })
        .collect();
    Assessed {
        hosts,
        services,
        months,
        alerts,
    }
}

fn alert_rows(state: &AppState, now: i64) -> Vec<AlertRow> {
    let Some(a) = &state.alerts else {
        return Vec::new();
    };
    let mut rows: Vec<AlertRow> = a.read(|e| {
        e.active(now)
            .into_iter()
            .filter(|(al, _)| al.state == crate::alerts::State::Firing)
            .map(|(al, muted)| AlertRow {
                name: al.rule.clone(),
                host: al.labels.get("host").cloned().unwrap_or_default(),
                critical: al.labels.get("severity").map(String::as_str) == Some("critical"),
                since_ms: al.firing_since_ms.unwrap_or(al.active_since_ms),
                summary: al.annotations.get("summary").cloned().unwrap_or_default(),
                muted: muted.map(|m| match m {
                    crate::alerts::Muted::Silence { id } => format!("silence {id}"),
                    crate::alerts::Muted::MuteWindow { name } => name,
                    crate::alerts::Muted::Maintenance { title } => title,
                    crate::alerts::Muted::Inhibited { .. } => "host down".into(),
                }),
            })
            .collect()
    });
    rows.sort_by(|a, b| {
        b.critical
            .cmp(&a.critical)
            .then(a.since_ms.cmp(&b.since_ms))
    });
    rows
}

/// Everything the overview shows, from the store, the alerts and the month cache.
pub fn gather(state: &AppState, now: i64) -> Overview {
    let a = assess(state, now);
    let services = state
        .services
        .iter()
        .zip(&a.services)
        .map(|(svc, st)| {
            let month = a.months.iter().find(|m| m.name == svc.name);
            st.tile(
                &svc.name,
                service_href(&svc.name),
                month.and_then(|m| Some((m.percent?, m.target))),
            )
        })
        .collect();
    Overview {
        services,
        hosts: a
            .hosts
            .iter()
            .map(|(f, s)| s.tile(&f.host, host_href(&f.host), None))
            .collect(),
        alerts: a.alerts,
        incidents: a.months.iter().flat_map(|m| m.open.clone()).collect(),
        now_ms: now,
    }
}

fn html(body: String) -> Response {
    let mut r = Html(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("status page: {e}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::http::error::INTERNAL_ERROR,
        )
            .into_response()
    })
}

async fn overview(State(state): State<AppState>) -> Response {
    match blocking(move || page::overview(&gather(&state, now_ms()))).await {
        Ok(b) => html(b),
        Err(r) => r,
    }
}

async fn live(State(state): State<AppState>) -> Response {
    match blocking(move || page::overview_live(&gather(&state, now_ms()))).await {
        Ok(b) => html(b),
        Err(r) => r,
    }
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page::layout(
            "Not found",
            &format!("<p>{}</p>", page::esc(what)),
            false,
        )),
    )
        .into_response()
}

/// Shared by the handlers.
pub type SharedMonthCache = Arc<MonthCache>;
