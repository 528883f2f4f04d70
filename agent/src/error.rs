//! The agent's one error type: why it could not start or stopped. Each layer's own errors
//! (`SpoolError`, `ShipError`, `EnrollError`, `CollectError`, `ConfigError`) say what failed
//! there; this one says it to the operator.

use nines_common::tls;

use crate::spool::SpoolError;

/// Why the agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A certificate or key file could not be read.
    #[error("reading {path}: {source}")]
    ReadFile {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The configured host differs from the certificate's.
    #[error(
        "config says host = {configured:?} but the agent certificate is for {certified:?}; the aggregator would refuse it"
    )]
    HostMismatch {
        /// From the config.
        configured: String,
        /// From the certificate.
        certified: String,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The push socket (`[collect.push]`) could not be opened.
    #[error("push socket: {source}")]
    PushSocket {
        /// The cause.
        source: std::io::Error,
    },
}
