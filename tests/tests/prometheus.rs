//! nines beside a real Prometheus (Debian's 2.42): a real aggregator forwards a real agent's
//! samples by remote write to a real `prometheus --web.enable-remote-write-receiver`; the
//! backlog queued while Prometheus was down, across an aggregator restart, arrives; then the
//! same PromQL queries asked of nines' `/prom/api/v1` and of Prometheus, over HTTP and with
//! `promtool query` as the client, get the same answers. `/metrics` and `/federate` pass
//! `promtool check metrics`.

use std::time::Duration;

use nines_tests::cluster::{Agent, Aggregator, Pki, free_addr, log_tail};
use nines_tests::eventually;
use nines_tests::prometheus::{Prometheus, promtool};
use serde_json::Value;

async fn nines_text(client: &reqwest::Client, agg: &Aggregator, path: &str) -> String {
    let r = client
        .get(format!("{}{path}", agg.url))
        .bearer_auth(&agg.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.text().await.unwrap()
}

fn metric_value(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = client.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

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

/// A result (vector, matrix or scalar `data.result`) as sorted `(metric, [(t, v)])`.
fn normal(result_type: &str, result: &Value) -> Vec<(String, Vec<(f64, f64)>)> {
    let point = |p: &Value| {
        (
            p[0].as_f64().unwrap(),
            p[1].as_str().unwrap().parse::<f64>().unwrap(),
        )
    };
    let mut out: Vec<(String, Vec<(f64, f64)>)> = match result_type {
        "scalar" => vec![(String::new(), vec![point(result)])],
        "vector" => result
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["metric"].to_string(), vec![point(&s["value"])]))
            .collect(),
        "matrix" => result
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metric"].to_string(),
                    s["values"].as_array().unwrap().iter().map(point).collect(),
                )
            })
            .collect(),
        other => panic!("result type {other}"),
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn assert_same(
    what: &str,
    ours: &[(String, Vec<(f64, f64)>)],
    theirs: &[(String, Vec<(f64, f64)>)],
) {
    let names = |x: &[(String, Vec<(f64, f64)>)]| x.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(ours), names(theirs), "{what}: different series");
    for ((m, a), (_, b)) in ours.iter().zip(theirs) {
        assert_eq!(a.len(), b.len(), "{what} {m}: {a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x.0 - y.0).abs() < 1e-6 && close(x.1, y.1),
                "{what} {m}: nines {x:?}, prometheus {y:?}"
            );
        }
    }
    assert!(
        !ours.is_empty(),
        "{what}: empty on both sides, proves nothing"
    );
}

