//! Test PKI generated with rcgen at test time, and a raw protocol client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{DEFAULT_MAX_FRAME_BYTES, Hello, Message, PROTOCOL_VERSION};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls_pki_types::ServerName;
use time::{Duration, OffsetDateTime};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[derive(Debug)]
pub struct Ca {
    pub pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

#[derive(Debug)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(&self, cn: &str, server: bool, not_after: OffsetDateTime) -> Leaf {
        self.leaf_between(
            cn,
            server,
            OffsetDateTime::now_utc() - Duration::days(30),
            not_after,
        )
    }

    fn leaf_between(
        &self,
        cn: &str,
        server: bool,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![cn.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        p.not_before = not_before;
        p.not_after = not_after;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    pub fn server(&self) -> Leaf {
        self.leaf(
            "localhost",
            true,
            OffsetDateTime::now_utc() + Duration::days(30),
        )
    }

    /// A certificate valid from `not_before` to `not_after`, for a server or an agent.
    pub fn leaf_at(
        &self,
        cn: &str,
        server: bool,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Leaf {
        self.leaf_between(cn, server, not_before, not_after)
    }

    pub fn agent(&self, host: &str) -> Leaf {
        self.leaf(host, false, OffsetDateTime::now_utc() + Duration::days(30))
    }

    /// An agent certificate valid only from tomorrow.
    pub fn future_agent(&self, host: &str) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.leaf_between(
            host,
            false,
            now + Duration::days(1),
            now + Duration::days(30),
        )
    }

    pub fn expired_agent(&self, host: &str) -> Leaf {
        self.leaf(host, false, OffsetDateTime::now_utc() - Duration::days(1))
    }
}

/// Writes a CA, server cert and an aggregator config into `dir`; returns the config path.
pub fn write_config(dir: &Path, ca: &Ca, token_sha256: &str) -> PathBuf {
    let server = ca.server();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.join("server.pem"), &server.cert).unwrap();
    std::fs::write(dir.join("server.key"), &server.key).unwrap();
    let path = dir.join("aggregator.toml");
    std::fs::write(
        &path,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\nca = \"ca.pem\"\ncert = \"server.pem\"\nkey = \"server.key\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"t\"\nsha256 = \"{token_sha256}\"\n\
             [store]\npath = \"db/nines.redb\"\n"
        ),
    )
    .unwrap();
    path
}

pub fn hello(host: &str) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: "test".into(),
        host_id: host.into(),
        boot_id: "boot".into(),
        os: "testOS".into(),
        arch: "x86_64".into(),
        kernel: "6.1".into(),
        interval_ms: 1000,
    }
}

pub type Conn = (
    FrameReader<ReadHalf<TlsStream<TcpStream>>>,
    FrameWriter<WriteHalf<TlsStream<TcpStream>>>,
);

/// Connects with an optional client certificate, trusting `ca_pem`.
pub async fn connect(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Leaf>,
) -> std::io::Result<Conn> {
    let config = match client {
        Some(leaf) => nines_common::tls::client_config(
            ca_pem.as_bytes(),
            leaf.cert.as_bytes(),
            leaf.key.as_bytes(),
        )
        .unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for c in nines_common::tls::parse_certs(ca_pem.as_bytes(), "ca").unwrap() {
                roots.add(c).unwrap();
            }
            let mut c = rustls::ClientConfig::builder_with_provider(nines_common::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            c.alpn_protocols = vec![nines_common::proto::ALPN.to_vec()];
            c
        }
    };
    let tcp = TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (r, w) = tokio::io::split(tls);
    Ok((
        FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES),
        FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES),
    ))
}

/// Connects and says Hello as `host`; returns the first reply, or the error that ended the
/// exchange (handshake refused, connection closed).
pub async fn hello_reply(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Leaf>,
    host: &str,
) -> Result<Message, String> {
    let (mut r, mut w) = connect(addr, ca_pem, client)
        .await
        .map_err(|e| e.to_string())?;
    w.write(&Message::Hello(hello(host)))
        .await
        .map_err(|e| e.to_string())?;
    match r.read().await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err("closed".into()),
        Err(e) => Err(e.to_string()),
    }
}
