//! What SREs expect of the query API, through `router(state).oneshot(..)` over a real store:
//! times relative to now (`now-6h`), percentiles per step, series listed across hosts by
//! selector, and `/metrics` counting requests by route, process health and commit latency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nines_aggregator::config::{Role, TokenConfig};
use nines_aggregator::http::{self, AppState, token_hash};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::{BatchWrite, HelloWrite, Store, WriterHandle};
use nines_common::model::now_ms;
use nines_common::{HostId, SeriesKey};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "s3cret-read-token";
const MINUTE: i64 = 60_000;

async fn hello(store: &Store, host: &str) -> HostId {
    let id = HostId::new(host).unwrap();
    store
        .hello(HelloWrite {
            host: id.clone(),
            hello: nines_common::proto::Hello {
                protocol: 1,
                agent_version: "0.1.0".into(),
                host_id: host.into(),
                boot_id: "b".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                arch: "x86_64".into(),
                kernel: "6.1.0".into(),
                interval_ms: 10_000,
            },
            now_ms: now_ms(),
        })
        .await
        .unwrap();
    id
}

async fn write(store: &Store, host: &HostId, seq: u64, key: SeriesKey, points: &[(i64, f64)]) {
    let id = store.series_id(host, key).unwrap();
    store
        .write_batch(BatchWrite {
            host: host.clone(),
            seq,
            points: points.iter().map(|&(t, v)| (id, t, v)).collect(),
        })
        .await
        .unwrap();
}

fn app(store: Store) -> axum::Router {
    http::router(state(store))
}

fn state(store: Store) -> AppState {
    AppState::new(
        store,
        &[TokenConfig {
            name: "t".into(),
            sha256: token_hash(TOKEN),
            role: Role::Read,
        }],
        Arc::new(Connections::default()),
    )
}

async fn get_text(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (s, text) = get_text(app, uri).await;
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn time_parameters_take_times_relative_to_now() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w): (Store, WriterHandle) = Store::open(&dir.path().join("t.redb")).unwrap();
    let web = hello(&store, "web-1").await;
    let now = now_ms();
    let two_hours_ago = now - 2 * 3_600_000;
    let half_hour_ago = now - 30 * MINUTE;
    write(
        &store,
        &web,
        1,
        SeriesKey::new("cpu_usage_ratio", &[("cpu", "total")]),
        &[(two_hours_ago, 0.2), (half_hour_ago, 0.4)],
    )
    .await;
    let app = app(store);
    let q = "/api/v1/query?host=web-1&name=cpu_usage_ratio";
    for (range, want) in [
        ("from=now-1h", json!([[half_hour_ago, 0.4]])),
        ("from=now-3h&to=now-1h", json!([[two_hours_ago, 0.2]])),
        (
            "from=now-1d&to=now",
            json!([[two_hours_ago, 0.2], [half_hour_ago, 0.4]]),
        ),
        ("from=now-150m&to=now-90m", json!([[two_hours_ago, 0.2]])),
        // `+` as sent unencoded arrives as a space, and still means later.
        (
            "from=now-1w&to=now+1h",
            json!([[two_hours_ago, 0.2], [half_hour_ago, 0.4]]),
        ),
        (
            "from=now-1w&to=now%2B1h",
            json!([[two_hours_ago, 0.2], [half_hour_ago, 0.4]]),
        ),
        ("from=now-7d&to=now-100m", json!([[two_hours_ago, 0.2]])),
        ("from=now-1h&to=now", json!([[half_hour_ago, 0.4]])),
    ] {
        let (s, body) = get(&app, &format!("{q}&{range}")).await;
        assert_eq!(s, StatusCode::OK, "{range}: {body}");
        assert_eq!(body["series"][0]["points"], want, "{range}");
    }
    // `from=now&to=now` is one instant, not a `from` a millisecond after `to`.
    let (s, body) = get(&app, &format!("{q}&from=now&to=now")).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    for bad in ["now-1y", "now-", "yesterday", "now/d", "now-99999999999w"] {
        let (s, body) = get(&app, &format!("{q}&from={}", enc(bad))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.starts_with("from="), "{bad}: {msg}");
        if bad != "now-99999999999w" {
            assert!(
                msg.contains("RFC 3339") && msg.contains("now-6h"),
                "{bad}: {msg}"
            );
        } else {
            assert!(msg.contains("1970 to 9999"), "{bad}: {msg}");
        }
    }

    // The other routes that take times read them the same way.
    for uri in [
        "/api/v1/availability?host=web-1&from=now-7d&to=now".to_owned(),
        "/prom/api/v1/query?query=cpu_usage_ratio&time=now-30m".to_owned(),
        "/prom/api/v1/query_range?query=cpu_usage_ratio&start=now-3h&end=now&step=60".to_owned(),
        "/prom/api/v1/series?match[]=cpu_usage_ratio&start=now-1d&end=now".to_owned(),
    ] {
        let (s, body) = get(&app, &uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {body}");
    }
    let (s, body) = get(
        &app,
        "/prom/api/v1/query?query=cpu_usage_ratio&time=now-30m",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["data"]["result"][0]["value"][1], "0.4", "{body}");
    let (s, body) = get(&app, "/prom/api/v1/query?query=cpu_usage_ratio&time=later").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"].as_str().unwrap().contains("now-6h"), "{body}");
}

