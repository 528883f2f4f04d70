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
    let write = || -> std::io::Result<()> {
        let (man, completions) = (dir.join("man"), dir.join("completions"));
        std::fs::create_dir_all(&man)?;
        std::fs::create_dir_all(&completions)?;
        let mut cmd = super::Cli::command();
        clap_mangen::generate_to(cmd.clone(), &man)?;
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            clap_complete::generate_to(shell, &mut cmd, "nines-aggregator", &completions)?;
        }
        Ok(())
    };
    match write() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(&format!("generate-docs {}", dir.display()), e),
    }
}
