//! CPU collector: how busy the CPUs are and on what, from `/proc/stat`, and the load average
//! from `/proc/loadavg`.

use std::path::PathBuf;
use std::time::Instant;

use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// Highest CPU number accepted from `/proc/stat`; the kernel's own limit (`NR_CPUS`) is 8192.
const MAX_CPU: usize = 1 << 16;

/// Time counters (in clock ticks) of one `cpu` line of `/proc/stat`. Guest time is not kept:
/// the kernel already counts it in user and nice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while I/O was outstanding.
    pub iowait: u64,
    /// Servicing interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Taken by the hypervisor for other guests.
    pub steal: u64,
}

/// What the CPU collector uses from `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub total: CpuTimes,
    /// The `cpuN` lines of online CPUs, as (N, times), in file order.
    pub cores: Vec<(usize, CpuTimes)>,
    /// `ctxt`: context switches since boot.
    pub context_switches: Option<u64>,
    /// `procs_running`: threads runnable right now.
    pub procs_running: Option<u64>,
    /// `procs_blocked`: threads blocked on I/O right now.
    pub procs_blocked: Option<u64>,
}

/// Parses `/proc/stat`. Lines the collector does not use (`intr`, `softirq`, ...) are skipped
/// without being split.
pub fn parse_stat(text: &str) -> Result<Stat, String> {
    let mut stat = Stat::default();
    parse_stat_into(text, &mut stat)?;
    Ok(stat)
}

/// [`parse_stat`] into `stat`, reusing its allocation.
pub fn parse_stat_into(text: &str, stat: &mut Stat) -> Result<(), String> {
    let mut cores = std::mem::take(&mut stat.cores);
    cores.clear();
    *stat = Stat {
        cores,
        ..Stat::default()
    };
    let mut saw_total = false;
    for (i, line) in text.lines().enumerate() {
        // Most of a large machine's /proc/stat is the `intr` line: look at the first bytes
        // before splitting anything.
        if !(line.starts_with("cpu") || line.starts_with("ctxt") || line.starts_with("procs_")) {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        let at = |e: String| format!("line {}: {e}", i + 1);
        if let Some(n) = key.strip_prefix("cpu") {
            let times = parse_times(fields).map_err(at)?;
            if n.is_empty() {
                stat.total = times;
                saw_total = true;
            } else {
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n < MAX_CPU)
                    .ok_or_else(|| at(format!("bad cpu name {key:?}")))?;
                stat.cores.push((n, times));
            }
        } else {
            let slot = match key {
                "ctxt" => &mut stat.context_switches,
                "procs_running" => &mut stat.procs_running,
                "procs_blocked" => &mut stat.procs_blocked,
                _ => continue,
            };
            let value = fields.next().unwrap_or("");
            *slot = Some(
                value
                    .parse()
                    .map_err(|_| at(format!("bad {key} value {value:?}")))?,
            );
        }
    }
    if !saw_total {
        return Err("no aggregate \"cpu\" line".to_owned());
    }
    Ok(())
}

fn parse_times<'a>(fields: impl Iterator<Item = &'a str>) -> Result<CpuTimes, String> {
    // user nice system idle iowait irq softirq steal [guest guest_nice]; kernels before 2.6.11
    // stop after idle or iowait, missing ones count as 0.
    let mut v = [0u64; 8];
    let mut n = 0;
    for (slot, field) in v.iter_mut().zip(fields) {
        *slot = field
            .parse()
            .map_err(|_| format!("bad cpu time {field:?}"))?;
        n += 1;
    }
    if n < 4 {
        return Err(format!("{n} cpu times, expected at least 4"));
    }
    Ok(CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
    })
}

/// The 1, 5 and 15 minute load averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    /// Over 1 minute.
    pub one: f64,
    /// Over 5 minutes.
    pub five: f64,
    /// Over 15 minutes.
    pub fifteen: f64,
}

/// Parses `/proc/loadavg` (`0.51 0.28 0.10 1/82 3948`).
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, String> {
    let mut f = text.split_ascii_whitespace().map(|s| {
        s.parse::<f64>()
            .map_err(|_| format!("bad load average {s:?}"))
    });
    let mut next = || {
        f.next()
            .unwrap_or_else(|| Err("fewer than 3 fields".to_owned()))
    };
    Ok(LoadAvg {
        one: next()?,
        five: next()?,
        fifteen: next()?,
    })
}

