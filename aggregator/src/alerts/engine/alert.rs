//! An alert and its history: the states an instance goes through, the alert the engine keeps
//! per rule and series, the transitions it records, and the fingerprint that names it.

use serde::{Deserialize, Serialize};

use super::Labels;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not alerting; kept only while its flap history matters.
    Inactive,
    /// The condition holds, not yet for `for`.
    Pending,
    /// Alerting.
    Firing,
    /// It fired and has recovered; kept until its groups have said so.
    Resolved,
}

/// One rule on one series (or host): its state and what it last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable hash of the labels.
    pub fingerprint: String,
    /// The rule's name.
    pub rule: String,
    /// `alertname`, `severity`, `host` and the series' labels.
    pub labels: Labels,
    /// `summary`, `runbook_url`, `description`, and the forecast's figures where it has them.
    pub annotations: Labels,
    /// Where it stands.
    pub state: State,
    /// When the condition started to hold (ms).
    pub active_since_ms: i64,
    /// When it fired (ms).
    pub firing_since_ms: Option<i64>,
    /// When it resolved (ms).
    pub resolved_ms: Option<i64>,
    /// The last evaluated value.
    pub value: f64,
    /// The last evaluation at which the condition (with hysteresis) held.
    pub last_bad_ms: i64,
    /// The last evaluation that saw this series.
    pub last_eval_ms: i64,
    /// Condition results of the last evaluations, oldest first.
    pub history: Vec<bool>,
    /// Flapping: changing state too often to notify on each change.
    pub flapping: bool,
}

/// A state change, kept in the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When, ms UTC.
    pub at_ms: i64,
    /// The alert.
    pub fingerprint: String,
    /// Its labels.
    pub labels: Labels,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
    /// The value that caused it.
    pub value: f64,
}

/// Stable 64-bit FNV-1a of the labels, in hex.
pub fn fingerprint(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
