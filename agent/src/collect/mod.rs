//! Collectors: one per file, behind the [`Collector`] trait, listed in [`registry`]. The
//! [`Runner`] times every collector, counts its failures, and keeps going.

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod memory;
pub mod network;
pub mod process;
pub mod swap;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nines_common::{Sample, SeriesKey};
use serde::Deserialize;

/// Why one collector failed on one tick.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file had unexpected content.
    #[error("parsing {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// Reads a whole file into a string, with the path in the error.
pub fn read(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read {
        path: path.to_owned(),
        source,
    })
}

/// One tick of the sampling clock.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// The tick's timestamp, quantised to the interval: every sample of the tick carries it.
    pub ts_ms: i64,
    /// Monotonic time of the tick, for rates between ticks.
    pub now: Instant,
}

/// Appends samples stamped with one tick's timestamp.
#[derive(Debug)]
pub struct Out<'a> {
    ts_ms: i64,
    samples: &'a mut Vec<Sample>,
}

impl<'a> Out<'a> {
    /// Wraps a sample buffer for one tick.
    pub fn new(ts_ms: i64, samples: &'a mut Vec<Sample>) -> Self {
        Self { ts_ms, samples }
    }

    /// Appends one sample. Non-finite values are dropped: they carry no information and would
    /// poison aggregates.
    pub fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        if value.is_finite() {
            self.samples.push(Sample {
                key: SeriesKey::new(name, labels),
                ts_ms: self.ts_ms,
                value,
            });
        }
    }
}

/// A source of samples. Implementations read through the configured procfs/sysfs roots and
/// keep whatever state they need to turn counters into per-second rates.
pub trait Collector: Send {
    /// Short name used in logs and self-metrics, e.g. `cpu`.
    fn name(&self) -> &'static str;

    /// Reads the system once. Rates are computed against the previous call (by `tick.now`); the
    /// first call emits only gauges. Counter resets (a value lower than before) yield no rate for
    /// that tick.
    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError>;
}

fn default_procfs() -> PathBuf {
    PathBuf::from("/proc")
}

fn default_sysfs() -> PathBuf {
    PathBuf::from("/sys")
}

/// `[collect]` section of the agent configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectConfig {
    /// Where procfs is mounted. Default `/proc`.
    #[serde(default = "default_procfs")]
    pub procfs: PathBuf,
    /// Where sysfs is mounted. Default `/sys`.
    #[serde(default = "default_sysfs")]
    pub sysfs: PathBuf,
    /// `[collect.disk]`.
    #[serde(default)]
    pub disk: disk::DiskConfig,
    /// `[collect.filesystem]`.
    #[serde(default)]
    pub filesystem: filesystem::FilesystemConfig,
    /// `[collect.network]`.
    #[serde(default)]
    pub network: network::NetworkConfig,
    /// `[collect.process]`.
    #[serde(default)]
    pub process: process::ProcessConfig,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            procfs: default_procfs(),
            sysfs: default_sysfs(),
            disk: Default::default(),
            filesystem: Default::default(),
            network: Default::default(),
            process: Default::default(),
        }
    }
}

/// Every collector, configured.
pub fn registry(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    vec![
        Box::new(cpu::Cpu::new(config)),
        Box::new(memory::Memory::new(config)),
        Box::new(swap::Swap::new(config)),
        Box::new(disk::Disk::new(config)),
        Box::new(filesystem::Filesystem::new(config)),
        Box::new(network::Network::new(config)),
        Box::new(process::Process::new(config)),
    ]
}

/// Per-collector bookkeeping kept by the runner.
#[derive(Debug, Default, Clone, Copy)]
pub struct CollectorStats {
    /// Ticks on which the collector returned an error.
    pub failures: u64,
    /// Time spent in the collector on the last tick.
    pub last_duration: Duration,
}

/// Runs every collector once per tick.
pub struct Runner {
    collectors: Vec<(Box<dyn Collector>, CollectorStats)>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.collectors.iter().map(|(c, s)| (c.name(), s)))
            .finish()
    }
}

impl Runner {
    /// A runner over the given collectors.
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> Self {
        Self {
            collectors: collectors
                .into_iter()
                .map(|c| (c, CollectorStats::default()))
                .collect(),
        }
    }

    /// Runs every collector for `tick`, appending to `samples`. A failing collector is logged,
    /// counted (`agent_collector_failures_total{collector}`) and skipped; the others go on.
    pub fn run(&mut self, tick: &Tick, samples: &mut Vec<Sample>) {
        let mut out = Out::new(tick.ts_ms, samples);
        for (collector, stats) in &mut self.collectors {
            let started = Instant::now();
            if let Err(e) = collector.collect(tick, &mut out) {
                stats.failures += 1;
                // Log the first failure and then every 100th, so a broken collector cannot
                // flood the journal.
                if stats.failures % 100 == 1 {
                    tracing::warn!(
                        collector = collector.name(),
                        failures = stats.failures,
                        "collector failed: {e}"
                    );
                }
            }
            stats.last_duration = started.elapsed();
        }
        for (collector, stats) in &self.collectors {
            let name = collector.name();
            out.push(
                "agent_collector_failures_total",
                &[("collector", name)],
                stats.failures as f64,
            );
            out.push(
                "agent_collector_duration_seconds",
                &[("collector", name)],
                stats.last_duration.as_secs_f64(),
            );
        }
    }
}