#[tokio::test]
async fn percentiles_per_step_interpolate_linearly_between_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w) = Store::open(&dir.path().join("t.redb")).unwrap();
    let web = hello(&store, "web-1").await;
    // Two 10-minute buckets of known values, in shuffled order: 1..=10, then 10 and 20.
    let b0 = (now_ms() - 3_600_000).div_euclid(10 * MINUTE) * 10 * MINUTE;
    let b1 = b0 + 10 * MINUTE;
    let first = [7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0];
    let mut points: Vec<(i64, f64)> = first
        .iter()
        .enumerate()
        .map(|(i, v)| (b0 + i as i64 * 30_000, *v))
        .collect();
    points.extend([(b1 + 1_000, 20.0), (b1 + 2_000, 10.0)]);
    write(
        &store,
        &web,
        1,
        SeriesKey::new("http_latency_seconds", &[]),
        &points,
    )
    .await;
    let app = app(store);
    let q = format!(
        "/api/v1/query?host=web-1&name=http_latency_seconds&from={b0}&to={}&step=10m",
        b1 + 10 * MINUTE - 1
    );
    for (agg, p0, p1) in [
        ("p50", 5.5, 15.0),
        ("p90", 9.1, 19.0),
        ("p95", 9.55, 19.5),
        ("p99", 9.91, 19.9),
        ("p0", 1.0, 10.0),
        ("p100", 10.0, 20.0),
        ("p99.9", 9.991, 19.99),
        ("p25", 3.25, 12.5),
    ] {
        let (s, body) = get(&app, &format!("{q}&agg={agg}")).await;
        assert_eq!(s, StatusCode::OK, "{agg}: {body}");
        assert_eq!(body["agg"], agg);
        assert_eq!(body["resolution"], "raw");
        assert_eq!(body["step_ms"], 10 * MINUTE);
        let got = body["series"][0]["points"].as_array().unwrap();
        assert_eq!(got.len(), 2, "{agg}: {body}");
        assert_eq!(got[0][0], b0);
        assert_eq!(got[1][0], b1);
        for (point, want) in got.iter().zip([p0, p1]) {
            let v = point[1].as_f64().unwrap();
            assert!((v - want).abs() < 1e-9, "{agg}: {v} != {want}");
        }
    }
    // The stored aggregates still answer as before.
    let (_, body) = get(&app, &format!("{q}&agg=max")).await;
    assert_eq!(body["series"][0]["points"], json!([[b0, 10.0], [b1, 20.0]]));
    for bad in ["p101", "p", "p-1", "pNaN", "p1e1", "p9.", "median", "p50%"] {
        let (s, body) = get(&app, &format!("{q}&agg={}", enc(bad))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("p99"),
            "{bad}: {body}"
        );
    }
    let (s, body) = get(
        &app,
        "/api/v1/query?host=web-1&name=http_latency_seconds&agg=p95",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("step"), "{body}");
    // Percentiles read raw points, so the range is bounded as a raw query's.
    let (s, body) = get(
        &app,
        "/api/v1/query?host=web-1&name=http_latency_seconds&from=now-60d&step=1d&agg=p99",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("31 days"),
        "{body}"
    );
    let (s, body) = get(&app, &format!("{q}&agg=p50&max_points=1")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("max_points"),
        "{body}"
    );
}

