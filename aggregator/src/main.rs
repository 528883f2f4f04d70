//! `nines-aggregator`: parses flags, loads the configuration, and runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use nines_aggregator::cli::demo;
use nines_aggregator::config::Config;
use nines_aggregator::http as api;
use nines_aggregator::pki::{self, PkiDir};
use nines_aggregator::{bench_ingest, bench_storage, report};
use nines_common::HostId;

/// Exit code for a bad configuration or bad arguments (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// nines aggregator: receives samples from nines agents over mutually authenticated TLS,
/// stores them in redb, and serves them over an HTTP API.
#[derive(Debug, Parser)]
#[command(name = "nines-aggregator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the aggregator.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = "/etc/nines/aggregator.toml")]
        config: PathBuf,
        /// Log lines as `text` (for people and journald) or `json` (one object a line, for
        /// log shippers).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Compact the store's database file while the aggregator is stopped: rewrite its tables
    /// in key order and give the free pages back to the file system.
    CompactStore {
        /// Configuration file (names the store).
        #[arg(long, short, default_value = "/etc/nines/aggregator.toml")]
        config: PathBuf,
    },
    /// Check a configuration file, the certificates and the alert rules it names.
    ///
    /// Reports every problem of the file at once, each as FILE:LINE:COLUMN, then their
    /// count ("3 errors, 1 warning"); a TOML syntax error or an unknown key stops the parser,
    /// so it is reported alone. Warnings are what works but cannot do what it says, such as an
    /// alert rule on a metric nines does not produce (docs/metrics.md) and [check]
    /// known_metrics does not list. Exit status: 0 usable (warnings are printed to stderr), 64
    /// errors, or warnings with --strict.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
        /// Treat warnings as errors: exit 64 if there is any.
        #[arg(long)]
        strict: bool,
    },
    /// Manage the nines certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run an aggregator and a local agent on 127.0.0.1 with generated certificates.
    Demo {
        /// State directory (certificates, configs, database); reused on the next run.
        #[arg(long, default_value = "nines-demo")]
        dir: PathBuf,
        /// Ingest (mTLS) address.
        #[arg(long, default_value = "127.0.0.1:7443")]
        ingest_listen: SocketAddr,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:7480")]
        api_listen: SocketAddr,
        /// The nines-agent binary. Default: next to this one, else on PATH.
        #[arg(long)]
        agent_bin: Option<PathBuf>,
    },
    /// Measure parts of the aggregator on synthetic data.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Reports from a running aggregator's API, for cron and auditors.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Write the man pages and shell completions into DIR (for packages).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory: DIR/man/*.1 and DIR/completions/ (bash, zsh, fish).
        dir: PathBuf,
    },
}

/// Man pages (one per visible subcommand too) and bash, zsh and fish completions.
fn generate_docs(dir: &std::path::Path) -> std::io::Result<()> {
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "nines-aggregator", &completions)?;
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Availability of every service (or one) over a period. Exit status: 0 every target
    /// met, 1 a target missed, 3 unknown (a service not monitored in the period), 2 no report
    /// (bad arguments, token, network, API).
    Availability(ReportArgs),
    /// Series whose least-squares forecast reaches a threshold within a horizon, on every
    /// host. Exit status: 0 none does, 1 one does, 3 unknown (no such series, or too little
    /// data for a forecast), 2 no report.
    Capacity(CapacityArgs),
}

#[derive(Debug, clap::Args)]
struct CapacityArgs {
    /// Base URL of the aggregator's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7480")]
    url: String,
    /// File holding an API token (read role is enough); mode 0600 or stricter.
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// PEM CA certificates to trust for an https URL instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The metric forecast.
    #[arg(long, default_value = "filesystem_used_ratio")]
    name: String,
    /// Only series with this label (k=v); repeatable.
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// The level that matters.
    #[arg(long, default_value_t = 0.9)]
    threshold: f64,
    /// How far back the line is fitted.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    window: std::time::Duration,
    /// How far ahead it looks.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    horizon: std::time::Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: report::Format,
    /// Limit for the whole request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Base URL of the aggregator's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7480")]
    url: String,
    /// File holding an API token (read role is enough); mode 0600 or stricter.
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// PEM CA certificates to trust for an https URL instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// last-month, last-week (ISO, Monday to Sunday), YYYY-MM, or FROM..TO (RFC 3339 or
    /// YYYY-MM-DD; a date as TO includes that day). In UTC.
    #[arg(long, default_value = "last-month")]
    period: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: report::Format,
    /// Report on this service only.
    #[arg(long)]
    service: Option<String>,
    /// Limit for the whole request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Chunk codec: bytes/sample and encode/decode speed on a synthetic host-metric mix.
    Storage(StorageBenchArgs),
    /// The store end to end on real redb files: bytes/sample on disk, memory per active
    /// series, restart with an hour of open heads, a 30-day query at a 1 h step.
    Store(StoreBenchArgs),
    /// Ingest end to end: simulated agents over mTLS against a real aggregator child process;
    /// acked samples/s, ack latency, its CPU and memory, and bytes/sample.
    Ingest(bench_ingest::Args),
    /// The status page overview: gathered from a real store of N hosts and rendered.
    Status(StatusBenchArgs),
}

