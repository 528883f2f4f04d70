//! Certificates for agents over the ingest port: enrollment with a one-time token, renewal
//! over an agent's own mTLS connection (docs/security.md).
//!
//! `nines-aggregator ca token` appends `SHA256(token) host expires` to the token file (`tokens.txt`
//! beside the CA); the token itself is printed once and stored nowhere. The aggregator reads the
//! file when an agent enrolls and records each token it accepted in `used-tokens.txt` beside its
//! store, so a token works once even though the token file is not the aggregator's to write.
//! Certificates are signed with the CA key, read from disk for each request so that a replaced
//! CA is used at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nines_common::HostId;
use nines_common::proto::CertificateReply;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateSigningRequestDer;

use crate::pki::PkiError;

/// Where enrollment and renewal find their files, and how long certificates live.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollConfig {
    /// The CA bundle sent to agents (the `[ingest] ca` file).
    pub ca_cert: PathBuf,
    /// The CA private key that signs agent certificates.
    pub ca_key: PathBuf,
    /// The token file `ca token` appends to.
    pub tokens: PathBuf,
    /// Where accepted tokens are recorded.
    pub used_tokens: PathBuf,
    /// Life of an issued agent certificate, days.
    pub cert_days: u32,
}

/// Issues agent certificates for enrollments and renewals.
#[derive(Debug)]
pub struct Enroller {
    config: EnrollConfig,
    /// Serialises token checks with their recording, so a token cannot be used twice at once.
    used: Mutex<()>,
}

/// The SHA-256 of a token, lower-case hex: what the token file holds.
pub fn token_hash(token: &str) -> String {
    nines_common::tls::fingerprint(token.trim().as_bytes())
}

/// A new random token: `nines1.` and 43 characters of base64url (256 bits).
pub fn new_token() -> Result<String, crate::util::random::RandomError> {
    let bytes = crate::util::random::random_bytes::<32>()?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from("nines1.");
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    Ok(out)
}

/// Appends a token for `host`, valid until `expires` (Unix seconds), to `path`: created mode
/// 0640 in the group of `group_of` (the CA key, which the aggregator's group can read).
pub fn add_token(
    path: &Path,
    group_of: &Path,
    token: &str,
    host: &HostId,
    expires: i64,
) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let existed = path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(io)?;
    if !existed {
        if let Ok(meta) = std::fs::metadata(group_of) {
            use std::os::unix::fs::MetadataExt;
            // Best effort: only root may give the file away.
            let _ = std::os::unix::fs::chown(path, None, Some(meta.gid()));
        }
        writeln!(
            f,
            "# nines enrollment tokens: SHA-256 of the token, host, expiry (Unix seconds)"
        )
        .map_err(io)?;
    }
    writeln!(f, "{} {host} {expires}", token_hash(token)).map_err(io)?;
    f.sync_all().map_err(io)
}

fn unix_now() -> i64 {
    nines_common::model::now_ms() / 1000
}

