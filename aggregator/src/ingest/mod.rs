//! The ingest port: accepts mTLS connections from agents, takes the host identity from the
//! client certificate, and turns frames into durable store writes, acking each batch only after
//! its commit returned.

pub mod check;
mod enroll;
pub mod ratelimit;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Ack, CertificateReply, ErrorCode, ErrorMsg, Message, PROTOCOL_VERSION, ProtoError, Welcome,
    codec,
};
use nines_common::{HostId, SeriesKey};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::ingest::check::PointBounds;
use crate::ingest::ratelimit::{FailureLimit, LogLimit};
use crate::ingest::tls::IngestTls;
use crate::pki::enroll::Enroller;

use crate::store::{BatchWrite, HelloWrite, Store, StoreError};
use crate::util::sync;

/// A series id standing for "dropped": the host was at its series limit when it was defined.
const DROPPED: u32 = u32::MAX;

/// The series the aggregator derives from every batch it stores: one point per distinct
/// sample timestamp, valued with the number of samples the host sent for it. A host's
/// liveness is judged from it (docs/design.md, "Monitored time"), so a host that ships
/// anything is alive whichever of its collectors fail or are turned off.
pub const HOST_SAMPLES: &str = "nines_host_samples";

/// `points` plus one [`HOST_SAMPLES`] point (series `id`) per distinct timestamp among them.
pub fn with_host_samples(id: u32, mut points: Vec<(u32, i64, f64)>) -> Vec<(u32, i64, f64)> {
    let mut per_ts: std::collections::BTreeMap<i64, u32> = std::collections::BTreeMap::new();
    for &(series, ts, _) in &points {
        if series != id {
            *per_ts.entry(ts).or_default() += 1;
        }
    }
    points.extend(per_ts.into_iter().map(|(ts, n)| (id, ts, f64::from(n))));
    points
}

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
/// Batches of one connection waiting for their commit, at most; beyond, reading pauses.
const MAX_PENDING_ACKS: usize = 256;
/// Lines a minute about refused connections, batches and points, all connections together.
const LOG_LINES_PER_MINUTE: u32 = 20;

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

/// What the ingest port refused or closed, for `/metrics`.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Connections closed at once: `max_connections` were open.
    pub over_total: AtomicU64,
    /// Connections closed at once: their address had `max_connections_per_address` open.
    pub over_address: AtomicU64,
    /// TLS handshakes that failed or timed out (no, wrong, expired certificate; garbage).
    pub handshake: AtomicU64,
    /// Connections closed after `idle_timeout` without a frame.
    pub idle: AtomicU64,
    /// Points of series refused by `max_series_per_host`.
    pub series_points: AtomicU64,
    /// Connections refused or closed because their certificate is revoked.
    pub revoked: AtomicU64,
    /// Connections without a client certificate that did not enroll.
    pub no_certificate: AtomicU64,
    /// Enrollments that got a certificate.
    pub enrolled: AtomicU64,
    /// Enrollments refused (unknown, used or expired token, wrong host, bad request).
    pub enroll_refused: AtomicU64,
    /// Renewals that got a certificate.
    pub renewed: AtomicU64,
    /// Renewals refused.
    pub renew_refused: AtomicU64,
    /// Enrollments refused unread: their address had failed too often.
    pub enroll_rate: AtomicU64,
    /// Batches refused for their sequence number (the connection is closed, nothing acked).
    pub bad_sequence: AtomicU64,
    /// Points refused as older than `max_point_age`.
    pub points_too_old: AtomicU64,
    /// Points refused as further ahead of the clock than `max_future`.
    pub points_too_far_in_future: AtomicU64,
    /// Points refused for a value that is not finite.
    pub points_not_finite: AtomicU64,
}

/// Hosts with an open connection, how many connections are open from where, what was
/// refused, and the revocation list connections are checked against.
#[derive(Debug)]
pub struct Connections {
    hosts: Mutex<HashMap<String, usize>>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Refusal counters.
    pub refused: Refusals,
    revocations: std::sync::RwLock<Option<Arc<crate::pki::revoke::Revocations>>>,
    /// Bumped when the revocation list changes: every connection checks itself again.
    generation: watch::Sender<u64>,
    /// Failed enrollments per source address.
    pub(crate) enroll_limit: FailureLimit,
    /// Log lines about refused connections, batches and points.
    pub(crate) log_limit: LogLimit,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            hosts: Mutex::default(),
            open: AtomicUsize::new(0),
            per_address: Mutex::default(),
            refused: Refusals::default(),
            revocations: std::sync::RwLock::new(None),
            generation: watch::channel(0).0,
            enroll_limit: FailureLimit::default(),
            log_limit: LogLimit::new(LOG_LINES_PER_MINUTE),
        }
    }
}

