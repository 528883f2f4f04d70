//! The agent's certificate: which one is in force, when it is due for renewal, and how a
//! renewed one is written and put to use without a restart.
//!
//! The configuration names the first certificate (`[aggregator] ca`, `cert`, `key`, written
//! by hand or by `nines-agent enroll`). Renewed certificates go into `{state_dir}/tls/`
//! (`agent.pem`, `agent.key`, `ca.pem`), which the agent's sandbox may write; of the two
//! pairs, the one valid longest is used. The CA bundles of both places are trusted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use nines_common::{HostId, tls};

use crate::config::Config;
use crate::error::AgentError;

/// A certificate is renewed once this share of its life has passed.
pub const RENEW_AT: f64 = 2.0 / 3.0;

/// After a refused renewal, the agent asks again this much later.
pub const RENEW_RETRY_SECS: i64 = 3600;

/// The certificate in force.
#[derive(Debug, Clone)]
pub struct Current {
    /// TLS client configuration presenting it.
    pub tls: Arc<rustls::ClientConfig>,
    /// The host it names.
    pub host: HostId,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The certificate file.
    pub path: PathBuf,
}

impl Current {
    /// When the certificate is due for renewal, Unix seconds.
    pub fn renew_at(&self) -> i64 {
        let life = (self.not_after - self.not_before).max(0) as f64;
        self.not_before + (life * RENEW_AT) as i64
    }
}

/// The agent's certificate files and the certificate in force.
#[derive(Debug)]
pub struct Credentials {
    config: Config,
    current: RwLock<Current>,
    retry_after: std::sync::atomic::AtomicI64,
    /// A renewal request was sent and not answered yet.
    asked: std::sync::atomic::AtomicBool,
}

/// Where renewed certificates are kept.
pub fn renewed_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("tls")
}

