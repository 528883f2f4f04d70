//! The `[check]` section: metrics from elsewhere that `check-config` takes as known.

use serde::Deserialize;

/// `[check]` section: what `nines-aggregator check-config` accepts besides the metrics nines
/// produces (docs/metrics.md).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Metric names that come from elsewhere (agents' textfile directories and push sockets,
    /// Prometheus remote write), as globs (`*` any run of characters, `?` one): an alert rule
    /// on one of them is not warned about. Default none.
    #[serde(default)]
    pub known_metrics: Vec<String>,
}

impl CheckConfig {
    /// Whether nines produces `metric` or this section names it.
    pub fn knows(&self, metric: &str) -> bool {
        nines_common::metrics::lookup(metric).is_some()
            || self
                .known_metrics
                .iter()
                .any(|g| nines_common::metrics::glob_match(g, metric))
    }
}