/// Why an enrollment or renewal was refused; the message goes back to the agent.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The CSR is over 16 KiB.
    #[error("certificate signing request larger than 16 KiB")]
    CsrTooLarge,
    /// The CSR does not parse or its signature is wrong.
    #[error("unreadable certificate signing request: {0}")]
    Csr(#[source] rcgen::Error),
    /// The CSR has no subject CN.
    #[error("the certificate signing request names no host (subject CN)")]
    NoHost,
    /// No such token in the tokens file.
    #[error("unknown enrollment token (make one with `nines-aggregator ca token`)")]
    UnknownToken,
    /// The token was spent already.
    #[error("this enrollment token was used already; make a new one")]
    TokenUsed,
    /// The token's time is up.
    #[error("this enrollment token has expired; make a new one")]
    TokenExpired,
    /// The token was made for another host.
    #[error(
        "this token is for host {host:?}, but the agent asks for {asked:?} (set `host` in the \
         agent's configuration or make a token for {asked:?})"
    )]
    WrongHost {
        /// The host the token enrolls.
        host: String,
        /// The host the agent asked for.
        asked: String,
    },
    /// The tokens file names a host that is not a valid host id.
    #[error(transparent)]
    Host(#[from] nines_common::model::InvalidHostId),
    /// The used-tokens file could not be written (logged with the cause).
    #[error("the aggregator cannot record the token as used; see its log")]
    CannotRecord,
    /// The CA files could not be read or used (logged with the cause).
    #[error("the aggregator cannot issue certificates ({0}); see its log")]
    CannotIssue(&'static str),
}

impl Enroller {
    /// An enroller over `config`'s files. Nothing is read until a request comes.
    pub fn new(config: EnrollConfig) -> Self {
        Self {
            config,
            used: Mutex::new(()),
        }
    }

    /// Whether certificates can be signed now: the CA certificate and key are readable and
    /// fit together. The error names the file and what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let key = KeyPair::from_pem(&read(&self.config.ca_key)?)
            .map_err(|e| format!("{}: {e}", self.config.ca_key.display()))?;
        let ca = read(&self.config.ca_cert)?;
        let certs = nines_common::tls::parse_certs(ca.as_bytes(), "CA bundle")
            .map_err(|e| format!("{}: {e}", self.config.ca_cert.display()))?;
        let spki = x509_parser::parse_x509_certificate(certs[0].as_ref())
            .map_err(|e| format!("{}: {e}", self.config.ca_cert.display()))?
            .1
            .public_key()
            .subject_public_key
            .data
            .to_vec();
        if spki != key.public_key_raw() {
            return Err(format!(
                "{} is not the key of the first certificate in {}",
                self.config.ca_key.display(),
                self.config.ca_cert.display()
            ));
        }
        Ok(())
    }

    /// Checks and spends `token`, then signs `csr_der` for the host the token was made for.
    pub fn enroll(&self, token: &str, csr_der: &[u8]) -> CertificateReply {
        match self.try_enroll(token, csr_der) {
            Ok(r) => r,
            Err(e) => CertificateReply::Refused {
                message: e.to_string(),
            },
        }
    }

    fn try_enroll(&self, token: &str, csr_der: &[u8]) -> Result<CertificateReply, EnrollError> {
        let csr = parse_csr(csr_der)?;
        let asked = csr_common_name(&csr)?;
        let hash = token_hash(token);
        let _guard = crate::util::sync::lock(&self.used);
        let text = std::fs::read_to_string(&self.config.tokens).unwrap_or_default();
        let Some((host, expires)) = text.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(hash.as_str())).then(|| {
                let host = f.next().unwrap_or_default().to_owned();
                let expires = f.next().and_then(|e| e.parse::<i64>().ok()).unwrap_or(0);
                (host, expires)
            })
        }) else {
            return Err(EnrollError::UnknownToken);
        };
        let used = std::fs::read_to_string(&self.config.used_tokens).unwrap_or_default();
        if used
            .lines()
            .any(|l| l.split_whitespace().next() == Some(hash.as_str()))
        {
            return Err(EnrollError::TokenUsed);
        }
        if expires <= unix_now() {
            return Err(EnrollError::TokenExpired);
        }
        if asked != host {
            return Err(EnrollError::WrongHost { host, asked });
        }
        let host = HostId::new(&host)?;
        // Spent before signing: a failure after this costs a token, never lets one be reused.
        self.record_used(&hash, &host)?;
        self.issue(&host, csr)
    }

    /// Signs `csr_der` for `host`, whose current certificate authenticated the connection.
    pub fn renew(&self, host: &HostId, csr_der: &[u8]) -> CertificateReply {
        let issued = parse_csr(csr_der).and_then(|csr| self.issue(host, csr));
        match issued {
            Ok(r) => r,
            Err(e) => CertificateReply::Refused {
                message: e.to_string(),
            },
        }
    }

    fn record_used(&self, hash: &str, host: &HostId) -> Result<(), EnrollError> {
        let path = &self.config.used_tokens;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?;
            writeln!(f, "{hash} {host} {}", unix_now())?;
            f.sync_all()
        };
        write().map_err(|e| {
            tracing::error!(file = %path.display(), "cannot record a used enrollment token: {e}");
            EnrollError::CannotRecord
        })
    }

    fn issue(
        &self,
        host: &HostId,
        csr: CertificateSigningRequestParams,
    ) -> Result<CertificateReply, EnrollError> {
        let internal = |what: &'static str, e: &dyn std::fmt::Display| {
            tracing::error!("issuing a certificate for {host}: {what}: {e}");
            EnrollError::CannotIssue(what)
        };
        let ca_pem = std::fs::read_to_string(&self.config.ca_cert)
            .map_err(|e| internal("reading the CA certificate", &e))?;
        let key_pem = std::fs::read_to_string(&self.config.ca_key)
            .map_err(|e| internal("reading the CA key", &e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| internal("the CA key", &e))?;
        // The first certificate of the bundle is the signing CA.
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
            .map_err(|e| internal("the CA certificate", &e))?;
        let cert = agent_params(host, self.config.cert_days)
            .and_then(|p| p.signed_by(&csr.public_key, &issuer))
            .map_err(|e| internal("signing", &e))?;
        tracing::info!(%host, days = self.config.cert_days, "agent certificate issued");
        Ok(CertificateReply::Issued {
            cert_pem: cert.pem(),
            ca_pem,
        })
    }
}

