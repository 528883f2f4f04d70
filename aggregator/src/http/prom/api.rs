//! The Prometheus HTTP API subset under `/prom` (docs/api.md, "Prometheus-compatible API"):
//! `query`, `query_range`, `series`, `labels`, `label/{name}/values`, `status/buildinfo` and
//! `/prom/-/healthy`, answered in Prometheus' own JSON shapes, GET or form POST, so Grafana and
//! promtool use nines as a Prometheus data source.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::limits::GateError;
use super::{Budget, LoadError, load, select_series};
use crate::http::AppState;
use crate::ingest::now_ms;
use crate::promql::{self, Expr, LOOKBACK_MS, Labels, SeriesData};
use crate::store::Store;

/// Most evaluation steps of one range query, as Prometheus.
const MAX_STEPS: i64 = 11_000;

/// The routes, to be merged behind the token check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/prom/api/v1/query", get(query).post(query))
        .route(
            "/prom/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/prom/api/v1/series", get(series).post(series))
        .route("/prom/api/v1/labels", get(labels).post(labels))
        .route("/prom/api/v1/label/{name}/values", get(label_values))
        .route("/prom/api/v1/status/buildinfo", get(buildinfo))
        .route("/prom/-/healthy", get(healthy))
}

/// An error in Prometheus' shape: `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug)]
pub struct PromError(StatusCode, &'static str, String);

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(json!({"status": "error", "errorType": self.1, "error": self.2})),
        )
            .into_response()
    }
}

fn bad_data(msg: impl Into<String>) -> PromError {
    PromError(StatusCode::BAD_REQUEST, "bad_data", msg.into())
}

fn execution(msg: impl Into<String>) -> PromError {
    PromError(StatusCode::UNPROCESSABLE_ENTITY, "execution", msg.into())
}

fn timeout(msg: impl Into<String>) -> PromError {
    PromError(StatusCode::SERVICE_UNAVAILABLE, "timeout", msg.into())
}

fn load_error(e: LoadError) -> PromError {
    match e {
        LoadError::TooManySamples => execution(e.to_string()),
        LoadError::Timeout => timeout(e.to_string()),
        LoadError::Store(e) => internal(e),
    }
}

fn gate_error(e: GateError) -> PromError {
    match e {
        GateError::Busy(_) => PromError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        GateError::Timeout(_) => timeout(e.to_string()),
        GateError::Failed => internal(e),
    }
}

/// Runs a query's work through the gate (`[api]` query limits): on a blocking thread, in its
/// turn, within its time.
async fn gated<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(std::time::Instant) -> Result<T, PromError> + Send + 'static,
) -> Result<T, PromError> {
    state.queries.run(work).await.map_err(gate_error)?
}

fn internal(msg: impl std::fmt::Display) -> PromError {
    tracing::error!("prometheus API: {msg}");
    PromError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        crate::http::error::INTERNAL_ERROR.into(),
    )
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// Query string and form body parameters together.
fn form(raw: Option<String>, body: &Bytes) -> Vec<(String, String)> {
    let mut p = crate::http::params::params(raw);
    p.extend(form_urlencoded::parse(body).into_owned());
    p
}

fn one<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    crate::http::params::one(p, k)
}

/// A time: float Unix seconds, RFC 3339 or `now`-relative (`now-6h`, which Prometheus itself
/// does not take), to ms, in the years 1970 to 9999.
pub fn parse_time(name: &str, v: &str) -> Result<i64, PromError> {
    let out_of_range = || {
        bad_data(format!(
            "invalid parameter \"{name}\": {v:?} is outside the years 1970 to 9999"
        ))
    };
    if let Ok(f) = v.parse::<f64>() {
        let ms = f * 1000.0;
        // Compared as floats first: `as i64` would saturate, not refuse.
        if !ms.is_finite()
            || ms < crate::util::time::MIN_MS as f64
            || ms > crate::util::time::MAX_MS as f64
        {
            return Err(out_of_range());
        }
        return Ok(ms.round() as i64);
    }
    match crate::util::time::parse_ms(name, v) {
        Ok(ms) => Ok(ms),
        Err(crate::util::time::TimeError::OutOfRange { .. }) => Err(out_of_range()),
        _ => Err(bad_data(format!(
            "invalid parameter \"{name}\": cannot parse {v:?} to a valid timestamp (use Unix seconds, RFC 3339 or now-relative such as now-6h)"
        ))),
    }
}

