//! The HTTP API (docs/api.md): JSON over axum, bearer tokens checked against SHA-256 hashes.
//! [`router`] builds the routes; serving them is the caller's business.

pub mod alerts;
pub mod availability;
pub mod forecast;
mod layers;
pub mod metrics;
pub mod openapi;
pub mod prom;
pub mod serve;
pub mod status;
pub mod tls;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::config::{Role, TokenConfig};
use crate::http::openapi::ErrorBody;
use crate::ingest::{Connections, now_ms};
use crate::store::{AggFn, HostRecord, QueryError, Step, Store};

/// Longest range one query may cover.
const MAX_QUERY_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;
/// Points a query returns at most unless it asks for another bound.
const DEFAULT_MAX_POINTS: u64 = 11_000;
/// The highest `max_points` a query may ask for.
const MAX_MAX_POINTS: u64 = 1_000_000;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    store: Store,
    tokens: Arc<Vec<(Vec<u8>, Role, String)>>,
    connections: Arc<Connections>,
    pub(crate) services: Arc<Vec<crate::availability::config::ServiceConfig>>,
    pub(crate) alerts: Option<Arc<crate::alerts::Alerting>>,
    pub(crate) status_anonymous: bool,
    pub(crate) month_cache: crate::http::status::SharedMonthCache,
    pub(crate) remote_write: Option<Arc<crate::remote_write::RemoteWrite>>,
    pub(crate) queries: crate::http::prom::limits::QueryGate,
    pub(crate) http: Arc<crate::http::metrics::HttpMetrics>,
}

impl AppState {
    /// State over a store, the configured tokens and the ingest connection table.
    pub fn new(store: Store, tokens: &[TokenConfig], connections: Arc<Connections>) -> Self {
        let tokens = tokens
            .iter()
            .map(|t| (hex_decode(&t.sha256), t.role, t.name.clone()))
            .collect();
        Self {
            store,
            tokens: Arc::new(tokens),
            connections,
            services: Arc::default(),
            alerts: None,
            status_anonymous: false,
            month_cache: Arc::default(),
            remote_write: None,
            queries: Default::default(),
            http: Arc::default(),
        }
    }

    /// What one query may cost (`[api] query_*`).
    pub fn with_query_limits(mut self, limits: crate::http::prom::limits::QueryLimits) -> Self {
        self.queries = crate::http::prom::limits::QueryGate::new(limits);
        self
    }

    /// Whether the status page answers without a token (`[status] anonymous`).
    pub fn with_anonymous_status(mut self, anonymous: bool) -> Self {
        self.status_anonymous = anonymous;
        self
    }

    /// Who holds `token`, if it is a configured one. Compares against every configured hash
    /// in constant time, so timing reveals nothing.
    pub(crate) fn caller(&self, token: &str) -> Option<Caller> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut found = None;
        for (hash, r, name) in self.tokens.iter() {
            if constant_time_eq(hash, digest.as_ref()) {
                found = Some(Caller {
                    role: *r,
                    name: name.clone(),
                });
            }
        }
        found
    }

    /// The alert engine the alert endpoints answer from.
    pub fn with_alerts(mut self, alerts: Arc<crate::alerts::Alerting>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The services availability is reported on.
    pub fn with_services(
        mut self,
        services: Vec<crate::availability::config::ServiceConfig>,
    ) -> Self {
        self.services = Arc::new(services);
        self
    }

    /// The remote-write forwarder, whose counters `/metrics` shows.
    pub fn with_remote_write(mut self, rw: Arc<crate::remote_write::RemoteWrite>) -> Self {
        self.remote_write = Some(rw);
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn connections(&self) -> &Connections {
        &self.connections
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex SHA-256 of a token, as configured in `[[api.tokens]]`.
pub fn token_hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who made a request: the role and name of the token it presented.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the token may do.
    pub role: Role,
    /// The token's configured name.
    pub name: String,
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nines\""),
            );
        }
        r
    }
}

