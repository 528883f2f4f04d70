//! What the simulated agents send: series in the shapes of host metrics, from a small
//! deterministic generator.

use super::*;

/// A small deterministic generator (SplitMix64), so runs are repeatable and cost nothing.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The kinds of series an agent sends, in rotation: what host metrics look like to a codec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
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

pub(crate) const KINDS: [Kind; 5] = [
    Kind::Constant,
    Kind::Counter,
    Kind::NoisyRatio,
    Kind::Gauge,
    Kind::Load,
];

#[derive(Debug, Clone)]
pub(crate) struct SeriesState {
    pub(crate) kind: Kind,
    pub(crate) value: f64,
    pub(crate) level: f64,
}

/// An agent's series and the state that makes their next values.
#[derive(Debug)]
pub(crate) struct SeriesPlan {
    pub(crate) rng: Rng,
    pub(crate) series: Vec<SeriesState>,
    pub(crate) defs: Option<Vec<SeriesDef>>,
}

impl SeriesPlan {
    pub(crate) fn new(agent: u64, n: usize) -> Self {
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
    pub(crate) fn batch(&mut self, seq: u64, ts_ms: i64) -> Batch {
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
