//! `nines-bench store`: the store measured end to end, on real redb files:
//! bytes per sample on disk for the synthetic host-metric mix (and for any existing store
//! file), memory per active series, restart time with an hour of open heads, and a 30-day
//! range query at a 1 h step.

/// Flags of `nines-bench store`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// A few seconds at a tiny scale (2 series per kind of 720 points, 20 hosts of 10 series,
    /// 36 ticks, 5 query runs), to check that the benchmark works; overrides those flags.
    #[arg(long)]
    quick: bool,
}

/// `nines-bench store`.
pub async fn main(args: Args) -> Result<(), crate::Failure> {
    let mut opts = StoreBenchOptions {
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
    if args.quick {
        opts.mix_series_per_kind = 2;
        opts.mix_points = 720;
        opts.hosts = 20;
        opts.series_per_host = 10;
        opts.ticks = 36;
        opts.query_runs = 5;
    }
    if opts.mix_series_per_kind == 0
        || opts.mix_points == 0
        || opts.hosts == 0
        || opts.series_per_host == 0
        || opts.ticks == 0
    {
        return Err(crate::Failure::Usage(
            "--series, --mix-points, --hosts, --series-per-host and --ticks must be at least 1"
                .into(),
        ));
    }
    run(&opts, std::io::stdout().lock())
        .await
        .map_err(|e| crate::Failure::Run(e.to_string()))
}

mod dump;
#[allow(unused_imports)]
mod files;
#[allow(unused_imports)]
use files::*;

use dump::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};
use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