pub(crate) fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// What every 5xx answer says. The cause (store errors, file paths, panics) is for the log
/// only: it would tell a caller about the machine, and a caller can do nothing about it.
pub(crate) const INTERNAL_ERROR: &str = "internal error; the aggregator log has the details";

/// A failure on the server's side: logs `what` and the cause, answers 500 with
/// [`INTERNAL_ERROR`].
pub(crate) fn internal(what: &str, cause: impl std::fmt::Display) -> ApiError {
    tracing::error!("{what}: {cause}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR.into())
}

/// Runs blocking work off the async threads; a panic in it is a 500 like any other failure.
pub(crate) async fn spawn_blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(what, e))
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{host}", get(host))
        .route("/api/v1/series", get(series))
        .route("/api/v1/query", get(query))
        .merge(crate::http::availability::routes())
        .merge(crate::http::alerts::routes())
        .merge(crate::http::forecast::routes())
        .route("/metrics", get(crate::http::prom::metrics::metrics))
        .route("/federate", get(crate::http::prom::metrics::federate))
        .merge(crate::http::prom::api::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(crate::http::openapi::openapi_json))
        .merge(protected)
        .merge(crate::http::status::routes(state.clone()))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(state.clone());
    // Outermost, so that the status it counts is the one sent (a panic's 500 included).
    crate::http::layers::wrap(app).layer(middleware::from_fn_with_state(
        state.http.clone(),
        crate::http::metrics::record,
    ))
}

async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credential);
    let presented = presented.as_deref();
    let Some(token) = presented else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <token>".into(),
        )
        .into_response();
    };
    match state.caller(token) {
        Some(role) => {
            let mut req = req;
            req.extensions_mut().insert(role);
            next.run(req).await
        }
        None => ApiError(StatusCode::UNAUTHORIZED, "invalid bearer token".into()).into_response(),
    }
}

/// The token an `Authorization` value carries: `Bearer <token>`, or the password of
/// `Basic base64(user:password)` (clients that cannot send a bearer token, promtool and some
/// Grafana setups, send the token as the password, with any user name). The scheme is
/// case-insensitive (RFC 7235 section 2.1).
fn credential(header: &str) -> Option<String> {
    let (scheme, rest) = header.trim_start().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The store accepts writes", body = Object), (status = 503, description = "The store refuses writes", body = Object)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.failure() {
        None => Json(json!({
            "status": "ok",
            "agents_connected": state.connections.count(),
        }))
        .into_response(),
        // The store logged the whole reason when the commit failed.
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "failing", "reason": public_failure(&reason) })),
        )
            .into_response(),
    }
}

/// What `/healthz`, which answers anyone, says of a store that refuses writes: the kind of
/// failure an operator acts on, not the error's text, which names files and carries redb's
/// own messages.
fn public_failure(reason: &str) -> &'static str {
    if reason.contains("No space left") || reason.contains("os error 28") {
        "the store refuses writes: No space left on device; the aggregator log has the details"
    } else if reason.contains("quota exceeded") || reason.contains("os error 122") {
        "the store refuses writes: disk quota exceeded; the aggregator log has the details"
    } else {
        "the store refuses writes after a failed commit; the aggregator log has the details"
    }
}

/// A stored time as the API writes it: RFC 3339, or `null` for "never" (0 or less) and for a
/// value outside the years 1970 to 9999, which no formatter can write.
pub(crate) fn rfc3339(ms: i64) -> Value {
    if ms <= 0 {
        return Value::Null;
    }
    crate::util::time::rfc3339_ms(ms).map_or(Value::Null, Value::String)
}

