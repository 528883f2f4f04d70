//! The `nines-agent` binary as a sysadmin meets it: bad configs, collect-once.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nines-agent");

#[test]
fn a_bad_config_exits_64_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "interval = \"10s\"\nintervall = \"5s\"\n[aggregator]\naddresses = [\"a:1\"]\nca = \"c\"\ncert = \"c\"\nkey = \"k\"\n",
    )
    .unwrap();
    for args in [
        vec!["check-config", path.to_str().unwrap()],
        vec!["run", "--config", path.to_str().unwrap()],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("intervall"), "{err}");
    }
}

#[test]
fn missing_certificates_are_advice_and_bad_ones_an_error_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "[aggregator]\naddresses = [\"a:1\"]\nca = \"nope/ca.pem\"\ncert = \"c\"\nkey = \"k\"\n",
    )
    .unwrap();
    // Not there yet, as on a host just installed: `run` waits for them, so the configuration
    // passes (it is the systemd unit's ExecStartPre), with the way to issue them.
    let out = Command::new(BIN)
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no certificates yet"), "{text}");
    assert!(text.contains("nope/ca.pem"), "{text}");
    assert!(text.contains("nines-aggregator ca issue"), "{text}");

    // There, but not certificates: unusable, exit 64 naming the file.
    std::fs::create_dir(dir.path().join("nope")).unwrap();
    for f in ["nope/ca.pem", "c", "k"] {
        std::fs::write(dir.path().join(f), "not PEM\n").unwrap();
    }
    let out = Command::new(BIN)
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn collect_once_prints_this_machines_metrics_as_json() {
    let out = Command::new(BIN)
        .args(["collect-once", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for want in [
        "cpu_usage_ratio",
        "memory_available_bytes",
        "swap_total_bytes",
        "filesystem_used_ratio",
        "network_receive_bytes_per_second",
        "load_average_1m",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let ratio = doc["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cpu_usage_ratio" && s["labels"]["cpu"] == "total")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&ratio), "cpu ratio {ratio}");
}

#[test]
fn collect_once_speaks_prometheus_text_format() {
    let out = Command::new(BIN)
        .args(["collect-once", "--format", "prometheus"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# TYPE memory_total_bytes gauge"), "{text}");
    assert!(
        text.contains("# TYPE agent_collector_failures_total counter"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu_usage_ratio{cpu=\"total\"} "))
        .unwrap_or_else(|| panic!("{text}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 3, "name, value, timestamp: {line}");
    assert!(
        fields[1].parse::<f64>().is_ok() && fields[2].parse::<i64>().is_ok(),
        "{line}"
    );
}

#[test]
fn check_config_says_which_check_is_wrong_and_how() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let base = "[aggregator]\naddresses = [\"a:1\"]\nca = \"c\"\ncert = \"c\"\nkey = \"k\"\n";
    for (checks, needle) in [
        (
            "[[checks]]\nname = \"ok\"\ntcp = \"127.0.0.1:22\"\n[[checks]]\nname = \"web\"\n",
            "[[checks]] entry 2 (name = \"web\"): says nothing to run",
        ),
        (
            "[[checks]]\nname = \"web\"\nhttp = \"https://example.net/\"\n",
            "for HTTPS use command = [\"/usr/lib/nagios/plugins/check_http\"",
        ),
        (
            "[[checks]]\nname = \"load\"\ncommand = [\"/usr/lib/nagios/plugins/check_load\"]\ninterval = \"30s\"\ntimeout = \"1m\"\n",
            "must be more than 0 and at most the interval (30s)",
        ),
    ] {
        std::fs::write(&path, format!("{base}{checks}")).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{checks}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
