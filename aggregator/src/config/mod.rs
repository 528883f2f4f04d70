//! The aggregator configuration file (`/etc/nines/aggregator.toml`): parsed once, validated,
//! typed, before anything binds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use nines_common::diag::{Diagnostic, Key, Severity};
use serde::Deserialize;

use crate::availability::config::ServiceConfig;
use crate::store::StoreOptions;

mod api;
pub use api::{ApiConfig, ApiTlsFiles, Role, TokenConfig};

/// Why the configuration is unusable. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a bad value (the message names line and key).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// Values out of range or inconsistent: every one found, each with its place in the file
    /// where known. One line each: `config FILE:LINE:COLUMN: what is wrong and how to fix it`.
    #[error("{}", show_all(errors))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it, one entry per problem (at least one).
        errors: Vec<Diagnostic>,
    },
}

fn show_all(errors: &[Diagnostic]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("config {e}")).collect();
    lines.join("\n")
}

impl ConfigError {
    /// Every problem, each with its file and, where known, line and column.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Self::Invalid { errors, .. } => errors.clone(),
            Self::Read { path, .. } | Self::Parse { path, .. } => {
                let message = self.to_string();
                let prefix = format!("config {}: ", path.display());
                vec![Diagnostic {
                    severity: Severity::Error,
                    file: path.clone(),
                    position: None,
                    message: message.strip_prefix(&prefix).unwrap_or(&message).to_owned(),
                }]
            }
        }
    }
}

/// The whole aggregator configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[ingest]`: the mTLS port agents connect to.
    pub ingest: IngestConfig,
    /// `[api]`: the HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// `[store]`: the database.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[[services]]`: what availability is reported on.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// `[alerts]`: the alert rules file.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[remote_write]`: forward every committed sample to a Prometheus remote-write
    /// receiver. Off without the section.
    pub remote_write: Option<crate::remote_write::RemoteWriteConfig>,
    /// `[status]`: the status page.
    #[serde(default)]
    pub status: StatusConfig,
    /// `[check]`: what `check-config` takes as known.
    #[serde(default)]
    pub check: CheckConfig,
}

/// `[check]` section: what `nines-aggregator check-config` accepts besides the metrics nines
/// produces (docs/metrics.md).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Metric names that come from elsewhere (agents' textfile directories and push sockets,
    /// Prometheus remote write), as globs (`*` any run of characters, `?` one): an alert rule
    /// on one of them is not warned about. Default none.
    #[serde(default)]
    pub known_metrics: Vec<String>,
}

impl CheckConfig {
    /// Whether nines produces `metric` or this section names it.
    pub fn knows(&self, metric: &str) -> bool {
        nines_common::metrics::lookup(metric).is_some()
            || self
                .known_metrics
                .iter()
                .any(|g| nines_common::metrics::glob_match(g, metric))
    }
}

/// `[status]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Serve the status page read-only to anyone who can reach the API port, without a
    /// token. Default false: a token is asked for once and kept in a cookie.
    #[serde(default)]
    pub anonymous: bool,
}

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

fn default_ingest_listen() -> SocketAddr {
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

fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/nines-aggregator/nines.redb")
}

/// `[store]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The redb database file. Default `/var/lib/nines-aggregator/nines.redb`.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// `[store.retention]`: how long each resolution is kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Points per chunk: a series' open chunk is closed and compressed at this many points.
    /// Default 240.
    #[serde(default = "default_chunk_points")]
    pub chunk_points: usize,
    /// An open chunk is closed after this long even if it is not full; it bounds the
    /// write-ahead data replayed at start. Default 1h.
    #[serde(default = "default_head_max_age", with = "humantime_serde")]
    pub head_max_age: Duration,
    /// Memory for redb's page cache, MiB. Default 64.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
}

/// `[store.retention]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw points. Default 35d.
    #[serde(default = "default_raw_retention", with = "humantime_serde")]
    pub raw: Duration,
    /// 1 min rollups. Default 90d.
    #[serde(default = "default_1m_retention", with = "humantime_serde")]
    pub rollup_1m: Duration,
    /// 1 h rollups. Default 1098d (three years).
    #[serde(default = "default_1h_retention", with = "humantime_serde")]
    pub rollup_1h: Duration,
}

fn chunk_points_max() -> usize {
    65_536
}