fn host_json(h: &HostRecord, connections: &Connections, now: i64) -> Value {
    let down_after = 3 * i64::from(h.interval_ms.max(1000));
    let up = h.last_sample_ms > 0 && now - h.last_sample_ms <= down_after;
    json!({
        "id": h.host,
        "up": up,
        "connected": connections.is_connected(&h.host),
        "last_seen_ms": h.last_sample_ms,
        "last_seen": rfc3339(h.last_sample_ms),
        "first_seen": rfc3339(h.first_seen_ms),
        "agent_version": h.agent_version,
        "os": h.os,
        "arch": h.arch,
        "kernel": h.kernel,
        "boot_id": h.boot_id,
        "interval_ms": h.interval_ms,
    })
}

#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", responses((status = 200, description = "Every host, sorted by id", body = Object)))]
pub(crate) async fn hosts(State(state): State<AppState>) -> Json<Value> {
    let now = now_ms();
    let hosts: Vec<Value> = state
        .store
        .hosts()
        .iter()
        .map(|h| host_json(h, &state.connections, now))
        .collect();
    Json(json!({ "hosts": hosts }))
}

#[utoipa::path(get, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "Host id")), responses((status = 200, description = "One host", body = Object), (status = 404, description = "Unknown host", body = ErrorBody)))]
pub(crate) async fn host(
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = state
        .store
        .host(&host)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("unknown host {host:?}")))?;
    Ok(Json(host_json(&rec, &state.connections, now_ms())))
}

pub(crate) fn params(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn one<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn known_host(state: &AppState, params: &[(String, String)]) -> Result<String, ApiError> {
    let host = one(params, "host").ok_or_else(|| bad_request("missing parameter host"))?;
    if state.store.host(host).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown host {host:?}"),
        ));
    }
    Ok(host.to_owned())
}

/// A query's error: too many points is the caller's to fix (400), a store error is not (500).
pub(crate) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::TooManyPoints { .. } => bad_request(e.to_string()),
        QueryError::Store(e) => internal("query", e),
    }
}

/// Parses a time parameter: integer milliseconds since the epoch, or RFC 3339, in the years
/// 1970 to 9999 (anything else is a 400).
pub(crate) fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    crate::util::time::parse_ms(name, v).map_err(|e| bad_request(e.to_string()))
}

/// A duration parameter, 1 ms to [`crate::util::time::MAX_MS`] (anything else is a 400).
pub(crate) fn parse_duration(name: &str, v: &str) -> Result<i64, ApiError> {
    crate::util::time::parse_duration_ms(name, v).map_err(|e| bad_request(e.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    spawn_blocking("query", f)
        .await?
        .map_err(|e| internal("query", e))
}

/// Series `GET /api/v1/series?match=` lists unless `limit` says otherwise.
const DEFAULT_SERIES_LIMIT: usize = 1000;
/// The highest `limit` of `GET /api/v1/series?match=`.
const MAX_SERIES_LIMIT: usize = 10_000;

/// One series of a `match` listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesEntry {
    /// The host the series belongs to.
    pub host: String,
    /// Metric name.
    pub name: String,
    /// Labels (the host is not one of them).
    #[schema(value_type = Object)]
    pub labels: serde_json::Map<String, Value>,
}

/// The answer of `GET /api/v1/series?match=...`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesList {
    /// Matching series, sorted by host, then name, then labels; at most `limit`.
    pub series: Vec<SeriesEntry>,
    /// Whether more series matched than `limit`.
    pub truncated: bool,
    /// The bound in force.
    pub limit: usize,
}

