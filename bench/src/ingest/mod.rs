//! `nines-bench ingest`: simulated agents stream over real mTLS, speaking the real
//! protocol, to a real aggregator started as a child process in the same run; the report gives
//! acked samples/s, ack latency, the aggregator's CPU and memory, and the store's bytes/sample.
//!
//! Only acked samples count: the aggregator acks a batch after its durable commit, so the rate
//! measured is the rate at which samples become crash-safe.

mod agent;
mod aggregator;
mod report;
mod series;

use agent::*;
use aggregator::*;
use report::*;
use series::*;

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nines_common::HostId;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Batch, DEFAULT_MAX_FRAME_BYTES, Hello, Message, PROTOCOL_VERSION, Point, SeriesDef,
};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_rustls::client::TlsStream;

use nines_aggregator::config::{Config, ConfigError};
use nines_aggregator::pki::{self, PkiDir, PkiError};

/// Largest `--series-per-agent`: a first batch carries every series definition and must stay
/// well inside the default 4 MiB frame limit.
const MAX_SERIES_PER_AGENT: usize = 50_000;
/// Certificate issuing is mostly fsync; a few threads overlap the waits.
const PKI_THREADS: usize = 8;
/// TLS handshakes in flight at once while the agents connect.
const CONNECT_CONCURRENCY: usize = 32;
/// How long agents wait for their last acks after the measurement ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Linux reports process CPU time in `/proc/PID/stat` in units of USER_HZ, which is 100 on
/// every architecture nines supports.
const USER_HZ: f64 = 100.0;

/// Flags of `nines-bench ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Simulated agents: one certificate, one mTLS connection and one host each.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Series per agent; each batch carries one point of every series.
    #[arg(long, default_value_t = 1000)]
    pub series_per_agent: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Each agent sends one batch per interval, timestamps on interval boundaries.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub batch_interval: Duration,
    /// Sending before the measurement starts (series creation, caches, file growth).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Unacked batches an agent keeps in flight; a tick that finds the window full is skipped
    /// and counted.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Directory for certificates, the aggregator's config, database and log. Default: a new
    /// temporary directory, removed at the end unless --keep.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory.
    #[arg(long)]
    pub keep: bool,
    /// The aggregator binary to measure. Default: `nines-aggregator` next to this executable.
    #[arg(long, value_name = "PATH")]
    pub aggregator_bin: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// A few seconds at a tiny scale (3 agents, 20 series, 1 s warm-up, 2 s measured), to
    /// check that the benchmark works; overrides those four flags.
    #[arg(long)]
    pub quick: bool,
}

