//! The subcommands, one module each, and what they share: the exit code for a bad
//! configuration, loading it, logging and the runtime.

pub mod check_config;
pub mod collect_once;
pub mod enroll;
pub mod generate_docs;
pub mod run;

use std::path::Path;
use std::process::ExitCode;

use nines_agent::config::Config;

/// Exit code for a bad configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Logs to stderr at the level named by `NINES_LOG` (error, warn, info, debug, trace;
/// default info). A plain level rather than a filter expression keeps the regex engine out of
/// the agent, which is a third of a megabyte of resident memory.
pub fn init_logging() {
    let level = std::env::var("NINES_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The configuration at `path`, or the exit code after saying what is wrong with it.
pub fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("nines-agent: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The single-threaded runtime the agent runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("nines-agent: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}
