//! Host collector: how long the machine has been up, from `/proc/uptime` and `/proc/stat`,
//! and the agent's own footprint, from `/proc/self/stat`, so that its cost is monitored like
//! everything else.

use std::path::PathBuf;

use super::auxv::Units;
use super::process::parse_stat;
use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// Parses `/proc/uptime` (`350735.47 234388.90`): seconds since boot.
pub fn parse_uptime(text: &str) -> Result<f64, String> {
    let field = text.split_ascii_whitespace().next().unwrap_or("");
    field
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("bad uptime {field:?}"))
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the Unix epoch.
pub fn parse_btime(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or("no btime line")?;
    line.trim()
        .parse()
        .map_err(|_| format!("bad btime {line:?}"))
}

/// Uptime, boot time, and the agent's CPU time and resident memory.
#[derive(Debug)]
pub struct Host {
    uptime: PathBuf,
    stat: PathBuf,
    self_stat: PathBuf,
    /// `sysconf(_SC_CLK_TCK)`: the unit of CPU times in `/proc/[pid]/stat`.
    clock_ticks: f64,
    /// The unit of resident set sizes in `/proc/[pid]/stat`.
    page_size: f64,
}

impl Host {
    /// A host collector reading `{procfs}/uptime`, `{procfs}/stat` (shared with the cpu
    /// collector within a tick) and `{procfs}/self/stat`.
    pub fn new(config: &CollectConfig) -> Self {
        let units = Units::read(&config.procfs);
        Self {
            uptime: config.procfs.join("uptime"),
            stat: config.procfs.join("stat"),
            self_stat: config.procfs.join("self/stat"),
            clock_ticks: units.clock_ticks as f64,
            page_size: units.page_size as f64,
        }
    }
}

impl Collector for Host {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        // Three independent files: a failure of one is counted and does not hide the others.
        match out.read_single(&self.uptime, |text, _| parse_uptime(text)) {
            Ok(secs) => out.push("host_uptime_seconds", &[], secs),
            Err(e) => out.fail(e),
        }
        match out.read_single(&self.stat, |text, _| parse_btime(text)) {
            Ok(btime) => out.push("host_boot_time_seconds", &[], btime as f64),
            Err(e) => out.fail(e),
        }
        match out.read_single(&self.self_stat, |text, _| {
            parse_stat(text.as_bytes()).map(|s| (s.utime + s.stime, s.rss_pages))
        }) {
            Ok((cpu, rss)) => {
                out.push(
                    "agent_cpu_seconds_total",
                    &[],
                    cpu as f64 / self.clock_ticks,
                );
                out.push("agent_resident_bytes", &[], rss as f64 * self.page_size);
            }
            Err(e) => out.fail(e),
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::super::testing::{get, run, run_ok, tick};
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn parses_uptime_and_btime() {
        let uptime = std::fs::read_to_string(fixture("server/proc/uptime")).unwrap();
        assert_eq!(parse_uptime(&uptime), Ok(1_209_784.52));
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("-1 2").is_err());
        let stat = std::fs::read_to_string(fixture("server/proc/stat")).unwrap();
        assert_eq!(parse_btime(&stat), Ok(1_718_954_211));
        let old = std::fs::read_to_string(fixture("old/proc/stat")).unwrap();
        assert_eq!(parse_btime(&old), Ok(1_262_304_000));
        assert_eq!(parse_btime("cpu 1 2 3 4\n"), Err("no btime line".into()));
        assert!(parse_btime("btime soon\n").is_err());
    }

    #[test]
    fn reports_uptime_boot_time_and_the_agents_footprint() {
        let config = CollectConfig {
            procfs: fixture("server/proc"),
            ..Default::default()
        };
        let mut host = Host::new(&config);
        let samples = run_ok(&mut host, &tick(Instant::now(), 0));
        assert_eq!(
            get(&samples, "host_uptime_seconds", &[]),
            Some(1_209_784.52)
        );
        assert_eq!(
            get(&samples, "host_boot_time_seconds", &[]),
            Some(1_718_954_211.0)
        );
        // The fixture agent has used 312 + 97 ticks of CPU and 1843 resident pages; the
        // fixture has no auxv, so the units are 100 Hz and 4 KiB.
        assert_eq!(get(&samples, "agent_cpu_seconds_total", &[]), Some(4.09));
        assert_eq!(
            get(&samples, "agent_resident_bytes", &[]),
            Some(1843.0 * 4096.0)
        );
    }

    #[test]
    fn a_missing_file_is_one_failure_and_hides_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("uptime"), "12.5 20.0\n").unwrap();
        std::fs::write(dir.path().join("stat"), "cpu 1 2 3 4\nbtime 1700000000\n").unwrap();
        let mut host = Host::new(&CollectConfig {
            procfs: dir.path().to_owned(),
            ..Default::default()
        });
        let (samples, result, failures) = run(&mut host, &tick(Instant::now(), 0));
        result.unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].to_string().contains("self/stat"),
            "{}",
            failures[0]
        );
        assert_eq!(get(&samples, "host_uptime_seconds", &[]), Some(12.5));
        assert_eq!(
            get(&samples, "host_boot_time_seconds", &[]),
            Some(1_700_000_000.0)
        );
        assert_eq!(get(&samples, "agent_resident_bytes", &[]), None);
    }

    /// The real procfs, through the real runner: the agent's own numbers are plausible.
    #[test]
    fn measures_this_process() {
        if !Path::new("/proc/self/stat").exists() {
            return;
        }
        let mut host = Host::new(&CollectConfig::default());
        let samples = run_ok(&mut host, &tick(Instant::now(), 0));
        let rss = get(&samples, "agent_resident_bytes", &[]).unwrap();
        assert!(rss > 100_000.0 && rss < 10e9, "{rss}");
        assert!(get(&samples, "agent_cpu_seconds_total", &[]).unwrap() >= 0.0);
        assert!(get(&samples, "host_uptime_seconds", &[]).unwrap() > 0.0);
        assert!(get(&samples, "host_boot_time_seconds", &[]).unwrap() > 1e9);
    }
}
