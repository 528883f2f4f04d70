//! A real aggregator with two real agents over mTLS on loopback, read as an SRE reads it:
//! `now`-relative ranges, percentiles per step checked against min and max of the same
//! buckets, series listed across hosts by selector, and `/metrics` with the process, HTTP,
//! commit and alert-evaluation families valid for `promtool check metrics` and moving as
//! requests are made.

use std::time::Duration;

use nines_tests::cluster::{Agent, Aggregator, Pki};
use nines_tests::prometheus::promtool;
use nines_tests::{eventually, get_json, get_text};
use serde_json::Value;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the sample line that is `prefix` then a space and the value.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn points(doc: &Value) -> Vec<(i64, f64)> {
    doc["series"][0]["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points in {doc}"))
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sre_reads_relative_ranges_percentiles_series_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path());
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let mut agents: Vec<Agent> = ["web-1", "web-2"]
        .into_iter()
        .map(|h| Agent::new(dir.path(), &pki, h, agg.ingest, ""))
        .collect();
    for a in &mut agents {
        a.start();
    }
    let url = agg.url.clone();
    let token = agg.token.clone();

    // Both hosts' CPU series, listed across hosts by one selector.
    let sel = enc(r#"cpu_usage_ratio{cpu="total",host=~"web-.*"}"#);
    let listing = eventually(Duration::from_secs(20), || async {
        let doc = get_json(&client, &format!("{url}/api/v1/series?match={sel}"), &token).await?;
        (doc["series"].as_array()?.len() == 2).then_some(doc)
    })
    .await
    .expect("both agents' cpu_usage_ratio{cpu=\"total\"} listed within 20 s");
    let hosts: Vec<&str> = listing["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web-1", "web-2"]);
    assert_eq!(listing["truncated"], false);
    let limited = get_json(
        &client,
        &format!("{url}/api/v1/series?match={sel}&limit=1"),
        &token,
    )
    .await
    .unwrap();
    assert_eq!(limited["series"].as_array().unwrap().len(), 1);
    assert_eq!(limited["truncated"], true);

    // A few seconds of 1 s samples, then a relative range over them.
    let enough = eventually(Duration::from_secs(20), || async {
        let doc = get_json(
            &client,
            &format!(
                "{url}/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&from=now-5m"
            ),
            &token,
        )
        .await?;
        (points(&doc).len() >= 8).then_some(doc)
    })
    .await
    .expect("8 samples within 20 s");
    let newest = points(&enough).last().unwrap().0;
    let (status, doc) = {
        let r = client
            .get(format!(
                "{url}/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&from=now-5m&to=now-1h"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 400, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("after"), "{doc}");

    // Percentiles per 2 s bucket over a fixed past range: p0 is the bucket's min, p100 its max,
    // p50 between them.
    let q = format!(
        "{url}/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&from={}&to={newest}&step=2s",
        newest - 10_000
    );
    let by = |agg: &'static str| {
        let client = client.clone();
        let token = token.clone();
        let q = q.clone();
        async move {
            let doc = get_json(&client, &format!("{q}&agg={agg}"), &token)
                .await
                .unwrap_or_else(|| panic!("agg={agg} failed"));
            assert_eq!(doc["agg"], agg);
            points(&doc)
        }
    };
    let (min, max, p0, p50, p100, p99) = (
        by("min").await,
        by("max").await,
        by("p0").await,
        by("p50").await,
        by("p100").await,
        by("p99").await,
    );
    assert!(min.len() >= 4, "{min:?}");
    assert_eq!(p0, min);
    assert_eq!(p100, max);
    for (((lo, mid), hi), top) in min.iter().zip(&p50).zip(&max).zip(&p99) {
        assert_eq!(lo.0, mid.0);
        assert!(lo.1 <= mid.1 && mid.1 <= hi.1, "{lo:?} {mid:?} {hi:?}");
        assert!(mid.1 <= top.1 && top.1 <= hi.1, "{mid:?} {top:?} {hi:?}");
    }

    // /metrics: valid for promtool, with every family an SRE looks for.
    let metrics = get_text(&client, &format!("{url}/metrics"), &token)
        .await
        .unwrap();
    let out = promtool(&["check", "metrics"], Some(metrics.as_bytes()));
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {problems}\n{metrics}"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "nines_store_commit_duration_seconds_count",
        r#"nines_store_commit_duration_seconds_bucket{le="0.001"}"#,
        "nines_alert_evaluation_duration_seconds_count",
        "nines_alert_evaluation_failures_total",
        r#"nines_http_requests_total{route="/api/v1/series",method="GET",code="200"}"#,
        r#"nines_http_requests_total{route="/api/v1/query",method="GET",code="400"}"#,
        r#"nines_http_request_duration_seconds_count{route="/api/v1/query"}"#,
    ] {
        assert!(
            sample(&metrics, name).is_some(),
            "{name} missing:\n{metrics}"
        );
    }
    assert!(sample(&metrics, "nines_alert_evaluation_duration_seconds_count").unwrap() >= 1.0);
    assert_eq!(
        sample(&metrics, "nines_alert_evaluation_failures_total"),
        Some(0.0)
    );
    let started = sample(&metrics, "process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started < now && started > now - 120.0, "{started} vs {now}");
    // Agents' connections, the store and the listeners hold descriptors.
    assert!(sample(&metrics, "process_open_fds").unwrap() >= 6.0);

    // They move: commits go on, the scrape and these requests are counted.
    let commits = sample(&metrics, "nines_store_commit_duration_seconds_count").unwrap();
    let queries = sample(
        &metrics,
        r#"nines_http_request_duration_seconds_count{route="/api/v1/query"}"#,
    )
    .unwrap();
    for _ in 0..3 {
        get_json(&client, &format!("{q}&agg=p90"), &token)
            .await
            .unwrap();
    }
    let later = eventually(Duration::from_secs(10), || async {
        let m = get_text(&client, &format!("{url}/metrics"), &token).await?;
        (sample(&m, "nines_store_commit_duration_seconds_count")? > commits).then_some(m)
    })
    .await
    .expect("commits counted within 10 s");
    assert_eq!(
        sample(
            &later,
            r#"nines_http_request_duration_seconds_count{route="/api/v1/query"}"#
        ),
        Some(queries + 3.0)
    );
    // A scrape is counted once answered: absent from the first, in every later one.
    let scrapes = r#"nines_http_requests_total{route="/metrics",method="GET",code="200"}"#;
    assert_eq!(sample(&metrics, scrapes), None);
    assert!(sample(&later, scrapes).unwrap() >= 1.0, "{later}");
    assert!(
        sample(&later, "process_cpu_seconds_total").unwrap()
            >= sample(&metrics, "process_cpu_seconds_total").unwrap()
    );

    for a in &mut agents {
        a.stop();
    }
    agg.stop();
}
