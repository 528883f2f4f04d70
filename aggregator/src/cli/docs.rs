//! `nines-aggregator generate-docs`: man pages and shell completions, for the packages.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

/// Flags of `generate-docs`.
#[derive(Debug, clap::Args)]
pub struct DocsArgs {
    /// Output directory: DIR/man/*.1 and DIR/completions/ (bash, zsh, fish).
    dir: PathBuf,
}

/// Man pages (one per visible subcommand too) and bash, zsh and fish completions.
pub fn main(args: DocsArgs) -> ExitCode {
    let dir = &args.dir;
    match nines_common::cli_docs::generate(super::Cli::command(), "nines-aggregator", dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(&format!("generate-docs {}", dir.display()), e),
    }
}
