//! The `[ingest]` section: where agents connect, the CA and the aggregator's certificate,
//! enrollment files, connection limits, and which points are accepted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::StoreOptions;

pub(super) fn default_ingest_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7443))
}

fn default_max_frame() -> u32 {
    nines_common::proto::DEFAULT_MAX_FRAME_BYTES
}

/// `[ingest]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address to listen on. Default `0.0.0.0:7443`.
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    /// PEM file of the CA that signs agent certificates.
    pub ca: PathBuf,
    /// PEM file of the aggregator's server certificate.
    pub cert: PathBuf,
    /// PEM file of its private key.
    pub key: PathBuf,
    /// Largest accepted frame, bytes. Default 4 MiB.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: u32,
    /// Open connections in all, TLS handshakes included; more are closed at once.
    /// Default 16384.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one source address. Default 256.
    #[serde(default = "default_max_per_address")]
    pub max_connections_per_address: usize,
    /// Time for the TLS handshake, and again for the agent's Hello. Default 10s.
    #[serde(default = "default_handshake", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed. Default 10m.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Series one host may have; points of further new series are dropped and counted
    /// (`nines_ingest_series_points_refused_total`). Default 20000.
    #[serde(default = "default_max_series")]
    pub max_series_per_host: usize,
    /// The revocation list `nines-aggregator ca revoke` writes. Default `revoked.txt` beside
    /// `ca`. Re-read whenever it changes.
    #[serde(default)]
    pub revoked: Option<PathBuf>,
    /// The CA private key that signs enrolled and renewed agent certificates. Default
    /// `ca.key` beside `ca`. If the aggregator cannot read it, agents cannot enroll or renew
    /// (they are told why) and everything else works.
    #[serde(default)]
    pub ca_key: Option<PathBuf>,
    /// The enrollment token file `nines-aggregator ca token` appends to. Default `tokens.txt`
    /// beside `ca`.
    #[serde(default)]
    pub tokens: Option<PathBuf>,
    /// Life of the agent certificates the aggregator issues; agents renew them after two
    /// thirds of it. Default 30 days.
    #[serde(default = "default_agent_cert_days")]
    pub agent_cert_days: u32,
    /// Points older than this are refused (`nines_ingest_points_refused_total`). Default
    /// `[store.retention] raw`; set when the file is parsed.
    #[serde(default, with = "humantime_serde")]
    pub max_point_age: Option<Duration>,
    /// Points further ahead of the aggregator's clock than this are refused. Default 10m.
    #[serde(default = "default_max_future", with = "humantime_serde")]
    pub max_future: Duration,
}

fn default_max_future() -> Duration {
    crate::ingest::check::PointBounds::default().max_future
}

fn default_agent_cert_days() -> u32 {
    30
}

fn default_max_connections() -> usize {
    crate::ingest::Limits::default().max_connections
}
fn default_max_per_address() -> usize {
    crate::ingest::Limits::default().max_connections_per_address
}
fn default_handshake() -> Duration {
    crate::ingest::Limits::default().handshake_timeout
}
fn default_idle() -> Duration {
    crate::ingest::Limits::default().idle_timeout
}
fn default_max_series() -> usize {
    crate::ingest::Limits::default().max_series_per_host
}

impl IngestConfig {
    /// The revocation list: `revoked`, or `revoked.txt` beside the CA file.
    pub fn revoked_path(&self) -> PathBuf {
        self.revoked.clone().unwrap_or_else(|| {
            self.ca
                .parent()
                .unwrap_or(Path::new("."))
                .join("revoked.txt")
        })
    }

    /// The CA key: `ca_key`, or `ca.key` beside the CA file.
    pub fn ca_key_path(&self) -> PathBuf {
        self.ca_key
            .clone()
            .unwrap_or_else(|| self.ca.parent().unwrap_or(Path::new(".")).join("ca.key"))
    }

    /// The token file: `tokens`, or `tokens.txt` beside the CA file.
    pub fn tokens_path(&self) -> PathBuf {
        self.tokens.clone().unwrap_or_else(|| {
            self.ca
                .parent()
                .unwrap_or(Path::new("."))
                .join("tokens.txt")
        })
    }

    /// The ingest port's limits.
    pub fn limits(&self) -> crate::ingest::Limits {
        crate::ingest::Limits {
            max_frame: self.max_frame_bytes,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            max_series_per_host: self.max_series_per_host,
            points: crate::ingest::check::PointBounds {
                max_age: self
                    .max_point_age
                    .unwrap_or_else(|| StoreOptions::default().raw_retention),
                max_future: self.max_future,
            },
        }
    }
}
