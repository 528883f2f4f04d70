//! Portable backend: the collectors on the sysinfo library, for systems without procfs, and on
//! Linux with `[collect] backend = "sysinfo"`. They send the procfs collectors' metric names and
//! labels for what sysinfo can tell, under the same collector names; what it cannot tell is
//! absent (docs/metrics.md, "Portable backend").
//!
//! One `System` is shared by the collectors that read it (cpu, memory, swap, process, host),
//! and each refreshes only what it reports.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use sysinfo::{
    DiskRefreshKind, Disks, InterfaceOperationalState, MemoryRefreshKind, Networks, Pid,
    ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, ThreadKind, UpdateKind,
};

use super::filesystem::{FilesystemConfig, Mount, select};
use super::network::NetworkConfig;
use super::process::{
    COMM_LEN, Restarts, Select, Watch, long_name_matches, parse_pidfile, program,
};
use super::select::selected;
use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// The backend's one `System`, or why sysinfo could not set it up (every collector that needs
/// it then fails with that reason on every tick).
type Shared = Result<Arc<Mutex<System>>, String>;

fn lock<'a>(
    system: &'a Shared,
    what: &'static str,
) -> Result<MutexGuard<'a, System>, CollectError> {
    match system {
        // A collector that panicked holding the lock left nothing half-written that matters:
        // every reading starts with a refresh.
        Ok(system) => Ok(nines_common::util::sync::lock(system)),
        Err(detail) => Err(failed(what, detail)),
    }
}

fn failed(what: &'static str, detail: impl ToString) -> CollectError {
    CollectError::Sysinfo {
        what,
        detail: detail.to_string(),
    }
}

/// Every portable collector, configured, in the order of the procfs registry.
pub fn registry(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let system: Shared = System::new()
        .map(|s| Arc::new(Mutex::new(s)))
        .map_err(|e| e.to_string());
    vec![
        Box::new(Cpu::new(system.clone())),
        Box::new(Memory::new(system.clone())),
        Box::new(Swap::new(system.clone())),
        Box::new(Filesystem::new(config)),
        Box::new(Network::new(config)),
        Box::new(Process::new(config, system.clone())),
        // Last, so that the agent's own CPU time includes this tick's collection.
        Box::new(Host::new(system)),
    ]
}

/// A sysinfo percentage as a ratio in 0..=1.
fn ratio(percent: f32) -> f64 {
    (f64::from(percent) / 100.0).clamp(0.0, 1.0)
}

/// CPU usage in total and per CPU, and the load average.
#[derive(Debug)]
pub struct Cpu {
    system: Shared,
    /// CPU usage was refreshed on an earlier tick: sysinfo's usage is over the time since then.
    primed: bool,
    /// `"0"`, `"1"`, ...: label values made once.
    labels: Vec<String>,
}

impl Cpu {
    fn new(system: Shared) -> Self {
        Self {
            system,
            primed: false,
            labels: Vec::new(),
        }
    }

    fn collect_usage(&mut self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut system = lock(&self.system, "cpu")?;
        system.refresh_cpu_usage();
        if system.cpus().is_empty() {
            return Err(failed("cpu", "no CPU listed"));
        }
        if !std::mem::replace(&mut self.primed, true) {
            return Ok(());
        }
        out.push(
            "cpu_usage_ratio",
            &[("cpu", "total")],
            ratio(system.global_cpu_usage()),
        );
        while self.labels.len() < system.cpus().len() {
            self.labels.push(self.labels.len().to_string());
        }
        for (cpu, label) in system.cpus().iter().zip(&self.labels) {
            out.push("cpu_usage_ratio", &[("cpu", label)], ratio(cpu.usage()));
        }
        Ok(())
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let usage = self.collect_usage(out);
        let load = System::load_average()
            .map(|load| {
                out.push("load_average_1m", &[], load.one);
                out.push("load_average_5m", &[], load.five);
                out.push("load_average_15m", &[], load.fifteen);
            })
            .map_err(|e| failed("load average", e));
        usage.and(load)
    }
}

