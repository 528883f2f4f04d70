//! `nines-agent run`: the agent itself, until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, default_value = "/etc/nines/agent.toml")]
    config: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    let config = match super::load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    super::init_logging();
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Registered before anything else runs, so a stop right after the start is a clean
        // stop too (with its goodbye), not the signal's default death.
        let signals = stop_signals();
        tokio::spawn(async move {
            wait_for_signal(signals).await;
            let _ = tx.send(true);
        });
        match nines_agent::run(config, rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

type StopSignals = (
    std::io::Result<tokio::signal::unix::Signal>,
    std::io::Result<tokio::signal::unix::Signal>,
);

/// SIGTERM and SIGINT, registered now.
fn stop_signals() -> StopSignals {
    use tokio::signal::unix::{SignalKind, signal};
    (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    )
}

async fn wait_for_signal(signals: StopSignals) {
    match signals {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
