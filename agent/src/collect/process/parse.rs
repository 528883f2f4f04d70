//! Parsers of the per-process files: `/proc/[pid]/stat`, `cmdline` and `cgroup`, and of
//! pidfiles. Pure functions on bytes.

use super::pattern::{Pattern, Search};

/// Longest `comm` the kernel keeps for a user process (`TASK_COMM_LEN - 1`); longer program
/// names are cut to this many bytes.
pub const COMM_LEN: usize = 15;

/// `PF_KTHREAD` in the flags field of `/proc/[pid]/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/[pid]/stat` the collectors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// Command name, as raw bytes: a process can set it to anything.
    pub comm: &'a [u8],
    /// State letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: u8,
    /// `PF_*` flags.
    pub flags: u64,
    /// CPU time in user mode, in clock ticks, all threads.
    pub utime: u64,
    /// CPU time in kernel mode, in clock ticks, all threads.
    pub stime: u64,
    /// Threads.
    pub num_threads: u64,
    /// Start time in clock ticks after boot; with the pid, identifies the process.
    pub starttime: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

impl PidStat<'_> {
    /// Not a zombie and not being reaped.
    pub fn alive(&self) -> bool {
        !self.zombie()
    }

    /// A zombie (`Z`) or being reaped (`X`, `x`): exited, waiting for its parent.
    pub fn zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }

    /// A kernel thread rather than a program.
    pub fn kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses `/proc/[pid]/stat`. The comm is everything between the first `(` and the last `)`:
/// it may itself contain spaces, parentheses and newlines.
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
    // Fields after the state, counted from 1 (proc(5) numbers them from 4): ppid pgrp session
    // tty_nr tpgid flags(6) minflt cminflt majflt cmajflt utime(11) stime(12) cutime cstime
    // priority nice num_threads(17) itrealvalue starttime(19) vsize rss(21).
    let mut field = |skip: usize, what: &str| {
        f.nth(skip)
            .and_then(parse_u64)
            .ok_or_else(|| format!("no {what}"))
    };
    let flags = field(5, "flags")?;
    let utime = field(4, "utime")?;
    let stime = field(0, "stime")?;
    let num_threads = field(4, "num_threads")?;
    let starttime = field(1, "starttime")?;
    let rss_pages = field(1, "rss")?;
    Ok(PidStat {
        comm: &buf[open + 1..close],
        state,
        flags,
        utime,
        stime,
        num_threads,
        starttime,
        rss_pages,
    })
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A `/proc` entry name that is a pid.
pub fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.first().is_some_and(u8::is_ascii_digit) {
        parse_u64(name).and_then(|n| u32::try_from(n).ok())
    } else {
        None
    }
}

/// The pid in a pidfile: a decimal number, surrounding whitespace allowed. Pid 0 is not a
/// process.
pub fn parse_pidfile(content: &[u8]) -> Result<u32, String> {
    let text = content.trim_ascii();
    parse_u64(text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            let shown = String::from_utf8_lossy(&text[..text.len().min(32)]).into_owned();
            format!("not a pid: {shown:?}")
        })
}

