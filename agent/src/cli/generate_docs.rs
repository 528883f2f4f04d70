//! `nines-agent generate-docs DIR`: man pages and shell completions, for packages.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory: DIR/man/*.1 and DIR/completions/ (bash, zsh, fish).
    dir: PathBuf,
}

pub fn main(cmd: clap::Command, args: Args) -> ExitCode {
    match nines_common::cli_docs::generate(cmd, "nines-agent", &args.dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nines-agent: generate-docs {}: {e}", args.dir.display());
            ExitCode::FAILURE
        }
    }
}
