//! `nines-agent enroll`: a first certificate for this host from the aggregator, for a
//! one-time token. The key is made here and never leaves; the aggregator is authenticated by
//! the fingerprint of its CA before the token is sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    CertificateReply, DEFAULT_MAX_FRAME_BYTES, Enroll, Message, PROTOCOL_VERSION,
};
use nines_common::{HostId, tls};
use tokio::time::timeout;

use crate::config::Config;
use crate::net::{self, ConnectError};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Bad arguments or configuration for enrolling.
    #[error("{0}")]
    Usage(String),
    /// The aggregator could not be reached or authenticated.
    #[error("connecting to {addr}: {detail}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        detail: String,
    },
    /// The aggregator refused.
    #[error("the aggregator refused: {0}")]
    Refused(String),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct Request {
    /// `host:port` of the aggregator's ingest port.
    pub aggregator: String,
    /// The token `nines-aggregator ca token` printed.
    pub token: String,
    /// SHA-256 fingerprint of the nines CA certificate.
    pub ca_fingerprint: String,
    /// The name the aggregator's certificate carries; default the configured `server_name`
    /// or the address's host part.
    pub server_name: Option<String>,
    /// Replace certificate files that exist.
    pub force: bool,
}

/// The host id this agent enrolls as: `host` from the configuration, else the kernel's host
/// name.
pub fn host_id(config: &Config) -> Result<HostId, EnrollError> {
    if let Some(h) = &config.host {
        return Ok(h.clone());
    }
    let name = std::fs::read_to_string(config.collect.procfs.join("sys/kernel/hostname"))
        .unwrap_or_default();
    HostId::new(name.trim()).map_err(|e| {
        EnrollError::Usage(format!(
            "this machine's host name is no valid host id ({e}); set `host` in the configuration"
        ))
    })
}

/// Enrolls and writes the CA bundle, certificate and key where the configuration names them.
/// Returns the host id enrolled.
pub async fn enroll(config: &Config, req: &Request) -> Result<HostId, EnrollError> {
    let a = &config.aggregator;
    if !req.force {
        for p in [&a.cert, &a.key] {
            if p.exists() {
                return Err(EnrollError::Usage(format!(
                    "{} exists: this host has a certificate already (--force replaces it)",
                    p.display()
                )));
            }
        }
    }
    let host = host_id(config)?;
    let (client, pin) = tls::pinned_client_config(&req.ca_fingerprint)
        .map_err(|e| EnrollError::Usage(e.to_string()))?;
    let (key_pem, csr_der) = super::csr::request(host.as_str())
        .map_err(|e| EnrollError::Usage(format!("making a key: {e}")))?;

    let addr = req.aggregator.as_str();
    let connect_err = |detail: String| EnrollError::Connect {
        addr: addr.to_owned(),
        detail,
    };
    let server_name = req.server_name.as_deref().or(a.server_name.as_deref());
    let stream = net::connect(addr, server_name, Arc::new(client), TIMEOUT, false)
        .await
        .map_err(|e| {
            connect_err(match e {
                ConnectError::Address => "expected HOST:PORT".into(),
                ConnectError::ServerName { name, detail } => {
                    format!("server name {name:?}: {detail}")
                }
                ConnectError::TcpTimeout => "timed out".into(),
                ConnectError::Tcp(e) => e.to_string(),
                ConnectError::TlsTimeout => "TLS handshake timed out".into(),
                ConnectError::Tls(e) => format!("TLS: {e}"),
            })
        })?;
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES);
    let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES);
    writer
        .write(&Message::Enroll(Enroll {
            protocol: PROTOCOL_VERSION,
            token: req.token.trim().to_owned(),
            csr_der,
        }))
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let reply = timeout(TIMEOUT, reader.read())
        .await
        .map_err(|_| connect_err("no answer".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let (cert_pem, ca_pem) = match reply {
        Some(Message::Certificate(CertificateReply::Issued { cert_pem, ca_pem })) => {
            (cert_pem, ca_pem)
        }
        Some(Message::Certificate(CertificateReply::Refused { message })) => {
            return Err(EnrollError::Refused(message));
        }
        Some(Message::Error(e)) => return Err(EnrollError::Refused(e.message)),
        Some(other) => return Err(connect_err(format!("unexpected answer {other:?}"))),
        None => return Err(connect_err("the aggregator closed the connection".into())),
    };

    // What came back must fit together: the key made here, the host asked for, and a CA
    // bundle holding the pinned CA.
    let pinned = pin
        .certificate()
        .ok_or_else(|| connect_err("the pinned CA was not seen".into()))?;
    let bundle =
        tls::parse_certs(ca_pem.as_bytes(), "CA bundle").map_err(|e| connect_err(e.to_string()))?;
    if !bundle.contains(&pinned) {
        return Err(connect_err(
            "the CA bundle sent does not hold the pinned CA".into(),
        ));
    }
    tls::client_config(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes())
        .map_err(|e| connect_err(format!("the certificate sent is unusable: {e}")))?;
    let leaf = tls::parse_certs(cert_pem.as_bytes(), "certificate")
        .map_err(|e| connect_err(e.to_string()))?;
    let certified = tls::cert_host_id(&leaf[0]).map_err(|e| connect_err(e.to_string()))?;
    if certified != host {
        return Err(connect_err(format!(
            "the certificate sent is for {certified}, not {host}"
        )));
    }

    // The agent's user must read the key: it gets the owner of the state directory.
    let owner = std::fs::metadata(&config.state_dir).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    write(&a.ca, ca_pem.as_bytes(), 0o644, None)?;
    write(&a.key, key_pem.as_bytes(), 0o600, owner)?;
    write(&a.cert, cert_pem.as_bytes(), 0o644, None)?;
    Ok(host)
}

/// Writes `contents` to `path` through a synced temporary file renamed over it.
fn write(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), EnrollError> {
    let err = |source| EnrollError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = super::certs::write_new(path, contents, mode, owner).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
