//! `/api/v1/forecast` and `/api/v1/capacity` on a real store with data whose answers are known.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nines_aggregator::config::{Role, TokenConfig};
use nines_aggregator::http::{self, AppState, token_hash};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::{BatchWrite, HelloWrite, Store};
use nines_common::model::now_ms;
use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};
use serde_json::Value;
use tower::ServiceExt;

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, "Bearer t")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn write(store: &Store, host: &HostId, key: SeriesKey, points: &[(i64, f64)], seq: u64) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_and_capacity_give_the_known_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = Store::open(&dir.path().join("nines.redb")).unwrap();
    let host = HostId::new("db-1").unwrap();
    store
        .hello(HelloWrite {
            host: host.clone(),
            hello: Hello {
                protocol: 1,
                agent_version: "t".into(),
                host_id: "db-1".into(),
                boot_id: "b".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                kernel: "6".into(),
                interval_ms: 60_000,
            },
            now_ms: now_ms() - 86_400_000,
        })
        .await
        .unwrap();
    // To a whole hour, 5 h back: "/" fills 1 %/h from 50 %, every 10 minutes.
    let to = now_ms() / 3_600_000 * 3_600_000;
    let fs: Vec<(i64, f64)> = (0..=30)
        .map(|i| {
            (
                to - 5 * 3_600_000 + i * 600_000,
                0.5 + 0.01 * i as f64 / 6.0,
            )
        })
        .collect();
    write(
        &store,
        &host,
        SeriesKey::new("filesystem_used_ratio", &[("mount", "/")]),
        &fs,
        1,
    )
    .await;
    // A day of a business metric and the CPU it costs: cpu = 0.1 + 0.002 × tps, each minute.
    let day: Vec<i64> = (0..1440).map(|i| to - 86_400_000 + i * 60_000).collect();
    let tps: Vec<(i64, f64)> = day
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, 100.0 + 50.0 * (i as f64 / 90.0).sin()))
        .collect();
    let cpu: Vec<(i64, f64)> = tps.iter().map(|&(t, x)| (t, 0.1 + 0.002 * x)).collect();
    write(&store, &host, SeriesKey::new("shop_tps", &[]), &tps, 2).await;
    write(
        &store,
        &host,
        SeriesKey::new("cpu_usage_ratio", &[("cpu", "total")]),
        &cpu,
        3,
    )
    .await;
    write(
        &store,
        &host,
        SeriesKey::new("cpu_usage_ratio", &[("cpu", "0")]),
        &cpu,
        4,
    )
    .await;

    let tokens = [TokenConfig {
        name: "r".into(),
        sha256: token_hash("t"),
        role: Role::Read,
    }];
    let app = http::router(AppState::new(
        store.clone(),
        &tokens,
        Arc::new(Connections::default()),
    ));

    // Forecast: slope 1 %/h, r² 1, 0.9 reached 35 h after `to` (at 0.55 then).
    let (s, v) = get(
        &app,
        &format!("/api/v1/forecast?host=db-1&name=filesystem_used_ratio&label=mount=/&window=6h&horizon=2d&threshold=0.9&to={to}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let f = &v["series"][0];
    assert!(
        (f["slope_per_hour"].as_f64().unwrap() - 0.01).abs() < 1e-9,
        "{f}"
    );
    assert!((f["fit"]["r2"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{f}");
    assert!((f["latest"].as_f64().unwrap() - 0.55).abs() < 1e-9, "{f}");
    // The line reaches 1.03 in 2 days; a ratio stops at 1, and so does its interval.
    assert_eq!(f["status"], "ok");
    assert_eq!(f["predicted"], 1.0, "{f}");
    assert_eq!(
        (f["predicted_low"].as_f64(), f["predicted_high"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert!(f["fit"]["residual_sd"].as_f64().unwrap() < 1e-6, "{f}");
    let reached = humantime::parse_rfc3339(f["threshold_reached_at"].as_str().unwrap()).unwrap();
    let reached_ms = reached
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((reached_ms - (to + 35 * 3_600_000)).abs() <= 1, "{f}");
    assert_eq!(f["within_horizon"], true);
    // Three minutes of a fast-rising ratio (25 points) against a 1 h window: the finding was
    // a prediction of 182.85 and a threshold date; now no forecast, and why.
    let short: Vec<(i64, f64)> = (0..25)
        .map(|i| (to - 240_000 + i * 10_000, 0.3 + 0.01 * i as f64))
        .collect();
    write(
        &store,
        &host,
        SeriesKey::new("memory_used_ratio", &[]),
        &short,
        5,
    )
    .await;
    let (s, v) = get(
        &app,
        &format!("/api/v1/forecast?host=db-1&name=memory_used_ratio&window=1h&horizon=2d&threshold=0.9&to={to}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = &v["series"][0];
    assert_eq!(m["status"], "insufficient_data", "{m}");
    assert_eq!(m["fit"], Value::Null);
    assert!(
        m.get("threshold_reached_at").is_none() && m.get("predicted").is_none(),
        "{m}"
    );
    assert!(
        m["why"].as_str().unwrap().contains("25 points over 240 s"),
        "{m}"
    );
    // Noise around a flat 0.5 with a slight upward drift over 6 h: the line heads for 0.9,
    // but the interval does not support a date.
    let noisy: Vec<(i64, f64)> = (0..=36)
        .map(|i| {
            let wobble = if i % 2 == 0 { 0.15 } else { -0.15 };
            (
                to - 6 * 3_600_000 + i * 600_000,
                0.5 + 0.0005 * i as f64 + wobble,
            )
        })
        .collect();
    write(
        &store,
        &host,
        SeriesKey::new("swap_used_ratio", &[]),
        &noisy,
        6,
    )
    .await;
    let (_, v) = get(
        &app,
        &format!("/api/v1/forecast?host=db-1&name=swap_used_ratio&window=6h&horizon=2d&threshold=0.9&to={to}"),
    )
    .await;
    let n = &v["series"][0];
    assert_eq!(n["status"], "ok", "{n}");
    assert!(n["predicted_low"].as_f64().unwrap() < 0.9, "{n}");
    assert_eq!(n["threshold_reached_at"], Value::Null, "{n}");
    assert_eq!(n["within_horizon"], false, "{n}");
    // Every host when none is named; a bad duration is a 400; an unknown host a 404.
    let (_, all) = get(
        &app,
        &format!("/api/v1/forecast?name=filesystem_used_ratio&window=6h&to={to}"),
    )
    .await;
    assert_eq!(all["series"].as_array().unwrap().len(), 1);
    let (s, _) = get(&app, "/api/v1/forecast?name=x&window=forever").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get(&app, "/api/v1/forecast?name=x&host=nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Capacity: the exact line back, and CPU at 1.5 × the mean and the peak load.
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let cap = |kpi: &str, driver: &str| {
        format!(
            "/api/v1/capacity?kpi={}&driver={}&from={}&to={to}&growth=50",
            enc(kpi),
            enc(driver),
            to - 86_400_000
        )
    };
    let kpi = "cpu_usage_ratio{host=\"db-1\",cpu=\"total\"}";
    let driver = "shop_tps{host=\"db-1\"}";
    let (s, c) = get(&app, &cap(kpi, driver)).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert!(
        (c["fit"]["slope"].as_f64().unwrap() - 0.002).abs() < 1e-9,
        "{c}"
    );
    assert!(
        (c["fit"]["intercept"].as_f64().unwrap() - 0.1).abs() < 1e-7,
        "{c}"
    );
    assert!((c["fit"]["r2"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{c}");
    let mean = c["driver"]["mean"].as_f64().unwrap();
    let peak = c["driver"]["peak"].as_f64().unwrap();
    assert!(
        (c["predicted_kpi_at_mean"].as_f64().unwrap() - (0.1 + 0.002 * 1.5 * mean)).abs() < 1e-7,
        "{c}"
    );
    assert!(
        (c["predicted_kpi_at_peak"].as_f64().unwrap() - (0.1 + 0.002 * 1.5 * peak)).abs() < 1e-7,
        "{c}"
    );
    // A selector matching two series, one matching none, one without a host.
    let (s, e) = get(&app, &cap(&kpi.replace(",cpu=\"total\"", ""), driver)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e["error"].as_str().unwrap().contains("matches 2 series"),
        "{e}"
    );
    let (s, _) = get(&app, &cap(kpi, "shop_orders{host=\"db-1\"}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&app, "/api/v1/capacity?kpi=cpu_usage_ratio&driver=shop_tps").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    drop(app);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}
