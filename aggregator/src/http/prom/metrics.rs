//! `GET /metrics` (the aggregator's own health) and `GET /federate` (the newest value of every
//! host series), in the Prometheus text format. Metric names are listed in docs/metrics.md.

use std::sync::atomic::Ordering;

use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::error::{ApiError, bad_request};
use crate::http::metrics::HttpMetrics;
use crate::http::params::params;
use crate::http::serve::ApiConnections;
use crate::ingest::now_ms;
use crate::promql::{self, LOOKBACK_MS, Matcher};
use crate::util::exposition::{CONTENT_TYPE, Exposition};
use crate::util::histogram::Snapshot;

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

fn internal(e: impl Into<crate::http::error::Cause>) -> ApiError {
    crate::http::error::internal("metrics", e)
}

/// The newest value in the lookback window of `host`'s series `name` (summed over its
/// labels, of which agent series of this kind have none).
fn latest(state: &AppState, host: &str, name: &str, now: i64) -> Option<f64> {
    let (_, series) = state
        .store()
        .query(host, name, &[], (now - LOOKBACK_MS, now), None, 100_000)
        .ok()?;
    let mut any = false;
    let mut sum = 0.0;
    for s in series {
        if let Some(&(_, v)) = s.points.last() {
            any = true;
            sum += v;
        }
    }
    any.then_some(sum)
}

/// `GET /metrics`.
pub async fn metrics(
    State(state): State<AppState>,
    api: Option<Extension<Arc<ApiConnections>>>,
) -> Result<Response, ApiError> {
    let st = state.clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut body = render(&st);
        render_api(&mut body, api.map(|a| a.0).as_deref());
        body.push_str(&render_http(&st.http));
        let mut e = Exposition::default();
        super::process::expose(&mut e);
        body.push_str(&e.finish());
        body
    })
    .await
    .map_err(internal)?;
    Ok(text(body))
}

/// The API port's connections (none counted where the router runs without the accept loop,
/// as in tests).
fn render_api(body: &mut String, api: Option<&ApiConnections>) {
    let mut e = Exposition::default();
    let none = ApiConnections::default();
    let api = api.unwrap_or(&none);
    let c = &api.counters;
    e.family(
        "nines_api_connections_open",
        "gauge",
        "Connections open on the API port, TLS handshakes and ones that have sent nothing yet included.",
    );
    e.sample("nines_api_connections_open", [], api.open() as f64, None);
    e.family(
        "nines_api_connections_refused_total",
        "counter",
        "API connections closed at once, before TLS and before reading: over [api] max_connections (each open one had sent something) or max_connections_per_address.",
    );
    for (reason, v) in [
        ("max_connections", &c.over_total),
        ("max_connections_per_address", &c.over_address),
    ] {
        e.sample(
            "nines_api_connections_refused_total",
            [("reason", reason)],
            v.load(Ordering::Relaxed) as f64,
            None,
        );
    }
    e.family(
        "nines_api_connections_closed_total",
        "counter",
        "API connections closed by the aggregator: nothing sent within idle_timeout, no whole request head within header_read_timeout, or closed while waiting for a first byte to make room at max_connections.",
    );
    for (reason, v) in [
        ("idle", &c.idle),
        ("header_timeout", &c.header_timeout),
        ("evicted", &c.evicted),
    ] {
        e.sample(
            "nines_api_connections_closed_total",
            [("reason", reason)],
            v.load(Ordering::Relaxed) as f64,
            None,
        );
    }
    body.push_str(&e.finish());
}

/// A histogram's `_bucket`, `_sum` and `_count` samples, each with `labels` (and `le`).
fn histogram(e: &mut Exposition, name: &str, labels: &[(&str, &str)], s: &Snapshot) {
    let bucket = format!("{name}_bucket");
    for (le, count) in &s.buckets {
        let le = crate::util::exposition::float(*le);
        e.sample(
            &bucket,
            labels.iter().copied().chain([("le", le.as_str())]),
            *count as f64,
            None,
        );
    }
    e.sample(
        &format!("{name}_sum"),
        labels.iter().copied(),
        s.sum_seconds,
        None,
    );
    e.sample(
        &format!("{name}_count"),
        labels.iter().copied(),
        s.count as f64,
        None,
    );
}