fn default_chunk_points() -> usize {
    StoreOptions::default().chunk_points
}
fn default_head_max_age() -> Duration {
    StoreOptions::default().head_max_age
}
fn default_cache_mib() -> usize {
    StoreOptions::default().cache_bytes >> 20
}
fn default_raw_retention() -> Duration {
    StoreOptions::default().raw_retention
}
fn default_1m_retention() -> Duration {
    StoreOptions::default().rollup_1m_retention
}
fn default_1h_retention() -> Duration {
    StoreOptions::default().rollup_1h_retention
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw: default_raw_retention(),
            rollup_1m: default_1m_retention(),
            rollup_1h: default_1h_retention(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            retention: RetentionConfig::default(),
            chunk_points: default_chunk_points(),
            head_max_age: default_head_max_age(),
            cache_mib: default_cache_mib(),
        }
    }
}

impl StoreConfig {
    /// The store's options.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            raw_retention: self.retention.raw,
            rollup_1m_retention: self.retention.rollup_1m,
            rollup_1h_retention: self.retention.rollup_1h,
            chunk_points: self.chunk_points,
            head_max_age: self.head_max_age,
            cache_bytes: self.cache_mib << 20,
            ..StoreOptions::default()
        }
    }
}

impl Config {
    /// Where enrollment and renewal find their files.
    pub fn enroll(&self) -> crate::pki::enroll::EnrollConfig {
        crate::pki::enroll::EnrollConfig {
            ca_cert: self.ingest.ca.clone(),
            ca_key: self.ingest.ca_key_path(),
            tokens: self.ingest.tokens_path(),
            used_tokens: self
                .store
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("used-tokens.txt"),
            cert_days: self.ingest.agent_cert_days,
        }
    }

