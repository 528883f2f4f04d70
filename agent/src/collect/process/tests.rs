#![allow(clippy::unwrap_used)]

use std::time::Instant;

use nines_common::Sample;

use super::super::testing::{get, run, run_ok, tick};
use super::*;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/server")
}

fn watch(toml: &str) -> Vec<Watch> {
    let config: ProcessConfig = toml::from_str(toml).unwrap();
    config.watch
}

/// up, count, zombies of one watch.
fn state(samples: &[Sample], name: &str) -> (f64, f64, f64) {
    let labels = [("process", name)];
    (
        get(samples, "process_up", &labels).unwrap(),
        get(samples, "process_count", &labels).unwrap(),
        get(samples, "process_zombies", &labels).unwrap(),
    )
}

#[test]
fn reports_watches_of_every_kind_in_a_fixture_tree() {
    let root = fixture_root();
    let pidfile = root.join("run/nginx.pid");
    let config = CollectConfig {
        procfs: root.join("proc"),
        process: ProcessConfig {
            watch: watch(&format!(
                r#"watch = [
                  "nginx",
                  "kube-controller-manager",
                  "(sd-pam)",
                  "kthreadd",
                  "sshd",
                  {{ name = "web", unit = "nginx.service", min = 3 }},
                  {{ name = "master", pidfile = "{}" }},
                  {{ name = "billing", cmdline = "-cp .* org\\.example\\.billing\\.Main" }},
                  {{ name = "kcm", unit = "kube-controller-manager.service" }},
                  {{ name = "workers", cmdline = "^nginx: worker process$" }},
                ]"#,
                pidfile.display()
            )),
        },
        ..Default::default()
    };
    let mut collector = Process::new(&config);
    let samples = run_ok(&mut collector, &tick(Instant::now(), 0));
    // 11 pid directories; `self`, `net`, `stat`, ... are not pids. 814 is a zombie.
    assert_eq!(get(&samples, "processes_total", &[]), Some(11.0));
    assert_eq!(get(&samples, "processes_zombie", &[]), Some(1.0));
    // Master and one worker; the zombie worker does not count but is reported.
    assert_eq!(state(&samples, "nginx"), (1.0, 2.0, 1.0));
    assert_eq!(state(&samples, "kube-controller-manager"), (1.0, 1.0, 0.0));
    assert_eq!(state(&samples, "(sd-pam)"), (1.0, 1.0, 0.0));
    // Kernel threads are not programs.
    assert_eq!(state(&samples, "kthreadd"), (0.0, 0.0, 0.0));
    assert_eq!(state(&samples, "sshd"), (0.0, 0.0, 0.0));
    // The unit's cgroup holds the same processes; 2 live are fewer than the 3 required.
    assert_eq!(state(&samples, "web"), (0.0, 2.0, 1.0));
    // The pidfile names the master only.
    assert_eq!(state(&samples, "master"), (1.0, 1.0, 0.0));
    // Found after a 150 KB classpath.
    assert_eq!(state(&samples, "billing"), (1.0, 1.0, 0.0));
    // cgroup v1 lists the unit in several hierarchies: still one process.
    assert_eq!(state(&samples, "kcm"), (1.0, 1.0, 0.0));
    // The worker's title is padded with NULs, which are not part of the command line.
    assert_eq!(state(&samples, "workers"), (1.0, 1.0, 0.0));

    let labels = [("process", "nginx")];
    // 2142 + 3510 resident pages of 4 KiB (the fixture has no auxv); 1 + 1 threads; 6 + 9
    // open files.
    assert_eq!(
        get(&samples, "process_resident_bytes", &labels),
        Some((2142.0 + 3510.0) * 4096.0)
    );
    assert_eq!(get(&samples, "process_threads", &labels), Some(2.0));
    assert_eq!(get(&samples, "process_open_fds", &labels), Some(15.0));
    assert_eq!(get(&samples, "process_restarts_total", &labels), Some(0.0));
    // A CPU ratio needs two ticks.
    assert_eq!(get(&samples, "process_cpu_ratio", &labels), None);
    let billing = [("process", "billing")];
    assert_eq!(get(&samples, "process_threads", &billing), Some(47.0));
    assert_eq!(get(&samples, "process_open_fds", &billing), Some(31.0));
    // No fd directory in the fixture: unknown rather than 0.
    let kcm = [("process", "kcm")];
    assert_eq!(get(&samples, "process_open_fds", &kcm), None);
    assert_eq!(get(&samples, "process_threads", &kcm), Some(14.0));
}

