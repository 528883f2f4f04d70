//! The synthetic host-metric mix: six kinds of series shaped like what agents send, from a
//! fixed seed, and its export as OpenMetrics text.

#[allow(unused_imports)]
use super::*;

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

    pub(crate) fn label(self) -> &'static str {
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
pub(crate) fn noise(rng: &mut fastrand::Rng) -> f64 {
    rng.f64() + rng.f64() + rng.f64() - 1.5
}

/// Two decimals, as a value parsed from "12.34" would be.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// exp(-15 s / 60 s): the kernel's 1-minute load average decay per 15 s step.
pub(crate) const LOAD_DECAY: f64 = 0.778_800_783_071_404_9;

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

pub(crate) fn generate_series(
    kind: Kind,
    index: usize,
    n: usize,
    rng: &mut fastrand::Rng,
) -> Series {
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
