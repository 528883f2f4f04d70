//! `/healthz`, hosts, series listings and `/api/v1/query`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Labels;

/// `GET /healthz`: `ok` with the number of connected agents, or `failing` with the kind of
/// failure (503).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `failing`.
    pub status: HealthStatus,
    /// Agents with a connection open (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents_connected: Option<usize>,
    /// Why the store refuses writes (when `failing`): the kind of failure, not its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether the store accepts writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// It does.
    Ok,
    /// It refuses them after a failed commit.
    Failing,
}

/// `GET /api/v1/hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostList {
    /// Every host, sorted by id.
    pub hosts: Vec<Host>,
}

/// One host (`GET /api/v1/hosts/{host}`, and each of `GET /api/v1/hosts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    /// The host id.
    pub id: String,
    /// The newest sample is within three intervals of now.
    pub up: bool,
    /// The agent has a connection open now.
    pub connected: bool,
    /// Timestamp of the newest sample stored, ms (0: none).
    pub last_seen_ms: i64,
    /// The same, RFC 3339; `null` for none.
    pub last_seen: Option<String>,
    /// First contact, RFC 3339.
    pub first_seen: Option<String>,
    /// Agent version from its last hello.
    pub agent_version: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// The kernel's boot id: it changes when the host reboots.
    pub boot_id: String,
    /// Sampling interval, ms.
    pub interval_ms: u32,
}

/// `GET /api/v1/series?host=H`: every series of the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostSeries {
    /// Sorted by name, then labels.
    pub series: Vec<SeriesName>,
}

/// A series of one host: its name and labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesName {
    /// Metric name.
    pub name: String,
    /// Labels (the host is not one of them).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: Labels,
}

/// One series of `GET /api/v1/series?match=...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesEntry {
    /// The host the series belongs to.
    pub host: String,
    /// Metric name.
    pub name: String,
    /// Labels (the host is not one of them).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: Labels,
}

/// The answer of `GET /api/v1/series?match=...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesList {
    /// Matching series, sorted by host, then name, then labels; at most `limit`.
    pub series: Vec<SeriesEntry>,
    /// Whether more series matched than `limit`.
    pub truncated: bool,
    /// The bound in force.
    pub limit: usize,
}

/// `GET /api/v1/query`: points per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueryAnswer {
    /// One entry per matching series.
    pub series: Vec<SeriesPoints>,
    /// Where the points come from.
    pub resolution: Resolution,
    /// The bucket width, or `null` for raw points.
    pub step_ms: Option<i64>,
    /// The aggregate of each bucket (`avg`, ..., `p95`), or `null` for raw points.
    pub agg: Option<String>,
}

/// A series and its points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoints {
    /// Labels.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: Labels,
    /// `[timestamp ms, value]` pairs in time order; with a step, the timestamp is the start of
    /// the bucket.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub points: Vec<(i64, f64)>,
}

/// The stored resolution an answer was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Resolution {
    /// Raw points.
    #[serde(rename = "raw")]
    Raw,
    /// Raw points where they are kept, 1 min rollups of older ones.
    #[serde(rename = "1m")]
    Minute,
    /// 1 h rollups (and raw points not rolled up yet).
    #[serde(rename = "1h")]
    Hour,
}

/// `GET /api/v1/series`: with `match`, a [`SeriesList`]; with `host` alone, [`HostSeries`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SeriesAnswer {
    /// Series across hosts (`match=`).
    Match(SeriesList),
    /// The series of one host (`host=` alone).
    Host(HostSeries),
}
