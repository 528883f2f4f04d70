//! Process collector: whether watched programs are running, from `/proc/[pid]/stat`, and how
//! many processes there are.
//!
//! Reading every `/proc/[pid]/stat` on every tick would cost several microseconds per process,
//! so what a pid is running is cached and a pid's files are read again only when that can
//! have changed (see [`Process::collect`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, RawDir};
use serde::Deserialize;

use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// Longest `comm` the kernel keeps for a user process (`TASK_COMM_LEN - 1`); longer program
/// names are cut to this many bytes.
const COMM_LEN: usize = 15;

/// `PF_KTHREAD` in the flags field of `/proc/[pid]/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Every process is re-read at least once per this many ticks, in case it exec'd another
/// program long after it was first seen. Spread over ticks by pid.
const REVALIDATE_EVERY: u64 = 64;

/// Size of the buffer `getdents64` fills: about 1000 `/proc` entries per call.
const DIR_BUF: usize = 32 * 1024;

/// `[collect.process]`: programs whose presence is reported.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Program names to watch, as `ps -e` and `pgrep` show them (the kernel's `comm`, usually
    /// the executable's file name), e.g. `["nginx", "postgres", "kube-controller-manager"]`.
    /// The kernel keeps only the first 15 characters of a name, so longer names match on those
    /// and are confirmed with argv[0] where it is readable. Default `[]`.
    #[serde(default)]
    pub watch: Vec<String>,
}

/// The fields of `/proc/[pid]/stat` the collector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// Command name, as raw bytes: a process can set it to anything.
    pub comm: &'a [u8],
    /// State letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: u8,
    /// `PF_*` flags.
    pub flags: u64,
    /// Start time in clock ticks after boot; with the pid, identifies the process.
    pub starttime: u64,
}

impl PidStat<'_> {
    /// Not a zombie and not being reaped.
    pub fn alive(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }

    /// A kernel thread rather than a program.
    pub fn kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses `/proc/[pid]/stat`. The comm is everything between the first `(` and the last `)`:
/// it may itself contain spaces and parentheses.
pub fn parse_stat(buf: &[u8]) -> Result<PidStat<'_>, String> {
    let open = buf
        .iter()
        .position(|&b| b == b'(')
        .ok_or("no '(' before the command name")?;
    let close = buf
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&close| close > open)
        .ok_or("no ')' after the command name")?;
    let mut f = buf[close + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|s| !s.is_empty());
    let state = f
        .next()
        .and_then(|s| s.first().copied())
        .ok_or("no state")?;
    // After the state: ppid pgrp session tty_nr tpgid flags ... (flags is the 6th), then
    // starttime is the 13th field after flags.
    let flags = f.nth(5).and_then(parse_u64).ok_or("no flags")?;
    let starttime = f.nth(12).and_then(parse_u64).ok_or("no starttime")?;
    Ok(PidStat {
        comm: &buf[open + 1..close],
        state,
        flags,
        starttime,
    })
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A `/proc` entry name that is a pid.
fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.first().is_some_and(u8::is_ascii_digit) {
        parse_u64(name).and_then(|n| u32::try_from(n).ok())
    } else {
        None
    }
}

