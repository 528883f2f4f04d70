//! `nines-aggregator ca`: the certificate authority: init, issue, enrollment tokens,
//! fingerprint, revocation.

use std::path::PathBuf;
use std::process::ExitCode;

use nines_common::HostId;

use super::EXIT_CONFIG;
use crate::pki::{self, PkiDir};

/// `ca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Create a CA and the aggregator's server certificate in DIR.
    Init {
        /// Directory for ca.pem, ca.key, server.pem, server.key.
        #[arg(long)]
        dir: PathBuf,
        /// Names and IP addresses agents use to reach the aggregator (repeatable).
        /// Default: localhost, 127.0.0.1 and this machine's host name.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// Issue an agent certificate for HOST into DIR/agents/HOST.pem and HOST.key.
    Issue {
        /// The PKI directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// Host id: the agent's identity, ASCII letters, digits, '.', '-', '_'.
        #[arg(long)]
        host: String,
        /// Validity in days. Short by default, as enrolled certificates are: a running agent
        /// renews its certificate over its connection once two thirds of it have passed.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Make a one-time enrollment token for HOST and print it with the `nines-agent enroll`
    /// command to run there. Only the token's SHA-256 is stored (DIR/tokens.txt).
    Token {
        /// The PKI directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// Host id the token enrolls; the agent must ask for exactly this one.
        #[arg(long)]
        host: String,
        /// How long the token can be used, e.g. 1h, 30m, 2d (at most 30d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// The ingest address agents dial, for the printed command.
        #[arg(long, default_value = "AGGREGATOR:7443")]
        aggregator: String,
    },
    /// Print the SHA-256 fingerprint of the CA certificate (what `nines-agent enroll
    /// --ca-fingerprint` pins).
    Fingerprint {
        /// The PKI directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke an agent certificate: by host (every certificate for it) or by serial. The
    /// running aggregator disconnects it within seconds and refuses it from then on.
    Revoke {
        /// The PKI directory made by `ca init` (the list is DIR/revoked.txt, beside ca.pem).
        #[arg(long)]
        dir: PathBuf,
        /// Host id whose certificates are revoked.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        host: Option<String>,
        /// Serial number (hex) of one certificate.
        #[arg(long)]
        serial: Option<String>,
    },
}

/// Runs a `ca` subcommand.
pub fn main(cmd: CaCommand) -> ExitCode {
    match cmd {
        CaCommand::Init { dir, sans } => {
            let sans = if sans.is_empty() {
                let mut v = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                    let h = h.trim();
                    if !h.is_empty() && h != "localhost" {
                        v.push(h.to_owned());
                    }
                }
                v
            } else {
                sans
            };
            let dir = PkiDir(dir);
            match pki::init(&dir, &sans, &sans[0]) {
                Ok(()) => {
                    println!(
                        "wrote {}, {}, {}, {} (server names: {})",
                        dir.ca_cert().display(),
                        dir.ca_key().display(),
                        dir.server_cert().display(),
                        dir.server_key().display(),
                        sans.join(", ")
                    );
                    if let Ok(fp) = pki::ca_fingerprint(&dir) {
                        println!("CA fingerprint (SHA-256): {fp}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: ca init: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        CaCommand::Issue { dir, host, days } => {
            let host = match HostId::new(host) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("nines-aggregator: ca issue: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if !(1..=3650).contains(&days) {
                eprintln!("nines-aggregator: ca issue: --days must be 1 to 3650");
                return ExitCode::from(EXIT_CONFIG);
            }
            match pki::issue(&PkiDir(dir), &host, days) {
                Ok((cert, key)) => {
                    println!("wrote {} and {}", cert.display(), key.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: ca issue: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        CaCommand::Token {
            dir,
            host,
            ttl,
            aggregator,
        } => {
            let host = match HostId::new(host) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("nines-aggregator: ca token: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if ttl < std::time::Duration::from_secs(60)
                || ttl > std::time::Duration::from_secs(30 * 86_400)
            {
                eprintln!("nines-aggregator: ca token: --ttl must be from 1m to 30d");
                return ExitCode::from(EXIT_CONFIG);
            }
            let dir = PkiDir(dir);
            let fp = match pki::ca_fingerprint(&dir) {
                Ok(fp) => fp,
                Err(e) => {
                    eprintln!("nines-aggregator: ca token: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let token = match crate::pki::enroll::new_token() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("nines-aggregator: ca token: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let expires = std::time::SystemTime::now() + ttl;
            let unix = expires
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let path = dir.0.join("tokens.txt");
            if let Err(e) = crate::pki::enroll::add_token(&path, &dir.ca_key(), &token, &host, unix)
            {
                eprintln!("nines-aggregator: ca token: {e}");
                return ExitCode::FAILURE;
            }
            println!(
                "token for {host}, usable once until {}:\n{token}\n\non {host}, as root:\n  \
                 nines-agent enroll --aggregator {aggregator} --token {token} --ca-fingerprint {fp}",
                crate::util::time::rfc3339_s(unix.saturating_mul(1000)).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        CaCommand::Fingerprint { dir } => match pki::ca_fingerprint(&PkiDir(dir)) {
            Ok(fp) => {
                println!("{fp}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nines-aggregator: ca fingerprint: {e}");
                ExitCode::FAILURE
            }
        },
        CaCommand::Revoke { dir, host, serial } => {
            let (kind, value) = match (host, serial) {
                (Some(h), _) => match HostId::new(h) {
                    Ok(h) => ("host", h.to_string()),
                    Err(e) => {
                        eprintln!("nines-aggregator: ca revoke: {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                },
                (None, Some(s)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()) => {
                    ("serial", crate::pki::revoke::normalize_serial(&s))
                }
                _ => {
                    eprintln!("nines-aggregator: ca revoke: give --host HOST or --serial HEX");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let path = dir.join("revoked.txt");
            let now =
                crate::util::time::rfc3339_s(nines_common::model::now_ms()).unwrap_or_default();
            match crate::pki::revoke::append(&path, kind, &value, &now) {
                Ok(()) => {
                    println!("revoked {kind} {value} in {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: ca revoke: {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