/// Why the benchmark could not run, or ran but cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum BenchIngestError {
    /// A flag is out of range.
    #[error("{0}")]
    Invalid(String),
    /// A file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificates could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// No random bytes for the API token.
    #[error(transparent)]
    Random(#[from] nines_aggregator::util::random::RandomError),
    /// The generated aggregator configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An agent's TLS material was refused.
    #[error(transparent)]
    Tls(#[from] nines_common::tls::TlsError),
    /// The aggregator binary could not be started.
    #[error("cannot start {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The aggregator exited or did not answer in time.
    #[error("the aggregator did not become ready: {why} (its log: {log})")]
    NotReady {
        /// What was seen.
        why: String,
        /// Its log file.
        log: PathBuf,
    },
    /// An agent could not connect and say Hello.
    #[error("agent {host}: {message}")]
    Connect {
        /// The simulated host.
        host: HostId,
        /// What failed.
        message: String,
    },
    /// Agents lost their connection or acks went missing: the figures above are not a clean run.
    #[error("{failed} of {agents} agents failed; first: {first}")]
    AgentsFailed {
        /// Failed agents.
        failed: usize,
        /// All agents.
        agents: usize,
        /// The first failure.
        first: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BenchIngestError + '_ {
    move |source| BenchIngestError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Args {
    /// Checks the flags before anything is created.
    pub fn validate(&self) -> Result<(), BenchIngestError> {
        let invalid = |m: &str| Err(BenchIngestError::Invalid(m.to_owned()));
        if !(1..=100_000).contains(&self.agents) {
            return invalid("--agents must be 1 to 100000");
        }
        if !(1..=MAX_SERIES_PER_AGENT).contains(&self.series_per_agent) {
            return invalid("--series-per-agent must be 1 to 50000 (a batch must fit one frame)");
        }
        if self.batch_interval < Duration::from_millis(10) {
            return invalid("--batch-interval must be at least 10ms");
        }
        if self.duration < Duration::from_secs(1) {
            return invalid("--duration must be at least 1s");
        }
        if !(1..=64).contains(&self.window) {
            return invalid("--window must be 1 to 64 (the protocol's default agent window)");
        }
        Ok(())
    }
}

/// `nines-bench ingest`.
pub async fn main(mut args: Args) -> Result<(), crate::Failure> {
    if args.quick {
        args.agents = 3;
        args.series_per_agent = 20;
        args.warmup = Duration::from_secs(1);
        args.duration = Duration::from_secs(2);
    }
    if let Err(e) = args.validate() {
        return Err(crate::Failure::Usage(e.to_string()));
    }
    run(args)
        .await
        .map_err(|e| crate::Failure::Run(e.to_string()))
}

/// Runs the benchmark and prints its report on stdout (progress goes to stderr).
pub async fn run(args: Args) -> Result<(), BenchIngestError> {
    args.validate()?;
    let (dir, temporary) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io(d))?;
            let empty = std::fs::read_dir(d).map_err(io(d))?.next().is_none();
            if !empty {
                return Err(BenchIngestError::Invalid(format!(
                    "--dir {}: not empty; give a new or empty directory",
                    d.display()
                )));
            }
            (d.clone(), false)
        }
        None => {
            let d = std::env::temp_dir().join(format!(
                "nines-bench-ingest-{}-{}",
                std::process::id(),
                nines_common::model::now_ms()
            ));
            std::fs::create_dir(&d).map_err(io(&d))?;
            (d, true)
        }
    };
    let dir = dir.canonicalize().map_err(io(&dir))?;
    let result = run_in(&args, &dir).await;
    match (&result, temporary && !args.keep) {
        (Ok(report), true) => {
            let _ = std::fs::remove_dir_all(&dir);
            report.print(&args);
        }
        (Ok(report), false) => {
            report.print(&args);
            eprintln!("nines-bench ingest: kept {}", dir.display());
        }
        (Err(_), _) => eprintln!("nines-bench ingest: kept {} for inspection", dir.display()),
    }
    match result {
        Ok(report) => match report.agent_failure {
            None => Ok(()),
            Some((failed, first)) => Err(BenchIngestError::AgentsFailed {
                failed,
                agents: args.agents,
                first,
            }),
        },
        Err(e) => Err(e),
    }
}

