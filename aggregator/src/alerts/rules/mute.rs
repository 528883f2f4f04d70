//! The `[[mute]]` sections: recurring windows, in a time zone, during which matching alerts
//! notify nobody.

use serde::Deserialize;

use crate::alerts::matcher::Matcher;
use crate::availability::Schedule;

/// A `[[mute]]` entry: a recurring window in which matching alerts notify nobody.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct MuteConfig {
    pub(super) name: String,
    #[serde(default)]
    pub(super) matchers: Vec<String>,
    #[serde(default = "utc")]
    pub(super) time_zone: String,
    pub(super) weekly: Vec<WindowConfig>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowConfig {
    pub(super) days: Vec<String>,
    pub(super) start: String,
    pub(super) end: String,
}

/// A recurring mute window.
#[derive(Debug, Clone)]
pub struct MuteWindow {
    /// Its name, shown on muted alerts.
    pub name: String,
    /// Alerts it applies to (all, if empty).
    pub matchers: Vec<Matcher>,
    /// When it applies.
    pub schedule: Schedule,
}
