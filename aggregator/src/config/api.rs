//! The `[api]` section: where the HTTP API listens, its tokens, TLS, connection limits and
//! query limits (docs/api.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::http::auth::{Role, TokenConfig};
pub use crate::http::tls::ApiTlsFiles;

pub(super) fn default_api_listen() -> SocketAddr {
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
    /// PEM certificate chain the API serves HTTPS with; `tls_key` goes with it. Without both,
    /// the API is plain HTTP.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates the API accepts; with it, a client
    /// without such a certificate is refused at the handshake (mTLS). Needs `tls_cert`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Open connections in all; at the limit the oldest that has sent nothing is closed to
    /// make room, else the new one is closed at once. Default 1024.
    #[serde(default = "default_api_max_connections")]
    pub max_connections: usize,
    /// Open connections from one source address; more are closed at once. Default 256.
    #[serde(default = "default_api_max_per_address")]
    pub max_connections_per_address: usize,
    /// Time to send a whole request head, from the connection's start or the previous
    /// response. Default 30s.
    #[serde(default = "default_api_header_read", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a new connection has to send its first byte. Default 10s.
    #[serde(default = "default_api_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Label matchers one query (or one `match[]` set) may hold. Default 64.
    #[serde(default = "default_query_max_matchers")]
    pub query_max_matchers: usize,
    /// Bytes of regex source one query may hold over all its matchers. Default 4096.
    #[serde(default = "default_query_max_regex_bytes")]
    pub query_max_regex_bytes: usize,
    /// How long one query may take, waiting for its turn included. Default 20s.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Queries evaluated at once; more wait for a turn. Default 2.
    #[serde(default = "default_query_concurrency")]
    pub query_concurrency: usize,
}

fn default_api_max_connections() -> usize {
    crate::http::serve::Limits::default().max_connections
}
fn default_api_max_per_address() -> usize {
    crate::http::serve::Limits::default().max_connections_per_address
}
fn default_api_header_read() -> Duration {
    crate::http::serve::Limits::default().header_read_timeout
}
fn default_api_idle() -> Duration {
    crate::http::serve::Limits::default().idle_timeout
}

fn default_query_max_matchers() -> usize {
    crate::http::prom::limits::QueryLimits::default()
        .parse
        .max_matchers
}
fn default_query_max_regex_bytes() -> usize {
    crate::http::prom::limits::QueryLimits::default()
        .parse
        .max_regex_bytes
}
fn default_query_timeout() -> Duration {
    crate::http::prom::limits::QueryLimits::default().timeout
}
fn default_query_concurrency() -> usize {
    crate::http::prom::limits::QueryLimits::default().concurrency
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            tokens: Vec::new(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            max_connections: default_api_max_connections(),
            max_connections_per_address: default_api_max_per_address(),
            header_read_timeout: default_api_header_read(),
            idle_timeout: default_api_idle(),
            query_max_matchers: default_query_max_matchers(),
            query_max_regex_bytes: default_query_max_regex_bytes(),
            query_timeout: default_query_timeout(),
            query_concurrency: default_query_concurrency(),
        }
    }
}

impl ApiConfig {
    /// The API port's connection limits.
    pub fn limits(&self) -> crate::http::serve::Limits {
        crate::http::serve::Limits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// What one query may cost.
    pub fn query_limits(&self) -> crate::http::prom::limits::QueryLimits {
        crate::http::prom::limits::QueryLimits {
            parse: crate::promql::Limits {
                max_matchers: self.query_max_matchers,
                max_regex_bytes: self.query_max_regex_bytes,
                ..Default::default()
            },
            timeout: self.query_timeout,
            concurrency: self.query_concurrency,
        }
    }

    /// The TLS files, if the API serves HTTPS (validation ensures cert and key go together).
    pub fn tls(&self) -> Option<ApiTlsFiles> {
        Some(ApiTlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.client_ca.clone(),
        })
    }
}

impl ApiConfig {
    /// Checks the section's values; the error names the key.
    /// Every problem of the section, each with the key to point at.
    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_connections == 0
            || self.max_connections_per_address == 0
            || self.header_read_timeout < Duration::from_secs(1)
            || self.idle_timeout < Duration::from_secs(1)
        {
            out.push((
                "max_connections",
                String::from(
                    "[api] max_connections and max_connections_per_address must be at least 1, header_read_timeout and idle_timeout at least 1s",
                ),
            ));
        }
        if !(1..=1000).contains(&self.query_max_matchers)
            || !(1..=1 << 20).contains(&self.query_max_regex_bytes)
            || !(1..=64).contains(&self.query_concurrency)
            || self.query_timeout < Duration::from_millis(100)
            || self.query_timeout > Duration::from_secs(600)
        {
            out.push((
                "query_timeout",
                String::from(
                    "[api] query limits: query_max_matchers 1 to 1000, query_max_regex_bytes 1 to 1048576, \
                     query_concurrency 1 to 64, query_timeout 100ms to 10m",
                ),
            ));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                out.push((
                    "tls_cert",
                    String::from(
                        "[api] tls_cert is set but tls_key is not: give both for HTTPS, or neither for plain HTTP",
                    ),
                ));
            }
            (None, Some(_)) => {
                out.push((
                    "tls_key",
                    String::from(
                        "[api] tls_key is set but tls_cert is not: give both for HTTPS, or neither for plain HTTP",
                    ),
                ));
            }
            (None, None) if self.client_ca.is_some() => {
                out.push((
                    "client_ca",
                    String::from(
                        "[api] client_ca needs tls_cert and tls_key: client certificates are only asked for over HTTPS",
                    ),
                ));
            }
            _ => {}
        }
        out
    }
}
