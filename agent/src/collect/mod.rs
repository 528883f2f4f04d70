//! Collectors: one per file, behind the [`Collector`] trait, listed in [`registry`]. The
//! [`Runner`] times every collector, counts its failures, and keeps going.
//!
//! Two backends: the collectors that read procfs and sysfs (Linux, the default there), and
//! [`sysinfo`](self::sysinfo), built on the sysinfo library (every other system; on Linux with the `sysinfo`
//! feature and `[collect] backend = "sysinfo"`). Elsewhere than on Linux only the procfs
//! modules that hold configuration (`disk`, `filesystem`, `network`, and the watches of
//! `process`) are compiled, so that one configuration file means the same everywhere.

#[cfg(target_os = "linux")]
mod auxv;
#[cfg(target_os = "linux")]
pub mod cpu;
pub mod disk;
mod exposition;
#[cfg(target_os = "linux")]
mod files;
pub mod filesystem;
#[cfg(target_os = "linux")]
pub mod host;
#[cfg(target_os = "linux")]
pub mod memory;
pub mod network;
#[cfg(target_os = "linux")]
pub mod process;
#[cfg(unix)]
pub mod push;
mod runner;
pub(crate) mod select;
#[cfg(target_os = "linux")]
pub mod swap;
#[cfg(any(feature = "sysinfo", not(target_os = "linux")))]
pub mod sysinfo;
pub mod textfile;

/// Without procfs, only the watches' configuration and matching rules: the portable backend
/// finds the processes.
#[cfg(not(target_os = "linux"))]
pub mod process {
    mod config;
    mod parse;
    mod pattern;
    mod restarts;

    pub use config::{ProcessConfig, Select, Watch, WatchError, WatchProblem};
    pub use parse::{
        COMM_LEN, CmdlineSearch, PidStat, in_unit, long_name_matches, parse_pid, parse_pidfile,
        parse_stat, program,
    };
    pub use pattern::{Pattern, PatternError};
    pub use restarts::Restarts;
}

/// Without procfs nothing is read through [`Out::read`] but what a caller names: a plain read,
/// nothing kept between ticks.
#[cfg(not(target_os = "linux"))]
mod files {
    use std::io;
    use std::path::Path;

    #[derive(Debug)]
    pub(crate) struct FileCache;

    impl FileCache {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn begin_tick(&mut self) {}

        pub(crate) fn take(&mut self, path: &Path, _single_record: bool) -> io::Result<Vec<u8>> {
            std::fs::read(path)
        }

        pub(crate) fn put_back(&mut self, _path: &Path, _buf: Vec<u8>) {}
    }
}

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use nines_common::{Sample, SeriesKey};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use files::FileCache;
pub use runner::{CollectorStats, Runner};

/// Why one collector failed, wholly or for one file, process or mount, on one tick.
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
    /// `statvfs` failed on a mount point.
    #[error("statvfs {mount}: {source}")]
    Statvfs {
        /// The mount point.
        mount: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The sysinfo library could not read something (portable backend).
    #[cfg(any(feature = "sysinfo", not(target_os = "linux")))]
    #[error("sysinfo {what}: {detail}")]
    Sysinfo {
        /// What was asked for: `memory`, `load average`, `disks`, ...
        what: &'static str,
        /// Why it failed, as sysinfo says.
        detail: String,
    },
}

impl CollectError {
    /// What went wrong, without what differs from one process to the next: the same for
    /// `/proc/12/fd` and `/proc/34/fd` denied. The runner logs each cause once.
    pub fn cause(&self) -> String {
        fn kind(e: &std::io::Error) -> String {
            e.raw_os_error()
                .map_or_else(|| format!("{:?}", e.kind()), |n| format!("errno {n}"))
        }
        match self {
            Self::Read { path, source } => format!("read {} {}", generic(path), kind(source)),
            Self::Parse { path, .. } => format!("parse {}", generic(path)),
            Self::Statvfs { mount, source } => format!("statvfs {mount} {}", kind(source)),
            #[cfg(any(feature = "sysinfo", not(target_os = "linux")))]
            Self::Sysinfo { what, .. } => format!("sysinfo {what}"),
        }
    }
}

/// `path` with every all-digit component (a pid) spelled `[pid]`.
fn generic(path: &Path) -> String {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s)
                if s.to_str()
                    .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit())) =>
            {
                out.push("[pid]");
            }
            c => out.push(c),
        }
    }
    out.display().to_string()
}

/// One tick of the sampling clock.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// The tick's timestamp, quantised to the interval: every sample of the tick carries it.
    pub ts_ms: i64,
    /// Monotonic time of the tick, for rates between ticks.
    pub now: Instant,
}

/// What the runner lends the collectors for a tick besides the sample buffer: the files read
/// so far this tick, and the failures reported so far.
#[derive(Debug)]
pub(crate) struct TickState {
    files: FileCache,
    failures: Vec<CollectError>,
}