    /// The alert rules the configuration names, read and validated (none if it names no file).
    /// Every rule a service counts as down time (`alert_rules`) must be defined there.
    pub fn load_rules(&self) -> Result<crate::alerts::Rules, crate::alerts::RulesError> {
        let rules = match &self.alerts.rules {
            Some(p) => crate::alerts::Rules::load(p)?,
            None => crate::alerts::Rules::empty(),
        };
        for s in &self.services {
            for r in &s.alert_rules {
                if !rules.rules.iter().any(|x| &x.name == r) {
                    return Err(crate::alerts::RulesError {
                        path: self.alerts.rules.clone().unwrap_or_default(),
                        message: format!(
                            "[[services]] {:?} counts alert rule {r:?} as down time, but no rule has that name{}",
                            s.name,
                            if self.alerts.rules.is_none() {
                                " ([alerts] rules names no file)"
                            } else {
                                ""
                            }
                        ),
                    });
                }
            }
        }
        Ok(rules)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; relative paths are relative to `path`'s
    /// directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        // Every problem is collected, each located at its key, so that one run of
        // check-config names them all.
        let mut errors: Vec<Diagnostic> = Vec::new();
        let mut invalid = |keys: &[&str], message: String| {
            let keys: Vec<Key<'_>> = keys.iter().map(|k| Key::Name(k)).collect();
            errors.push(Diagnostic::error(path, text, &keys, message));
        };
        if config.ingest.max_frame_bytes < 64 * 1024 {
            invalid(
                &["ingest", "max_frame_bytes"],
                "[ingest] max_frame_bytes must be at least 65536".into(),
            );
        }
        let i = &config.ingest;
        for (key, value) in [
            ("max_connections", i.max_connections),
            ("max_connections_per_address", i.max_connections_per_address),
            ("max_series_per_host", i.max_series_per_host),
        ] {
            if value == 0 {
                invalid(
                    &["ingest", key],
                    "[ingest] max_connections, max_connections_per_address and max_series_per_host must be at least 1"
                        .into(),
                );
            }
        }
        if i.handshake_timeout < Duration::from_secs(1) || i.idle_timeout < Duration::from_secs(10)
        {
            let key = if i.handshake_timeout < Duration::from_secs(1) {
                "handshake_timeout"
            } else {
                "idle_timeout"
            };
            invalid(
                &["ingest", key],
                "[ingest] handshake_timeout must be at least 1s and idle_timeout at least 10s"
                    .into(),
            );
        }
        if i.max_future > Duration::from_secs(86_400) {
            invalid(
                &["ingest", "max_future"],
                "[ingest] max_future must be at most 1d (a clock further ahead is wrong)".into(),
            );
        }
        let age = *config
            .ingest
            .max_point_age
            .get_or_insert(config.store.retention.raw);
        if age < Duration::from_secs(60) || age > config.store.retention.rollup_1h {
            invalid(
                &["ingest", "max_point_age"],
                "[ingest] max_point_age must be from 1m to [store.retention] rollup_1h".into(),
            );
        }
        let i = &config.ingest;
        if !(1..=3650).contains(&i.agent_cert_days) {
            invalid(
                &["ingest", "agent_cert_days"],
                "[ingest] agent_cert_days must be from 1 to 3650".into(),
            );
        }
        for (n, t) in config.api.tokens.iter().enumerate() {
            let ok = t.sha256.len() == 64
                && t.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                let keys = [
                    Key::Name("api"),
                    Key::Name("tokens"),
                    Key::Index(n),
                    Key::Name("sha256"),
                ];
                errors.push(Diagnostic::error(path, text, &keys, format!(
                    "[[api.tokens]] {:?}: sha256 must be 64 lower-case hex digits (use `nines-aggregator token new`)",
                    t.name
                )));
            }
        }
        let mut invalid = |keys: &[&str], message: String| {
            let keys: Vec<Key<'_>> = keys.iter().map(|k| Key::Name(k)).collect();
            errors.push(Diagnostic::error(path, text, &keys, message));
        };
        for (key, e) in config.api.problems() {
            invalid(&["api", key], e);
        }
        if config.alerts.startup_grace > Duration::from_secs(3600) {
            invalid(
                &["alerts", "startup_grace"],
                "[alerts] startup_grace must be at most 1h (hosts down meanwhile go unreported)"
                    .into(),
            );
        }
        if config.ingest.listen == config.api.listen && config.api.listen.port() != 0 {
            invalid(
                &["api", "listen"],
                format!("[ingest] and [api] both listen on {}", config.api.listen),
            );
        }
        let st = &config.store;
        if !(16..=chunk_points_max()).contains(&st.chunk_points) {
            invalid(
                &["store", "chunk_points"],
                format!(
                    "[store] chunk_points = {}: use 16 to {}",
                    st.chunk_points,
                    chunk_points_max()
                ),
            );
        }
        if st.head_max_age < Duration::from_secs(60)
            || st.head_max_age > Duration::from_secs(86_400)
        {
            invalid(
                &["store", "head_max_age"],
                "[store] head_max_age must be from 1m to 24h".into(),
            );
        }
        if st.cache_mib == 0 {
            invalid(
                &["store", "cache_mib"],
                "[store] cache_mib must be at least 1".into(),
            );
        }
        let r = &st.retention;
        if r.raw < Duration::from_secs(3600) {
            invalid(
                &["store", "retention", "raw"],
                "[store.retention] raw must be at least 1h".into(),
            );
        }
        if r.rollup_1m < r.raw || r.rollup_1h < r.rollup_1m {
            invalid(
                &["store", "retention"],
                "[store.retention] keep coarser resolutions at least as long: raw <= rollup_1m <= rollup_1h"
                    .into(),
            );
        }
        // Each service on its own, so that every bad one is named; then the names together.
        for (n, service) in config.services.iter().enumerate() {
            if let Err(e) = crate::availability::config::validate(std::slice::from_ref(service)) {
                let keys = [Key::Name("services"), Key::Index(n)];
                errors.push(Diagnostic::error(path, text, &keys, e));
            } else if config.services[..n].iter().any(|o| o.name == service.name) {
                let keys = [Key::Name("services"), Key::Index(n), Key::Name("name")];
                let message = format!("[[services]] {:?}: name is used twice", service.name);
                errors.push(Diagnostic::error(path, text, &keys, message));
            }
        }
        for (n, glob) in config.check.known_metrics.iter().enumerate() {
            let ok = !glob.is_empty()
                && glob
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_*?".contains(&b));
            if !ok {
                let keys = [
                    Key::Name("check"),
                    Key::Name("known_metrics"),
                    Key::Index(n),
                ];
                errors.push(Diagnostic::error(
                    path,
                    text,
                    &keys,
                    format!(
                        "[check] known_metrics: {glob:?} is not a metric name or glob (letters, digits, _, * and ?)"
                    ),
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(p) = &mut config.alerts.rules
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
        for p in [
            &mut config.ingest.revoked,
            &mut config.ingest.ca_key,
            &mut config.ingest.tokens,
            &mut config.api.tls_cert,
            &mut config.api.tls_key,
            &mut config.api.client_ca,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in [
            &mut config.ingest.ca,
            &mut config.ingest.cert,
            &mut config.ingest.key,
            &mut config.store.path,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(rw) = &mut config.remote_write
            && let Err(e) = rw.validate(base, &config.store.path)
        {
            errors.push(Diagnostic::error(
                path,
                text,
                &[Key::Name("remote_write")],
                e,
            ));
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                errors,
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::api::default_api_listen;
    use super::*;

    #[test]
    fn the_shipped_example_parses_with_its_documented_defaults() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/aggregator.toml"
        ));
        let c = Config::parse(text, Path::new("/etc/nines/aggregator.toml")).unwrap();
        assert_eq!(c.ingest.listen, default_ingest_listen());
        assert_eq!(c.api.listen, default_api_listen());
        assert_eq!(c.store.path, default_store_path());
        assert_eq!(c.ingest.max_frame_bytes, 4 * 1024 * 1024);
        assert_eq!(c.api.tokens.len(), 1);
        assert_eq!(c.api.tokens[0].role, Role::Read);
        assert_eq!(c.store.options(), StoreOptions::default());

        // The commented store defaults, uncommented, are the defaults.
        let mut uncommented = String::new();
        for line in text.lines() {
            let store_key = [
                "#chunk_points",
                "#max_frame_bytes",
                "#max_connections",
                "#handshake_timeout",
                "#header_read_timeout",
                "#idle_timeout",
                "#max_series_per_host",
                "#max_point_age",
                "#max_future",
                "#head_max_age",
                "#cache_mib",
                "#raw",
                "#rollup_",
                "#query_",
                "#startup_grace",
            ]
            .iter()
            .any(|k| line.starts_with(k));
            uncommented.push_str(if store_key { &line[1..] } else { line });
            uncommented.push('\n');
        }
        let u = Config::parse(&uncommented, Path::new("/etc/nines/aggregator.toml")).unwrap();
        assert_eq!(u.store, c.store);
        assert_eq!(u.ingest, c.ingest);
        assert_eq!(u.api, c.api);
        assert_eq!(u.alerts, c.alerts);
        assert_eq!(c.alerts.startup_grace, Duration::from_secs(60));
        assert_eq!(c.ingest.limits(), crate::ingest::Limits::default());
        assert_eq!(c.api.limits(), crate::http::serve::Limits::default());
        assert_eq!(
            u.api.query_limits(),
            crate::http::prom::limits::QueryLimits::default()
        );
        assert!(c.services.is_empty());

        // The commented service example, uncommented (without the k that excludes require),
        // is a valid service.
        let services: String = text
            .lines()
            .skip_while(|l| !l.starts_with("#[[services]]"))
            .filter(|l| l.starts_with('#') && !l.starts_with("# ") && !l.starts_with("#k ="))
            .map(|l| format!("{}\n", &l[1..]))
            .collect();
        let s = Config::parse(
            &format!("[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{services}"),
            Path::new("a.toml"),
        )
        .unwrap();
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.services[0].required_up(), 3);
        assert!(s.services[0].exclude_maintenance);
    }

    #[test]
    fn query_limits_outside_their_ranges_are_refused_by_name() {
        let base = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[api]\n";
        for bad in [
            "query_max_matchers = 0",
            "query_max_regex_bytes = 0",
            "query_concurrency = 0",
            "query_timeout = \"10ms\"",
            "query_timeout = \"1h\"",
        ] {
            let e = Config::parse(&format!("{base}{bad}\n"), Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("a.toml") && e.contains("query limits"),
                "{bad}: {e}"
            );
        }
        let c = Config::parse(
            &format!("{base}query_max_matchers = 8\nquery_timeout = \"2s\"\n"),
            Path::new("a.toml"),
        )
        .unwrap();
        assert_eq!(c.api.query_limits().parse.max_matchers, 8);
        assert_eq!(c.api.query_limits().timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_commented_api_tls_example_parses() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/aggregator.toml"
        ));
        let path = Path::new("/etc/nines/aggregator.toml");
        assert_eq!(Config::parse(text, path).unwrap().api.tls(), None);
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(k) if k.starts_with("tls_") || k.starts_with("client_ca") => k,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let tls = Config::parse(&uncommented, path)
            .unwrap()
            .api
            .tls()
            .unwrap();
        assert_eq!(tls.cert, Path::new("/etc/nines/api/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/nines/api/key.pem"));
        assert_eq!(
            tls.client_ca.as_deref(),
            Some(Path::new("/etc/nines/api/clients.pem"))
        );
    }

    #[test]
    fn the_commented_remote_write_example_parses_with_its_documented_defaults() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/aggregator.toml"
        ));
        assert!(
            Config::parse(text, Path::new("/etc/nines/aggregator.toml"))
                .unwrap()
                .remote_write
                .is_none()
        );
        let section: String = text
            .lines()
            .skip_while(|l| !l.starts_with("#[remote_write]"))
            .filter(|l| l.starts_with('#') && !l.starts_with("# "))
            .map(|l| format!("{}\n", &l[1..]))
            .collect();
        let c = Config::parse(
            &format!("[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{section}"),
            Path::new("/etc/nines/aggregator.toml"),
        )
        .unwrap();
        let rw = c.remote_write.unwrap();
        assert_eq!(rw.url, "http://127.0.0.1:9090/api/v1/write");
        assert_eq!(rw.headers["X-Scope-OrgID"], "ops");
        assert_eq!(rw.queue_max_mib, 1024);
        assert_eq!(rw.max_samples_per_send, 2000);
        assert_eq!(rw.timeout, Duration::from_secs(30));
        assert_eq!(rw.max_backoff, Duration::from_secs(30));
        // The default queue directory is beside the default store file.
        assert_eq!(
            rw.queue_dir.unwrap(),
            default_store_path().parent().unwrap().join("remote_write")
        );
        assert!(rw.tls.ca.is_some() && rw.tls.cert.is_some());

