//! The aggregator configuration file (`/etc/nines/aggregator.toml`): parsed once, validated,
//! typed, before anything binds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// A value is out of range or inconsistent.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
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
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7480))
}

/// `[api]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on. Default `127.0.0.1:7480`.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// Bearer tokens, by hash. Without any, only `/healthz` answers.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            tokens: Vec::new(),
        }
    }
}

/// Roles of API tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read everything.
    Read,
    /// May read and change (incidents, silences, maintenance).
    Admin,
}

/// One `[[api.tokens]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it, for logs.
    pub name: String,
    /// Lower-case hex SHA-256 of the token (`nines-aggregator token new` prints it).
    pub sha256: String,
    /// What it may do. Default `read`.
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Read
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
        }
    }
}

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
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if config.ingest.max_frame_bytes < 64 * 1024 {
            return Err(invalid(
                "[ingest] max_frame_bytes must be at least 65536".into(),
            ));
        }
        for t in &config.api.tokens {
            let ok = t.sha256.len() == 64
                && t.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(invalid(format!(
                    "[[api.tokens]] {:?}: sha256 must be 64 lower-case hex digits (use `nines-aggregator token new`)",
                    t.name
                )));
            }
        }
        if config.ingest.listen == config.api.listen && config.api.listen.port() != 0 {
            return Err(invalid(format!(
                "[ingest] and [api] both listen on {}",
                config.api.listen
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
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
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_with_its_documented_defaults() {
        let text = include_str!("../../packaging/aggregator.toml");
        let c = Config::parse(text, Path::new("/etc/nines/aggregator.toml")).unwrap();
        assert_eq!(c.ingest.listen, default_ingest_listen());
        assert_eq!(c.api.listen, default_api_listen());
        assert_eq!(c.store.path, default_store_path());
        assert_eq!(c.ingest.max_frame_bytes, 4 * 1024 * 1024);
        assert_eq!(c.api.tokens.len(), 1);
        assert_eq!(c.api.tokens[0].role, Role::Read);
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
