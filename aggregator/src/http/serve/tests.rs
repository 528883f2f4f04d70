#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use super::{ApiConnections, Limits, serve};

struct Api {
    addr: SocketAddr,
    connections: Arc<ApiConnections>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits) -> Api {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(ApiConnections::default());
    let (stop, rx) = watch::channel(false);
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let task = tokio::spawn(serve(listener, None, app, limits, connections.clone(), rx));
    Api {
        addr,
        connections,
        stop,
        task,
    }
}

impl Api {
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// How long until the server closes `s` (reads until EOF or reset), at most `limit`.
async fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((start.elapsed(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn healthz(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let api = start(Limits {
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut silent = connect_from(LOCAL, api.addr).await;
    let (after, got) = closed_after(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection is still open after 5 s");
    assert!(got.is_empty());
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(2),
        "closed after {after:?}"
    );
    assert_eq!(api.connections.counters.idle.load(Ordering::Relaxed), 1);
    assert_eq!(api.connections.open(), 0);
    api.stop().await;
}

#[tokio::test]
async fn an_incomplete_request_head_and_a_silent_kept_alive_connection_are_closed_after_the_header_read_timeout()
 {
    let api = start(Limits {
        header_read_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    let mut slow = connect_from(LOCAL, api.addr).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut kept = connect_from(LOCAL, api.addr).await;
    assert!(healthz(&mut kept).await.starts_with("HTTP/1.1 200"));
    let (after, _) = closed_after(&mut slow, Duration::from_secs(5))
        .await
        .expect("a request head never finished, still open after 5 s");
    assert!(after < Duration::from_secs(3), "closed after {after:?}");
    let (after, got) = closed_after(&mut kept, Duration::from_secs(5))
        .await
        .expect("a silent kept-alive connection, still open after 5 s");
    assert!(
        got.is_empty() && after < Duration::from_secs(3),
        "{after:?}"
    );
    assert_eq!(
        api.connections
            .counters
            .header_timeout
            .load(Ordering::Relaxed),
        2
    );
    api.stop().await;
}

#[tokio::test]
async fn a_connection_over_the_per_address_cap_is_closed_at_once_and_other_addresses_are_served() {
    let api = start(Limits {
        max_connections_per_address: 2,
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    let _a = connect_from(LOCAL, api.addr).await;
    let _b = connect_from(LOCAL, api.addr).await;
    let mut over = connect_from(LOCAL, api.addr).await;
    let (after, got) = closed_after(&mut over, Duration::from_secs(5))
        .await
        .expect("the third connection from one address is still open");
    assert!(
        got.is_empty() && after < Duration::from_millis(500),
        "{after:?}"
    );
    assert_eq!(
        api.connections
            .counters
            .over_address
            .load(Ordering::Relaxed),
        1
    );
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), api.addr).await;
    assert!(healthz(&mut other).await.starts_with("HTTP/1.1 200"));
    api.stop().await;
}

#[tokio::test]
async fn at_the_cap_the_oldest_silent_connection_makes_room_and_busy_ones_are_kept() {
    let api = start(Limits {
        max_connections: 3,
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    // One connection in the middle of a request head, then two silent ones.
    let mut busy = connect_from(LOCAL, api.addr).await;
    busy.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut oldest = connect_from(LOCAL, api.addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut newer = connect_from(LOCAL, api.addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(api.connections.open(), 3);

    // A new client is served: the oldest silent connection was closed for it.
    let mut client = connect_from(LOCAL, api.addr).await;
    assert!(healthz(&mut client).await.starts_with("HTTP/1.1 200"));
    assert!(
        closed_after(&mut oldest, Duration::from_secs(2))
            .await
            .is_some()
    );
    assert_eq!(api.connections.counters.evicted.load(Ordering::Relaxed), 1);
    // The busy one finishes its request; the newer silent one is closed for the next client.
    busy.write_all(b"Host: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = busy.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut next = connect_from(LOCAL, api.addr).await;
    assert!(healthz(&mut next).await.starts_with("HTTP/1.1 200"));
    assert!(
        closed_after(&mut newer, Duration::from_secs(2))
            .await
            .is_some()
    );

    // Now every open connection has sent something: a fourth is closed at once.
    let mut over = connect_from(LOCAL, api.addr).await;
    let (after, _) = closed_after(&mut over, Duration::from_secs(2))
        .await
        .expect("a connection over max_connections is still open");
    assert!(after < Duration::from_millis(500), "{after:?}");
    assert_eq!(
        api.connections.counters.over_total.load(Ordering::Relaxed),
        1
    );
    api.stop().await;
}