/// Shares of time over an interval, each in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shares {
    usage: f64,
    user: f64,
    system: f64,
    iowait: f64,
    irq: f64,
    steal: f64,
}

impl Shares {
    /// Shares between two readings; `None` if no time passed or the counters were reset.
    fn between(prev: &CpuTimes, cur: &CpuTimes) -> Option<Self> {
        // iowait (and on some kernels idle) can go backwards a little on tickless systems, so
        // each field's delta stops at 0; only a total that went backwards is a reset.
        let d = |p: u64, c: u64| c.saturating_sub(p) as f64;
        let user = d(prev.user, cur.user) + d(prev.nice, cur.nice);
        let system = d(prev.system, cur.system);
        let idle = d(prev.idle, cur.idle);
        let iowait = d(prev.iowait, cur.iowait);
        let irq = d(prev.irq, cur.irq) + d(prev.softirq, cur.softirq);
        let steal = d(prev.steal, cur.steal);
        let total = user + system + idle + iowait + irq + steal;
        if total <= 0.0 || sum(cur) < sum(prev) {
            return None;
        }
        Some(Self {
            usage: 1.0 - (idle + iowait) / total,
            user: user / total,
            system: system / total,
            iowait: iowait / total,
            irq: irq / total,
            steal: steal / total,
        })
    }
}

fn sum(t: &CpuTimes) -> u64 {
    [
        t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal,
    ]
    .iter()
    .fold(0u64, |a, b| a.saturating_add(*b))
}

#[derive(Debug)]
struct Prev {
    at: Instant,
    stat: Stat,
}

/// CPU time shares, context switches, run queue and load average.
#[derive(Debug)]
pub struct Cpu {
    stat_path: PathBuf,
    loadavg_path: PathBuf,
    prev: Option<Prev>,
    /// The reading before `prev`, kept for its allocation.
    spare: Stat,
    /// `"0"`, `"1"`, ...: label values made once rather than on every tick.
    core_labels: Vec<String>,
}

