//! `nines-aggregator bench storage`: a deterministic synthetic host-metric mix, and the chunk
//! codec candidates measured on it (bytes/sample, encode and decode speed per chunk size).
//!
//! The same data can be written as OpenMetrics text so `bench/prometheus-storage` can load it
//! into Prometheus' TSDB with promtool and compare sizes on identical samples.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use crate::store::chunk::{self, ChunkError, ValueCodec};

/// Agents send at this interval in the mix, timestamps quantised to its boundaries.
pub const INTERVAL_MS: i64 = 15_000;
/// 2026-01-01T00:00:00Z: the mix's first timestamp.
pub const START_MS: i64 = 1_767_225_600_000;
/// Chunk sizes measured unless one is asked for: 30 min, 3 h, 12 h and 30 h at 15 s.
pub const CHUNK_SIZES: [usize; 4] = [120, 720, 2880, 7200];
/// Seed of the mix. Changing it changes every figure in BENCHMARKS.md.
pub const SEED: u64 = 0x6e69_6e65_735f_6d69;

/// The six kinds of host metric in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Never changes: memory total in bytes.
    Constant,
    /// Monotonic integer counter, varying increments, sometimes idle: packets, bytes, switches.
    Counter,
    /// CPU % jumping around a per-series level, two decimals.
    NoisyCpu,
    /// CPU % drifting slowly towards a level that changes now and then, two decimals.
    SmoothCpu,
    /// Free bytes on a filesystem: shrinks a few blocks at a time, sometimes jumps.
    DiskFree,
    /// 1-minute load average (0.00-8.00, two decimals) of a varying run queue.
    Load,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Constant,
        Kind::Counter,
        Kind::NoisyCpu,
        Kind::SmoothCpu,
        Kind::DiskFree,
        Kind::Load,
    ];

    /// Metric name in the OpenMetrics export.
    pub fn metric(self) -> &'static str {
        match self {
            Kind::Constant => "nines_bench_constant",
            Kind::Counter => "nines_bench_counter",
            Kind::NoisyCpu => "nines_bench_cpu_noisy_percent",
            Kind::SmoothCpu => "nines_bench_cpu_smooth_percent",
            Kind::DiskFree => "nines_bench_disk_free_bytes",
            Kind::Load => "nines_bench_load1",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Constant => "constant",
            Kind::Counter => "counter",
            Kind::NoisyCpu => "noisy cpu %",
            Kind::SmoothCpu => "smooth cpu %",
            Kind::DiskFree => "disk free",
            Kind::Load => "load",
        }
    }
}

/// One generated series.
#[derive(Clone, Debug)]
pub struct Series {
    pub kind: Kind,
    pub index: usize,
    pub ts: Vec<i64>,
    pub values: Vec<f64>,
}

/// Size of the mix.
#[derive(Clone, Copy, Debug)]
pub struct MixSpec {
    pub series_per_kind: usize,
    pub points_per_series: usize,
    pub seed: u64,
}

impl Default for MixSpec {
    /// 6 kinds × 32 series × 7,200 points (30 h at 15 s) = 1,382,400 samples.
    fn default() -> Self {
        Self {
            series_per_kind: 32,
            points_per_series: 7200,
            seed: SEED,
        }
    }
}

/// Mean 0, standard deviation 0.5, within ±1.5: a bell shape from plain arithmetic, so the mix
/// is the same on every platform (no libm calls).
fn noise(rng: &mut fastrand::Rng) -> f64 {
    rng.f64() + rng.f64() + rng.f64() - 1.5
}

/// Two decimals, as a value parsed from "12.34" would be.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// exp(-15 s / 60 s): the kernel's 1-minute load average decay per 15 s step.
const LOAD_DECAY: f64 = 0.778_800_783_071_404_9;

