//! `nines-aggregator bench ingest`: simulated agents stream over real mTLS, speaking the real
//! protocol, to a real aggregator started as a child process in the same run; the report gives
//! acked samples/s, ack latency, the aggregator's CPU and memory, and the store's bytes/sample.
//!
//! Only acked samples count: the aggregator acks a batch after its durable commit, so the rate
//! measured is the rate at which samples become crash-safe.

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

use crate::config::{Config, ConfigError};
use crate::pki::{self, PkiDir, PkiError};

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

/// Flags of `bench ingest`.
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
    /// The aggregator binary to measure. Default: this executable.
    #[arg(long, value_name = "PATH")]
    pub aggregator_bin: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
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
            eprintln!("bench ingest: kept {}", dir.display());
        }
        (Err(_), _) => eprintln!("bench ingest: kept {} for inspection", dir.display()),
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

/// Everything measured in one run.
#[derive(Debug)]
struct Report {
    pki_seconds: f64,
    connect_seconds: f64,
    batches_sent: u64,
    batches_acked: u64,
    batches_skipped: u64,
    samples_acked_total: u64,
    window_samples_acked: u64,
    window_batches_acked: u64,
    window_seconds: f64,
    /// Samples sent and not yet acked when the window opened and when it closed. Acks in the
    /// window for a backlog left by the warm-up count in samples/s; a backlog that grows means
    /// the aggregator does not keep up with the offered rate.
    backlog_at_start: u64,
    backlog_at_end: u64,
    latency_ms: Percentiles,
    send_lag_ms: Percentiles,
    aggregator_cpu_cores: f64,
    client_cpu_cores: f64,
    aggregator_rss_bytes: u64,
    aggregator_hwm_bytes: u64,
    store_bytes_at_end_of_window: u64,
    store_bytes: u64,
    hosts_stored: u64,
    series_stored: u64,
    aggregator_exit: String,
    agent_failure: Option<(usize, String)>,
}

/// p50, p99 and max of a sample, in milliseconds; `None` without samples.
#[derive(Debug, Clone, Copy)]
struct Percentiles(Option<(f64, f64, f64)>);

impl Percentiles {
    fn of_micros(mut v: Vec<u32>) -> Self {
        if v.is_empty() {
            return Self(None);
        }
        v.sort_unstable();
        // Nearest rank.
        let rank = |p: f64| {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            f64::from(v[i]) / 1000.0
        };
        Self(Some((rank(0.50), rank(0.99), rank(1.0))))
    }

    fn json(self) -> Value {
        match self.0 {
            Some((p50, p99, max)) => json!({ "p50": p50, "p99": p99, "max": max }),
            None => json!({ "p50": null, "p99": null, "max": null }),
        }
    }

    fn text(self) -> String {
        match self.0 {
            Some((p50, p99, max)) => format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"),
            None => "no batch was acked in the window".into(),
        }
    }
}

impl Report {
    fn samples_per_second(&self) -> f64 {
        self.window_samples_acked as f64 / self.window_seconds
    }

    fn bytes_per_sample(&self) -> Option<f64> {
        (self.samples_acked_total > 0)
            .then(|| self.store_bytes as f64 / self.samples_acked_total as f64)
    }

    fn to_json(&self, args: &Args) -> Value {
        json!({
            "agents": args.agents,
            "series_per_agent": args.series_per_agent,
            "batch_interval_seconds": args.batch_interval.as_secs_f64(),
            "window": args.window,
            "warmup_seconds": args.warmup.as_secs_f64(),
            "duration_seconds": self.window_seconds,
            "offered_samples_per_second":
                (args.agents * args.series_per_agent) as f64 / args.batch_interval.as_secs_f64(),
            "samples_per_second": self.samples_per_second(),
            "batches_per_second": self.window_batches_acked as f64 / self.window_seconds,
            "ack_latency_ms": self.latency_ms.json(),
            "send_lag_ms": self.send_lag_ms.json(),
            "batches_sent": self.batches_sent,
            "batches_acked": self.batches_acked,
            "batches_skipped": self.batches_skipped,
            "samples_acked": self.samples_acked_total,
            "backlog_samples_at_start": self.backlog_at_start,
            "backlog_samples_at_end": self.backlog_at_end,
            "aggregator_cpu_cores": self.aggregator_cpu_cores,
            "client_cpu_cores": self.client_cpu_cores,
            "aggregator_rss_bytes": self.aggregator_rss_bytes,
            "aggregator_peak_rss_bytes": self.aggregator_hwm_bytes,
            "store_bytes": self.store_bytes,
            "store_bytes_at_end_of_window": self.store_bytes_at_end_of_window,
            "bytes_per_sample": self.bytes_per_sample(),
            "hosts_stored": self.hosts_stored,
            "series_stored": self.series_stored,
            "certificates_seconds": self.pki_seconds,
            "connect_seconds": self.connect_seconds,
            "aggregator_exit": self.aggregator_exit,
            "agents_failed": self.agent_failure.as_ref().map_or(0, |f| f.0),
        })
    }