/// A fake `/proc` whose processes the test starts, stops and reuses.
struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        Self { dir }
    }

    fn config(&self, toml: &str) -> CollectConfig {
        CollectConfig {
            procfs: self.dir.path().to_owned(),
            process: ProcessConfig { watch: watch(toml) },
            ..Default::default()
        }
    }

    fn stat_line(pid: u32, comm: &str, state: char, starttime: u64, cpu: (u64, u64)) -> String {
        format!(
            "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 120 0 0 0 {} {} 0 0 20 0 2 0 \
             {starttime} 8892416 896 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0\n",
            cpu.0, cpu.1
        )
    }

    fn spawn(&self, pid: u32, comm: &str, state: char, starttime: u64, cmdline: &str) {
        self.spawn_in(pid, comm, state, starttime, cmdline, "/user.slice");
    }

    fn spawn_in(&self, pid: u32, comm: &str, state: char, starttime: u64, cmdline: &str, cg: &str) {
        // Build the new directory aside and move it in, as a new process gets a new
        // /proc/[pid] inode.
        let tmp = self.dir.path().join(format!(".{pid}"));
        std::fs::create_dir(&tmp).unwrap();
        std::fs::write(
            tmp.join("stat"),
            Self::stat_line(pid, comm, state, starttime, (1, 0)),
        )
        .unwrap();
        std::fs::write(tmp.join("cmdline"), cmdline).unwrap();
        std::fs::write(tmp.join("cgroup"), format!("0::{cg}\n")).unwrap();
        std::fs::create_dir(tmp.join("fd")).unwrap();
        for fd in 0..3 {
            std::fs::write(tmp.join(format!("fd/{fd}")), "").unwrap();
        }
        self.kill(pid);
        std::fs::rename(&tmp, self.dir.path().join(pid.to_string())).unwrap();
    }

    /// Same process, new state and CPU times: rewritten in place.
    fn update(&self, pid: u32, comm: &str, state: char, starttime: u64, cpu: (u64, u64)) {
        std::fs::write(
            self.dir.path().join(format!("{pid}/stat")),
            Self::stat_line(pid, comm, state, starttime, cpu),
        )
        .unwrap();
    }

    /// Same process, new program: comm changes, the directory stays.
    fn exec(&self, pid: u32, comm: &str, starttime: u64) {
        self.update(pid, comm, 'S', starttime, (1, 0));
    }

    fn kill(&self, pid: u32) {
        let _ = std::fs::remove_dir_all(self.dir.path().join(pid.to_string()));
    }
}