/// Generates the mix, kind by kind. Each series has its own generator seeded from (seed, kind,
/// index), so a series does not change when `series_per_kind` does.
pub fn generate(spec: &MixSpec) -> Vec<Series> {
    let mut out = Vec::with_capacity(Kind::ALL.len() * spec.series_per_kind);
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        for index in 0..spec.series_per_kind {
            let seed = spec
                .seed
                .wrapping_add((k as u64) << 32)
                .wrapping_add(index as u64);
            out.push(generate_series(
                kind,
                index,
                spec.points_per_series,
                &mut fastrand::Rng::with_seed(seed),
            ));
        }
    }
    out
}

fn generate_series(kind: Kind, index: usize, n: usize, rng: &mut fastrand::Rng) -> Series {
    let mut ts = Vec::with_capacity(n);
    let mut t = START_MS;
    for _ in 0..n {
        ts.push(t);
        t += INTERVAL_MS;
        // The agent was down or unreachable for a while: about one gap per 8 hours.
        if rng.u32(0..2000) == 0 {
            t += INTERVAL_MS * rng.i64(1..40);
        }
    }

    let mut values = Vec::with_capacity(n);
    match kind {
        Kind::Constant => {
            let gib = 2 + (index % 31) as u64;
            values.resize(n, (gib << 30) as f64);
        }
        Kind::Counter => {
            // Rate per interval: m × 10^e, 10 to 900,000 (packets to bytes).
            let rate = f64::from(rng.u32(1..10)) * 10f64.powi(rng.i32(1..6));
            let mut c = rng.u64(0..1 << 32) as f64;
            for _ in 0..n {
                values.push(c);
                if rng.u32(0..50) != 0 {
                    c += (rate * (0.75 + 0.5 * rng.f64())).round();
                }
            }
        }
        Kind::NoisyCpu => {
            let base = 5.0 + 60.0 * rng.f64();
            for _ in 0..n {
                values.push(round2((base + 15.0 * noise(rng)).clamp(0.0, 100.0)));
            }
        }
        Kind::SmoothCpu => {
            let mut level = 10.0 + 50.0 * rng.f64();
            let mut target = level;
            for _ in 0..n {
                values.push(round2(level));
                if rng.u32(0..240) == 0 {
                    target = 5.0 + 80.0 * rng.f64();
                }
                level = (level + (target - level) * 0.02 + 0.3 * noise(rng)).clamp(0.0, 100.0);
            }
        }
        Kind::DiskFree => {
            let mut free = 4096 * rng.u64(5_000_000..120_000_000);
            for _ in 0..n {
                values.push(free as f64);
                free = free.saturating_sub(4096 * rng.u64(0..32));
                if rng.u32(0..720) == 0 {
                    if rng.bool() {
                        free += 4096 * rng.u64(0..1_000_000); // a cleanup
                    } else {
                        free = free.saturating_sub(4096 * rng.u64(0..250_000)); // a big write
                    }
                }
            }
        }
        Kind::Load => {
            let mut target = 0.2 + 3.0 * rng.f64();
            let mut load = target;
            for _ in 0..n {
                values.push(round2(load).min(8.0));
                if rng.u32(0..480) == 0 {
                    target = 0.2 + 5.0 * rng.f64();
                }
                let runnable = (target + 2.0 * noise(rng)).max(0.0).round();
                load = load * LOAD_DECAY + runnable * (1.0 - LOAD_DECAY);
            }
        }
    }
    Series {
        kind,
        index,
        ts,
        values,
    }
}

