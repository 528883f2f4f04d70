//! `nines-agent check-config`: notes to stdout; errors, warnings and their count to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use nines_agent::config::{Config, metric_warnings};
use nines_agent::identity;
use nines_common::diag::{Diagnostic, Severity, summary};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    file: PathBuf,
    /// Treat warnings as errors: exit 64 if there is any.
    #[arg(long)]
    strict: bool,
}

pub fn main(Args { file, strict }: Args) -> ExitCode {
    let (mut errors, mut warnings, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    match Config::load(&file) {
        Err(e) => errors = e.diagnostics(),
        Ok(config) => {
            warnings = metric_warnings(&config);
            // A freshly installed host has no certificates yet, and `run` waits for them:
            // the configuration itself is fine, so this is not an error either.
            let missing = identity::missing_tls_files(&config);
            if !missing.is_empty() {
                notes.push(format!(
                    "{}: ok, but {}",
                    file.display(),
                    identity::enroll_hint(&config, &missing)
                ));
            } else {
                match identity::load_tls(&config) {
                    Ok((_, host)) => notes.push(format!("{}: ok (host {host})", file.display())),
                    Err(e) => errors.push(Diagnostic {
                        severity: Severity::Error,
                        file: file.clone(),
                        position: None,
                        message: e.to_string(),
                    }),
                }
            }
        }
    }
    for n in &notes {
        println!("{n}");
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if !errors.is_empty() || !warnings.is_empty() {
        eprintln!(
            "{}: {}{}",
            file.display(),
            summary(errors.len(), warnings.len()),
            if strict && errors.is_empty() {
                " (--strict: warnings fail the check)"
            } else {
                ""
            }
        );
    }
    if !errors.is_empty() || (strict && !warnings.is_empty()) {
        ExitCode::from(super::EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}
