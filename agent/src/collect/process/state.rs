//! What the collector keeps between ticks and hands from one step of a tick to the next: the
//! per-pid cache (in a map with a cheap pid hash), each watch's totals for the tick, and what
//! one read of a `/proc/[pid]/stat` found.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};

use super::{PidStat, Restarts, Select, Watch};

/// Pids are small integers the kernel hands out: a multiplicative hash is enough, and much
/// cheaper than SipHash on a few thousand lookups per tick.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) type PidMap<V> = HashMap<u32, V, BuildHasherDefault<PidHasher>>;

/// A 64-bit FNV-1a hash of a comm: enough to notice that a process exec'd another program,
/// without keeping the name.
fn comm_hash(comm: &[u8]) -> u64 {
    comm.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the collector remembers of one pid.
#[derive(Debug)]
pub(super) struct Entry {
    /// Inode of `/proc/[pid]` when last listed: a new process with the same pid gets a new
    /// inode. (So can the same process, if the kernel evicted the inode; the start time tells
    /// them apart.)
    pub(super) ino: u64,
    pub(super) starttime: u64,
    pub(super) comm: u64,
    pub(super) kernel_thread: bool,
    pub(super) zombie: bool,
    /// Its `stat` could not be read (`hidepid`, a security module): counted once, and not
    /// retried while the process lives.
    pub(super) unreadable: bool,
    /// Indexes of the watches whose comm, cmdline or unit it matches.
    pub(super) watches: Vec<u32>,
    /// Listing in which this process was first seen; `None` for processes already running at
    /// the first listing, whose age is unknown.
    pub(super) first_seen: Option<u64>,
    /// Last tick on which the pid was listed (and not found gone).
    pub(super) seen: u64,
    /// State of a process matched by a watch, read fully on every tick.
    pub(super) watched: Option<Box<Watched>>,
}

impl Entry {
    /// A process whose `stat` could not be read or parsed.
    pub(super) fn unreadable(ino: u64, tick: u64) -> Self {
        Self {
            ino,
            starttime: 0,
            comm: 0,
            kernel_thread: false,
            zombie: false,
            unreadable: true,
            watches: Vec::new(),
            first_seen: None,
            seen: tick,
            watched: None,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Watched {
    /// `/proc/[pid]/stat`, kept open: reads see fresh content, fail with `ESRCH` once the
    /// process is reaped, and can never reach another process that reuses the pid.
    pub(super) stat: Option<File>,
    /// utime + stime (clock ticks) at the last full read, and that read's tick.
    pub(super) cpu: Option<(u64, u64)>,
    /// `/proc/[pid]/fd` is not readable: counted once, then not tried again.
    pub(super) fds_denied: bool,
    /// `stat` stopped being readable: counted once.
    pub(super) stat_denied: bool,
}

/// One watch and what it found on this tick.
#[derive(Debug)]
pub(super) struct WatchState {
    pub(super) watch: Watch,
    /// `/<unit>` for unit watches.
    pub(super) slash_unit: Vec<u8>,
    /// The pid a pidfile watch's file names this tick.
    pub(super) pidfile_pid: Option<u32>,
    pub(super) count: u32,
    pub(super) zombies: u32,
    /// CPU time used since the last tick by the members that were members then too.
    pub(super) cpu_ticks: u64,
    pub(super) rss_pages: u64,
    pub(super) fds: u64,
    /// Some member's open files could not be counted.
    pub(super) fds_unknown: bool,
    pub(super) threads: u64,
    /// Live members over the ticks, and the restarts they make.
    pub(super) restarts: Restarts,
}

impl WatchState {
    pub(super) fn new(watch: Watch) -> Self {
        let slash_unit = match &watch.select {
            Select::Unit(unit) => format!("/{unit}").into_bytes(),
            _ => Vec::new(),
        };
        Self {
            watch,
            slash_unit,
            pidfile_pid: None,
            count: 0,
            zombies: 0,
            cpu_ticks: 0,
            rss_pages: 0,
            fds: 0,
            fds_unknown: false,
            threads: 0,
            restarts: Restarts::default(),
        }
    }

    pub(super) fn reset(&mut self) {
        self.count = 0;
        self.zombies = 0;
        self.cpu_ticks = 0;
        self.rss_pages = 0;
        self.fds = 0;
        self.fds_unknown = false;
        self.threads = 0;
        self.restarts.clear();
    }
}

/// What the scan keeps of a `/proc/[pid]/stat` it read, copied out of the buffer that the
/// `cmdline` and `cgroup` reads reuse.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// The comm's hash, and its first 64 bytes (the kernel's own limit for any comm).
    pub(super) comm: u64,
    name: [u8; 64],
    name_len: usize,
    pub(super) starttime: u64,
    pub(super) zombie: bool,
    pub(super) kernel_thread: bool,
}

impl From<PidStat<'_>> for Seen {
    fn from(stat: PidStat<'_>) -> Self {
        let mut name = [0u8; 64];
        let name_len = stat.comm.len().min(name.len());
        name[..name_len].copy_from_slice(&stat.comm[..name_len]);
        Self {
            comm: comm_hash(stat.comm),
            name,
            name_len,
            starttime: stat.starttime,
            zombie: stat.zombie(),
            kernel_thread: stat.kernel_thread(),
        }
    }
}

impl Seen {
    pub(super) fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// What a full read of one watched process found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    pub(super) starttime: u64,
    pub(super) zombie: bool,
    /// CPU ticks since the previous tick, if it was read then too.
    pub(super) cpu_delta: Option<u64>,
    pub(super) rss_pages: u64,
    pub(super) threads: u64,
    pub(super) fds: Option<u64>,
}
