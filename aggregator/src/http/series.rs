//! The series endpoints (docs/api.md, `GET /api/v1/series` and `GET /api/v1/query`): which
//! series there are, and their points, raw or in step buckets aggregated from the rollups or,
//! for percentiles, from raw points.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::http::AppState;
use crate::http::dto::{
    self, ErrorBody, HostSeries, QueryAnswer, SeriesAnswer, SeriesEntry, SeriesList, SeriesName,
};
use crate::http::error::{ApiError, bad_request, internal, query_error, spawn_blocking};
use crate::http::params::{host_param, one, params, parse_duration, parse_time};
use crate::store::{AggFn, QueryError, Resolution, Step, Store};

/// Longest range one query may cover.
const MAX_QUERY_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;
/// Points a query returns at most unless it asks for another bound.
const DEFAULT_MAX_POINTS: u64 = 11_000;
/// The highest `max_points` a query may ask for.
const MAX_MAX_POINTS: u64 = 1_000_000;
/// Series `GET /api/v1/series?match=` lists unless `limit` says otherwise.
const DEFAULT_SERIES_LIMIT: usize = 1000;
/// The highest `limit` of `GET /api/v1/series?match=`.
const MAX_SERIES_LIMIT: usize = 10_000;

/// The routes, to be merged behind the token check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/series", get(series))
        .route("/api/v1/query", get(query))
}

#[utoipa::path(get, path = "/api/v1/series", tag = "series", params(("host" = Option<String>, Query, description = "Host id: its series (as {name, labels}); with match, narrows the listing to this host"), ("match" = Option<String>, Query, description = "Series selector such as cpu_usage_ratio{cpu=\"total\",host=~\"web.*\"}; repeatable (a series matching any is listed)"), ("limit" = Option<usize>, Query, description = "With match: most series returned, 1 to 10000 (default 1000)")), responses((status = 200, description = "The host's series as {\"series\": [{name, labels}]}, or with match a SeriesList", body = SeriesAnswer), (status = 400, description = "Neither host nor match, a bad selector, or a bad limit", body = ErrorBody), (status = 404, description = "Unknown host", body = ErrorBody), (status = 503, description = "Query timeout or too many queries at once", body = ErrorBody)))]
pub(crate) async fn series(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SeriesAnswer>, ApiError> {
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
        let host = host_param(&state, &params)?;
        let store = state.store().clone();
        let series = spawn_blocking("series", move || store.series(&host))
            .await?
            .map_err(|e| internal("series", e))?;
        return Ok(Json(SeriesAnswer::Host(HostSeries {
            series: series
                .into_iter()
                .map(|s| SeriesName {
                    name: s.name,
                    labels: s.labels,
                })
                .collect(),
        })));
    }
    for (k, _) in &params {
        if !matches!(k.as_str(), "match" | "host" | "limit") {
            return Err(bad_request(format!("unknown parameter {k:?}")));
        }
    }
    let only_host = match one(&params, "host") {
        Some(_) => Some(host_param(&state, &params)?),
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
    let store = state.store().clone();
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
            e => ApiError::Unavailable(e.to_string()),
        })??;
    Ok(Json(SeriesAnswer::Match(list)))
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
    let timeout = |e: crate::http::prom::LoadError| ApiError::Unavailable(e.to_string());
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

#[utoipa::path(get, path = "/api/v1/query", tag = "series", params(("host" = String, Query, description = "Host id"), ("name" = String, Query, description = "Metric name"), ("label" = Option<String>, Query, description = "k=v; repeatable"), ("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-6h)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now, now+1h)"), ("step" = Option<String>, Query, description = "Bucket width, e.g. 5m"), ("agg" = Option<String>, Query, description = "avg, min, max, sum, last, count, or a percentile pNN (p50, p90, p95, p99, p99.9; linear interpolation over the bucket's raw points), with step"), ("max_points" = Option<u64>, Query, description = "Bound on points returned")), responses((status = 200, description = "Points per series", body = QueryAnswer), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown host", body = ErrorBody)))]
pub(crate) async fn query(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<QueryAnswer>, ApiError> {
    let params = params(raw);
    let host = host_param(&state, &params)?;
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
    let store = state.store().clone();
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
    Ok(Json(QueryAnswer {
        series: series.into_iter().map(dto_points).collect(),
        resolution: match resolution {
            Resolution::Raw => dto::Resolution::Raw,
            Resolution::Minute => dto::Resolution::Minute,
            Resolution::Hour => dto::Resolution::Hour,
        },
        step_ms,
        agg: step_ms.map(|_| agg.name()),
    }))
}

fn dto_points(s: crate::store::SeriesPoints) -> dto::SeriesPoints {
    dto::SeriesPoints {
        labels: s.labels,
        points: s.points,
    }
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
}
