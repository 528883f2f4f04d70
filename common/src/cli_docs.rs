//! Man pages and shell completions for a command line, as packages ship them (feature
//! `cli-docs`).

use std::path::Path;

/// Writes a man page for `cmd` and each visible subcommand into `dir/man/` and bash, zsh and
/// fish completions for the binary `bin` into `dir/completions/`, creating both directories.
pub fn generate(mut cmd: clap::Command, bin: &str, dir: &Path) -> std::io::Result<()> {
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(cmd.clone(), &man)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, bin, &completions)?;
    }
    Ok(())
}