        let head = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[remote_write]\n";
        for (text, want) in [
            ("url = \"ftp://x\"\n", "http:// or https://"),
            (
                "url = \"http://x\"\nheaders = { \"Content-Type\" = \"x\" }\n",
                "set by nines",
            ),
            (
                "url = \"http://x\"\n[remote_write.tls]\ncert = \"c.pem\"\n",
                "cert and key go together",
            ),
            (
                "url = \"http://x\"\nmax_samples_per_send = 0\n",
                "max_samples_per_send",
            ),
        ] {
            let e = Config::parse(&format!("{head}{text}"), Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn store_options_out_of_range_are_refused_with_the_rule() {
        let head = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n";
        let cases = [
            (
                "[store]\nchunk_points = 4\n",
                "chunk_points = 4: use 16 to 65536",
            ),
            (
                "[store]\nhead_max_age = \"2d\"\n",
                "head_max_age must be from 1m to 24h",
            ),
            (
                "[store.retention]\nraw = \"100d\"\n",
                "raw <= rollup_1m <= rollup_1h",
            ),
            (
                "[store.retention]\nraw = \"10m\"\n",
                "raw must be at least 1h",
            ),
            ("[store.retention]\nraw = \"ten days\"\n", "raw"),
        ];
        for (text, want) in cases {
            let e = Config::parse(&format!("{head}{text}"), Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("config a.toml:") && e.contains(want),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn a_service_counting_an_undefined_alert_rule_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alerts.toml"),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../packaging/alerts.toml"
            )),
        )
        .unwrap();
        let text = |rule: &str| {
            format!(
                "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[alerts]\nrules = \"alerts.toml\"\n\
                 [[services]]\nname = \"shop\"\ntarget_percent = 99.9\nmembers = [\"web-1\"]\nalert_rules = [\"{rule}\"]\n"
            )
        };
        let path = dir.path().join("aggregator.toml");
        let ok = Config::parse(&text("HighCpu"), &path).unwrap();
        assert_eq!(ok.load_rules().unwrap().rules.len(), 4);
        let bad = Config::parse(&text("Typo"), &path).unwrap();
        let e = bad.load_rules().unwrap_err().to_string();
        assert!(
            e.contains("alerts.toml") && e.contains("counts alert rule \"Typo\""),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_each_at_its_key() {
        let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\nmax_future = \"2d\"\n\
                    [api]\ntls_cert = \"api.pem\"\nquery_concurrency = 0\n[alerts]\nstartup_grace = \"2h\"\n";
        let e = Config::parse(text, Path::new("a.toml")).unwrap_err();
        let found: Vec<String> = e.diagnostics().iter().map(|d| d.to_string()).collect();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found[0].starts_with("a.toml:5:14: [ingest] max_future"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|d| d.starts_with("a.toml:7:12: [api] tls_cert is set")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|d| d.contains("[api] query limits")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|d| d.starts_with("a.toml:10:17: [alerts] startup_grace")),
            "{found:?}"
        );
        // serve prints every one, a line each.
        assert_eq!(e.to_string().lines().count(), 4, "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_key() {
        let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\nlisten = \"nowhere\"\n";
        let e = Config::parse(text, Path::new("/etc/nines/aggregator.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/nines/aggregator.toml"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("listen"), "{e}");

        let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[store]\npaht = \"x\"\n";
        let e = Config::parse(text, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6") && e.contains("paht"), "{e}");

        let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[[api.tokens]]\nname = \"x\"\nsha256 = \"secret\"\n";
        let e = Config::parse(text, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 lower-case hex"), "{e}");
    }
}
