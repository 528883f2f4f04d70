//! The `[remote_write]` section of the aggregator configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[remote_write]`: forward every committed sample to a Prometheus remote-write receiver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver, `http://` or `https://` (e.g. `http://127.0.0.1:9090/api/v1/write`).
    pub url: String,
    /// Extra HTTP headers on every request (e.g. `X-Scope-OrgID` for Mimir).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// A file holding the bearer token (read at start); instead of `bearer_token`.
    pub bearer_token_file: Option<PathBuf>,
    /// `[remote_write.tls]`: how to verify the receiver and how to authenticate to it.
    #[serde(default)]
    pub tls: RemoteWriteTls,
    /// Labels added to every series sent (a series' own label of that name wins).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// The durable queue's directory. Default: `remote_write` beside the store file.
    pub queue_dir: Option<PathBuf>,
    /// The queue's bound, MiB: past it the oldest unsent samples are dropped (and counted).
    /// Default 1024.
    #[serde(default = "default_queue_max_mib")]
    pub queue_max_mib: u64,
    /// Most samples in one request. Default 2000.
    #[serde(default = "default_max_samples")]
    pub max_samples_per_send: usize,
    /// Time limit of one request. Default 30s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest wait between retries (exponential backoff with full jitter from 100 ms).
    /// Default 30s.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

/// `[remote_write.tls]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteTls {
    /// PEM CA bundle that signs the receiver's certificate. Default: the system's roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for receivers that want mutual TLS (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
}

fn default_queue_max_mib() -> u64 {
    1024
}
fn default_max_samples() -> usize {
    2000
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

/// Headers nines sets itself, which the configuration may not override.
const RESERVED: [&str; 5] = [
    "content-encoding",
    "content-type",
    "x-prometheus-remote-write-version",
    "user-agent",
    "authorization",
];

impl RemoteWriteConfig {
    /// Checks values and makes relative paths relative to `base`.
    pub fn validate(&mut self, base: &Path, store: &Path) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "[remote_write] url = {:?}: use an http:// or https:// URL",
                self.url
            ));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err("[remote_write] give bearer_token or bearer_token_file, not both".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err("[remote_write.tls] cert and key go together".into());
        }
        for h in self.headers.keys() {
            if RESERVED.contains(&h.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "[remote_write] headers: {h:?} is set by nines (use bearer_token for Authorization)"
                ));
            }
        }
        if !(1..=100_000).contains(&self.max_samples_per_send) {
            return Err("[remote_write] max_samples_per_send: use 1 to 100000".into());
        }
        if self.queue_max_mib == 0 {
            return Err("[remote_write] queue_max_mib must be at least 1".into());
        }
        if self.timeout.is_zero() || self.max_backoff < Duration::from_millis(100) {
            return Err(
                "[remote_write] timeout must be positive and max_backoff at least 100ms".into(),
            );
        }
        for p in [
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.bearer_token_file,
            &mut self.queue_dir,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if self.queue_dir.is_none() {
            self.queue_dir = Some(
                store
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("remote_write"),
            );
        }
        Ok(())
    }
}
