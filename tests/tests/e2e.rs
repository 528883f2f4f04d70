//! End to end: the real `nines-aggregator demo` with its real `nines-agent` child, generated
//! certificates and mTLS on 127.0.0.1, queried over the HTTP API.

use std::process::Stdio;
use std::time::Duration;

use nines_tests::demo::{self, read_env};
use nines_tests::{Proc, eventually, get_json};
use serde_json::Value;

fn start_demo(dir: &std::path::Path) -> Proc {
    Proc::spawn(demo::command(dir).stdout(Stdio::null()))
}

const FAMILIES: [(&str, &str); 7] = [
    ("cpu", "cpu_usage_ratio"),
    ("memory", "memory_used_bytes"),
    ("swap", "swap_total_bytes"),
    ("disk", "disk_read_bytes_per_second"),
    ("filesystem", "filesystem_used_ratio"),
    ("network", "network_receive_bytes_per_second"),
    ("process", "process_up"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_streams_every_metric_family_over_mtls_within_15_seconds() {
    let _no_flood = nines_tests::load::timed().await;
    let dir = tempfile::tempdir().unwrap();
    let mut demo = start_demo(dir.path());
    let (url, token) = eventually(Duration::from_secs(10), || async { read_env(dir.path()) })
        .await
        .expect("demo.env with NINES_URL and NINES_TOKEN");
    let client = nines_tests::http_client();
    let started = std::time::Instant::now();

    // The API refuses requests without the token.
    let resp = client
        .get(format!("{url}/api/v1/hosts"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let host = eventually(Duration::from_secs(15), || async {
        let hosts = get_json(&client, &format!("{url}/api/v1/hosts"), &token).await?;
        let h = hosts["hosts"].as_array()?.first()?.clone();
        (h["up"] == Value::Bool(true)).then_some(h)
    })
    .await
    .expect("the local agent's host is listed and up");
    let id = host["id"].as_str().unwrap().to_owned();
    assert_eq!(host["connected"], true);
    assert_eq!(host["arch"], std::env::consts::ARCH);
    assert_eq!(host["interval_ms"], 1000);

    for (family, name) in FAMILIES {
        let q = format!("{url}/api/v1/query?host={id}&name={name}");
        let points = eventually(Duration::from_secs(15), || async {
            let doc = get_json(&client, &q, &token).await?;
            let n: usize = doc["series"]
                .as_array()?
                .iter()
                .map(|s| s["points"].as_array().map_or(0, |p| p.len()))
                .sum();
            (n > 0).then_some(doc)
        })
        .await
        .unwrap_or_else(|| panic!("no {family} points ({name})"));
        let first = &points["series"][0]["points"][0];
        let (ts, value) = (first[0].as_i64().unwrap(), first[1].as_f64().unwrap());
        assert_eq!(ts % 1000, 0, "timestamps fall on interval boundaries");
        assert!(value.is_finite());
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    // The aggregator's own process is watched by the demo agent and is up.
    let q = format!("{url}/api/v1/query?host={id}&name=process_up&label=process=nines-aggregator");
    let doc = get_json(&client, &q, &token).await.unwrap();
    let last = doc["series"][0]["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()[1]
        .as_f64();
    assert_eq!(last, Some(1.0));

    // Liveness comes from everything the host sends: one nines_host_samples point per tick,
    // valued with the number of samples of that tick.
    let q = format!("{url}/api/v1/query?host={id}&name=nines_host_samples");
    let doc = get_json(&client, &q, &token).await.unwrap();
    let points = doc["series"][0]["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{doc}");
    let ts: Vec<i64> = points.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[1] - w[0] == 1000), "{ts:?}");
    assert!(
        points.iter().all(|p| p[1].as_f64().unwrap() >= 20.0),
        "{doc}"
    );
    // The host's own availability counts from its first contact, seconds ago, not 30 days.
    let doc = get_json(
        &client,
        &format!("{url}/api/v1/availability?host={id}"),
        &token,
    )
    .await
    .unwrap();
    let h = &doc["services"][0];
    assert!(h["monitored_since"].is_string(), "{doc}");
    assert!(h["scheduled_minutes"].as_f64().unwrap() < 5.0, "{doc}");
    assert!(
        h["not_monitored_minutes"].as_f64().unwrap() > 43_000.0,
        "{doc}"
    );
    assert_ne!(h["verdict"], "unknown", "{doc}");

    // Ctrl-C (SIGTERM here) stops both cleanly.
    let status = demo.terminate(Duration::from_secs(15)).expect("demo stops");
    assert!(status.success(), "{status:?}");
    let before = get_json(
        &client,
        &format!("{url}/api/v1/query?host={id}&name=memory_used_bytes"),
        &token,
    )
    .await;
    assert!(before.is_none(), "the API is gone after stopping");

    // What the demo wrote is not readable by other users of the machine, whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        let meta = std::fs::metadata(dir.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        meta.permissions().mode() & 0o777
    };
    assert_eq!(mode("nines.redb"), 0o640, "the store");
    assert_eq!(mode("agent-state"), 0o700, "the agent's state directory");
    assert_eq!(mode("agent-state/spool"), 0o700, "the spool directory");
    assert_eq!(mode("agent-state/spool/acked"), 0o600, "the acked mark");
    let segments: Vec<_> = std::fs::read_dir(dir.path().join("agent-state/spool"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .collect();
    assert!(!segments.is_empty(), "the spool has a segment");
    for seg in segments {
        let m = seg.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{:?}", seg.file_name());
    }

    // Running it again reuses the certificates, token and data.
    let ca = std::fs::read(dir.path().join("pki/ca.pem")).unwrap();
    let mut demo = start_demo(dir.path());
    let (url2, token2) = eventually(Duration::from_secs(10), || async { read_env(dir.path()) })
        .await
        .unwrap();
    assert_eq!(token2, token, "same token");
    assert_eq!(
        std::fs::read(dir.path().join("pki/ca.pem")).unwrap(),
        ca,
        "same CA"
    );
    let seen = host["last_seen_ms"].as_i64().unwrap();
    let q = format!(
        "{url2}/api/v1/query?host={id}&name=memory_used_bytes&from={}",
        seen - 600_000
    );
    let doc = eventually(Duration::from_secs(10), || async {
        get_json(&client, &q, &token).await
    })
    .await
    .unwrap();
    let first_ts = doc["series"][0]["points"][0][0].as_i64().unwrap();
    assert!(first_ts <= seen, "data from the first run is still there");
    let status = demo.terminate(Duration::from_secs(15)).expect("demo stops");
    assert!(status.success());
}