/// The program name in `/proc/[pid]/cmdline`: argv[0] up to the first space or `:` (titles
/// set by `setproctitle`, such as `nginx: worker process`), without its directory.
fn program(cmdline: &[u8]) -> &[u8] {
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let end = argv0
        .iter()
        .position(|&b| b == b' ' || b == b':')
        .unwrap_or(argv0.len());
    let path = &argv0[..end];
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Whether a process whose comm is the first 15 bytes of the watched `name` is that program.
/// `program` is its argv[0] name, if readable.
fn long_name_matches(name: &[u8], comm: &[u8], program: Option<&[u8]>) -> bool {
    match program {
        // argv[0] is where the truncated comm came from: it says which long name it was.
        Some(p) if p.len() > COMM_LEN && p.starts_with(comm) => p == name,
        // No cmdline, or the comm came from elsewhere (a script run by an interpreter has the
        // script's name as comm): the comm is all there is to go by.
        _ => true,
    }
}

#[derive(Debug)]
struct Entry {
    /// Inode of `/proc/[pid]` when last read: procfs gives a new inode to a new process with
    /// the same pid, so a changed inode means the pid was reused.
    ino: u64,
    starttime: u64,
    comm: Box<[u8]>,
    kernel_thread: bool,
    alive: bool,
    /// Indexes into the watch list of the names this process matches.
    watches: Vec<usize>,
    /// Tick at which this process was first seen; `None` for processes already running on the
    /// first tick, whose age is unknown.
    first_seen: Option<u64>,
    /// Last tick on which the pid was listed.
    seen: u64,
}

/// Watched programs and the process count.
#[derive(Debug)]
pub struct Process {
    procfs: PathBuf,
    watch: Vec<String>,
    pids: HashMap<u32, Entry>,
    tick: u64,
    /// Reused buffers and path, so a tick allocates nothing for known processes.
    dir_buf: Vec<u8>,
    stat_buf: Vec<u8>,
    cmdline_buf: Vec<u8>,
    path: PathBuf,
    counts: Vec<u32>,
    /// `stat` files read so far, to check that the cache works.
    stat_reads: u64,
}

impl Process {
    /// A process collector reading `{procfs}/[pid]/stat` (and `cmdline` for long names).
    pub fn new(config: &CollectConfig) -> Self {
        let mut watch: Vec<String> = Vec::new();
        for name in &config.process.watch {
            if !watch.contains(name) {
                watch.push(name.clone());
            }
        }
        Self {
            procfs: config.procfs.clone(),
            counts: vec![0; watch.len()],
            watch,
            pids: HashMap::new(),
            tick: 0,
            dir_buf: Vec::with_capacity(DIR_BUF),
            stat_buf: Vec::with_capacity(1024),
            cmdline_buf: Vec::with_capacity(4096),
            path: PathBuf::new(),
            stat_reads: 0,
        }
    }

    /// Lists `/proc`, updating the cache. Returns the number of pids and the first parse
    /// error, if any.
    fn scan(&mut self, buf: &mut Vec<u8>) -> Result<(u64, Option<String>), CollectError> {
        let fd = rustix::fs::open(
            &self.procfs,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| dir_error(&self.procfs, e))?;
        let mut dir = RawDir::new(&fd, buf.spare_capacity_mut());
        let mut total = 0;
        let mut first_error = None;
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(|e| dir_error(&self.procfs, e))?;
            let name = entry.file_name().to_bytes();
            let Some(pid) = parse_pid(name) else {
                continue;
            };
            total += 1;
            // A pid name is ASCII digits.
            let name = std::str::from_utf8(name).unwrap_or_default();
            if let Err(e) = self.visit(pid, name, entry.ino()) {
                first_error.get_or_insert(e);
            }
        }
        Ok((total, first_error))
    }

    /// Brings one listed pid's cache entry up to date and counts it.
    fn visit(&mut self, pid: u32, name: &str, ino: u64) -> Result<(), String> {
        let tick = self.tick;
        let cached = match self.pids.get_mut(&pid) {
            None => false,
            Some(e) => {
                let young = e
                    .first_seen
                    .is_some_and(|t| (tick - t).is_power_of_two() && tick - t < REVALIDATE_EVERY);
                let due = (u64::from(pid) + tick).is_multiple_of(REVALIDATE_EVERY);
                // Re-read when the pid may be another process (new inode), when its state
                // matters (watched), or when it may have exec'd: shortly after it appeared
                // (fork, then exec) and now and then later on. Kernel threads never exec.
                let stale =
                    e.ino != ino || !e.watches.is_empty() || (!e.kernel_thread && (young || due));
                if !stale {
                    e.seen = tick;
                }
                !stale
            }
        };
        if cached {
            return Ok(());
        }

        self.path.clone_from(&self.procfs);
        self.path.push(name);
        self.path.push("stat");
        self.stat_reads += 1;
        if read_into(&self.path, &mut self.stat_buf).is_err() {
            // Exited since the listing, or hidden from us (hidepid): not an error.
            return Ok(());
        }
        let stat = parse_stat(&self.stat_buf).map_err(|e| format!("{pid}/stat: {e}"))?;
        self.path.pop();
        let first_tick = tick == 1;
        let entry = match self.pids.entry(pid) {
            MapEntry::Occupied(o) if o.get().starttime == stat.starttime => {
                let e = o.into_mut();
                if *e.comm != *stat.comm {
                    // exec'd another program.
                    e.comm = stat.comm.into();
                    e.watches = matches(&self.watch, &stat, &mut self.path, &mut self.cmdline_buf);
                }
                e
            }
            slot => {
                let e = Entry {
                    ino,
                    starttime: stat.starttime,
                    comm: stat.comm.into(),
                    kernel_thread: stat.kernel_thread(),
                    alive: false,
                    watches: matches(&self.watch, &stat, &mut self.path, &mut self.cmdline_buf),
                    first_seen: (!first_tick).then_some(tick),
                    seen: tick,
                };
                match slot {
                    MapEntry::Occupied(mut o) => {
                        o.insert(e);
                        o.into_mut()
                    }
                    MapEntry::Vacant(v) => v.insert(e),
                }
            }
        };
        entry.ino = ino;
        entry.seen = tick;
        entry.alive = stat.alive();
        if entry.alive {
            for &i in &entry.watches {
                self.counts[i] += 1;
            }
        }
        Ok(())
    }
}

