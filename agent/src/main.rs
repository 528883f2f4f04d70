//! `nines-agent`: parses flags, loads the configuration, and runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use nines_agent::collect::{self, CollectConfig, Runner, Tick};
use nines_agent::config::Config;
use nines_agent::run::{next_boundary, now_ms};

/// Exit code for a bad configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

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
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "/etc/nines/agent.toml")]
        config: PathBuf,
    },
    /// Sample this machine once and print the samples; no network, no spool.
    ///
    /// Rates (bytes/s, ratios of CPU time) need two readings, so this samples twice, one
    /// second apart, and prints the second.
    CollectOnce {
        /// Configuration file whose [collect] section to use; built-in defaults without it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Get this host's first certificate from the aggregator with a one-time token.
    ///
    /// Makes a key here (it never leaves this machine), sends a certificate request over TLS
    /// to the aggregator, which is trusted only if its chain holds the CA with the given
    /// fingerprint, and writes the CA bundle, certificate and key where the configuration's
    /// [aggregator] section names them. A running agent waiting for certificates picks them
    /// up within seconds. Exit 0 enrolled, 1 refused or unreachable, 64 bad arguments.
    Enroll {
        /// Configuration file (for the host id and where the files go).
        #[arg(long, short, default_value = "/etc/nines/agent.toml")]
        config: PathBuf,
        /// The aggregator's ingest address, HOST:PORT.
        #[arg(long)]
        aggregator: String,
        /// The one-time token from `nines-aggregator ca token`.
        #[arg(long)]
        token: String,
        /// SHA-256 fingerprint of the nines CA certificate (`nines-aggregator ca
        /// fingerprint`), hex, colons allowed.
        #[arg(long)]
        ca_fingerprint: String,
        /// Name the aggregator's certificate carries, if not the address's host part.
        #[arg(long)]
        server_name: Option<String>,
        /// Replace a certificate and key that exist already.
        #[arg(long)]
        force: bool,
    },
    /// Write the man pages and shell completions into DIR (for packages).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory: DIR/man/*.1 and DIR/completions/ (bash, zsh, fish).
        dir: PathBuf,
    },
    /// Check a configuration file and the certificates it names.
    ///
    /// Reports every problem of the file at once, each as FILE:LINE:COLUMN, then their count
    /// ("2 errors, 0 warnings"); a TOML syntax error or an unknown key stops the parser, so it
    /// is reported alone. Certificate files that do not exist yet are not an error (`run`
    /// waits for them): the output says how to issue them. Warns about a textfile metric that
    /// has the name of one the agent sends. Exit status: 0 usable (warnings are printed to
    /// stderr), 64 errors, or warnings with --strict.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
        /// Treat warnings as errors: exit 64 if there is any.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One `name{labels} value` line per sample.
    Text,
    /// One JSON document: {"ts_ms": .., "samples": [{"name", "labels", "value"}]}.
    Json,
    /// Prometheus text exposition format, with timestamps.
    Prometheus,
}

