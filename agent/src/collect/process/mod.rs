//! Process collector: the health of watched groups of processes (selected by program name,
//! command line, pidfile or systemd unit), and how many processes and zombies the host has.
//!
//! One pass over `/proc` per tick. Reading every `/proc/[pid]/stat` on every tick would cost
//! several microseconds per process, so what a pid is running is cached, keyed by the inode
//! of its `/proc/[pid]` directory, and a pid's files are read again only when that can have
//! changed (see [`Process::collect`]). Only processes that a watch matches are read fully on
//! every tick, through descriptors kept open.
//!
//! This module owns the collector itself: its configuration, its tick (what to list and read,
//! then the samples) and the helpers its steps share. Listing `/proc` and matching processes
//! to watches is in `scan`, the full reads of watched processes in `read`, and what is kept
//! between ticks in `state`.

mod config;
mod parse;
mod pattern;
mod read;
mod restarts;
mod scan;
mod state;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fd::OwnedFd;

pub use config::{ProcessConfig, Select, Watch, WatchError, WatchProblem};
pub use parse::{
    COMM_LEN, CmdlineSearch, PidStat, in_unit, long_name_matches, parse_pid, parse_pidfile,
    parse_stat, program,
};
pub use pattern::{Pattern, PatternError};
pub use restarts::Restarts;

use super::auxv::Units;
use super::files::read_rest;
use super::{CollectConfig, CollectError, Collector, Out, Tick};

use state::{Entry, PidMap, WatchState};

/// `/proc` is listed on one tick in this many while every watch has its minimum and no
/// watched process went away; on every tick while some watch is short, and at once on a tick
/// where a watched process is found gone (so its successor counts on that same tick). Listing
/// is the largest cost of a tick; between listings, known processes are read directly.
pub const LIST_EVERY: u64 = 5;

/// Size of the buffer `getdents64` fills: about 1000 `/proc` entries per call.
const DIR_BUF: usize = 32 * 1024;

/// Command lines are read and matched this many bytes at a time, so a megabyte-long one
/// needs no megabyte buffer.
const CMDLINE_CHUNK: usize = 4096;

/// A `/proc/[pid]` file that failed because the process is gone: it exited (`ENOENT`), or
/// was reaped while we held its file open (`ESRCH`). Not a failure of the collector.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
}

/// Reads a small file whole into `buf`.
fn read_whole(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    read_rest(&File::open(path)?, buf, true)
}

/// Watched process groups, and the host's process and zombie counts.
#[derive(Debug)]
pub struct Process {
    procfs: PathBuf,
    watches: Vec<WatchState>,
    /// Some watch selects by command line, or by a comm longer than the kernel keeps.
    needs_cmdline: bool,
    /// Some watch selects by unit.
    needs_cgroup: bool,
    /// `procfs` is a real procfs, whose files can be kept open and read again.
    keep_files: bool,
    pids: PidMap<Entry>,
    tick: u64,
    /// Listings of `/proc` so far, and the tick of the last one.
    listings: u64,
    listed_at: u64,
    prev_at: Option<Instant>,
    /// `/proc`, kept open and rewound on every tick.
    dir: Option<OwnedFd>,
    /// Reused buffers and path, so a tick allocates nothing for known processes.
    dir_buf: Vec<u8>,
    buf: Vec<u8>,
    path: PathBuf,
    /// Command line searches in progress, by watch index.
    searches: Vec<(u32, CmdlineSearch)>,
    /// Pids to read fully this tick.
    to_read: Vec<u32>,
    kept: usize,
    /// Pids listed this tick.
    total: u64,
    /// `sysconf(_SC_CLK_TCK)` and the page size: the units of `/proc/[pid]/stat`.
    clock_ticks: f64,
    page_size: f64,
    /// `stat` files read so far, to check that the cache works.
    stat_reads: u64,
}

