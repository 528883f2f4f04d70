//! Revocation over real mTLS: `nines-aggregator ca revoke` disconnects a connected agent within
//! seconds, refuses it on reconnect and after a restart, by host or by serial, and leaves other
//! agents alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use std::time::Duration;

use nines_aggregator::{Config, Server};
use nines_common::proto::{Batch, ErrorCode, Message, Point, SeriesDef};
use util::*;

fn revoke(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nines-aggregator"))
        .args(["ca", "revoke", "--dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A reconnect with a revoked certificate fails the TLS handshake: the server's
/// `certificate_revoked` alert arrives on the first read, before any message.
fn refused_at_handshake(m: &Result<Message, String>) -> bool {
    matches!(m, Err(e) if e.contains("CertificateRevoked"))
}

fn revoked_error(m: &Result<Message, String>) -> bool {
    matches!(m, Ok(Message::Error(e)) if e.code == ErrorCode::HostMismatch && e.message.contains("revoked"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_cut_off_at_once_and_stays_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("revocation test CA");
    let path = write_config(dir.path(), &ca, &"0".repeat(64));
    let server = Server::start(&Config::load(&path).unwrap()).await.unwrap();
    let (w1, w2, w3) = (ca.agent("web-1"), ca.agent("web-2"), ca.agent("web-3"));

    let (mut r1, mut wr1) = connect(server.ingest_addr, &ca.pem, Some(&w1))
        .await
        .unwrap();
    wr1.write(&Message::Hello(hello("web-1"))).await.unwrap();
    assert!(matches!(
        r1.read().await.unwrap(),
        Some(Message::Welcome(_))
    ));
    let (mut r2, mut wr2) = connect(server.ingest_addr, &ca.pem, Some(&w2))
        .await
        .unwrap();
    wr2.write(&Message::Hello(hello("web-2"))).await.unwrap();
    assert!(matches!(
        r2.read().await.unwrap(),
        Some(Message::Welcome(_))
    ));

    let out = revoke(dir.path(), &["--host", "web-1"]);
    assert!(out.contains("revoked host web-1"), "{out}");
    let text = std::fs::read_to_string(dir.path().join("revoked.txt")).unwrap();
    assert!(text.starts_with("host web-1 # revoked "), "{text}");

    // The open connection is cut within seconds (the list is checked every 2 s).
    let cut = tokio::time::timeout(Duration::from_secs(10), r1.read())
        .await
        .unwrap();
    assert!(
        revoked_error(&cut.map(|m| m.unwrap()).map_err(|e| e.to_string())),
        "web-1 not cut off"
    );
    // web-2 is untouched.
    wr2.write(&Message::Batch(Batch {
        seq: 1,
        series_defs: vec![SeriesDef {
            id: 1,
            name: "m".into(),
            labels: vec![],
        }],
        points: vec![Point {
            series: 1,
            ts_ms: 1_000,
            value: 1.0,
        }],
    }))
    .await
    .unwrap();
    assert!(matches!(r2.read().await.unwrap(), Some(Message::Ack(_))));
    // Reconnecting is refused.
    let again = hello_reply(server.ingest_addr, &ca.pem, Some(&w1), "web-1").await;
    assert!(refused_at_handshake(&again), "{again:?}");

    // By serial: web-3's one certificate.
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(w3.cert.as_bytes()).unwrap();
    let serial = nines_aggregator::pki::revoke::serial_of(&der).unwrap();
    revoke(dir.path(), &["--serial", &serial]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = hello_reply(server.ingest_addr, &ca.pem, Some(&w3), "web-3").await;
    assert!(refused_at_handshake(&r), "{r:?}");
    drop((r1, wr1, r2, wr2));
    server.stop().await;

    // The list survives a restart.
    let server = Server::start(&Config::load(&path).unwrap()).await.unwrap();
    let r = hello_reply(server.ingest_addr, &ca.pem, Some(&w1), "web-1").await;
    assert!(refused_at_handshake(&r), "{r:?}");
    let r = hello_reply(server.ingest_addr, &ca.pem, Some(&w2), "web-2").await;
    assert!(matches!(r, Ok(Message::Welcome(_))), "{r:?}");
    server.stop().await;
}