/// Logs to stderr at the level named by `NINES_LOG` (error, warn, info, debug, trace;
/// default info). A plain level rather than a filter expression keeps the regex engine out of
/// the agent, which is a third of a megabyte of resident memory.
fn init_logging() {
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

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("nines-agent: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `check-config`: notes to stdout; errors, warnings and their count to stderr.
fn check_config(file: &Path, strict: bool) -> ExitCode {
    use nines_common::diag::{Diagnostic, Severity, summary};
    let (mut errors, mut warnings, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    match Config::load(file) {
        Err(e) => errors = e.diagnostics(),
        Ok(config) => {
            warnings = nines_agent::config::metric_warnings(&config);
            // A freshly installed host has no certificates yet, and `run` waits for them:
            // the configuration itself is fine, so this is not an error either.
            let missing = nines_agent::run::missing_tls_files(&config);
            if !missing.is_empty() {
                notes.push(format!(
                    "{}: ok, but {}",
                    file.display(),
                    nines_agent::run::enroll_hint(&config, &missing)
                ));
            } else {
                match nines_agent::run::load_tls(&config) {
                    Ok((_, host)) => notes.push(format!("{}: ok (host {host})", file.display())),
                    Err(e) => errors.push(Diagnostic {
                        severity: Severity::Error,
                        file: file.to_owned(),
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
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenerateDocs { dir } => match generate_docs(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nines-agent: generate-docs {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file, strict } => check_config(&file, strict),
        Command::CollectOnce { config, format } => {
            let collect = match config {
                Some(path) => match load(&path) {
                    Ok(c) => c.collect,
                    Err(code) => return code,
                },
                None => CollectConfig::default(),
            };
            init_logging();
            collect_once(&collect, format)
        }
        Command::Enroll {
            config,
            aggregator,
            token,
            ca_fingerprint,
            server_name,
            force,
        } => {
            let path = config;
            let config = match load(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let request = nines_agent::enroll::Request {
                aggregator,
                token,
                ca_fingerprint,
                server_name,
                force,
            };
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(nines_agent::enroll::enroll(&config, &request)) {
                Ok(host) => {
                    let a = &config.aggregator;
                    println!(
                        "enrolled as {host}: wrote {}, {} and {}",
                        a.ca.display(),
                        a.cert.display(),
                        a.key.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e @ nines_agent::enroll::EnrollError::Usage(_)) => {
                    eprintln!("nines-agent: enroll: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(e) => {
                    eprintln!("nines-agent: enroll: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging();
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            runtime.block_on(async {
                let (tx, rx) = tokio::sync::watch::channel(false);
                // Registered before anything else runs, so a stop right after the start is a
                // clean stop too (with its goodbye), not the signal's default death.
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
    }
}

/// The single-threaded runtime the agent runs on.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("nines-agent: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Man pages (one per visible subcommand too) and bash, zsh and fish completions.
fn generate_docs(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "nines-agent", &completions)?;
    }
    Ok(())
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

fn collect_once(config: &CollectConfig, format: Format) -> ExitCode {
    let mut runner = Runner::new(collect::registry(config));
    let mut scratch = Vec::new();
    let start = Instant::now();
    runner.run(
        &Tick {
            ts_ms: now_ms(),
            now: start,
        },
        &mut scratch,
    );
    std::thread::sleep(Duration::from_secs(1));
    let ts_ms = next_boundary(now_ms(), Duration::from_secs(1)) - 1000;
    let mut samples = Vec::new();
    runner.run(
        &Tick {
            ts_ms,
            now: Instant::now(),
        },
        &mut samples,
    );
    match format {
        Format::Text => {
            for s in &samples {
                println!("{} {}", s.key, s.value);
            }
        }
        Format::Prometheus => print!("{}", prometheus_text(&samples)),
        Format::Json => println!("{}", json_text(ts_ms, &samples)),
    }
    ExitCode::SUCCESS
}

/// Renders samples in the Prometheus text exposition format (0.0.4): one `# TYPE` line per
/// metric name (`counter` for `_total`, else `gauge`), label values escaped, timestamps in ms.
fn prometheus_text(samples: &[nines_common::Sample]) -> String {
    use std::fmt::Write;
    let mut sorted: Vec<&nines_common::Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = String::new();
    let mut last_name = "";
    for s in sorted {
        if s.key.name != last_name {
            let kind = if s.key.name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {} {kind}", s.key.name);
            last_name = &s.key.name;
        }
        out.push_str(&s.key.name);
        if !s.key.labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in s.key.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(out, "{k}=\"{v}\"");
            }
            out.push('}');
        }
        let _ = writeln!(out, " {} {}", s.value, s.ts_ms);
    }
    out
}

/// Writes a JSON string literal. Written by hand so that the agent does not carry a JSON
/// library for this one command.
fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"ts_ms": .., "samples": [{"name": .., "labels": {..}, "value": ..}, ..]}`.
fn json_text(ts_ms: i64, samples: &[nines_common::Sample]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 * samples.len());
    let _ = write!(out, "{{\"ts_ms\":{ts_ms},\"samples\":[");
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&mut out, &s.key.name);
        out.push_str(",\"labels\":{");
        for (j, (k, v)) in s.key.labels.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_string(&mut out, k);
            out.push(':');
            json_string(&mut out, v);
        }
        // Samples are finite by construction (`Out::push` drops the rest), so `{}` of an f64
        // is valid JSON.
        let _ = write!(out, "}},\"value\":{}}}", s.value);
    }
    out.push_str("]}");
    out
}