async fn three_hosts(dir: &std::path::Path) -> (Store, WriterHandle) {
    let (store, w) = Store::open(&dir.join("t.redb")).unwrap();
    let t = now_ms() - MINUTE;
    for (i, host) in ["web-2", "db-1", "web-1"].into_iter().enumerate() {
        let id = hello(&store, host).await;
        let seq = 10 * i as u64 + 1;
        for (j, (name, labels)) in [
            ("cpu_usage_ratio", vec![("cpu", "total")]),
            ("cpu_usage_ratio", vec![("cpu", "0")]),
            ("memory_available_bytes", vec![]),
        ]
        .into_iter()
        .enumerate()
        {
            write(
                &store,
                &id,
                seq + j as u64,
                SeriesKey::new(name, &labels),
                &[(t, 1.0)],
            )
            .await;
        }
    }
    (store, w)
}

fn listed(body: &Value) -> Vec<String> {
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s["host"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["labels"]
            )
        })
        .collect()
}

#[tokio::test]
async fn series_are_listed_across_hosts_by_selector() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w) = three_hosts(dir.path()).await;
    let app = app(store);
    let sel = enc(r#"cpu_usage_ratio{host=~"web.*"}"#);
    let (s, body) = get(&app, &format!("/api/v1/series?match={sel}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        listed(&body),
        [
            r#"web-1 cpu_usage_ratio {"cpu":"0"}"#,
            r#"web-1 cpu_usage_ratio {"cpu":"total"}"#,
            r#"web-2 cpu_usage_ratio {"cpu":"0"}"#,
            r#"web-2 cpu_usage_ratio {"cpu":"total"}"#,
        ]
    );
    assert_eq!(body["truncated"], false);
    assert_eq!(body["limit"], 1000);

    // Repeated match parameters: a series matching any is listed once.
    let (_, body) = get(
        &app,
        &format!(
            "/api/v1/series?match={}&match={}&match={}",
            enc(r#"cpu_usage_ratio{cpu="total"}"#),
            enc("memory_available_bytes"),
            enc(r#"{__name__=~"cpu.*",cpu="total",host="db-1"}"#),
        ),
    )
    .await;
    assert_eq!(
        listed(&body),
        [
            r#"db-1 cpu_usage_ratio {"cpu":"total"}"#,
            "db-1 memory_available_bytes {}",
            r#"web-1 cpu_usage_ratio {"cpu":"total"}"#,
            "web-1 memory_available_bytes {}",
            r#"web-2 cpu_usage_ratio {"cpu":"total"}"#,
            "web-2 memory_available_bytes {}",
        ]
    );

    // Bounded: the first `limit` in order, and a flag saying there are more.
    let (_, body) = get(&app, &format!("/api/v1/series?match={sel}&limit=3")).await;
    assert_eq!(listed(&body).len(), 3);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["limit"], 3);
    let (_, body) = get(&app, &format!("/api/v1/series?match={sel}&limit=4")).await;
    assert_eq!(body["truncated"], false);

    // `host` narrows a match to one host.
    let (_, body) = get(
        &app,
        "/api/v1/series?match=memory_available_bytes&host=web-2",
    )
    .await;
    assert_eq!(listed(&body), ["web-2 memory_available_bytes {}"]);

    // Without match, host alone lists that host's series as before.
    let (s, body) = get(&app, "/api/v1/series?host=db-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["series"].as_array().unwrap().len(), 3);
    assert!(body["series"][0].get("host").is_none());

    // The listing's shape is in the OpenAPI document.
    let (_, doc) = get(&app, "/openapi.json").await;
    let schema = &doc["components"]["schemas"]["SeriesList"];
    assert!(schema["properties"]["truncated"].is_object(), "{schema}");
    assert!(
        doc["components"]["schemas"]["SeriesEntry"]["properties"]["host"].is_object(),
        "{doc}"
    );

    for (uri, status, says) in [
        (
            "/api/v1/series".to_owned(),
            StatusCode::BAD_REQUEST,
            "match=",
        ),
        (
            format!("/api/v1/series?match={}", enc("avg_over_time(x[5m])")),
            StatusCode::BAD_REQUEST,
            "series selector",
        ),
        (
            format!("/api/v1/series?match={}", enc("{}")),
            StatusCode::BAD_REQUEST,
            "non-empty matcher",
        ),
        (
            format!("/api/v1/series?match={}", enc(r#"x{a=~"("}"#)),
            StatusCode::BAD_REQUEST,
            "regular expression",
        ),
        (
            format!("/api/v1/series?match={sel}&limit=0"),
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            format!("/api/v1/series?match={sel}&limit=10001"),
            StatusCode::BAD_REQUEST,
            "10000",
        ),
        (
            format!("/api/v1/series?match={sel}&hots=web-1"),
            StatusCode::BAD_REQUEST,
            "unknown parameter",
        ),
        (
            format!("/api/v1/series?match={sel}&host=ghost"),
            StatusCode::NOT_FOUND,
            "ghost",
        ),
    ] {
        let (s, body) = get(&app, &uri).await;
        assert_eq!(s, status, "{uri}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{uri}: {body}"
        );
    }
}

#[tokio::test]
async fn series_matching_shares_the_query_cost_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w) = three_hosts(dir.path()).await;
    let mut limits = nines_aggregator::http::prom::limits::QueryLimits::default();
    limits.parse.max_matchers = 3;
    limits.parse.max_regex_bytes = 8;
    let app = http::router(state(store).with_query_limits(limits));
    // Two matchers each: within the cap alone, over it together.
    let one = enc(r#"cpu_usage_ratio{cpu="0"}"#);
    let (s, body) = get(&app, &format!("/api/v1/series?match={one}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = get(&app, &format!("/api/v1/series?match={one}&match={one}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("label matchers"),
        "{body}"
    );
    let long = enc(r#"cpu_usage_ratio{host=~"web-1|web-2"}"#);
    let (s, body) = get(&app, &format!("/api/v1/series?match={long}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("8 bytes"),
        "{body}"
    );
}

/// The value of the sample line that starts with `prefix` (name and labels, then a space).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_time_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w) = three_hosts(dir.path()).await;
    let commits = store
        .stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(commits >= 9, "{commits}");
    let app = app(store);
    for host in ["web-1", "web-2", "db-1"] {
        let (s, _) = get(&app, &format!("/api/v1/hosts/{host}")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = get(&app, "/api/v1/hosts/ghost").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&app, "/no/such/path/1234").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let unauthorized = Request::builder()
        .uri("/api/v1/hosts")
        .body(Body::empty())
        .unwrap();
    let r = app.clone().oneshot(unauthorized).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (s, text) = get_text(&app, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let hosts = r#"nines_http_requests_total{route="/api/v1/hosts/{host}",method="GET""#;
    assert_eq!(
        sample(&text, &format!(r#"{hosts},code="200"}}"#)),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!(r#"{hosts},code="404"}}"#)),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"nines_http_requests_total{route="/api/v1/hosts",method="GET",code="401"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"nines_http_requests_total{route="unmatched",method="GET",code="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // Raw paths never become label values.
    assert!(
        !text.contains(r#"route="/api/v1/hosts/web-1""#) && !text.contains(r#"route="/no/such"#),
        "{text}"
    );
    let h = r#"nines_http_request_duration_seconds_count{route="/api/v1/hosts/{host}"}"#;
    assert_eq!(sample(&text, h), Some(4.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"nines_http_request_duration_seconds_bucket{route="/api/v1/hosts/{host}",le="+Inf"}"#
        ),
        Some(4.0),
        "{text}"
    );
    assert!(text.contains("# TYPE nines_http_request_duration_seconds histogram"));

    // Every commit is in the commit latency histogram.
    assert!(text.contains("# TYPE nines_store_commit_duration_seconds histogram"));
    let inf = sample(
        &text,
        r#"nines_store_commit_duration_seconds_bucket{le="+Inf"}"#,
    )
    .unwrap();
    assert_eq!(
        sample(&text, "nines_store_commit_duration_seconds_count"),
        Some(inf)
    );
    assert!(inf >= commits as f64, "{inf} < {commits}");
    assert!(sample(&text, "nines_store_commit_duration_seconds_sum").unwrap() > 0.0);

    // The process, as Prometheus' client libraries show it.
    let rss = sample(&text, "process_resident_memory_bytes").unwrap();
    assert!(rss > 1e6, "{rss}");
    assert!(sample(&text, "process_virtual_memory_bytes").unwrap() >= rss);
    assert!(sample(&text, "process_open_fds").unwrap() >= 3.0);
    assert!(
        sample(&text, "process_max_fds").unwrap() >= sample(&text, "process_open_fds").unwrap()
    );
    let started = sample(&text, "process_start_time_seconds").unwrap();
    let now = now_ms() as f64 / 1000.0;
    assert!(
        started <= now + 1.0 && started > now - 24.0 * 3600.0,
        "{started} vs {now}"
    );
    assert!(sample(&text, "process_cpu_seconds_total").unwrap() > 0.0);

    // The scrape itself is counted in the next one.
    let (_, text) = get_text(&app, "/metrics").await;
    assert_eq!(
        sample(
            &text,
            r#"nines_http_requests_total{route="/metrics",method="GET",code="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
