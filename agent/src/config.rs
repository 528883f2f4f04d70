//! The agent configuration file (`/etc/nines/agent.toml`): parsed once, validated, typed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nines_common::HostId;
use nines_common::diag::{Diagnostic, Key, Severity};
use serde::Deserialize;

use crate::checks::{CheckConfig, CheckConfigError, CheckProblem};
use crate::collect::CollectConfig;

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
    /// The file is not valid TOML or has unknown keys or bad values.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message with line, column and key.
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

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/nines-agent")
}

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Host id sent in `Hello`. Default: the common name of the agent certificate, which the
    /// aggregator requires it to equal anyway.
    #[serde(default)]
    pub host: Option<HostId>,
    /// Sampling interval, 1 s to 1 h. Default 10 s.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Directory for the spool and other state. Default `/var/lib/nines-agent`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// `[aggregator]`: where and how to ship.
    pub aggregator: AggregatorConfig,
    /// `[spool]`: bounds of the on-disk queue.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// `[collect]`: what to sample.
    #[serde(default)]
    pub collect: CollectConfig,
    /// `[[checks]]`: service checks (Nagios plugins, TCP, HTTP).
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_window() -> usize {
    64
}

/// `[aggregator]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// `host:port` of each aggregator, tried in turn.
    pub addresses: Vec<String>,
    /// Name the aggregator's certificate must carry. Default: the host part of each address.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM file of the nines CA.
    pub ca: PathBuf,
    /// PEM file of this agent's certificate.
    pub cert: PathBuf,
    /// PEM file of this agent's private key.
    pub key: PathBuf,
    /// A connection whose oldest unacknowledged batch waits longer than this is considered
    /// dead and replaced. Default 30 s.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Batches sent but not yet acknowledged, at most. Default 64.
    #[serde(default = "default_window")]
    pub window: usize,
}

fn default_spool_max_bytes() -> u64 {
    256 * 1024 * 1024
}

fn default_spool_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// `[spool]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Largest size of the spool on disk. Default 256 MiB.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
    /// Oldest unacknowledged data kept. Default 7 days.
    #[serde(default = "default_spool_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: default_spool_max_bytes(),
            max_age: default_spool_max_age(),
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

    /// Parses and validates configuration text; `path` is used in messages and to resolve
    /// relative paths (relative to the file's directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        // Every problem is collected, each located at its key, so that one run of
        // check-config names them all.
        let mut errors: Vec<Diagnostic> = Vec::new();
        let mut invalid = |keys: &[Key<'_>], message: String| {
            errors.push(Diagnostic::error(path, text, keys, message));
        };
        let name = |k| Key::Name(k);
        if config.interval < Duration::from_secs(1) || config.interval > Duration::from_secs(3600) {
            invalid(
                &[name("interval")],
                format!(
                    "interval = {:?} is out of range: use 1s to 1h",
                    config.interval
                ),
            );
        } else if config.interval.subsec_millis() != 0 {
            invalid(
                &[name("interval")],
                "interval must be a whole number of seconds".into(),
            );
        }
        if config.aggregator.addresses.is_empty() {
            invalid(
                &[name("aggregator"), name("addresses")],
                "[aggregator] addresses is empty: list at least one \"host:port\"".into(),
            );
        }
        for (i, a) in config.aggregator.addresses.iter().enumerate() {
            if split_host_port(a).is_none() {
                invalid(
                    &[name("aggregator"), name("addresses"), Key::Index(i)],
                    format!("[aggregator] address {a:?} is not \"host:port\""),
                );
            }
        }
        if config.aggregator.window == 0 || config.aggregator.window > 4096 {
            invalid(
                &[name("aggregator"), name("window")],
                "[aggregator] window must be 1 to 4096".into(),
            );
        }
        if config.spool.max_bytes < 1024 * 1024 {
            invalid(
                &[name("spool"), name("max_bytes")],
                "[spool] max_bytes must be at least 1 MiB".into(),
            );
        }
        // Each entry on its own, so that every bad one is named; then the names together.
        for (i, check) in config.checks.iter().enumerate() {
            let at = [name("checks"), Key::Index(i)];
            if let Err(e) = crate::checks::validate(std::slice::from_ref(check)) {
                // Validated alone, the entry is the first: say which it is in the file.
                let e = CheckConfigError { index: i, ..e };
                invalid(&at, e.to_string());
            } else if config.checks[..i].iter().any(|c| c.name == check.name) {
                let e = CheckConfigError {
                    index: i,
                    name: check.name.clone(),
                    problem: CheckProblem::Duplicate,
                };
                invalid(
                    &[name("checks"), Key::Index(i), name("name")],
                    e.to_string(),
                );
            }
        }
        if !(1..=1_000_000).contains(&config.collect.textfile.max_series) {
            invalid(
                &[name("collect"), name("textfile"), name("max_series")],
                "[collect.textfile] max_series must be 1 to 1000000".into(),
            );
        }
        #[cfg(unix)]
        if !(1..=1_000_000).contains(&config.collect.push.max_series) {
            invalid(
                &[name("collect"), name("push"), name("max_series")],
                "[collect.push] max_series must be 1 to 1000000".into(),
            );
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                errors,
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.state_dir,
            &mut config.aggregator.ca,
            &mut config.aggregator.cert,
            &mut config.aggregator.key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }
}