/// A duration: float seconds or a Prometheus duration (`15s`, `1m30s`), to ms, from 1 ms to
/// the span of representable times.
pub fn parse_step(name: &str, v: &str) -> Result<i64, PromError> {
    let ms = match v.parse::<f64>() {
        Ok(f) if f * 1000.0 < 0.5 => {
            return Err(bad_data(format!(
                "invalid parameter \"{name}\": zero or negative query resolution step widths are not accepted. Try a positive integer"
            )));
        }
        Ok(f) => {
            let ms = (f * 1000.0).round();
            (ms.is_finite() && ms >= 1.0 && ms <= crate::util::time::MAX_MS as f64)
                .then_some(ms as i64)
        }
        Err(_) => {
            promql::parse_duration(v).filter(|ms| (1..=crate::util::time::MAX_MS).contains(ms))
        }
    };
    ms.ok_or_else(|| {
        bad_data(format!(
            "invalid parameter \"{name}\": cannot parse {v:?} to a valid duration (1ms to 8000y)"
        ))
    })
}

/// A timestamp as Prometheus writes it: float seconds.
fn secs(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// A sample value as Prometheus writes it: a string.
fn value_str(v: f64) -> Value {
    Value::String(crate::util::exposition::float(v))
}

fn metric(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn query_text(p: &[(String, String)]) -> Result<String, PromError> {
    one(p, "query")
        .map(str::to_owned)
        .ok_or_else(|| bad_data("invalid parameter \"query\": missing"))
}

/// Parses a query within the limits; run it on a blocking thread, as it compiles regexes.
fn parse_query(q: &str, limits: promql::Limits) -> Result<Expr, PromError> {
    promql::parse_limited(q, limits)
        .map_err(|e| bad_data(format!("invalid parameter \"query\": {e}")))
}

/// Loads every selector's series for evaluations from `from` to `to`.
fn load_all(
    store: &Store,
    expr: &Expr,
    (from, to): (i64, i64),
    budget: &mut Budget,
) -> Result<Vec<Vec<SeriesData>>, PromError> {
    let mut sels = Vec::new();
    expr.selectors(&mut sels);
    let mut data = vec![Vec::new(); sels.len()];
    for (sel, range) in sels {
        let back = if range > 0 { range } else { LOOKBACK_MS };
        let loaded = load(
            store,
            &sel.matchers,
            (from.saturating_sub(back), to),
            budget,
        )
        .map_err(load_error)?;
        if let Some(slot) = data.get_mut(sel.id) {
            *slot = loaded;
        }
    }
    Ok(data)
}

async fn query(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = form(raw, &body);
    let q = query_text(&p)?;
    let t = match one(&p, "time") {
        Some(v) => parse_time("time", v)?,
        None => now_ms(),
    };
    let store = state.store().clone();
    let limits = state.queries.limits().parse;
    let data = gated(&state, move |deadline| {
        let expr = parse_query(&q, limits)?;
        let data = load_all(&store, &expr, (t, t), &mut Budget::until(deadline))?;
        let v = promql::eval(&expr, t, &data).map_err(execution)?;
        Ok(match v {
            promql::Value::Scalar(s) => json!({"resultType": "scalar", "result": [secs(t), value_str(s)]}),
            promql::Value::Vector(mut v) => {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
                let result: Vec<Value> = v
                    .iter()
                    .map(|s| json!({"metric": metric(&s.labels), "value": [secs(t), value_str(s.value)]}))
                    .collect();
                json!({"resultType": "vector", "result": result})
            }
        })
    })
    .await?;
    Ok(success(data))
}

async fn query_range(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = form(raw, &body);
    let q = query_text(&p)?;
    let need =
        |k: &str| one(&p, k).ok_or_else(|| bad_data(format!("invalid parameter \"{k}\": missing")));
    let start = parse_time("start", need("start")?)?;
    let end = parse_time("end", need("end")?)?;
    let step = parse_step("step", need("step")?)?;
    if end < start {
        return Err(bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    if (end - start) / step > MAX_STEPS {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let store = state.store().clone();
    let limits = state.queries.limits().parse;
    let data = gated(&state, move |deadline| {
        let expr = parse_query(&q, limits)?;
        let mut budget = Budget::until(deadline);
        let data = load_all(&store, &expr, (start, end), &mut budget)?;
        let mut out: BTreeMap<Labels, Vec<Value>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            budget.check_time().map_err(load_error)?;
            match promql::eval(&expr, t, &data).map_err(execution)? {
                promql::Value::Scalar(s) => out
                    .entry(Vec::new())
                    .or_default()
                    .push(json!([secs(t), value_str(s)])),
                promql::Value::Vector(v) => {
                    for s in v {
                        out.entry(s.labels)
                            .or_default()
                            .push(json!([secs(t), value_str(s.value)]));
                    }
                }
            }
            t += step;
        }
        let result: Vec<Value> = out
            .iter()
            .map(|(l, values)| json!({"metric": metric(l), "values": values}))
            .collect();
        Ok(json!({"resultType": "matrix", "result": result}))
    })
    .await?;
    Ok(success(data))
}

/// The `match[]` parameters, as text: parsed (and their regexes compiled) by [`selectors`]
/// on a blocking thread.
fn match_params(p: &[(String, String)]) -> Vec<String> {
    p.iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.clone())
        .collect()
}

/// The selectors of `match[]`, within the query limits over all of them together.
fn selectors(
    given: &[String],
    required: bool,
    limits: promql::Limits,
) -> Result<Vec<Vec<promql::Matcher>>, PromError> {
    let mut out = Vec::new();
    let mut left = limits;
    for v in given {
        match promql::parse_limited(v, left) {
            Ok(Expr::Vector(s)) => {
                left = promql::Limits::remaining(left, &s.matchers);
                out.push(s.matchers)
            }
            Ok(_) => {
                return Err(bad_data(format!(
                    "invalid parameter \"match[]\": {v:?} is not a series selector"
                )));
            }
            Err(e) => return Err(bad_data(format!("invalid parameter \"match[]\": {e}"))),
        }
    }
    if out.is_empty() {
        if required {
            return Err(bad_data("no match[] parameter provided"));
        }
        out.push(vec![
            promql::Matcher::new("__name__", promql::MatchOp::Re, ".+").map_err(bad_data)?,
        ]);
    }
    Ok(out)
}

/// Every series any of `match[]` selects (all without one), within the query limits.
async fn matching(
    state: &AppState,
    p: &[(String, String)],
    required: bool,
) -> Result<BTreeSet<Labels>, PromError> {
    let given = match_params(p);
    let store = state.store().clone();
    let limits = state.queries.limits().parse;
    gated(state, move |deadline| {
        let sels = selectors(&given, required, limits)?;
        let mut all = BTreeSet::new();
        for m in &sels {
            all.extend(select_series(&store, m, deadline).map_err(load_error)?);
        }
        Ok(all)
    })
    .await
}

async fn series(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = form(raw, &body);
    if match_params(&p).is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    for k in ["start", "end"] {
        if let Some(v) = one(&p, k) {
            parse_time(k, v)?;
        }
    }
    let all = matching(&state, &p, true).await?;
    Ok(success(Value::Array(all.iter().map(metric).collect())))
}

async fn labels(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = form(raw, &body);
    let all = matching(&state, &p, false).await?;
    let names: BTreeSet<&str> = all
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k.as_str()))
        .collect();
    Ok(success(json!(names)))
}

async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PromError> {
    let p = form(raw, &Bytes::new());
    let all = matching(&state, &p, false).await?;
    let values: BTreeSet<&str> = all
        .iter()
        .filter_map(|l| l.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()))
        .collect();
    Ok(success(json!(values)))
}

async fn buildinfo() -> Response {
    success(json!({
        "version": "2.42.0",
        "revision": format!("nines-{}", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

async fn healthy() -> &'static str {
    "Prometheus API of nines is Healthy.\n"
}
