//! Listing `/proc`: bringing the per-pid cache up to date, and matching new or changed
//! processes to the watches by comm, command line and unit.

use std::collections::hash_map::Entry as MapEntry;
use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};

use super::state::{Entry, Seen, WatchState};
use super::{
    CMDLINE_CHUNK, COMM_LEN, CmdlineSearch, CollectError, Out, Process, Select, gone, in_unit,
    long_name_matches, parse_pid, parse_stat, program, read_whole,
};

/// Every process is re-read at least once per this many listings of `/proc`, in case it
/// exec'd another program, moved to another cgroup, changed its title or became a zombie
/// long after it was first seen. Spread over listings by pid.
const REVALIDATE_EVERY: u64 = 16;

impl Process {
    /// Lists `/proc`, bringing the cache up to date and queueing watched pids for a full
    /// read.
    pub(super) fn scan(&mut self, out: &mut Out<'_>) -> Result<(), CollectError> {
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
    pub(super) fn skip_listing(&mut self) {
        let tick = self.tick;
        for (&pid, e) in self.pids.iter_mut() {
            e.seen = tick;
            if !e.watches.is_empty() {
                self.to_read.push(pid);
            }
        }
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
