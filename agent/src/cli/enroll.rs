//! `nines-agent enroll`: this host's first certificate, for a one-time token.

use std::path::PathBuf;
use std::process::ExitCode;

use nines_agent::identity::enroll::{EnrollError, Request, enroll};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (for the host id and where the files go).
    #[arg(long, short, default_value = "/etc/nines/agent.toml")]
    config: PathBuf,
    /// The aggregator's ingest address, HOST:PORT.
    #[arg(long)]
    aggregator: String,
    /// The one-time token from `nines-aggregator ca token`.
    #[arg(long)]
    token: String,
    /// SHA-256 fingerprint of the nines CA certificate (`nines-aggregator ca
    /// fingerprint`), hex, colons allowed.
    #[arg(long)]
    ca_fingerprint: String,
    /// Name the aggregator's certificate carries, if not the address's host part.
    #[arg(long)]
    server_name: Option<String>,
    /// Replace a certificate and key that exist already.
    #[arg(long)]
    force: bool,
}

pub fn main(args: Args) -> ExitCode {
    let config = match super::load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let request = Request {
        aggregator: args.aggregator,
        token: args.token,
        ca_fingerprint: args.ca_fingerprint,
        server_name: args.server_name,
        force: args.force,
    };
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(enroll(&config, &request)) {
        Ok(host) => {
            let a = &config.aggregator;
            println!(
                "enrolled as {host}: wrote {}, {} and {}",
                a.ca.display(),
                a.cert.display(),
                a.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e @ EnrollError::Usage(_)) => {
            eprintln!("nines-agent: enroll: {e}");
            ExitCode::from(super::EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("nines-agent: enroll: {e}");
            ExitCode::FAILURE
        }
    }
}