/// Which watched names a process matches. `pid_dir` is its `/proc/[pid]`; its `cmdline` is
/// read only for names longer than the kernel keeps.
fn matches(
    watch: &[String],
    stat: &PidStat<'_>,
    pid_dir: &mut PathBuf,
    cmdline: &mut Vec<u8>,
) -> Vec<usize> {
    if stat.kernel_thread() {
        return Vec::new();
    }
    let mut program_read = false;
    let mut found = Vec::new();
    for (i, name) in watch.iter().enumerate() {
        let name = name.as_bytes();
        let hit = if name.len() > COMM_LEN && stat.comm.len() == COMM_LEN {
            name.starts_with(stat.comm) && {
                if !program_read {
                    program_read = true;
                    pid_dir.push("cmdline");
                    if read_into(pid_dir, cmdline).is_err() {
                        cmdline.clear();
                    }
                    pid_dir.pop();
                }
                let p = program(cmdline);
                long_name_matches(name, stat.comm, (!p.is_empty()).then_some(p))
            }
        } else {
            name == stat.comm
        };
        if hit {
            found.push(i);
        }
    }
    found
}

fn dir_error(procfs: &Path, e: rustix::io::Errno) -> CollectError {
    CollectError::Read {
        path: procfs.to_owned(),
        source: e.into(),
    }
}

/// Reads a whole file into `buf`, reusing its allocation.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_end(buf)?;
    Ok(())
}