/// Parses a DER CSR and checks its signature.
fn parse_csr(der: &[u8]) -> Result<CertificateSigningRequestParams, EnrollError> {
    if der.len() > 16 * 1024 {
        return Err(EnrollError::CsrTooLarge);
    }
    CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
        .map_err(EnrollError::Csr)
}

fn csr_common_name(csr: &CertificateSigningRequestParams) -> Result<String, EnrollError> {
    let name = match csr.params.distinguished_name.get(&DnType::CommonName) {
        Some(rcgen::DnValue::Utf8String(s)) => s.clone(),
        Some(rcgen::DnValue::PrintableString(p)) => p.as_str().to_owned(),
        Some(rcgen::DnValue::Ia5String(p)) => p.as_str().to_owned(),
        _ => String::new(),
    };
    if name.is_empty() {
        Err(EnrollError::NoHost)
    } else {
        Ok(name)
    }
}

/// The parameters of an agent certificate for `host`: CN and DNS name the host id, client
/// authentication only, `days` long (less five minutes' tolerance for skewed clocks).
pub fn agent_params(host: &HostId, days: u32) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, host.as_str());
    if let Ok(name) = host.as_str().try_into() {
        params.subject_alt_names = vec![SanType::DnsName(name)];
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // No randomness for the serial: the error ring itself gives for that.
    let serial = crate::pki::serial().map_err(|_| rcgen::Error::RingUnspecified)?;
    params.serial_number = Some(serial);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(params)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("nines1.") && a.len() == 7 + 43, "{a}");
        assert!(
            a[7..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(token_hash(&a), token_hash(&format!(" {a}\n")));
    }

    #[test]
    fn check_names_a_missing_or_foreign_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::PkiDir(dir.path().to_owned());
        crate::pki::init(&pki, &["localhost".into()], "localhost").unwrap();
        let config = EnrollConfig {
            ca_cert: pki.ca_cert(),
            ca_key: pki.ca_key(),
            tokens: dir.path().join("tokens.txt"),
            used_tokens: dir.path().join("used-tokens.txt"),
            cert_days: 30,
        };
        Enroller::new(config.clone()).check().unwrap();
        // The server key is a key, but not the CA's.
        let foreign = Enroller::new(EnrollConfig {
            ca_key: pki.server_key(),
            ..config.clone()
        });
        let e = foreign.check().unwrap_err();
        assert!(e.contains("is not the key of"), "{e}");
        let missing = Enroller::new(EnrollConfig {
            ca_key: dir.path().join("nope.key"),
            ..config
        });
        let e = missing.check().unwrap_err();
        assert!(e.contains("cannot read") && e.contains("nope.key"), "{e}");
        // Signing without the key tells the agent so, without the path or the OS error.
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "web-1");
        let csr = p.serialize_request(&key).unwrap();
        match missing.renew(&HostId::new("web-1").unwrap(), csr.der()) {
            CertificateReply::Refused { message } => {
                assert!(message.contains("cannot issue"), "{message}");
                assert!(!message.contains("nope.key"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
