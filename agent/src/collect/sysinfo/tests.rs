#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nines_common::Sample;

use super::super::filesystem::FilesystemConfig;
use super::super::network::NetworkConfig;
use super::super::process::COMM_LEN;
use super::super::testing::{get, run_ok};
use super::super::{Backend, Runner};
use super::super::{CollectConfig, Collector, Tick};
use super::network::RATES;
use super::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use sysinfo::System;

fn shared() -> Shared {
    Ok(Arc::new(Mutex::new(System::new().unwrap())))
}

fn now() -> Tick {
    Tick {
        ts_ms: 1_700_000_000_000,
        now: Instant::now(),
    }
}

/// Two ticks on the real clock, far enough apart for sysinfo to measure CPU usage.
fn two_ticks(collector: &mut dyn Collector) -> (Vec<Sample>, Vec<Sample>) {
    let first = run_ok(collector, &now());
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50));
    let second = run_ok(collector, &now());
    (first, second)
}

fn is_ratio(v: Option<f64>) -> bool {
    v.is_some_and(|v| (0.0..=1.0).contains(&v))
}

/// The series named `name`, as (labels, value).
fn series<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.key.name == name).collect()
}

#[cfg(target_os = "linux")]
#[test]
fn memory_total_is_what_the_kernel_says() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    let (first, second) = two_ticks(&mut Memory::new(shared()));
    for samples in [&first, &second] {
        let total = get(samples, "memory_total_bytes", &[]);
        assert_eq!(total, Some(kib * 1024.0));
        let available = get(samples, "memory_available_bytes", &[]).unwrap();
        let used = get(samples, "memory_used_bytes", &[]).unwrap();
        assert_eq!(used + available, kib * 1024.0);
        assert!(is_ratio(get(samples, "memory_used_ratio", &[])));
        // What sysinfo cannot tell is absent, not 0.
        assert_eq!(get(samples, "memory_cached_bytes", &[]), None);
    }
}

#[test]
fn cpu_ratios_come_on_the_second_tick_and_stay_in_range() {
    let (first, second) = two_ticks(&mut Cpu::new(shared()));
    assert!(series(&first, "cpu_usage_ratio").is_empty(), "{first:?}");
    assert!(get(&first, "load_average_1m", &[]).is_some_and(|l| l >= 0.0));
    assert!(is_ratio(get(
        &second,
        "cpu_usage_ratio",
        &[("cpu", "total")]
    )));
    assert!(is_ratio(get(&second, "cpu_usage_ratio", &[("cpu", "0")])));
    let per_cpu = series(&second, "cpu_usage_ratio");
    assert!(per_cpu.len() >= 2, "{per_cpu:?}");
    assert!(per_cpu.iter().all(|s| (0.0..=1.0).contains(&s.value)));
    for load in ["load_average_1m", "load_average_5m", "load_average_15m"] {
        assert!(get(&second, load, &[]).is_some_and(|l| l >= 0.0), "{load}");
    }
}

#[test]
fn swap_is_reported_with_a_ratio_even_without_swap() {
    let (_, second) = two_ticks(&mut Swap::new(shared()));
    let total = get(&second, "swap_total_bytes", &[]).unwrap();
    let used = get(&second, "swap_used_bytes", &[]).unwrap();
    assert!(used <= total);
    assert!(is_ratio(get(&second, "swap_used_ratio", &[])));
}

