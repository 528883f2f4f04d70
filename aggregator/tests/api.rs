//! The HTTP API through `router(state).oneshot(..)`, plus one real socket.
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
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "s3cret-read-token";

async fn fixture(dir: &std::path::Path) -> (Store, WriterHandle, i64) {
    let (store, writer) = Store::open(&dir.join("api.redb")).unwrap();
    let host = HostId::new("web-1").unwrap();
    let mut hello = nines_common::proto::Hello {
        protocol: 1,
        agent_version: "0.1.0".into(),
        host_id: "web-1".into(),
        boot_id: "b".into(),
        os: "Debian GNU/Linux 12 (bookworm)".into(),
        arch: "aarch64".into(),
        kernel: "6.1.0".into(),
        interval_ms: 10_000,
    };
    store
        .hello(HelloWrite {
            host: host.clone(),
            hello: hello.clone(),
            now_ms: now_ms(),
        })
        .await
        .unwrap();
    let now = now_ms() / 10_000 * 10_000;
    let cpu = |c: &str| SeriesKey::new("cpu_usage_ratio", &[("cpu", c)]);
    let total = store.series_id(&host, cpu("total")).unwrap();
    let cpu0 = store.series_id(&host, cpu("0")).unwrap();
    store
        .write_batch(BatchWrite {
            host: host.clone(),
            seq: 1,
            points: vec![
                (total, now - 20_000, 0.25),
                (total, now - 10_000, 0.5),
                (cpu0, now - 10_000, 0.75),
            ],
        })
        .await
        .unwrap();
    // A second host that stopped sending long ago.
    hello.host_id = "old-1".into();
    let old = HostId::new("old-1").unwrap();
    store
        .hello(HelloWrite {
            host: old.clone(),
            hello,
            now_ms: 1_000,
        })
        .await
        .unwrap();
    let old_total = store.series_id(&old, cpu("total")).unwrap();
    store
        .write_batch(BatchWrite {
            host: old,
            seq: 5,
            points: vec![(old_total, 1_000, 0.1)],
        })
        .await
        .unwrap();
    (store, writer, now)
}

fn app(store: Store) -> axum::Router {
    http::router(AppState::new(
        store,
        &[TokenConfig {
            name: "t".into(),
            sha256: token_hash(TOKEN),
            role: Role::Read,
        }],
        Arc::new(Connections::default()),
    ))
}

