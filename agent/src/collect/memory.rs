//! Memory collector: RAM use from `/proc/meminfo` and OOM kills from `/proc/vmstat`. Also the
//! parsers of those two files, which the swap collector shares.

use std::path::PathBuf;

use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// The `/proc/meminfo` fields the memory and swap collectors use, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`: usable RAM.
    pub total: u64,
    /// `MemFree`: RAM not used at all.
    pub free: u64,
    /// `MemAvailable`: RAM available to new work without swapping (kernel 3.14+).
    pub available: Option<u64>,
    /// `Buffers`: block device buffers.
    pub buffers: u64,
    /// `Cached`: page cache, without swap cache.
    pub cached: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

impl MemInfo {
    /// `MemAvailable`, or on kernels without it the classic `free + buffers + cached`
    /// estimate.
    pub fn available(&self) -> u64 {
        self.available
            .unwrap_or_else(|| {
                self.free
                    .saturating_add(self.buffers)
                    .saturating_add(self.cached)
            })
            .min(self.total)
    }
}

/// Parses `/proc/meminfo`. `MemTotal` is required; the other fields default to 0 (kernels
/// without swap support still print `SwapTotal: 0 kB`).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut info = MemInfo::default();
    let mut saw_total = false;
    for (i, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => {
                saw_total = true;
                &mut info.total
            }
            "MemFree" => &mut info.free,
            "MemAvailable" => info.available.insert(0),
            "Buffers" => &mut info.buffers,
            "Cached" => &mut info.cached,
            "SwapTotal" => &mut info.swap_total,
            "SwapFree" => &mut info.swap_free,
            _ => continue,
        };
        *slot =
            parse_kb(rest).ok_or_else(|| format!("line {}: bad {key} value {rest:?}", i + 1))?;
    }
    if !saw_total {
        return Err("no MemTotal line".to_owned());
    }
    Ok(info)
}

/// `"   24684084 kB"` in bytes.
fn parse_kb(s: &str) -> Option<u64> {
    let mut f = s.split_ascii_whitespace();
    let n: u64 = f.next()?.parse().ok()?;
    match f.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The `/proc/vmstat` counters the memory and swap collectors use. Each is absent when the
/// kernel does not provide it (`oom_kill` appeared in 4.13; `pswpin`/`pswpout` need swap
/// support).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmStat {
    /// `oom_kill`: processes killed by the OOM killer since boot.
    pub oom_kill: Option<u64>,
    /// `pswpin`: pages swapped in since boot.
    pub pswpin: Option<u64>,
    /// `pswpout`: pages swapped out since boot.
    pub pswpout: Option<u64>,
}

/// Parses `/proc/vmstat` (`name value` lines). The file has some 180 lines of which three
/// are wanted: they are looked for rather than every line split.
pub fn parse_vmstat(text: &str) -> Result<VmStat, String> {
    let mut stat = VmStat::default();
    for (key, slot) in [
        ("oom_kill", &mut stat.oom_kill),
        ("pswpin", &mut stat.pswpin),
        ("pswpout", &mut stat.pswpout),
    ] {
        if let Some((at, value)) = line_value(text, key) {
            *slot = Some(value.trim().parse().map_err(|_| {
                let line = text[..at].bytes().filter(|&b| b == b'\n').count() + 1;
                format!("line {line}: bad {key} value {value:?}")
            })?);
        }
    }
    Ok(stat)
}

/// The rest of the line that starts with `key` and a space, and where that line starts.
fn line_value<'a>(text: &'a str, key: &str) -> Option<(usize, &'a str)> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let at = from + i;
        let rest = &text[at + key.len()..];
        if (at == 0 || text.as_bytes()[at - 1] == b'\n')
            && let Some(value) = rest.strip_prefix(' ')
        {
            return Some((at, value.split('\n').next().unwrap_or_default()));
        }
        from = at + key.len();
    }
    None
}

/// RAM totals and use, and the OOM kill count.
#[derive(Debug)]
pub struct Memory {
    meminfo: PathBuf,
    vmstat: PathBuf,
}

