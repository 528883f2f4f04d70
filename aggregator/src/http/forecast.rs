//! Forecast and capacity endpoints (docs/api.md, "Forecast and capacity"): least-squares lines
//! through a series over time, and through a KPI against a driver.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::forecast::{evidence, is_ratio, least_squares};
use crate::http::AppState;
use crate::http::dto::{
    self, Capacity, CapacitySeries, ErrorBody, Forecast, ForecastSeries, rfc3339,
};
use crate::http::error::{ApiError, bad_request, internal, not_found, query_error};
use crate::http::params::{known_host, one, params, parse_time};
use crate::store::{AggFn, Step, Store};
use nines_common::model::now_ms;

/// Points read per series at most.
const MAX_POINTS: u64 = 200_000;

/// The routes, to be merged behind the token check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/forecast", get(forecast))
        .route("/api/v1/capacity", get(capacity))
}

fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

fn duration(p: &[(String, String)], name: &str, default: Duration) -> Result<Duration, ApiError> {
    match one(p, name) {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .ok()
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(3 * 366 * 86_400))
            .ok_or_else(|| bad_request(format!("{name}={v:?}: use a duration such as 6h or 30d"))),
    }
}

fn number(p: &[(String, String)], name: &str) -> Result<Option<f64>, ApiError> {
    one(p, name)
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad_request(format!("{name}={v:?} is not a number")))
        })
        .transpose()
}

/// `label=k=v` (repeated) and `labels=k=v,k=v`.
fn matchers(p: &[(String, String)]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in p {
        let items: Vec<&str> = match k.as_str() {
            "label" => vec![v.as_str()],
            "labels" => v.split(',').filter(|s| !s.is_empty()).collect(),
            _ => continue,
        };
        for item in items {
            let (a, b) = item
                .split_once('=')
                .ok_or_else(|| bad_request(format!("{k}={item:?}: use name=value")))?;
            out.push((a.to_owned(), b.to_owned()));
        }
    }
    Ok(out)
}

/// A bucket width for `span`: raw points up to 6 h, then whole minutes giving at most 1,440
/// buckets (answered from rollups).
fn step_for(span_ms: i64) -> Option<Step> {
    (span_ms > 6 * 3_600_000).then(|| Step {
        ms: ((span_ms / 1440 + 59_999) / 60_000).max(1) * 60_000,
        agg: AggFn::Avg,
    })
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal("forecast task", e))?
}

fn query(
    store: &Store,
    host: &str,
    name: &str,
    m: &[(String, String)],
    range: (i64, i64),
) -> Result<Vec<crate::store::SeriesPoints>, ApiError> {
    store
        .query(
            host,
            name,
            m,
            range,
            step_for(range.1 - range.0),
            MAX_POINTS,
        )
        .map(|(_, s)| s)
        .map_err(query_error)
}