impl TickState {
    pub(crate) fn new() -> Self {
        Self {
            files: FileCache::new(),
            failures: Vec::new(),
        }
    }
}

#[derive(Debug)]
enum State<'a> {
    Lent(&'a mut TickState),
    Own(TickState),
}

/// Appends samples stamped with one tick's timestamp, and gives collectors the tick's files
/// and a place to report failures.
#[derive(Debug)]
pub struct Out<'a> {
    ts_ms: i64,
    samples: &'a mut Vec<Sample>,
    state: State<'a>,
}

impl<'a> Out<'a> {
    /// Wraps a sample buffer for one tick. Files read through it are cached for this `Out`
    /// only; the [`Runner`] shares one cache between all collectors of a tick.
    pub fn new(ts_ms: i64, samples: &'a mut Vec<Sample>) -> Self {
        Self {
            ts_ms,
            samples,
            state: State::Own(TickState::new()),
        }
    }

    /// Wraps a sample buffer with the runner's state for the tick.
    pub(crate) fn lend(ts_ms: i64, samples: &'a mut Vec<Sample>, state: &'a mut TickState) -> Self {
        Self {
            ts_ms,
            samples,
            state: State::Lent(state),
        }
    }

    fn state(&mut self) -> &mut TickState {
        match &mut self.state {
            State::Lent(state) => state,
            State::Own(state) => state,
        }
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

    /// Hands the text of `path` to `parse`, with this `Out` to push samples while the text is
    /// borrowed. The file is read at most once per tick, whichever collector asks first;
    /// invalid UTF-8 is replaced by U+FFFD. A read error, or an `Err` from `parse` (the
    /// detail of a parse error), comes back as a [`CollectError`] naming the path.
    pub fn read<T>(
        &mut self,
        path: &Path,
        parse: impl FnOnce(&str, &mut Self) -> Result<T, String>,
    ) -> Result<T, CollectError> {
        self.read_file(path, false, parse)
    }

    /// [`Out::read`] for a file the kernel generates in one piece: a `single_open` seq file
    /// (`/proc/stat`, `meminfo`, `loadavg`, `uptime`, `[pid]/stat`) or a sysfs attribute. A
    /// read shorter than asked for is then the whole file, which saves the empty read that
    /// would confirm it. Not for files of many records (`vmstat`, `diskstats`, `net/dev`,
    /// mount tables), which the kernel hands out a page at a time.
    pub fn read_single<T>(
        &mut self,
        path: &Path,
        parse: impl FnOnce(&str, &mut Self) -> Result<T, String>,
    ) -> Result<T, CollectError> {
        self.read_file(path, true, parse)
    }

    fn read_file<T>(
        &mut self,
        path: &Path,
        single_record: bool,
        parse: impl FnOnce(&str, &mut Self) -> Result<T, String>,
    ) -> Result<T, CollectError> {
        let buf = self
            .state()
            .files
            .take(path, single_record)
            .map_err(|source| CollectError::Read {
                path: path.to_owned(),
                source,
            })?;
        // Valid UTF-8 is the rule: check it the fast way, and only then go the slow one.
        let parsed = match std::str::from_utf8(&buf) {
            Ok(text) => parse(text, self),
            Err(_) => parse(&String::from_utf8_lossy(&buf), self),
        };
        self.state().files.put_back(path, buf);
        parsed.map_err(|detail| CollectError::Parse {
            path: path.to_owned(),
            detail,
        })
    }

    /// Reports a failure that did not stop the collector (one process, one mount, one line):
    /// the runner counts it and logs its cause once.
    pub fn fail(&mut self, error: CollectError) {
        self.state().failures.push(error);
    }
}

/// A source of samples. Implementations read through the configured procfs/sysfs roots and
/// keep whatever state they need to turn counters into per-second rates.
pub trait Collector: Send {
    /// Short name used in logs and self-metrics, e.g. `cpu`.
    fn name(&self) -> &'static str;

    /// Reads the system once. Rates are computed against the previous call (by `tick.now`); the
    /// first call emits only gauges. Counter resets (a value lower than before) yield no rate for
    /// that tick. Returns an error when the collector could do nothing useful this tick;
    /// failures of one part (a process, a mount) go to [`Out::fail`] and the rest is reported.
    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError>;
}

fn default_procfs() -> PathBuf {
    PathBuf::from("/proc")
}

fn default_sysfs() -> PathBuf {
    PathBuf::from("/sys")
}

/// Where the collectors read the system from: `[collect] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `"procfs"`: procfs and sysfs, read directly. Linux only, and the default there.
    Procfs,
    /// `"sysinfo"`: the [`sysinfo`](self::sysinfo) collectors, built on the sysinfo library, which report
    /// fewer metrics. The only backend on other systems; on Linux only in builds with the
    /// `sysinfo` feature (a configuration file that asks for it in another build is refused).
    Sysinfo,
}

