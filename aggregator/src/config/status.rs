//! The `[status]` section: who may see the status page.

use serde::Deserialize;

/// `[status]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Serve the status page read-only to anyone who can reach the API port, without a
    /// token. Default false: a token is asked for once and kept in a cookie.
    #[serde(default)]
    pub anonymous: bool,
}
