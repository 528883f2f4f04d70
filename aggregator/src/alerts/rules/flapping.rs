//! The `[flapping]` section: how many results flap detection looks at and the change
//! thresholds at which an alert starts and stops flapping.

use serde::Deserialize;

/// `[flapping]`: Nagios' flap detection: the weighted percent of state changes over the last
/// `window` evaluations; flapping starts above `high` and ends below `low`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flapping {
    /// Evaluations looked at. Default 21.
    #[serde(default = "default_flap_window")]
    pub window: usize,
    /// Start flapping above this share of changes. Default 0.5.
    #[serde(default = "default_flap_high")]
    pub high: f64,
    /// Stop flapping below this share. Default 0.25.
    #[serde(default = "default_flap_low")]
    pub low: f64,
}

fn default_flap_window() -> usize {
    21
}
fn default_flap_high() -> f64 {
    0.5
}
fn default_flap_low() -> f64 {
    0.25
}

impl Default for Flapping {
    fn default() -> Self {
        Self {
            window: default_flap_window(),
            high: default_flap_high(),
            low: default_flap_low(),
        }
    }
}
