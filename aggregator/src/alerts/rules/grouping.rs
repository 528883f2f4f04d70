//! The `[grouping]` section: which labels batch alerts into one notification, and the
//! group_wait, group_interval and repeat_interval timers.

use std::time::Duration;

use serde::Deserialize;

/// `[grouping]`: how alerts are batched into notifications (Alertmanager's meaning and
/// defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    /// Labels whose values make a group. Default `["alertname"]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group, to gather its storm. Default 30s.
    #[serde(default = "default_group_wait", with = "humantime_serde")]
    pub group_wait: Duration,
    /// Wait between notifications of a group whose alerts changed. Default 5m.
    #[serde(default = "default_group_interval", with = "humantime_serde")]
    pub group_interval: Duration,
    /// Re-send a group that is still firing and unchanged after this long. Default 4h.
    #[serde(default = "default_repeat_interval", with = "humantime_serde")]
    pub repeat_interval: Duration,
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".into()]
}
fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

impl Default for Grouping {
    fn default() -> Self {
        Self {
            group_by: default_group_by(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
        }
    }
}
