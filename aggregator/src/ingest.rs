//! The ingest port: accepts mTLS connections from agents, takes the host identity from the
//! client certificate, and turns frames into durable store writes, acking each batch only after
//! its commit returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Ack, ErrorCode, ErrorMsg, Message, PROTOCOL_VERSION, ProtoError, Welcome, codec,
};
use nines_common::{HostId, SeriesKey, tls};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::store::{BatchWrite, HelloWrite, Store, StoreError};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Batches of one connection waiting for their commit, at most; beyond, reading pauses.
const MAX_PENDING_ACKS: usize = 256;

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

/// Hosts with an open connection, and how many.
#[derive(Debug, Default)]
pub struct Connections(Mutex<HashMap<String, usize>>);

impl Connections {
    fn add(&self, host: &HostId) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(host.to_string()).or_default() += 1;
    }

    fn remove(&self, host: &HostId) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(host.as_str()) {
            *n -= 1;
            if *n == 0 {
                m.remove(host.as_str());
            }
        }
    }

    /// Whether `host` has a connection open now.
    pub fn is_connected(&self, host: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.contains_key(host)
    }

    /// Number of hosts connected.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

pub use nines_common::model::now_ms;

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    store: Store,
    connections: Arc<Connections>,
    max_frame: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => Some(r),
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let (tcp, peer) = match accepted {
            None => return,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, store, connections, shutdown) = (
            acceptor.clone(),
            store.clone(),
            connections.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            match accept(tcp, acceptor, store, connections, max_frame, shutdown).await {
                Ok(()) => {}
                Err(IngestError::Proto(ProtoError::Io(e)))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof
                        || e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    tracing::debug!(%peer, "connection dropped: {e}");
                }
                Err(e) => tracing::warn!(%peer, "connection refused or failed: {e}"),
            }
        });
    }
}

async fn accept(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    store: Store,
    connections: Arc<Connections>,
    max_frame: u32,
    shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let stream = tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| {
            IngestError::Handshake(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "handshake timed out",
            ))
        })?
        .map_err(IngestError::Handshake)?;
    let (_, conn) = stream.get_ref();
    // The verifier already required a certificate chaining to our CA; its CN is the host.
    let host = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| IngestError::Identity("no client certificate".into()))
        .and_then(|c| tls::cert_host_id(c).map_err(|e| IngestError::Identity(e.to_string())))?;
    handle(stream, host, store, connections, max_frame, shutdown).await
}

async fn refuse<W: AsyncWrite + Unpin>(
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
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, max_frame);
    let mut writer = FrameWriter::new(w, max_frame);

    let first = match tokio::time::timeout(HELLO_TIMEOUT, reader.read_payload()).await {
        Err(_) => {
            return Err(refuse(
                &mut writer,
                ErrorCode::UnexpectedMessage,
                "no Hello within 10 s".into(),
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
    let _guard = ConnGuard(connections, host.clone());

    // Acks go out in batch order, each after its commit: a task awaits the commits in order.
    let (ack_tx, mut ack_rx) = mpsc::channel::<Reply>(MAX_PENDING_ACKS);
    let ack_task = tokio::spawn(async move {
        while let Some(reply) = ack_rx.recv().await {
            let msg = match reply {
                Reply::Commit(rx) => match rx.await {
                    Ok(Ok(through_seq)) => Message::Ack(Ack { through_seq }),
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
    let result = loop {
        let msg = tokio::select! {
            m = reader.read() => Some(m),
            _ = shutdown.wait_for(|s| *s) => None,
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
        let points = match resolve(&store, &host, &mut dict, batch.series_defs, batch.points) {
            Ok(p) => p,
            Err(message) => {
                let e = ErrorMsg {
                    code: ErrorCode::BadSeries,
                    message,
                };
                break Err(send_error(&ack_tx, e).await);
            }
        };
        let rx = match store
            .submit_batch(BatchWrite {
                host: host.clone(),
                seq: batch.seq,
                points,
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
    Commit(oneshot::Receiver<Result<u64, StoreError>>),
    Error(ErrorMsg),
}

async fn send_error(tx: &mpsc::Sender<Reply>, e: ErrorMsg) -> IngestError {
    let err = IngestError::Refused {
        code: e.code,
        message: e.message.clone(),
    };
    let _ = tx.send(Reply::Error(e)).await;
    err
}

async fn unsupported<W: AsyncWrite + Unpin>(writer: &mut FrameWriter<W>, v: u16) -> IngestError {
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
    }
}

/// Applies a batch's series definitions to the connection dictionary (connection id → store
/// series id) and resolves its points. Non-finite values are dropped (JSON cannot carry them
/// and they poison aggregates).
fn resolve(
    store: &Store,
    host: &HostId,
    dict: &mut HashMap<u32, u32>,
    defs: Vec<nines_common::proto::SeriesDef>,
    points: Vec<nines_common::proto::Point>,
) -> Result<Vec<(u32, i64, f64)>, String> {
    for def in defs {
        let key = SeriesKey::from_parts(def.name, def.labels);
        key.validate().map_err(|e| e.to_string())?;
        if dict.len() >= 1_000_000 {
            return Err("more than 1000000 series on one connection".into());
        }
        let id = store.series_id(host, key).map_err(|e| e.to_string())?;
        dict.insert(def.id, id);
    }
    let mut out = Vec::with_capacity(points.len());
    for p in points {
        if !p.value.is_finite() {
            continue;
        }
        match dict.get(&p.series) {
            Some(id) => out.push((*id, p.ts_ms, p.value)),
            None => return Err(format!("point refers to undefined series id {}", p.series)),
        }
    }
    Ok(out)
}

struct ConnGuard(Arc<Connections>, HostId);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}
