//! A client that speaks the real agent protocol over mTLS with an agent certificate, built
//! from `nines_common`'s TLS configuration and frame codec: to load an aggregator with batches
//! whose acks the test sees, and to ask it what it stored for a host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{DEFAULT_MAX_FRAME_BYTES, Hello, Message, PROTOCOL_VERSION};
use rustls_pki_types::ServerName;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cluster::Pki;

/// Reading half of a connection.
pub type Reader = FrameReader<ReadHalf<TlsStream<TcpStream>>>;
/// Writing half of a connection.
pub type Writer = FrameWriter<WriteHalf<TlsStream<TcpStream>>>;

/// A connection after `Hello` and `Welcome`.
#[derive(Debug)]
pub struct Session {
    /// Frames from the aggregator.
    pub reader: Reader,
    /// Frames to the aggregator.
    pub writer: Writer,
    /// From `Welcome`: the first seq the aggregator has not stored for this host.
    pub resume_from_seq: u64,
}

/// The TLS client configuration of `host`'s certificate.
pub fn client_config(pki: &Pki, host: &str) -> Arc<rustls::ClientConfig> {
    let read = |p: std::path::PathBuf| {
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let (cert, key) = pki.agent(host);
    let config = nines_common::tls::client_config(&read(pki.ca()), &read(cert), &read(key))
        .unwrap_or_else(|e| panic!("TLS config for {host}: {e}"));
    Arc::new(config)
}

/// Connects to `addr` as `host`, says `Hello` and reads `Welcome`, each step within `limit`.
pub async fn connect(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    limit: Duration,
) -> Result<Session, String> {
    let go = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES);
        let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES);
        writer
            .write(&Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                agent_version: "nines-tests".into(),
                host_id: host.to_owned(),
                boot_id: String::new(),
                os: "test".into(),
                arch: std::env::consts::ARCH.into(),
                kernel: String::new(),
                interval_ms: 1000,
            }))
            .await
            .map_err(|e| format!("Hello: {e}"))?;
        match reader.read().await {
            Ok(Some(Message::Welcome(w))) => Ok(Session {
                reader,
                writer,
                resume_from_seq: w.resume_from_seq,
            }),
            other => Err(format!("expected Welcome, got {other:?}")),
        }
    };
    tokio::time::timeout(limit, go)
        .await
        .map_err(|_| format!("no Welcome within {limit:?}"))?
}

/// The highest seq the aggregator has stored for `host` (0 if none), from the `Welcome` it
/// gives a new connection with `host`'s certificate. Panics if it cannot be asked.
pub async fn stored_through(addr: SocketAddr, pki: &Pki, host: &str) -> u64 {
    let mut s = connect(
        addr,
        client_config(pki, host),
        host,
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|e| panic!("asking the aggregator about {host}: {e}"));
    let _ = s.writer.shutdown().await;
    s.resume_from_seq.saturating_sub(1)
}