impl Memory {
    /// A memory collector reading `{procfs}/meminfo` and `{procfs}/vmstat`.
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            meminfo: config.procfs.join("meminfo"),
            vmstat: config.procfs.join("vmstat"),
        }
    }

    fn collect_meminfo(&self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let info = out.read_single(&self.meminfo, |text, _| parse_meminfo(text))?;
        let available = info.available();
        let used = info.total - available;
        out.push("memory_total_bytes", &[], info.total as f64);
        out.push("memory_available_bytes", &[], available as f64);
        out.push("memory_used_bytes", &[], used as f64);
        out.push("memory_cached_bytes", &[], info.cached as f64);
        out.push("memory_buffers_bytes", &[], info.buffers as f64);
        if info.total > 0 {
            out.push("memory_used_ratio", &[], used as f64 / info.total as f64);
        }
        Ok(())
    }

    fn collect_vmstat(&self, out: &mut Out<'_>) -> Result<(), CollectError> {
        let stat = out.read(&self.vmstat, |text, _| parse_vmstat(text))?;
        if let Some(n) = stat.oom_kill {
            out.push("memory_oom_kills_total", &[], n as f64);
        }
        Ok(())
    }
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let meminfo = self.collect_meminfo(out);
        let vmstat = self.collect_vmstat(out);
        meminfo.and(vmstat)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use nines_common::{Sample, SeriesKey};

    use super::*;

    fn get(samples: &[Sample], name: &str) -> Option<f64> {
        let key = SeriesKey::new(name, &[]);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    #[test]
    fn parses_this_machines_meminfo() {
        let info = parse_meminfo(include_str!("../../tests/fixtures/vm/proc/meminfo")).unwrap();
        assert_eq!(
            info,
            MemInfo {
                total: 24684084 * 1024,
                free: 24508364 * 1024,
                available: Some(24424532 * 1024),
                buffers: 1704 * 1024,
                cached: 55628 * 1024,
                swap_total: 0,
                swap_free: 0,
            }
        );
    }

    #[test]
    fn parses_a_server_meminfo() {
        let info = parse_meminfo(include_str!("../../tests/fixtures/server/proc/meminfo")).unwrap();
        assert_eq!(info.total, 32779012 * 1024);
        assert_eq!(info.available(), 20531208 * 1024);
        assert_eq!(info.swap_total, 8388604 * 1024);
        assert_eq!(info.swap_free, 7864316 * 1024);
    }

    #[test]
    fn estimates_available_on_old_kernels() {
        let info =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
                .unwrap();
        assert_eq!(info.available, None);
        assert_eq!(info.available(), 400 * 1024);
    }

    #[test]
    fn rejects_bad_meminfo() {
        assert_eq!(
            parse_meminfo("MemFree: 1 kB\n").unwrap_err(),
            "no MemTotal line"
        );
        let err = parse_meminfo("MemTotal: lots kB\n").unwrap_err();
        assert!(err.starts_with("line 1: bad MemTotal value"), "{err}");
        assert!(parse_meminfo("MemTotal: 1 MB\n").is_err());
    }

    #[test]
    fn parses_vmstat() {
        let vm = parse_vmstat(include_str!("../../tests/fixtures/vm/proc/vmstat")).unwrap();
        assert_eq!(
            vm,
            VmStat {
                oom_kill: Some(0),
                pswpin: Some(0),
                pswpout: Some(0),
            }
        );
        let server = parse_vmstat(include_str!("../../tests/fixtures/server/proc/vmstat")).unwrap();
        assert_eq!(server.oom_kill, Some(2));
        assert_eq!(server.pswpout, Some(262144));
        // Before 4.13 there is no oom_kill line.
        assert_eq!(parse_vmstat("pgfault 10\n").unwrap().oom_kill, None);
        assert_eq!(
            parse_vmstat("pgfault 10\noom_kill x\n").unwrap_err(),
            "line 2: bad oom_kill value \"x\""
        );
        // Only whole names at the start of a line count.
        let vm = parse_vmstat("xpswpin 1\npswpin_total 2\npswpin 3\n").unwrap();
        assert_eq!(vm.pswpin, Some(3));
    }

    #[test]
    fn reports_use_and_oom_kills() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectConfig {
            procfs: dir.path().to_owned(),
            ..Default::default()
        };
        let mut memory = Memory::new(&config);
        let start = Instant::now();
        let mut run = |secs: u64, meminfo: &str, vmstat: &str| {
            std::fs::write(dir.path().join("meminfo"), meminfo).unwrap();
            std::fs::write(dir.path().join("vmstat"), vmstat).unwrap();
            let tick = Tick {
                ts_ms: secs as i64 * 1000,
                now: start + Duration::from_secs(secs),
            };
            let mut samples = Vec::new();
            memory
                .collect(&tick, &mut Out::new(tick.ts_ms, &mut samples))
                .unwrap();
            samples
        };

        // 4 GiB total, 1 GiB available: 3 GiB used, 75 %.
        let first = run(
            0,
            "MemTotal: 4194304 kB\nMemFree: 262144 kB\nMemAvailable: 1048576 kB\n\
             Buffers: 65536 kB\nCached: 524288 kB\n",
            "nr_free_pages 65536\noom_kill 0\n",
        );
        let gib = 1024.0 * 1024.0 * 1024.0;
        assert_eq!(get(&first, "memory_total_bytes"), Some(4.0 * gib));
        assert_eq!(get(&first, "memory_available_bytes"), Some(gib));
        assert_eq!(get(&first, "memory_used_bytes"), Some(3.0 * gib));
        assert_eq!(get(&first, "memory_used_ratio"), Some(0.75));
        assert_eq!(get(&first, "memory_cached_bytes"), Some(0.5 * gib));
        assert_eq!(
            get(&first, "memory_buffers_bytes"),
            Some(64.0 * 1024.0 * 1024.0)
        );
        assert_eq!(get(&first, "memory_oom_kills_total"), Some(0.0));

        // Memory pressure: 256 MiB left, one process OOM-killed.
        let second = run(
            1,
            "MemTotal: 4194304 kB\nMemFree: 65536 kB\nMemAvailable: 262144 kB\n\
             Buffers: 1024 kB\nCached: 131072 kB\n",
            "nr_free_pages 16384\noom_kill 1\n",
        );
        assert_eq!(get(&second, "memory_used_ratio"), Some(0.9375));
        assert_eq!(get(&second, "memory_available_bytes"), Some(0.25 * gib));
        assert_eq!(get(&second, "memory_oom_kills_total"), Some(1.0));
    }

    #[test]
    fn parses_a_meminfo_without_memavailable() {
        // 2.6.32: no MemAvailable; the estimate is MemFree + Buffers + Cached.
        let info = parse_meminfo(include_str!("../../tests/fixtures/old/proc/meminfo")).unwrap();
        assert_eq!(info.available, None);
        assert_eq!(info.available(), (152284 + 148136 + 1109964) * 1024);
        assert_eq!(info.swap_total - info.swap_free, (4128764 - 4121908) * 1024);
        let vm = parse_vmstat(include_str!("../../tests/fixtures/old/proc/vmstat")).unwrap();
        assert_eq!(
            vm,
            VmStat {
                oom_kill: None,
                pswpin: Some(1714),
                pswpout: Some(3102),
            }
        );
    }
}