#[utoipa::path(get, path = "/api/v1/series", tag = "series", params(("host" = Option<String>, Query, description = "Host id: its series (as {name, labels}); with match, narrows the listing to this host"), ("match" = Option<String>, Query, description = "Series selector such as cpu_usage_ratio{cpu=\"total\",host=~\"web.*\"}; repeatable (a series matching any is listed)"), ("limit" = Option<usize>, Query, description = "With match: most series returned, 1 to 10000 (default 1000)")), responses((status = 200, description = "The host's series as {\"series\": [{name, labels}]}, or with match a SeriesList", body = SeriesList), (status = 400, description = "Neither host nor match, a bad selector, or a bad limit", body = ErrorBody), (status = 404, description = "Unknown host", body = ErrorBody), (status = 503, description = "Query timeout or too many queries at once", body = ErrorBody)))]
pub(crate) async fn series(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = params(raw);
    let selectors: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "match")
        .map(|(_, v)| v.clone())
        .collect();
    if selectors.is_empty() {
        if one(&params, "host").is_none() {
            return Err(bad_request(
                "give host=H (that host's series) or match=SELECTOR (series across hosts)",
            ));
        }
        let host = known_host(&state, &params)?;
        let store = state.store.clone();
        let series = blocking(move || store.series(&host)).await?;
        return Ok(Json(json!({ "series": series })));
    }
    for (k, _) in &params {
        if !matches!(k.as_str(), "match" | "host" | "limit") {
            return Err(bad_request(format!("unknown parameter {k:?}")));
        }
    }
    let only_host = match one(&params, "host") {
        Some(_) => Some(known_host(&state, &params)?),
        None => None,
    };
    let limit = match one(&params, "limit") {
        None => DEFAULT_SERIES_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_SERIES_LIMIT).contains(n))
            .ok_or_else(|| {
                bad_request(format!(
                    "limit={v:?}: use a whole number from 1 to {MAX_SERIES_LIMIT}"
                ))
            })?,
    };
    let store = state.store.clone();
    let limits = state.queries.limits().parse;
    let list = state
        .queries
        .run(move |deadline| {
            match_series(
                &store,
                &selectors,
                only_host.as_deref(),
                limit,
                limits,
                deadline,
            )
        })
        .await
        .map_err(|e| match e {
            crate::http::prom::limits::GateError::Failed => internal("series", e),
            e => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        })??;
    Ok(Json(
        serde_json::to_value(list).map_err(|e| internal("series", e))?,
    ))
}

/// The series any of `selectors` picks (PromQL series selectors, parsed within `limits`
/// together, as `/federate`'s `match[]`), in order of host, name and labels, at most `limit`.
fn match_series(
    store: &Store,
    selectors: &[String],
    only_host: Option<&str>,
    limit: usize,
    limits: crate::promql::Limits,
    deadline: std::time::Instant,
) -> Result<SeriesList, ApiError> {
    use crate::promql::{self, Expr};
    let mut left = limits;
    let mut sels = Vec::new();
    for v in selectors {
        match promql::parse_limited(v, left) {
            Ok(Expr::Vector(s)) => {
                left = promql::Limits::remaining(left, &s.matchers);
                sels.push(s.matchers);
            }
            Ok(_) => {
                return Err(bad_request(format!(
                    "match={v:?}: use a series selector such as name{{label=\"value\",host=~\"web.*\"}}"
                )));
            }
            Err(e) => return Err(bad_request(format!("match={v:?}: {e}"))),
        }
    }
    let budget = crate::http::prom::Budget::until(deadline);
    let timeout =
        |e: crate::http::prom::LoadError| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let mut out = Vec::new();
    let mut truncated = false;
    // Hosts come sorted by id and each host's series by name then labels, so the first
    // `limit` found are the first `limit` of the sorted listing.
    'hosts: for h in store.hosts() {
        if only_host.is_some_and(|o| o != h.host) {
            continue;
        }
        budget.check_time().map_err(timeout)?;
        for s in store.series(&h.host).map_err(|e| internal("series", e))? {
            budget.check_time().map_err(timeout)?;
            let labels = crate::http::prom::prom_labels(&h.host, &s.name, &s.labels);
            if sels
                .iter()
                .any(|m| crate::http::prom::matches_all(m, &labels))
            {
                if out.len() == limit {
                    truncated = true;
                    break 'hosts;
                }
                out.push(SeriesEntry {
                    host: h.host.clone(),
                    name: s.name,
                    labels: s.labels,
                });
            }
        }
    }
    Ok(SeriesList {
        series: out,
        truncated,
        limit,
    })
}

