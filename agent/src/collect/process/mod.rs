//! Process collector: the health of watched groups of processes (selected by program name,
//! command line, pidfile or systemd unit), and how many processes and zombies the host has.
//!
//! One pass over `/proc` per tick. Reading every `/proc/[pid]/stat` on every tick would cost
//! several microseconds per process, so what a pid is running is cached, keyed by the inode
//! of its `/proc/[pid]` directory, and a pid's files are read again only when that can have
//! changed (see [`Process::collect`]). Only processes that a watch matches are read fully on
//! every tick, through descriptors kept open.

mod config;
mod parse;
mod pattern;
mod restarts;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};

pub use config::{ProcessConfig, Select, Watch};
pub use parse::{
    COMM_LEN, CmdlineSearch, PidStat, in_unit, long_name_matches, parse_pid, parse_pidfile,
    parse_stat, program,
};
pub use pattern::Pattern;
pub use restarts::Restarts;

use super::auxv::Units;
use super::files::read_rest;
use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// Every process is re-read at least once per this many listings of `/proc`, in case it
/// exec'd another program, moved to another cgroup, changed its title or became a zombie
/// long after it was first seen. Spread over listings by pid.
const REVALIDATE_EVERY: u64 = 16;

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

/// Descriptors of watched processes' `stat` files kept open, at most; beyond, they are
/// opened on every tick. Keeps the agent well below the usual limit of 1024 open files.
const MAX_KEPT: usize = 256;

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

/// Pids are small integers the kernel hands out: a multiplicative hash is enough, and much
/// cheaper than SipHash on a few thousand lookups per tick.
#[derive(Debug, Default, Clone, Copy)]
struct PidHasher(u64);

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

type PidMap<V> = HashMap<u32, V, BuildHasherDefault<PidHasher>>;

