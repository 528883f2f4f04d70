//! Swap collector: swap space use from `/proc/meminfo` and paging rates from `/proc/vmstat`.

use std::path::PathBuf;
use std::time::Instant;

use super::memory::{parse_meminfo, parse_vmstat};
use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// Swap space and swap traffic.
#[derive(Debug)]
pub struct Swap {
    meminfo: PathBuf,
    vmstat: PathBuf,
    /// Last (time, pswpin, pswpout) reading.
    prev: Option<(Instant, u64, u64)>,
}

impl Swap {
    /// A swap collector reading `{procfs}/meminfo` and `{procfs}/vmstat`.
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            meminfo: config.procfs.join("meminfo"),
            vmstat: config.procfs.join("vmstat"),
            prev: None,
        }
    }

    fn collect_meminfo(&self, out: &mut Out<'_>) -> Result<(), CollectError> {
        // Read once per tick for both this collector and the memory collector.
        let info = out.read_single(&self.meminfo, |text, _| parse_meminfo(text))?;
        let used = info.swap_total.saturating_sub(info.swap_free);
        out.push("swap_total_bytes", &[], info.swap_total as f64);
        out.push("swap_used_bytes", &[], used as f64);
        // A host without swap is 0 % used, not unknown: alerts on the ratio stay quiet.
        let ratio = if info.swap_total == 0 {
            0.0
        } else {
            used as f64 / info.swap_total as f64
        };
        out.push("swap_used_ratio", &[], ratio);
        Ok(())
    }

    fn collect_vmstat(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let stat = out.read(&self.vmstat, |text, _| parse_vmstat(text))?;
        let (Some(pswpin), Some(pswpout)) = (stat.pswpin, stat.pswpout) else {
            // Kernel built without swap support.
            self.prev = None;
            return Ok(());
        };
        if let Some((at, prev_in, prev_out)) = self.prev {
            let secs = tick.now.saturating_duration_since(at).as_secs_f64();
            if let (Some(d_in), Some(d_out)) =
                (pswpin.checked_sub(prev_in), pswpout.checked_sub(prev_out))
                && secs > 0.0
            {
                out.push("swap_in_pages_per_second", &[], d_in as f64 / secs);
                out.push("swap_out_pages_per_second", &[], d_out as f64 / secs);
            }
        }
        self.prev = Some((tick.now, pswpin, pswpout));
        Ok(())
    }
}

impl Collector for Swap {
    fn name(&self) -> &'static str {
        "swap"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let meminfo = self.collect_meminfo(out);
        let vmstat = self.collect_vmstat(tick, out);
        meminfo.and(vmstat)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use nines_common::{Sample, SeriesKey};

    use super::*;

    fn get(samples: &[Sample], name: &str) -> Option<f64> {
        let key = SeriesKey::new(name, &[]);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    fn collector(dir: &std::path::Path) -> Swap {
        Swap::new(&CollectConfig {
            procfs: dir.to_owned(),
            ..Default::default()
        })
    }

    fn run(
        swap: &mut Swap,
        dir: &std::path::Path,
        at: Instant,
        meminfo: &str,
        vmstat: &str,
    ) -> Vec<Sample> {
        std::fs::write(dir.join("meminfo"), meminfo).unwrap();
        std::fs::write(dir.join("vmstat"), vmstat).unwrap();
        let tick = Tick { ts_ms: 0, now: at };
        let mut samples = Vec::new();
        swap.collect(&tick, &mut Out::new(0, &mut samples)).unwrap();
        samples
    }

    #[test]
    fn reports_use_and_paging_rates() {
        let dir = tempfile::tempdir().unwrap();
        let mut swap = collector(dir.path());
        let start = Instant::now();

        // 8 GiB of swap, 2 GiB used.
        let meminfo = "MemTotal: 16777216 kB\nSwapTotal: 8388608 kB\nSwapFree: 6291456 kB\n";
        let first = run(
            &mut swap,
            dir.path(),
            start,
            meminfo,
            "pswpin 1000\npswpout 5000\n",
        );
        let gib = 1024.0 * 1024.0 * 1024.0;
        assert_eq!(get(&first, "swap_total_bytes"), Some(8.0 * gib));
        assert_eq!(get(&first, "swap_used_bytes"), Some(2.0 * gib));
        assert_eq!(get(&first, "swap_used_ratio"), Some(0.25));
        assert_eq!(get(&first, "swap_in_pages_per_second"), None);

        // 1 s later: 64 pages in, 256 pages out.
        let second = run(
            &mut swap,
            dir.path(),
            start + Duration::from_secs(1),
            meminfo,
            "pswpin 1064\npswpout 5256\n",
        );
        assert_eq!(get(&second, "swap_in_pages_per_second"), Some(64.0));
        assert_eq!(get(&second, "swap_out_pages_per_second"), Some(256.0));

        // Counters reset: no rate.
        let third = run(
            &mut swap,
            dir.path(),
            start + Duration::from_secs(2),
            meminfo,
            "pswpin 3\npswpout 4\n",
        );
        assert_eq!(get(&third, "swap_in_pages_per_second"), None);
        assert_eq!(get(&third, "swap_used_ratio"), Some(0.25));
    }

    #[test]
    fn no_swap_is_zero_percent_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut swap = collector(dir.path());
        let start = Instant::now();
        let meminfo = include_str!("../../tests/fixtures/vm/proc/meminfo");
        let vmstat = include_str!("../../tests/fixtures/vm/proc/vmstat");
        run(&mut swap, dir.path(), start, meminfo, vmstat);
        let second = run(
            &mut swap,
            dir.path(),
            start + Duration::from_secs(1),
            meminfo,
            vmstat,
        );
        assert_eq!(get(&second, "swap_total_bytes"), Some(0.0));
        assert_eq!(get(&second, "swap_used_bytes"), Some(0.0));
        assert_eq!(get(&second, "swap_used_ratio"), Some(0.0));
        assert_eq!(get(&second, "swap_in_pages_per_second"), Some(0.0));
    }
}