async fn get(app: &axum::Router, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn tokens_are_required_except_on_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, _) = fixture(dir.path()).await;
    let app = app(store);
    let (s, body) = get(&app, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (s, body) = get(&app, "/api/v1/hosts", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("bearer"));
    let (s, _) = get(&app, "/api/v1/hosts", Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = get(&app, "/api/v1/hosts", Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(&app, "/api/v1/nothing", Some(TOKEN)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hosts_show_identity_and_up_or_down_by_sample_time() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, now) = fixture(dir.path()).await;
    let app = app(store);
    let (_, body) = get(&app, "/api/v1/hosts", Some(TOKEN)).await;
    let hosts = body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let old = &hosts[0];
    let web = &hosts[1];
    assert_eq!(web["id"], "web-1");
    assert_eq!(web["up"], true);
    assert_eq!(web["arch"], "aarch64");
    assert_eq!(web["os"], "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(web["agent_version"], "0.1.0");
    assert_eq!(web["boot_id"], "b");
    assert_eq!(web["last_seen_ms"], now - 10_000);
    assert!(web["last_seen"].as_str().unwrap().ends_with('Z'), "UTC");
    assert_eq!(old["id"], "old-1");
    assert_eq!(old["up"], false);
    let (s, one) = get(&app, "/api/v1/hosts/web-1", Some(TOKEN)).await;
    assert_eq!((s, &one["id"]), (StatusCode::OK, &Value::from("web-1")));
    let (s, _) = get(&app, "/api/v1/hosts/nope", Some(TOKEN)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn series_and_query_return_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, now) = fixture(dir.path()).await;
    let app = app(store);
    let (s, body) = get(&app, "/api/v1/series?host=web-1", Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert!(series.iter().all(|s| s["name"] == "cpu_usage_ratio"));

    let (s, body) = get(
        &app,
        "/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total",
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["labels"]["cpu"], "total");
    assert_eq!(
        series[0]["points"],
        serde_json::json!([[now - 20_000, 0.25], [now - 10_000, 0.5]])
    );

    // from/to narrow the range; RFC 3339 works as well as milliseconds.
    let from = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis((now - 15_000) as u64),
    );
    let (_, body) = get(
        &app,
        &format!("/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&from={from}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        body["series"][0]["points"],
        serde_json::json!([[now - 10_000, 0.5]])
    );

    // Without a label filter every matching series comes back.
    let (_, body) = get(
        &app,
        "/api/v1/query?host=web-1&name=cpu_usage_ratio",
        Some(TOKEN),
    )
    .await;
    assert_eq!(body["series"].as_array().unwrap().len(), 2);
    assert_eq!(body["resolution"], "raw");

    // A step aggregates per bucket: the two points of cpu=total fall in one 1 min bucket
    // (the fixture's timestamps are 10 s apart and sit on a 10 s boundary, so only when
    // `now` is in the first 10 s of a minute do they straddle two).
    let minute = |t: i64| t.div_euclid(60_000) * 60_000;
    for (agg, value) in [
        ("max", 0.5),
        ("min", 0.25),
        ("sum", 0.75),
        ("count", 2.0),
        ("last", 0.5),
    ] {
        let (s, body) = get(
            &app,
            &format!(
                "/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&from={}&step=1m&agg={agg}",
                now - 20_000
            ),
            Some(TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["resolution"], "1m");
        assert_eq!(body["step_ms"], 60_000);
        assert_eq!(body["agg"], agg);
        let points = body["series"][0]["points"].as_array().unwrap().clone();
        if minute(now - 20_000) == minute(now - 10_000) {
            assert_eq!(
                points,
                vec![serde_json::json!([minute(now - 20_000), value])],
                "{agg}"
            );
        } else {
            assert_eq!(points.len(), 2, "{agg}");
        }
    }
    // A step of whole hours reads the 1 h rollups; avg is the default.
    let (_, body) = get(
        &app,
        "/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&step=1h",
        Some(TOKEN),
    )
    .await;
    assert_eq!(body["resolution"], "1h");
    assert_eq!(body["agg"], "avg");
}

#[tokio::test]
async fn bad_queries_get_400_and_unknown_hosts_404() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, _) = fixture(dir.path()).await;
    let app = app(store);
    for (uri, status) in [
        ("/api/v1/series", StatusCode::BAD_REQUEST),
        ("/api/v1/series?host=ghost", StatusCode::NOT_FOUND),
        ("/api/v1/query?host=web-1", StatusCode::BAD_REQUEST),
        (
            "/api/v1/query?host=web-1&name=x&from=yesterday",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&label=nolabel",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&from=2000&to=1000",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&colour=red",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&step=soon",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&step=1m&agg=median",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&agg=max",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&max_points=0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query?host=web-1&name=x&from=0&to=86400000000",
            StatusCode::BAD_REQUEST,
        ),
        // One point per second for 30 days: 2.6 M points, over the default bound.
        (
            "/api/v1/query?host=web-1&name=cpu_usage_ratio&label=cpu=total&from=0&to=2592000000&step=1s",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, body) = get(&app, uri, Some(TOKEN)).await;
        assert_eq!(s, status, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
}

#[tokio::test]
async fn the_api_answers_on_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, _) = fixture(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(store)).await });
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!("GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("application/json"), "{resp}");
    assert!(resp.contains("\"web-1\""), "{resp}");
}
