//! The agent ↔ aggregator wire protocol (docs/protocol.md).
//!
//! A frame is a `u32` big-endian payload length followed by the payload, one [`Message`] encoded
//! by [`codec`]. [`frame`] works on byte buffers only; [`io`] moves frames over any async stream.

pub mod codec;
pub mod frame;
pub mod io;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The TLS ALPN protocol id of the ingest port.
pub const ALPN: &[u8] = b"nines/1";

/// Highest `Batch::seq` the aggregator accepts (`i64::MAX`): an agent's spool numbers from the
/// clock's milliseconds, one per tick, so no honest agent gets near it, and the aggregator's
/// `resume_from_seq` (the stored mark + 1) can never overflow.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Default largest accepted frame payload, in bytes.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 4 * 1024 * 1024;

/// Every message of the protocol. The variant order is part of the wire format: append only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Agent → aggregator, first message of a connection.
    Hello(Hello),
    /// Aggregator → agent, reply to an accepted `Hello`.
    Welcome(Welcome),
    /// Agent → aggregator: samples.
    Batch(Batch),
    /// Aggregator → agent: every batch up to and including `through_seq` is durably stored.
    Ack(Ack),
    /// Either direction: the sender closes the connection after this.
    Error(ErrorMsg),
    /// Agent → aggregator, first and only message of a connection made without a client
    /// certificate: asks for a certificate with a one-time token.
    Enroll(Enroll),
    /// Agent → aggregator, on an authenticated connection: asks for a fresh certificate for
    /// the same host.
    Renew(Renew),
    /// Aggregator → agent: the answer to `Enroll` or `Renew`.
    Certificate(CertificateReply),
}

/// A request for a first certificate (docs/security.md, "Enrollment").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enroll {
    /// Protocol version the agent speaks; first field in every version.
    pub protocol: u16,
    /// The one-time token `nines-aggregator ca token` printed.
    pub token: String,
    /// A PKCS#10 certificate signing request, DER. Its subject common name is the host id
    /// the token was made for; its key never leaves the agent.
    pub csr_der: Vec<u8>,
}

/// A request to renew the certificate of the connection's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renew {
    /// A PKCS#10 certificate signing request, DER, for a new key.
    pub csr_der: Vec<u8>,
}

/// The aggregator's answer to `Enroll` or `Renew`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateReply {
    /// The new certificate and the CA bundle to trust, both PEM.
    Issued {
        /// The agent certificate.
        cert_pem: String,
        /// The CA certificates agents should trust.
        ca_pem: String,
    },
    /// No certificate, and why. After an `Enroll` the aggregator closes the connection; after
    /// a `Renew` the connection goes on and the agent keeps its certificate.
    Refused {
        /// What was wrong.
        message: String,
    },
}

/// The agent introduces itself. `protocol` must stay the first field in every version, so that a
/// peer can read it even when it cannot decode the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the agent speaks.
    pub protocol: u16,
    /// The agent's package version.
    pub agent_version: String,
    /// The host the agent speaks for; must equal the identity in its client certificate.
    pub host_id: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), to tell reboots apart.
    pub boot_id: String,
    /// Operating system, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64`, `aarch64`.
    pub arch: String,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub kernel: String,
    /// The agent's sampling interval in milliseconds.
    pub interval_ms: u32,
}

/// The aggregator accepts a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The aggregator's clock, milliseconds since the Unix epoch, UTC.
    pub server_time_ms: i64,
    /// The first sequence number the aggregator has not stored for this host. The agent drops
    /// spooled batches below it and sends from it on.
    pub resume_from_seq: u64,
}

/// A batch of samples. Series are dictionary-encoded per connection: a series is defined once
/// in `series_defs` of the first batch that uses it, and referred to by id afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Sequence number, strictly increasing per host across connections.
    pub seq: u64,
    /// Series first used by this batch on this connection.
    pub series_defs: Vec<SeriesDef>,
    /// The samples.
    pub points: Vec<Point>,
}

/// A connection-local series id and the series it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesDef {
    /// The id, unique on this connection.
    pub id: u32,
    /// Metric name.
    pub name: String,
    /// Labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

/// One sample of a dictionary-encoded series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Series id from a `SeriesDef` on this connection.
    pub series: u32,
    /// Milliseconds since the Unix epoch, UTC.
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
}

/// Acknowledges durable storage of all batches through `through_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Highest stored sequence number.
    pub through_seq: u64,
}

/// A fatal protocol error; the sender closes the connection after sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// Reasons for an [`ErrorMsg`]. Append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peer speaks a protocol version this side does not.
    UnsupportedProtocol,
    /// The `Hello` names a host other than the client certificate's.
    HostMismatch,
    /// A frame could not be decoded.
    BadFrame,
    /// A frame is larger than the limit.
    FrameTooLarge,
    /// A message arrived that is not valid in this state (e.g. `Batch` before `Hello`).
    UnexpectedMessage,
    /// A point refers to a series id that was never defined, or a definition is invalid.
    BadSeries,
    /// The aggregator cannot store data right now; the agent keeps its spool and retries.
    StorageUnavailable,
    /// The aggregator is shutting down.
    ShuttingDown,
    /// A `Batch`'s `seq` is 0 or above [`MAX_SEQ`]: the batch is not acknowledged.
    BadSequence,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Why bytes could not become a message, or a message could not become bytes.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced or encoded length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Reading or writing the stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtoError {
    /// The error code to send the peer for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::BadFrame,
        }
    }
}