/// A 64-bit FNV-1a hash of a comm: enough to notice that a process exec'd another program,
/// without keeping the name.
fn comm_hash(comm: &[u8]) -> u64 {
    comm.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the collector remembers of one pid.
#[derive(Debug)]
struct Entry {
    /// Inode of `/proc/[pid]` when last listed: a new process with the same pid gets a new
    /// inode. (So can the same process, if the kernel evicted the inode; the start time tells
    /// them apart.)
    ino: u64,
    starttime: u64,
    comm: u64,
    kernel_thread: bool,
    zombie: bool,
    /// Its `stat` could not be read (`hidepid`, a security module): counted once, and not
    /// retried while the process lives.
    unreadable: bool,
    /// Indexes of the watches whose comm, cmdline or unit it matches.
    watches: Vec<u32>,
    /// Listing in which this process was first seen; `None` for processes already running at
    /// the first listing, whose age is unknown.
    first_seen: Option<u64>,
    /// Last tick on which the pid was listed (and not found gone).
    seen: u64,
    /// State of a process matched by a watch, read fully on every tick.
    watched: Option<Box<Watched>>,
}

impl Entry {
    /// A process whose `stat` could not be read or parsed.
    fn unreadable(ino: u64, tick: u64) -> Self {
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
struct Watched {
    /// `/proc/[pid]/stat`, kept open: reads see fresh content, fail with `ESRCH` once the
    /// process is reaped, and can never reach another process that reuses the pid.
    stat: Option<File>,
    /// utime + stime (clock ticks) at the last full read, and that read's tick.
    cpu: Option<(u64, u64)>,
    /// `/proc/[pid]/fd` is not readable: counted once, then not tried again.
    fds_denied: bool,
    /// `stat` stopped being readable: counted once.
    stat_denied: bool,
}

/// One watch and what it found on this tick.
#[derive(Debug)]
struct WatchState {
    watch: Watch,
    /// `/<unit>` for unit watches.
    slash_unit: Vec<u8>,
    /// The pid a pidfile watch's file names this tick.
    pidfile_pid: Option<u32>,
    count: u32,
    zombies: u32,
    /// CPU time used since the last tick by the members that were members then too.
    cpu_ticks: u64,
    rss_pages: u64,
    fds: u64,
    /// Some member's open files could not be counted.
    fds_unknown: bool,
    threads: u64,
    /// Live members over the ticks, and the restarts they make.
    restarts: Restarts,
}

impl WatchState {
    fn new(watch: Watch) -> Self {
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

    fn reset(&mut self) {
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
struct Seen {
    /// The comm's hash, and its first 64 bytes (the kernel's own limit for any comm).
    comm: u64,
    name: [u8; 64],
    name_len: usize,
    starttime: u64,
    zombie: bool,
    kernel_thread: bool,
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
    fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// What a full read of one watched process found.
#[derive(Debug, Clone, Copy)]
struct Reading {
    starttime: u64,
    zombie: bool,
    /// CPU ticks since the previous tick, if it was read then too.
    cpu_delta: Option<u64>,
    rss_pages: u64,
    threads: u64,
    fds: Option<u64>,
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

    /// Lists `/proc`, bringing the cache up to date and queueing watched pids for a full
    /// read.
    fn scan(&mut self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let dir_error = |procfs: &Path, e: rustix::io::Errno| CollectError::Read {
            path: procfs.to_owned(),
            source: e.into(),
        };
        let fd = match self.dir.take() {
            Some(fd) => fd,
            None => rustix::fs::open(
                &self.procfs,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| dir_error(&self.procfs, e))?,
        };
        rustix::fs::seek(&fd, SeekFrom::Start(0)).map_err(|e| dir_error(&self.procfs, e))?;
        self.listings += 1;
        self.listed_at = self.tick;
        self.total = 0;
        let mut buf = std::mem::take(&mut self.dir_buf);
        let mut dir = RawDir::new(&fd, buf.spare_capacity_mut());
        let mut result = Ok(());
        while let Some(entry) = dir.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    result = Err(dir_error(&self.procfs, e));
                    break;
                }
            };
            if let Some(pid) = parse_pid(entry.file_name().to_bytes()) {
                self.total += 1;
                self.visit(pid, entry.ino(), out);
            }
        }
        self.dir_buf = buf;
        if result.is_ok() {
            self.dir = Some(fd);
        }
        result
    }

    /// Brings one listed pid's cache entry up to date.
    fn visit(&mut self, pid: u32, ino: u64, out: &mut Out<'_>) {
        let (tick, listing) = (self.tick, self.listings);
        if let Some(e) = self.pids.get_mut(&pid)
            && e.ino == ino
        {
            let young = e
                .first_seen
                .is_some_and(|t| (listing - t).is_power_of_two() && listing - t < REVALIDATE_EVERY);
            let due = (u64::from(pid) + listing).is_multiple_of(REVALIDATE_EVERY);
            // Kernel threads never exec; an unreadable process stays unreadable. Others are
            // re-read shortly after they appeared (fork, then exec, then maybe a new title)
            // and now and then later on.
            if e.kernel_thread || e.unreadable || !(young || due) {
                e.seen = tick;
                if !e.watches.is_empty() {
                    self.to_read.push(pid);
                }
                return;
            }
        }

        self.stat_reads += 1;
        self.pid_path(pid, "stat");
        let parsed = match read_whole(&self.path, &mut self.buf) {
            // Exited since the listing: the entry, if any, is not marked seen and goes.
            Err(e) if gone(&e) => return,
            Err(source) => Err(CollectError::Read {
                path: self.path.clone(),
                source,
            }),
            Ok(()) => parse_stat(&self.buf)
                .map(Seen::from)
                .map_err(|detail| CollectError::Parse {
                    path: self.path.clone(),
                    detail,
                }),
        };
        let seen = match parsed {
            Ok(seen) => seen,
            Err(e) => {
                out.fail(e);
                self.pids.insert(pid, Entry::unreadable(ino, tick));
                return;
            }
        };
        let known = self.pids.get(&pid).filter(|e| !e.unreadable);
        // The same process (its inode may have been evicted and made anew), or another one.
        let same = known.is_some_and(|e| e.starttime == seen.starttime);
        let exec = known.is_some_and(|e| e.comm != seen.comm);
        let watches = (!same || exec || self.needs_cmdline || self.needs_cgroup)
            .then(|| self.matches(pid, seen.name(), seen.kernel_thread, out));
        let entry = match self.pids.entry(pid) {
            MapEntry::Occupied(o) if same => o.into_mut(),
            slot => slot
                .insert_entry(Entry {
                    ino,
                    starttime: seen.starttime,
                    comm: seen.comm,
                    kernel_thread: seen.kernel_thread,
                    zombie: seen.zombie,
                    unreadable: false,
                    watches: Vec::new(),
                    // Processes running when the agent started are of unknown age.
                    first_seen: (listing > 1).then_some(listing),
                    seen: tick,
                    watched: None,
                })
                .into_mut(),
        };
        entry.ino = ino;
        entry.comm = seen.comm;
        entry.zombie = seen.zombie;
        entry.seen = tick;
        if let Some(watches) = watches {
            entry.watches = watches;
        }
        if !entry.watches.is_empty() {
            self.to_read.push(pid);
        }
    }

    /// Indexes of the watches whose comm, command line or unit a process matches. The
    /// process's `cmdline` and `cgroup` are read only when a watch needs them.
    fn matches(
        &mut self,
        pid: u32,
        comm: &[u8],
        kernel_thread: bool,
        out: &mut Out<'_>,
    ) -> Vec<u32> {
        let mut found = Vec::new();
        if kernel_thread {
            return found;
        }
        // Long names need `argv[0]`; command line patterns need all of it.
        let mut long_candidates = false;
        for (i, w) in self.watches.iter().enumerate() {
            if let Select::Comm(name) = &w.watch.select {
                let name = name.as_bytes();
                if name.len() > COMM_LEN && comm.len() == COMM_LEN {
                    long_candidates |= name.starts_with(comm);
                } else if name == comm {
                    found.push(i as u32);
                }
            }
        }
        let wants_cmdline = long_candidates
            || self
                .watches
                .iter()
                .any(|w| matches!(w.watch.select, Select::Cmdline(_)));
        if wants_cmdline {
            self.match_cmdline(pid, comm, &mut found, out);
        }
        if self.needs_cgroup {
            self.pid_path(pid, "cgroup");
            match read_whole(&self.path, &mut self.buf) {
                Ok(()) => {
                    for (i, w) in self.watches.iter().enumerate() {
                        if !w.slash_unit.is_empty() && in_unit(&self.buf, &w.slash_unit) {
                            found.push(i as u32);
                        }
                    }
                }
                Err(e) if gone(&e) => {}
                Err(source) => out.fail(CollectError::Read {
                    path: self.path.clone(),
                    source,
                }),
            }
        }
        found.sort_unstable();
        found
    }

    /// Reads `/proc/[pid]/cmdline` a chunk at a time, confirming long comm names with
    /// `argv[0]` and running the command line patterns, and stopping as soon as every pattern
    /// has its answer.
    fn match_cmdline(&mut self, pid: u32, comm: &[u8], found: &mut Vec<u32>, out: &mut Out<'_>) {
        self.pid_path(pid, "cmdline");
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if gone(&e) => return,
            Err(source) => {
                out.fail(CollectError::Read {
                    path: self.path.clone(),
                    source,
                });
                // Unreadable: the comm is all there is to go by.
                match_long_names(&self.watches, comm, None, found);
                return;
            }
        };
        self.searches.clear();
        for (i, w) in self.watches.iter().enumerate() {
            if let Select::Cmdline(p) = &w.watch.select {
                self.searches.push((i as u32, CmdlineSearch::new(p)));
            }
        }
        let mut offset = 0u64;
        loop {
            self.buf.clear();
            self.buf.reserve(CMDLINE_CHUNK);
            let n = match rustix::io::pread(
                &file,
                rustix::buffer::spare_capacity(&mut self.buf),
                offset,
            ) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    let source = io::Error::from(e);
                    if !gone(&source) {
                        out.fail(CollectError::Read {
                            path: self.path.clone(),
                            source,
                        });
                    }
                    break;
                }
            };
            if offset == 0 {
                // Empty for zombies: then the comm is all there is to go by.
                let p = program(&self.buf);
                match_long_names(&self.watches, comm, (!p.is_empty()).then_some(p), found);
            }
            if n == 0 {
                break;
            }
            offset += n as u64;
            let mut all_done = true;
            for (i, search) in &mut self.searches {
                if let Select::Cmdline(p) = &self.watches[*i as usize].watch.select {
                    search.feed(p, &self.buf);
                    all_done &= search.done(p);
                }
            }
            if all_done {
                break;
            }
        }
        for (i, search) in &self.searches {
            if let Select::Cmdline(p) = &self.watches[*i as usize].watch.select
                && search.finish(p)
            {
                found.push(*i);
            }
        }
    }

    /// Marks every known process seen on a tick without a listing, and queues the watched
    /// ones for a full read.
    fn skip_listing(&mut self) {
        let tick = self.tick;
        for (&pid, e) in self.pids.iter_mut() {
            e.seen = tick;
            if !e.watches.is_empty() {
                self.to_read.push(pid);
            }
        }
    }

    /// Reads the pidfiles of pidfile watches, queueing the processes they name. True if one
    /// names a process not known yet.
    fn read_pidfiles(&mut self, out: &mut Out<'_>) -> bool {
        let mut unknown = false;
        for w in &mut self.watches {
            w.pidfile_pid = None;
            let Select::Pidfile(path) = &w.watch.select else {
                continue;
            };
            match read_whole(path, &mut self.buf) {
                Ok(()) => match parse_pidfile(&self.buf) {
                    Ok(pid) => w.pidfile_pid = Some(pid),
                    Err(detail) => out.fail(CollectError::Parse {
                        path: path.clone(),
                        detail,
                    }),
                },
                // No pidfile: the service is not running.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => out.fail(CollectError::Read {
                    path: path.clone(),
                    source,
                }),
            }
            if let Some(pid) = w.pidfile_pid {
                if self.pids.get(&pid).is_some_and(|e| e.seen == self.tick) {
                    self.to_read.push(pid);
                } else {
                    unknown = true;
                }
            }
        }
        unknown
    }

    /// Reads one watched process fully: `stat` through a kept descriptor, and its open
    /// files. `None` if it is gone or unreadable.
    fn read_watched(&mut self, pid: u32, out: &mut Out<'_>) -> Option<Reading> {
        let keep = self.keep_files && self.kept < MAX_KEPT;
        let mut watched = self.pids.get_mut(&pid)?.watched.take().unwrap_or_default();
        let reading = self.read_watched_with(pid, &mut watched, keep, out);
        if let Some(e) = self.pids.get_mut(&pid) {
            if reading.is_none() && !watched.stat_denied {
                // Gone since the listing: forget it now.
                e.seen = 0;
            }
            e.watched = Some(watched);
        }
        reading
    }

    fn read_watched_with(
        &mut self,
        pid: u32,
        w: &mut Watched,
        keep: bool,
        out: &mut Out<'_>,
    ) -> Option<Reading> {
        if w.stat_denied {
            return None;
        }
        self.stat_reads += 1;
        self.buf.clear();
        let read = match &w.stat {
            // A kept descriptor fails once the process is reaped; never fall back to the path,
            // which may name another process by now.
            Some(file) => read_rest(file, &mut self.buf, true),
            None => {
                self.pid_path(pid, "stat");
                File::open(&self.path).and_then(|file| {
                    read_rest(&file, &mut self.buf, true)?;
                    if keep {
                        w.stat = Some(file);
                        self.kept += 1;
                    }
                    Ok(())
                })
            }
        };
        if let Err(source) = read {
            if !gone(&source) {
                w.stat_denied = true;
                self.pid_path(pid, "stat");
                out.fail(CollectError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
            return None;
        }
        let stat = match parse_stat(&self.buf) {
            Ok(stat) => stat,
            Err(detail) => {
                self.pid_path(pid, "stat");
                out.fail(CollectError::Parse {
                    path: self.path.clone(),
                    detail,
                });
                return None;
            }
        };
        let cpu = stat.utime.saturating_add(stat.stime);
        let cpu_delta = w
            .cpu
            .filter(|(_, at)| *at + 1 == self.tick)
            .and_then(|(prev, _)| cpu.checked_sub(prev));
        w.cpu = Some((cpu, self.tick));
        let mut reading = Reading {
            starttime: stat.starttime,
            zombie: stat.zombie(),
            cpu_delta,
            rss_pages: stat.rss_pages,
            threads: stat.num_threads,
            fds: None,
        };
        if reading.zombie {
            reading.fds = Some(0);
        } else if !w.fds_denied {
            match self.count_fds(pid) {
                Ok(n) => reading.fds = Some(n),
                Err(e) if gone(&e) => {}
                Err(source) => {
                    w.fds_denied = true;
                    self.pid_path(pid, "fd");
                    out.fail(CollectError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        Some(reading)
    }

    /// Open files of a process: since Linux 6.2 the size of `/proc/[pid]/fd`; before (size
    /// 0), and outside a real procfs, the entries of that directory, counted.
    fn count_fds(&mut self, pid: u32) -> io::Result<u64> {
        self.pid_path(pid, "fd");
        if self.keep_files {
            let stat = rustix::fs::stat(&self.path)?;
            if stat.st_size > 0 {
                return Ok(stat.st_size as u64);
            }
        }
        let fd = rustix::fs::open(
            &self.path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut n = 0;
        let mut dir = RawDir::new(&fd, self.dir_buf.spare_capacity_mut());
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            n += u64::from(name != b"." && name != b"..");
        }
        Ok(n)
    }

    /// Reads every queued process not read yet this tick fully and adds it to its watches.
    /// True if one of them is gone.
    fn read_queued(&mut self, out: &mut Out<'_>) -> bool {
        let mut queue = std::mem::take(&mut self.to_read);
        queue.sort_unstable();
        queue.dedup();
        let mut vanished = false;
        for &pid in &queue {
            let tick = self.tick;
            let read_already = self.pids.get(&pid).is_some_and(|e| {
                e.watched
                    .as_ref()
                    .is_some_and(|w| w.cpu.is_some_and(|(_, at)| at == tick))
            });
            if read_already {
                continue;
            }
            let Some(r) = self.read_watched(pid, out) else {
                vanished |= self.pids.get(&pid).is_none_or(|e| e.seen != tick);
                continue;
            };
            let Some(entry) = self.pids.get_mut(&pid) else {
                continue;
            };
            if r.starttime != entry.starttime && !entry.unreadable {
                // The pid was reused between the listing and the read.
                entry.seen = 0;
                vanished = true;
                continue;
            }
            entry.zombie = r.zombie;
            for (i, w) in self.watches.iter_mut().enumerate() {
                let member =
                    entry.watches.binary_search(&(i as u32)).is_ok() || w.pidfile_pid == Some(pid);
                if !member {
                    continue;
                }
                if r.zombie {
                    w.zombies += 1;
                    continue;
                }
                w.count += 1;
                w.restarts.saw((pid, r.starttime));
                w.cpu_ticks += r.cpu_delta.unwrap_or(0);
                w.rss_pages += r.rss_pages;
                w.threads += r.threads;
                match r.fds {
                    Some(n) => w.fds += n,
                    None => w.fds_unknown = true,
                }
            }
        }
        queue.clear();
        self.to_read = queue;
        vanished
    }
}

/// Adds the watches of names longer than the kernel keeps whose first 15 bytes are `comm`
/// and that `argv[0]` confirms.
fn match_long_names(
    watches: &[WatchState],
    comm: &[u8],
    argv0: Option<&[u8]>,
    found: &mut Vec<u32>,
) {
    if comm.len() != COMM_LEN {
        return;
    }
    for (i, w) in watches.iter().enumerate() {
        if let Select::Comm(name) = &w.watch.select
            && name.len() > COMM_LEN
            && name.as_bytes().starts_with(comm)
            && long_name_matches(name.as_bytes(), comm, argv0)
        {
            found.push(i as u32);
        }
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
