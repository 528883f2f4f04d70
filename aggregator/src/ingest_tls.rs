//! The ingest port's TLS configuration: the server certificate, its key and the CA bundle,
//! re-read on SIGHUP or when one of the files changes. New connections get the new
//! configuration; open ones keep theirs, so no agent is dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio_rustls::TlsAcceptor;

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
}

/// Builds a server configuration from the CA bundle, certificate and key files.
pub fn build(ca: &Path, cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    nines_common::tls::server_config(&read(ca)?, &read(cert)?, &read(key)?)
        .map_err(|e| format!("ingest TLS: {e}"))
}

impl IngestTls {
    /// Loads the files; an unusable one is an error naming it.
    pub fn load(ca: PathBuf, cert: PathBuf, key: PathBuf) -> Result<Self, String> {
        let files = [ca, cert, key];
        let stamps = files.clone().map(|f| stamp(&f));
        let config = build(&files[0], &files[1], &files[2])?;
        Ok(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        })
    }

    /// An acceptor with the configuration in force.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Re-reads the files. A bad file keeps the configuration in force and says why.
    pub fn reload(&self) -> Result<(), String> {
        let stamps = self.files.clone().map(|f| stamp(&f));
        let config = build(&self.files[0], &self.files[1], &self.files[2])?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        tracing::info!(
            cert = %self.files[1].display(),
            ca = %self.files[0].display(),
            "ingest certificate and CA bundle reloaded"
        );
        Ok(())
    }

    /// Re-reads the files if one changed since the last (successful or failed) look.
    /// `Ok(true)` if a new configuration is in force.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = self.files.clone().map(|f| stamp(&f));
        {
            let mut seen = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
            // Half-written files are retried on the next change, not every tick.
            *seen = now;
        }
        self.reload().map(|()| true)
    }
}
