use super::*;

#[test]
fn causes_do_not_depend_on_the_pid() {
    let denied = |pid: &str| CollectError::Read {
        path: PathBuf::from(format!("/proc/{pid}/fd")),
        source: std::io::Error::from_raw_os_error(13),
    };
    assert_eq!(denied("12").cause(), denied("3456").cause());
    assert_eq!(denied("12").cause(), "read /proc/[pid]/fd errno 13");
    let missing = CollectError::Read {
        path: PathBuf::from("/proc/diskstats"),
        source: std::io::Error::from_raw_os_error(2),
    };
    assert_ne!(missing.cause(), denied("12").cause());
    let parse = CollectError::Parse {
        path: PathBuf::from("/proc/77/stat"),
        detail: "no state".into(),
    };
    assert_eq!(parse.cause(), "parse /proc/[pid]/stat");
}

/// `[collect] backend` picks a backend this build has, and says what to do otherwise, with
/// the file, the line and the key.
#[test]
#[allow(clippy::unwrap_used)]
fn the_backend_key_selects_or_says_what_to_do() {
    let parse = |backend: &str| {
        let text = format!(
            "[aggregator]\naddresses = [\"agg.example.net:7443\"]\nca = \"ca.pem\"\n\
             cert = \"a.pem\"\nkey = \"a.key\"\n\n[collect]\n{backend}\n"
        );
        crate::config::Config::parse(&text, Path::new("/etc/nines/agent.toml"))
            .map(|c| c.collect.backend)
            .map_err(|e| e.to_string())
    };
    let default = parse("").unwrap();
    if cfg!(target_os = "linux") {
        assert_eq!(default, Backend::Procfs);
        assert_eq!(parse("backend = \"procfs\"").unwrap(), Backend::Procfs);
    } else {
        assert_eq!(default, Backend::Sysinfo);
        let e = parse("backend = \"procfs\"").unwrap_err();
        assert!(e.contains("this system has no procfs"), "{e}");
    }
    let sysinfo = parse("backend = \"sysinfo\"");
    if cfg!(any(feature = "sysinfo", not(target_os = "linux"))) {
        assert_eq!(sysinfo.unwrap(), Backend::Sysinfo);
    } else {
        let e = sysinfo.unwrap_err();
        assert!(e.contains("/etc/nines/agent.toml"), "{e}");
        assert!(
            e.contains("this build has no sysinfo backend; rebuild with --features sysinfo"),
            "{e}"
        );
    }
    assert_eq!(
        Backend::from_name("sysfs"),
        Err(BackendError::Unknown("sysfs".into()))
    );
    let e = parse("backend = \"sysfs\"").unwrap_err();
    assert!(e.contains("/etc/nines/agent.toml"), "{e}");
    assert!(e.contains("line 8"), "{e}");
    assert!(
        e.contains("backend = \"sysfs\" is not a backend: use \"procfs\" or \"sysinfo\""),
        "{e}"
    );
    assert!(parse("backend = 1").unwrap_err().contains("backend"));

    // The shipped example documents the key with its default.
    let shipped = include_str!("../../../packaging/agent.toml");
    assert!(shipped.contains("\n#backend = \"procfs\"\n"));
    let uncommented = shipped.replace("\n#backend = ", "\nbackend = ");
    let config = crate::config::Config::parse(&uncommented, Path::new("agent.toml"));
    if cfg!(target_os = "linux") {
        assert_eq!(config.unwrap().collect.backend, Backend::Procfs);
    }
}

/// Every collector through the runner, on a 2.6-era kernel's files: fields missing
/// (steal, MemAvailable, oom_kill, partition counters) are handled, nothing fails.
#[cfg(target_os = "linux")]
#[test]
#[allow(clippy::unwrap_used)]
fn every_collector_copes_with_an_old_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old");
    let config = CollectConfig {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        ..Default::default()
    };
    let mut runner = Runner::new(registry(&config));
    let start = Instant::now();
    let mut samples = Vec::new();
    for secs in 0..2 {
        samples.clear();
        runner.run(&testing::tick(start, secs), &mut samples);
    }
    let get = |name: &str, labels: &[(&str, &str)]| testing::get(&samples, name, labels);
    for collector in [
        "cpu",
        "memory",
        "swap",
        "disk",
        "filesystem",
        "network",
        "process",
        "host",
    ] {
        assert_eq!(
            get(
                "agent_collector_failures_total",
                &[("collector", collector)]
            ),
            Some(0.0),
            "{collector}"
        );
    }
    assert_eq!(get("processes_running", &[]), Some(1.0));
    assert_eq!(get("load_average_1m", &[]), Some(0.08));
    assert_eq!(
        get("memory_available_bytes", &[]),
        Some(((152284 + 148136 + 1109964) * 1024) as f64)
    );
    assert_eq!(get("memory_oom_kills_total", &[]), None);
    assert_eq!(get("swap_in_pages_per_second", &[]), Some(0.0));
    assert_eq!(
        get("disk_reads_per_second", &[("device", "sda")]),
        Some(0.0)
    );
    assert_eq!(get("disk_reads_per_second", &[("device", "sda1")]), None);
    assert_eq!(
        get("network_receive_bytes_per_second", &[("interface", "eth0")]),
        Some(0.0)
    );
    assert_eq!(get("network_up", &[("interface", "sit0")]), Some(0.0));
    assert!(samples.iter().any(|s| s.key.name == "filesystem_size_bytes"
        && s.key.label("mount") == Some("/")
        && s.key.label("fstype") == Some("ext3")));
    assert_eq!(get("processes_total", &[]), Some(2.0));
    assert_eq!(get("host_boot_time_seconds", &[]), Some(1_262_304_000.0));
    assert_eq!(get("agent_cpu_seconds_total", &[]), Some(0.94));
}
