//! The agent's identity: which certificate it presents (`certs`), the key and certificate
//! request it makes (`csr`), and its first certificate (`enroll`). Knows nothing of shipping:
//! the shipper asks it for the certificate in force and hands it renewed ones.

pub mod certs;
pub mod csr;
pub mod enroll;

use std::path::Path;
use std::time::Duration;

use nines_common::HostId;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::AgentError;
use certs::Credentials;

/// TLS client configuration and host id of the certificate in force
/// ([`certs::load`]).
pub fn load_tls(config: &Config) -> Result<(rustls::ClientConfig, HostId), AgentError> {
    let current = certs::load(config)?;
    Ok(((*current.tls).clone(), current.host))
}

/// How often an agent without its certificate files looks for them again: three `open`s
/// that fail, nothing more.
pub const ENROLL_POLL: Duration = Duration::from_secs(5);

/// The CA, certificate and key files named by the configuration that do not exist (yet).
/// A renewed pair in the state directory stands in for the configured certificate and key.
pub fn missing_tls_files(config: &Config) -> Vec<&Path> {
    let a = &config.aggregator;
    let renewed = certs::renewed_dir(&config.state_dir);
    let have_renewed = renewed.join("agent.pem").exists() && renewed.join("agent.key").exists();
    [&a.ca, &a.cert, &a.key]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !have_renewed)
        .map(|(_, p)| p.as_path())
        .filter(|p| matches!(p.try_exists(), Ok(false)))
        .collect()
}

/// What to do about missing certificate files, in one line: the `ca issue` command to run on
/// the aggregator and where to put its output.
pub fn enroll_hint(config: &Config, missing: &[&Path]) -> String {
    let host = enroll::host_id(config)
        .map(|h| h.to_string())
        .unwrap_or_else(|_| "HOST".to_owned());
    let missing: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
    let a = &config.aggregator;
    format!(
        "no certificates yet ({} missing): on the aggregator run `nines-aggregator ca token \
         --dir /etc/nines/pki --host {host}` and here the `nines-agent enroll` command it \
         prints; or run `nines-aggregator ca issue --dir /etc/nines/pki --host {host}` there \
         and copy ca.pem, agents/{host}.pem and agents/{host}.key to {}, {} and {} here (the \
         key readable by this agent's user only)",
        missing.join(", "),
        a.ca.display(),
        a.cert.display(),
        a.key.display(),
    )
}

/// Loads the TLS material, waiting while certificate files are missing, as on a freshly
/// installed host: one line says how to enroll, then the files are looked for every
/// [`ENROLL_POLL`]. `None` if `shutdown` turned true meanwhile. Files that exist but are
/// unusable are an error at once.
pub async fn wait_for_tls(
    config: &Config,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Credentials>, AgentError> {
    let mut waited = false;
    loop {
        let missing = missing_tls_files(config);
        if missing.is_empty() {
            if waited {
                tracing::info!("certificates found");
            }
            return Credentials::load(config).map(Some);
        }
        if !waited {
            tracing::warn!(
                "{}; waiting for them (looking again every {} s)",
                enroll_hint(config, &missing),
                ENROLL_POLL.as_secs()
            );
            waited = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(ENROLL_POLL) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(None),
        }
    }
}
