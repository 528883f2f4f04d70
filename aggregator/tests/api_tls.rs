//! The HTTP API over real TLS on loopback: HTTPS with tokens, mTLS with client certificates,
//! a certificate reload, and the config errors an operator meets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nines_aggregator::{Config, Server};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use util::*;

const TOKEN: &str = "api-tls-test-token";
const BIN: &str = env!("CARGO_BIN_EXE_nines-aggregator");

/// Writes the ingest PKI, an API certificate from `api_ca` and a config serving the API over
/// TLS (with `client_ca` when given) into `dir`; returns the config path.
fn write_config(dir: &Path, api_ca: &Ca, client_ca: Option<&Ca>) -> std::path::PathBuf {
    let ingest_ca = Ca::new("nines ingest CA");
    let ingest = ingest_ca.server();
    std::fs::write(dir.join("ca.pem"), &ingest_ca.pem).unwrap();
    std::fs::write(dir.join("server.pem"), &ingest.cert).unwrap();
    std::fs::write(dir.join("server.key"), &ingest.key).unwrap();
    let api = api_ca.server();
    std::fs::write(dir.join("api.pem"), &api.cert).unwrap();
    std::fs::write(dir.join("api.key"), &api.key).unwrap();
    let mut client = String::new();
    if let Some(ca) = client_ca {
        std::fs::write(dir.join("clients.pem"), &ca.pem).unwrap();
        client = "client_ca = \"clients.pem\"\n".into();
    }
    let path = dir.join("aggregator.toml");
    std::fs::write(
        &path,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\nca = \"ca.pem\"\ncert = \"server.pem\"\nkey = \"server.key\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"api.pem\"\ntls_key = \"api.key\"\n{client}\
             [[api.tokens]]\nname = \"t\"\nsha256 = \"{}\"\n\
             [store]\npath = \"db/nines.redb\"\n",
            nines_aggregator::http::token_hash(TOKEN)
        ),
    )
    .unwrap();
    path
}

