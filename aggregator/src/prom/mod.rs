//! Prometheus compatibility: the aggregator's own `/metrics`, `/federate`, and a
//! Prometheus-compatible query API under `/prom` (docs/api.md). A nines series appears to
//! Prometheus as its metric name with its labels and a `host` label.

pub mod api;
pub mod metrics;
pub mod promql;
pub mod text;

use std::collections::BTreeMap;

use crate::store::{QueryError, Store, StoreError};
use promql::{Labels, Matcher, SeriesData};

/// Most samples one query may load.
pub const MAX_SAMPLES: u64 = 5_000_000;

/// The Prometheus labels of a nines series: `__name__`, `host`, then its own labels, sorted.
pub fn prom_labels<'a>(
    host: &str,
    name: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
) -> Labels {
    let mut m: BTreeMap<String, String> = labels
        .into_iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    m.insert("__name__".into(), name.to_owned());
    m.insert("host".into(), host.to_owned());
    m.into_iter().collect()
}

/// Whether every matcher passes on `labels` (an absent label is the empty string).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| {
        let v = labels
            .iter()
            .find(|(k, _)| *k == m.name)
            .map_or("", |(_, v)| v.as_str());
        m.matches(v)
    })
}

/// The labels of every series that `matchers` select, sorted.
pub fn select_series(store: &Store, matchers: &[Matcher]) -> Result<Vec<Labels>, StoreError> {
    let mut out = Vec::new();
    for h in store.hosts() {
        if !host_may_match(matchers, &h.host) {
            continue;
        }
        for s in store.series(&h.host)? {
            let labels = prom_labels(&h.host, &s.name, &s.labels);
            if matches_all(matchers, &labels) {
                out.push(labels);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn host_may_match(matchers: &[Matcher], host: &str) -> bool {
    matchers
        .iter()
        .filter(|m| m.name == "host")
        .all(|m| m.matches(host))
}

/// Why series could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// More than [`MAX_SAMPLES`].
    #[error("query processing would load too many samples into memory (more than {MAX_SAMPLES})")]
    TooManySamples,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The points in `[from, to]` of every series `matchers` select. `budget` counts down the
/// samples the whole query may still load.
pub fn load(
    store: &Store,
    matchers: &[Matcher],
    (from, to): (i64, i64),
    budget: &mut u64,
) -> Result<Vec<SeriesData>, LoadError> {
    let mut out = Vec::new();
    for h in store.hosts() {
        if !host_may_match(matchers, &h.host) {
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        for s in store.series(&h.host)? {
            if names.last() == Some(&s.name) {
                continue;
            }
            if matches_all(matchers, &prom_labels(&h.host, &s.name, &s.labels)) {
                names.push(s.name);
            }
        }
        for name in names {
            let (_, series) = store
                .query(&h.host, &name, &[], (from, to), None, *budget)
                .map_err(|e| match e {
                    QueryError::TooManyPoints { .. } => LoadError::TooManySamples,
                    QueryError::Store(e) => LoadError::Store(e),
                })?;
            for s in series {
                let labels = prom_labels(&h.host, &name, &s.labels);
                if s.points.is_empty() || !matches_all(matchers, &labels) {
                    continue;
                }
                *budget = budget
                    .checked_sub(s.points.len() as u64)
                    .ok_or(LoadError::TooManySamples)?;
                out.push(SeriesData {
                    labels,
                    points: s.points,
                });
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
