//! The page of one host: its tile, facts, and an SVG chart per resource over a chosen range,
//! with the thresholds of the alert rules that watch it.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::page::{self, HostPage};
use super::svg::{self, Threshold, Unit};
use super::{alert_rows, blocking, health, host_facts, host_href, html, not_found};
use crate::alerts::StoreData;
use crate::alerts::rules::{Kind, glob};
use crate::http::AppState;
use crate::http::params::{one, params};
use crate::store::{AggFn, Step};
use nines_common::model::now_ms;

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

pub(super) async fn host(
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