fn client_config(ca_pem: &str, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in nines_common::tls::parse_certs(ca_pem.as_bytes(), "ca").unwrap() {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(nines_common::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                nines_common::tls::parse_certs(leaf.cert.as_bytes(), "cert").unwrap(),
                nines_common::tls::parse_key(leaf.key.as_bytes(), "key").unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One HTTP/1.1 GET on an open connection, kept alive; the status and body.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n");
    tokio::time::timeout(Duration::from_secs(10), async {
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let bad = || std::io::Error::other(format!("not an HTTP response: {head:?}"));
        let status: u16 = head
            .strip_prefix("http/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(bad)?;
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok((
            status,
            String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned(),
        ))
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// A fresh connection and one GET, or the error that ended it.
async fn fetch(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = connect(addr, config).await?;
    get(&mut s, path, token).await
}

fn served_cert(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(leaf_pem: &str) -> Vec<u8> {
    nines_common::tls::parse_certs(leaf_pem.as_bytes(), "cert").unwrap()[0].to_vec()
}

#[tokio::test]
async fn https_answers_with_a_token_and_plain_http_gets_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines API CA");
    let server = Server::start(&Config::load(&write_config(dir.path(), &ca, None)).unwrap())
        .await
        .unwrap();
    let addr = server.api_addr;
    let client = client_config(&ca.pem, None);

    // A client that connects and says nothing does not hold up the others.
    let _silent = TcpStream::connect(addr).await.unwrap();

    let (status, body) = fetch(addr, client.clone(), "/api/v1/hosts", Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hosts\""), "{body}");
    // TLS does not stand in for a token.
    let (status, _) = fetch(addr, client.clone(), "/api/v1/hosts", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = fetch(addr, client.clone(), "/api/v1/hosts", Some("wrong"))
        .await
        .unwrap();
    assert_eq!(status, 401);

    // The connection advertises only what the API serves.
    let s = connect(addr, client.clone()).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(s);

    // Plain HTTP to the TLS port: no HTTP answer, whatever comes back.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let answer = get(&mut plain, "/healthz", None).await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");

    // A client that does not trust the API's CA gives up; the listener goes on.
    let stranger = client_config(&Ca::new("another CA").pem, None);
    assert!(
        fetch(addr, stranger, "/healthz", None).await.is_err(),
        "a client trusting another CA got through"
    );
    let (status, _) = fetch(addr, client, "/healthz", None).await.unwrap();
    assert_eq!(status, 200, "the listener stopped after failed handshakes");
    server.stop().await;
}

#[tokio::test]
async fn with_client_ca_only_certificates_it_signed_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines API CA");
    let clients = Ca::new("API clients CA");
    let server =
        Server::start(&Config::load(&write_config(dir.path(), &ca, Some(&clients))).unwrap())
            .await
            .unwrap();
    let addr = server.api_addr;

    let r = fetch(addr, client_config(&ca.pem, None), "/healthz", None).await;
    assert!(r.is_err(), "no client certificate: {r:?}");

    let rogue = Ca::new("rogue CA").agent("grafana");
    let r = fetch(addr, client_config(&ca.pem, Some(&rogue)), "/healthz", None).await;
    assert!(r.is_err(), "certificate from another CA: {r:?}");

    let expired = clients.expired_agent("grafana");
    let r = fetch(
        addr,
        client_config(&ca.pem, Some(&expired)),
        "/healthz",
        None,
    )
    .await;
    assert!(r.is_err(), "expired client certificate: {r:?}");

    let good = client_config(&ca.pem, Some(&clients.agent("grafana")));
    let (status, body) = fetch(addr, good.clone(), "/api/v1/hosts", Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // A client certificate does not stand in for a token either.
    let (status, _) = fetch(addr, good, "/api/v1/hosts", None).await.unwrap();
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn a_reload_reaches_new_connections_while_open_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines API CA");
    let server = Server::start(&Config::load(&write_config(dir.path(), &ca, None)).unwrap())
        .await
        .unwrap();
    let addr = server.api_addr;
    let client = client_config(&ca.pem, None);
    let old = der(&std::fs::read_to_string(dir.path().join("api.pem")).unwrap());

    let mut open = connect(addr, client.clone()).await.unwrap();
    assert_eq!(served_cert(&open), old);
    assert_eq!(get(&mut open, "/healthz", None).await.unwrap().0, 200);

    let renewed = ca.server();
    std::fs::write(dir.path().join("api.pem"), &renewed.cert).unwrap();
    std::fs::write(dir.path().join("api.key"), &renewed.key).unwrap();
    assert!(server.reload_api_tls().unwrap());

    let mut fresh = connect(addr, client.clone()).await.unwrap();
    assert_eq!(served_cert(&fresh), der(&renewed.cert), "new connection");
    assert_ne!(served_cert(&fresh), old);
    assert_eq!(get(&mut fresh, "/healthz", None).await.unwrap().0, 200);
    // The connection opened before the reload still answers, kept alive.
    let (status, _) = get(&mut open, "/api/v1/hosts", Some(TOKEN)).await.unwrap();
    assert_eq!(status, 200);

    // A bad file is refused, named, and the certificate in force stays.
    std::fs::write(dir.path().join("api.key"), "not a key").unwrap();
    let e = server.reload_api_tls().unwrap_err().to_string();
    assert!(e.contains("tls_key") && e.contains("api.key"), "{e}");
    let s = connect(addr, client).await.unwrap();
    assert_eq!(served_cert(&s), der(&renewed.cert));
    server.stop().await;
}

#[test]
fn tls_config_mistakes_are_named() {
    let head = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[api]\n";
    for (text, want) in [
        (
            "tls_cert = \"api.pem\"\n",
            "tls_cert is set but tls_key is not",
        ),
        (
            "tls_key = \"api.key\"\n",
            "tls_key is set but tls_cert is not",
        ),
        (
            "client_ca = \"clients.pem\"\n",
            "client_ca needs tls_cert and tls_key",
        ),
    ] {
        let e = Config::parse(&format!("{head}{text}"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config a.toml:") && e.contains(want), "{e}");
    }

    // Relative paths are beside the config file.
    let c = Config::parse(
        &format!("{head}tls_cert = \"api.pem\"\ntls_key = \"/k/api.key\"\nclient_ca = \"c.pem\"\n"),
        Path::new("/etc/nines/aggregator.toml"),
    )
    .unwrap();
    let files = c.api.tls().unwrap();
    assert_eq!(files.cert, Path::new("/etc/nines/api.pem"));
    assert_eq!(files.key, Path::new("/k/api.key"));
    assert_eq!(files.client_ca.unwrap(), Path::new("/etc/nines/c.pem"));
}

#[test]
fn check_config_reads_the_api_tls_files_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines API CA");
    let config = write_config(dir.path(), &ca, Some(&Ca::new("clients")));
    let check = || {
        std::process::Command::new(BIN)
            .args(["check-config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (file, text) in [
        ("clients.pem", "garbage"),
        ("api.key", "garbage"),
        ("api.pem", "garbage"),
    ] {
        let saved = std::fs::read(dir.path().join(file)).unwrap();
        std::fs::write(dir.path().join(file), text).unwrap();
        let out = check();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{file}: {err}");
        assert!(err.contains(file), "{file}: {err}");
        std::fs::write(dir.path().join(file), saved).unwrap();
    }

    // A key that belongs to another certificate.
    std::fs::write(dir.path().join("api.key"), ca.server().key).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("api.key") && err.contains("does not go with"),
        "{err}"
    );
}