#[utoipa::path(get, path = "/api/v1/forecast", tag = "forecast", params(("name" = String, Query, description = "Metric name"), ("host" = Option<String>, Query, description = "One host (all if absent)"), ("label" = Option<String>, Query, description = "k=v, repeatable"), ("labels" = Option<String>, Query, description = "k=v,k=v"), ("window" = Option<String>, Query, description = "Fitted span, default 24h"), ("horizon" = Option<String>, Query, description = "How far ahead, default 7d"), ("threshold" = Option<f64>, Query, description = "Level whose crossing time is wanted"), ("to" = Option<String>, Query, description = "End of the window: ms, RFC 3339 or now-relative (now-1d)")), responses((status = 200, description = "One fitted line per series", body = Forecast), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown host", body = ErrorBody)))]
pub(crate) async fn forecast(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Forecast>, ApiError> {
    let p = params(raw);
    let name = one(&p, "name")
        .ok_or_else(|| bad_request("name is required (a metric name)"))?
        .to_owned();
    let m = matchers(&p)?;
    let window = duration(&p, "window", Duration::from_secs(86_400))?;
    let horizon = duration(&p, "horizon", Duration::from_secs(7 * 86_400))?;
    let threshold = number(&p, "threshold")?;
    let to = match one(&p, "to") {
        Some(v) => parse_time("to", v)?,
        None => now_ms(),
    };
    let hosts: Vec<String> = match one(&p, "host") {
        Some(h) => {
            known_host(&state, h)?;
            vec![h.to_owned()]
        }
        None => state.store().hosts().into_iter().map(|h| h.host).collect(),
    };
    // Both durations are at most three years and `to` at most 9999-12-31, so neither
    // subtraction nor addition can overflow; a horizon past 9999 is refused, not written.
    let from = to - window.as_millis() as i64;
    let horizon_ms = horizon.as_millis() as i64;
    let horizon_at = to
        .checked_add(horizon_ms)
        .filter(|t| crate::util::time::in_range(*t))
        .ok_or_else(|| bad_request("to + horizon is after the year 9999"))?;
    let store = state.store().clone();
    let ratio = is_ratio(&name);
    let series = run(move || {
        let mut out = Vec::new();
        for host in &hosts {
            for s in query(&store, host, &name, &m, (from, to))? {
                // x: seconds since the window's start.
                let xy: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter(|p| p.1.is_finite())
                    .map(|&(t, v)| ((t - from) as f64 / 1000.0, v))
                    .collect();
                let latest = s.points.iter().rev().find(|p| p.1.is_finite()).copied();
                let ts: Vec<i64> = s
                    .points
                    .iter()
                    .filter(|p| p.1.is_finite())
                    .map(|p| p.0)
                    .collect();
                let fit = evidence(&ts, to - from)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        least_squares(&xy).ok_or_else(|| "the points do not vary in time".into())
                    });
                let fit = match fit {
                    Ok(fit) => fit,
                    Err(why) => {
                        out.push(ForecastSeries::InsufficientData {
                            host: host.clone(),
                            labels: s.labels,
                            n: xy.len(),
                            covered_seconds: ts
                                .last()
                                .zip(ts.first())
                                .map_or(0, |(b, a)| (b - a) / 1000),
                            fit: None,
                            latest: latest.map(|l| l.1),
                            why,
                        });
                        continue;
                    }
                };
                let to_x = (to - from) as f64 / 1000.0;
                let horizon_x = to_x + horizon_ms as f64 / 1000.0;
                let clamp = |y: f64| if ratio { y.clamp(0.0, 1.0) } else { y };
                let at_horizon = fit.at(horizon_x);
                let spread = fit.interval(horizon_x);
                let (low, high) = (clamp(at_horizon - spread), clamp(at_horizon + spread));
                let crossing = threshold.and_then(|y| fit.crosses(y, to_x).map(|x| (y, x)));
                // A date only when even the near edge of the interval at the horizon is past
                // the threshold (the far edge when the line falls): a line through noise
                // or through a few minutes "crosses" anything.
                let supported = crossing.is_some_and(|(y, _)| {
                    if fit.at(to_x) < y {
                        low >= y
                    } else {
                        high <= y
                    }
                });
                // A nearly flat line "reaches" it in a million years: that is never.
                let reached_ms = crossing
                    .filter(|_| supported)
                    .map(|(_, x)| x * 1000.0)
                    .filter(|ms| ms.is_finite() && ms.abs() < 1e14)
                    .map(|ms| from.saturating_add(ms as i64));
                out.push(ForecastSeries::Ok {
                    host: host.clone(),
                    labels: s.labels,
                    fit: dto::Fit::from(&fit),
                    slope_per_hour: fit.slope * 3600.0,
                    latest: latest.map(|l| l.1),
                    predicted: clamp(at_horizon),
                    predicted_low: low,
                    predicted_high: high,
                    threshold_reached_at: reached_ms.and_then(rfc3339),
                    within_horizon: reached_ms.is_some_and(|t| t <= horizon_at),
                });
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Forecast {
        from: rfc3339(from),
        to: rfc3339(to),
        horizon_at: rfc3339(horizon_at),
        threshold,
        series,
    }))
}

/// A parsed selector: metric name, host, other labels.
type Selector = (String, String, Vec<(String, String)>);

/// `name{k="v",...}` with a `host` label.
fn selector(given: &str) -> Result<Selector, ApiError> {
    let bad = |why: &str| {
        bad_request(format!(
            "selector {given:?}: {why}; use name{{host=\"h\",k=\"v\"}}"
        ))
    };
    let (name, rest) = match given.find('{') {
        Some(i) => (&given[..i], &given[i..]),
        None => (given, ""),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("no metric name"));
    }
    let mut host = None;
    let mut m = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| bad("unbalanced braces"))?;
        for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad("expected k=\"v\""))?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if k.trim() == "host" {
                host = Some(v.to_owned());
            } else {
                m.push((k.trim().to_owned(), v.to_owned()));
            }
        }
    }
    let host = host.ok_or_else(|| bad("no host label"))?;
    Ok((name.to_owned(), host, m))
}