use crate::storage::{self, MixSpec};
use nines_aggregator::store::{
    AggFn, BatchWrite, HelloWrite, Step, Store, StoreError, StoreOptions,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct StoreBenchOptions {
    /// Working directory (a temporary one if `None`).
    pub dir: Option<PathBuf>,
    /// Series per kind of the mix (six kinds, 7,200 points each at 15 s), and points per
    /// series.
    pub mix_series_per_kind: usize,
    pub mix_points: usize,
    /// Hosts and series per host of the memory and restart part.
    pub hosts: usize,
    pub series_per_host: usize,
    /// Ticks (10 s apart) written for the memory and restart part: 360 is an hour.
    pub ticks: usize,
    /// Also report bytes per sample of this existing store file (copied first).
    pub existing: Option<PathBuf>,
    /// Also write the existing store's values again this many ms apart (the n-th point of
    /// every series at the n-th tick) into a new store, and report that settled.
    pub restamp_ms: Option<i64>,
    /// Timed query runs; the median is reported.
    pub query_runs: usize,
}

impl Default for StoreBenchOptions {
    fn default() -> Self {
        Self {
            dir: None,
            mix_series_per_kind: 32,
            mix_points: MixSpec::default().points_per_series,
            hosts: 1000,
            series_per_host: 100,
            ticks: 360,
            existing: None,
            restamp_ms: None,
            query_runs: 200,
        }
    }
}

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum StoreBenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Closes every head, merges every run of chunks, and compacts the file.
async fn settle(
    store: Store,
    writer: nines_aggregator::store::WriterHandle,
    path: &Path,
) -> Result<(u64, u64), StoreBenchError> {
    let closed = store.flush().await?;
    let merged = store.compact().await?;
    drop(store);
    writer.join();
    Store::compact_file(path)?;
    Ok((closed, merged))
}

fn report_file(
    out: &mut impl Write,
    what: &str,
    path: &Path,
    samples: u64,
) -> Result<f64, StoreBenchError> {
    let (file, tables) = table_bytes(path)?;
    let per = file as f64 / samples as f64;
    writeln!(
        out,
        "{what}: {samples} samples, file {file} bytes: {per:.3} bytes/sample"
    )?;
    for (name, bytes) in tables {
        writeln!(
            out,
            "  table {name:<10} {bytes:>12} bytes  {:.3} bytes/sample",
            bytes as f64 / samples as f64
        )?;
    }
    Ok(per)
}

/// Runs every part and prints the results to `out`.
pub async fn run(opts: &StoreBenchOptions, mut out: impl Write) -> Result<(), StoreBenchError> {
    let tmp = tempfile::tempdir()?;
    let dir = opts.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    // 1. Memory per active series at steady state: default options, heads half full (one
    // chunk closed and half of the next one written). The second half of the series is
    // measured against the first, so fixed costs (the page cache, buffers) cancel out.
    let chunk_points = StoreOptions::default().chunk_points;
    let path = dir.join("memory.redb");
    let _ = std::fs::remove_file(&path);
    let (store, writer) = Store::open_with(&path, StoreOptions::default())?;
    let ticks = chunk_points + chunk_points / 2;
    let t0 = (nines_common::model::now_ms() / 10_000 - ticks as i64) * 10_000;
    let half = opts.hosts / 2;
    let first = register(&store, 0..half, opts.series_per_host).await?;
    fill(&store, &first, ticks, t0).await?;
    let (rss_a, _) = rss();
    let second = register(&store, half..opts.hosts, opts.series_per_host).await?;
    fill(&store, &second, ticks, t0).await?;
    let (rss_b, hwm) = rss();
    let series_b = ((opts.hosts - half) * opts.series_per_host) as u64;
    let series = (opts.hosts * opts.series_per_host) as u64;
    writeln!(
        out,
        "memory at {series} active series, heads half full ({} points each): RSS {:.1} MiB (peak {:.1} MiB), {:.0} bytes per series all in; the second {series_b} series added {:.0} bytes each",
        ticks - chunk_points,
        rss_b as f64 / 1048576.0,
        hwm as f64 / 1048576.0,
        rss_b as f64 / series as f64,
        rss_b.saturating_sub(rss_a) as f64 / series_b as f64
    )?;
    drop(store);
    writer.join();
    drop((first, second));

    // 2. The mix, through the store, settled: bytes per sample on disk.
    let spec = MixSpec {
        series_per_kind: opts.mix_series_per_kind,
        points_per_series: opts.mix_points,
        ..MixSpec::default()
    };
    let mix = storage::generate(&spec);
    let samples: u64 = mix.iter().map(|s| s.ts.len() as u64).sum();
    let path = dir.join("mix.redb");
    let _ = std::fs::remove_file(&path);
    let (store, writer) = Store::open_with(&path, StoreOptions::default())?;
    let host = HostId::new("mix").map_err(|e| StoreBenchError::Other(e.to_string()))?;
    store.hello(hello_for(&host, 15_000)).await?;
    let ids: Vec<u32> = mix
        .iter()
        .map(|s| {
            store.series_id(
                &host,
                SeriesKey::new(s.kind.metric(), &[("series", &s.index.to_string())]),
            )
        })
        .collect::<Result<_, _>>()?;
    let ticks = mix.iter().map(|s| s.ts.len()).max().unwrap_or(0);
    let started = Instant::now();
    let batches: Vec<BatchWrite> = (0..ticks)
        .map(|t| BatchWrite {
            host: host.clone(),
            seq: t as u64 + 1,
            points: mix
                .iter()
                .zip(&ids)
                .filter_map(|(s, id)| Some((*id, *s.ts.get(t)?, *s.values.get(t)?)))
                .collect(),
        })
        .collect();
    // One commit per tick, as ticks arrive from agents: heads close at chunk_points and the
    // compaction pass merges the chunks, as in production.
    for b in batches {
        store.write_batch(b).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "mix written through the store, one durable commit per tick: {samples} samples in {secs:.1} s ({:.0} samples/s)",
        samples as f64 / secs
    )?;
    let (closed, merged) = settle(store, writer, &path).await?;
    writeln!(
        out,
        "settling: {closed} heads closed, {merged} chunks merged away"
    )?;
    report_file(&mut out, "host-metric mix at 15 s, settled", &path, samples)?;

    // 3. An existing store (real agent data), settled on a copy.
    if let Some(existing) = &opts.existing {
        let copy = dir.join("existing.redb");
        std::fs::copy(existing, &copy)?;
        let (store, writer) = Store::open_with(&copy, StoreOptions::default())?;
        let samples = count_samples(&store)?;
        settle(store, writer, &copy).await?;
        report_file(
            &mut out,
            &format!("{}, settled", existing.display()),
            &copy,
            samples,
        )?;
        if let Some(interval_ms) = opts.restamp_ms {
            let (series, samples) =
                restamp(&copy, &dir.join("restamped.redb"), interval_ms).await?;
            writeln!(
                out,
                "the same values written again {interval_ms} ms apart, one durable commit per tick ({series} series):"
            )?;
            report_file(
                &mut out,
                &format!("{}, restamped, settled", existing.display()),
                &dir.join("restamped.redb"),
                samples,
            )?;
        }
    }

    // 4. Restart with an hour of open heads: every head holds the whole run.
    let path = dir.join("heads.redb");
    let _ = std::fs::remove_file(&path);
    let options = StoreOptions {
        chunk_points: opts.ticks + 1,
        head_max_age: Duration::from_secs(3 * 3600),
        ..StoreOptions::default()
    };
    let (store, writer) = Store::open_with(&path, options.clone())?;
    let hosts = register(&store, 0..opts.hosts, opts.series_per_host).await?;
    let t0 = (nines_common::model::now_ms() / 10_000 - opts.ticks as i64) * 10_000;
    let started = Instant::now();
    fill(&store, &hosts, opts.ticks, t0).await?;
    let secs = started.elapsed().as_secs_f64();
    let points = series * opts.ticks as u64;
    writeln!(
        out,
        "{series} active series, {} points each in open heads ({points} points) written in {secs:.1} s ({:.0} samples/s in-process)",
        opts.ticks,
        points as f64 / secs
    )?;
    drop(store);
    writer.join();
    let started = Instant::now();
    let (store, writer) = Store::open_with(&path, options)?;
    let open_secs = started.elapsed().as_secs_f64();
    let (_, probe) = store
        .query(
            "host-00000",
            "bench_value",
            &[("i".into(), "0".into())],
            (t0, i64::MAX / 2),
            None,
            1_000_000,
        )
        .map_err(|e| StoreBenchError::Other(e.to_string()))?;
    let replayed = probe.first().map_or(0, |s| s.points.len());
    if replayed != opts.ticks {
        return Err(StoreBenchError::Other(format!(
            "after restart a series has {replayed} points, not {}",
            opts.ticks
        )));
    }
    writeln!(
        out,
        "restart: open with {points} points of open heads replayed in {open_secs:.2} s"
    )?;
    drop(store);
    writer.join();

    // 5. A 30-day range of one series at 10 s, queried at a 1 h step.
    let path = dir.join("month.redb");
    let _ = std::fs::remove_file(&path);
    let (store, writer) = Store::open_with(&path, StoreOptions::default())?;
    let host = HostId::new("month").map_err(|e| StoreBenchError::Other(e.to_string()))?;
    store.hello(hello_for(&host, 10_000)).await?;
    let id = store.series_id(
        &host,
        SeriesKey::new("cpu_usage_ratio", &[("cpu", "total")]),
    )?;
    let n = 30 * 8640;
    // Half past an hour, so the 30 days span 721 hourly buckets whatever the time of the run.
    let end = nines_common::model::now_ms() / 3_600_000 * 3_600_000 - 1_800_000;
    let start = end - n as i64 * 10_000;
    let batches = (0..n / 360)
        .map(|b| BatchWrite {
            host: host.clone(),
            seq: b as u64 + 1,
            points: (0..360)
                .map(|i| {
                    let k = b * 360 + i;
                    (id, start + k as i64 * 10_000, ((k % 977) as f64) / 977.0)
                })
                .collect(),
        })
        .collect();
    write_all(&store, batches).await?;
    store.flush().await?;
    store.compact().await?;
    let step = Some(Step {
        ms: 3_600_000,
        agg: AggFn::Avg,
    });
    let mut times = Vec::with_capacity(opts.query_runs);
    let mut buckets = 0;
    for _ in 0..opts.query_runs.max(1) {
        let started = Instant::now();
        let (_, answer) = store
            .query("month", "cpu_usage_ratio", &[], (start, end), step, 11_000)
            .map_err(|e| StoreBenchError::Other(e.to_string()))?;
        times.push(started.elapsed());
        buckets = answer.first().map_or(0, |s| s.points.len());
    }
    times.sort();
    let median = times[times.len() / 2];
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    writeln!(
        out,
        "30-day query of one series ({n} points at 10 s) at a 1 h step, {buckets} buckets: median {:.3} ms, p99 {:.3} ms over {} runs",
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        times.len()
    )?;
    drop(store);
    writer.join();
    Ok(())
}

/// Copies every series of the store at `from` into a new store at `to`, its n-th point at
/// tick n, `interval_ms` apart, one commit per tick as an agent at that interval would deliver
/// them, then settles it. Returns the series and samples written.
async fn restamp(
    from: &Path,
    to: &Path,
    interval_ms: i64,
) -> Result<(usize, u64), StoreBenchError> {
    let (source, source_writer) = Store::open_with(from, StoreOptions::default())?;
    let _ = std::fs::remove_file(to);
    let (store, writer) = Store::open_with(to, StoreOptions::default())?;
    let mut columns: Vec<(u32, Vec<f64>)> = Vec::new();
    let host = HostId::new("restamped").map_err(|e| StoreBenchError::Other(e.to_string()))?;
    store.hello(hello_for(&host, interval_ms as u32)).await?;
    for (source_host, name, mut labels, points) in all_series(&source)? {
        labels.push(("source_host".into(), source_host));
        let id = store.series_id(&host, SeriesKey::from_parts(name, labels))?;
        columns.push((id, points.iter().map(|p| p.1).collect()));
    }
    drop(source);
    source_writer.join();
    let ticks = columns.iter().map(|c| c.1.len()).max().unwrap_or(0);
    let t0 = (nines_common::model::now_ms() / interval_ms - ticks as i64) * interval_ms;
    let mut samples = 0;
    for t in 0..ticks {
        let points: Vec<(u32, i64, f64)> = columns
            .iter()
            .filter_map(|(id, values)| Some((*id, t0 + t as i64 * interval_ms, *values.get(t)?)))
            .collect();
        samples += points.len() as u64;
        store
            .write_batch(BatchWrite {
                host: host.clone(),
                seq: t as u64 + 1,
                points,
            })
            .await?;
    }
    settle(store, writer, to).await?;
    Ok((columns.len(), samples))
}

/// Registers hosts `range` with `per_host` series each.
async fn register(
    store: &Store,
    range: std::ops::Range<usize>,
    per_host: usize,
) -> Result<Vec<(HostId, Vec<u32>)>, StoreBenchError> {
    let mut hosts = Vec::with_capacity(range.len());
    for h in range {
        let host = HostId::new(format!("host-{h:05}"))
            .map_err(|e| StoreBenchError::Other(e.to_string()))?;
        store.hello(hello_for(&host, 10_000)).await?;
        let ids: Vec<u32> = (0..per_host)
            .map(|i| {
                store.series_id(
                    &host,
                    SeriesKey::new("bench_value", &[("i", &i.to_string()), ("kind", "gauge")]),
                )
            })
            .collect::<Result<_, _>>()?;
        hosts.push((host, ids));
    }
    Ok(hosts)
}

/// Writes `ticks` ticks, 10 s apart from `t0`, of every series of `hosts`: a quarter each of
/// constants, counters, two-decimal gauges and full-precision ratios.
async fn fill(
    store: &Store,
    hosts: &[(HostId, Vec<u32>)],
    ticks: usize,
    t0: i64,
) -> Result<(), StoreBenchError> {
    let mut rng = fastrand::Rng::with_seed(7);
    for tick in 0..ticks {
        let batches = hosts
            .iter()
            .map(|(host, ids)| BatchWrite {
                host: host.clone(),
                seq: tick as u64 + 1,
                points: ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        let v = match i % 4 {
                            0 => 1.0,
                            1 => (tick * 4096) as f64,
                            2 => (rng.f64() * 10_000.0).round() / 100.0,
                            _ => rng.f64(),
                        };
                        (*id, t0 + tick as i64 * 10_000, v)
                    })
                    .collect(),
            })
            .collect();
        write_all(store, batches).await?;
    }
    Ok(())
}
