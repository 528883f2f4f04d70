//! Disk collector: I/O rates, busy time and latency per whole block device, from
//! `/proc/diskstats`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::select::{Devices, selected};
use super::{CollectConfig, CollectError, Collector, Out, Tick};

/// `/proc/diskstats` counts in 512-byte sectors whatever the device's real sector size.
const SECTOR_BYTES: f64 = 512.0;

fn default_include() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_exclude() -> Vec<String> {
    ["loop*", "ram*", "fd*", "sr*"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// `[collect.disk]`: which block devices are reported. Partitions are never reported; their
/// I/O is counted in their disk.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Globs (`*`, `?`) on the device name as in `/proc/diskstats`, e.g. `["sd*", "nvme*"]`. A
    /// device is reported if it matches one of them. Default `["*"]`.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Globs on the device name that are left out even if included. Default
    /// `["loop*", "ram*", "fd*", "sr*"]`.
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            include: default_include(),
            exclude: default_exclude(),
        }
    }
}

/// The counters of one `/proc/diskstats` line that the collector uses. Times are in
/// milliseconds, sizes in 512-byte sectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Reads completed.
    pub reads: u64,
    /// Sectors read.
    pub sectors_read: u64,
    /// Time spent by reads, summed over all reads.
    pub read_ms: u64,
    /// Writes completed.
    pub writes: u64,
    /// Sectors written.
    pub sectors_written: u64,
    /// Time spent by writes, summed over all writes.
    pub write_ms: u64,
    /// Time during which at least one I/O was in flight.
    pub io_ms: u64,
}

impl DiskCounters {
    /// Increase since `prev`, or `None` if any counter went backwards (the device was
    /// replaced, or a 32-bit counter wrapped).
    fn since(&self, prev: &Self) -> Option<Self> {
        Some(Self {
            reads: self.reads.checked_sub(prev.reads)?,
            sectors_read: self.sectors_read.checked_sub(prev.sectors_read)?,
            read_ms: self.read_ms.checked_sub(prev.read_ms)?,
            writes: self.writes.checked_sub(prev.writes)?,
            sectors_written: self.sectors_written.checked_sub(prev.sectors_written)?,
            write_ms: self.write_ms.checked_sub(prev.write_ms)?,
            io_ms: self.io_ms.checked_sub(prev.io_ms)?,
        })
    }
}

/// Parses `/proc/diskstats` into (device name, counters), in file order, one line at a
/// time. Partitions are included: the file does not say which lines are whole disks. A bad
/// line is an error for that line only.
pub fn parse(text: &str) -> impl Iterator<Item = Result<(&str, DiskCounters), String>> {
    text.lines().enumerate().filter_map(|(i, line)| {
        parse_line(line)
            .map_err(|e| format!("line {}: {e}", i + 1))
            .transpose()
    })
}

/// One line of `/proc/diskstats`; `None` for a line without the counters the collector uses.
fn parse_line(line: &str) -> Result<Option<(&str, DiskCounters)>, String> {
    let mut f = line.split_ascii_whitespace();
    // major, minor, name.
    let (Some(_), Some(_), Some(name)) = (f.next(), f.next(), f.next()) else {
        if line.trim().is_empty() {
            return Ok(None);
        }
        return Err("fewer than 3 fields".to_owned());
    };
    // The 11 counters up to weighted io_ticks are there since 2.6; 4.18 appended discards,
    // 5.5 flushes. Kernels before 2.6.25 gave partitions 4 counters only (reads, sectors
    // read, writes, sectors written): partitions are never reported, so those lines are
    // skipped.
    let mut v = [0u64; 10];
    let mut n = 0;
    for (slot, field) in v.iter_mut().zip(&mut f) {
        *slot = field
            .parse()
            .map_err(|_| format!("{name}: bad counter {field:?}"))?;
        n += 1;
    }
    match n {
        10 => {}
        4 if f.next().is_none() => return Ok(None),
        _ => return Err(format!("{name} has only {n} counters")),
    }
    Ok(Some((
        name,
        DiskCounters {
            reads: v[0],
            sectors_read: v[2],
            read_ms: v[3],
            writes: v[4],
            sectors_written: v[6],
            write_ms: v[7],
            io_ms: v[9],
        },
    )))
}

