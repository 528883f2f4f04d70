//! Certificates over the ingest port, on loopback with real TLS: enrollment with one-time
//! tokens behind a pinned CA fingerprint, renewal over an agent's own connection, and the
//! server certificate and CA bundle replaced while agents stay connected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nines_aggregator::pki::enroll::{add_token, new_token};
use nines_aggregator::{Config, Server};
use nines_common::HostId;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Batch, CertificateReply, DEFAULT_MAX_FRAME_BYTES, Enroll, Message, PROTOCOL_VERSION, Point,
    Renew, SeriesDef,
};
use nines_common::tls;
use rustls_pki_types::ServerName;
use util::*;

fn setup(dir: &Path, ca: &Ca) -> std::path::PathBuf {
    let path = write_config(dir, ca, &tls::fingerprint(API_TOKEN.as_bytes()));
    std::fs::write(dir.join("ca.key"), &ca.key_pem).unwrap();
    path
}

async fn start(config: &Path) -> Server {
    Server::start(&Config::load(config).unwrap()).await.unwrap()
}

fn token_for(dir: &Path, host: &str, expires_in: i64) -> String {
    let token = new_token().unwrap();
    let now = nines_common::model::now_ms() / 1000;
    add_token(
        &dir.join("tokens.txt"),
        &dir.join("ca.key"),
        &token,
        &HostId::new(host).unwrap(),
        now + expires_in,
    )
    .unwrap();
    token
}

/// A key and a certificate request naming `cn`.
fn csr(cn: &str) -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let csr = p.serialize_request(&key).unwrap();
    (key.serialize_pem(), csr.der().to_vec())
}

fn ca_fingerprint(ca: &Ca) -> String {
    tls::fingerprint(tls::parse_certs(ca.pem.as_bytes(), "ca").unwrap()[0].as_ref())
}

/// Enrolls over a TLS connection pinned to `fingerprint`: the answer, or the error that
/// stopped the exchange.
async fn enroll(
    addr: SocketAddr,
    fingerprint: &str,
    token: &str,
    csr_der: Vec<u8>,
) -> Result<CertificateReply, String> {
    let (config, _pin) = tls::pinned_client_config(fingerprint).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (r, w) = tokio::io::split(stream);
    let (mut r, mut w) = (
        FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES),
        FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES),
    );
    w.write(&Message::Enroll(Enroll {
        protocol: PROTOCOL_VERSION,
        token: token.into(),
        csr_der,
    }))
    .await
    .map_err(|e| e.to_string())?;
    match r.read().await {
        Ok(Some(Message::Certificate(c))) => Ok(c),
        other => Err(format!("{other:?}")),
    }
}

fn issued(reply: CertificateReply) -> (String, String) {
    match reply {
        CertificateReply::Issued { cert_pem, ca_pem } => (cert_pem, ca_pem),
        CertificateReply::Refused { message } => panic!("refused: {message}"),
    }
}

