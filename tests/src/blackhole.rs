//! A TCP relay on 127.0.0.1 that can cut the network silently: while cut, it forwards
//! nothing in either direction and closes nothing, like a link that drops every packet.
//! Connections that saw a cut stay dead (open, silent) until the relay is dropped; connections
//! made after the cut is lifted go through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The relay. Dropping it closes every connection.
#[derive(Debug)]
pub struct Blackhole {
    /// Where agents connect.
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    /// Relays connections on a new 127.0.0.1 port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let (cut, cut_rx) = watch::channel(false);
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            // The relays live here, so that aborting this task closes them all.
            let mut conns = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                conns.spawn(relay(client, target, cut_rx.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            cut,
            accepted,
            task,
        }
    }

    /// Starts dropping everything, on every connection open now or made until [`Self::lift`].
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Lets new connections through again; those that saw the cut stay dead.
    pub fn lift(&self) {
        let _ = self.cut.send(false);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    if *cut.borrow_and_update() {
        // Made during the cut: the handshake never gets an answer.
        hold(client, None).await;
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut waiter = cut.clone();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        // Reads are cancel-safe: a cut while waiting loses nothing that was read.
        let (n, upstream) = tokio::select! {
            n = cr.read(&mut up) => (n, true),
            n = sr.read(&mut down) => (n, false),
            _ = waiter.wait_for(|c| *c) => break,
        };
        let n = match n {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let is_cut = *cut.borrow();
        if is_cut {
            // What was read during the cut is dropped, as on the wire.
            break;
        }
        let written = if upstream {
            sw.write_all(&up[..n]).await
        } else {
            cw.write_all(&down[..n]).await
        };
        if written.is_err() {
            return;
        }
    }
    // Cut: keep all four halves open and never touch them again.
    let client = cr.reunite(cw).ok();
    let server = sr.reunite(sw).ok();
    if let Some(c) = client {
        hold(c, server).await;
    }
}

async fn hold(a: TcpStream, b: Option<TcpStream>) {
    let _keep = (a, b);
    std::future::pending::<()>().await;
}