/// Writes the mix as OpenMetrics text (one gauge family per kind, a `series` label, timestamps in
/// seconds), ending with `# EOF`.
pub fn write_openmetrics(series: &[Series], mut out: impl Write) -> io::Result<()> {
    let mut last_kind = None;
    let mut line = String::with_capacity(128);
    for s in series {
        if last_kind != Some(s.kind) {
            writeln!(out, "# TYPE {} gauge", s.kind.metric())?;
            last_kind = Some(s.kind);
        }
        for (&t, &v) in s.ts.iter().zip(&s.values) {
            line.clear();
            let _ = write!(line, "{}{{series=\"{}\"}} ", s.kind.metric(), s.index);
            if v.is_nan() {
                line.push_str("NaN");
            } else if v.is_infinite() {
                line.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
            } else {
                // Rust prints the shortest decimal that parses back to the same double.
                let _ = write!(line, "{v}");
            }
            let _ = write!(line, " {}", t.div_euclid(1000));
            if t.rem_euclid(1000) != 0 {
                let _ = write!(line, ".{:03}", t.rem_euclid(1000));
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()
}

/// A value encoding measured by the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidate {
    Gorilla,
    Pco,
    PcoDecimal,
    /// What [`chunk::encode`] does.
    Chosen,
}

impl Candidate {
    pub const ALL: [Candidate; 4] = [
        Candidate::Gorilla,
        Candidate::Pco,
        Candidate::PcoDecimal,
        Candidate::Chosen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Candidate::Gorilla => "gorilla xor",
            Candidate::Pco => "pco f64",
            Candidate::PcoDecimal => "pco decimal",
            Candidate::Chosen => "chosen (auto)",
        }
    }

    fn codec(self) -> ValueCodec {
        match self {
            Candidate::Gorilla => ValueCodec::Gorilla,
            Candidate::Pco => ValueCodec::Pco,
            Candidate::PcoDecimal => ValueCodec::PcoDecimal,
            Candidate::Chosen => ValueCodec::Auto,
        }
    }
}

/// One candidate at one chunk size, over the whole mix.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    pub candidate: Candidate,
    pub chunk_points: usize,
    pub samples: u64,
    pub chunks: u64,
    /// Encoded bytes, headers and checksums included.
    pub bytes: u64,
    /// Of which timestamp sections.
    pub timestamp_bytes: u64,
    /// Median over the runs, million samples per second on one core.
    pub encode_msps: f64,
    pub decode_msps: f64,
}

impl Measurement {
    pub fn bytes_per_sample(&self) -> f64 {
        self.bytes as f64 / self.samples as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{candidate} at {chunk_points}-sample chunks: {source}")]
    Decode {
        candidate: &'static str,
        chunk_points: usize,
        #[source]
        source: ChunkError,
    },
    #[error("{candidate} at {chunk_points}-sample chunks did not round-trip bit for bit")]
    Mismatch {
        candidate: &'static str,
        chunk_points: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Encodes every series of the mix in chunks of `chunk_points` with `candidate`, `runs` times,
/// and checks the first decode against the input bit for bit.
pub fn measure(
    series: &[Series],
    candidate: Candidate,
    chunk_points: usize,
    runs: usize,
) -> Result<Measurement, BenchError> {
    let codec = candidate.codec();
    let pieces: Vec<(&[i64], &[f64])> = series
        .iter()
        .flat_map(|s| s.ts.chunks(chunk_points).zip(s.values.chunks(chunk_points)))
        .collect();
    let samples: u64 = pieces.iter().map(|p| p.0.len() as u64).sum();
    let mut encode_secs = Vec::with_capacity(runs);
    let mut decode_secs = Vec::with_capacity(runs);
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    for run in 0..runs.max(1) {
        let start = Instant::now();
        encoded = pieces
            .iter()
            .map(|(ts, v)| chunk::encode_with(ts, v, codec))
            .collect();
        encode_secs.push(start.elapsed().as_secs_f64());

        let start = Instant::now();
        let mut decoded = Vec::with_capacity(encoded.len());
        for bytes in &encoded {
            decoded.push(chunk::decode(bytes).map_err(|source| BenchError::Decode {
                candidate: candidate.name(),
                chunk_points,
                source,
            })?);
        }
        decode_secs.push(start.elapsed().as_secs_f64());

        if run == 0 {
            let exact = pieces.iter().zip(&decoded).all(|((ts, v), (dts, dv))| {
                *ts == dts.as_slice()
                    && v.len() == dv.len()
                    && v.iter().zip(dv).all(|(a, b)| a.to_bits() == b.to_bits())
            });
            if !exact {
                return Err(BenchError::Mismatch {
                    candidate: candidate.name(),
                    chunk_points,
                });
            }
        }
    }
    let bytes = encoded.iter().map(|b| b.len() as u64).sum();
    let timestamp_bytes = encoded
        .iter()
        .map(|b| chunk::info(b).map_or(0, |i| i.timestamp_bytes as u64))
        .sum();
    Ok(Measurement {
        candidate,
        chunk_points,
        samples,
        chunks: encoded.len() as u64,
        bytes,
        timestamp_bytes,
        encode_msps: samples as f64 / median(&mut encode_secs) / 1e6,
        decode_msps: samples as f64 / median(&mut decode_secs) / 1e6,
    })
}

/// Bytes/sample of the chosen codec for each kind at one chunk size.
pub fn per_kind(series: &[Series], chunk_points: usize) -> Vec<(Kind, f64)> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let (mut bytes, mut samples) = (0u64, 0u64);
            for s in series.iter().filter(|s| s.kind == kind) {
                for (ts, v) in s.ts.chunks(chunk_points).zip(s.values.chunks(chunk_points)) {
                    bytes += chunk::encode(ts, v).len() as u64;
                    samples += ts.len() as u64;
                }
            }
            (kind, bytes as f64 / samples.max(1) as f64)
        })
        .collect()
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Options of `nines-aggregator bench storage`.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    pub series_per_kind: usize,
    /// `None`: every size in [`CHUNK_SIZES`].
    pub chunk_points: Option<usize>,
    pub export_openmetrics: Option<PathBuf>,
    pub runs: usize,
}

