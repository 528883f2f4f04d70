//! Reading the file and validating it as a whole: every problem is collected, each at its
//! key; relative paths become relative to the file's directory.

use std::path::Path;
use std::time::Duration;

use nines_common::diag::{Diagnostic, Key};

use super::store::chunk_points_max;
use super::{Config, ConfigError};

impl Config {
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
