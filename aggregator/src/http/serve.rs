//! The HTTP API's accept loop, plain HTTP and HTTPS alike: limits on open connections in all
//! and per source address (checked before TLS and before anything is read), an idle timeout
//! for connections that send nothing, hyper's header-read timeout for every request, and a
//! drain on shutdown. docs/api.md, "Connections", is the contract.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::http::tls::ApiTls;
use crate::util::accept::AcceptErrors;

/// Time a client has to complete the TLS handshake once it has sent its first byte.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish their requests once the aggregator stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// Bounds on the API port's connections (`[api]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open connections in all. At the limit, the connection that has waited longest without
    /// sending a byte is closed to make room; if every one has sent something, the new one
    /// is closed at once.
    pub max_connections: usize,
    /// Open connections from one source address; more are closed at once.
    pub max_connections_per_address: usize,
    /// Time a client has to send a whole request head, counted from when the connection
    /// opens or the previous response was sent (so it also ends idle kept-alive connections).
    pub header_read_timeout: Duration,
    /// Time a new connection has to send its first byte (of a request, or of the TLS
    /// handshake).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: 256,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` were open and each had sent something.
    MaxConnections,
    /// Its address had `max_connections_per_address` open.
    MaxConnectionsPerAddress,
}

impl Refusal {
    /// The `[api]` key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerAddress => "max_connections_per_address",
        }
    }
}

/// What the API port refused or closed, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Closed at once: `max_connections` open, none of them waiting for a first byte.
    pub over_total: AtomicU64,
    /// Closed at once: the address had `max_connections_per_address` open.
    pub over_address: AtomicU64,
    /// Closed after `idle_timeout` without a byte.
    pub idle: AtomicU64,
    /// Closed by `header_read_timeout`: a request head incomplete, or a kept-alive connection
    /// silent for that long.
    pub header_timeout: AtomicU64,
    /// Closed while waiting for a first byte, to make room for a new connection at
    /// `max_connections`.
    pub evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    open: usize,
    per_address: HashMap<IpAddr, usize>,
    /// Connections that have sent nothing yet, oldest first; sending on one closes it.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
    next_id: u64,
}

/// The API port's open connections and what was refused.
#[derive(Debug, Default)]
pub struct ApiConnections {
    table: Mutex<Table>,
    /// Refusal and close counters.
    pub counters: Counters,
}

/// A connection's place in the limits, given back when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    connections: Arc<ApiConnections>,
    ip: IpAddr,
    id: u64,
    /// Resolves when the connection is closed to make room for a newer one.
    evicted: Option<oneshot::Receiver<()>>,
}

impl Admitted {
    /// The connection sent its first byte: it is no longer closed to make room.
    fn busy(&mut self) {
        self.evicted = None;
        self.connections.lock().waiting.remove(&self.id);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.connections.lock();
        t.open -= 1;
        t.waiting.remove(&self.id);
        if let Some(n) = t.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_address.remove(&self.ip);
            }
        }
    }
}

impl ApiConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        crate::util::sync::lock(&self.table)
    }

    /// Connections open now, those waiting for a first byte or a TLS handshake included.
    pub fn open(&self) -> usize {
        self.lock().open
    }

    /// Takes a place for a new connection from `ip`, closing the oldest connection that has
    /// sent nothing if all places are taken, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Admitted, Refusal> {
        let mut t = self.lock();
        let from_ip = t.per_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= limits.max_connections_per_address {
            self.counters.over_address.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::MaxConnectionsPerAddress);
        }
        if t.open >= limits.max_connections {
            // The evicted connection's task closes its socket at its next poll: the place
            // is handed over, and the descriptor reserve covers the moment both are open.
            match t.waiting.pop_first() {
                Some((_, close)) => {
                    let _ = close.send(());
                    self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.counters.over_total.fetch_add(1, Ordering::Relaxed);
                    return Err(Refusal::MaxConnections);
                }
            }
        }
        t.open += 1;
        *t.per_address.entry(ip).or_default() += 1;
        let id = t.next_id;
        t.next_id += 1;
        let (close, evicted) = oneshot::channel();
        t.waiting.insert(id, close);
        Ok(Admitted {
            connections: self.clone(),
            ip,
            id,
            evicted: Some(evicted),
        })
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, over TLS if `tls` is given, within
/// `limits`; then lets open connections finish their current request (for a few seconds at
/// most). A connection over a limit is closed at once, before TLS and before reading.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ApiTls>>,
    app: Router,
    limits: Limits,
    connections: Arc<ApiConnections>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits);
    let mut tasks = JoinSet::new();
    let mut errors = AcceptErrors::new("HTTP API");
    let mut last_refusal_log = None::<std::time::Instant>;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    errors.failed(&e).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        };
        errors.succeeded();
        let admitted = match connections.admit(peer.ip(), &limits) {
            Ok(a) => a,
            Err(refusal) => {
                drop(tcp);
                if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_refusal_log = Some(std::time::Instant::now());
                    tracing::warn!(
                        %peer,
                        "HTTP API connection refused: [api] {} reached (said at most once a minute)",
                        refusal.key()
                    );
                }
                continue;
            }
        };
        let tls = tls.as_ref().map(|t| t.acceptor());
        let (app, limits, shutdown) = (app.clone(), limits.clone(), shutdown.clone());
        tasks.spawn(connection(tcp, peer, admitted, tls, app, limits, shutdown));
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    mut admitted: Admitted,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Arc<Limits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = admitted.connections.clone();
    let counters = &connections.counters;
    let evicted = admitted.evicted.take();
    let mut byte = [0u8; 1];
    // peek, not read: the byte stays for TLS or hyper.
    let first = tokio::select! {
        r = tokio::time::timeout(limits.idle_timeout, tcp.peek(&mut byte)) => r,
        _ = async { if let Some(rx) = evicted { let _ = rx.await; } } => {
            tracing::debug!(%peer, "HTTP API connection closed to make room: it sent nothing");
            return;
        }
        () = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
    };
    match first {
        Err(_) => {
            counters.idle.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "HTTP API connection closed: nothing sent within idle_timeout");
            return;
        }
        Ok(Ok(0)) | Ok(Err(_)) => return,
        Ok(Ok(_)) => {}
    }
    admitted.busy();
    let _ = tcp.set_nodelay(true);
    let served = match tls {
        None => http(tcp, app, &limits, &mut shutdown).await,
        Some(acceptor) => {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "HTTP API TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "HTTP API TLS handshake timed out");
                    return;
                }
            };
            http(stream, app, &limits, &mut shutdown).await
        }
    };
    if let Err(e) = served {
        if e.is_timeout() {
            counters.header_timeout.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(%peer, "HTTP API connection: {e}");
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it, `header_read_timeout`
/// passes without a whole request head, or `shutdown` turns true (then the request under way
/// finishes first).
async fn http<IO>(
    io: IO,
    app: Router,
    limits: &Limits,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper starts this timer when it begins waiting for a request head: at once on a new
    // connection, and again after each response on a kept-alive one.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

#[cfg(test)]
mod tests;
