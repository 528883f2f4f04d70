//! The aggregator's own process, read from `/proc/self` as Prometheus' client libraries expose
//! it: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`. Parsing is pure and tested on fixed text.

use crate::util::exposition::Exposition;

/// What `/proc/self/stat` says, in the units of the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Seconds after boot the process started.
    pub start_after_boot_seconds: f64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: f64,
    /// Resident set size, bytes.
    pub resident_bytes: f64,
}

/// Parses `/proc/<pid>/stat` (proc(5)): fields after the command name, which is in parentheses
/// and may itself hold spaces and parentheses, so the split is at the last `)`.
pub fn parse_stat(text: &str, ticks_per_second: u64, page_size: u64) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest starts with field 3 (state); field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = ticks_per_second.max(1) as f64;
    Some(Stat {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks,
        start_after_boot_seconds: num(22)? as f64 / ticks,
        virtual_bytes: num(23)? as f64,
        resident_bytes: num(24)?.saturating_mul(page_size) as f64,
    })
}

/// The boot time in `/proc/stat` (`btime`), seconds since the epoch.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Writes the `process_*` families; a file that cannot be read leaves its families out.
pub fn expose(e: &mut Exposition) {
    let ticks = rustix::param::clock_ticks_per_second();
    let page = rustix::param::page_size() as u64;
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t, ticks, page));
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_boot_time(&t));
    // The directory's own descriptor, open while it is listed, is counted as Prometheus'
    // clients count it.
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    if let Some(s) = stat {
        e.family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        e.sample("process_cpu_seconds_total", [], s.cpu_seconds, None);
        e.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        e.sample("process_resident_memory_bytes", [], s.resident_bytes, None);
        e.family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        e.sample("process_virtual_memory_bytes", [], s.virtual_bytes, None);
        if let Some(boot) = boot {
            e.family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
            );
            e.sample(
                "process_start_time_seconds",
                [],
                boot as f64 + s.start_after_boot_seconds,
                None,
            );
        }
    }
    if let Some(n) = open_fds {
        e.family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        e.sample("process_open_fds", [], n, None);
    }
    if let Some(max) = max_fds {
        e.family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        e.sample("process_max_fds", [], max as f64, None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_split_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a process may set it.
        let text = "4242 (nines (agg) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 130 0 0 20 0 9 0 98765 1073741824 2560 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_stat(text, 100, 4096).unwrap();
        assert_eq!(s.cpu_seconds, 3.8);
        assert_eq!(s.start_after_boot_seconds, 987.65);
        assert_eq!(s.virtual_bytes, 1_073_741_824.0);
        assert_eq!(s.resident_bytes, 2560.0 * 4096.0);
        assert_eq!(parse_stat("4242 (x) S 1 2", 100, 4096), None);
        assert_eq!(parse_stat("garbage", 100, 4096), None);
    }

    #[test]
    fn boot_time_comes_from_btime() {
        let text = "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 5\nctxt 9\nbtime 1795300000\nprocesses 77\n";
        assert_eq!(parse_boot_time(text), Some(1_795_300_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[test]
    fn this_process_is_exposed() {
        let mut e = Exposition::default();
        expose(&mut e);
        let text = e.finish();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.contains(&format!("\n{name}")),
                "{name} missing:\n{text}"
            );
        }
    }
}
