//! `nines-bench`: the benchmarks behind BENCHMARKS.md. Not part of any package: operators
//! install `nines-aggregator` and `nines-agent`, never this.
//!
//! Each subcommand has a `--quick` mode of a few seconds that CI runs, so a benchmark that
//! stops working is found at once rather than when someone next needs its figure.

mod ingest;
mod status;
mod storage;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for bad arguments (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// Benchmarks of nines: the chunk codec, the store, ingest end to end, the status page.
#[derive(Debug, Parser)]
#[command(name = "nines-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Chunk codec: bytes/sample and encode/decode speed on a synthetic host-metric mix.
    Storage(storage::Args),
    /// The store end to end on real redb files: bytes/sample on disk, memory per active
    /// series, restart with an hour of open heads, a 30-day query at a 1 h step.
    Store(store::Args),
    /// Ingest end to end: simulated agents over mTLS against a real aggregator child process;
    /// acked samples/s, ack latency, its CPU and memory, and bytes/sample.
    Ingest(ingest::Args),
    /// The status page overview: gathered from a real store of N hosts and rendered.
    Status(status::Args),
}

/// Why a benchmark did not produce its figures.
#[derive(Debug)]
enum Failure {
    /// Bad flags: nothing was measured.
    Usage(String),
    /// The benchmark ran and failed.
    Run(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, result) = match cli.command {
        Command::Storage(args) => ("storage", storage::main(args)),
        Command::Store(args) => (
            "store",
            runtime().and_then(|rt| rt.block_on(store::main(args))),
        ),
        Command::Ingest(args) => (
            "ingest",
            runtime().and_then(|rt| rt.block_on(ingest::main(args))),
        ),
        Command::Status(args) => (
            "status",
            runtime().and_then(|rt| rt.block_on(status::main(args))),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("nines-bench {name}: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Run(e)) => {
            eprintln!("nines-bench {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start the async runtime: {e}")))
}

/// A binary installed next to this one (`target/release/nines-aggregator` beside
/// `target/release/nines-bench`), else the name, for `PATH`.
fn sibling(name: &str) -> std::io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let next = me.with_file_name(name);
    Ok(if next.exists() {
        next
    } else {
        PathBuf::from(name)
    })
}
