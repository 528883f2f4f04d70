//! Prometheus compatibility: the aggregator's own `/metrics`, `/federate`, and a
//! Prometheus-compatible query API under `/prom` (docs/api.md). A nines series appears to
//! Prometheus as its metric name with its labels and a `host` label.

pub mod api;
pub mod limits;
pub mod metrics;
pub mod process;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::promql::{Labels, Matcher, SeriesData};
use crate::store::{QueryError, Store, StoreError};

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

/// What one query may still spend: samples to load, and time.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Samples the query may still load.
    pub samples: u64,
    /// When the query's time is up.
    pub deadline: Instant,
}

impl Budget {
    /// [`MAX_SAMPLES`] until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            samples: MAX_SAMPLES,
            deadline,
        }
    }

    /// [`LoadError::Timeout`] once the deadline has passed.
    pub fn check_time(&self) -> Result<(), LoadError> {
        if Instant::now() >= self.deadline {
            Err(LoadError::Timeout)
        } else {
            Ok(())
        }
    }
}

/// The labels of every series that `matchers` select, sorted; stops at `deadline`.
pub fn select_series(
    store: &Store,
    matchers: &[Matcher],
    deadline: Instant,
) -> Result<Vec<Labels>, LoadError> {
    let budget = Budget::until(deadline);
    let mut out = Vec::new();
    for h in store.hosts() {
        budget.check_time()?;
        if !host_may_match(matchers, &h.host) {
            continue;
        }
        for s in store.series(&h.host)? {
            budget.check_time()?;
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
    /// The query's time ran out (`[api] query_timeout`).
    #[error("query timed out in expression evaluation")]
    Timeout,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The points in `[from, to]` of every series `matchers` select. `budget` counts down the
/// samples the whole query may still load, and says when its time is up.
pub fn load(
    store: &Store,
    matchers: &[Matcher],
    (from, to): (i64, i64),
    budget: &mut Budget,
) -> Result<Vec<SeriesData>, LoadError> {
    let mut out = Vec::new();
    for h in store.hosts() {
        budget.check_time()?;
        if !host_may_match(matchers, &h.host) {
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        for s in store.series(&h.host)? {
            budget.check_time()?;
            if names.last() == Some(&s.name) {
                continue;
            }
            if matches_all(matchers, &prom_labels(&h.host, &s.name, &s.labels)) {
                names.push(s.name);
            }
        }
        for name in names {
            budget.check_time()?;
            let (_, series) = store
                .query(&h.host, &name, &[], (from, to), None, budget.samples)
                .map_err(|e| match e {
                    QueryError::TooManyPoints { .. } => LoadError::TooManySamples,
                    QueryError::Store(e) => LoadError::Store(e),
                })?;
            for s in series {
                let labels = prom_labels(&h.host, &name, &s.labels);
                if s.points.is_empty() || !matches_all(matchers, &labels) {
                    continue;
                }
                budget.samples = budget
                    .samples
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