/// Releases a connection's place in the limits when it ends.
struct Admitted(Arc<Connections>, IpAddr);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        let mut m = sync::lock(&self.0.per_address);
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

impl Connections {
    /// Takes a place for a new connection from `ip`, or says why there is none.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Admitted, &'static str> {
        let mut m = sync::lock(&self.per_address);
        if self.open.load(Ordering::Relaxed) >= limits.max_connections {
            self.refused.over_total.fetch_add(1, Ordering::Relaxed);
            return Err("max_connections");
        }
        let n = m.entry(ip).or_default();
        if *n >= limits.max_connections_per_address {
            self.refused.over_address.fetch_add(1, Ordering::Relaxed);
            return Err("max_connections_per_address");
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted(self.clone(), ip))
    }

    /// Checks new and open connections against `r` from now on.
    pub fn set_revocations(&self, r: Arc<crate::pki::revoke::Revocations>) {
        *sync::write(&self.revocations) = Some(r);
    }

    /// The revocation list changed: every open connection checks itself again.
    pub fn revocations_changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether `host`'s certificate with `serial` is revoked.
    pub fn is_revoked(&self, host: &str, serial: &str) -> bool {
        sync::read(&self.revocations)
            .as_ref()
            .is_some_and(|r| r.revoked(host, serial))
    }

    /// Connections open now, TLS handshakes included.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn add(&self, host: &HostId) {
        let mut m = sync::lock(&self.hosts);
        *m.entry(host.to_string()).or_default() += 1;
    }

    fn remove(&self, host: &HostId) {
        let mut m = sync::lock(&self.hosts);
        if let Some(n) = m.get_mut(host.as_str()) {
            *n -= 1;
            if *n == 0 {
                m.remove(host.as_str());
            }
        }
    }

    /// Whether `host` has a connection open now.
    pub fn is_connected(&self, host: &str) -> bool {
        let m = sync::lock(&self.hosts);
        m.contains_key(host)
    }

    /// Number of hosts connected.
    pub fn count(&self) -> usize {
        sync::lock(&self.hosts).len()
    }
}

pub use nines_common::model::now_ms;

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
    serve_connection(stream, host, serial, conn, limits, shutdown).await
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

/// Serves one authenticated connection from `host`. Public so that protocol tests can drive
/// it over `tokio::io::duplex` without TLS.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    host: HostId,
    store: Store,
    connections: Arc<Connections>,
    max_frame: u32,
    shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let limits = Limits {
        max_frame,
        ..Limits::default()
    };
    handle_with(stream, host, store, connections, &limits, shutdown).await
}

/// [`handle`] that also answers `Renew` with `enroller`.
pub async fn handle_renewing<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    host: HostId,
    store: Store,
    connections: Arc<Connections>,
    enroller: Arc<Enroller>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let conn = Conn {
        store,
        connections,
        enroller: Some(enroller),
    };
    serve_connection(
        stream,
        host,
        String::new(),
        conn,
        &Limits::default(),
        shutdown,
    )
    .await
}

