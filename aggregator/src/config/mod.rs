//! The aggregator configuration file (`/etc/nines/aggregator.toml`): parsed once, validated,
//! typed, before anything binds.
//!
//! One file per section of the file (`ingest`, `api`, `store`, `alerts`, `status`, `check`;
//! `[[services]]` is `availability::config`'s), and `load` for reading and validating the
//! whole.

use std::path::{Path, PathBuf};

use nines_common::diag::{Diagnostic, Severity};
use serde::Deserialize;

use crate::availability::config::ServiceConfig;

mod alerts;
mod api;
mod check;
mod ingest;
mod load;
mod status;
mod store;

pub use alerts::AlertsConfig;
pub use api::{ApiConfig, ApiTlsFiles, Role, TokenConfig};
pub use check::CheckConfig;
pub use ingest::IngestConfig;
pub use status::StatusConfig;
pub use store::{RetentionConfig, StoreConfig};

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
}

#[cfg(test)]
mod tests;
