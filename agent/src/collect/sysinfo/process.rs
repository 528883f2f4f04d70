//! Watched process groups, and the host's process counts, through sysinfo.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use sysinfo::{
    Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, ThreadKind, UpdateKind,
};

use super::super::process::{
    COMM_LEN, Restarts, Select, Watch, long_name_matches, parse_pidfile, program,
};
use super::super::{CollectConfig, CollectError, Collector, Out, Tick};

use super::{Shared, lock};

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
    pub(super) fn new(watch: Watch) -> Self {
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
    pub(super) fn new(config: &CollectConfig, system: Shared) -> Self {
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