#[test]
fn follows_processes_across_ticks() {
    let fake = FakeProc::new();
    let config = fake.config(r#"watch = ["nginx", "postgres", "kube-controller-manager"]"#);
    let mut collector = Process::new(&config);
    let start = Instant::now();
    let mut secs = 0;
    let mut tick_once = |collector: &mut Process| {
        let samples = run_ok(collector, &tick(start, secs));
        secs += 1;
        samples
    };
    let state = |samples: &[Sample], name: &str| {
        let (up, count, _) = state(samples, name);
        (up, count)
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
    let first = tick_once(&mut collector);
    assert_eq!(get(&first, "processes_total", &[]), Some(6.0));
    assert_eq!(state(&first, "nginx"), (1.0, 2.0));
    assert_eq!(state(&first, "postgres"), (0.0, 0.0));
    assert_eq!(state(&first, "kube-controller-manager"), (1.0, 1.0));
    // Six listed, then the three watched read fully.
    assert_eq!(collector.stat_reads, 9);

    // Nothing changed: only the three watched processes are read again.
    let second = tick_once(&mut collector);
    assert_eq!(state(&second, "nginx"), (1.0, 2.0));
    assert_eq!(collector.stat_reads, 12);

    // The nginx worker dies and the master becomes a zombie; postgres starts; cron's pid
    // is reused by a postgres worker; a shell forks (still "bash") on its way to exec
    // nginx.
    fake.kill(501);
    fake.update(500, "nginx", 'Z', 100, (1, 0));
    fake.spawn(
        900,
        "postgres",
        'S',
        300,
        "/usr/lib/postgresql/16/bin/postgres\0",
    );
    fake.spawn(800, "postgres", 'S', 301, "postgres: checkpointer\0");
    fake.spawn(950, "bash", 'S', 302, "/bin/bash\0");
    let third = tick_once(&mut collector);
    assert_eq!(get(&third, "processes_total", &[]), Some(7.0));
    assert_eq!(state(&third, "nginx"), (0.0, 0.0));
    assert_eq!(
        get(&third, "process_zombies", &[("process", "nginx")]),
        Some(1.0)
    );
    assert_eq!(get(&third, "processes_zombie", &[]), Some(1.0));
    assert_eq!(state(&third, "postgres"), (1.0, 2.0));

    // The shell has exec'd nginx since: seen on the next tick, when young processes are
    // looked at again.
    fake.exec(950, "nginx", 302);
    let fourth = tick_once(&mut collector);
    assert_eq!(state(&fourth, "nginx"), (1.0, 1.0));

    // Every watch has its minimum and no watched process went away: `/proc` is listed
    // again only LIST_EVERY ticks after the last listing. Meanwhile a new process is not
    // counted yet, and a pid listed but gone before its stat is read is skipped, not an
    // error.
    std::fs::create_dir(fake.dir.path().join("1234")).unwrap();
    let listings = collector.listings;
    for _ in 1..LIST_EVERY {
        let quiet = tick_once(&mut collector);
        assert_eq!(get(&quiet, "processes_total", &[]), Some(7.0));
        assert_eq!(state(&quiet, "nginx"), (1.0, 1.0));
        assert_eq!(state(&quiet, "postgres"), (1.0, 2.0));
    }
    assert_eq!(collector.listings, listings);
    let listed = tick_once(&mut collector);
    assert_eq!(collector.listings, listings + 1);
    assert_eq!(get(&listed, "processes_total", &[]), Some(8.0));
    assert_eq!(state(&listed, "nginx"), (1.0, 1.0));
}

#[test]
fn lists_proc_at_once_when_a_watched_process_goes_or_a_watch_is_short() {
    let fake = FakeProc::new();
    let config = fake.config(
        r#"watch = [
          { name = "web", comm = "nginx", min = 2 },
          { name = "db", comm = "postgres" },
        ]"#,
    );
    let mut collector = Process::new(&config);
    let start = Instant::now();
    let mut secs = 0;
    let mut tick_once = |collector: &mut Process| {
        let samples = run_ok(collector, &tick(start, secs));
        secs += 1;
        samples
    };
    let web = [("process", "web")];
    fake.spawn(500, "nginx", 'S', 100, "nginx: master process\0");
    fake.spawn(501, "nginx", 'S', 101, "nginx: worker process\0");
    tick_once(&mut collector);
    tick_once(&mut collector);
    assert_eq!(
        collector.listings, 2,
        "db is short of its minimum: listed every tick"
    );

    fake.spawn(600, "postgres", 'S', 110, "postgres\0");
    let found = tick_once(&mut collector);
    assert_eq!(state(&found, "db"), (1.0, 1.0, 0.0));
    let listings = collector.listings;
    let quiet = tick_once(&mut collector);
    assert_eq!(
        collector.listings, listings,
        "all watches satisfied: no listing"
    );
    assert_eq!(state(&quiet, "web"), (1.0, 2.0, 0.0));

    // The worker is replaced between two ticks: its read fails, /proc is listed on the
    // same tick, and the new worker counts at once: no dip, one restart.
    fake.kill(501);
    fake.spawn(502, "nginx", 'S', 300, "nginx: worker process\0");
    let replaced = tick_once(&mut collector);
    assert_eq!(collector.listings, listings + 1);
    assert_eq!(state(&replaced, "web"), (1.0, 2.0, 0.0));
    assert_eq!(get(&replaced, "process_restarts_total", &web), Some(1.0));

    // A member goes for good: the watch is short, and /proc is listed on every tick until
    // it is whole again.
    fake.kill(502);
    let short = tick_once(&mut collector);
    assert_eq!(state(&short, "web"), (0.0, 1.0, 0.0));
    let listings = collector.listings;
    tick_once(&mut collector);
    tick_once(&mut collector);
    assert_eq!(collector.listings, listings + 2);
    fake.spawn(503, "nginx", 'S', 400, "nginx: worker process\0");
    let whole = tick_once(&mut collector);
    assert_eq!(state(&whole, "web"), (1.0, 2.0, 0.0));
}

#[test]
fn measures_cpu_restarts_and_minimum_counts() {
    let fake = FakeProc::new();
    let config = fake.config(
        r#"watch = [
          { name = "web", comm = "nginx", min = 2 },
          { name = "db", unit = "postgresql.service" },
        ]"#,
    );
    let mut collector = Process::new(&config);
    let start = Instant::now();
    let web = [("process", "web")];
    let db = [("process", "db")];
    fake.spawn(500, "nginx", 'S', 100, "nginx: master process\0");
    fake.spawn(501, "nginx", 'S', 101, "nginx: worker process\0");
    fake.spawn_in(
        600,
        "postgres",
        'S',
        110,
        "postgres\0",
        "/system.slice/postgresql.service",
    );
    let first = run_ok(&mut collector, &tick(start, 0));
    assert_eq!(state(&first, "web"), (1.0, 2.0, 0.0));
    assert_eq!(state(&first, "db"), (1.0, 1.0, 0.0));
    assert_eq!(get(&first, "process_open_fds", &web), Some(6.0));
    assert_eq!(get(&first, "process_threads", &web), Some(4.0));

    // Over 2 s the master used 30 + 10 ticks and the worker 90 + 30: 160 ticks at 100 Hz
    // in 2 s is 0.8 of a core. Postgres idled.
    fake.update(500, "nginx", 'S', 100, (31, 10));
    fake.update(501, "nginx", 'S', 101, (91, 30));
    let second = run_ok(&mut collector, &tick(start, 2));
    let ratio = get(&second, "process_cpu_ratio", &web).unwrap();
    assert!((ratio - 0.8).abs() < 1e-9, "{ratio}");
    assert_eq!(get(&second, "process_cpu_ratio", &db), Some(0.0));

    // The worker is replaced: one fewer than required for a tick, then a restart.
    fake.kill(501);
    let third = run_ok(&mut collector, &tick(start, 3));
    assert_eq!(state(&third, "web"), (0.0, 1.0, 0.0));
    assert_eq!(get(&third, "process_restarts_total", &web), Some(0.0));
    fake.spawn(502, "nginx", 'S', 400, "nginx: worker process\0");
    let fourth = run_ok(&mut collector, &tick(start, 4));
    assert_eq!(state(&fourth, "web"), (1.0, 2.0, 0.0));
    assert_eq!(get(&fourth, "process_restarts_total", &web), Some(1.0));
    // The new worker has no CPU reading from the last tick: it adds nothing yet, and the
    // master, idle, neither.
    assert_eq!(get(&fourth, "process_cpu_ratio", &web), Some(0.0));

    // Postgres restarts between two ticks with the same pid: a restart too.
    fake.spawn_in(
        600,
        "postgres",
        'S',
        500,
        "postgres\0",
        "/system.slice/postgresql.service",
    );
    let fifth = run_ok(&mut collector, &tick(start, 5));
    assert_eq!(state(&fifth, "db"), (1.0, 1.0, 0.0));
    assert_eq!(get(&fifth, "process_restarts_total", &db), Some(1.0));

    // Stopped, then started again later: one restart, when it comes back.
    fake.kill(600);
    let sixth = run_ok(&mut collector, &tick(start, 6));
    assert_eq!(state(&sixth, "db"), (0.0, 0.0, 0.0));
    assert_eq!(get(&sixth, "process_restarts_total", &db), Some(1.0));
    let seventh = run_ok(&mut collector, &tick(start, 7));
    assert_eq!(get(&seventh, "process_restarts_total", &db), Some(1.0));
    fake.spawn_in(
        601,
        "postgres",
        'S',
        700,
        "postgres\0",
        "/system.slice/postgresql.service",
    );
    let eighth = run_ok(&mut collector, &tick(start, 8));
    assert_eq!(state(&eighth, "db"), (1.0, 1.0, 0.0));
    assert_eq!(get(&eighth, "process_restarts_total", &db), Some(2.0));
}