/// Requests by matched route template, method and status code.
fn render_http(http: &HttpMetrics) -> String {
    let mut e = Exposition::default();
    e.family(
        "nines_http_requests_total",
        "counter",
        "HTTP requests answered, by matched route template, method and status code.",
    );
    for ((route, method, code), n) in http.requests() {
        let code = code.to_string();
        e.sample(
            "nines_http_requests_total",
            [
                ("route", route.as_str()),
                ("method", method),
                ("code", code.as_str()),
            ],
            n as f64,
            None,
        );
    }
    e.family(
        "nines_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response head, by matched route template.",
    );
    for (route, s) in http.durations() {
        histogram(
            &mut e,
            "nines_http_request_duration_seconds",
            &[("route", route.as_str())],
            &s,
        );
    }
    e.finish()
}

fn render(state: &AppState) -> String {
    let store = state.store();
    let stats = store.stats();
    let mut e = Exposition::default();
    e.family(
        "nines_build_info",
        "gauge",
        "The aggregator's version; always 1.",
    );
    e.sample(
        "nines_build_info",
        [("version", env!("CARGO_PKG_VERSION"))],
        1.0,
        None,
    );
    let counters = [
        (
            "nines_ingest_samples_total",
            "Samples committed to the store since start (rate() of it is ingest samples/s).",
            stats.points.load(Ordering::Relaxed),
        ),
        (
            "nines_store_commits_total",
            "Group commits since start.",
            stats.commits.load(Ordering::Relaxed),
        ),
        (
            "nines_store_chunks_closed_total",
            "Chunks closed (compressed and written) since start.",
            stats.chunks_closed.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        e.family(name, "counter", help);
        e.sample(name, [], v as f64, None);
    }
    e.family(
        "nines_store_commit_duration_seconds",
        "histogram",
        "Time group commits took, durable sync included.",
    );
    histogram(
        &mut e,
        "nines_store_commit_duration_seconds",
        &[],
        &stats.commit_seconds.snapshot(),
    );
    e.family(
        "nines_store_last_commit_duration_seconds",
        "gauge",
        "Time the last group commit took.",
    );
    e.sample(
        "nines_store_last_commit_duration_seconds",
        [],
        stats.last_commit_us.load(Ordering::Relaxed) as f64 / 1e6,
        None,
    );
    e.family(
        "nines_store_failing",
        "gauge",
        "1 while the store refuses writes after a failed commit.",
    );
    e.sample(
        "nines_store_failing",
        [],
        f64::from(u8::from(store.failure().is_some())),
        None,
    );
    e.family("nines_store_series", "gauge", "Series in the catalog.");
    e.sample("nines_store_series", [], store.series_count() as f64, None);
    let hosts = store.hosts();
    e.family("nines_hosts", "gauge", "Hosts the aggregator knows.");
    e.sample("nines_hosts", [], hosts.len() as f64, None);
    e.family(
        "nines_agents_connected",
        "gauge",
        "Hosts with an agent connection open now.",
    );
    e.sample(
        "nines_agents_connected",
        [],
        state.connections().count() as f64,
        None,
    );
    let conns = state.connections();
    e.family(
        "nines_ingest_connections_open",
        "gauge",
        "Connections open on the ingest port, TLS handshakes included.",
    );
    e.sample(
        "nines_ingest_connections_open",
        [],
        conns.open() as f64,
        None,
    );
    e.family(
        "nines_ingest_connections_refused_total",
        "counter",
        "Ingest connections refused: over max_connections or max_connections_per_address (closed before TLS), a failed TLS handshake, a revoked certificate (refused at the handshake, or disconnected when revoked), no client certificate and no enrollment, or an enrollment refused unread after too many failed ones from its address.",
    );
    let r = &conns.refused;
    for (reason, v) in [
        ("max_connections", &r.over_total),
        ("max_connections_per_address", &r.over_address),
        ("handshake", &r.handshake),
        ("revoked", &r.revoked),
        ("no_certificate", &r.no_certificate),
        ("enrollment_rate_limit", &r.enroll_rate),
    ] {
        e.sample(
            "nines_ingest_connections_refused_total",
            [("reason", reason)],
            v.load(std::sync::atomic::Ordering::Relaxed) as f64,
            None,
        );
    }
    e.family(
        "nines_ingest_certificates_issued_total",
        "counter",
        "Agent certificates signed: for an enrollment token, or a renewal over an agent's connection.",
    );
    e.family(
        "nines_ingest_certificates_refused_total",
        "counter",
        "Enrollments (unknown, used or expired token, wrong host, bad request) and renewals refused.",
    );
    for (name, kind, v) in [
        (
            "nines_ingest_certificates_issued_total",
            "enrollment",
            &r.enrolled,
        ),
        (
            "nines_ingest_certificates_issued_total",
            "renewal",
            &r.renewed,
        ),
        (
            "nines_ingest_certificates_refused_total",
            "enrollment",
            &r.enroll_refused,
        ),
        (
            "nines_ingest_certificates_refused_total",
            "renewal",
            &r.renew_refused,
        ),
    ] {
        e.sample(
            name,
            [("kind", kind)],
            v.load(std::sync::atomic::Ordering::Relaxed) as f64,
            None,
        );
    }
    e.family(
        "nines_ingest_idle_closed_total",
        "counter",
        "Agent connections closed after idle_timeout without a frame.",
    );
    e.sample(
        "nines_ingest_idle_closed_total",
        [],
        r.idle.load(std::sync::atomic::Ordering::Relaxed) as f64,
        None,
    );
    e.family(
        "nines_ingest_series_points_refused_total",
        "counter",
        "Points dropped because their host was at max_series_per_host when the series was new.",
    );
    e.sample(
        "nines_ingest_series_points_refused_total",
        [],
        r.series_points.load(std::sync::atomic::Ordering::Relaxed) as f64,
        None,
    );
    e.family(
        "nines_ingest_points_refused_total",
        "counter",
        "Points refused at ingest, the rest of their batch stored: older than max_point_age, further ahead of the aggregator's clock than max_future, or a value that is not finite.",
    );
    for (reason, v) in [
        ("too_old", &r.points_too_old),
        ("too_far_in_future", &r.points_too_far_in_future),
        ("not_finite", &r.points_not_finite),
    ] {
        e.sample(
            "nines_ingest_points_refused_total",
            [("reason", reason)],
            v.load(Ordering::Relaxed) as f64,
            None,
        );
    }
    e.family(
        "nines_ingest_batches_refused_total",
        "counter",
        "Batches refused whole, with an Error frame and no ack, and their connection closed: a sequence number of 0 or above 2^63-1.",
    );
    e.sample(
        "nines_ingest_batches_refused_total",
        [("reason", "bad_sequence")],
        r.bad_sequence.load(Ordering::Relaxed) as f64,
        None,
    );
    let now = now_ms();
    let per_host = [
        (
            "nines_agent_spool_dropped_batches_total",
            "agent_spool_dropped_batches_total",
            "counter",
            "Batches each agent dropped from its spool (full or too old), since the agent started, as it last reported.",
        ),
        (
            "nines_agent_spool_pending_batches",
            "agent_spool_pending_batches",
            "gauge",
            "Batches waiting in each agent's spool, as it last reported.",
        ),
    ];
    for (name, source, kind, help) in per_host {
        e.family(name, kind, help);
        for h in &hosts {
            if let Some(v) = latest(state, &h.host, source, now) {
                e.sample(name, [("host", h.host.as_str())], v, None);
            }
        }
    }
    if let Some(alerts) = &state.alerts {
        e.family(
            "nines_alert_evaluation_duration_seconds",
            "histogram",
            "Time each evaluation of the alert rules took, saving the alert state included.",
        );
        histogram(
            &mut e,
            "nines_alert_evaluation_duration_seconds",
            &[],
            &alerts.evaluation_seconds(),
        );
        e.family(
            "nines_alert_evaluation_failures_total",
            "counter",
            "Alert evaluations that failed: a series could not be read, the alert state could not be saved, or the evaluation panicked.",
        );
        e.sample(
            "nines_alert_evaluation_failures_total",
            [],
            alerts.evaluation_failures() as f64,
            None,
        );
        let counts = alerts.notification_counts();
        e.family(
            "nines_notifications_sent_total",
            "counter",
            "Notifications delivered since start, by notifier.",
        );
        for (n, c) in &counts {
            e.sample(
                "nines_notifications_sent_total",
                [("notifier", n.as_str())],
                c.sent as f64,
                None,
            );
        }
        e.family(
            "nines_notifications_failed_total",
            "counter",
            "Failed notification attempts since start (retried or given up), by notifier.",
        );
        for (n, c) in &counts {
            e.sample(
                "nines_notifications_failed_total",
                [("notifier", n.as_str())],
                c.failed as f64,
                None,
            );
        }
    }
    if let Some(rw) = &state.remote_write {
        rw.expose(&mut e);
    }
    e.finish()
}

/// `GET /federate[?match[]=selector ...]`: the newest sample (within 5 min) of every series
/// the selectors pick (all series without one), with its timestamp.
pub async fn federate(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut given = Vec::new();
    for (k, v) in params(raw) {
        match k.as_str() {
            "match[]" => given.push(v),
            "federate" => {}
            other => return Err(bad_request(format!("unknown parameter {other:?}"))),
        }
    }
    let store = state.store().clone();
    let now = now_ms();
    let mut limits = state.queries.limits().parse;
    // Parsed (regexes compiled) and evaluated through the query gate, off the async threads.
    let body = state
        .queries
        .run(move |deadline| -> Result<String, ApiError> {
            let mut selectors = Vec::new();
            for v in &given {
                match promql::parse_limited(v, limits) {
                    Ok(promql::Expr::Vector(s)) => {
                        limits = crate::promql::Limits::remaining(limits, &s.matchers);
                        selectors.push(s.matchers)
                    }
                    Ok(_) => {
                        return Err(bad_request(format!("match[]={v:?}: use a series selector")));
                    }
                    Err(e) => return Err(bad_request(format!("match[]={v:?}: {e}"))),
                }
            }
            if selectors.is_empty() {
                // Every series: `{__name__=~".+"}`.
                selectors.push(vec![
                    Matcher::new("__name__", promql::MatchOp::Re, ".+").map_err(bad_request)?,
                ]);
            }
            let mut budget = super::Budget::until(deadline);
            let mut all = std::collections::BTreeMap::new();
            for m in &selectors {
                for s in super::load(&store, m, (now - LOOKBACK_MS, now), &mut budget)
                    .map_err(load_error)?
                {
                    if let Some(&last) = s.points.last() {
                        all.insert(s.labels, last);
                    }
                }
            }
            let mut e = Exposition::default();
            let mut family = String::new();
            // Sorted by labels, and `__name__` sorts first: one family after another.
            for (labels, (ts, v)) in &all {
                let name = labels
                    .iter()
                    .find(|(k, _)| k == "__name__")
                    .map_or("", |(_, v)| v.as_str());
                if name != family {
                    e.family(name, "untyped", "");
                    family = name.to_owned();
                }
                e.sample(
                    name,
                    labels
                        .iter()
                        .filter(|(k, _)| k != "__name__")
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    *v,
                    Some(*ts),
                );
            }
            Ok(e.finish())
        })
        .await
        .map_err(|e| match e {
            super::limits::GateError::Failed => internal(e),
            e => ApiError::Unavailable(e.to_string()),
        })??;
    Ok(text(body))
}

fn load_error(e: super::LoadError) -> ApiError {
    match e {
        super::LoadError::TooManySamples => ApiError::Unprocessable(e.to_string()),
        super::LoadError::Timeout => ApiError::Unavailable(e.to_string()),
        super::LoadError::Store(e) => internal(e),
    }
}