#[derive(Debug, clap::Args)]
struct StatusBenchArgs {
    /// Hosts on the overview.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Timed runs; the median and the slowest are reported.
    #[arg(long, default_value_t = 50)]
    runs: usize,
}

#[derive(Debug, clap::Args)]
struct StorageBenchArgs {
    /// Series per metric kind; six kinds of 7,200 points at 15 s, so 32 gives 1.38 M samples.
    #[arg(long, default_value_t = 32)]
    series: usize,
    /// Measure only chunks of this many samples, instead of 120, 720, 2880 and 7200.
    #[arg(long)]
    chunk: Option<usize>,
    /// Also write the generated samples to FILE as OpenMetrics text (for promtool).
    #[arg(long, value_name = "FILE")]
    export_openmetrics: Option<PathBuf>,
    /// Timed runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Debug, clap::Args)]
struct StoreBenchArgs {
    /// Keep the store files in DIR instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Series per metric kind of the mix (six kinds, 7,200 points each at 15 s).
    #[arg(long, default_value_t = 32)]
    series: usize,
    /// Points per series of the mix.
    #[arg(long, default_value_t = 7200)]
    mix_points: usize,
    /// Hosts of the memory and restart part.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Series per host of the memory and restart part.
    #[arg(long, default_value_t = 100)]
    series_per_host: usize,
    /// Ticks, 10 s apart, held in open heads (360 is an hour).
    #[arg(long, default_value_t = 360)]
    ticks: usize,
    /// Also report bytes/sample of this existing store file, settled on a copy.
    #[arg(long, value_name = "FILE")]
    existing: Option<PathBuf>,
    /// With --existing: also write its values again at this interval (e.g. 10s), the n-th
    /// point of every series at the n-th tick, and report that store settled.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "existing")]
    restamp: Option<std::time::Duration>,
    /// Timed runs of the 30-day query; the median is reported.
    #[arg(long, default_value_t = 200)]
    query_runs: usize,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a CA and the aggregator's server certificate in DIR.
    Init {
        /// Directory for ca.pem, ca.key, server.pem, server.key.
        #[arg(long)]
        dir: PathBuf,
        /// Names and IP addresses agents use to reach the aggregator (repeatable).
        /// Default: localhost, 127.0.0.1 and this machine's host name.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// Issue an agent certificate for HOST into DIR/agents/HOST.pem and HOST.key.
    Issue {
        /// The PKI directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// Host id: the agent's identity, ASCII letters, digits, '.', '-', '_'.
        #[arg(long)]
        host: String,
        /// Validity in days. Short by default, as enrolled certificates are: a running agent
        /// renews its certificate over its connection once two thirds of it have passed.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Make a one-time enrollment token for HOST and print it with the `nines-agent enroll`
    /// command to run there. Only the token's SHA-256 is stored (DIR/tokens.txt).
    Token {
        /// The PKI directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// Host id the token enrolls; the agent must ask for exactly this one.
        #[arg(long)]
        host: String,
        /// How long the token can be used, e.g. 1h, 30m, 2d (at most 30d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// The ingest address agents dial, for the printed command.
        #[arg(long, default_value = "AGGREGATOR:7443")]
        aggregator: String,
    },
    /// Print the SHA-256 fingerprint of the CA certificate (what `nines-agent enroll
    /// --ca-fingerprint` pins).
    Fingerprint {
        /// The PKI directory made by `ca init`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke an agent certificate: by host (every certificate for it) or by serial. The
    /// running aggregator disconnects it within seconds and refuses it from then on.
    Revoke {
        /// The PKI directory made by `ca init` (the list is DIR/revoked.txt, beside ca.pem).
        #[arg(long)]
        dir: PathBuf,
        /// Host id whose certificates are revoked.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        host: Option<String>,
        /// Serial number (hex) of one certificate.
        #[arg(long)]
        serial: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new random API token and the [[api.tokens]] entry holding its hash.
    New {
        /// Who will hold it.
        #[arg(long, default_value = "operator")]
        name: String,
        /// Its role: read or admin.
        #[arg(long, default_value = "read", value_parser = ["read", "admin"])]
        role: String,
    },
}

fn init_logging() {
    init_logging_as(false);
}

/// Logs to stderr, filtered by `NINES_LOG` (default `info`). Text by default; under journald
/// (`JOURNAL_STREAM` set) without a timestamp, which journald adds itself. `json`: one object
/// a line with `timestamp`, `level`, `fields` (`message` and the event's fields), `target` and
/// the spans, for log shippers.
fn init_logging_as(json: bool) {
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

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("nines-aggregator: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn shutdown_on_signal() -> tokio::sync::watch::Receiver<bool> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenerateDocs { dir } => match generate_docs(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nines-aggregator: generate-docs {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file, strict } => {
            ExitCode::from(nines_aggregator::cli::check_config::run(&file, strict))
        }
        Command::CompactStore { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nines-aggregator: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let path = &config.store.path;
            match nines_aggregator::store::Store::compact_file(path) {
                Ok((before, after)) => {
                    println!("{}: {before} bytes, now {after} bytes", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: compact-store: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config, log_format } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nines-aggregator: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging_as(log_format == "json");
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            rt.block_on(async {
                match nines_aggregator::run(config, shutdown_on_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!("{e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Ca(CaCommand::Init { dir, sans }) => {
            let sans = if sans.is_empty() {
                let mut v = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
                if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                    let h = h.trim();
                    if !h.is_empty() && h != "localhost" {
                        v.push(h.to_owned());
                    }
                }
                v
            } else {
                sans
            };
            let dir = PkiDir(dir);
            match pki::init(&dir, &sans, &sans[0]) {
                Ok(()) => {
                    println!(
                        "wrote {}, {}, {}, {} (server names: {})",
                        dir.ca_cert().display(),
                        dir.ca_key().display(),
                        dir.server_cert().display(),
                        dir.server_key().display(),
                        sans.join(", ")
                    );
                    if let Ok(fp) = pki::ca_fingerprint(&dir) {
                        println!("CA fingerprint (SHA-256): {fp}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: ca init: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ca(CaCommand::Issue { dir, host, days }) => {
            let host = match HostId::new(host) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("nines-aggregator: ca issue: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if !(1..=3650).contains(&days) {
                eprintln!("nines-aggregator: ca issue: --days must be 1 to 3650");
                return ExitCode::from(EXIT_CONFIG);
            }
            match pki::issue(&PkiDir(dir), &host, days) {
                Ok((cert, key)) => {
                    println!("wrote {} and {}", cert.display(), key.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: ca issue: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ca(CaCommand::Token {
            dir,
            host,
            ttl,
            aggregator,
        }) => {
            let host = match HostId::new(host) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("nines-aggregator: ca token: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if ttl < std::time::Duration::from_secs(60)
                || ttl > std::time::Duration::from_secs(30 * 86_400)
            {
                eprintln!("nines-aggregator: ca token: --ttl must be from 1m to 30d");
                return ExitCode::from(EXIT_CONFIG);
            }
            let dir = PkiDir(dir);
            let fp = match pki::ca_fingerprint(&dir) {
                Ok(fp) => fp,
                Err(e) => {
                    eprintln!("nines-aggregator: ca token: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let token = match nines_aggregator::pki::enroll::new_token() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("nines-aggregator: ca token: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let expires = std::time::SystemTime::now() + ttl;
            let unix = expires
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let path = dir.0.join("tokens.txt");
            if let Err(e) =
                nines_aggregator::pki::enroll::add_token(&path, &dir.ca_key(), &token, &host, unix)
            {
                eprintln!("nines-aggregator: ca token: {e}");
                return ExitCode::FAILURE;
            }
            println!(
                "token for {host}, usable once until {}:\n{token}\n\non {host}, as root:\n  \
                 nines-agent enroll --aggregator {aggregator} --token {token} --ca-fingerprint {fp}",
                nines_aggregator::util::time::rfc3339_s(unix.saturating_mul(1000))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Ca(CaCommand::Fingerprint { dir }) => match pki::ca_fingerprint(&PkiDir(dir)) {
            Ok(fp) => {
                println!("{fp}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nines-aggregator: ca fingerprint: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Ca(CaCommand::Revoke { dir, host, serial }) => {
            let (kind, value) = match (host, serial) {
                (Some(h), _) => match HostId::new(h) {
                    Ok(h) => ("host", h.to_string()),
                    Err(e) => {
                        eprintln!("nines-aggregator: ca revoke: {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                },
                (None, Some(s)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()) => (
                    "serial",
                    nines_aggregator::pki::revoke::normalize_serial(&s),
                ),
                _ => {
                    eprintln!("nines-aggregator: ca revoke: give --host HOST or --serial HEX");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let path = dir.join("revoked.txt");
            let now = nines_aggregator::util::time::rfc3339_s(nines_aggregator::ingest::now_ms())
                .unwrap_or_default();
            match nines_aggregator::pki::revoke::append(&path, kind, &value, &now) {
                Ok(()) => {
                    println!("revoked {kind} {value} in {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: ca revoke: {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token(TokenCommand::New { name, role }) => {
            let token = match nines_aggregator::util::random::api_token() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("nines-aggregator: token new: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("token: {token}");
            println!();
            println!("# add to the aggregator configuration:");
            println!("[[api.tokens]]");
            println!("name = {name:?}");
            println!("role = {role:?}");
            println!("sha256 = \"{}\"", api::token_hash(&token));
            ExitCode::SUCCESS
        }
        Command::Bench(BenchCommand::Storage(args)) => {
            let opts = bench_storage::StorageOptions {
                series_per_kind: args.series,
                chunk_points: args.chunk,
                export_openmetrics: args.export_openmetrics,
                runs: args.runs,
            };
            if let Err(e) = opts.validate() {
                eprintln!("nines-aggregator: bench storage: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            match bench_storage::run(&opts, std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("nines-aggregator: bench storage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::Store(args)) => {
            if args.series == 0
                || args.mix_points == 0
                || args.hosts == 0
                || args.series_per_host == 0
                || args.ticks == 0
            {
                eprintln!(
                    "nines-aggregator: bench store: --series, --hosts, --series-per-host and --ticks must be at least 1"
                );
                return ExitCode::from(EXIT_CONFIG);
            }
            let opts = nines_aggregator::bench_store::StoreBenchOptions {
                dir: args.dir,
                mix_series_per_kind: args.series,
                mix_points: args.mix_points,
                hosts: args.hosts,
                series_per_host: args.series_per_host,
                ticks: args.ticks,
                existing: args.existing,
                restamp_ms: args
                    .restamp
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)),
                query_runs: args.query_runs,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(nines_aggregator::bench_store::run(
                &opts,
                std::io::stdout().lock(),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("nines-aggregator: bench store: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::Status(args)) => {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(nines_aggregator::http::status::bench::run(
                args.hosts, args.runs,
            )) {
                Ok(f) => {
                    println!(
                        "status overview, {} hosts, {} runs:\n  gathered from the store and rendered: median {:.2} ms, slowest {:.2} ms\n  rendered alone (a tenth with warnings): median {:.2} ms, slowest {:.2} ms\n  page: {} bytes",
                        f.hosts,
                        args.runs,
                        f.full_ms.0,
                        f.full_ms.1,
                        f.render_ms.0,
                        f.render_ms.1,
                        f.bytes
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("nines-aggregator: bench status: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(BenchCommand::Ingest(args)) => {
            if let Err(e) = args.validate() {
                eprintln!("nines-aggregator: bench ingest: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(bench_ingest::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("nines-aggregator: bench ingest: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Report(ReportCommand::Capacity(args)) => {
            let opts = report::capacity::Options {
                url: args.url,
                token_file: args.token_file,
                ca: args.ca,
                name: args.name,
                labels: args.labels,
                threshold: args.threshold,
                window: args.window,
                horizon: args.horizon,
                format: args.format,
                timeout: args.timeout,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(_) => return ExitCode::from(report::EXIT_ERROR),
            };
            let mut out = std::io::stdout().lock();
            match rt.block_on(report::capacity::run(&opts, &mut out)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("nines-aggregator: report capacity: {e}");
                    ExitCode::from(report::EXIT_ERROR)
                }
            }
        }
        Command::Report(ReportCommand::Availability(args)) => {
            let opts = report::Options {
                url: args.url,
                token_file: args.token_file,
                ca: args.ca,
                period: args.period,
                format: args.format,
                service: args.service,
                timeout: args.timeout,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(_) => return ExitCode::from(report::EXIT_ERROR),
            };
            let mut out = std::io::stdout().lock();
            match rt.block_on(report::run(&opts, jiff::Timestamp::now(), &mut out)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("nines-aggregator: report availability: {e}");
                    ExitCode::from(report::EXIT_ERROR)
                }
            }
        }
        Command::Demo {
            dir,
            ingest_listen,
            api_listen,
            agent_bin,
        } => {
            init_logging();
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            rt.block_on(async {
                let opts = demo::DemoOptions {
                    dir,
                    ingest_listen,
                    api_listen,
                    agent_bin,
                };
                match demo::run(opts, shutdown_on_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("nines-aggregator: demo: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