/// [`handle`] with every limit given.
pub async fn handle_with<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    host: HostId,
    store: Store,
    connections: Arc<Connections>,
    limits: &Limits,
    shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let conn = Conn {
        store,
        connections,
        enroller: None,
    };
    serve_connection(stream, host, String::new(), conn, limits, shutdown).await
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    host: HostId,
    serial: String,
    conn: Conn,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let Conn {
        store,
        connections,
        enroller,
    } = conn;
    let mut generation = connections.generation.subscribe();
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, limits.max_frame);
    let mut writer = FrameWriter::new(w, limits.max_frame);

    let first = match tokio::time::timeout(limits.handshake_timeout, reader.read_payload()).await {
        Err(_) => {
            return Err(refuse(
                &mut writer,
                ErrorCode::UnexpectedMessage,
                format!(
                    "no Hello within {}",
                    humantime::format_duration(limits.handshake_timeout)
                ),
            )
            .await);
        }
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(refuse(&mut writer, e.code(), e.to_string()).await),
    };
    let hello = match codec::decode::<Message>(&first) {
        Ok(Message::Hello(h)) if h.protocol == PROTOCOL_VERSION => h,
        Ok(Message::Hello(h)) => {
            return Err(unsupported(&mut writer, h.protocol).await);
        }
        Ok(other) => {
            let msg = format!("expected Hello, got {}", kind(&other));
            return Err(refuse(&mut writer, ErrorCode::UnexpectedMessage, msg).await);
        }
        Err(e) => {
            if let Some(v) = codec::peek_hello_protocol(&first).filter(|v| *v != PROTOCOL_VERSION) {
                return Err(unsupported(&mut writer, v).await);
            }
            return Err(refuse(&mut writer, ErrorCode::BadFrame, e.to_string()).await);
        }
    };
    if hello.host_id != host.as_str() {
        let msg = format!(
            "Hello claims host {:?} but the client certificate is for {host:?}",
            hello.host_id
        );
        return Err(refuse(&mut writer, ErrorCode::HostMismatch, msg).await);
    }
    let resume_from_seq = match store
        .hello(HelloWrite {
            host: host.clone(),
            hello: hello.clone(),
            now_ms: now_ms(),
        })
        .await
    {
        Ok(seq) => seq,
        Err(e) => {
            return Err(refuse(&mut writer, ErrorCode::StorageUnavailable, e.to_string()).await);
        }
    };
    writer
        .write(&Message::Welcome(Welcome {
            server_time_ms: now_ms(),
            resume_from_seq,
        }))
        .await?;
    tracing::info!(%host, agent = %hello.agent_version, resume_from_seq, "agent connected");
    connections.add(&host);
    let _guard = ConnGuard(connections.clone(), host.clone());

    // Acks go out in batch order, each after its commit: a task awaits the commits in order.
    let (ack_tx, mut ack_rx) = mpsc::channel::<Reply>(MAX_PENDING_ACKS);
    let ack_task = tokio::spawn(async move {
        while let Some(reply) = ack_rx.recv().await {
            let msg = match reply {
                Reply::Commit(rx) => match rx.await {
                    Ok(Ok(receipt)) => Message::Ack(Ack {
                        through_seq: receipt.through_seq(),
                    }),
                    Ok(Err(e)) => Message::Error(ErrorMsg {
                        code: ErrorCode::StorageUnavailable,
                        message: e.to_string(),
                    }),
                    Err(_) => Message::Error(ErrorMsg {
                        code: ErrorCode::ShuttingDown,
                        message: "aggregator is shutting down".into(),
                    }),
                },
                Reply::Error(e) => Message::Error(e),
                Reply::Message(m) => m,
            };
            let fatal = matches!(msg, Message::Error(_));
            if writer.write(&msg).await.is_err() || fatal {
                let _ = writer.shutdown().await;
                return;
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut dict: HashMap<u32, u32> = HashMap::new();
    let mut warned_series_limit = false;
    let mut host_samples_id: Option<u32> = None;
    let result = loop {
        let msg = tokio::select! {
            m = tokio::time::timeout(limits.idle_timeout, reader.read()) => Some(Some(m)),
            _ = shutdown.wait_for(|s| *s) => None,
            Ok(()) = generation.changed() => Some(None),
        };
        let msg = match msg {
            Some(Some(m)) => Some(m),
            Some(None) => {
                if connections.is_revoked(host.as_str(), &serial) {
                    connections.refused.revoked.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%host, serial, "certificate revoked: disconnecting");
                    let e = ErrorMsg {
                        code: ErrorCode::HostMismatch,
                        message: format!("the certificate of {host} (serial {serial}) is revoked"),
                    };
                    break Err(send_error(&ack_tx, e).await);
                }
                continue;
            }
            None => None,
        };
        let msg = match msg {
            Some(Ok(m)) => Some(m),
            Some(Err(_)) => {
                connections.refused.idle.fetch_add(1, Ordering::Relaxed);
                let e = ErrorMsg {
                    code: ErrorCode::UnexpectedMessage,
                    message: format!(
                        "nothing received for {}: closing ([ingest] idle_timeout)",
                        humantime::format_duration(limits.idle_timeout)
                    ),
                };
                break Err(send_error(&ack_tx, e).await);
            }
            None => None,
        };
        let Some(msg) = msg else {
            let _ = ack_tx
                .send(Reply::Error(ErrorMsg {
                    code: ErrorCode::ShuttingDown,
                    message: "aggregator is shutting down".into(),
                }))
                .await;
            break Ok(());
        };
        let batch = match msg {
            Ok(Some(Message::Batch(b))) => b,
            Ok(Some(Message::Renew(r))) => {
                let reply = renew(enroller.clone(), &host, r.csr_der, &connections).await;
                if ack_tx
                    .send(Reply::Message(Message::Certificate(reply)))
                    .await
                    .is_err()
                {
                    break Ok(());
                }
                continue;
            }
            Ok(None) => break Ok(()),
            Ok(Some(other)) => {
                let e = ErrorMsg {
                    code: ErrorCode::UnexpectedMessage,
                    message: format!("expected Batch, got {}", kind(&other)),
                };
                break Err(send_error(&ack_tx, e).await);
            }
            Err(e) => {
                let err = ErrorMsg {
                    code: e.code(),
                    message: e.to_string(),
                };
                break Err(send_error(&ack_tx, err).await);
            }
        };
        let checked =
            crate::ingest::check::check_batch(batch.seq, batch.points, now_ms(), &limits.points);
        let batch_points = match checked {
            Ok((points, refused)) => {
                count_refused_points(&connections, &host, batch.seq, &refused);
                points
            }
            Err(bad) => {
                connections
                    .refused
                    .bad_sequence
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = connections.log_limit.allow(std::time::Instant::now()) {
                    tracing::warn!(%host, seq = batch.seq, left_out, "{bad}; closing the connection");
                }
                let e = ErrorMsg {
                    code: ErrorCode::BadSequence,
                    message: bad.to_string(),
                };
                break Err(send_error(&ack_tx, e).await);
            }
        };
        let resolved = resolve(
            &store,
            &host,
            &mut dict,
            batch.series_defs,
            batch_points,
            limits.max_series_per_host,
        );
        let points = match resolved {
            Ok((p, dropped)) => {
                if dropped > 0 {
                    connections
                        .refused
                        .series_points
                        .fetch_add(dropped, Ordering::Relaxed);
                    if !warned_series_limit {
                        warned_series_limit = true;
                        tracing::warn!(
                            %host,
                            limit = limits.max_series_per_host,
                            "host is at its series limit: points of new series are dropped \
                             ([ingest] max_series_per_host; a runaway label?)"
                        );
                    }
                }
                p
            }
            Err(message) => {
                let e = ErrorMsg {
                    code: ErrorCode::BadSeries,
                    message,
                };
                break Err(send_error(&ack_tx, e).await);
            }
        };
        let id = match host_samples_id {
            Some(id) => Ok(id),
            None => store.series_id(&host, SeriesKey::new(HOST_SAMPLES, &[])),
        };
        let id = match id {
            Ok(id) => {
                host_samples_id = Some(id);
                id
            }
            Err(e) => {
                let err = ErrorMsg {
                    code: ErrorCode::StorageUnavailable,
                    message: e.to_string(),
                };
                break Err(send_error(&ack_tx, err).await);
            }
        };
        let rx = match store
            .submit_batch(BatchWrite {
                host: host.clone(),
                seq: batch.seq,
                points: with_host_samples(id, points),
            })
            .await
        {
            Ok(rx) => rx,
            Err(e) => {
                let err = ErrorMsg {
                    code: ErrorCode::StorageUnavailable,
                    message: e.to_string(),
                };
                break Err(send_error(&ack_tx, err).await);
            }
        };
        if ack_tx.send(Reply::Commit(rx)).await.is_err() {
            // The ack writer stopped: the peer went away or a commit failed.
            break Ok(());
        }
    };
    drop(ack_tx);
    let _ = ack_task.await;
    tracing::info!(%host, "agent disconnected");
    result
}

enum Reply {
    Commit(oneshot::Receiver<Result<crate::store::Committed, StoreError>>),
    /// Fatal: sent, then the connection closes.
    Error(ErrorMsg),
    /// Sent in its turn; the connection goes on.
    Message(Message),
}

async fn renew(
    enroller: Option<Arc<Enroller>>,
    host: &HostId,
    csr_der: Vec<u8>,
    connections: &Connections,
) -> CertificateReply {
    let reply = match enroller {
        Some(e) => {
            let host = host.clone();
            tokio::task::spawn_blocking(move || e.renew(&host, &csr_der))
                .await
                .unwrap_or_else(|_| CertificateReply::Refused {
                    message: "internal error".into(),
                })
        }
        None => CertificateReply::Refused {
            message: "renewal is not offered here".into(),
        },
    };
    match &reply {
        CertificateReply::Issued { .. } => {
            connections.refused.renewed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%host, "agent certificate renewed");
        }
        CertificateReply::Refused { message } => {
            connections
                .refused
                .renew_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%host, "certificate renewal refused: {message}");
        }
    }
    reply
}

