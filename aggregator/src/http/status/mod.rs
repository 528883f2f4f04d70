//! The status page (README, "Status page"): an overview of every service and host in red,
//! amber, green or grey, a page per host with SVG charts, a page per service with its
//! availability and incidents. Served on the API's port, behind the same tokens (entered once
//! at `/status/login` and kept in a cookie), or read-only without a token when `[status]
//! anonymous = true`.

pub mod health;
pub mod page;
pub mod svg;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use jiff::tz::TimeZone;

use crate::alerts::rules::{Kind, glob};
use crate::alerts::{Data, StoreData};
use crate::availability::Interval;
use crate::availability::config::ServiceConfig;
use crate::availability::service;
use crate::http::AppState;
use crate::http::params::{one, params};
use crate::ingest::now_ms;
use crate::store::{AggFn, HostRecord, Step, Store};
use health::{HostFacts, Status};
use page::{AlertRow, HostPage, IncidentRow, Overview, ServicePage};
use svg::{Threshold, Unit};

/// The cookie that keeps the token.
const COOKIE: &str = "nines_token";
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
            .filter_map(|svc| match service::report(store, svc, range, now) {
                Ok(r) => Some(ServiceMonth {
                    name: svc.name.clone(),
                    percent: (r.verdict != crate::availability::Verdict::Unknown)
                        .then_some(r.summary.availability_percent),
                    target: svc.target_percent,
                    budget_left: r.summary.error_budget_minutes_left,
                    open: r
                        .incidents
                        .iter()
                        .filter(|i| i.incident.end_ms.is_none() && i.incident.customer_impacting)
                        .map(incident_row)
                        .collect(),
                }),
                Err(e) => {
                    tracing::warn!(service = %svc.name, "status: {e}");
                    None
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
        .route("/status/host/{host}", get(host))
        .route("/status/service/{name}", get(service_page))
        .route_layer(middleware::from_fn_with_state(state, cookie_auth));
    Router::new()
        .route("/status/login", get(login_form).post(login))
        .route("/status/", get(|| async { Redirect::to("/status") }))
        .merge(pages)
}

fn cookie_token(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

async fn cookie_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.status_anonymous {
        return next.run(req).await;
    }
    let ok = cookie_token(&req).is_some_and(|t| state.caller(&t).is_some());
    if ok {
        return next.run(req).await;
    }
    if req.uri().path() == "/status/live" {
        return (StatusCode::UNAUTHORIZED, "log in at /status/login").into_response();
    }
    Redirect::to("/status/login").into_response()
}

fn login_page(error: Option<&str>) -> String {
    page::layout(
        "Log in",
        &format!(
            "{}<form method=post action=/status/login><p><label>API token<br>\
<input name=token type=password autocomplete=current-password required style=\"width:100%;max-width:30em\"></label></p>\
<p><button type=submit>Show status</button></p></form><p class=muted>The token is kept in a cookie for 30 days. \
Any API token works; `nines-aggregator token new --role read` makes one.</p>",
            error
                .map(|e| format!("<p class=r>{}</p>", page::esc(e)))
                .unwrap_or_default()
        ),
        false,
    )
}

async fn login_form() -> Html<String> {
    Html(login_page(None))
}

async fn login(State(state): State<AppState>, body: String) -> Response {
    let token = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    match state.caller(&token) {
        Some(caller) => {
            tracing::info!(token = %caller.name, "status page login");
            let cookie = format!(
                "{COOKIE}={}; Path=/status; HttpOnly; SameSite=Strict; Max-Age=2592000",
                form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            );
            let mut r = Redirect::to("/status").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Html(login_page(Some("That token is not valid."))),
        )
            .into_response(),
    }
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

fn host_href(host: &str) -> String {
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

/// Ranges a host page offers: name, length, step (`None`: raw points).
const RANGES: [(&str, i64, Option<i64>); 4] = [
    ("1h", 3_600_000, None),
    ("24h", 86_400_000, Some(300_000)),
    ("7d", 7 * 86_400_000, Some(1_800_000)),
    ("30d", 30 * 86_400_000, Some(7_200_000)),
];

/// One chart of the host page: title, unit, (metric, label filter, label that names a line,
/// suffix).
type ChartDef = (
    &'static str,
    Unit,
    &'static [(
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    )],
);

const CHARTS: [ChartDef; 7] = [
    (
        "CPU",
        Unit::Ratio,
        &[("cpu_usage_ratio", &[("cpu", "total")], "", "")],
    ),
    (
        "Memory used",
        Unit::Ratio,
        &[("memory_used_ratio", &[], "", "")],
    ),
    (
        "Swap used",
        Unit::Ratio,
        &[("swap_used_ratio", &[], "", "")],
    ),
    (
        "Disk I/O",
        Unit::BytesPerSecond,
        &[
            ("disk_read_bytes_per_second", &[], "device", " read"),
            ("disk_write_bytes_per_second", &[], "device", " write"),
        ],
    ),
    (
        "Filesystems used",
        Unit::Ratio,
        &[("filesystem_used_ratio", &[], "mount", "")],
    ),
    (
        "Network",
        Unit::BytesPerSecond,
        &[
            ("network_receive_bytes_per_second", &[], "interface", " in"),
            (
                "network_transmit_bytes_per_second",
                &[],
                "interface",
                " out",
            ),
        ],
    ),
    (
        "Watched processes",
        Unit::UpDown,
        &[("process_up", &[], "process", "")],
    ),
];

/// Lines per chart at most (the busiest are kept).
const MAX_LINES: usize = 6;

fn charts(state: &AppState, host: &str, (from, to): (i64, i64), step: Option<i64>) -> Vec<String> {
    let store = state.store();
    let rules = state
        .alerts
        .as_ref()
        .map(|a| a.read(|e| e.rules().rules.clone()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for (title, unit, defs) in CHARTS {
        let mut lines: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
        let mut thresholds = Vec::new();
        for (metric, filter, name_label, suffix) in defs {
            let matchers: Vec<(String, String)> = filter
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let step = step.map(|ms| Step {
                ms,
                agg: AggFn::Avg,
            });
            match store.query(host, metric, &matchers, (from, to), step, 100_000) {
                Ok((_, series)) => {
                    for s in series {
                        let name = s
                            .labels
                            .get(*name_label)
                            .and_then(|v| v.as_str())
                            .unwrap_or("");
                        if *name_label == "interface" && name == "lo" {
                            continue;
                        }
                        lines.push((format!("{name}{suffix}"), s.points));
                    }
                }
                Err(e) => tracing::warn!(host, metric, "status chart: {e}"),
            }
            for r in rules.iter().filter(|r| {
                r.kind == Kind::Threshold && r.metric == *metric && glob(&r.hosts, host)
            }) {
                thresholds.push(Threshold {
                    label: r.name.clone(),
                    value: r.threshold,
                    critical: r.severity == crate::alerts::rules::Severity::Critical,
                });
            }
        }
        if lines.len() > MAX_LINES {
            let peak = |p: &[(i64, f64)]| p.iter().map(|x| x.1).fold(0.0, f64::max);
            lines.sort_by(|a, b| peak(&b.1).total_cmp(&peak(&a.1)));
            lines.truncate(MAX_LINES);
        }
        out.push(svg::chart(title, unit, &lines, (from, to), &thresholds));
    }
    out
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

async fn host(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let p = params(raw);
    let range = one(&p, "range").unwrap_or("24h").to_owned();
    let Some(&(label, len, step)) = RANGES.iter().find(|r| r.0 == range) else {
        return (StatusCode::BAD_REQUEST, "range: use 1h, 24h, 7d or 30d").into_response();
    };
    let Some(rec) = state.store().host(&name) else {
        return not_found(&format!("No host {name:?} has reported."));
    };
    let body = blocking(move || {
        let now = now_ms();
        let alerts = alert_rows(&state, now);
        let data = StoreData::new(state.store(), &state.services);
        let status =
            health::host_status(&host_facts(state.store(), &data, &rec, &alerts, now), now);
        let tile = status.tile(&rec.host, host_href(&rec.host), None);
        let facts = vec![
            (
                "last sample".to_owned(),
                page::short_time(rec.last_sample_ms),
            ),
            ("agent".to_owned(), rec.agent_version.clone()),
            (
                "system".to_owned(),
                format!("{} {} {}", rec.os, rec.kernel, rec.arch),
            ),
            (
                "interval".to_owned(),
                format!("{} s", rec.interval_ms as f64 / 1000.0),
            ),
        ];
        let charts = charts(&state, &rec.host, (now - len, now), step);
        page::host(&HostPage {
            tile,
            facts,
            range: label.to_owned(),
            charts,
            reasons: status.reasons,
            alerts: alerts.into_iter().filter(|a| a.host == rec.host).collect(),
            now_ms: now,
        })
    })
    .await;
    match body {
        Ok(b) => html(b),
        Err(r) => r,
    }
}

async fn service_page(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(svc) = state.services.iter().find(|s| s.name == name).cloned() else {
        return not_found(&format!("No service {name:?} is configured."));
    };
    let body = blocking(move || {
        let now = now_ms();
        let store = state.store();
        let a = assess(&state, now);
        let status = state
            .services
            .iter()
            .position(|s| s.name == svc.name)
            .and_then(|i| a.services.get(i).cloned())
            .unwrap_or_else(|| health::service_status(&svc, &[], &[], now));
        let tile = status.tile(
            &svc.name,
            service_href(&svc.name),
            a.months
                .iter()
                .find(|m| m.name == svc.name)
                .and_then(|m| Some((m.percent?, m.target))),
        );
        let month = state
            .month_cache
            .get(store, &state.services, now)
            .into_iter()
            .find(|m| m.name == svc.name)
            .map_or((None, 0.0), |m| (m.percent, m.budget_left));
        let today = now - now.rem_euclid(86_400_000);
        let days = (0..30)
            .rev()
            .map(|d| {
                let start = today - d * 86_400_000;
                let range = Interval::new(start, (start + 86_400_000).min(now));
                let pct = service::report(store, &svc, range, now)
                    .ok()
                    .filter(|r| r.summary.scheduled_minutes > 0.0)
                    .map(|r| r.summary.availability_percent);
                (start, pct)
            })
            .collect();
        let mut incidents: Vec<IncidentRow> = service::report(
            store,
            &svc,
            Interval::new(today - 29 * 86_400_000, now),
            now,
        )
        .map(|r| r.incidents.iter().map(incident_row).collect())
        .unwrap_or_default();
        incidents.sort_by_key(|i| std::cmp::Reverse(i.start_ms));
        page::service(&ServicePage {
            tile,
            reasons: status.reasons,
            target: svc.target_percent,
            month,
            days,
            incidents,
            now_ms: now,
        })
    })
    .await;
    match body {
        Ok(b) => html(b),
        Err(r) => r,
    }
}

/// Builds an overview of `hosts` synthetic hosts (a tenth with a warning, one in fifty down)
/// and renders it, returning the page; `nines-aggregator bench status` times it.
pub fn synthetic_overview(hosts: usize, now: i64) -> Overview {
    let mut alerts = Vec::new();
    let recs: Vec<HostRecord> = (0..hosts)
        .map(|i| HostRecord {
            host: format!("host-{i:04}"),
            agent_version: "0.1.0".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            kernel: "6.1".into(),
            boot_id: String::new(),
            interval_ms: 10_000,
            first_seen_ms: now - 86_400_000,
            last_sample_ms: if i % 50 == 7 {
                now - 600_000
            } else {
                now - 5_000
            },
            last_seq: 0,
        })
        .collect();
    for (i, h) in recs.iter().enumerate().filter(|(i, _)| i % 10 == 3) {
        alerts.push(AlertRow {
            name: "HighCpu".into(),
            host: h.host.clone(),
            critical: false,
            since_ms: now - (i as i64) * 1000,
            summary: format!("CPU on {} averaged 0.93 for 15 minutes", h.host),
            muted: None,
        });
    }
    let hosts = recs
        .iter()
        .map(|h| {
            let f = HostFacts {
                host: h.host.clone(),
                interval_ms: i64::from(h.interval_ms),
                last_sample_ms: h.last_sample_ms,
                maintenance: None,
                processes: Vec::new(),
                checks: Vec::new(),
                alerts: alerts
                    .iter()
                    .filter(|a| a.host == h.host)
                    .cloned()
                    .collect(),
                stopped: false,
            };
            health::host_status(&f, now).tile(&h.host, host_href(&h.host), None)
        })
        .collect();
    Overview {
        services: Vec::new(),
        hosts,
        alerts,
        incidents: Vec::new(),
        now_ms: now,
    }
}

/// Shared by the handlers.
pub type SharedMonthCache = Arc<MonthCache>;

/// `nines-aggregator bench status`: the overview of `hosts` hosts, gathered from a real store
/// and rendered, `runs` times.
pub mod bench {
    use std::sync::Arc;
    use std::time::Instant;

    use nines_common::proto::Hello;
    use nines_common::{HostId, SeriesKey};

    use crate::http::AppState;
    use crate::ingest::{Connections, now_ms};
    use crate::store::{BatchWrite, HelloWrite, Store};

    /// What one run of the benchmark measured.
    #[derive(Debug)]
    pub struct Figures {
        /// Hosts on the page.
        pub hosts: usize,
        /// Gather and render, ms, median and slowest.
        pub full_ms: (f64, f64),
        /// Render alone (a tenth of the hosts with a warning alert), ms, median and slowest.
        pub render_ms: (f64, f64),
        /// Bytes of the page.
        pub bytes: usize,
    }

    fn median_max(mut v: Vec<f64>) -> (f64, f64) {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    }

    /// Runs it.
    pub async fn run(hosts: usize, runs: usize) -> anyhow::Result<Figures> {
        let dir = tempfile::tempdir()?;
        let (store, writer) = Store::open(&dir.path().join("nines.redb"))?;
        let now = now_ms();
        for i in 0..hosts {
            let host = HostId::new(format!("host-{i:04}"))?;
            store
                .hello(HelloWrite {
                    host: host.clone(),
                    hello: Hello {
                        protocol: 1,
                        agent_version: "0.1.0".into(),
                        host_id: host.to_string(),
                        boot_id: "b".into(),
                        os: "linux".into(),
                        arch: "x86_64".into(),
                        kernel: "6.1".into(),
                        interval_ms: 10_000,
                    },
                    now_ms: now - 3_600_000,
                })
                .await?;
            let id = store.series_id(&host, SeriesKey::new("host_uptime_seconds", &[]))?;
            let ts = if i % 50 == 7 {
                now - 600_000
            } else {
                now - 5_000
            };
            store
                .write_batch(BatchWrite {
                    host,
                    seq: 1,
                    points: vec![(id, ts, 1.0)],
                })
                .await?;
        }
        let state = AppState::new(store.clone(), &[], Arc::new(Connections::default()));
        let runs = runs.max(1);
        let (mut full, mut render) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let page = super::page::overview(&super::gather(&state, now_ms()));
            full.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = page.len();
            let t = Instant::now();
            let page = super::page::overview(&super::synthetic_overview(hosts, now_ms()));
            render.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(page);
        }
        drop(state);
        drop(store);
        tokio::task::spawn_blocking(move || writer.join()).await?;
        Ok(Figures {
            hosts,
            full_ms: median_max(full),
            render_ms: median_max(render),
            bytes,
        })
    }
}