#[test]
fn the_root_filesystem_is_reported_and_exclusions_apply() {
    let (_, second) = two_ticks(&mut Filesystem::new(&CollectConfig::default()));
    let root: Vec<_> = second
        .iter()
        .filter(|s| s.key.label("mount") == Some("/"))
        .collect();
    let value = |name: &str| {
        root.iter()
            .find(|s| s.key.name == name)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no {name} for /: {second:?}"))
    };
    assert!(value("filesystem_size_bytes") > 0.0);
    assert!(value("filesystem_available_bytes") <= value("filesystem_size_bytes"));
    assert!(is_ratio(Some(value("filesystem_used_ratio"))));
    assert!([0.0, 1.0].contains(&value("filesystem_readonly")));
    assert!(root[0].key.label("fstype").is_some_and(|t| !t.is_empty()));
    // Pseudo filesystems are left out as by the procfs collector.
    assert!(
        second
            .iter()
            .all(|s| !matches!(s.key.label("fstype"), Some("proc" | "sysfs" | "devpts"))),
        "{second:?}"
    );

    let config = CollectConfig {
        filesystem: FilesystemConfig {
            exclude_mounts: vec!["/".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let (_, second) = two_ticks(&mut Filesystem::new(&config));
    assert!(second.iter().all(|s| s.key.label("mount") != Some("/")));
}

#[test]
fn network_rates_come_on_the_second_tick_and_lo_is_left_out_by_default() {
    let (_, second) = two_ticks(&mut Network::new(&CollectConfig::default()));
    assert!(
        second
            .iter()
            .all(|s| s.key.label("interface") != Some("lo"))
    );

    let config = CollectConfig {
        network: NetworkConfig {
            include: vec!["*".into()],
            exclude: Vec::new(),
        },
        ..Default::default()
    };
    let (first, second) = two_ticks(&mut Network::new(&config));
    let lo = [("interface", "lo")];
    assert_eq!(get(&first, "network_receive_bytes_per_second", &lo), None);
    assert_eq!(get(&first, "network_up", &lo), Some(1.0));
    for metric in RATES {
        assert!(
            get(&second, metric, &lo).is_some_and(|v| v >= 0.0),
            "{metric}"
        );
    }
    assert_eq!(get(&second, "network_receive_drops_per_second", &lo), None);
}

#[test]
fn watches_find_this_process_by_name_command_line_and_pidfile() {
    let exe = std::env::current_exe().unwrap();
    // `nines_agent-<hash>`: longer than the 15 bytes the kernel keeps of a name.
    let name = exe.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.len() > COMM_LEN, "{name}");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("test.pid");
    std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
    let toml = format!(
        r#"watch = [
          "{name}",
          {{ name = "by-cmdline", cmdline = '/{name}' }},
          {{ name = "by-pidfile", pidfile = "{}" }},
          {{ name = "no-pidfile", pidfile = "{}" }},
          "no-such-program",
          {{ name = "by-unit", unit = "cron.service" }},
        ]"#,
        pidfile.display(),
        dir.path().join("absent.pid").display(),
    );
    let config = CollectConfig {
        process: toml::from_str(&toml).unwrap(),
        ..Default::default()
    };
    let mut process = Process::new(&config, shared());
    let (first, second) = two_ticks(&mut process);
    for samples in [&first, &second] {
        assert!(get(samples, "processes_total", &[]).is_some_and(|n| n >= 1.0));
        assert!(get(samples, "processes_zombie", &[]).is_some());
        for watch in [name.as_str(), "by-cmdline", "by-pidfile"] {
            let labels = [("process", watch)];
            assert_eq!(get(samples, "process_up", &labels), Some(1.0), "{watch}");
            assert!(
                get(samples, "process_count", &labels).is_some_and(|n| n >= 1.0),
                "{watch}"
            );
            assert!(
                get(samples, "process_resident_bytes", &labels).is_some_and(|b| b > 0.0),
                "{watch}"
            );
            assert_eq!(
                get(samples, "process_restarts_total", &labels),
                Some(0.0),
                "{watch}"
            );
        }
        assert_eq!(
            get(samples, "process_count", &[("process", "by-pidfile")]),
            Some(1.0)
        );
        for watch in ["no-pidfile", "no-such-program"] {
            let labels = [("process", watch)];
            assert_eq!(get(samples, "process_up", &labels), Some(0.0), "{watch}");
            assert_eq!(get(samples, "process_count", &labels), Some(0.0), "{watch}");
        }
        assert!(series(samples, "process_up").len() == 5, "{samples:?}");
        assert_eq!(get(samples, "process_up", &[("process", "by-unit")]), None);
        assert!(series(samples, "process_threads").is_empty());
    }
    let labels = [("process", name.as_str())];
    assert_eq!(get(&first, "process_cpu_ratio", &labels), None);
    assert!(get(&second, "process_cpu_ratio", &labels).is_some_and(|r| r >= 0.0));
}

#[test]
fn host_reports_boot_and_the_agent_itself() {
    let cpu = |samples: &[Sample]| get(samples, "agent_cpu_seconds_total", &[]).unwrap();
    let mut host = Host::new(shared());
    let first = run_ok(&mut host, &now());
    // Busy until the agent's CPU time has moved by a clock tick or more (on a loaded
    // machine that takes longer than the same work on an idle one).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut spin = 0u64;
    let second = loop {
        let busy = Instant::now();
        while busy.elapsed() < Duration::from_millis(20) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let samples = run_ok(&mut host, &now());
        if cpu(&samples) > cpu(&first) || Instant::now() > deadline {
            break samples;
        }
    };
    let uptime = get(&second, "host_uptime_seconds", &[]).unwrap();
    let boot = get(&second, "host_boot_time_seconds", &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(uptime > 0.0);
    assert!((now - uptime - boot).abs() < 5.0, "{now} {uptime} {boot}");
    assert!(get(&second, "agent_resident_bytes", &[]).is_some_and(|b| b > 0.0));
    assert!(cpu(&second) > cpu(&first), "{first:?} {second:?}");
}

/// The backend as the agent runs it: through the registry and the runner, every collector
/// of the procfs backend but `disk`, none failing.
#[test]
fn the_sysinfo_backend_runs_every_collector_without_failures() {
    let config = CollectConfig {
        backend: Backend::Sysinfo,
        ..Default::default()
    };
    let mut runner = Runner::new(super::super::registry(&config));
    let mut samples = Vec::new();
    runner.run(&now(), &mut samples);
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50));
    samples.clear();
    runner.run(&now(), &mut samples);
    let failures = series(&samples, "agent_collector_failures_total");
    let names: Vec<_> = failures
        .iter()
        .filter_map(|s| s.key.label("collector"))
        .collect();
    assert_eq!(
        names,
        [
            "cpu",
            "memory",
            "swap",
            "filesystem",
            "network",
            "process",
            "host"
        ]
    );
    assert!(failures.iter().all(|s| s.value == 0.0), "{failures:?}");
    assert!(is_ratio(get(
        &samples,
        "cpu_usage_ratio",
        &[("cpu", "total")]
    )));
    assert!(get(&samples, "memory_total_bytes", &[]).is_some_and(|b| b > 0.0));
    assert!(get(&samples, "host_boot_time_seconds", &[]).is_some());
}