async fn run_in(args: &Args, dir: &Path) -> Result<Report, BenchIngestError> {
    let started = Instant::now();
    let hosts = host_ids(args.agents)?;
    let pki_dir = PkiDir(dir.join("pki"));
    let issued = {
        let (pki_dir, hosts) = (pki_dir.clone(), hosts.clone());
        tokio::task::spawn_blocking(move || issue_all(&pki_dir, &hosts))
            .await
            .map_err(|e| BenchIngestError::Invalid(format!("certificate thread: {e}")))?
    };
    issued?;
    let pki_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "nines-bench ingest: {} agent certificates issued in {pki_seconds:.1} s",
        args.agents
    );

    let token = nines_aggregator::util::random::api_token()?;
    let (config_path, ingest_addr, api_addr) = write_config(dir, &token, args.agents)?;
    let log_path = dir.join("aggregator.log");
    let mut aggregator = Aggregator::start(args, &config_path, &log_path).await?;
    aggregator.wait_ready(api_addr, &log_path).await?;

    let started = Instant::now();
    let conns = connect_all(&pki_dir, &hosts, ingest_addr, args).await?;
    let connect_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "nines-bench ingest: {} agents connected in {connect_seconds:.1} s",
        args.agents
    );

    // Every agent ticks at its own offset within the interval, so batches arrive evenly.
    let t0 = Instant::now() + Duration::from_millis(200);
    let schedule = Schedule {
        t0,
        base_ts_ms: quantised_now_ms(args.batch_interval),
        measure_from: t0 + args.warmup,
        measure_until: t0 + args.warmup + args.duration,
        interval: args.batch_interval,
        window: args.window,
    };
    let live = Arc::new(Live::default());
    let mut tasks = tokio::task::JoinSet::new();
    let n = conns.len() as u32;
    for (i, conn) in conns.into_iter().enumerate() {
        let offset = args.batch_interval * i as u32 / n;
        let plan = SeriesPlan::new(i as u64, args.series_per_agent);
        tasks.spawn(agent(conn, plan, schedule, offset, live.clone()));
    }
    let progress = tokio::spawn(progress(schedule, live.clone()));

    tokio::time::sleep_until(schedule.measure_from).await;
    let cpu_start = (
        aggregator.cpu_seconds(),
        process_cpu_seconds("/proc/self/stat"),
    );
    let backlog_at_start = live.unacked.load(Ordering::Relaxed);
    tokio::time::sleep_until(schedule.measure_until).await;
    let window_seconds = schedule.measure_until.duration_since(schedule.measure_from);
    let cpu_end = (
        aggregator.cpu_seconds(),
        process_cpu_seconds("/proc/self/stat"),
    );
    let backlog_at_end = live.unacked.load(Ordering::Relaxed);
    let (aggregator_rss_bytes, aggregator_hwm_bytes) = aggregator.memory();
    let store_path = dir.join("nines.redb");
    let file_size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let store_bytes_at_end_of_window = file_size(&store_path);
    progress.abort();

    let mut stats = AgentStats::default();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(s) => {
                if let Some(e) = &s.error {
                    failures.push(e.clone());
                }
                stats.merge(s);
            }
            Err(e) => failures.push(format!("agent task: {e}")),
        }
    }

    let (hosts_stored, series_stored) = stored_counts(api_addr, &token, &hosts).await;
    let aggregator_exit = aggregator.stop().await;
    let cores = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (b - a) / window_seconds.as_secs_f64(),
        _ => f64::NAN,
    };
    Ok(Report {
        pki_seconds,
        connect_seconds,
        batches_sent: stats.sent,
        batches_acked: stats.acked,
        batches_skipped: stats.skipped,
        samples_acked_total: stats.samples_acked,
        window_samples_acked: stats.window_samples_acked,
        window_batches_acked: stats.window_batches_acked,
        window_seconds: window_seconds.as_secs_f64(),
        backlog_at_start,
        backlog_at_end,
        latency_ms: Percentiles::of_micros(stats.latencies_us),
        send_lag_ms: Percentiles::of_micros(stats.lags_us),
        aggregator_cpu_cores: cores(cpu_start.0, cpu_end.0),
        client_cpu_cores: cores(cpu_start.1, cpu_end.1),
        aggregator_rss_bytes,
        aggregator_hwm_bytes,
        store_bytes_at_end_of_window,
        store_bytes: file_size(&store_path),
        hosts_stored,
        series_stored,
        aggregator_exit,
        agent_failure: failures.first().map(|f| (failures.len(), f.clone())),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_batch_defines_every_series_once_and_later_batches_only_refer_to_them() {
        let mut plan = SeriesPlan::new(7, 23);
        let first = plan.batch(1, 1_000);
        assert_eq!(first.series_defs.len(), 23);
        assert_eq!(first.points.len(), 23);
        let second = plan.batch(2, 2_000);
        assert!(second.series_defs.is_empty());
        assert!(second.points.iter().all(|p| p.ts_ms == 2_000));
        let mut keys: Vec<_> = first
            .series_defs
            .iter()
            .map(|d| (d.name.clone(), d.labels.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 23, "every series is distinct");
        for d in &first.series_defs {
            nines_common::SeriesKey::from_parts(d.name.clone(), d.labels.clone())
                .validate()
                .unwrap();
        }
        // Constants stay, counters never go down, ratios stay in [0, 1].
        for (a, b) in first.points.iter().zip(&second.points) {
            match plan.series[a.series as usize].kind {
                Kind::Constant => assert_eq!(a.value, b.value),
                Kind::Counter => assert!(b.value >= a.value),
                Kind::NoisyRatio => assert!((0.0..=1.0).contains(&b.value)),
                _ => assert!(b.value.is_finite() && b.value >= 0.0),
            }
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of_micros((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!(p.0, Some((50.0, 99.0, 100.0)));
        assert!(Percentiles::of_micros(Vec::new()).0.is_none());
    }

    #[test]
    fn proc_stat_cpu_survives_odd_command_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(
            &path,
            "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 5 0 0\n",
        )
        .unwrap();
        assert_eq!(process_cpu_seconds(path.to_str().unwrap()), Some(4.0));
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").as_deref(),
            Some("Wikipedia")
        );
        assert_eq!(dechunk("zz\r\n"), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