    fn print(&self, args: &Args) {
        let mut out = std::io::stdout().lock();
        if args.json {
            let _ = writeln!(out, "{}", self.to_json(args));
            return;
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let offered =
            (args.agents * args.series_per_agent) as f64 / args.batch_interval.as_secs_f64();
        let lines = [
            format!(
                "bench ingest: {} agents x {} series, one batch per {} each, window {}; \
                 {:.0} s measured after {} warm-up",
                args.agents,
                args.series_per_agent,
                humantime::format_duration(args.batch_interval),
                args.window,
                self.window_seconds,
                humantime::format_duration(args.warmup),
            ),
            format!(
                "  samples acked/s     {:>12}   (offered {}, batches acked/s {:.0})",
                thousands(self.samples_per_second()),
                thousands(offered),
                self.window_batches_acked as f64 / self.window_seconds
            ),
            format!("  ack latency         {}", self.latency_ms.text()),
            format!(
                "  unacked samples     {} when the window opened, {} when it closed",
                thousands(self.backlog_at_start as f64),
                thousands(self.backlog_at_end as f64)
            ),
            format!(
                "  batches             sent {}, acked {}, skipped with a full window {}",
                self.batches_sent, self.batches_acked, self.batches_skipped
            ),
            format!(
                "  aggregator          CPU {:.2} cores, RSS {:.1} MiB at the end of the window, \
                 peak {:.1} MiB, exit: {}",
                self.aggregator_cpu_cores,
                mib(self.aggregator_rss_bytes),
                mib(self.aggregator_hwm_bytes),
                self.aggregator_exit
            ),
            format!(
                "  store               {:.1} MiB for {} samples = {} bytes/sample; {} hosts, {} series",
                mib(self.store_bytes),
                thousands(self.samples_acked_total as f64),
                self.bytes_per_sample()
                    .map_or_else(|| "-".to_owned(), |b| format!("{b:.2}")),
                self.hosts_stored,
                thousands(self.series_stored as f64),
            ),
            format!(
                "  bench client        CPU {:.2} cores, send lag {}",
                self.client_cpu_cores,
                self.send_lag_ms.text()
            ),
            format!(
                "  setup               {} certificates in {:.1} s, {} agents connected in {:.1} s",
                args.agents, self.pki_seconds, args.agents, self.connect_seconds
            ),
        ];
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
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
        "bench ingest: {} agent certificates issued in {pki_seconds:.1} s",
        args.agents
    );

    let token = random_hex(24);
    let (config_path, ingest_addr, api_addr) = write_config(dir, &token)?;
    let log_path = dir.join("aggregator.log");
    let mut aggregator = Aggregator::start(args, &config_path, &log_path).await?;
    aggregator.wait_ready(api_addr, &log_path).await?;

    let started = Instant::now();
    let conns = connect_all(&pki_dir, &hosts, ingest_addr, args).await?;
    let connect_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "bench ingest: {} agents connected in {connect_seconds:.1} s",
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

fn host_ids(n: usize) -> Result<Vec<HostId>, BenchIngestError> {
    let width = n.to_string().len();
    (0..n)
        .map(|i| {
            HostId::new(format!("bench-{i:0width$}"))
                .map_err(|e| BenchIngestError::Invalid(e.to_string()))
        })
        .collect()
}

/// A CA, the server certificate and one agent certificate per host (the certificate's common
/// name is the host id, so every simulated agent needs its own).
fn issue_all(dir: &PkiDir, hosts: &[HostId]) -> Result<(), PkiError> {
    pki::init(dir, &["localhost".into(), "127.0.0.1".into()], "localhost")?;
    let per_thread = hosts.len().div_ceil(PKI_THREADS).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = hosts
            .chunks(per_thread)
            .map(|chunk| {
                s.spawn(move || -> Result<(), PkiError> {
                    for host in chunk {
                        pki::issue(dir, host, 2)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(r) => r?,
                Err(_) => return Err(PkiError::Cert("certificate thread panicked".into())),
            }
        }
        Ok(())
    })
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free port on 127.0.0.1. Another process could take it before the aggregator binds it;
/// the aggregator then fails to start and says so in its log.
fn free_port(path: &Path) -> Result<SocketAddr, BenchIngestError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io(path))
}

fn write_config(
    dir: &Path,
    token: &str,
) -> Result<(PathBuf, SocketAddr, SocketAddr), BenchIngestError> {
    let path = dir.join("aggregator.toml");
    let ingest = free_port(&path)?;
    let mut api = free_port(&path)?;
    while api == ingest {
        api = free_port(&path)?;
    }
    let text = format!(
        "# Written by `nines-aggregator bench ingest`.\n\
         [ingest]\nlisten = \"{ingest}\"\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\n\
         [api]\nlisten = \"{api}\"\n\n[[api.tokens]]\nname = \"bench\"\nrole = \"read\"\nsha256 = \"{hash}\"\n\n\
         [store]\npath = \"nines.redb\"\n",
        hash = crate::http::token_hash(token),
    );
    std::fs::write(&path, &text).map_err(io(&path))?;
    Config::parse(&text, &path)?;
    Ok((path, ingest, api))
}

/// The aggregator under test, a child process so that its memory and CPU are its own.
#[derive(Debug)]
struct Aggregator {
    child: Child,
    pid: u32,
}

impl Aggregator {
    async fn start(args: &Args, config: &Path, log_path: &Path) -> Result<Self, BenchIngestError> {
        let bin = match &args.aggregator_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe().map_err(|source| BenchIngestError::Spawn {
                bin: PathBuf::from("nines-aggregator"),
                source,
            })?,
        };
        let log = std::fs::File::create(log_path).map_err(io(log_path))?;
        let log2 = log.try_clone().map_err(io(log_path))?;
        let child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("NINES_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BenchIngestError::Spawn {
                bin: bin.clone(),
                source,
            })?;
        let pid = child.id().ok_or_else(|| BenchIngestError::NotReady {
            why: "exited at once".into(),
            log: log_path.to_owned(),
        })?;
        Ok(Self { child, pid })
    }