#[test]
fn counts_each_unreadable_process_once() {
    let fake = FakeProc::new();
    let config = fake.config(r#"watch = ["nginx"]"#);
    let mut collector = Process::new(&config);
    let start = Instant::now();
    fake.spawn(500, "nginx", 'S', 100, "nginx: master process\0");
    // Unreadable files (as root, a directory where a file should be is the way to fail).
    fake.spawn(600, "secret", 'S', 110, "");
    let secret = fake.dir.path().join("600/stat");
    std::fs::remove_file(&secret).unwrap();
    std::fs::create_dir(&secret).unwrap();
    let fd = fake.dir.path().join("500/fd");
    std::fs::remove_dir_all(&fd).unwrap();
    std::fs::write(&fd, "").unwrap();

    let (samples, result, failures) = run(&mut collector, &tick(start, 0));
    result.unwrap();
    let failed: Vec<String> = failures.iter().map(|e| e.cause()).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|c| c.starts_with("read ") && c.contains("[pid]/stat"))
    );
    assert!(failed.iter().any(|c| c.contains("[pid]/fd")));
    assert_eq!(get(&samples, "processes_total", &[]), Some(2.0));
    assert_eq!(state(&samples, "nginx"), (1.0, 1.0, 0.0));
    // Open files unknown: absent rather than wrong.
    assert_eq!(
        get(&samples, "process_open_fds", &[("process", "nginx")]),
        None
    );
    for secs in 1..100 {
        let (samples, result, failures) = run(&mut collector, &tick(start, secs));
        result.unwrap();
        assert!(failures.is_empty(), "tick {secs}: {failures:?}");
        assert_eq!(state(&samples, "nginx"), (1.0, 1.0, 0.0));
    }
}