impl Default for Backend {
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            Self::Procfs
        } else {
            Self::Sysinfo
        }
    }
}

impl Backend {
    /// The backend a configuration value names, if this build has it; else what to do.
    pub fn from_name(name: &str) -> Result<Self, BackendError> {
        match name {
            "procfs" if cfg!(target_os = "linux") => Ok(Self::Procfs),
            "procfs" => Err(BackendError::NoProcfs),
            "sysinfo" if cfg!(any(feature = "sysinfo", not(target_os = "linux"))) => {
                Ok(Self::Sysinfo)
            }
            "sysinfo" => Err(BackendError::NoSysinfo),
            other => Err(BackendError::Unknown(other.to_owned())),
        }
    }
}

/// Why `[collect] backend` names no backend of this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// `"procfs"` on a system without procfs.
    #[error("backend = \"procfs\": this system has no procfs; use \"sysinfo\" (the default)")]
    NoProcfs,
    /// `"sysinfo"` in a Linux build without the `sysinfo` feature.
    #[error(
        "backend = \"sysinfo\": this build has no sysinfo backend; rebuild with --features sysinfo"
    )]
    NoSysinfo,
    /// Not a backend's name.
    #[error("backend = {0:?} is not a backend: use \"procfs\" or \"sysinfo\"")]
    Unknown(String),
}

impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).map_err(de::Error::custom)
    }
}

/// `[collect]` section of the agent configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectConfig {
    /// `procfs` or `sysinfo`. Default `procfs` on Linux, `sysinfo` elsewhere.
    #[serde(default)]
    pub backend: Backend,
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
    /// `[collect.textfile]`: business metrics from `*.prom` files.
    #[serde(default)]
    pub textfile: textfile::TextfileConfig,
    /// `[collect.push]`: business metrics pushed to a Unix socket.
    #[cfg(unix)]
    #[serde(default)]
    pub push: push::PushConfig,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            procfs: default_procfs(),
            sysfs: default_sysfs(),
            disk: Default::default(),
            filesystem: Default::default(),
            network: Default::default(),
            process: Default::default(),
            textfile: Default::default(),
            #[cfg(unix)]
            push: Default::default(),
        }
    }
}

/// Every collector of the configured backend, configured.
#[cfg(target_os = "linux")]
pub fn registry(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    // Without the feature, `Backend::Sysinfo` cannot come from a configuration file.
    #[cfg(feature = "sysinfo")]
    if config.backend == Backend::Sysinfo {
        return self::sysinfo::registry(config);
    }
    vec![
        Box::new(cpu::Cpu::new(config)),
        Box::new(memory::Memory::new(config)),
        Box::new(swap::Swap::new(config)),
        Box::new(disk::Disk::new(config)),
        Box::new(filesystem::Filesystem::new(config)),
        Box::new(network::Network::new(config)),
        Box::new(process::Process::new(config)),
        // Last, so that the agent's own CPU time includes this tick's collection.
        Box::new(host::Host::new(config)),
    ]
}

/// Every collector, configured: without procfs, the portable ones.
#[cfg(not(target_os = "linux"))]
pub fn registry(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    self::sysinfo::registry(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testing {
    //! Helpers for collector tests.

    use std::time::{Duration, Instant};

    use nines_common::{Sample, SeriesKey};

    use super::{CollectError, Collector, Out, Tick, TickState};

    /// The value of one series in `samples`.
    pub(crate) fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = SeriesKey::new(name, labels);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    /// The tick `secs` seconds after `start`.
    pub(crate) fn tick(start: Instant, secs: u64) -> Tick {
        Tick {
            ts_ms: 1_700_000_000_000 + secs as i64 * 1000,
            now: start + Duration::from_secs(secs),
        }
    }

    /// Runs one collector for one tick: its samples, its result and the failures it
    /// reported along the way.
    pub(crate) fn run(
        collector: &mut dyn Collector,
        tick: &Tick,
    ) -> (Vec<Sample>, Result<(), CollectError>, Vec<CollectError>) {
        let mut samples = Vec::new();
        let mut state = TickState::new();
        let result = collector.collect(tick, &mut Out::lend(tick.ts_ms, &mut samples, &mut state));
        (samples, result, state.failures)
    }

    /// Calls `probe` every 10 ms until it gives a value, for at most `limit`: `None` if it never
    /// did. For what another task or process does in its own time.
    pub(crate) async fn poll<T>(
        limit: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = probe() {
                return Some(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs one collector for one tick that must succeed without failures.
    pub(crate) fn run_ok(collector: &mut dyn Collector, tick: &Tick) -> Vec<Sample> {
        let (samples, result, failures) = run(collector, tick);
        result.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        samples
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, target_os = "linux"))]
mod registry_tests;