async fn send_error(tx: &mpsc::Sender<Reply>, e: ErrorMsg) -> IngestError {
    let err = IngestError::Refused {
        code: e.code,
        message: e.message.clone(),
    };
    let _ = tx.send(Reply::Error(e)).await;
    err
}

pub(crate) async fn unsupported<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    v: u16,
) -> IngestError {
    refuse(
        writer,
        ErrorCode::UnsupportedProtocol,
        format!("protocol version {v} is not supported; this aggregator speaks {PROTOCOL_VERSION}"),
    )
    .await
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "Hello",
        Message::Welcome(_) => "Welcome",
        Message::Batch(_) => "Batch",
        Message::Ack(_) => "Ack",
        Message::Error(_) => "Error",
        Message::Enroll(_) => "Enroll",
        Message::Renew(_) => "Renew",
        Message::Certificate(_) => "Certificate",
    }
}

/// A batch's points as store writes, and how many were dropped by the series limit.
type Resolved = (Vec<(u32, i64, f64)>, u64);

/// Counts the points a batch had refused, and says so in the log (rate-limited).
fn count_refused_points(
    connections: &Connections,
    host: &HostId,
    seq: u64,
    r: &crate::ingest::check::Refused,
) {
    if r.total() == 0 {
        return;
    }
    let c = &connections.refused;
    c.points_too_old.fetch_add(r.too_old, Ordering::Relaxed);
    c.points_too_far_in_future
        .fetch_add(r.too_far_in_future, Ordering::Relaxed);
    c.points_not_finite
        .fetch_add(r.not_finite, Ordering::Relaxed);
    if r.too_old + r.too_far_in_future == 0 {
        // Non-finite values are routine (a collector's 0/0) and not worth a line.
        return;
    }
    if let Some(left_out) = connections.log_limit.allow(std::time::Instant::now()) {
        tracing::warn!(
            %host,
            seq,
            too_old = r.too_old,
            too_far_in_future = r.too_far_in_future,
            first_ts_ms = r.first_ts_ms.unwrap_or_default(),
            aggregator_ms = now_ms(),
            left_out,
            "points refused: outside [ingest] max_point_age / max_future of the aggregator's \
             clock (a wrong clock on the host?); the rest of the batch is stored"
        );
    }
}