    async fn wait_ready(&mut self, api: SocketAddr, log: &Path) -> Result<(), BenchIngestError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchIngestError::NotReady {
                    why: format!("it exited ({status})"),
                    log: log.to_owned(),
                });
            }
            if let Ok((200, _)) = http_get(api, "/healthz", "").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchIngestError::NotReady {
                    why: "no answer on /healthz within 30 s".into(),
                    log: log.to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// (VmRSS, VmHWM) in bytes.
    fn memory(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |k| k * 1024)
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }

    /// SIGTERM, then up to 60 s for the last commit; returns how it ended.
    async fn stop(mut self) -> String {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => "clean".into(),
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                "killed after 60 s without exiting".into()
            }
        }
    }
}

/// utime + stime of a process, in seconds.
fn process_cpu_seconds(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// A minimal HTTP/1.1 GET, enough for the aggregator's own API on loopback.
async fn http_get(addr: SocketAddr, path: &str, token: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(bad)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Hosts the aggregator knows, and the sum of their series, read through its API.
async fn stored_counts(api: SocketAddr, token: &str, hosts: &[HostId]) -> (u64, u64) {
    let count = |body: &str, key: &str| {
        serde_json::from_str::<Value>(body).ok().and_then(|v| {
            v.get(key)
                .and_then(|a| a.as_array())
                .map(|a| a.len() as u64)
        })
    };
    let known = match http_get(api, "/api/v1/hosts", token).await {
        Ok((200, body)) => count(&body, "hosts").unwrap_or(0),
        _ => 0,
    };
    let mut series = 0;
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for host in hosts {
        let (sem, token, path) = (
            sem.clone(),
            token.to_owned(),
            format!("/api/v1/series?host={host}"),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            match http_get(api, &path, &token).await {
                Ok((200, body)) => count(&body, "series"),
                _ => None,
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        series += r.ok().flatten().unwrap_or(0);
    }
    (known, series)
}

type Reader = FrameReader<ReadHalf<TlsStream<TcpStream>>>;
type Writer = FrameWriter<WriteHalf<TlsStream<TcpStream>>>;

/// An agent's connection after `Welcome`.
#[derive(Debug)]
struct Conn {
    host: HostId,
    reader: Reader,
    writer: Writer,
    next_seq: u64,
}

async fn connect_all(
    pki_dir: &PkiDir,
    hosts: &[HostId],
    addr: SocketAddr,
    args: &Args,
) -> Result<Vec<Conn>, BenchIngestError> {
    let ca = std::fs::read(pki_dir.ca_cert()).map_err(io(&pki_dir.ca_cert()))?;
    let sem = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let (cert_path, key_path) = (pki_dir.agent_cert(host), pki_dir.agent_key(host));
        let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read(&key_path).map_err(io(&key_path))?;
        let config = Arc::new(nines_common::tls::client_config(&ca, &cert, &key)?);
        let (host, sem) = (host.clone(), sem.clone());
        let interval_ms = u32::try_from(args.batch_interval.as_millis()).unwrap_or(u32::MAX);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = connect(config, addr, &host, interval_ms).await;
            (i, host, r)
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..hosts.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, host, r) =
            joined.map_err(|e| BenchIngestError::Invalid(format!("connect: {e}")))?;
        match r {
            Ok(c) => conns[i] = Some(c),
            Err(message) => return Err(BenchIngestError::Connect { host, message }),
        }
    }
    Ok(conns.into_iter().flatten().collect())
}

async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &HostId,
    interval_ms: u32,
) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (r, w) = tokio::io::split(tls);
    let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES);
    let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES);
    writer
        .write(&Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            agent_version: format!("bench-ingest/{}", env!("CARGO_PKG_VERSION")),
            host_id: host.to_string(),
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            os: "simulated".into(),
            arch: std::env::consts::ARCH.into(),
            kernel: "simulated".into(),
            interval_ms,
        }))
        .await
        .map_err(|e| format!("Hello: {e}"))?;
    match reader.read().await {
        Ok(Some(Message::Welcome(w))) => Ok(Conn {
            host: host.clone(),
            reader,
            writer,
            next_seq: w.resume_from_seq.max(1),
        }),
        Ok(Some(Message::Error(e))) => Err(format!("refused: {}: {}", e.code, e.message)),
        Ok(Some(other)) => Err(format!("expected Welcome, got {other:?}")),
        Ok(None) => Err("closed before Welcome".into()),
        Err(e) => Err(format!("waiting for Welcome: {e}")),
    }
}