impl StorageOptions {
    /// Checks the options before any work starts.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.series_per_kind == 0 {
            return Err(BenchError::Invalid("--series must be at least 1".into()));
        }
        if let Some(c) = self.chunk_points
            && !(1..=chunk::MAX_POINTS).contains(&c)
        {
            return Err(BenchError::Invalid(format!(
                "--chunk must be 1 to {}",
                chunk::MAX_POINTS
            )));
        }
        if self.runs == 0 {
            return Err(BenchError::Invalid("--runs must be at least 1".into()));
        }
        Ok(())
    }
}

/// Runs the benchmark and writes its report to `out`.
pub fn run(opts: &StorageOptions, mut out: impl Write) -> Result<(), BenchError> {
    opts.validate()?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| BenchError::Io { what, source }
    };
    let spec = MixSpec {
        series_per_kind: opts.series_per_kind,
        ..MixSpec::default()
    };
    let series = generate(&spec);
    let samples: usize = series.iter().map(|s| s.ts.len()).sum();

    if let Some(path) = &opts.export_openmetrics {
        let what = format!("write {}", path.display());
        let file = std::fs::File::create(path).map_err(io(&what))?;
        write_openmetrics(&series, io::BufWriter::new(file)).map_err(io(&what))?;
    }

    let sizes: Vec<usize> = match opts.chunk_points {
        Some(c) => vec![c],
        None => CHUNK_SIZES.to_vec(),
    };
    let mut report = String::new();
    let _ = writeln!(
        report,
        "mix: 6 kinds x {} series x {} points at {} s = {} samples (seed {:#x})",
        spec.series_per_kind,
        spec.points_per_series,
        INTERVAL_MS / 1000,
        samples,
        spec.seed
    );
    let _ = writeln!(
        report,
        "speeds: one core, median of {} runs, million samples/s\n",
        opts.runs
    );
    let _ = writeln!(
        report,
        "{:<14} {:>6} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "codec", "chunk", "chunks", "bytes/sample", "ts part", "encode", "decode"
    );
    let mut chosen = Vec::new();
    for &size in &sizes {
        for candidate in Candidate::ALL {
            let m = measure(&series, candidate, size, opts.runs)?;
            let _ = writeln!(
                report,
                "{:<14} {:>6} {:>8} {:>12.3} {:>10.4} {:>10.1} {:>10.1}",
                candidate.name(),
                size,
                m.chunks,
                m.bytes_per_sample(),
                m.timestamp_bytes as f64 / m.samples as f64,
                m.encode_msps,
                m.decode_msps
            );
            if candidate == Candidate::Chosen {
                chosen.push(m);
            }
        }
        report.push('\n');
    }

    let _ = writeln!(report, "chosen codec, bytes/sample by kind:");
    let _ = write!(report, "{:<14}", "kind");
    for size in &sizes {
        let _ = write!(report, " {size:>8}");
    }
    report.push('\n');
    let by_size: Vec<Vec<(Kind, f64)>> = sizes.iter().map(|&s| per_kind(&series, s)).collect();
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        let _ = write!(report, "{:<14}", kind.label());
        for col in &by_size {
            let _ = write!(report, " {:>8.3}", col[i].1);
        }
        report.push('\n');
    }
    report.push('\n');
    // One line per size in a fixed form, for scripts.
    for m in &chosen {
        let _ = writeln!(
            report,
            "nines bytes/sample chunk={} samples={} bytes={} value={:.3}",
            m.chunk_points,
            m.samples,
            m.bytes,
            m.bytes_per_sample()
        );
    }
    if let Some(path) = &opts.export_openmetrics {
        let _ = writeln!(report, "openmetrics written to {}", path.display());
    }
    out.write_all(report.as_bytes())
        .map_err(io("write the report"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Vec<Series> {
        generate(&MixSpec {
            series_per_kind: 2,
            points_per_series: 800,
            seed: SEED,
        })
    }

    #[test]
    fn the_mix_is_deterministic_and_shaped_as_described() {
        let a = small();
        let b = small();
        assert_eq!(a.len(), 12);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.ts, y.ts);
            assert_eq!(
                x.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                y.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        for s in &a {
            assert_eq!(s.ts.len(), 800);
            assert!(s.ts.windows(2).all(|w| w[1] > w[0]));
            assert!(s.ts.iter().all(|t| (t - START_MS) % INTERVAL_MS == 0));
            let v = &s.values;
            match s.kind {
                Kind::Constant => assert!(v.iter().all(|x| *x == v[0])),
                Kind::Counter => assert!(v.windows(2).all(|w| w[1] >= w[0])),
                Kind::NoisyCpu | Kind::SmoothCpu => {
                    assert!(v.iter().all(|x| (0.0..=100.0).contains(x)))
                }
                Kind::Load => assert!(v.iter().all(|x| (0.0..=8.0).contains(x))),
                Kind::DiskFree => assert!(v.iter().all(|x| *x >= 0.0 && x % 4096.0 == 0.0)),
            }
        }
    }

    #[test]
    fn every_candidate_round_trips_the_mix() {
        let series = small();
        for c in Candidate::ALL {
            let m = measure(&series, c, 120, 1).expect("measure");
            assert_eq!(m.samples, 12 * 800);
            assert_eq!(m.chunks, 12 * 7);
        }
    }

    #[test]
    fn openmetrics_export_has_one_line_per_sample_and_ends_with_eof() {
        let series = small();
        let mut out = Vec::new();
        write_openmetrics(&series, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 12 * 800);
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 6);
        assert!(text.ends_with("# EOF\n"));
        let first = text.lines().nth(1).expect("a sample");
        assert!(first.starts_with("nines_bench_constant{series=\"0\"} "));
        assert!(first.ends_with(" 1767225600"), "{first}");
    }

    #[test]
    fn bad_options_are_refused_before_work() {
        let ok = StorageOptions {
            series_per_kind: 1,
            chunk_points: Some(120),
            export_openmetrics: None,
            runs: 1,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            StorageOptions {
                series_per_kind: 0,
                ..ok.clone()
            },
            StorageOptions {
                chunk_points: Some(0),
                ..ok.clone()
            },
            StorageOptions {
                runs: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