/// RAM totals and use.
#[derive(Debug)]
pub struct Memory {
    system: Shared,
}

impl Memory {
    fn new(system: Shared) -> Self {
        Self { system }
    }
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut system = lock(&self.system, "memory")?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = system.total_memory();
        if total == 0 {
            // sysinfo reports 0 when it could not read the figures.
            return Err(failed("memory", "total memory is 0"));
        }
        let available = system.available_memory().min(total);
        let used = total - available;
        out.push("memory_total_bytes", &[], total as f64);
        out.push("memory_available_bytes", &[], available as f64);
        out.push("memory_used_bytes", &[], used as f64);
        out.push("memory_used_ratio", &[], used as f64 / total as f64);
        Ok(())
    }
}

/// Swap space use.
#[derive(Debug)]
pub struct Swap {
    system: Shared,
}

impl Swap {
    fn new(system: Shared) -> Self {
        Self { system }
    }
}

impl Collector for Swap {
    fn name(&self) -> &'static str {
        "swap"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut system = lock(&self.system, "swap")?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_swap());
        let total = system.total_swap();
        let used = total.saturating_sub(system.free_swap());
        out.push("swap_total_bytes", &[], total as f64);
        out.push("swap_used_bytes", &[], used as f64);
        // As the procfs collector: a host without swap is 0 % used, not unknown.
        let ratio = if total == 0 {
            0.0
        } else {
            used as f64 / total as f64
        };
        out.push("swap_used_ratio", &[], ratio);
        Ok(())
    }
}

/// Space per mounted filesystem, selected as the procfs collector selects.
#[derive(Debug)]
pub struct Filesystem {
    disks: Result<Disks, String>,
    config: FilesystemConfig,
}

impl Filesystem {
    fn new(config: &CollectConfig) -> Self {
        Self {
            disks: Disks::new().map_err(|e| e.to_string()),
            config: config.filesystem.clone(),
        }
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let disks = self
            .disks
            .as_mut()
            .map_err(|detail| failed("disks", detail))?;
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        // A mount point or type that is not UTF-8 cannot be a label.
        let listed: Vec<_> = disks
            .iter()
            .filter_map(|d| Some((d, d.mount_point().to_str()?, d.file_system().to_str()?)))
            .collect();
        let mounts: Vec<Mount<'_>> = listed
            .iter()
            .map(|(d, mount_point, fstype)| Mount {
                device: d.name().to_string_lossy(),
                mount_point: Cow::Borrowed(mount_point),
                fstype,
                readonly: None,
            })
            .collect();
        let chosen = select(&mounts, &self.config);
        for (mount, (disk, ..)) in mounts.iter().zip(&listed) {
            if !chosen.iter().any(|c| std::ptr::eq(*c, mount)) {
                continue;
            }
            let labels = [
                ("mount", mount.mount_point.as_ref()),
                ("device", mount.device.as_ref()),
                ("fstype", mount.fstype),
            ];
            let size = disk.total_space();
            let available = disk.available_space().min(size);
            // sysinfo does not give the blocks free for root: the blocks reserved for root
            // count as used.
            let used = size - available;
            out.push("filesystem_size_bytes", &labels, size as f64);
            out.push("filesystem_available_bytes", &labels, available as f64);
            out.push("filesystem_used_bytes", &labels, used as f64);
            let used_ratio = if size == 0 {
                0.0
            } else {
                used as f64 / size as f64
            };
            out.push("filesystem_used_ratio", &labels, used_ratio);
            out.push(
                "filesystem_readonly",
                &labels,
                if disk.is_read_only() { 1.0 } else { 0.0 },
            );
        }
        Ok(())
    }
}

