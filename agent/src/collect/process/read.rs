//! Full reads, on every tick, of the watched processes and of those pidfiles name: `stat`
//! through kept descriptors, the count of open files, and the watches' totals.

use std::fs::File;
use std::io;

use rustix::fs::{Mode, OFlags, RawDir};

use super::super::files::read_rest;
use super::state::{Reading, Watched};
use super::{CollectError, Out, Process, Select, gone, parse_pidfile, parse_stat, read_whole};

/// Descriptors of watched processes' `stat` files kept open, at most; beyond, they are
/// opened on every tick. Keeps the agent well below the usual limit of 1024 open files.
const MAX_KEPT: usize = 256;

impl Process {
    /// Reads the pidfiles of pidfile watches, queueing the processes they name. True if one
    /// names a process not known yet.
    pub(super) fn read_pidfiles(&mut self, out: &mut Out<'_>) -> bool {
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
    pub(super) fn read_queued(&mut self, out: &mut Out<'_>) -> bool {
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