/// Per-device I/O from `/proc/diskstats`.
#[derive(Debug)]
pub struct Disk {
    diskstats: PathBuf,
    sys_block: PathBuf,
    config: DiskConfig,
    /// Per device: the counters of the previous tick.
    devices: Devices<Option<DiskCounters>>,
}

impl Disk {
    /// A disk collector reading `{procfs}/diskstats` and `{sysfs}/block`.
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            diskstats: config.procfs.join("diskstats"),
            sys_block: config.sysfs.join("block"),
            config: config.disk.clone(),
            devices: Devices::new(),
        }
    }
}

/// A whole disk has an entry in `/sys/block`; partitions only appear below their disk. Sysfs
/// spells a `/` in a device name (`cciss/c0d0`) as `!`.
fn is_whole(sys_block: &Path, name: &str) -> bool {
    sys_block.join(name.replace('/', "!")).exists()
}

impl Collector for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let Self {
            diskstats,
            sys_block,
            config,
            devices,
        } = self;
        let secs = devices.secs(tick.now);
        out.read(diskstats, |text, out| {
            devices.update(
                diskstats,
                parse(text),
                out,
                |name| {
                    let whole = selected(name, &config.include, &config.exclude)
                        && is_whole(sys_block, name);
                    (whole, None)
                },
                |out, name, prev, cur| {
                    let (Some(prev), Some(secs)) = (prev.replace(cur), secs) else {
                        return;
                    };
                    if let Some(d) = cur.since(&prev) {
                        push_rates(out, name, &d, secs);
                    }
                },
            );
            Ok(())
        })?;
        self.devices.end_tick(tick.now);
        Ok(())
    }
}

fn push_rates(out: &mut Out<'_>, name: &str, d: &DiskCounters, secs: f64) {
    let labels = [("device", name)];
    out.push(
        "disk_read_bytes_per_second",
        &labels,
        d.sectors_read as f64 * SECTOR_BYTES / secs,
    );
    out.push(
        "disk_write_bytes_per_second",
        &labels,
        d.sectors_written as f64 * SECTOR_BYTES / secs,
    );
    out.push("disk_reads_per_second", &labels, d.reads as f64 / secs);
    out.push("disk_writes_per_second", &labels, d.writes as f64 / secs);
    // io_ticks can run slightly ahead of the wall clock between two reads.
    out.push(
        "disk_busy_ratio",
        &labels,
        (d.io_ms as f64 / (secs * 1000.0)).min(1.0),
    );
    out.push(
        "disk_read_latency_seconds",
        &labels,
        latency_seconds(d.read_ms, d.reads),
    );
    out.push(
        "disk_write_latency_seconds",
        &labels,
        latency_seconds(d.write_ms, d.writes),
    );
}