fn read(path: &Path) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(|source| AgentError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

fn validity(cert_pem: &[u8]) -> Result<(i64, i64), AgentError> {
    let leaf = tls::parse_certs(cert_pem, "agent certificate")?;
    tls::cert_validity(leaf[0].as_ref()).ok_or_else(|| {
        AgentError::Tls(tls::TlsError::Identity(
            "unreadable validity in the agent certificate".into(),
        ))
    })
}

/// A renewal interrupted by a crash is finished or undone: with `agent.key.new` still there
/// the old pair is intact and the new files go; with only `agent.pem.new` left, the new key
/// is already in place and its certificate is moved beside it.
fn finish_interrupted(dir: &Path) {
    let (key_new, cert_new) = (dir.join("agent.key.new"), dir.join("agent.pem.new"));
    if key_new.exists() {
        let _ = std::fs::remove_file(&key_new);
        let _ = std::fs::remove_file(&cert_new);
    } else if cert_new.exists() {
        let _ = std::fs::rename(&cert_new, dir.join("agent.pem"));
    }
}

/// Loads the certificate in force: the configured pair or the renewed one, whichever is
/// valid longer. The host it names must be the configured `host`, if one is set.
pub fn load(config: &Config) -> Result<Current, AgentError> {
    let a = &config.aggregator;
    let dir = renewed_dir(&config.state_dir);
    finish_interrupted(&dir);
    let configured = (a.cert.clone(), a.key.clone());
    let renewed = (dir.join("agent.pem"), dir.join("agent.key"));
    let mut pair = configured.clone();
    if renewed.0.exists() && renewed.1.exists() {
        let theirs = read(&renewed.0).and_then(|p| validity(&p));
        let ours = read(&configured.0).and_then(|p| validity(&p));
        match (theirs, ours) {
            (Ok(t), Ok(o)) if t.1 > o.1 => pair = renewed,
            (Ok(_), Err(_)) => pair = renewed,
            _ => {}
        }
    }
    let mut ca = read(&a.ca)?;
    if let Ok(more) = std::fs::read(dir.join("ca.pem")) {
        ca.push(b'\n');
        ca.extend(more);
    }
    let (cert, key) = (read(&pair.0)?, read(&pair.1)?);
    let tls_config = tls::client_config(&ca, &cert, &key)?;
    let leaf = tls::parse_certs(&cert, "agent certificate")?;
    let certified = tls::cert_host_id(&leaf[0])?;
    if let Some(h) = &config.host
        && *h != certified
    {
        return Err(AgentError::HostMismatch {
            configured: h.to_string(),
            certified: certified.to_string(),
        });
    }
    let (not_before, not_after) = validity(&cert)?;
    Ok(Current {
        tls: Arc::new(tls_config),
        host: certified,
        not_before,
        not_after,
        path: pair.0,
    })
}

/// Writes `contents` to `path.new`, synced, with `mode` and, if given, `owner` (uid, gid;
/// only root may give a file away, anyone else already owns what they write). Returns the
/// temporary file, for the caller to rename over `path` when its other files are ready.
pub fn write_new(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    let tmp = PathBuf::from(name);
    // A leftover from an interrupted run may have looser permissions than `mode`.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    if let Some((uid, gid)) = owner {
        let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
    }
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Credentials {
    /// Loads the certificate in force.
    pub fn load(config: &Config) -> Result<Self, AgentError> {
        Ok(Self {
            current: RwLock::new(load(config)?),
            config: config.clone(),
            retry_after: std::sync::atomic::AtomicI64::new(0),
            asked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The certificate in force.
    pub fn current(&self) -> Current {
        nines_common::util::sync::read(&self.current).clone()
    }

    /// When the certificate in force expires, Unix seconds.
    pub fn not_after(&self) -> i64 {
        nines_common::util::sync::read(&self.current).not_after
    }

    /// Whether the certificate should be renewed at `now` (Unix seconds).
    pub fn renewal_due(&self, now: i64) -> bool {
        self.until_renewal(now).is_zero()
    }

    /// How long from `now` (Unix seconds) until the certificate should be renewed: zero if it
    /// is due, never more than a day (so that a changed clock is noticed).
    pub fn until_renewal(&self, now: i64) -> std::time::Duration {
        let at = nines_common::util::sync::read(&self.current)
            .renew_at()
            .max(self.retry_after.load(std::sync::atomic::Ordering::Relaxed));
        std::time::Duration::from_secs(u64::try_from(at - now).unwrap_or(0).min(86_400))
    }

    /// A renewal request is on its way.
    pub fn renewal_asked(&self) {
        self.asked.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The connection ended: if a renewal request was unanswered, it counts as failed (an
    /// aggregator too old to know `Renew` closes the connection on it; asking again at once
    /// would close every connection).
    pub fn connection_ended(&self, now: i64) {
        if self.asked.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "the connection ended before the aggregator answered the renewal request \
                 (an aggregator older than this agent?); asking again in an hour"
            );
            self.renewal_failed(now);
        }
    }

    /// A renewal was refused or failed: ask again in [`RENEW_RETRY_SECS`].
    pub fn renewal_failed(&self, now: i64) {
        self.asked
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.retry_after
            .store(now + RENEW_RETRY_SECS, std::sync::atomic::Ordering::Relaxed);
    }

    /// Checks a renewed certificate against its key, the CA and this host, writes it to the
    /// state directory (key first, each file synced, then renamed) and puts it in force.
    pub fn install(&self, key_pem: &str, cert_pem: &str, ca_pem: &str) -> Result<(), AgentError> {
        // Unusable material (a key that does not fit the certificate, a certificate the CA did
        // not sign) is refused before anything is written.
        tls::client_config(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes())?;
        let leaf = tls::parse_certs(cert_pem.as_bytes(), "renewed certificate")?;
        let host = tls::cert_host_id(&leaf[0])?;
        let current = self.current();
        if host != current.host {
            return Err(AgentError::HostMismatch {
                configured: current.host.to_string(),
                certified: host.to_string(),
            });
        }
        let dir = renewed_dir(&self.config.state_dir);
        let io = |source| AgentError::ReadFile {
            path: dir.clone(),
            source,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            // It holds the renewed key: the agent's user alone may list it.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io)?;
        }
        let (cert_path, key_path, ca_path) = (
            dir.join("agent.pem"),
            dir.join("agent.key"),
            dir.join("ca.pem"),
        );
        let ca_tmp = write_new(&ca_path, ca_pem.as_bytes(), 0o644, None).map_err(io)?;
        std::fs::rename(ca_tmp, &ca_path).map_err(io)?;
        let key_tmp = write_new(&key_path, key_pem.as_bytes(), 0o600, None).map_err(io)?;
        let cert_tmp = write_new(&cert_path, cert_pem.as_bytes(), 0o644, None).map_err(io)?;
        sync_dir(&dir).map_err(io)?;
        std::fs::rename(key_tmp, &key_path).map_err(io)?;
        std::fs::rename(cert_tmp, &cert_path).map_err(io)?;
        sync_dir(&dir).map_err(io)?;
        // Read back the way a restart would, so that what is in force is what is on disk.
        let loaded = load(&self.config)?;
        tracing::info!(
            host = %loaded.host,
            file = %loaded.path.display(),
            not_before = loaded.not_before,
            not_after = loaded.not_after,
            "certificate renewed"
        );
        *nines_common::util::sync::write(&self.current) = loaded;
        self.asked
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "test CA");
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A certificate for `host` valid from `from` to `to` days from now: (cert, key).
    fn leaf(ca: &Ca, host: &str, from: i64, to: i64) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![host.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, host);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(from);
        p.not_after = now + time::Duration::days(to);
        (
            p.signed_by(&key, &ca.issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    fn setup(dir: &Path, ca: &Ca, from: i64, to: i64) -> Config {
        let (cert, key) = leaf(ca, "web-1", from, to);
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
        std::fs::write(dir.join("agent.pem"), cert).unwrap();
        std::fs::write(dir.join("agent.key"), key).unwrap();
        let text = format!(
            "state_dir = \"{}\"\n[aggregator]\naddresses = [\"127.0.0.1:7443\"]\n\
             ca = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n",
            dir.join("state").display()
        );
        Config::parse(&text, &dir.join("agent.toml")).unwrap()
    }

    fn now() -> i64 {
        nines_common::model::now_ms() / 1000
    }

    #[test]
    fn renewal_falls_due_at_two_thirds_and_a_failure_waits_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        // 30 days, 10 gone: due in 10 days.
        let fresh = Credentials::load(&setup(dir.path(), &ca, -10, 20)).unwrap();
        assert!(!fresh.renewal_due(now()));
        let days = fresh.until_renewal(now()).as_secs();
        assert_eq!(days, 86_400, "capped at a day");
        assert!(fresh.renewal_due(now() + 10 * 86_400 + 60));

        let due = Credentials::load(&setup(dir.path(), &ca, -20, 10)).unwrap();
        assert!(due.renewal_due(now()));
        // A connection that ends without asking changes nothing.
        due.connection_ended(now());
        assert!(due.renewal_due(now()));
        // One that ends with the request unanswered (an older aggregator closes on it)
        // waits an hour before asking again.
        due.renewal_asked();
        due.connection_ended(now());
        assert!(!due.renewal_due(now()));
        assert!(due.renewal_due(now() + RENEW_RETRY_SECS));
    }

    #[test]
    fn a_renewed_certificate_is_used_at_once_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let config = setup(dir.path(), &ca, -20, 10);
        let creds = Credentials::load(&config).unwrap();
        let old_end = creds.current().not_after;
        let (cert, key) = leaf(&ca, "web-1", 0, 30);
        creds.install(&key, &cert, &ca.pem).unwrap();
        assert!(creds.current().not_after > old_end + 19 * 86_400);
        assert!(!creds.renewal_due(now()));
        let again = load(&config).unwrap();
        assert_eq!(again.path, renewed_dir(&config.state_dir).join("agent.pem"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(renewed_dir(&config.state_dir).join("agent.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // A certificate for another host, or one that does not fit the key, is not installed.
        let (other, other_key) = leaf(&ca, "db-1", 0, 30);
        assert!(creds.install(&other_key, &other, &ca.pem).is_err());
        let (mismatched, _) = leaf(&ca, "web-1", 0, 30);
        assert!(creds.install(&key, &mismatched, &ca.pem).is_err());
        assert_eq!(load(&config).unwrap().not_after, creds.current().not_after);
    }

    #[test]
    fn an_interrupted_renewal_is_undone_or_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let config = setup(dir.path(), &ca, -20, 10);
        let creds = Credentials::load(&config).unwrap();
        let (cert, key) = leaf(&ca, "web-1", 0, 30);
        creds.install(&key, &cert, &ca.pem).unwrap();
        let tls = renewed_dir(&config.state_dir);

        // Crash before the key was renamed: the half-written pair goes, the old one stays.
        let (next, next_key) = leaf(&ca, "web-1", 0, 40);
        std::fs::write(tls.join("agent.key.new"), &next_key).unwrap();
        std::fs::write(tls.join("agent.pem.new"), &next).unwrap();
        let c = load(&config).unwrap();
        assert!(c.not_after < now() + 31 * 86_400);
        assert!(!tls.join("agent.key.new").exists() && !tls.join("agent.pem.new").exists());

        // Crash after the key was renamed: the certificate follows it.
        std::fs::write(tls.join("agent.key"), &next_key).unwrap();
        std::fs::write(tls.join("agent.pem.new"), &next).unwrap();
        let c = load(&config).unwrap();
        assert!(c.not_after > now() + 39 * 86_400);
    }
}