#[test]
fn pidfile_watches_follow_the_file() {
    let fake = FakeProc::new();
    let run_dir = tempfile::tempdir().unwrap();
    let pidfile = run_dir.path().join("app.pid");
    let config = fake.config(&format!(
        r#"watch = [{{ name = "app", pidfile = "{}" }}]"#,
        pidfile.display()
    ));
    let mut collector = Process::new(&config);
    let start = Instant::now();
    fake.spawn(700, "app", 'S', 100, "/usr/bin/app\0");
    fake.spawn(701, "app", 'S', 101, "/usr/bin/app --worker\0");

    // No pidfile: not running, and not a failure.
    let first = run_ok(&mut collector, &tick(start, 0));
    assert_eq!(state(&first, "app"), (0.0, 0.0, 0.0));

    std::fs::write(&pidfile, "700\n").unwrap();
    let second = run_ok(&mut collector, &tick(start, 1));
    assert_eq!(state(&second, "app"), (1.0, 1.0, 0.0));

    // Restarted: a new pid in a new file.
    fake.kill(700);
    fake.spawn(702, "app", 'S', 300, "/usr/bin/app\0");
    std::fs::write(&pidfile, "702\n").unwrap();
    let third = run_ok(&mut collector, &tick(start, 2));
    assert_eq!(state(&third, "app"), (1.0, 1.0, 0.0));
    assert_eq!(
        get(&third, "process_restarts_total", &[("process", "app")]),
        Some(1.0)
    );

    // A stale pidfile naming a process that is gone.
    fake.kill(702);
    let fourth = run_ok(&mut collector, &tick(start, 3));
    assert_eq!(state(&fourth, "app"), (0.0, 0.0, 0.0));

    // Garbage in the pidfile: a failure, counted.
    std::fs::write(&pidfile, "starting\n").unwrap();
    let (samples, result, failures) = run(&mut collector, &tick(start, 4));
    result.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].to_string().contains("not a pid"),
        "{}",
        failures[0]
    );
    assert_eq!(state(&samples, "app"), (0.0, 0.0, 0.0));
}

/// The real procfs: a child process watched through its pidfile, read through a kept
/// descriptor, and gone once reaped.
#[test]
fn watches_a_real_process() {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    // Wait until the child has exec'd `sleep`: between fork and exec it is still a copy of
    // this test binary, sharing its memory.
    let comm = format!("/proc/{}/comm", child.id());
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while !std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
        assert!(Instant::now() < deadline, "the child never exec'd sleep");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("sleep.pid");
    std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
    let config = CollectConfig {
        process: ProcessConfig {
            watch: watch(&format!(
                r#"watch = [{{ name = "sleep", pidfile = "{}" }}, {{ name = "me", cmdline = "nines_agent" }}]"#,
                pidfile.display()
            )),
        },
        ..Default::default()
    };
    let mut collector = Process::new(&config);
    assert!(collector.keep_files);
    let start = Instant::now();
    let labels = [("process", "sleep")];
    let first = run_ok(&mut collector, &tick(start, 0));
    assert_eq!(state(&first, "sleep"), (1.0, 1.0, 0.0));
    assert_eq!(get(&first, "process_threads", &labels), Some(1.0));
    let fds = get(&first, "process_open_fds", &labels).unwrap();
    assert!((3.0..100.0).contains(&fds), "{fds}");
    assert!(get(&first, "process_resident_bytes", &labels).unwrap() > 0.0);
    // This test binary matches by command line.
    assert!(state(&first, "me").1 >= 1.0);
    assert!(get(&first, "processes_total", &[]).unwrap() >= 2.0);
    assert_eq!(collector.kept, 1 + state(&first, "me").1 as usize);

    let second = run_ok(&mut collector, &tick(start, 1));
    assert_eq!(state(&second, "sleep"), (1.0, 1.0, 0.0));
    assert!(get(&second, "process_cpu_ratio", &labels).is_some());

    child.kill().unwrap();
    child.wait().unwrap();
    let third = run_ok(&mut collector, &tick(start, 2));
    assert_eq!(state(&third, "sleep"), (0.0, 0.0, 0.0));
    assert_eq!(collector.kept, state(&third, "me").1 as usize);
}