#[utoipa::path(get, path = "/api/v1/capacity", tag = "forecast", params(("kpi" = String, Query, description = "name{host=\"h\",k=\"v\"}, one series"), ("driver" = String, Query, description = "name{host=\"h\",k=\"v\"}, one series"), ("from" = Option<String>, Query, description = "ms, RFC 3339 or now-relative (now-7d), default to - 7d"), ("to" = Option<String>, Query, description = "ms, RFC 3339 or now-relative, default now"), ("step" = Option<String>, Query, description = "Bucket, whole minutes, default 5m"), ("growth" = Option<f64>, Query, description = "Percent, default 50")), responses((status = 200, description = "KPI regressed on the driver", body = Capacity), (status = 400, description = "Bad parameter or ambiguous selector", body = ErrorBody), (status = 404, description = "No such series", body = ErrorBody), (status = 422, description = "Too few paired buckets or a constant driver", body = ErrorBody)))]
pub(crate) async fn capacity(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Capacity>, ApiError> {
    let p = params(raw);
    let kpi_sel = one(&p, "kpi")
        .ok_or_else(|| bad_request("kpi is required"))?
        .to_owned();
    let driver_sel = one(&p, "driver")
        .ok_or_else(|| bad_request("driver is required"))?
        .to_owned();
    let kpi = selector(&kpi_sel)?;
    let driver = selector(&driver_sel)?;
    let to = match one(&p, "to") {
        Some(v) => parse_time("to", v)?,
        None => now_ms(),
    };
    let from = match one(&p, "from") {
        Some(v) => parse_time("from", v)?,
        None => (to - 7 * 86_400_000).max(crate::util::time::MIN_MS),
    };
    if from >= to {
        return Err(bad_request("from must be before to"));
    }
    let growth = number(&p, "growth")?.unwrap_or(50.0);
    let step = duration(&p, "step", Duration::from_secs(300))?;
    if step.as_millis() % 60_000 != 0 {
        return Err(bad_request("step must be whole minutes"));
    }
    let step_ms = step.as_millis() as i64;
    let store = state.store().clone();
    let out = run(move || {
        let one_series = |(name, host, m): &Selector,
                          sel: &str|
         -> Result<crate::store::SeriesPoints, ApiError> {
            let mut v = store
                .query(
                    host,
                    name,
                    m,
                    (from, to),
                    Some(Step {
                        ms: step_ms,
                        agg: AggFn::Avg,
                    }),
                    MAX_POINTS,
                )
                .map_err(query_error)?
                .1;
            match v.len() {
                1 => Ok(v.remove(0)),
                0 => Err(not_found(format!("{sel}: no such series"))),
                n => Err(bad_request(format!(
                    "{sel}: matches {n} series; add labels to pick one"
                ))),
            }
        };
        let k = one_series(&kpi, &kpi_sel)?;
        let d = one_series(&driver, &driver_sel)?;
        // Pair the buckets both series have.
        let kmap: std::collections::HashMap<i64, f64> = k.points.iter().copied().collect();
        let pairs: Vec<(f64, f64)> = d
            .points
            .iter()
            .filter_map(|&(t, x)| Some((x, *kmap.get(&t)?)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if pairs.len() < 3 {
            return Err(unprocessable(format!(
                "only {} time buckets have both series; widen the range",
                pairs.len()
            )));
        }
        let fit = least_squares(&pairs)
            .ok_or_else(|| unprocessable("the driver does not vary in this range"))?;
        let n = pairs.len() as f64;
        let d_mean = pairs.iter().map(|p| p.0).sum::<f64>() / n;
        let d_peak = pairs.iter().map(|p| p.0).fold(f64::MIN, f64::max);
        let k_mean = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        let k_peak = pairs.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let g = 1.0 + growth / 100.0;
        Ok(Capacity {
            kpi: CapacitySeries {
                selector: kpi_sel,
                labels: k.labels,
                mean: k_mean,
                peak: k_peak,
            },
            driver: CapacitySeries {
                selector: driver_sel,
                labels: d.labels,
                mean: d_mean,
                peak: d_peak,
            },
            from: rfc3339(from),
            to: rfc3339(to),
            step_seconds: step_ms / 1000,
            fit: dto::Fit::from(&fit),
            growth_percent: growth,
            predicted_kpi_at_mean: fit.at(d_mean * g),
            predicted_kpi_at_peak: fit.at(d_peak * g),
        })
    })
    .await?;
    Ok(Json(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn selectors_need_a_host_and_read_quoted_labels() {
        let (n, h, m) = selector("cpu_usage_ratio{host=\"web-1\", cpu=\"total\"}").unwrap();
        assert_eq!((n.as_str(), h.as_str()), ("cpu_usage_ratio", "web-1"));
        assert_eq!(m, vec![("cpu".to_owned(), "total".to_owned())]);
        assert!(selector("cpu_usage_ratio").is_err());
        assert!(selector("{host=\"a\"}").is_err());
        assert!(selector("x{host=\"a\"").is_err());
    }

    #[test]
    fn long_windows_use_whole_minute_buckets() {
        assert_eq!(step_for(3_600_000), None);
        assert_eq!(step_for(86_400_000).unwrap().ms, 60_000);
        assert_eq!(step_for(30 * 86_400_000).unwrap().ms, 30 * 60_000);
    }
}