impl Collector for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    /// Lists the pids in `/proc` and reads `/proc/[pid]/stat` only for pids that are new, that
    /// were reused (inode changed), that match a watched name (to see whether they are still
    /// alive), and now and then for the others in case they exec'd another program.
    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        self.tick += 1;
        self.counts.fill(0);
        let mut buf = std::mem::take(&mut self.dir_buf);
        let scanned = self.scan(&mut buf);
        self.dir_buf = buf;
        let (total, parse_error) = scanned?;
        let tick = self.tick;
        self.pids.retain(|_, e| e.seen == tick);

        out.push("processes_total", &[], total as f64);
        for (name, &count) in self.watch.iter().zip(&self.counts) {
            let labels = [("process", name.as_str())];
            out.push("process_up", &labels, if count > 0 { 1.0 } else { 0.0 });
            out.push("process_count", &labels, f64::from(count));
        }
        match parse_error {
            Some(detail) => Err(CollectError::Parse {
                path: self.procfs.clone(),
                detail,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use nines_common::{Sample, SeriesKey};

    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/server/proc")
                .join(path),
        )
        .unwrap()
    }

    fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = SeriesKey::new(name, labels);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    #[test]
    fn parses_stat_files() {
        let systemd = fixture("1/stat");
        let stat = parse_stat(&systemd).unwrap();
        assert_eq!(
            stat,
            PidStat {
                comm: b"systemd",
                state: b'S',
                flags: 4194560,
                starttime: 12,
            }
        );
        assert!(stat.alive() && !stat.kernel_thread());

        let kthreadd = fixture("2/stat");
        assert!(parse_stat(&kthreadd).unwrap().kernel_thread());

        let zombie = fixture("814/stat");
        assert!(!parse_stat(&zombie).unwrap().alive());

        let sd_pam = fixture("1402/stat");
        assert_eq!(parse_stat(&sd_pam).unwrap().comm, b"(sd-pam)");

        // A comm may contain ") S 1 (": only the last ')' ends it.
        let evil = fixture("2210/stat");
        let stat = parse_stat(&evil).unwrap();
        assert_eq!(stat.comm, b"evil) S 1 (x");
        assert_eq!(stat.state, b'R');
        assert_eq!(stat.starttime, 9120);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat(b"12 nginx S 1").is_err());
        assert!(parse_stat(b"12 (nginx) S 1 12 12 0 -1").is_err());
        assert!(parse_stat(b"12 (nginx) S 1 12 12 0 -1 4194560 1 2 3").is_err());
    }

    #[test]
    fn finds_the_program_in_cmdline() {
        assert_eq!(
            program(&fixture("1201/cmdline")),
            b"kube-controller-manager"
        );
        assert_eq!(program(&fixture("812/cmdline")), b"nginx");
        assert_eq!(program(b"postgres: checkpointer \0"), b"postgres");
        assert_eq!(program(b""), b"");
    }

    #[test]
    fn long_names_are_confirmed_by_argv0() {
        let name = b"kube-controller-manager";
        let comm = b"kube-controller";
        assert!(long_name_matches(
            name,
            comm,
            Some(b"kube-controller-manager")
        ));
        assert!(!long_name_matches(name, comm, Some(b"kube-controller-foo")));
        // Script run by an interpreter, or cmdline unreadable: trust the comm.
        assert!(long_name_matches(name, comm, Some(b"python3")));
        assert!(long_name_matches(name, comm, None));
    }

    #[test]
    fn reports_watched_programs_in_a_fixture_tree() {
        let config = CollectConfig {
            procfs: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/server/proc"),
            process: ProcessConfig {
                watch: [
                    "nginx",
                    "kube-controller-manager",
                    "(sd-pam)",
                    "kthreadd",
                    "sshd",
                ]
                .map(String::from)
                .to_vec(),
            },
            ..Default::default()
        };
        let mut samples = Vec::new();
        let tick = Tick {
            ts_ms: 0,
            now: Instant::now(),
        };
        Process::new(&config)
            .collect(&tick, &mut Out::new(0, &mut samples))
            .unwrap();
        let p = |name: &str| {
            let labels = [("process", name)];
            (
                get(&samples, "process_up", &labels).unwrap(),
                get(&samples, "process_count", &labels).unwrap(),
            )
        };
        // 8 pid directories; `self`, `net`, `stat`, ... are not pids.
        assert_eq!(get(&samples, "processes_total", &[]), Some(8.0));
        // Master and one worker; the zombie worker does not count.
        assert_eq!(p("nginx"), (1.0, 2.0));
        assert_eq!(p("kube-controller-manager"), (1.0, 1.0));
        assert_eq!(p("(sd-pam)"), (1.0, 1.0));
        // Kernel threads are not programs.
        assert_eq!(p("kthreadd"), (0.0, 0.0));
        assert_eq!(p("sshd"), (0.0, 0.0));
    }

    /// A fake `/proc` whose processes the test starts, stops and reuses.
    struct FakeProc {
        dir: tempfile::TempDir,
    }

    impl FakeProc {
        fn spawn(&self, pid: u32, comm: &str, state: char, starttime: u64, cmdline: &str) {
            // Build the new directory aside and move it in, as a new process gets a new
            // /proc/[pid] inode.
            let tmp = self.dir.path().join(format!(".{pid}"));
            std::fs::create_dir(&tmp).unwrap();
            std::fs::write(
                tmp.join("stat"),
                format!(
                    "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 120 0 0 0 1 0 0 0 20 0 1 0 \
                     {starttime} 8892416 896 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0\n"
                ),
            )
            .unwrap();
            std::fs::write(tmp.join("cmdline"), cmdline).unwrap();
            self.kill(pid);
            std::fs::rename(&tmp, self.dir.path().join(pid.to_string())).unwrap();
        }

        /// Same process, new program: comm changes, the directory stays.
        fn exec(&self, pid: u32, comm: &str, starttime: u64) {
            let path = self.dir.path().join(format!("{pid}/stat"));
            let stat = std::fs::read_to_string(&path).unwrap();
            let rest = &stat[stat.rfind(')').unwrap()..];
            std::fs::write(&path, format!("{pid} ({comm}{rest}")).unwrap();
            assert!(rest.contains(&format!(" {starttime} ")));
        }

        fn kill(&self, pid: u32) {
            let _ = std::fs::remove_dir_all(self.dir.path().join(pid.to_string()));
        }
    }

    #[test]
    fn follows_processes_across_ticks() {
        let fake = FakeProc {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(fake.dir.path().join("uptime"), "1.0 1.0\n").unwrap();
        std::fs::create_dir(fake.dir.path().join("sys")).unwrap();
        let config = CollectConfig {
            procfs: fake.dir.path().to_owned(),
            process: ProcessConfig {
                watch: ["nginx", "postgres", "kube-controller-manager"]
                    .map(String::from)
                    .to_vec(),
            },
            ..Default::default()
        };
        let mut collector = Process::new(&config);
        let start = Instant::now();
        let mut secs = 0;
        let mut run = |collector: &mut Process| {
            let tick = Tick {
                ts_ms: secs * 1000,
                now: start + Duration::from_secs(secs as u64),
            };
            secs += 1;
            let mut samples = Vec::new();
            collector
                .collect(&tick, &mut Out::new(tick.ts_ms, &mut samples))
                .unwrap();
            samples
        };
        let state = |samples: &[Sample], name: &str| {
            let labels = [("process", name)];
            (
                get(samples, "process_up", &labels).unwrap(),
                get(samples, "process_count", &labels).unwrap(),
            )
        };

        fake.spawn(1, "systemd", 'S', 5, "/sbin/init\0");
        fake.spawn(500, "nginx", 'S', 100, "nginx: master process\0");
        fake.spawn(501, "nginx", 'S', 101, "nginx: worker process\0");
        fake.spawn(
            700,
            "kube-controller",
            'S',
            150,
            "/usr/bin/kube-controller-manager\0",
        );
        fake.spawn(
            701,
            "kube-controller",
            'S',
            151,
            "/usr/bin/kube-controller-tool\0",
        );
        fake.spawn(800, "cron", 'S', 160, "/usr/sbin/cron\0");
        let first = run(&mut collector);
        assert_eq!(get(&first, "processes_total", &[]), Some(6.0));
        assert_eq!(state(&first, "nginx"), (1.0, 2.0));
        assert_eq!(state(&first, "postgres"), (0.0, 0.0));
        assert_eq!(state(&first, "kube-controller-manager"), (1.0, 1.0));
        assert_eq!(collector.stat_reads, 6);

        // Nothing changed: only the three watched processes are read again.
        let second = run(&mut collector);
        assert_eq!(state(&second, "nginx"), (1.0, 2.0));
        assert_eq!(collector.stat_reads, 9);

        // The nginx worker dies and the master becomes a zombie; postgres starts; cron's pid
        // is reused by a postgres worker; a shell forks (still "bash") on its way to exec
        // nginx.
        fake.kill(501);
        fake.spawn(500, "nginx", 'Z', 100, "");
        fake.spawn(
            900,
            "postgres",
            'S',
            300,
            "/usr/lib/postgresql/16/bin/postgres\0",
        );
        fake.spawn(800, "postgres", 'S', 301, "postgres: checkpointer\0");
        fake.spawn(950, "bash", 'S', 302, "/bin/bash\0");
        let third = run(&mut collector);
        assert_eq!(get(&third, "processes_total", &[]), Some(7.0));
        assert_eq!(state(&third, "nginx"), (0.0, 0.0));
        assert_eq!(state(&third, "postgres"), (1.0, 2.0));

        // The shell has exec'd nginx since: seen on the next tick.
        fake.exec(950, "nginx", 302);
        let fourth = run(&mut collector);
        assert_eq!(state(&fourth, "nginx"), (1.0, 1.0));

        // A pid listed but gone before its stat is read is skipped, not an error.
        std::fs::create_dir(fake.dir.path().join("1234")).unwrap();
        let fifth = run(&mut collector);
        assert_eq!(get(&fifth, "processes_total", &[]), Some(8.0));
        assert_eq!(state(&fifth, "nginx"), (1.0, 1.0));
    }
}