/// The PromQL subset, on the metrics an agent sends.
const QUERIES: &[&str] = &[
    "cpu_usage_ratio",
    "cpu_usage_ratio{cpu!=\"total\"}",
    "{__name__=~\"memory_.*\", host=\"web-1\"}",
    "{__name__=~\"memory_(used|total)_bytes\", host!~\"db-.*\"}",
    "avg by (host) (cpu_usage_ratio{cpu!~\"total\"})",
    "sum by (host) (memory_used_bytes)",
    "count(cpu_usage_ratio)",
    "max(memory_available_bytes)",
    "min by (cpu) (cpu_usage_ratio)",
    "sum(cpu_usage_ratio) by (cpu)",
    "max_over_time(cpu_usage_ratio[10s])",
    "min_over_time(cpu_usage_ratio{cpu=\"total\"}[10s])",
    "avg_over_time(memory_used_bytes[15s])",
    "predict_linear(memory_used_bytes[15s], 3600)",
    "rate(memory_used_bytes[10s])",
    "rate(cpu_usage_ratio{cpu=\"total\"}[15s])",
    "increase(memory_used_bytes[15s])",
    "delta(memory_used_bytes[15s])",
    "irate(memory_used_bytes[10s])",
    "idelta(cpu_usage_ratio[10s])",
    "deriv(memory_used_bytes[15s])",
    "resets(cpu_usage_ratio[15s])",
    "changes(cpu_usage_ratio[15s])",
    "sum_over_time(cpu_usage_ratio[10s])",
    "count_over_time(cpu_usage_ratio[10s])",
    "last_over_time(memory_used_bytes[10s])",
    "present_over_time(cpu_usage_ratio[10s])",
    "abs(-memory_used_bytes)",
    "ceil(cpu_usage_ratio * 10)",
    "floor(cpu_usage_ratio * 10)",
    "sqrt(memory_used_bytes)",
    "exp(-cpu_usage_ratio)",
    "ln(memory_used_bytes)",
    "log2(memory_used_bytes)",
    "log10(memory_used_bytes)",
    "memory_used_bytes / 1024 / 1024",
    "100 * cpu_usage_ratio > 0",
    "cpu_usage_ratio >= bool 0.01",
    "0 <= cpu_usage_ratio * 100",
    "-memory_used_bytes",
    "memory_used_bytes % 7",
    "2 * 3 + 1",
    "2 ^ 3 ^ 2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_feeds_prometheus_and_both_answer_promql_alike() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let prom_addr = free_addr();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.add_config(&format!(
        "\n[remote_write]\nurl = \"http://{prom_addr}/api/v1/write\"\nmax_backoff = \"1s\"\n"
    ));
    agg.start_ready(&client).await;
    let mut agent = Agent::new(dir.path(), &pki, "web-1", agg.ingest, "");
    agent.start();

    // Prometheus is not there yet: samples queue up, requests are retried.
    let queued = eventually(Duration::from_secs(30), || async {
        let m = nines_text(&client, &agg, "/metrics").await;
        let pending = metric_value(&m, "nines_remote_write_pending_samples{")?;
        let retries = metric_value(&m, "nines_remote_write_retries_total{")?;
        (pending > 50.0 && retries >= 1.0).then_some(pending)
    })
    .await;
    assert!(
        queued.is_some(),
        "no backlog while the receiver is down:\n{}",
        log_tail(&agg.log, 20)
    );
    // A few seconds of CPU samples (they start at the agent's second tick) in the backlog.
    let first_ts = eventually(Duration::from_secs(30), || async {
        let now = nines_tests_now();
        let s = agg
            .query(
                &client,
                "web-1",
                "cpu_usage_ratio",
                Some("cpu=total"),
                now - 600_000,
                now,
            )
            .await;
        let points = &s.first()?.points;
        (points.len() >= 3).then(|| points[0].0)
    })
    .await
    .expect("cpu_usage_ratio{cpu=\"total\"} in nines");

    // The backlog survives a restart of the aggregator and reaches Prometheus once it is up.
    agg.stop();
    let prom = Prometheus::start(&dir.path().join("prometheus"), prom_addr, &client).await;
    agg.start_ready(&client).await;
    let q = format!(
        "/api/v1/query?query={}&time={}",
        enc("cpu_usage_ratio{cpu=\"total\",host=\"web-1\"}[1h]"),
        nines_tests_now() as f64 / 1000.0
    );
    let got = eventually(Duration::from_secs(60), || async {
        let (_, v) = prom.get(&client, &q).await;
        let t = v["data"]["result"][0]["values"][0][0].as_f64()?;
        ((t * 1000.0).round() as i64 == first_ts).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "prometheus never got the sample at {first_ts} queued before the restart:\n{}",
        log_tail(&agg.log, 20)
    );

    // The aggregator's own metrics and the federation endpoint are valid exposition.
    let metrics = eventually(Duration::from_secs(30), || async {
        let m = nines_text(&client, &agg, "/metrics").await;
        let connected = metric_value(&m, "nines_agents_connected ")? == 1.0;
        (connected && metric_value(&m, "nines_ingest_samples_total ")? > 0.0).then_some(m)
    })
    .await
    .expect("the agent reconnects and its samples are counted");
    let out = promtool(&["check", "metrics"], Some(metrics.as_bytes()));
    assert!(
        out.status.success(),
        "promtool check metrics on /metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "nines_ingest_samples_total ",
        "nines_agents_connected ",
        "nines_store_commit_duration_seconds_count ",
        "nines_agent_spool_dropped_batches_total{host=\"web-1\"} ",
        "nines_remote_write_samples_sent_total{",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    let federate = nines_text(&client, &agg, "/federate").await;
    let out = promtool(&["check", "metrics"], Some(federate.as_bytes()));
    let problems =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // Federation, like Prometheus' own, carries no HELP text: that lint is all that may show.
    assert!(
        problems
            .lines()
            .all(|l| l.trim().is_empty() || l.ends_with("no help text")),
        "promtool check metrics on /federate: {problems}"
    );
    assert!(
        federate
            .lines()
            .any(|l| l.starts_with("cpu_usage_ratio{cpu=\"total\",host=\"web-1\"} ")),
        "{federate}"
    );

    // 35 s of samples, enough for the windows below; then stop the source, let remote
    // write drain, and compare answers on identical data.
    let span = eventually(Duration::from_secs(90), || async {
        let now = nines_tests_now();
        let s = agg
            .query(
                &client,
                "web-1",
                "cpu_usage_ratio",
                Some("cpu=total"),
                now - 600_000,
                now,
            )
            .await;
        let p = &s.first()?.points;
        (p.last()?.0 - p.first()?.0 >= 35_000).then_some(())
    })
    .await;
    assert!(span.is_some(), "35 s of samples within 90 s");
    agent.stop();
    let drained = eventually(Duration::from_secs(60), || async {
        let m = nines_text(&client, &agg, "/metrics").await;
        (metric_value(&m, "nines_remote_write_pending_samples{")? == 0.0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "remote write did not drain");
    let ours = agg
        .query(
            &client,
            "web-1",
            "cpu_usage_ratio",
            Some("cpu=total"),
            nines_tests_now() - 600_000,
            nines_tests_now(),
        )
        .await;
    let last = ours[0].points.last().unwrap().0;
    let all = format!(
        "/api/v1/query?query={}&time={}",
        enc("cpu_usage_ratio{cpu=\"total\",host=\"web-1\"}[1h]"),
        nines_tests_now() as f64 / 1000.0
    );
    let (_, v) = prom.get(&client, &all).await;
    let theirs = v["data"]["result"][0]["values"].as_array().unwrap().len();
    assert_eq!(
        theirs,
        ours[0].points.len(),
        "prometheus holds every sample nines holds"
    );

    // Half a second off the 1 s sample grid, so no sample sits on a window's edge.
    let t = (last - 500) as f64 / 1000.0;
    let ours_url = |path: &str| format!("{}/prom/api/v1/{path}", agg.url);
    let theirs_url = |path: &str| format!("{}/api/v1/{path}", prom.url);
    for q in QUERIES {
        for (path, args) in [
            ("query", format!("time={t}")),
            ("query", format!("time={}", t - 7.0)),
            ("query_range", format!("start={}&end={t}&step=2", t - 30.0)),
        ] {
            let tail = format!("{path}?query={}&{args}", enc(q));
            let (s1, a) = get(&client, &ours_url(&tail), Some(&agg.token)).await;
            let (s2, b) = get(&client, &theirs_url(&tail), None).await;
            assert_eq!(
                (s1, s2),
                (200, 200),
                "{q} {args}: nines {a}, prometheus {b}"
            );
            assert_eq!(a["status"], "success");
            let kind = b["data"]["resultType"].as_str().unwrap();
            assert_eq!(a["data"]["resultType"], kind, "{q}");
            assert_same(
                &format!("{q} ({path} {args})"),
                &normal(kind, &a["data"]["result"]),
                &normal(kind, &b["data"]["result"]),
            );
        }
    }

    // promtool as the client of both: same JSON answers.
    let (host, port) = agg
        .url
        .trim_start_matches("http://")
        .split_once(':')
        .unwrap();
    let nines_server = format!("http://nines:{}@{host}:{port}/prom", agg.token);
    let ts = format!("{t}");
    let start = format!("{}", t - 20.0);
    for q in [
        "avg by (host) (cpu_usage_ratio)",
        "max_over_time(memory_used_bytes[10s]) / 1e6",
        "cpu_usage_ratio{cpu=~\"total|0\"} > bool 0",
    ] {
        let instant = |server: &str| {
            promtool(
                &["query", "instant", "-o", "json", "--time", &ts, server, q],
                None,
            )
        };
        let range = |server: &str| {
            promtool(
                &[
                    "query", "range", "-o", "json", "--start", &start, "--end", &ts, "--step",
                    "5s", server, q,
                ],
                None,
            )
        };
        for (kind, a, b) in [
            ("vector", instant(&nines_server), instant(&prom.url)),
            ("matrix", range(&nines_server), range(&prom.url)),
        ] {
            assert!(
                a.status.success() && b.status.success(),
                "promtool {q}: {} / {}",
                String::from_utf8_lossy(&a.stderr),
                String::from_utf8_lossy(&b.stderr)
            );
            let a: Value = serde_json::from_slice(&a.stdout).unwrap();
            let b: Value = serde_json::from_slice(&b.stdout).unwrap();
            assert_same(
                &format!("promtool {kind} {q}"),
                &normal(kind, &a),
                &normal(kind, &b),
            );
        }
    }

    // Series, label names and values agree; bad queries get Prometheus' error shape.
    for tail in [
        format!("series?match[]={}", enc("cpu_usage_ratio")),
        format!(
            "series?match[]={}&match[]={}",
            enc("{__name__=~\"memory_.*\"}"),
            enc("swap_total_bytes")
        ),
        "labels".to_owned(),
        "label/host/values".to_owned(),
        "label/__name__/values".to_owned(),
        format!("label/cpu/values?match[]={}", enc("cpu_usage_ratio")),
    ] {
        let (s1, a) = get(&client, &ours_url(&tail), Some(&agg.token)).await;
        let (s2, b) = get(&client, &theirs_url(&tail), None).await;
        assert_eq!((s1, s2), (200, 200), "{tail}");
        let sorted = |v: &Value| {
            let mut x: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect();
            x.sort();
            x
        };
        assert_eq!(sorted(&a), sorted(&b), "{tail}");
        assert!(!sorted(&a).is_empty(), "{tail}");
    }
    for (tail, status) in [
        (format!("query?query={}", enc("sum(")), 400),
        (
            format!("query_range?query=up&start={t}&end={}&step=1", t - 10.0),
            400,
        ),
        ("query_range?query=up&start=1&end=2&step=0".to_owned(), 400),
        ("series".to_owned(), 400),
    ] {
        let (s1, a) = get(&client, &ours_url(&tail), Some(&agg.token)).await;
        let (s2, b) = get(&client, &theirs_url(&tail), None).await;
        assert_eq!((s1, s2), (status, status), "{tail}: {a} {b}");
        assert_eq!(a["status"], "error");
        assert_eq!(a["errorType"], b["errorType"], "{tail}: {a} {b}");
    }
    let (s, _) = get(&client, &ours_url("query?query=up"), None).await;
    assert_eq!(s, 401, "the Prometheus API needs a token");
    agg.stop();
}

fn nines_tests_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
