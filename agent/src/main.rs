//! `nines-agent`: parses flags and hands each subcommand to its module in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// nines host agent: samples machine and process health, keeps it in a durable local spool,
/// and streams it to a nines aggregator over mutually authenticated TLS.
#[derive(Debug, Parser)]
#[command(name = "nines-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: sample every interval, spool, and ship to the aggregator.
    Run(cli::run::Args),
    /// Sample this machine once and print the samples; no network, no spool.
    ///
    /// Rates (bytes/s, ratios of CPU time) need two readings, so this samples twice, one
    /// second apart, and prints the second.
    CollectOnce(cli::collect_once::Args),
    /// Get this host's first certificate from the aggregator with a one-time token.
    ///
    /// Makes a key here (it never leaves this machine), sends a certificate request over TLS
    /// to the aggregator, which is trusted only if its chain holds the CA with the given
    /// fingerprint, and writes the CA bundle, certificate and key where the configuration's
    /// [aggregator] section names them. A running agent waiting for certificates picks them
    /// up within seconds. Exit 0 enrolled, 1 refused or unreachable, 64 bad arguments.
    Enroll(cli::enroll::Args),
    /// Write the man pages and shell completions into DIR (for packages).
    #[command(hide = true)]
    GenerateDocs(cli::generate_docs::Args),
    /// Check a configuration file and the certificates it names.
    ///
    /// Reports every problem of the file at once, each as FILE:LINE:COLUMN, then their count
    /// ("2 errors, 0 warnings"); a TOML syntax error or an unknown key stops the parser, so it
    /// is reported alone. Certificate files that do not exist yet are not an error (`run`
    /// waits for them): the output says how to issue them. Warns about a textfile metric that
    /// has the name of one the agent sends. Exit status: 0 usable (warnings are printed to
    /// stderr), 64 errors, or warnings with --strict.
    CheckConfig(cli::check_config::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => cli::run::main(args),
        Command::CollectOnce(args) => cli::collect_once::main(args),
        Command::Enroll(args) => cli::enroll::main(args),
        Command::GenerateDocs(args) => cli::generate_docs::main(Cli::command(), args),
        Command::CheckConfig(args) => cli::check_config::main(args),
    }
}
