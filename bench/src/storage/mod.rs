//! `nines-bench storage`: a deterministic synthetic host-metric mix, and the chunk
//! codec candidates measured on it (bytes/sample, encode and decode speed per chunk size).
//!
//! The same data can be written as OpenMetrics text so `bench/prometheus-storage` can load it
//! into Prometheus' TSDB with promtool and compare sizes on identical samples.

/// Flags of `nines-bench storage`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// A second or so at a tiny scale (2 series per kind, 720-sample chunks, one run), to
    /// check that the benchmark works; overrides those three flags.
    #[arg(long)]
    quick: bool,
}

/// `nines-bench storage`.
pub fn main(args: Args) -> Result<(), crate::Failure> {
    let mut opts = StorageOptions {
        series_per_kind: args.series,
        chunk_points: args.chunk,
        export_openmetrics: args.export_openmetrics,
        runs: args.runs,
    };
    if args.quick {
        opts.series_per_kind = 2;
        opts.chunk_points = Some(720);
        opts.runs = 1;
    }
    opts.validate()
        .map_err(|e| crate::Failure::Usage(e.to_string()))?;
    run(&opts, std::io::stdout().lock()).map_err(|e| crate::Failure::Run(e.to_string()))
}

mod mix;
#[allow(unused_imports)]
pub(crate) use mix::*;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use nines_aggregator::store::chunk::{self, ChunkError, ValueCodec};
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

/// Options of `nines-bench storage`.
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
