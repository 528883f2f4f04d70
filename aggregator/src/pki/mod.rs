//! The nines certificate authority: `ca init` creates a CA and the aggregator's server
//! certificate, `ca issue` an agent certificate whose subject common name is the host id.
//!
//! Layout of a PKI directory: `ca.pem`, `ca.key`, `server.pem`, `server.key`,
//! `agents/<host>.pem`, `agents/<host>.key`. Private keys are created with mode 0600.

pub mod enroll;
pub mod revoke;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nines_common::HostId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// No randomness for a serial number.
    #[error(transparent)]
    Random(#[from] crate::util::random::RandomError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Refusing to overwrite existing material.
    #[error("{0} already exists; refusing to overwrite it (remove it first to start over)")]
    Exists(PathBuf),
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert_err(e: rcgen::Error) -> PkiError {
    PkiError::Cert(e.to_string())
}

/// Paths of a PKI directory.
#[derive(Debug, Clone)]
pub struct PkiDir(pub PathBuf);

impl PkiDir {
    /// CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    /// CA private key.
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    /// Server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.0.join("server.pem")
    }
    /// Server private key.
    pub fn server_key(&self) -> PathBuf {
        self.0.join("server.key")
    }
    /// An agent's certificate.
    pub fn agent_cert(&self, host: &HostId) -> PathBuf {
        self.0.join("agents").join(format!("{host}.pem"))
    }
    /// An agent's private key.
    pub fn agent_key(&self, host: &HostId) -> PathBuf {
        self.0.join("agents").join(format!("{host}.key"))
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists(path.to_owned())
            } else {
                io(path)(e)
            }
        })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(path))
}

/// A random positive 128-bit serial number.
pub(crate) fn serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = crate::util::random::random_bytes::<16>()?;
    // Positive, non-zero first byte keeps the DER integer at 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // Tolerate a little clock skew between machines.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
}

fn san(name: &str) -> Result<SanType, PkiError> {
    Ok(match name.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.try_into().map_err(cert_err)?),
    })
}

/// Creates a CA (10 years) and a server certificate (825 days) for `sans`.
pub fn init(dir: &PkiDir, sans: &[String], server_cn: &str) -> Result<(), PkiError> {
    for p in [
        dir.ca_cert(),
        dir.ca_key(),
        dir.server_cert(),
        dir.server_key(),
    ] {
        if p.exists() {
            return Err(PkiError::Exists(p));
        }
    }
    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "nines CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "nines");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.serial_number = Some(serial()?);
    validity(&mut ca, 3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_err)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, server_cn);
    params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(serial()?);
    validity(&mut params, 825);
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;

    write_file(&dir.ca_key(), &ca_key_pem, 0o600)?;
    write_file(&dir.ca_cert(), &ca_cert.pem(), 0o644)?;
    write_file(&dir.server_key(), &key.serialize_pem(), 0o600)?;
    write_file(&dir.server_cert(), &cert.pem(), 0o644)?;
    Ok(())
}

/// The SHA-256 fingerprint of the CA certificate (the first in `ca.pem`).
pub fn ca_fingerprint(dir: &PkiDir) -> Result<String, PkiError> {
    let pem = std::fs::read(dir.ca_cert()).map_err(io(&dir.ca_cert()))?;
    let certs = nines_common::tls::parse_certs(&pem, "CA certificate")
        .map_err(|e| PkiError::Cert(e.to_string()))?;
    Ok(nines_common::tls::fingerprint(certs[0].as_ref()))
}

fn load_issuer(dir: &PkiDir) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key_pem = std::fs::read_to_string(dir.ca_key()).map_err(io(&dir.ca_key()))?;
    let cert_pem = std::fs::read_to_string(dir.ca_cert()).map_err(io(&dir.ca_cert()))?;
    let key = KeyPair::from_pem(&key_pem).map_err(cert_err)?;
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(cert_err)
}

/// Issues an agent certificate for `host`, valid for `days`. Returns the certificate and key
/// paths.
pub fn issue(dir: &PkiDir, host: &HostId, days: i64) -> Result<(PathBuf, PathBuf), PkiError> {
    let (cert_path, key_path) = (dir.agent_cert(host), dir.agent_key(host));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    let issuer = load_issuer(dir)?;
    let key = KeyPair::generate().map_err(cert_err)?;
    let days = u32::try_from(days.max(1)).unwrap_or(u32::MAX);
    let params = crate::pki::enroll::agent_params(host, days).map_err(cert_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    write_file(&key_path, &key.serialize_pem(), 0o600)?;
    write_file(&cert_path, &cert.pem(), 0o644)?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_and_issue_write_usable_material_with_private_keys_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PkiDir(tmp.path().join("pki"));
        init(&dir, &["localhost".into(), "127.0.0.1".into()], "localhost").unwrap();
        let host = HostId::new("web-1").unwrap();
        let (cert, key) = issue(&dir, &host, 30).unwrap();
        for k in [dir.ca_key(), dir.server_key(), key.clone()] {
            let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", k.display());
        }
        let read = |p: &Path| std::fs::read(p).unwrap();
        let certs = nines_common::tls::parse_certs(&read(&cert), "c").unwrap();
        assert_eq!(nines_common::tls::cert_host_id(&certs[0]).unwrap(), host);
        nines_common::tls::server_config(
            &read(&dir.ca_cert()),
            &read(&dir.server_cert()),
            &read(&dir.server_key()),
        )
        .unwrap();
        nines_common::tls::client_config(&read(&dir.ca_cert()), &read(&cert), &read(&key)).unwrap();
        assert!(matches!(
            init(&dir, &["localhost".into()], "localhost"),
            Err(PkiError::Exists(_))
        ));
        assert!(matches!(issue(&dir, &host, 30), Err(PkiError::Exists(_))));
    }
}
