//! The ingest port's TLS configuration: the server certificate, its key and the CA bundle,
//! re-read on SIGHUP or when one of the files changes. New connections get the new
//! configuration; open ones keep theirs, so no agent is dropped. The client certificate
//! verifier also consults the revocation list in force, so a revoked certificate fails the
//! handshake (a `certificate_revoked` alert).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use std::sync::atomic::Ordering;

use nines_common::tls::ClientCertCheck;
use tokio_rustls::TlsAcceptor;

use crate::ingest::Connections;
use crate::util::sync;

/// What identifies a file's version: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The ingest TLS configuration in force, and the files it came from.
#[derive(Debug)]
pub struct IngestTls {
    files: [PathBuf; 3],
    current: RwLock<Arc<rustls::ServerConfig>>,
    stamps: Mutex<[Stamp; 3]>,
    revoked: Arc<Revoked>,
}

/// The handshake's revocation check: asks the connections' revocation list (the one that
/// also disconnects open connections), once [`IngestTls::check_revocations_with`] named it.
#[derive(Debug, Default)]
struct Revoked(RwLock<Option<Arc<Connections>>>);

impl ClientCertCheck for Revoked {
    fn allowed(&self, der: &[u8]) -> bool {
        let Some(connections) = sync::read(&self.0).clone() else {
            return true;
        };
        // A certificate without a valid host id is refused after the handshake, with a reason.
        let Ok(host) =
            nines_common::tls::cert_host_id(&rustls_pki_types::CertificateDer::from(der))
        else {
            return true;
        };
        let serial = crate::pki::revoke::serial_of(der).unwrap_or_default();
        if connections.is_revoked(host.as_str(), &serial) {
            connections.refused.revoked.fetch_add(1, Ordering::Relaxed);
            if let Some(left_out) = connections.log_limit.allow(std::time::Instant::now()) {
                tracing::warn!(%host, serial, left_out, "revoked certificate refused at the TLS handshake");
            }
            return false;
        }
        true
    }
}

/// Why the ingest port's certificate, key or CA bundle is unusable.
#[derive(Debug, thiserror::Error)]
pub enum IngestTlsError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// rustls refused what the files hold.
    #[error("ingest TLS: {0}")]
    Invalid(#[from] nines_common::tls::TlsError),
}

/// Builds a server configuration from the CA bundle, certificate and key files.
pub fn build(ca: &Path, cert: &Path, key: &Path) -> Result<rustls::ServerConfig, IngestTlsError> {
    build_checked(ca, cert, key, None)
}

fn build_checked(
    ca: &Path,
    cert: &Path,
    key: &Path,
    check: Option<Arc<dyn ClientCertCheck>>,
) -> Result<rustls::ServerConfig, IngestTlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| IngestTlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    Ok(nines_common::tls::server_config_checked(
        &read(ca)?,
        &read(cert)?,
        &read(key)?,
        check,
    )?)
}

impl IngestTls {
    /// Loads the files; an unusable one is an error naming it.
    pub fn load(ca: PathBuf, cert: PathBuf, key: PathBuf) -> Result<Self, IngestTlsError> {
        let files = [ca, cert, key];
        let stamps = files.clone().map(|f| stamp(&f));
        let revoked = Arc::new(Revoked::default());
        let check: Arc<dyn ClientCertCheck> = revoked.clone();
        let config = build_checked(&files[0], &files[1], &files[2], Some(check))?;
        Ok(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
            revoked,
        })
    }

    /// From now on, handshakes of certificates `connections` holds revoked fail.
    pub fn check_revocations_with(&self, connections: Arc<Connections>) {
        *sync::write(&self.revoked.0) = Some(connections);
    }

    /// An acceptor with the configuration in force.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(sync::read(&self.current).clone())
    }

    /// Re-reads the files. A bad file keeps the configuration in force and says why.
    pub fn reload(&self) -> Result<(), IngestTlsError> {
        let stamps = self.files.clone().map(|f| stamp(&f));
        let check: Arc<dyn ClientCertCheck> = self.revoked.clone();
        let config = build_checked(&self.files[0], &self.files[1], &self.files[2], Some(check))?;
        *sync::write(&self.current) = Arc::new(config);
        *sync::lock(&self.stamps) = stamps;
        tracing::info!(
            cert = %self.files[1].display(),
            ca = %self.files[0].display(),
            "ingest certificate and CA bundle reloaded"
        );
        Ok(())
    }

    /// Re-reads the files if one changed since the last (successful or failed) look.
    /// `Ok(true)` if a new configuration is in force.
    pub fn reload_if_changed(&self) -> Result<bool, IngestTlsError> {
        let now = self.files.clone().map(|f| stamp(&f));
        {
            let mut seen = sync::lock(&self.stamps);
            if *seen == now {
                return Ok(false);
            }
            // Half-written files are retried on the next change, not every tick.
            *seen = now;
        }
        self.reload().map(|()| true)
    }
}