/// Applies a batch's series definitions to the connection dictionary (connection id → store
/// series id) and resolves its points, which [`crate::ingest::check::check_batch`] passed.
fn resolve(
    store: &Store,
    host: &HostId,
    dict: &mut HashMap<u32, u32>,
    defs: Vec<nines_common::proto::SeriesDef>,
    points: Vec<nines_common::proto::Point>,
    max_series_per_host: usize,
) -> Result<Resolved, String> {
    for def in defs {
        let key = SeriesKey::from_parts(def.name, def.labels);
        key.validate().map_err(|e| e.to_string())?;
        if dict.len() >= 1_000_000 {
            return Err("more than 1000000 series on one connection".into());
        }
        let id = store
            .series_id_within(host, key, max_series_per_host)
            .map_err(|e| e.to_string())?
            .unwrap_or(DROPPED);
        dict.insert(def.id, id);
    }
    let mut out = Vec::with_capacity(points.len());
    let mut dropped = 0;
    for p in points {
        match dict.get(&p.series) {
            Some(&DROPPED) => dropped += 1,
            Some(id) => out.push((*id, p.ts_ms, p.value)),
            None => return Err(format!("point refers to undefined series id {}", p.series)),
        }
    }
    Ok((out, dropped))
}

struct ConnGuard(Arc<Connections>, HostId);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}
