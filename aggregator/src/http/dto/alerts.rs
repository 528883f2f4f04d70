//! Alerts, their history, rules, the notification log, and silences (in Alertmanager's
//! shape).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alerts::State;
use crate::alerts::rules::Severity;

/// `GET /api/v1/alerts`: alerts that are pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One active alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Stable hash of the labels.
    pub fingerprint: String,
    /// The rule's name.
    pub alertname: String,
    /// `pending` or `firing`.
    #[schema(schema_with = super::alert_state_schema)]
    pub state: State,
    /// The `severity` label.
    pub severity: Option<String>,
    /// When it fired (became pending, for a pending alert), RFC 3339.
    pub since: Option<String>,
    /// When the condition started to hold, RFC 3339.
    pub active_since: Option<String>,
    /// The last evaluated value.
    pub value: f64,
    /// `alertname`, `severity`, `host` and the series' labels.
    pub labels: BTreeMap<String, String>,
    /// `summary`, `runbook_url`, `description`, ...
    pub annotations: BTreeMap<String, String>,
    /// Changing state too often to notify on each change.
    pub flapping: bool,
    /// Why it notifies nobody now; `null` when it notifies.
    pub muted: Option<Muted>,
}

/// Why an alert notifies nobody right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Muted {
    /// A silence.
    Silence {
        /// Its id.
        id: u64,
    },
    /// A recurring mute window.
    MuteWindow {
        /// Its name.
        name: String,
    },
    /// A maintenance window.
    Maintenance {
        /// Its title.
        title: String,
    },
    /// The host's host_down alert.
    Inhibited {
        /// The inhibiting alert's fingerprint.
        fingerprint: String,
    },
}

impl From<crate::alerts::Muted> for Muted {
    fn from(m: crate::alerts::Muted) -> Self {
        use crate::alerts::Muted as M;
        match m {
            M::Silence { id } => Self::Silence { id },
            M::MuteWindow { name } => Self::MuteWindow { name },
            M::Maintenance { title } => Self::Maintenance { title },
            M::Inhibited { fingerprint } => Self::Inhibited { fingerprint },
        }
    }
}

/// `GET /api/v1/alerts/rules`: the rules in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleList {
    /// How often rules are evaluated.
    pub evaluation_interval_seconds: f64,
    /// The message of the last failed reload; `null` once a good file is loaded.
    pub reload_error: Option<String>,
    /// The rules.
    pub rules: Vec<Rule>,
    /// Notifier names.
    pub notifiers: Vec<String>,
    /// Mute window names.
    pub mute_windows: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rule {
    /// The `alertname`.
    pub name: String,
    /// What it watches: `Threshold`, `HostDown`, `ProcessDown`, `DiskFullForecast`, ...
    pub kind: String,
    /// The condition in words.
    pub condition: String,
    /// Host glob.
    pub hosts: String,
    /// How long the condition must hold before it fires.
    pub for_seconds: f64,
    /// How long it keeps firing after the condition cleared.
    pub keep_firing_for_seconds: f64,
    /// The level at which it clears.
    pub clear: f64,
    /// `warning` or `critical`.
    #[schema(schema_with = super::severity_schema)]
    pub severity: Severity,
    /// Notifier names.
    pub notify: Vec<String>,
    /// What is wrong and what it costs.
    pub summary: String,
    /// Where the steps to take are written.
    pub runbook: String,
    /// Grouping labels.
    pub group_by: Vec<String>,
}

/// `GET /api/v1/alerts/history`: state changes, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TransitionList {
    /// The changes.
    pub transitions: Vec<Transition>,
}

/// A state change of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    /// When, RFC 3339.
    pub at: Option<String>,
    /// The alert.
    pub fingerprint: String,
    /// Its `alertname` label.
    pub alertname: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Previous state.
    #[schema(schema_with = super::alert_state_schema)]
    pub from: State,
    /// New state.
    #[schema(schema_with = super::alert_state_schema)]
    pub to: State,
    /// The value that caused it.
    pub value: f64,
}

/// `GET /api/v1/alerts/notifications`: delivery attempts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptList {
    /// The attempts.
    pub attempts: Vec<Attempt>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// When it finished, RFC 3339.
    pub at: Option<String>,
    /// The notification's id.
    pub notification: u64,
    /// The notifier.
    pub notifier: String,
    /// The group.
    pub group_key: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Alerts it carried.
    pub alerts: usize,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Delivered.
    pub ok: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// No more attempts will be made.
    pub gave_up: bool,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SilenceList {
    /// Every silence.
    pub silences: Vec<Silence>,
}

/// A silence, in Alertmanager's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Label matchers: alerts matching all are silenced.
    pub matchers: Vec<Matcher>,
    /// Start, RFC 3339.
    pub starts_at: Option<String>,
    /// End, RFC 3339.
    pub ends_at: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Where it stands now.
    pub status: SilenceStatus,
}

/// Where a silence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SilenceStatus {
    /// Active, pending (starts later) or expired.
    pub state: SilenceState,
}

/// Active, pending or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Silencing now.
    Active,
    /// Starts later.
    Pending,
    /// Over.
    Expired,
}

/// A label matcher, in Alertmanager's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value, or a regular expression.
    pub value: String,
    /// `value` is a regular expression (default false).
    #[serde(default)]
    pub is_regex: bool,
    /// Equality; false negates (default true).
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl From<crate::alerts::matcher::MatcherJson> for Matcher {
    fn from(m: crate::alerts::matcher::MatcherJson) -> Self {
        Self {
            name: m.name,
            value: m.value,
            is_regex: m.is_regex,
            is_equal: m.is_equal,
        }
    }
}

impl From<Matcher> for crate::alerts::matcher::MatcherJson {
    fn from(m: Matcher) -> Self {
        Self {
            name: m.name,
            value: m.value,
            is_regex: m.is_regex,
            is_equal: m.is_equal,
        }
    }
}

/// `POST /api/v1/silences`, in Alertmanager's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSilence {
    /// At least one.
    pub matchers: Vec<Matcher>,
    /// Start (default now): ms, RFC 3339 or now-relative.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// End: ms, RFC 3339 or now-relative.
    pub ends_at: String,
    /// Who makes it (default the token's name).
    #[serde(default)]
    pub created_by: Option<String>,
    /// Why alerts are silenced; required.
    pub comment: String,
}
