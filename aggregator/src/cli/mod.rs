//! The subcommands of `nines-aggregator`, one module each, and what they share: logging, the
//! runtime, the stop signal and exit codes. `main.rs` only calls [`main`].

pub mod ca;
pub mod check_config;
pub mod demo;
pub mod docs;
pub mod report;
pub mod serve;
pub mod token;

use std::fmt::Display;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a bad configuration or bad arguments (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// nines aggregator: receives samples from nines agents over mutually authenticated TLS,
/// stores them in redb, and serves them over an HTTP API.
#[derive(Debug, Parser)]
#[command(name = "nines-aggregator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the aggregator.
    Serve(serve::ServeArgs),
    /// Compact the store's database file while the aggregator is stopped: rewrite its tables
    /// in key order and give the free pages back to the file system.
    CompactStore(serve::CompactArgs),
    /// Check a configuration file, the certificates and the alert rules it names.
    ///
    /// Reports every problem of the file at once, each as FILE:LINE:COLUMN, then their
    /// count ("3 errors, 1 warning"); a TOML syntax error or an unknown key stops the parser,
    /// so it is reported alone. Warnings are what works but cannot do what it says, such as an
    /// alert rule on a metric nines does not produce (docs/metrics.md) and [check]
    /// known_metrics does not list. Exit status: 0 usable (warnings are printed to stderr), 64
    /// errors, or warnings with --strict.
    CheckConfig(check_config::CheckConfigArgs),
    /// Manage the nines certificate authority.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Run an aggregator and a local agent on 127.0.0.1 with generated certificates.
    Demo(demo::DemoOptions),
    /// Reports from a running aggregator's API, for cron and auditors.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Write the man pages and shell completions into DIR (for packages).
    #[command(hide = true)]
    GenerateDocs(docs::DocsArgs),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve::serve(args),
        Command::CompactStore(args) => serve::compact(args),
        Command::CheckConfig(args) => check_config::main(args),
        Command::Ca(cmd) => ca::main(cmd),
        Command::Token(cmd) => token::main(cmd),
        Command::Demo(opts) => demo::main(opts),
        Command::Report(cmd) => report::main(cmd),
        Command::GenerateDocs(args) => docs::main(args),
    }
}

/// Prints `nines-aggregator WHAT: ERROR` and returns the failure exit code.
pub fn fail(what: &str, e: impl Display) -> ExitCode {
    eprintln!("nines-aggregator: {what}: {e}");
    ExitCode::FAILURE
}

/// Prints `nines-aggregator WHAT: ERROR` and returns [`EXIT_CONFIG`]: bad arguments or
/// configuration, nothing was done.
pub fn usage(what: &str, e: impl Display) -> ExitCode {
    eprintln!("nines-aggregator: {what}: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// Logs to stderr, filtered by `NINES_LOG` (default `info`). Text by default; under journald
/// (`JOURNAL_STREAM` set) without a timestamp, which journald adds itself. `json`: one object
/// a line with `timestamp`, `level`, `fields` (`message` and the event's fields), `target` and
/// the spans, for log shippers.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NINES_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.with_ansi(false).without_time().init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// The multi-threaded runtime every async subcommand runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("cannot start the runtime", e))
}

/// Turns true on SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = tx.send(true);
    });
    rx
}