/// Warnings about metric names in what the configuration points at: a `*.prom` file in the
/// textfile directory that sends a metric under a name the agent itself sends (its series
/// would mix with the agent's), at that file's line. The configuration names no metric
/// otherwise: checks are named by their `check` label, process watches by their `process`
/// label. A directory that cannot be read yet gives no warning (the agent may create it).
pub fn metric_warnings(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(dir) = &config.collect.textfile.directory else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "prom"))
        .collect();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            let name: &str = line
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or("");
            if line.starts_with('#') || name.is_empty() || !seen.insert(name.to_owned()) {
                continue;
            }
            if nines_common::metrics::lookup(name).is_some() {
                out.push(Diagnostic {
                    severity: Severity::Warning,
                    file: file.clone(),
                    position: Some((i + 1, 1)),
                    message: format!(
                        "textfile metric {name:?} has the name of a metric the agent sends \
                         (docs/metrics.md): its series mix with the agent's; give it a name of \
                         its own"
                    ),
                });
            }
        }
    }
    out
}

use crate::net::split_host_port;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[aggregator]
addresses = ["agg.example.net:7443"]
ca = "pki/ca.pem"
cert = "pki/agent.pem"
key = "pki/agent.key"
"#;

    #[test]
    fn the_shipped_example_parses_with_its_documented_defaults() {
        let text = include_str!("../../packaging/agent.toml");
        let c = Config::parse(text, Path::new("/etc/nines/agent.toml")).unwrap();
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/nines-agent"));
        assert_eq!(c.spool, SpoolConfig::default());
        assert_eq!(c.aggregator.window, 64);
        assert_eq!(c.collect.procfs, PathBuf::from("/proc"));
    }

    /// The shipped example's business metrics and checks, uncommented, parse to what they say.
    #[test]
    fn the_shipped_examples_of_checks_and_business_metrics_parse() {
        let text = include_str!("../../packaging/agent.toml");
        let c = Config::parse(text, Path::new("/etc/nines/agent.toml")).unwrap();
        assert!(c.checks.is_empty());
        assert_eq!(c.collect.textfile.directory, None);
        assert_eq!(c.collect.textfile.max_series, 1000);
        assert!(!c.collect.push.enabled);
        let (head, tail) = text.split_at(text.find("[collect.textfile]").unwrap());
        let tail: String = tail
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) => format!("{rest}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        let c =
            Config::parse(&format!("{head}{tail}"), Path::new("/etc/nines/agent.toml")).unwrap();
        let names: Vec<&str> = c.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ssh", "postgres-port", "shop"]);
        assert_eq!(c.checks[1].interval, Duration::from_secs(60));
        assert_eq!(c.checks[1].timeout, Duration::from_secs(10));
        assert_eq!(c.checks[2].interval, Duration::from_secs(30));
        assert_eq!(c.collect.push.stale_after, Duration::from_secs(300));
        assert_eq!(c.collect.push.max_series, 1000);
        assert_eq!(
            c.collect.push.socket,
            Some(PathBuf::from("/var/lib/nines-agent/push.sock"))
        );
    }

    #[test]
    fn a_bad_check_is_refused_naming_the_file_and_entry() {
        let text = format!("{MINIMAL}\n[[checks]]\nname = \"web\"\ntcp = \"localhost\"\n");
        let e = Config::parse(&text, Path::new("/etc/nines/agent.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/nines/agent.toml"), "{e}");
        assert!(e.contains("[[checks]] entry 1 (name = \"web\")"), "{e}");
        assert!(
            e.contains("tcp = \"localhost\" is not \"host:port\""),
            "{e}"
        );
        let text = format!("{MINIMAL}\n[[checks]]\nname = \"web\"\ncommnd = [\"x\"]\n");
        let e = Config::parse(&text, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("commnd"), "{e}");
    }

    #[test]
    fn defaults_apply_and_relative_paths_follow_the_file() {
        let c = Config::parse(MINIMAL, Path::new("/etc/nines/agent.toml")).unwrap();
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.aggregator.ca, PathBuf::from("/etc/nines/pki/ca.pem"));
        assert_eq!(c.host, None);
    }

    #[test]
    fn an_unknown_key_names_the_file_line_and_key() {
        let text = format!("intervall = \"5s\"\n{MINIMAL}");
        let e = Config::parse(&text, Path::new("/etc/nines/agent.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/nines/agent.toml"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("intervall"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (bad, needle) in [
            ("interval = \"500ms\"\n", "out of range"),
            ("interval = \"soon\"\n", "interval"),
            ("host = \"not a host\"\n", "invalid host id"),
        ] {
            let e = Config::parse(&format!("{bad}{MINIMAL}"), Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let e = Config::parse(
            &MINIMAL.replace("agg.example.net:7443", "agg.example.net"),
            Path::new("a.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("host:port"), "{e}");
    }
}