#[utoipa::path(get, path = "/api/v1/query", tag = "series", params(("host" = String, Query, description = "Host id"), ("name" = String, Query, description = "Metric name"), ("label" = Option<String>, Query, description = "k=v; repeatable"), ("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-6h)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now, now+1h)"), ("step" = Option<String>, Query, description = "Bucket width, e.g. 5m"), ("agg" = Option<String>, Query, description = "avg, min, max, sum, last, count, or a percentile pNN (p50, p90, p95, p99, p99.9; linear interpolation over the bucket's raw points), with step"), ("max_points" = Option<u64>, Query, description = "Bound on points returned")), responses((status = 200, description = "Points per series", body = Object), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown host", body = ErrorBody)))]
pub(crate) async fn query(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = params(raw);
    let host = known_host(&state, &params)?;
    let name = one(&params, "name")
        .ok_or_else(|| bad_request("missing parameter name"))?
        .to_owned();
    let mut matchers = Vec::new();
    for (k, v) in &params {
        match k.as_str() {
            "label" => {
                let (lk, lv) = v
                    .split_once('=')
                    .ok_or_else(|| bad_request(format!("label={v:?}: use label=name=value")))?;
                matchers.push((lk.to_owned(), lv.to_owned()));
            }
            "host" | "name" | "from" | "to" | "step" | "agg" | "max_points" => {}
            other => return Err(bad_request(format!("unknown parameter {other:?}"))),
        }
    }
    let to = match one(&params, "to") {
        Some(v) => parse_time("to", v)?,
        None => crate::util::time::now_ms(),
    };
    let from = match one(&params, "from") {
        Some(v) => parse_time("from", v)?,
        None => (to - 3_600_000).max(0),
    };
    if from > to {
        return Err(bad_request("from is after to"));
    }
    let agg = match one(&params, "agg") {
        None => Agg::Stored(AggFn::Avg),
        Some(v) => parse_agg(v)?,
    };
    let step_ms = match one(&params, "step") {
        None => {
            if one(&params, "agg").is_some() {
                return Err(bad_request("agg needs a step"));
            }
            None
        }
        Some(v) => Some(parse_duration("step", v)?),
    };
    if step_ms.is_none() && to - from > MAX_QUERY_RANGE_MS {
        return Err(bad_request(
            "raw range longer than 31 days; give a step (such as step=1h) to read rollups",
        ));
    }
    let max_points = match one(&params, "max_points") {
        None => DEFAULT_MAX_POINTS,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_MAX_POINTS).contains(n))
            .ok_or_else(|| {
                bad_request(format!(
                    "max_points={v:?}: use a whole number from 1 to {MAX_MAX_POINTS}"
                ))
            })?,
    };
    let store = state.store.clone();
    let (resolution, series) = match (step_ms, agg) {
        (Some(ms), Agg::Percentile(p)) => {
            let from = from.div_euclid(ms) * ms;
            if to - from > MAX_QUERY_RANGE_MS {
                return Err(bad_request(format!(
                    "agg={}: percentiles are computed from raw points, over at most 31 days; narrow the range",
                    agg.name()
                )));
            }
            let buckets = u64::try_from((to - from) / ms + 1).unwrap_or(u64::MAX);
            if buckets > max_points {
                return Err(query_error(QueryError::TooManyPoints {
                    points: buckets,
                    max: max_points,
                }));
            }
            let answer = spawn_blocking("query", move || {
                store
                    .query(
                        &host,
                        &name,
                        &matchers,
                        (from, to),
                        None,
                        PERCENTILE_MAX_RAW_POINTS,
                    )
                    .map(|(resolution, series)| (resolution, percentiles(series, ms, p / 100.0)))
            })
            .await?;
            let (resolution, series) = answer.map_err(|e| match e {
                QueryError::TooManyPoints { .. } => bad_request(format!(
                    "agg={}: percentiles are computed from raw points, and the range holds more than {PERCENTILE_MAX_RAW_POINTS}; narrow the range or add label matchers",
                    agg.name()
                )),
                e => query_error(e),
            })?;
            let total: u64 = series.iter().map(|s| s.points.len() as u64).sum();
            if total > max_points {
                return Err(query_error(QueryError::TooManyPoints {
                    points: total,
                    max: max_points,
                }));
            }
            (resolution, series)
        }
        (step, agg) => {
            let step = step.map(|ms| Step {
                ms,
                agg: match agg {
                    Agg::Stored(f) => f,
                    Agg::Percentile(_) => AggFn::Avg,
                },
            });
            let answer = spawn_blocking("query", move || {
                store.query(&host, &name, &matchers, (from, to), step, max_points)
            })
            .await?;
            answer.map_err(query_error)?
        }
    };
    Ok(Json(json!({
        "series": series,
        "resolution": resolution,
        "step_ms": step_ms,
        "agg": step_ms.map(|_| agg.name()),
    })))
}

