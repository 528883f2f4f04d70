//! rustls configurations for the ingest port: TLS 1.3 only, the ring provider, ALPN `nines/1`,
//! client certificates verified against the nines CA. A client without a certificate completes
//! the handshake but may only enroll (docs/protocol.md); one with a bad certificate does not.
//!
//! Functions take PEM bytes; reading files is the caller's business.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::model::HostId;
use crate::proto::ALPN;

/// Why a TLS configuration could not be built or a certificate not understood.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM text held no certificate.
    #[error("no certificate found in {what}")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// PEM text could not be parsed.
    #[error("cannot read {what}: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Parser message.
        detail: String,
    },
    /// rustls refused the material (key does not match certificate, bad CA, ...).
    #[error("TLS configuration: {0}")]
    Rustls(String),
    /// The certificate names no usable host identity.
    #[error("certificate has no valid host identity: {0}")]
    Identity(String),
}

/// The crypto provider nines uses everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM document.
pub fn parse_certs(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM document.
pub fn parse_key(pem: &[u8], what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what,
        detail: e.to_string(),
    })
}

fn roots(ca_pem: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem, "CA bundle")? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Rustls(format!("CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn rustls_err(e: rustls::Error) -> TlsError {
    TlsError::Rustls(e.to_string())
}

/// Server side of the ingest port: verifies client certificates against `ca_pem`. A client
/// may also come without one (to enroll). The chain sent to clients is the server certificate
/// followed by the CA certificates, so that an enrolling agent can pin the CA by fingerprint.
pub fn server_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ServerConfig, TlsError> {
    server_config_checked(ca_pem, cert_pem, key_pem, None)
}

/// Decides, during the TLS handshake, whether a client certificate that chains to the CA
/// and is within its validity is still allowed in (the aggregator's revocation list).
pub trait ClientCertCheck: std::fmt::Debug + Send + Sync {
    /// `false` refuses the handshake with a `certificate_revoked` alert. `end_entity` is the
    /// client's DER certificate, already verified against the CA.
    fn allowed(&self, end_entity: &[u8]) -> bool;
}

/// A client certificate verifier that asks a [`ClientCertCheck`] after the CA's verifier.
#[derive(Debug)]
struct Checked {
    inner: Arc<dyn ClientCertVerifier>,
    check: Arc<dyn ClientCertCheck>,
}

impl ClientCertVerifier for Checked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.check.allowed(end_entity.as_ref()) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// [`server_config`] whose client certificate verifier also asks `check`, if given.
pub fn server_config_checked(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    check: Option<Arc<dyn ClientCertCheck>>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
    if let Some(check) = check {
        verifier = Arc::new(Checked {
            inner: verifier,
            check,
        });
    }
    let mut chain = parse_certs(cert_pem, "server certificate")?;
    for ca in parse_certs(ca_pem, "CA bundle")? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, parse_key(key_pem, "server key")?)
        .map_err(rustls_err)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Agent side: trusts only `ca_pem` and presents the agent certificate.
pub fn client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(
            parse_certs(cert_pem, "agent certificate")?,
            parse_key(key_pem, "agent key")?,
        )
        .map_err(rustls_err)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The SHA-256 fingerprint of a DER certificate, lower-case hex without separators.
pub fn fingerprint(cert: &[u8]) -> String {
    crate::util::hex::encode(ring::digest::digest(&ring::digest::SHA256, cert).as_ref())
}

/// A fingerprint as people write it (`AB:CD:..`, `sha256:abcd..`, any case) in the form
/// [`fingerprint`] returns, or `None` if it is not 32 bytes of hex.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// A client configuration for enrolling: no client certificate, and the server's chain must
/// lead to the CA certificate with `fingerprint` (which the server sends in its chain). The
/// returned [`PinnedCa`] holds that CA certificate once a handshake succeeded.
pub fn pinned_client_config(fingerprint: &str) -> Result<(ClientConfig, Arc<PinnedCa>), TlsError> {
    let pin = Arc::new(PinnedCa {
        fingerprint: normalize_fingerprint(fingerprint).ok_or_else(|| {
            TlsError::Identity(format!(
                "{fingerprint:?} is not a SHA-256 fingerprint (64 hex digits)"
            ))
        })?,
        provider: provider(),
        found: std::sync::Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .dangerous()
        .with_custom_certificate_verifier(pin.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok((config, pin))
}

/// Verifies a server against a CA known only by its fingerprint: the CA certificate must be
/// in the chain the server sends, and the server certificate must chain to it and carry the
/// dialled name, as with any other root.
#[derive(Debug)]
pub struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
    found: std::sync::Mutex<Option<CertificateDer<'static>>>,
}

impl PinnedCa {
    /// The pinned CA certificate, once a server presented it.
    pub fn certificate(&self) -> Option<CertificateDer<'static>> {
        crate::util::sync::lock(&self.found).clone()
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c.as_ref()) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the server's chain holds no CA certificate with fingerprint {}",
                    self.fingerprint
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified = verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        *crate::util::sync::lock(&self.found) = Some(ca.clone().into_owned());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// When a DER certificate becomes valid and stops being valid, in seconds since the Unix
/// epoch.
pub fn cert_validity(cert: &[u8]) -> Option<(i64, i64)> {
    der::validity(cert)
}

/// The host a certificate speaks for: its subject common name, which must be a valid
/// [`HostId`].
pub fn cert_host_id(cert: &CertificateDer<'_>) -> Result<HostId, TlsError> {
    let cn = der::subject_common_name(cert.as_ref())
        .ok_or_else(|| TlsError::Identity("no readable subject common name".into()))?;
    HostId::new(cn).map_err(|e| TlsError::Identity(e.to_string()))
}

mod der;

#[cfg(test)]
mod tests;