impl Process {
    /// A process collector reading `{procfs}/[pid]/...`.
    pub fn new(config: &CollectConfig) -> Self {
        let watches: Vec<WatchState> = config
            .process
            .watch
            .iter()
            .cloned()
            .map(WatchState::new)
            .collect();
        let needs_cmdline = watches.iter().any(|w| match &w.watch.select {
            Select::Cmdline(_) => true,
            Select::Comm(name) => name.len() > COMM_LEN,
            _ => false,
        });
        let needs_cgroup = watches
            .iter()
            .any(|w| matches!(w.watch.select, Select::Unit(_)));
        let units = Units::read(&config.procfs);
        let keep_files = rustix::fs::statfs(&config.procfs)
            .is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC);
        Self {
            procfs: config.procfs.clone(),
            watches,
            needs_cmdline,
            needs_cgroup,
            keep_files,
            pids: PidMap::default(),
            tick: 0,
            listings: 0,
            listed_at: 0,
            prev_at: None,
            dir: None,
            dir_buf: Vec::with_capacity(DIR_BUF),
            buf: Vec::with_capacity(CMDLINE_CHUNK),
            path: PathBuf::new(),
            searches: Vec::new(),
            to_read: Vec::new(),
            kept: 0,
            total: 0,
            clock_ticks: units.clock_ticks as f64,
            page_size: units.page_size as f64,
            stat_reads: 0,
        }
    }

    /// `{procfs}/{pid}/{file}` in the reused path buffer.
    fn pid_path(&mut self, pid: u32, file: &str) -> &Path {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        let mut n = pid;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.path.clone_from(&self.procfs);
        self.path
            .push(std::str::from_utf8(&digits[i..]).unwrap_or_default());
        if !file.is_empty() {
            self.path.push(file);
        }
        &self.path
    }
}

impl Collector for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    /// Lists the pids in `/proc` and reads `/proc/[pid]/stat` only for pids that are new, that
    /// were reused (inode changed), and now and then for the others in case they exec'd
    /// another program or became zombies. Processes matched by a watch (and those named by
    /// pidfiles) are then read fully: `stat` and the count of open files.
    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        self.tick += 1;
        let short = self.watches.iter().any(|w| w.count < w.watch.min);
        let list = self.listings == 0 || short || self.tick - self.listed_at >= LIST_EVERY;
        for w in &mut self.watches {
            w.reset();
        }
        if list {
            self.scan(out)?;
        } else {
            self.skip_listing();
        }
        let unknown = self.read_pidfiles(out);
        let vanished = self.read_queued(out);
        if !list && (unknown || vanished) {
            // A watched process went away, or a pidfile names a new one: list now, so a
            // restarted process counts on this very tick.
            self.scan(out)?;
            self.read_pidfiles(out);
            self.read_queued(out);
        }

        let now = self.tick;
        let mut kept = 0;
        let mut zombies = 0u64;
        self.pids.retain(|_, e| {
            if e.seen != now {
                return false;
            }
            zombies += u64::from(e.zombie);
            if let Some(w) = &e.watched
                && w.cpu.is_none_or(|(_, at)| at != now)
                && !w.stat_denied
            {
                // No longer watched (a pidfile now names another process).
                e.watched = None;
            }
            kept += e
                .watched
                .as_ref()
                .map_or(0, |w| usize::from(w.stat.is_some()));
            true
        });
        self.kept = kept;

        out.push("processes_total", &[], self.total as f64);
        out.push("processes_zombie", &[], zombies as f64);
        let secs = self
            .prev_at
            .map(|at| tick.now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0);
        for w in &mut self.watches {
            w.restarts.end_tick();
            let labels = [("process", w.watch.name.as_str())];
            let up = w.count >= w.watch.min;
            out.push("process_up", &labels, if up { 1.0 } else { 0.0 });
            out.push("process_count", &labels, f64::from(w.count));
            if let Some(secs) = secs {
                out.push(
                    "process_cpu_ratio",
                    &labels,
                    w.cpu_ticks as f64 / self.clock_ticks / secs,
                );
            }
            out.push(
                "process_resident_bytes",
                &labels,
                w.rss_pages as f64 * self.page_size,
            );
            if !w.fds_unknown {
                out.push("process_open_fds", &labels, w.fds as f64);
            }
            out.push("process_threads", &labels, w.threads as f64);
            out.push("process_restarts_total", &labels, w.restarts.total() as f64);
            out.push("process_zombies", &labels, f64::from(w.zombies));
        }
        self.prev_at = Some(tick.now);
        Ok(())
    }
}
