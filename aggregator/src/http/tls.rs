//! HTTPS (and optionally mTLS) for the HTTP API: the rustls configuration built from the `[api]`
//! files, swapped in place on reload. `api_serve` runs the accept loop and the handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// The files `[api]` serves HTTPS with, paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Client CA bundle (PEM), when clients must present a certificate.
    pub client_ca: Option<PathBuf>,
}

/// Why the API's TLS material is unusable. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ApiTlsError {
    /// A file could not be read.
    #[error("[api] {key} {path}: {source}")]
    Read {
        /// The `[api]` key that names it.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file holds no usable PEM, or rustls refused what it holds.
    #[error("[api] {key} {path}: {message}")]
    Invalid {
        /// The `[api]` key that names it.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, ApiTlsError> {
    std::fs::read(path).map_err(|source| ApiTlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn invalid<'a>(key: &'static str, path: &'a Path) -> impl Fn(String) -> ApiTlsError + 'a {
    move |message| ApiTlsError::Invalid {
        key,
        path: path.to_owned(),
        message,
    }
}

/// Reads the files and builds the API's server configuration: TLS 1.2 and 1.3 (browsers,
/// curl and Prometheus all speak them), the ring provider, ALPN `http/1.1` (the only protocol
/// the API serves), and client certificates required when `client_ca` is set.
pub fn server_config(files: &ApiTlsFiles) -> Result<ServerConfig, ApiTlsError> {
    use nines_common::tls::{parse_certs, parse_key};
    let provider = nines_common::tls::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid("tls_cert", &files.cert)(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let bad = invalid("client_ca", path);
            let mut roots = rustls::RootCertStore::empty();
            for cert in parse_certs(&read("client_ca", path)?, "client CA bundle")
                .map_err(|e| bad(e.to_string()))?
            {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certs = parse_certs(&read("tls_cert", &files.cert)?, "certificate")
        .map_err(|e| invalid("tls_cert", &files.cert)(e.to_string()))?;
    let key = parse_key(&read("tls_key", &files.key)?, "private key")
        .map_err(|e| invalid("tls_key", &files.key)(e.to_string()))?;
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        invalid("tls_key", &files.key)(format!(
            "does not go with tls_cert {}: {e}",
            files.cert.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The API's TLS configuration in force. Each new connection takes the current one, so a
/// reload reaches new connections while open ones keep the configuration they began with.
#[derive(Debug)]
pub struct ApiTls {
    files: ApiTlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ApiTls {
    /// Loads the files.
    pub fn load(files: ApiTlsFiles) -> Result<Self, ApiTlsError> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Re-reads the files. A bad file keeps the configuration in force and says why.
    pub fn reload(&self) -> Result<(), ApiTlsError> {
        let config = Arc::new(server_config(&self.files)?);
        *crate::util::sync::write(&self.current) = config;
        Ok(())
    }

    /// An acceptor with the configuration in force.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(crate::util::sync::read(&self.current).clone())
    }
}
