//! Evaluation: what each rule's query sees in the data at `now`, series by series (thresholds
//! over a window, host and process down, failed checks, disk-full forecasts).

use std::collections::BTreeSet;

use super::group::rfc3339;
use super::{Data, Engine, HostInfo, Labels, Startup, fingerprint};
use crate::alerts::rules::{Agg, Kind, Rule, glob};
use crate::forecast::least_squares;

/// What one evaluation saw for one series.
pub(super) struct Observation {
    pub(super) labels: Labels,
    pub(super) value: f64,
    /// `value op threshold`.
    pub(super) bad: bool,
    /// `value op clear`.
    pub(super) still_bad: bool,
    pub(super) extra: Labels,
}

pub(super) fn aggregate(agg: Agg, points: &[(i64, f64)]) -> Option<f64> {
    let vals = points.iter().map(|p| p.1).filter(|v| !v.is_nan());
    match agg {
        Agg::Avg => {
            let (s, n) = vals.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            (n > 0).then(|| s / n as f64)
        }
        Agg::Max => vals.reduce(f64::max),
        Agg::Min => vals.reduce(f64::min),
        Agg::Last => points.last().map(|p| p.1),
    }
}

pub(super) fn observe(
    rule: &Rule,
    hosts: &[HostInfo],
    data: &dyn Data,
    now: i64,
    startup: Option<Startup>,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let window = rule.window.as_millis() as i64;
    for h in hosts.iter().filter(|h| glob(&rule.hosts, &h.host)) {
        let base = |series: &Labels| -> Labels {
            let mut l = series.clone();
            l.insert("alertname".into(), rule.name.clone());
            l.insert("severity".into(), rule.severity.as_str().into());
            l.insert("host".into(), h.host.clone());
            l
        };
        match rule.kind {
            Kind::HostDown => {
                let last = h.last_sample_ms.max(h.first_seen_ms);
                let silent_ms = now - last;
                let limit = i64::from(rule.intervals) * h.interval_ms.max(1);
                let bad = silent_ms > limit && !h.stopped;
                // In the startup grace, a host known before the start starts no alert.
                let in_grace = startup.is_some_and(|s| h.first_seen_ms < s.started_ms);
                out.push(Observation {
                    labels: base(&Labels::new()),
                    value: silent_ms as f64 / 1000.0,
                    bad: bad && !in_grace,
                    still_bad: bad,
                    extra: [("last_sample".to_owned(), rfc3339(h.last_sample_ms))].into(),
                });
            }
            Kind::Threshold | Kind::ProcessDown | Kind::CheckFailed => {
                let window = if rule.kind == Kind::Threshold {
                    window
                } else {
                    // The last report counts while it is fresh.
                    window.max(3 * h.interval_ms)
                };
                let agg = if rule.kind == Kind::Threshold {
                    rule.agg
                } else {
                    Agg::Last
                };
                for (labels, points) in
                    data.series(&h.host, &rule.metric, &rule.labels, now - window, now)
                {
                    let Some(value) = aggregate(agg, &points) else {
                        continue;
                    };
                    out.push(Observation {
                        labels: base(&labels),
                        value,
                        bad: rule.op.holds(value, rule.threshold),
                        still_bad: rule.op.holds(value, rule.clear),
                        extra: Labels::new(),
                    });
                }
            }
            Kind::DiskFullForecast => {
                for (labels, points) in
                    data.series(&h.host, &rule.metric, &rule.labels, now - window, now)
                {
                    let xy: Vec<(f64, f64)> = points
                        .iter()
                        .filter(|p| p.1.is_finite())
                        .map(|&(t, v)| (t as f64, v))
                        .collect();
                    let Some(fit) = least_squares(&xy) else {
                        continue;
                    };
                    if fit.n < 3 {
                        continue;
                    }
                    let horizon = rule.horizon.as_millis() as f64;
                    let full = fit.reaches(1.0, now as f64);
                    let due = full.is_some_and(|t| t <= now as f64 + horizon);
                    // Too little data (docs/api.md, "Forecast and capacity": 30 points over
                    // half the window) starts no alert; one already firing is judged as before.
                    let ts: Vec<i64> = points
                        .iter()
                        .filter(|p| p.1.is_finite())
                        .map(|p| p.0)
                        .collect();
                    let evidence = crate::forecast::evidence(&ts, window).is_ok();
                    let bad = due && evidence;
                    let mut extra = Labels::new();
                    extra.insert(
                        "slope_per_hour".into(),
                        format!("{:.6}", fit.slope * 3_600_000.0),
                    );
                    extra.insert("r2".into(), format!("{:.4}", fit.r2));
                    if let Some(t) = full {
                        extra.insert("predicted_full_at".into(), rfc3339(t as i64));
                    }
                    let Some(&(_, latest)) = points.last() else {
                        continue;
                    };
                    out.push(Observation {
                        labels: base(&labels),
                        value: latest,
                        bad,
                        still_bad: due,
                        extra,
                    });
                }
            }
        }
    }
    out
}

impl Engine {
    /// Evaluates every rule at `now`.
    pub fn evaluate(&mut self, now: i64, data: &dyn Data) {
        let hosts = data.hosts();
        self.maintenance = hosts
            .iter()
            .filter_map(|h| Some((h.host.clone(), data.maintenance(&h.host, now)?)))
            .collect();
        let rules = self.rules.rules.clone();
        let startup = self.startup.filter(|s| now < s.until_ms);
        for rule in &rules {
            let obs = observe(rule, &hosts, data, now, startup);
            let mut seen = BTreeSet::new();
            for o in obs {
                let fp = fingerprint(&o.labels);
                seen.insert(fp.clone());
                self.step(rule, fp, Some(o), now);
            }
            let unseen: Vec<String> = self
                .alerts
                .values()
                .filter(|a| a.rule == rule.name && !seen.contains(&a.fingerprint))
                .map(|a| a.fingerprint.clone())
                .collect();
            for fp in unseen {
                // No data for the series: the condition does not hold.
                self.step(rule, fp, None, now);
            }
        }
    }
}