fn refused(reply: Result<CertificateReply, String>) -> String {
    match reply {
        Ok(CertificateReply::Refused { message }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn batch(seq: u64) -> Message {
    Message::Batch(Batch {
        seq,
        series_defs: vec![SeriesDef {
            id: 1,
            name: "load1".into(),
            labels: vec![],
        }],
        points: vec![Point {
            series: 1,
            ts_ms: nines_common::model::now_ms(),
            value: 1.0,
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_enrolls_its_host_once_and_is_stored_only_as_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let config = setup(dir.path(), &ca);
    let server = start(&config).await;
    let (addr, fp) = (server.ingest_addr, ca_fingerprint(&ca));

    let token = token_for(dir.path(), "web-1", 3600);
    let tokens = std::fs::read_to_string(dir.path().join("tokens.txt")).unwrap();
    assert!(!tokens.contains(&token), "the token itself is stored");
    assert!(tokens.contains("web-1"));

    let (key, request) = csr("web-1");
    let (cert, bundle) = issued(enroll(addr, &fp, &token, request).await.unwrap());
    assert_eq!(bundle.trim(), ca.pem.trim());
    let der = tls::parse_certs(cert.as_bytes(), "cert").unwrap();
    assert_eq!(tls::cert_host_id(&der[0]).unwrap().as_str(), "web-1");
    let (not_before, not_after) = tls::cert_validity(der[0].as_ref()).unwrap();
    let days = (not_after - not_before) as f64 / 86_400.0;
    assert!((29.9..30.1).contains(&days), "{days} days");

    // The certificate gets in as web-1.
    let leaf = Leaf {
        cert: cert.clone(),
        key,
    };
    let r = hello_reply(addr, &ca.pem, Some(&leaf), "web-1").await;
    assert!(matches!(r, Ok(Message::Welcome(_))), "{r:?}");

    // Once only, also after a restart.
    let again = refused(enroll(addr, &fp, &token, csr("web-1").1).await);
    assert!(again.contains("used already"), "{again}");
    server.stop().await;
    let server = start(&config).await;
    let again = refused(enroll(server.ingest_addr, &fp, &token, csr("web-1").1).await);
    assert!(again.contains("used already"), "{again}");
    let used = std::fs::read_to_string(dir.path().join("db/used-tokens.txt")).unwrap();
    assert!(!used.contains(&token));

    let metrics = metrics(&server).await;
    assert!(
        metrics.contains("nines_ingest_certificates_issued_total{kind=\"enrollment\"} 0")
            && metrics.contains("nines_ingest_certificates_refused_total{kind=\"enrollment\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

const API_TOKEN: &str = "enroll-test-token";

/// `GET /metrics` over a plain socket.
async fn metrics(server: &Server) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.api_addr)
        .await
        .unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.0\r\nAuthorization: Bearer {API_TOKEN}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    out
}

/// 300 guesses in 0.6 s were all looked at; now an address gets 5 failures at once, one more
/// every 10 s, and past that even a good token is refused unread (and not spent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_enrollments_from_one_address_are_slowed_down() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(&setup(dir.path(), &ca)).await;
    let (addr, fp) = (server.ingest_addr, ca_fingerprint(&ca));
    for _ in 0..5 {
        let m = refused(enroll(addr, &fp, &new_token().unwrap(), csr("web-1").1).await);
        assert!(m.contains("unknown enrollment token"), "{m}");
    }
    let good = token_for(dir.path(), "web-1", 3600);
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let m = refused(enroll(addr, &fp, &good, csr("web-1").1).await);
        assert!(m.contains("too many failed enrollments"), "{m}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the refill is 10 s"
    );
    let m = metrics(&server).await;
    assert!(
        m.contains("nines_ingest_connections_refused_total{reason=\"enrollment_rate_limit\"} 20"),
        "{m}"
    );
    // One more attempt is allowed 10 s later; the good token was not spent by the refusals.
    tokio::time::sleep(
        Duration::from_secs(10).saturating_sub(started.elapsed()) + Duration::from_millis(500),
    )
    .await;
    issued(enroll(addr, &fp, &good, csr("web-1").1).await.unwrap());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_and_other_hosts_tokens_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(&setup(dir.path(), &ca)).await;
    let (addr, fp) = (server.ingest_addr, ca_fingerprint(&ca));

    let m = refused(enroll(addr, &fp, &new_token().unwrap(), csr("web-1").1).await);
    assert!(m.contains("unknown enrollment token"), "{m}");

    let expired = token_for(dir.path(), "web-1", -1);
    let m = refused(enroll(addr, &fp, &expired, csr("web-1").1).await);
    assert!(m.contains("expired"), "{m}");

    // A token for web-2 does not make a certificate for web-1, and is not spent by trying.
    let token = token_for(dir.path(), "web-2", 3600);
    let m = refused(enroll(addr, &fp, &token, csr("web-1").1).await);
    assert!(m.contains("web-2") && m.contains("web-1"), "{m}");
    // A request that is not a certificate request.
    let m = refused(enroll(addr, &fp, &token, b"not a CSR".to_vec()).await);
    assert!(m.contains("certificate signing request"), "{m}");
    issued(enroll(addr, &fp, &token, csr("web-2").1).await.unwrap());

    // Without a certificate, Hello gets nothing but the advice to enroll.
    match hello_reply(addr, &ca.pem, None, "web-1").await {
        Ok(Message::Error(e)) => assert!(e.message.contains("enroll"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_fingerprint_stops_the_agent_before_the_token_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(&setup(dir.path(), &ca)).await;
    let token = token_for(dir.path(), "web-1", 3600);

    let other = ca_fingerprint(&Ca::new("someone else's CA"));
    let r = enroll(server.ingest_addr, &other, &token, csr("web-1").1).await;
    match r {
        Err(e) => assert!(e.contains("handshake") && e.contains("fingerprint"), "{e}"),
        Ok(r) => panic!("enrolled against the wrong CA: {r:?}"),
    }
    // The token was never sent, so it still works.
    issued(
        enroll(
            server.ingest_addr,
            &ca_fingerprint(&ca),
            &token,
            csr("web-1").1,
        )
        .await
        .unwrap(),
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_renews_over_its_own_connection_for_its_own_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(&setup(dir.path(), &ca)).await;
    let (mut r, mut w) = connect(server.ingest_addr, &ca.pem, Some(&ca.agent("web-1")))
        .await
        .unwrap();
    w.write(&Message::Hello(hello("web-1"))).await.unwrap();
    assert!(matches!(r.read().await, Ok(Some(Message::Welcome(_)))));
    w.write(&batch(1)).await.unwrap();
    // The request names another host: the certificate is for the connection's host anyway.
    let (key, request) = csr("db-9");
    w.write(&Message::Renew(Renew { csr_der: request }))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(r.read().await.unwrap().unwrap());
    }
    assert!(matches!(got[0], Message::Ack(_)), "{got:?}");
    let Message::Certificate(reply) = got.remove(1) else {
        panic!("{got:?}")
    };
    let (cert, _) = issued(reply);
    let der = tls::parse_certs(cert.as_bytes(), "cert").unwrap();
    assert_eq!(tls::cert_host_id(&der[0]).unwrap().as_str(), "web-1");

    // The connection goes on after the renewal.
    w.write(&batch(2)).await.unwrap();
    assert!(matches!(r.read().await, Ok(Some(Message::Ack(a))) if a.through_seq == 2));
    // And the new certificate gets in.
    let leaf = Leaf { cert, key };
    let reply = hello_reply(server.ingest_addr, &ca.pem, Some(&leaf), "web-1").await;
    assert!(matches!(reply, Ok(Message::Welcome(_))), "{reply:?}");
    server.stop().await;
}

/// The certificate the server presents to a new connection.
async fn server_cert(addr: SocketAddr, ca_pem: &str) -> Vec<u8> {
    let (config, _) = tls::pinned_client_config(&tls::fingerprint(
        tls::parse_certs(ca_pem.as_bytes(), "ca").unwrap()[0].as_ref(),
    ))
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_certificate_and_ca_bundle_are_used_without_dropping_agents() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(&setup(dir.path(), &ca)).await;
    let addr = server.ingest_addr;
    let before = server_cert(addr, &ca.pem).await;

    let (mut r, mut w) = connect(addr, &ca.pem, Some(&ca.agent("web-1")))
        .await
        .unwrap();
    w.write(&Message::Hello(hello("web-1"))).await.unwrap();
    assert!(matches!(r.read().await, Ok(Some(Message::Welcome(_)))));

    // The operator replaces the server certificate and adds a second CA to the bundle; the
    // aggregator notices the files change on its own.
    let next = Ca::new("next nines CA");
    let fresh = ca.server();
    std::fs::write(dir.path().join("server.key"), &fresh.key).unwrap();
    std::fs::write(dir.path().join("server.pem"), &fresh.cert).unwrap();
    std::fs::write(dir.path().join("ca.pem"), format!("{}{}", ca.pem, next.pem)).unwrap();
    let mut changed = false;
    for _ in 0..50 {
        if server_cert(addr, &ca.pem).await != before {
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(changed, "the new server certificate was not picked up");
    // An agent of the new CA gets in; the one connected before was not dropped.
    let reply = hello_reply(addr, &ca.pem, Some(&next.agent("web-2")), "web-2").await;
    assert!(matches!(reply, Ok(Message::Welcome(_))), "{reply:?}");
    w.write(&batch(1)).await.unwrap();
    assert!(matches!(r.read().await, Ok(Some(Message::Ack(a))) if a.through_seq == 1));

    // A broken file keeps the certificate in force, and says which file.
    std::fs::write(dir.path().join("server.pem"), "garbage").unwrap();
    let e = server.reload_tls().unwrap_err();
    assert!(e.to_string().contains("server certificate"), "{e}");
    let reply = hello_reply(addr, &ca.pem, Some(&ca.agent("web-3")), "web-3").await;
    assert!(matches!(reply, Ok(Message::Welcome(_))), "{reply:?}");
    server.stop().await;
}
