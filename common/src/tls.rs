//! rustls configurations for the ingest port: TLS 1.3 only, the ring provider, ALPN `nines/1`,
//! client certificates required and verified against the nines CA.
//!
//! Functions take PEM bytes; reading files is the caller's business.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

/// Server side of the ingest port: requires a client certificate signed by `ca_pem`.
pub fn server_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider.clone())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            parse_certs(cert_pem, "server certificate")?,
            parse_key(key_pem, "server key")?,
        )
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

/// The host a certificate speaks for: its subject common name, which must be a valid
/// [`HostId`].
pub fn cert_host_id(cert: &CertificateDer<'_>) -> Result<HostId, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::Identity(e.to_string()))?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .ok_or_else(|| TlsError::Identity("no common name".into()))?
        .as_str()
        .map_err(|e| TlsError::Identity(e.to_string()))?;
    HostId::new(cn).map_err(|e| TlsError::Identity(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    #[test]
    fn host_id_comes_from_the_common_name() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["web-1".into()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "web-1");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(cert_host_id(cert.der()).unwrap().as_str(), "web-1");

        let mut params = CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "not a host");
        let cert = params.self_signed(&key).unwrap();
        assert!(cert_host_id(cert.der()).is_err());
    }

    #[test]
    fn configs_build_and_refuse_garbage() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(vec![]).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca = ca_cert;
        let (ca_pem, cert_pem, key_pem) = (ca.pem(), leaf.pem(), key.serialize_pem());
        let server =
            server_config(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
        assert!(client_config(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes()).is_ok());
        assert!(matches!(
            server_config(b"nothing", cert_pem.as_bytes(), key_pem.as_bytes()),
            Err(TlsError::NoCertificate { .. })
        ));
        let other_key = KeyPair::generate().unwrap().serialize_pem();
        assert!(
            server_config(ca_pem.as_bytes(), cert_pem.as_bytes(), other_key.as_bytes()).is_err(),
            "a key that does not match the certificate is refused"
        );
    }
}
