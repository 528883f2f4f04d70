//! The ingest port: accepts mTLS connections from agents, takes the host identity from the
//! client certificate, and turns frames into durable store writes, acking each batch only after
//! its commit returned.
//!
//! Here: the accept loop and the TLS step. `admission` holds the connection limits and
//! counters, `session` the per-connection protocol as a state machine without I/O,
//! `connection` the loop that does its I/O ([`handle`], the one entry point), `resolve`
//! turns batches into store writes; `enroll` serves connections without a certificate.

mod admission;
pub mod check;
mod connection;
mod enroll;
pub mod ratelimit;
mod resolve;
mod session;
pub mod tls;

pub use admission::{Connections, Refusals};
pub use connection::{Authenticated, handle};
pub use resolve::{HOST_SAMPLES, with_host_samples};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nines_common::proto::io::FrameWriter;
use nines_common::proto::{ErrorCode, ErrorMsg, Message, ProtoError};
use tokio::io::AsyncWrite;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ingest::check::PointBounds;
use crate::ingest::tls::IngestTls;
use crate::pki::enroll::Enroller;
use crate::store::{Store, StoreError};

/// Bounds on what one connection, one source address, one host and everyone together may
/// hold (`[ingest]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest frame, bytes.
    pub max_frame: u32,
    /// Open connections in all, TLS handshakes included.
    pub max_connections: usize,
    /// Open connections from one source address.
    pub max_connections_per_address: usize,
    /// For the TLS handshake, and again for the `Hello` after it.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Series one host may have; points of further new series are dropped and counted.
    pub max_series_per_host: usize,
    /// The time window points must fall in.
    pub points: PointBounds,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: nines_common::proto::DEFAULT_MAX_FRAME_BYTES,
            max_connections: 16_384,
            max_connections_per_address: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_series_per_host: 20_000,
            points: PointBounds::default(),
        }
    }
}

/// Why a connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// TLS handshake failed (no certificate, wrong CA, expired, ...).
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The client certificate names no valid host.
    #[error("client certificate: {0}")]
    Identity(String),
    /// Frame-level error.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The peer broke the protocol; an error frame was sent.
    #[error("{code}: {message}")]
    Refused {
        /// Code sent.
        code: ErrorCode,
        /// Message sent.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<IngestTls>,
    enroller: Arc<Enroller>,
    store: Store,
    connections: Arc<Connections>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits);
    tls.check_revocations_with(connections.clone());
    let mut last_refusal_log = std::time::Instant::now() - Duration::from_secs(60);
    let mut accept_errors = crate::util::accept::AcceptErrors::new("ingest");
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => Some(r),
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let (tcp, peer) = match accepted {
            None => return,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                accept_errors.failed(&e).await;
                continue;
            }
        };
        accept_errors.succeeded();
        let admitted = match connections.admit(peer.ip(), &limits) {
            Ok(a) => a,
            Err(limit) => {
                // Closed at once, before any TLS work; said at most once a minute.
                drop(tcp);
                if last_refusal_log.elapsed() >= Duration::from_secs(60) {
                    last_refusal_log = std::time::Instant::now();
                    tracing::warn!(%peer, "connection refused: [ingest] {limit} reached");
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, enroller, store, connections, shutdown, limits) = (
            tls.acceptor(),
            enroller.clone(),
            store.clone(),
            connections.clone(),
            shutdown.clone(),
            limits.clone(),
        );
        tokio::spawn(async move {
            let _admitted = admitted;
            let log = connections.clone();
            let conn = Conn {
                store,
                connections,
                enroller: Some(enroller),
            };
            match accept(tcp, acceptor, conn, &limits, shutdown, peer.ip()).await {
                Ok(()) => {}
                Err(IngestError::Proto(ProtoError::Io(e)))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof
                        || e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    tracing::debug!(%peer, "connection dropped: {e}");
                }
                // The verifier said so, with the host.
                Err(IngestError::Handshake(e)) if is_revoked(&e) => {}
                Err(e) => {
                    if let Some(left_out) = log.log_limit.allow(std::time::Instant::now()) {
                        tracing::warn!(%peer, left_out, "connection refused or failed: {e}");
                    }
                }
            }
        });
    }
}

/// What a connection's task shares with the rest of the aggregator.
pub(crate) struct Conn {
    pub(crate) store: Store,
    pub(crate) connections: Arc<Connections>,
    /// Signs enrollments and renewals; `None` where the caller offers neither.
    pub(crate) enroller: Option<Arc<Enroller>>,
}

/// Whether a failed handshake was the revocation check's refusal.
fn is_revoked(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            )
        })
}

async fn accept(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    conn: Conn,
    limits: &Limits,
    shutdown: watch::Receiver<bool>,
    peer: IpAddr,
) -> Result<(), IngestError> {
    let connections = &conn.connections;
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
        .await
        .map_err(|_| {
            IngestError::Handshake(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "handshake timed out",
            ))
        })
        .and_then(|r| r.map_err(IngestError::Handshake));
    let stream = match handshake {
        Ok(s) => s,
        Err(e) => {
            // A revoked certificate was counted by the check that refused it.
            if !matches!(&e, IngestError::Handshake(io) if is_revoked(io)) {
                connections
                    .refused
                    .handshake
                    .fetch_add(1, Ordering::Relaxed);
            }
            return Err(e);
        }
    };
    let (_, tls) = stream.get_ref();
    // The verifier checked any certificate presented against our CA; its CN is the host.
    let Some(cert) = tls.peer_certificates().and_then(|c| c.first()) else {
        return crate::ingest::enroll::enroll(stream, conn, limits, peer).await;
    };
    let host =
        nines_common::tls::cert_host_id(cert).map_err(|e| IngestError::Identity(e.to_string()))?;
    let serial = crate::pki::revoke::serial_of(cert).unwrap_or_default();
    // The handshake refused revoked certificates; this catches a list changed since.
    if connections.is_revoked(host.as_str(), &serial) {
        connections.refused.revoked.fetch_add(1, Ordering::Relaxed);
        let (_, w) = tokio::io::split(stream);
        let mut writer = FrameWriter::new(w, limits.max_frame);
        return Err(refuse(
            &mut writer,
            ErrorCode::HostMismatch,
            format!("the certificate of {host} (serial {serial}) is revoked"),
        )
        .await);
    }
    let peer = Authenticated {
        host,
        serial,
        store: conn.store,
        connections: conn.connections,
        enroller: conn.enroller,
        limits: limits.clone(),
    };
    handle(stream, peer, shutdown).await
}

pub(crate) async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    code: ErrorCode,
    message: String,
) -> IngestError {
    let _ = writer
        .write(&Message::Error(ErrorMsg {
            code,
            message: message.clone(),
        }))
        .await;
    let _ = writer.shutdown().await;
    IngestError::Refused { code, message }
}

pub(crate) async fn unsupported<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    v: u16,
) -> IngestError {
    let e = session::unsupported(v);
    refuse(writer, e.code, e.message).await
}