/// Metric names of the rates, in the order of [`counters`].
const RATES: [&str; 6] = [
    "network_receive_bytes_per_second",
    "network_receive_packets_per_second",
    "network_receive_errors_per_second",
    "network_transmit_bytes_per_second",
    "network_transmit_packets_per_second",
    "network_transmit_errors_per_second",
];

/// The counters of an interface since it was created, in [`RATES`] order.
fn counters(data: &sysinfo::NetworkData) -> [u64; 6] {
    [
        data.total_received(),
        data.total_packets_received(),
        data.total_errors_on_received(),
        data.total_transmitted(),
        data.total_packets_transmitted(),
        data.total_errors_on_transmitted(),
    ]
}

/// `network_up` for an operational state, as the procfs collector reads `operstate`: `up`, and
/// `unknown` (drivers that do not track link state), are up. `None` for a state sysinfo could
/// not name.
fn link_up(state: InterfaceOperationalState) -> Option<bool> {
    match state {
        InterfaceOperationalState::Up | InterfaceOperationalState::Unknown => Some(true),
        InterfaceOperationalState::Down
        | InterfaceOperationalState::Testing
        | InterfaceOperationalState::Dormant
        | InterfaceOperationalState::NotPresent
        | InterfaceOperationalState::LowerLayerDown => Some(false),
        _ => None,
    }
}

/// Per-interface traffic and link state.
#[derive(Debug)]
pub struct Network {
    networks: Result<Networks, String>,
    config: NetworkConfig,
    /// Counters of each reported interface at the previous tick.
    prev: HashMap<OsString, [u64; 6]>,
    prev_at: Option<Instant>,
}

impl Network {
    fn new(config: &CollectConfig) -> Self {
        Self {
            networks: Networks::new().map_err(|e| e.to_string()),
            config: config.network.clone(),
            prev: HashMap::new(),
            prev_at: None,
        }
    }
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let networks = self
            .networks
            .as_mut()
            .map_err(|detail| failed("networks", detail))?;
        networks.refresh(true);
        let secs = self
            .prev_at
            .map(|at| tick.now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut next = HashMap::with_capacity(self.prev.len());
        for (name, data) in networks.iter() {
            let Some(label) = name.to_str() else {
                continue;
            };
            if !selected(label, &self.config.include, &self.config.exclude) {
                continue;
            }
            let labels = [("interface", label)];
            if let Some(up) = link_up(data.operational_state()) {
                out.push("network_up", &labels, if up { 1.0 } else { 0.0 });
            }
            let cur = counters(data);
            if let (Some(prev), Some(secs)) = (self.prev.get(name), secs)
                // A counter that went backwards: the interface was recreated. No rates.
                && cur.iter().zip(prev).all(|(c, p)| c >= p)
            {
                for ((metric, c), p) in RATES.iter().zip(cur).zip(prev) {
                    out.push(metric, &labels, (c - p) as f64 / secs);
                }
            }
            next.insert(name.clone(), cur);
        }
        self.prev = next;
        self.prev_at = Some(tick.now);
        Ok(())
    }
}

/// A process: its pid and start time, which tell it from a later one with the same pid.
type Key = (u32, u64);

/// One watch and what it remembers between ticks.
#[derive(Debug)]
struct WatchState {
    watch: Watch,
    /// Live members over the ticks, and the restarts they make.
    restarts: Restarts,
    /// CPU time (ms) of each member at the previous tick.
    cpu_ms: HashMap<Key, u64>,
    /// This tick's live members and zombies.
    pids: Vec<Pid>,
    zombies: u32,
}

impl WatchState {
    fn new(watch: Watch) -> Self {
        Self {
            watch,
            restarts: Restarts::default(),
            cpu_ms: HashMap::new(),
            pids: Vec::new(),
            zombies: 0,
        }
    }
}

