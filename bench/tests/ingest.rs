//! `nines-bench ingest` at a tiny scale: real binary, real aggregator child, real mTLS.
use std::path::PathBuf;
use std::process::Command;

/// The aggregator built beside this test (`cargo test --workspace` builds it).
fn aggregator() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/nines-aggregator
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("nines-aggregator");
    assert!(
        path.exists(),
        "{} not found: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

#[test]
fn a_small_run_acks_every_batch_and_stores_every_series() {
    let (agents, series) = (3u64, 20u64);
    let out = Command::new(super::BIN)
        .args(["ingest", "--aggregator-bin"])
        .arg(aggregator())
        .args(["--agents", &agents.to_string()])
        .args(["--series-per-agent", &series.to_string()])
        .args(["--duration", "3s", "--warmup", "1s", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    let num = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing or not a number: {r}"))
    };

    assert!(num("samples_per_second") > 0.0, "{r}");
    let p99 = r["ack_latency_ms"]["p99"].as_f64().expect("p99 present");
    assert!(p99.is_finite() && p99 > 0.0, "{r}");
    assert!(r["ack_latency_ms"]["p50"].as_f64().unwrap() <= p99);

    // One batch per agent per second over warm-up and measurement: at least 3 each.
    let sent = num("batches_sent");
    assert!(sent >= (3 * agents) as f64, "{r}");
    assert_eq!(sent, num("batches_acked"), "every sent batch acked: {r}");
    assert_eq!(num("samples_acked"), sent * series as f64, "{r}");
    assert_eq!(num("agents_failed"), 0.0, "{r}");
    // At 60 samples/s nothing can pile up: the window closes with at most one batch per agent
    // in flight.
    assert!(
        num("backlog_samples_at_end") <= (agents * series) as f64,
        "{r}"
    );

    assert_eq!(num("hosts_stored"), agents as f64, "{r}");
    // Each host's series, and the nines_host_samples series ingest derives for it.
    assert_eq!(num("series_stored"), (agents * (series + 1)) as f64, "{r}");
    assert!(
        num("store_bytes") > 0.0 && num("bytes_per_sample") > 0.0,
        "{r}"
    );
    assert!(
        num("aggregator_peak_rss_bytes") >= num("aggregator_rss_bytes"),
        "{r}"
    );
    assert!(num("aggregator_rss_bytes") > 0.0, "{r}");
    assert_eq!(r["aggregator_exit"], "clean", "{r}");
}

#[test]
fn bad_flags_exit_64_before_anything_starts() {
    let out = Command::new(super::BIN)
        .args(["ingest", "--aggregator-bin"])
        .arg(aggregator())
        .args(["--agents", "0", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--agents"), "{err}");
    assert!(out.stdout.is_empty());
}