/// Mean time per operation over an interval; 0 when there were no operations.
fn latency_seconds(ms: u64, ops: u64) -> f64 {
    if ops == 0 {
        0.0
    } else {
        ms as f64 / ops as f64 / 1000.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::collect::select::glob_match;
    use std::path::Path;
    use std::time::Duration;
    use std::time::Instant;

    use nines_common::{Sample, SeriesKey};

    use super::super::testing;
    use super::*;

    fn all(text: &str) -> Result<Vec<(&str, DiskCounters)>, String> {
        parse(text).collect()
    }

    const VM: &str = include_str!("../../tests/fixtures/vm/proc/diskstats");
    const SERVER: &str = include_str!("../../tests/fixtures/server/proc/diskstats");

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = SeriesKey::new(name, labels);
        samples.iter().find(|s| s.key == key).map(|s| s.value)
    }

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "sda"));
        assert!(glob_match("loop*", "loop0"));
        assert!(!glob_match("loop*", "xloop0"));
        assert!(glob_match("sd?", "sda"));
        assert!(!glob_match("sd?", "sda1"));
        assert!(glob_match("nvme*n?", "nvme10n1"));
        assert!(glob_match("*p*1", "nvme0n1p1"));
        assert!(!glob_match("*p*1", "nvme0n1p2"));
        assert!(glob_match(
            "/var/lib/docker/*",
            "/var/lib/docker/overlay2/x/merged"
        ));
        assert!(glob_match("lo", "lo"));
        assert!(!glob_match("lo", "lo0"));
        assert!(glob_match("caf?", "café"));
        assert!(!glob_match("caf??", "café"));
        assert!(glob_match("*é", "café"));
        assert!(glob_match("a**b", "ab"));
    }

    #[test]
    fn parses_this_machines_diskstats() {
        let devices = all(VM).unwrap();
        assert_eq!(devices.len(), 10);
        let (name, vda) = devices[8];
        assert_eq!(name, "vda");
        assert_eq!(
            vda,
            DiskCounters {
                reads: 8316,
                sectors_read: 2150858,
                read_ms: 20251,
                writes: 1923,
                sectors_written: 1548864,
                write_ms: 4076,
                io_ms: 6492,
            }
        );
    }

    #[test]
    fn parses_old_and_new_line_lengths() {
        let devices = all(SERVER).unwrap();
        let names: Vec<&str> = devices.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"nvme0n1p1"));
        // 14-field line (kernel < 4.18) next to 20-field ones.
        let (_, cciss) = devices.iter().find(|(n, _)| *n == "cciss/c0d0").unwrap();
        assert_eq!(cciss.io_ms, 30110);
    }

    #[test]
    fn rejects_truncated_and_garbled_lines() {
        let err = all("   8       0 sda 1 2 3\n").unwrap_err();
        assert!(err.contains("sda has only 3 counters"), "{err}");
        let err = all("   8       0 sda 1 2 x 4 5 6 7 8 9 10 11\n").unwrap_err();
        assert!(err.contains("line 1: sda: bad counter \"x\""), "{err}");
    }

    /// The fixture's sysfs decides which lines are whole disks.
    #[test]
    fn reports_whole_disks_selected_by_config() {
        let root = fixture("server");
        let config = CollectConfig {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            ..Default::default()
        };
        let mut disk = Disk::new(&config);
        let start = Instant::now();
        let mut samples = Vec::new();
        for s in 0..2 {
            let tick = Tick {
                ts_ms: s * 1000,
                now: start + Duration::from_secs(s as u64),
            };
            disk.collect(&tick, &mut Out::new(tick.ts_ms, &mut samples))
                .unwrap();
        }
        let mut devices: Vec<&str> = samples
            .iter()
            .filter(|s| s.key.name == "disk_reads_per_second")
            .filter_map(|s| s.key.label("device"))
            .collect();
        devices.sort();
        // No partitions, no loop*/sr*, and cciss/c0d0 found through `cciss!c0d0`.
        assert_eq!(devices, ["cciss/c0d0", "dm-0", "nvme0n1", "sda", "zram0"]);
    }

    #[test]
    fn computes_rates_between_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let (procfs, sysfs) = (dir.path().join("proc"), dir.path().join("sys"));
        std::fs::create_dir_all(&procfs).unwrap();
        std::fs::create_dir_all(sysfs.join("block/sda")).unwrap();
        std::fs::create_dir_all(sysfs.join("block/loop0")).unwrap();
        let config = CollectConfig {
            procfs: procfs.clone(),
            sysfs,
            ..Default::default()
        };
        let mut disk = Disk::new(&config);
        let start = Instant::now();
        let mut run = |secs: u64, diskstats: &str| {
            std::fs::write(procfs.join("diskstats"), diskstats).unwrap();
            let tick = Tick {
                ts_ms: 1_700_000_000_000 + secs as i64 * 1000,
                now: start + Duration::from_secs(secs),
            };
            let mut samples = Vec::new();
            disk.collect(&tick, &mut Out::new(tick.ts_ms, &mut samples))
                .unwrap();
            samples
        };
        let sda = [("device", "sda")];

        let first = run(
            0,
            "   8 0 sda 100 0 800 50 10 0 80 20 0 1000 70 0 0 0 0\n\
             \x20  8 1 sda1 100 0 800 50 10 0 80 20 0 1000 70 0 0 0 0\n\
             \x20  7 0 loop0 5 0 40 1 0 0 0 0 0 1 1 0 0 0 0\n",
        );
        assert!(first.is_empty(), "first tick has no rates: {first:?}");

        // In 1 s: 4 reads of 4 sectors (2048 bytes) taking 40 ms in all, 2 writes of 8 sectors
        // (8192 bytes) taking 5 ms, busy 250 ms.
        let second = run(
            1,
            "   8 0 sda 104 0 804 90 12 0 96 25 0 1250 115 0 0 0 0\n\
             \x20  8 1 sda1 104 0 804 90 12 0 96 25 0 1250 115 0 0 0 0\n\
             \x20  7 0 loop0 9 0 80 2 0 0 0 0 0 2 2 0 0 0 0\n",
        );
        assert_eq!(
            get(&second, "disk_read_bytes_per_second", &sda),
            Some(2048.0)
        );
        assert_eq!(
            get(&second, "disk_write_bytes_per_second", &sda),
            Some(8192.0)
        );
        assert_eq!(get(&second, "disk_reads_per_second", &sda), Some(4.0));
        assert_eq!(get(&second, "disk_writes_per_second", &sda), Some(2.0));
        assert_eq!(get(&second, "disk_busy_ratio", &sda), Some(0.25));
        assert_eq!(get(&second, "disk_read_latency_seconds", &sda), Some(0.01));
        assert_eq!(
            get(&second, "disk_write_latency_seconds", &sda),
            Some(0.0025)
        );
        // Partition and excluded loop device are not reported.
        assert_eq!(second.len(), 7, "{second:?}");

        // Idle second: no ops, latency 0 rather than NaN; io_ticks overshoot capped at 1.
        let third = run(2, "   8 0 sda 104 0 804 90 12 0 96 25 0 2300 115 0 0 0 0\n");
        assert_eq!(get(&third, "disk_reads_per_second", &sda), Some(0.0));
        assert_eq!(get(&third, "disk_read_latency_seconds", &sda), Some(0.0));
        assert_eq!(get(&third, "disk_busy_ratio", &sda), Some(1.0));

        // Counters went backwards (device replaced): no rates this tick, rates again after.
        let fourth = run(3, "   8 0 sda 3 0 24 1 0 0 0 0 0 1 1 0 0 0 0\n");
        assert!(fourth.is_empty(), "{fourth:?}");
        let fifth = run(4, "   8 0 sda 5 0 28 3 0 0 0 0 0 2 3 0 0 0 0\n");
        assert_eq!(get(&fifth, "disk_reads_per_second", &sda), Some(2.0));
        assert_eq!(
            get(&fifth, "disk_read_bytes_per_second", &sda),
            Some(2048.0)
        );
    }

    #[test]
    fn parses_a_2_6_diskstats() {
        // 11 counters for disks, 4 for partitions (before 2.6.25): partitions are skipped.
        let devices = all(include_str!("../../tests/fixtures/old/proc/diskstats")).unwrap();
        let names: Vec<&str> = devices.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["ram0", "ram1", "sda", "dm-0", "dm-1"]);
        assert_eq!(devices[2].1.io_ms, 2913245);
        assert_eq!(devices[2].1.sectors_written, 17459832);
        let err = all("   8    1 sda1 1 2 3 4 5\n").unwrap_err();
        assert!(err.contains("sda1 has only 5 counters"), "{err}");
    }

    /// A 32-bit ARM board: the kernel's counters are `unsigned long`, 32 bits, and wrap.
    /// A wrapped counter looks like a reset: no rates for that device on that tick, no
    /// absurd spike, and rates again on the next one; the other devices are unaffected.
    #[test]
    fn skips_a_tick_when_32_bit_counters_wrap() {
        let arm = fixture("arm32");
        let dir = tempfile::tempdir().unwrap();
        let config = CollectConfig {
            procfs: dir.path().to_owned(),
            sysfs: arm.join("sys"),
            ..Default::default()
        };
        let mut disk = Disk::new(&config);
        let start = Instant::now();
        let mut samples = Vec::new();
        for t in 0..3 {
            std::fs::copy(
                arm.join(format!("t{t}/proc/diskstats")),
                dir.path().join("diskstats"),
            )
            .unwrap();
            samples = testing::run_ok(&mut disk, &testing::tick(start, t));
            let mmc = get(&samples, "disk_reads_per_second", &[("device", "mmcblk0")]);
            let sda = get(&samples, "disk_reads_per_second", &[("device", "sda")]);
            match t {
                0 => assert_eq!((mmc, sda), (None, None)),
                1 => assert_eq!((mmc, sda), (None, Some(10.0))),
                _ => assert_eq!((mmc, sda), (Some(10.0), Some(10.0))),
            }
        }
        assert_eq!(
            get(&samples, "disk_busy_ratio", &[("device", "mmcblk0")]),
            Some(0.01)
        );
    }
}