/// Whether a process named `comm` (the kernel's name, at most 15 bytes on Linux) with the
/// command line `cmd` is the program `name`, by the rules of the procfs collector.
fn comm_matches(name: &str, comm: &[u8], cmd: &[OsString]) -> bool {
    let name = name.as_bytes();
    if comm == name {
        return true;
    }
    comm.len() == COMM_LEN
        && name.len() > COMM_LEN
        && name.starts_with(comm)
        && long_name_matches(
            name,
            comm,
            cmd.first().map(|argv0| program(argv0.as_encoded_bytes())),
        )
}

/// The command line as `ps` shows it: the arguments joined by spaces.
fn join_cmdline(cmd: &[OsString], buf: &mut Vec<u8>) {
    buf.clear();
    for (i, arg) in cmd.iter().enumerate() {
        if i > 0 {
            buf.push(b' ');
        }
        buf.extend_from_slice(arg.as_encoded_bytes());
    }
}

/// The pid a pidfile names: `None` when there is no file (the service is not running), or when
/// it cannot be read or holds no pid, which is a failure.
fn read_pidfile(path: &Path, out: &mut Out<'_>) -> Option<Pid> {
    match std::fs::read(path) {
        Ok(content) => match parse_pidfile(&content) {
            Ok(pid) => Some(Pid::from_u32(pid)),
            Err(detail) => {
                out.fail(CollectError::Parse {
                    path: path.to_owned(),
                    detail,
                });
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            out.fail(CollectError::Read {
                path: path.to_owned(),
                source,
            });
            None
        }
    }
}

/// Watched groups of processes, and how many processes and zombies the host has.
#[derive(Debug)]
pub struct Process {
    system: Shared,
    watches: Vec<WatchState>,
    /// Some watch needs command lines: a `cmdline` watch, or a name longer than 15 bytes.
    needs_cmd: bool,
    prev_at: Option<Instant>,
    /// Reused buffers: the pids to read fully, and a joined command line.
    pids: Vec<Pid>,
    cmdline: Vec<u8>,
}

impl Process {
    fn new(config: &CollectConfig, system: Shared) -> Self {
        let watches: Vec<WatchState> = config
            .process
            .watch
            .iter()
            .filter(|w| {
                let Select::Unit(unit) = &w.select else {
                    return true;
                };
                tracing::warn!(
                    "watch {:?} selects processes by unit ({unit}), which the sysinfo backend \
                     cannot see: it is not reported",
                    w.name
                );
                false
            })
            .cloned()
            .map(WatchState::new)
            .collect();
        let needs_cmd = watches.iter().any(|w| match &w.watch.select {
            Select::Cmdline(_) => true,
            Select::Comm(name) => name.len() > COMM_LEN,
            _ => false,
        });
        Self {
            system,
            watches,
            needs_cmd,
            prev_at: None,
            pids: Vec::new(),
            cmdline: Vec::new(),
        }
    }

    /// Finds each watch's processes among those listed.
    fn match_watches(&mut self, system: &System, pidfiles: &[Option<Pid>]) {
        let has_cmdline_watch = self
            .watches
            .iter()
            .any(|w| matches!(w.watch.select, Select::Cmdline(_)));
        for (pid, p) in system.processes() {
            let kernel_thread = p.thread_kind() == Some(ThreadKind::Kernel);
            let zombie = matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead);
            if has_cmdline_watch && !kernel_thread {
                join_cmdline(p.cmd(), &mut self.cmdline);
            }
            for (w, pidfile) in self.watches.iter_mut().zip(pidfiles) {
                let member = match &w.watch.select {
                    Select::Comm(name) => {
                        !kernel_thread && comm_matches(name, p.name().as_encoded_bytes(), p.cmd())
                    }
                    Select::Cmdline(pattern) => !kernel_thread && pattern.is_match(&self.cmdline),
                    Select::Pidfile(_) => *pidfile == Some(*pid),
                    Select::Unit(_) => false,
                };
                if !member {
                    continue;
                }
                if zombie {
                    w.zombies += 1;
                } else {
                    w.pids.push(*pid);
                }
            }
        }
    }
}

