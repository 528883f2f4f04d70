//! `nines-aggregator serve` and `compact-store`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(long, short, default_value = "/etc/nines/aggregator.toml")]
    config: PathBuf,
    /// Log lines as `text` (for people and journald) or `json` (one object a line, for
    /// log shippers).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Flags of `compact-store`.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Configuration file (names the store).
    #[arg(long, short, default_value = "/etc/nines/aggregator.toml")]
    config: PathBuf,
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("nines-aggregator: {e}");
        ExitCode::from(super::EXIT_CONFIG)
    })
}

/// Runs the aggregator until SIGTERM or SIGINT.
pub fn serve(args: ServeArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    super::init_logging(args.log_format == "json");
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        match crate::run(config, super::shutdown_on_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Compacts the store named by the configuration.
pub fn compact(args: CompactArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = &config.store.path;
    match crate::store::Store::compact_file(path) {
        Ok((before, after)) => {
            println!("{}: {before} bytes, now {after} bytes", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => super::fail("compact-store", e),
    }
}