/// When every agent sends and when the measurement window is.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    t0: Instant,
    base_ts_ms: i64,
    measure_from: Instant,
    measure_until: Instant,
    interval: Duration,
    window: usize,
}

fn quantised_now_ms(interval: Duration) -> i64 {
    let step = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let now = nines_common::model::now_ms();
    (now / step + 1) * step
}

/// What one agent saw.
#[derive(Debug, Default)]
struct AgentStats {
    sent: u64,
    acked: u64,
    skipped: u64,
    samples_acked: u64,
    window_samples_acked: u64,
    window_batches_acked: u64,
    /// Ack latency of batches sent inside the window, microseconds.
    latencies_us: Vec<u32>,
    /// How late each send inside the window started after its tick, microseconds: the
    /// bench client's own delay, which must stay small for the latencies to mean anything.
    lags_us: Vec<u32>,
    error: Option<String>,
}

impl AgentStats {
    fn merge(&mut self, o: AgentStats) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.skipped += o.skipped;
        self.samples_acked += o.samples_acked;
        self.window_samples_acked += o.window_samples_acked;
        self.window_batches_acked += o.window_batches_acked;
        self.latencies_us.extend(o.latencies_us);
        self.lags_us.extend(o.lags_us);
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A batch in flight.
#[derive(Debug)]
struct Pending {
    seq: u64,
    sent: Instant,
    points: u64,
}

/// One simulated agent: one batch per tick while the window has room, acks read as they come,
/// then a drain of the last acks and a TLS close.
async fn agent(
    mut conn: Conn,
    mut plan: SeriesPlan,
    s: Schedule,
    offset: Duration,
    live: Arc<Live>,
) -> AgentStats {
    let mut st = AgentStats::default();
    let first_tick = s.t0 + offset;
    let mut ticker = tokio::time::interval_at(first_tick, s.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let interval_ms = i64::try_from(s.interval.as_millis()).unwrap_or(i64::MAX);
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(s.window);
    let mut sending = true;
    let drain_deadline = s.measure_until + DRAIN_LIMIT;
    let in_window = |t: Instant| t >= s.measure_from && t < s.measure_until;
    loop {
        if !sending && pending.is_empty() {
            break;
        }
        tokio::select! {
            msg = conn.reader.read() => {
                let now = Instant::now();
                match msg {
                    Ok(Some(Message::Ack(ack))) => {
                        while pending.front().is_some_and(|p| p.seq <= ack.through_seq) {
                            let Some(p) = pending.pop_front() else { break };
                            st.acked += 1;
                            st.samples_acked += p.points;
                            live.acked.fetch_add(p.points, Ordering::Relaxed);
                            live.unacked.fetch_sub(p.points, Ordering::Relaxed);
                            if in_window(p.sent) {
                                st.latencies_us.push(micros(now - p.sent));
                            }
                            if in_window(now) {
                                st.window_batches_acked += 1;
                                st.window_samples_acked += p.points;
                            }
                        }
                    }
                    Ok(Some(Message::Error(e))) => {
                        st.error = Some(format!("{}: aggregator sent {}: {}", conn.host, e.code, e.message));
                        break;
                    }
                    Ok(Some(other)) => {
                        st.error = Some(format!("{}: unexpected {other:?}", conn.host));
                        break;
                    }
                    Ok(None) => {
                        st.error = Some(format!("{}: connection closed with {} batches unacked", conn.host, pending.len()));
                        break;
                    }
                    Err(e) => {
                        st.error = Some(format!("{}: {e}", conn.host));
                        break;
                    }
                }
            }
            tick = ticker.tick(), if sending => {
                if tick >= s.measure_until {
                    sending = false;
                    continue;
                }
                if pending.len() >= s.window {
                    st.skipped += 1;
                    continue;
                }
                let k = (tick - first_tick).as_nanos() / s.interval.as_nanos().max(1);
                let ts_ms = s.base_ts_ms + i64::try_from(k).unwrap_or(0) * interval_ms;
                let batch = plan.batch(conn.next_seq, ts_ms);
                let points = batch.points.len() as u64;
                let sent = Instant::now();
                if in_window(sent) {
                    st.lags_us.push(micros(sent - tick));
                }
                if let Err(e) = conn.writer.write(&Message::Batch(batch)).await {
                    st.error = Some(format!("{}: sending batch: {e}", conn.host));
                    break;
                }
                pending.push_back(Pending { seq: conn.next_seq, sent, points });
                live.unacked.fetch_add(points, Ordering::Relaxed);
                st.sent += 1;
                conn.next_seq += 1;
            }
            _ = tokio::time::sleep_until(drain_deadline), if !sending => {
                st.error = Some(format!(
                    "{}: {} batches still unacked {} s after the end",
                    conn.host,
                    pending.len(),
                    DRAIN_LIMIT.as_secs()
                ));
                break;
            }
        }
    }
    let _ = conn.writer.shutdown().await;
    st
}

/// Counters every agent updates, read while the agents run.
#[derive(Debug, Default)]
struct Live {
    /// Samples acked since the start.
    acked: AtomicU64,
    /// Samples sent and not yet acked.
    unacked: AtomicU64,
}

/// Acked samples per second every 10 s on stderr, so a long run shows it is alive.
async fn progress(s: Schedule, live: Arc<Live>) {
    let step = Duration::from_secs(10);
    let mut ticker = tokio::time::interval_at(s.t0 + step, step);
    let mut last = 0;
    loop {
        let t = ticker.tick().await;
        let now = live.acked.load(Ordering::Relaxed);
        let phase = if t < s.measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        eprintln!(
            "bench ingest: {:>4} s ({phase}): {} samples acked/s, {} unacked",
            (t - s.t0).as_secs(),
            thousands((now - last) as f64 / step.as_secs_f64()),
            thousands(live.unacked.load(Ordering::Relaxed) as f64)
        );
        last = now;
    }
}

/// A small deterministic generator (SplitMix64), so runs are repeatable and cost nothing.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The kinds of series an agent sends, in rotation: what host metrics look like to a codec.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Never changes (sizes, totals).
    Constant,
    /// A monotonic byte counter, sometimes idle.
    Counter,
    /// A ratio in [0, 1] with full-precision noise around a level.
    NoisyRatio,
    /// Resident bytes drifting by whole pages.
    Gauge,
    /// A load average with two decimals.
    Load,
}

const KINDS: [Kind; 5] = [
    Kind::Constant,
    Kind::Counter,
    Kind::NoisyRatio,
    Kind::Gauge,
    Kind::Load,
];

#[derive(Debug, Clone)]
struct SeriesState {
    kind: Kind,
    value: f64,
    level: f64,
}

/// An agent's series and the state that makes their next values.
#[derive(Debug)]
struct SeriesPlan {
    rng: Rng,
    series: Vec<SeriesState>,
    defs: Option<Vec<SeriesDef>>,
}

impl SeriesPlan {
    fn new(agent: u64, n: usize) -> Self {
        let mut rng = Rng(0x6265_6e63_685f_696e ^ agent.wrapping_mul(0x9e37_79b9));
        let mut series = Vec::with_capacity(n);
        let mut defs = Vec::with_capacity(n);
        for i in 0..n {
            let kind = KINDS[i % KINDS.len()];
            let (name, label, label_value) = match kind {
                Kind::Constant => ("filesystem_size_bytes", "mount", format!("/srv/{i}")),
                Kind::Counter => (
                    "network_receive_bytes_total",
                    "interface",
                    format!("eth{i}"),
                ),
                Kind::NoisyRatio => ("cpu_usage_ratio", "cpu", i.to_string()),
                Kind::Gauge => (
                    "process_resident_memory_bytes",
                    "process",
                    format!("worker-{i}"),
                ),
                Kind::Load => ("load_average", "window", format!("w{i}")),
            };
            let (value, level) = match kind {
                Kind::Constant => ((1 + rng.below(4096)) as f64 * 1_048_576.0, 0.0),
                Kind::Counter => (rng.below(1 << 40) as f64, 0.0),
                Kind::NoisyRatio => (0.0, rng.f64() * 0.8),
                Kind::Gauge => ((rng.below(1 << 18) * 4096) as f64, 0.0),
                Kind::Load => (0.0, rng.f64() * 4.0),
            };
            series.push(SeriesState { kind, value, level });
            defs.push(SeriesDef {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                name: name.to_owned(),
                labels: vec![(label.to_owned(), label_value)],
            });
        }
        Self {
            rng,
            series,
            defs: Some(defs),
        }
    }

    /// The next batch: one point per series at `ts_ms`; the first batch also defines them.
    fn batch(&mut self, seq: u64, ts_ms: i64) -> Batch {
        let rng = &mut self.rng;
        let points = self
            .series
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let value = match s.kind {
                    Kind::Constant => s.value,
                    Kind::Counter => {
                        if rng.below(8) != 0 {
                            s.value += rng.below(2_000_000) as f64;
                        }
                        s.value
                    }
                    Kind::NoisyRatio => (s.level + (rng.f64() - 0.5) * 0.2).clamp(0.0, 1.0),
                    Kind::Gauge => {
                        let pages = rng.below(33) as f64 - 16.0;
                        s.value = (s.value + pages * 4096.0).max(0.0);
                        s.value
                    }
                    Kind::Load => {
                        s.value =
                            (0.9 * s.value + 0.1 * (s.level + (rng.f64() - 0.5) * 2.0)).max(0.0);
                        (s.value * 100.0).round() / 100.0
                    }
                };
                Point {
                    series: u32::try_from(i).unwrap_or(u32::MAX),
                    ts_ms,
                    value,
                }
            })
            .collect();
        Batch {
            seq,
            series_defs: self.defs.take().unwrap_or_default(),
            points,
        }
    }
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