impl Collector for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    /// Lists the processes with their names (and command lines if a watch needs them), then
    /// reads CPU time and memory of the watched ones only.
    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let pidfiles: Vec<Option<Pid>> = self
            .watches
            .iter()
            .map(|w| match &w.watch.select {
                Select::Pidfile(path) => read_pidfile(path, out),
                _ => None,
            })
            .collect();
        let system = self.system.clone();
        let mut system = lock(&system, "processes")?;
        let cmd = if self.needs_cmd {
            // A process's title can change after it was first seen (exec, setproctitle).
            UpdateKind::Always
        } else {
            UpdateKind::Never
        };
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks().with_cmd(cmd),
        );
        let zombies = system
            .processes()
            .values()
            .filter(|p| matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead))
            .count();
        out.push("processes_total", &[], system.processes().len() as f64);
        out.push("processes_zombie", &[], zombies as f64);

        for w in &mut self.watches {
            w.pids.clear();
            w.zombies = 0;
        }
        self.match_watches(&system, &pidfiles);
        self.pids.clear();
        self.pids
            .extend(self.watches.iter().flat_map(|w| w.pids.iter().copied()));
        self.pids.sort_unstable();
        self.pids.dedup();
        if !self.pids.is_empty() {
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&self.pids),
                false,
                ProcessRefreshKind::nothing()
                    .without_tasks()
                    .with_cpu()
                    .with_memory(),
            );
        }

        let secs = self
            .prev_at
            .map(|at| tick.now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0);
        for w in &mut self.watches {
            let mut count = 0u32;
            let mut resident = 0u64;
            let mut fds = Some(0usize);
            let mut cpu_ms = 0u64;
            let mut cpu_now = HashMap::with_capacity(w.pids.len());
            for pid in &w.pids {
                // Gone between the listing and the read.
                let Some(p) = system.process(*pid).filter(|p| p.exists()) else {
                    continue;
                };
                let key = (pid.as_u32(), p.start_time());
                let cpu = p.accumulated_cpu_time();
                // Only members that were members on the previous tick too: a process's first
                // interval is not counted.
                if let Some(prev) = w.cpu_ms.get(&key) {
                    cpu_ms += cpu.saturating_sub(*prev);
                }
                cpu_now.insert(key, cpu);
                count += 1;
                resident += p.memory();
                fds = fds.zip(p.open_files()).map(|(a, b)| a + b);
                w.restarts.saw(key);
            }
            w.cpu_ms = cpu_now;
            w.restarts.end_tick();
            let labels = [("process", w.watch.name.as_str())];
            let up = count >= w.watch.min;
            out.push("process_up", &labels, if up { 1.0 } else { 0.0 });
            out.push("process_count", &labels, f64::from(count));
            if let Some(secs) = secs {
                out.push("process_cpu_ratio", &labels, cpu_ms as f64 / 1000.0 / secs);
            }
            out.push("process_resident_bytes", &labels, resident as f64);
            if let Some(fds) = fds {
                out.push("process_open_fds", &labels, fds as f64);
            }
            out.push("process_restarts_total", &labels, w.restarts.total() as f64);
            out.push("process_zombies", &labels, f64::from(w.zombies));
        }
        self.prev_at = Some(tick.now);
        Ok(())
    }
}

/// Uptime, boot time, and the agent's CPU time and resident memory.
#[derive(Debug)]
pub struct Host {
    system: Shared,
    pid: Result<Pid, String>,
}

impl Host {
    fn new(system: Shared) -> Self {
        Self {
            system,
            pid: sysinfo::get_current_pid().map_err(|e| e.to_string()),
        }
    }

