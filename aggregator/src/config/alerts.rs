//! The `[alerts]` section: the rules file, the URL for links in notifications, and the
//! grace after a start.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[alerts]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The rules file (docs/alerts.md); relative to this file's directory. Without it, no
    /// alerts are evaluated.
    pub rules: Option<PathBuf>,
    /// The URL people reach this aggregator's API at, for links in notifications.
    #[serde(default)]
    pub external_url: String,
    /// After a start, hosts known before it start no `host_down` alert and no host-down
    /// incident for this long: their agents are reconnecting. Default 60s.
    #[serde(default = "default_startup_grace", with = "humantime_serde")]
    pub startup_grace: Duration,
}

fn default_startup_grace() -> Duration {
    Duration::from_secs(60)
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            rules: None,
            external_url: String::new(),
            startup_grace: default_startup_grace(),
        }
    }
}