/// Raw points a percentile query may read.
const PERCENTILE_MAX_RAW_POINTS: u64 = crate::http::prom::MAX_SAMPLES;

/// What each step bucket of `/api/v1/query` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    /// An aggregate the rollups keep.
    Stored(AggFn),
    /// A percentile, 0 to 100, of the bucket's raw points.
    Percentile(f64),
}

impl Agg {
    /// Its name in the API: `avg`, `p95`, `p99.9`.
    fn name(self) -> String {
        match self {
            Self::Stored(f) => f.name().to_owned(),
            Self::Percentile(p) => format!("p{p}"),
        }
    }
}

/// `avg`, `min`, `max`, `sum`, `last`, `count`, or `pNN`: a percentile from 0 to 100
/// (`p50`, `p95`, `p99.9`).
fn parse_agg(v: &str) -> Result<Agg, ApiError> {
    let wrong = || {
        bad_request(format!(
            "agg={v:?}: use one of avg, min, max, sum, last, count, or a percentile p0 to p100 (p50, p90, p95, p99, p99.9)"
        ))
    };
    if let Some(n) = v.strip_prefix('p') {
        let digits = !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && n.bytes().filter(|b| *b == b'.').count() <= 1
            && !n.starts_with('.')
            && !n.ends_with('.');
        return n
            .parse::<f64>()
            .ok()
            .filter(|p| digits && (0.0..=100.0).contains(p))
            .map(Agg::Percentile)
            .ok_or_else(wrong);
    }
    serde_json::from_value(Value::String(v.to_owned()))
        .map(Agg::Stored)
        .map_err(|_| wrong())
}

/// Each series' raw points as one point per `step`-wide bucket (aligned to multiples of the
/// step since the epoch, stamped with the bucket's start): the `q`-quantile of its values.
fn percentiles(
    series: Vec<crate::store::SeriesPoints>,
    step: i64,
    q: f64,
) -> Vec<crate::store::SeriesPoints> {
    series
        .into_iter()
        .map(|s| {
            let mut points = Vec::new();
            let mut values = Vec::new();
            let mut bucket = None;
            for (ts, v) in s.points {
                let b = ts.div_euclid(step) * step;
                if bucket != Some(b) {
                    if let Some(prev) = bucket
                        && let Some(x) = quantile(q, &mut values)
                    {
                        points.push((prev, x));
                    }
                    values.clear();
                    bucket = Some(b);
                }
                values.push(v);
            }
            if let Some(prev) = bucket
                && let Some(x) = quantile(q, &mut values)
            {
                points.push((prev, x));
            }
            crate::store::SeriesPoints {
                labels: s.labels,
                points,
            }
        })
        .collect()
}