    fn collect_agent(&self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let pid = *self
            .pid
            .as_ref()
            .map_err(|detail| failed("own pid", detail))?;
        let mut system = lock(&self.system, "own process")?;
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cpu()
                .with_memory(),
        );
        let p = system
            .process(pid)
            .ok_or_else(|| failed("own process", "not listed"))?;
        out.push(
            "agent_cpu_seconds_total",
            &[],
            p.accumulated_cpu_time() as f64 / 1000.0,
        );
        out.push("agent_resident_bytes", &[], p.memory() as f64);
        Ok(())
    }
}

impl Collector for Host {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        // Independent readings: a failure of one is counted and does not hide the others.
        match System::uptime() {
            Ok(secs) => out.push("host_uptime_seconds", &[], secs as f64),
            Err(e) => out.fail(failed("uptime", e)),
        }
        match System::boot_time() {
            Ok(secs) => out.push("host_boot_time_seconds", &[], secs as f64),
            Err(e) => out.fail(failed("boot time", e)),
        }
        if let Err(e) = self.collect_agent(out) {
            out.fail(e);
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "sysinfo"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use nines_common::Sample;

    use super::super::testing::{get, run_ok};
    use super::super::{Backend, Runner};
    use super::*;

    fn shared() -> Shared {
        Ok(Arc::new(Mutex::new(System::new().unwrap())))
    }

    fn now() -> Tick {
        Tick {
            ts_ms: 1_700_000_000_000,
            now: Instant::now(),
        }
    }

    /// Two ticks on the real clock, far enough apart for sysinfo to measure CPU usage.
    fn two_ticks(collector: &mut dyn Collector) -> (Vec<Sample>, Vec<Sample>) {
        let first = run_ok(collector, &now());
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50));
        let second = run_ok(collector, &now());
        (first, second)
    }

    fn is_ratio(v: Option<f64>) -> bool {
        v.is_some_and(|v| (0.0..=1.0).contains(&v))
    }

    /// The series named `name`, as (labels, value).
    fn series<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
        samples.iter().filter(|s| s.key.name == name).collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn memory_total_is_what_the_kernel_says() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        let (first, second) = two_ticks(&mut Memory::new(shared()));
        for samples in [&first, &second] {
            let total = get(samples, "memory_total_bytes", &[]);
            assert_eq!(total, Some(kib * 1024.0));
            let available = get(samples, "memory_available_bytes", &[]).unwrap();
            let used = get(samples, "memory_used_bytes", &[]).unwrap();
            assert_eq!(used + available, kib * 1024.0);
            assert!(is_ratio(get(samples, "memory_used_ratio", &[])));
            // What sysinfo cannot tell is absent, not 0.
            assert_eq!(get(samples, "memory_cached_bytes", &[]), None);
        }
    }

    #[test]
    fn cpu_ratios_come_on_the_second_tick_and_stay_in_range() {
        let (first, second) = two_ticks(&mut Cpu::new(shared()));
        assert!(series(&first, "cpu_usage_ratio").is_empty(), "{first:?}");
        assert!(get(&first, "load_average_1m", &[]).is_some_and(|l| l >= 0.0));
        assert!(is_ratio(get(
            &second,
            "cpu_usage_ratio",
            &[("cpu", "total")]
        )));
        assert!(is_ratio(get(&second, "cpu_usage_ratio", &[("cpu", "0")])));
        let per_cpu = series(&second, "cpu_usage_ratio");
        assert!(per_cpu.len() >= 2, "{per_cpu:?}");
        assert!(per_cpu.iter().all(|s| (0.0..=1.0).contains(&s.value)));
        for load in ["load_average_1m", "load_average_5m", "load_average_15m"] {
            assert!(get(&second, load, &[]).is_some_and(|l| l >= 0.0), "{load}");
        }
    }

    #[test]
    fn swap_is_reported_with_a_ratio_even_without_swap() {
        let (_, second) = two_ticks(&mut Swap::new(shared()));
        let total = get(&second, "swap_total_bytes", &[]).unwrap();
        let used = get(&second, "swap_used_bytes", &[]).unwrap();
        assert!(used <= total);
        assert!(is_ratio(get(&second, "swap_used_ratio", &[])));
    }

    #[test]
    fn the_root_filesystem_is_reported_and_exclusions_apply() {
        let (_, second) = two_ticks(&mut Filesystem::new(&CollectConfig::default()));
        let root: Vec<_> = second
            .iter()
            .filter(|s| s.key.label("mount") == Some("/"))
            .collect();
        let value = |name: &str| {
            root.iter()
                .find(|s| s.key.name == name)
                .map(|s| s.value)
                .unwrap_or_else(|| panic!("no {name} for /: {second:?}"))
        };
        assert!(value("filesystem_size_bytes") > 0.0);
        assert!(value("filesystem_available_bytes") <= value("filesystem_size_bytes"));
        assert!(is_ratio(Some(value("filesystem_used_ratio"))));
        assert!([0.0, 1.0].contains(&value("filesystem_readonly")));
        assert!(root[0].key.label("fstype").is_some_and(|t| !t.is_empty()));
        // Pseudo filesystems are left out as by the procfs collector.
        assert!(
            second
                .iter()
                .all(|s| !matches!(s.key.label("fstype"), Some("proc" | "sysfs" | "devpts"))),
            "{second:?}"
        );

        let config = CollectConfig {
            filesystem: FilesystemConfig {
                exclude_mounts: vec!["/".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let (_, second) = two_ticks(&mut Filesystem::new(&config));
        assert!(second.iter().all(|s| s.key.label("mount") != Some("/")));
    }

    #[test]
    fn network_rates_come_on_the_second_tick_and_lo_is_left_out_by_default() {
        let (_, second) = two_ticks(&mut Network::new(&CollectConfig::default()));
        assert!(
            second
                .iter()
                .all(|s| s.key.label("interface") != Some("lo"))
        );

        let config = CollectConfig {
            network: NetworkConfig {
                include: vec!["*".into()],
                exclude: Vec::new(),
            },
            ..Default::default()
        };
        let (first, second) = two_ticks(&mut Network::new(&config));
        let lo = [("interface", "lo")];
        assert_eq!(get(&first, "network_receive_bytes_per_second", &lo), None);
        assert_eq!(get(&first, "network_up", &lo), Some(1.0));
        for metric in RATES {
            assert!(
                get(&second, metric, &lo).is_some_and(|v| v >= 0.0),
                "{metric}"
            );
        }
        assert_eq!(get(&second, "network_receive_drops_per_second", &lo), None);
    }

    #[test]
    fn watches_find_this_process_by_name_command_line_and_pidfile() {
        let exe = std::env::current_exe().unwrap();
        // `nines_agent-<hash>`: longer than the 15 bytes the kernel keeps of a name.
        let name = exe.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.len() > COMM_LEN, "{name}");
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("test.pid");
        std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
        let toml = format!(
            r#"watch = [
              "{name}",
              {{ name = "by-cmdline", cmdline = '/{name}' }},
              {{ name = "by-pidfile", pidfile = "{}" }},
              {{ name = "no-pidfile", pidfile = "{}" }},
              "no-such-program",
              {{ name = "by-unit", unit = "cron.service" }},
            ]"#,
            pidfile.display(),
            dir.path().join("absent.pid").display(),
        );
        let config = CollectConfig {
            process: toml::from_str(&toml).unwrap(),
            ..Default::default()
        };
        let mut process = Process::new(&config, shared());
        let (first, second) = two_ticks(&mut process);
        for samples in [&first, &second] {
            assert!(get(samples, "processes_total", &[]).is_some_and(|n| n >= 1.0));
            assert!(get(samples, "processes_zombie", &[]).is_some());
            for watch in [name.as_str(), "by-cmdline", "by-pidfile"] {
                let labels = [("process", watch)];
                assert_eq!(get(samples, "process_up", &labels), Some(1.0), "{watch}");
                assert!(
                    get(samples, "process_count", &labels).is_some_and(|n| n >= 1.0),
                    "{watch}"
                );
                assert!(
                    get(samples, "process_resident_bytes", &labels).is_some_and(|b| b > 0.0),
                    "{watch}"
                );
                assert_eq!(
                    get(samples, "process_restarts_total", &labels),
                    Some(0.0),
                    "{watch}"
                );
            }
            assert_eq!(
                get(samples, "process_count", &[("process", "by-pidfile")]),
                Some(1.0)
            );
            for watch in ["no-pidfile", "no-such-program"] {
                let labels = [("process", watch)];
                assert_eq!(get(samples, "process_up", &labels), Some(0.0), "{watch}");
                assert_eq!(get(samples, "process_count", &labels), Some(0.0), "{watch}");
            }
            assert!(series(samples, "process_up").len() == 5, "{samples:?}");
            assert_eq!(get(samples, "process_up", &[("process", "by-unit")]), None);
            assert!(series(samples, "process_threads").is_empty());
        }
        let labels = [("process", name.as_str())];
        assert_eq!(get(&first, "process_cpu_ratio", &labels), None);
        assert!(get(&second, "process_cpu_ratio", &labels).is_some_and(|r| r >= 0.0));
    }

    #[test]
    fn host_reports_boot_and_the_agent_itself() {
        let cpu = |samples: &[Sample]| get(samples, "agent_cpu_seconds_total", &[]).unwrap();
        let mut host = Host::new(shared());
        let first = run_ok(&mut host, &now());
        // Busy until the agent's CPU time has moved by a clock tick or more (on a loaded
        // machine that takes longer than the same work on an idle one).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut spin = 0u64;
        let second = loop {
            let busy = Instant::now();
            while busy.elapsed() < Duration::from_millis(20) {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let samples = run_ok(&mut host, &now());
            if cpu(&samples) > cpu(&first) || Instant::now() > deadline {
                break samples;
            }
        };
        let uptime = get(&second, "host_uptime_seconds", &[]).unwrap();
        let boot = get(&second, "host_boot_time_seconds", &[]).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(uptime > 0.0);
        assert!((now - uptime - boot).abs() < 5.0, "{now} {uptime} {boot}");
        assert!(get(&second, "agent_resident_bytes", &[]).is_some_and(|b| b > 0.0));
        assert!(cpu(&second) > cpu(&first), "{first:?} {second:?}");
    }

    /// The backend as the agent runs it: through the registry and the runner, every collector
    /// of the procfs backend but `disk`, none failing.
    #[test]
    fn the_sysinfo_backend_runs_every_collector_without_failures() {
        let config = CollectConfig {
            backend: Backend::Sysinfo,
            ..Default::default()
        };
        let mut runner = Runner::new(super::super::registry(&config));
        let mut samples = Vec::new();
        runner.run(&now(), &mut samples);
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50));
        samples.clear();
        runner.run(&now(), &mut samples);
        let failures = series(&samples, "agent_collector_failures_total");
        let names: Vec<_> = failures
            .iter()
            .filter_map(|s| s.key.label("collector"))
            .collect();
        assert_eq!(
            names,
            [
                "cpu",
                "memory",
                "swap",
                "filesystem",
                "network",
                "process",
                "host"
            ]
        );
        assert!(failures.iter().all(|s| s.value == 0.0), "{failures:?}");
        assert!(is_ratio(get(
            &samples,
            "cpu_usage_ratio",
            &[("cpu", "total")]
        )));
        assert!(get(&samples, "memory_total_bytes", &[]).is_some_and(|b| b > 0.0));
        assert!(get(&samples, "host_boot_time_seconds", &[]).is_some());
    }
}