/// The program name in `/proc/[pid]/cmdline`: `argv[0]` up to the first space or `:` (titles
/// set by `setproctitle`, such as `nginx: worker process`), without its directory.
pub fn program(cmdline: &[u8]) -> &[u8] {
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let end = argv0
        .iter()
        .position(|&b| b == b' ' || b == b':')
        .unwrap_or(argv0.len());
    let path = &argv0[..end];
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Whether a process whose comm is the first 15 bytes of the watched `name` is that program.
/// `program` is its `argv[0]` name, if readable.
pub fn long_name_matches(name: &[u8], comm: &[u8], program: Option<&[u8]>) -> bool {
    match program {
        // `argv[0]` is where the truncated comm came from: it says which long name it was.
        Some(p) if p.len() > COMM_LEN && p.starts_with(comm) => p == name,
        // No cmdline, or the comm came from elsewhere (a script run by an interpreter has the
        // script's name as comm): the comm is all there is to go by.
        _ => true,
    }
}

/// Matches a command line read in pieces against a pattern, as `ps` and `pgrep -f` show it:
/// the arguments separated by spaces (the NULs between them in `/proc/[pid]/cmdline` read
/// as spaces, trailing ones dropped).
#[derive(Debug, Clone, Copy)]
pub struct CmdlineSearch {
    search: Search,
    /// NULs seen and not yet known to be trailing.
    pending_nuls: usize,
}

impl CmdlineSearch {
    /// A search at the start of a command line.
    pub fn new(pattern: &Pattern) -> Self {
        Self {
            search: pattern.search(),
            pending_nuls: 0,
        }
    }

    /// Feeds the next bytes of the command line.
    pub fn feed(&mut self, pattern: &Pattern, bytes: &[u8]) {
        for &b in bytes {
            if pattern.done(&self.search) {
                return;
            }
            if b == 0 {
                self.pending_nuls += 1;
                continue;
            }
            for _ in 0..std::mem::take(&mut self.pending_nuls) {
                pattern.step(&mut self.search, b' ');
            }
            pattern.step(&mut self.search, b);
        }
    }

    /// Whether more bytes cannot change the outcome.
    pub fn done(&self, pattern: &Pattern) -> bool {
        pattern.done(&self.search)
    }

    /// Whether the command line fed so far matched.
    pub fn finish(&self, pattern: &Pattern) -> bool {
        pattern.finish(&self.search)
    }
}

/// Whether a process whose `/proc/[pid]/cgroup` is `cgroup` belongs to the systemd unit whose
/// name, with a `/` before it, is `slash_unit` (`/nginx.service`): one of its cgroup paths
/// is the unit's cgroup (`0::/system.slice/nginx.service`) or below it (a unit that delegates
/// to sub-cgroups: `.../user@1000.service/app.slice/...`). cgroup v1 lists one line per
/// hierarchy; any of them will do.
pub fn in_unit(cgroup: &[u8], slash_unit: &[u8]) -> bool {
    cgroup.split(|&b| b == b'\n').any(|line| {
        // hierarchy-ID:controllers:path; the path may itself contain ':'.
        let mut parts = line.splitn(3, |&b| b == b':');
        let Some(path) = parts.nth(2) else {
            return false;
        };
        path.ends_with(slash_unit)
            || path
                .windows(slash_unit.len() + 1)
                .any(|w| w.starts_with(slash_unit) && w[slash_unit.len()] == b'/')
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    pub(super) fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/server/proc")
                .join(path),
        )
        .unwrap()
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
                utime: 1520,
                stime: 2210,
                num_threads: 1,
                starttime: 12,
                rss_pages: 3215,
            }
        );
        assert!(stat.alive() && !stat.kernel_thread());

        let kthreadd = fixture("2/stat");
        assert!(parse_stat(&kthreadd).unwrap().kernel_thread());

        let zombie = fixture("814/stat");
        let stat = parse_stat(&zombie).unwrap();
        assert!(stat.zombie() && !stat.alive());
        assert_eq!(stat.rss_pages, 0);

        let sd_pam = fixture("1402/stat");
        assert_eq!(parse_stat(&sd_pam).unwrap().comm, b"(sd-pam)");

        // A comm may contain ") S 1 (": only the last ')' ends it.
        let evil = fixture("2210/stat");
        let stat = parse_stat(&evil).unwrap();
        assert_eq!(stat.comm, b"evil) S 1 (x");
        assert_eq!(stat.state, b'R');
        assert_eq!(stat.starttime, 9120);

        // ... or a newline.
        let newline = fixture("2211/stat");
        let stat = parse_stat(&newline).unwrap();
        assert_eq!(stat.comm, b"two\nlines");
        assert_eq!(stat.num_threads, 3);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat(b"12 nginx S 1").is_err());
        assert!(parse_stat(b"12 (nginx) S 1 12 12 0 -1").is_err());
        let err = parse_stat(b"12 (nginx) S 1 12 12 0 -1 4194560 1 2 3").unwrap_err();
        assert_eq!(err, "no utime");
        // Everything up to starttime, but no vsize and rss.
        let err = parse_stat(b"12 (nginx) S 1 12 12 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 100")
            .unwrap_err();
        assert_eq!(err, "no rss");
    }

    #[test]
    fn reads_pids_and_pidfiles() {
        assert_eq!(parse_pid(b"1234"), Some(1234));
        assert_eq!(parse_pid(b"self"), None);
        assert_eq!(parse_pid(b"99999999999"), None);
        assert_eq!(parse_pidfile(b"812\n"), Ok(812));
        assert_eq!(parse_pidfile(b"  812  "), Ok(812));
        assert!(parse_pidfile(b"").is_err());
        assert!(parse_pidfile(b"0\n").is_err());
        assert_eq!(
            parse_pidfile(b"nginx is running\n"),
            Err("not a pid: \"nginx is running\"".into())
        );
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

    fn cmdline_matches(pattern: &str, cmdline: &[u8], chunk: usize) -> bool {
        let p = Pattern::new(pattern).unwrap();
        let mut s = CmdlineSearch::new(&p);
        for piece in cmdline.chunks(chunk) {
            s.feed(&p, piece);
        }
        s.finish(&p)
    }

    #[test]
    fn matches_command_lines_as_ps_shows_them() {
        let nginx = fixture("812/cmdline");
        assert!(cmdline_matches(
            "^nginx: master process /usr/sbin/nginx",
            &nginx,
            7
        ));
        // The trailing NUL is not a space.
        assert!(cmdline_matches(
            "-g daemon on; master_process on;$",
            &nginx,
            4096
        ));
        assert!(cmdline_matches("^a b  c$", b"a\0b\0\0c\0", 1));
        assert!(!cmdline_matches("c $", b"a\0b\0\0c\0", 1));
    }

    /// A JVM whose main class comes after a classpath longer than a page, and longer than
    /// the kernel's limit for one argument was before 2.6.23 (128 KiB).
    #[test]
    fn matches_very_long_command_lines() {
        let java = fixture("1500/cmdline");
        assert!(java.len() > 150_000, "{}", java.len());
        assert_eq!(program(&java), b"java");
        for chunk in [4096, 65536, java.len()] {
            assert!(cmdline_matches(
                "-cp .* org\\.example\\.billing\\.Main --port 8080$",
                &java,
                chunk
            ));
            assert!(!cmdline_matches(
                "org\\.example\\.shipping\\.Main",
                &java,
                chunk
            ));
        }
    }

    #[test]
    fn finds_systemd_units_in_cgroup_files() {
        let v2 = fixture("812/cgroup");
        assert!(in_unit(&v2, b"/nginx.service"));
        assert!(!in_unit(&v2, b"/x.service"));
        // Not a suffix of another name.
        assert!(!in_unit(
            b"0::/system.slice/my-nginx.service\n",
            b"/nginx.service"
        ));
        // v1: one of the hierarchies names the unit.
        let v1 = fixture("1201/cgroup");
        assert!(in_unit(&v1, b"/kube-controller-manager.service"));
        // Below the unit's cgroup: delegated sub-cgroups.
        let user = fixture("1402/cgroup");
        assert!(in_unit(&user, b"/user@1000.service"));
        // A slice holds everything below it.
        assert!(in_unit(&user, b"/user-1000.slice"));
        assert!(!in_unit(&user, b"/user-1001.slice"));
        assert!(!in_unit(b"garbage without colons\n", b"/nginx.service"));
    }
}