/// The `q`-quantile (0 to 1) of `values` by linear interpolation between the two closest
/// ranks, as Prometheus' `quantile_over_time`: with the values sorted, rank `q * (n - 1)`;
/// `None` for no values.
fn quantile(q: f64, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let lower = rank.floor();
    let weight = rank - lower;
    let lo = *values.get(lower as usize)?;
    let hi = *values.get(lower as usize + 1).unwrap_or(&lo);
    Some(lo * (1.0 - weight) + hi * weight)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_failure_on_the_server_side_is_logged_not_answered() {
        let store_error = crate::store::StoreError::Db {
            path: "/var/lib/nines-aggregator/nines.redb".into(),
            detail: "Corrupted database: page 4711".into(),
        };
        let failed = blocking(move || -> Result<(), _> { Err(store_error) }).await;
        let panicked = spawn_blocking("query", || -> () {
            panic!("index out of bounds in /home/build/nines/aggregator/src/store/mod.rs")
        })
        .await;
        let store_query = query_error(QueryError::Store(crate::store::StoreError::Failed(
            "store /srv/nines.redb: I/O error".into(),
        )));
        for e in [failed.unwrap_err(), panicked.unwrap_err(), store_query] {
            let (status, text) = body(e).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                json!({ "error": INTERNAL_ERROR })
            );
        }
    }

    #[tokio::test]
    async fn the_callers_own_mistake_is_described_to_the_caller() {
        let e = query_error(QueryError::TooManyPoints {
            points: 2_000_000,
            max: 11_000,
        });
        let (status, text) = body(e).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("11000"), "{text}");
    }

    #[test]
    fn quantiles_interpolate_linearly_as_prometheus() {
        // Prometheus' quantile_over_time on the same values gives these.
        let q = |p: f64, v: &[f64]| quantile(p, &mut v.to_vec());
        let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        for (p, want) in [
            (0.5, 5.5),
            (0.9, 9.1),
            (0.95, 9.55),
            (0.99, 9.91),
            (0.0, 1.0),
            (1.0, 10.0),
        ] {
            let got = q(p, &ten).unwrap();
            assert!((got - want).abs() < 1e-12, "{p}: {got}");
        }
        assert_eq!(q(0.99, &[4.0]), Some(4.0));
        assert_eq!(q(0.5, &[1.0, 3.0]), Some(2.0));
        assert_eq!(q(0.5, &[]), None);
    }

    #[test]
    fn agg_names_percentiles_and_stored_aggregates() {
        for (v, name) in [
            ("p50", "p50"),
            ("p99.9", "p99.9"),
            ("p050", "p50"),
            ("p100", "p100"),
            ("max", "max"),
        ] {
            assert_eq!(parse_agg(v).unwrap().name(), name, "{v}");
        }
        for v in [
            "p", "p101", "p-1", "pinf", "pNaN", "p1e1", "p.5", "p5.", "p1.2.3", "P50", "median",
        ] {
            assert!(parse_agg(v).is_err(), "{v}");
        }
    }

    #[test]
    fn the_auth_scheme_is_case_insensitive() {
        let basic = base64::engine::general_purpose::STANDARD.encode("grafana:tok");
        for h in [
            "Bearer tok".to_owned(),
            "bearer tok".into(),
            "BEARER tok".into(),
            "bEaReR  tok ".into(),
            format!("Basic {basic}"),
            format!("basic {basic}"),
            format!("BASIC {basic}"),
        ] {
            assert_eq!(credential(&h).as_deref(), Some("tok"), "{h}");
        }
        for h in ["Bearertok", "Token tok", "Digest tok", "Basic !!!", ""] {
            assert_eq!(credential(h), None, "{h}");
        }
    }

    #[test]
    fn healthz_names_the_kind_of_store_failure_without_its_text() {
        let full = "store refuses writes after a failed commit: store /var/lib/nines-aggregator/nines.redb: \
                    I/O error: No space left on device (os error 28)";
        let other = "store /var/lib/nines-aggregator/nines.redb: Corrupted database: page 4711";
        for (reason, kind) in [(full, "No space left on device"), (other, "failed commit")] {
            let public = public_failure(reason);
            assert!(public.contains(kind), "{public}");
            assert!(
                !public.contains("/var/lib") && !public.contains("page 4711"),
                "{public}"
            );
        }
    }
}