impl Cpu {
    /// A CPU collector reading `{procfs}/stat` and `{procfs}/loadavg`.
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            stat_path: config.procfs.join("stat"),
            loadavg_path: config.procfs.join("loadavg"),
            prev: None,
            spare: Stat::default(),
            core_labels: Vec::new(),
        }
    }

    fn collect_stat(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut stat = std::mem::take(&mut self.spare);
        if let Err(e) = out.read_single(&self.stat_path, |text, _| parse_stat_into(text, &mut stat))
        {
            self.spare = stat;
            return Err(e);
        }
        if let Some(max) = stat.cores.iter().map(|(n, _)| *n).max() {
            while self.core_labels.len() <= max {
                self.core_labels.push(self.core_labels.len().to_string());
            }
        }
        if let Some(prev) = &self.prev {
            if let Some(s) = Shares::between(&prev.stat.total, &stat.total) {
                let total = [("cpu", "total")];
                out.push("cpu_usage_ratio", &total, s.usage);
                out.push("cpu_user_ratio", &total, s.user);
                out.push("cpu_system_ratio", &total, s.system);
                out.push("cpu_iowait_ratio", &total, s.iowait);
                out.push("cpu_irq_ratio", &total, s.irq);
                out.push("cpu_steal_ratio", &total, s.steal);
            }
            for (n, cur) in &stat.cores {
                // Cores are listed in ascending order; a CPU that was offline has no previous
                // reading and is skipped until the next tick.
                let Ok(i) = prev.stat.cores.binary_search_by_key(n, |(m, _)| *m) else {
                    continue;
                };
                if let Some(s) = Shares::between(&prev.stat.cores[i].1, cur) {
                    out.push(
                        "cpu_usage_ratio",
                        &[("cpu", &self.core_labels[*n])],
                        s.usage,
                    );
                }
            }
            let secs = tick.now.saturating_duration_since(prev.at).as_secs_f64();
            if let (Some(p), Some(c)) = (prev.stat.context_switches, stat.context_switches)
                && c >= p
                && secs > 0.0
            {
                out.push("context_switches_per_second", &[], (c - p) as f64 / secs);
            }
        }
        if let Some(n) = stat.procs_running {
            out.push("processes_running", &[], n as f64);
        }
        if let Some(n) = stat.procs_blocked {
            out.push("processes_blocked", &[], n as f64);
        }
        if let Some(prev) = self.prev.replace(Prev { at: tick.now, stat }) {
            self.spare = prev.stat;
        }
        Ok(())
    }

    fn collect_loadavg(&self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let load = out.read_single(&self.loadavg_path, |text, _| parse_loadavg(text))?;
        out.push("load_average_1m", &[], load.one);
        out.push("load_average_5m", &[], load.five);
        out.push("load_average_15m", &[], load.fifteen);
        Ok(())
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        // The two files are independent: a failure of one does not hide the other.
        let stat = self.collect_stat(tick, out);
        let load = self.collect_loadavg(out);
        stat.and(load)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use nines_common::{Sample, SeriesKey};

    use super::*;

    fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = SeriesKey::new(name, labels);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() < 1e-9)
    }

    #[test]
    fn parses_this_machines_stat() {
        let stat = parse_stat(include_str!("../../tests/fixtures/vm/proc/stat")).unwrap();
        assert_eq!(
            stat.total,
            CpuTimes {
                user: 6922,
                nice: 0,
                system: 2528,
                idle: 71287,
                iowait: 618,
                irq: 0,
                softirq: 24,
                steal: 22,
            }
        );
        assert_eq!(stat.cores.len(), 2);
        assert_eq!(stat.cores[1].0, 1);
        assert_eq!(stat.cores[1].1.idle, 35060);
        assert_eq!(stat.context_switches, Some(202880));
        assert_eq!(stat.procs_running, Some(1));
        assert_eq!(stat.procs_blocked, Some(0));
    }

    #[test]
    fn parses_a_server_stat() {
        let stat = parse_stat(include_str!("../../tests/fixtures/server/proc/stat")).unwrap();
        let ids: Vec<usize> = stat.cores.iter().map(|(n, _)| *n).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(stat.total.steal, 35);
        assert_eq!(stat.procs_blocked, Some(1));
    }

    #[test]
    fn parses_old_kernels_and_rejects_garbage() {
        // 2.6.0-era line: no iowait, irq, softirq, steal.
        let stat = parse_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(stat.total.idle, 4);
        assert_eq!(stat.total.steal, 0);
        assert_eq!(stat.context_switches, None);
        let err = parse_stat("cpu0 1 2 3 4\n").unwrap_err();
        assert!(err.contains("no aggregate"), "{err}");
        let err = parse_stat("cpu 1 2 3 4\nctxt many\n").unwrap_err();
        assert_eq!(err, "line 2: bad ctxt value \"many\"");
        let err = parse_stat("cpu 1 2 3\n").unwrap_err();
        assert!(err.contains("at least 4"), "{err}");
    }

    #[test]
    fn parses_loadavg() {
        let load = parse_loadavg(include_str!("../../tests/fixtures/server/proc/loadavg")).unwrap();
        assert_eq!(
            load,
            LoadAvg {
                one: 1.25,
                five: 0.87,
                fifteen: 0.66
            }
        );
        assert!(parse_loadavg("0.1 0.2\n").is_err());
    }

    #[test]
    fn computes_shares_between_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectConfig {
            procfs: dir.path().to_owned(),
            ..Default::default()
        };
        std::fs::write(dir.path().join("loadavg"), "1.25 0.87 0.66 3/412 18234\n").unwrap();
        let mut cpu = Cpu::new(&config);
        let start = Instant::now();
        let mut run = |secs: u64, stat: &str| {
            std::fs::write(dir.path().join("stat"), stat).unwrap();
            let tick = Tick {
                ts_ms: secs as i64 * 1000,
                now: start + Duration::from_secs(secs),
            };
            let mut samples = Vec::new();
            cpu.collect(&tick, &mut Out::new(tick.ts_ms, &mut samples))
                .unwrap();
            samples
        };
        let total = [("cpu", "total")];

        let first = run(
            0,
            "cpu  1000 100 500 8000 200 10 20 5 0 0\n\
             cpu0 500 50 250 4000 100 5 10 3 0 0\n\
             cpu1 500 50 250 4000 100 5 10 2 0 0\n\
             ctxt 100000\nprocs_running 3\nprocs_blocked 1\n",
        );
        // Gauges only.
        assert_eq!(get(&first, "load_average_1m", &[]), Some(1.25));
        assert_eq!(get(&first, "load_average_15m", &[]), Some(0.66));
        assert_eq!(get(&first, "processes_running", &[]), Some(3.0));
        assert_eq!(get(&first, "processes_blocked", &[]), Some(1.0));
        assert_eq!(get(&first, "cpu_usage_ratio", &total), None);
        assert_eq!(get(&first, "context_switches_per_second", &[]), None);

        // 200 ticks in all: user+nice 60, system 20, idle 100, iowait 10, irq+softirq 10.
        // cpu0 only idled; cpu1 never idled but waited for I/O 10% of the time.
        let second = run(
            1,
            "cpu  1050 110 520 8100 210 15 25 5 0 0\n\
             cpu0 500 50 250 4100 100 5 10 3 0 0\n\
             cpu1 550 60 270 4000 110 10 15 2 0 0\n\
             ctxt 102500\nprocs_running 1\nprocs_blocked 0\n",
        );
        assert!(close(get(&second, "cpu_usage_ratio", &total), 0.45));
        assert!(close(get(&second, "cpu_user_ratio", &total), 0.3));
        assert!(close(get(&second, "cpu_system_ratio", &total), 0.1));
        assert!(close(get(&second, "cpu_iowait_ratio", &total), 0.05));
        assert!(close(get(&second, "cpu_irq_ratio", &total), 0.05));
        assert_eq!(get(&second, "cpu_steal_ratio", &total), Some(0.0));
        assert_eq!(get(&second, "cpu_usage_ratio", &[("cpu", "0")]), Some(0.0));
        assert!(close(get(&second, "cpu_usage_ratio", &[("cpu", "1")]), 0.9));
        assert_eq!(
            get(&second, "context_switches_per_second", &[]),
            Some(2500.0)
        );
        assert_eq!(get(&second, "processes_running", &[]), Some(1.0));

        // Counters reset (e.g. a restored VM snapshot): no shares and no rate, gauges still.
        let third = run(
            2,
            "cpu  10 0 5 80 2 0 0 0 0 0\ncpu0 5 0 2 40 1 0 0 0 0 0\nctxt 1000\n",
        );
        assert_eq!(get(&third, "cpu_usage_ratio", &total), None);
        assert_eq!(get(&third, "cpu_usage_ratio", &[("cpu", "0")]), None);
        assert_eq!(get(&third, "context_switches_per_second", &[]), None);
        assert_eq!(get(&third, "load_average_5m", &[]), Some(0.87));

        // iowait dipping on one core is not a reset.
        let fourth = run(
            3,
            "cpu  20 0 5 160 2 0 0 0 0 0\ncpu0 15 0 2 120 0 0 0 0 0 0\nctxt 1300\n",
        );
        assert!(close(
            get(&fourth, "cpu_usage_ratio", &[("cpu", "0")]),
            10.0 / 90.0
        ));
        assert!(close(get(&fourth, "cpu_usage_ratio", &total), 10.0 / 90.0));
        assert_eq!(
            get(&fourth, "context_switches_per_second", &[]),
            Some(300.0)
        );
    }

    #[test]
    fn a_missing_loadavg_fails_but_keeps_cpu_shares() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), "cpu 1 2 3 4\nprocs_running 2\n").unwrap();
        let config = CollectConfig {
            procfs: dir.path().to_owned(),
            ..Default::default()
        };
        let mut samples = Vec::new();
        let tick = Tick {
            ts_ms: 0,
            now: Instant::now(),
        };
        let err = Cpu::new(&config)
            .collect(&tick, &mut Out::new(0, &mut samples))
            .unwrap_err();
        assert!(err.to_string().contains("loadavg"), "{err}");
        assert_eq!(get(&samples, "processes_running", &[]), Some(2.0));
    }

    #[test]
    fn parses_a_stat_without_steal_and_guest() {
        // 2.6.9: seven times per line (no steal, guest, guest_nice).
        let stat = parse_stat(include_str!("../../tests/fixtures/old/proc/stat")).unwrap();
        assert_eq!(
            stat.total,
            CpuTimes {
                user: 2255,
                nice: 34,
                system: 2290,
                idle: 22625563,
                iowait: 6290,
                irq: 127,
                softirq: 456,
                steal: 0,
            }
        );
        assert_eq!(stat.cores.len(), 2);
        assert_eq!(stat.context_switches, Some(1990473));
    }
}
