//! The alert endpoints through `router(state).oneshot(..)`: active alerts, history, rules,
//! silences, and the roles writes need.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use nines_aggregator::alerts::{Alerting, Rules};
use nines_aggregator::config::{Role, TokenConfig};
use nines_aggregator::http::{self, AppState, token_hash};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::{HelloWrite, Store};
use nines_common::HostId;
use nines_common::model::now_ms;
use nines_common::proto::Hello;
use serde_json::{Value, json};
use tower::ServiceExt;

const READ: &str = "read-token";
const ADMIN: &str = "admin-token";

const RULES: &str = r#"
evaluation_interval = "1s"
[[notifiers]]
name = "ops"
webhook = { url = "http://127.0.0.1:9/hook" }
[[rules]]
name = "HostDown"
kind = "host_down"
severity = "critical"
notify = ["ops"]
summary = "{{host}} is silent"
runbook = "https://runbooks/host-down"
"#;

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_silences_history_and_rules_with_roles() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = Store::open(&dir.path().join("nines.redb")).unwrap();
    store
        .hello(HelloWrite {
            host: HostId::new("web1").unwrap(),
            hello: Hello {
                protocol: 1,
                agent_version: "t".into(),
                host_id: "web1".into(),
                boot_id: "b".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                kernel: "6".into(),
                interval_ms: 10_000,
            },
            now_ms: now_ms() - 600_000,
        })
        .await
        .unwrap();
    let rules = Rules::parse(RULES, Path::new("alerts.toml")).unwrap();
    let alerting = Alerting::open(store.clone(), Vec::new(), rules, None, String::new()).unwrap();
    let a = alerting.clone();
    tokio::task::spawn_blocking(move || a.tick(now_ms()).unwrap())
        .await
        .unwrap();
    let tokens = [(READ, Role::Read), (ADMIN, Role::Admin)].map(|(t, role)| TokenConfig {
        name: format!("{role:?}").to_lowercase(),
        sha256: token_hash(t),
        role,
    });
    let app = http::router(
        AppState::new(store.clone(), &tokens, Arc::new(Connections::default()))
            .with_alerts(alerting.clone()),
    );

    let (s, _) = call(&app, Method::GET, "/api/v1/alerts", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(&app, Method::GET, "/api/v1/alerts", Some(READ), None).await;
    assert_eq!(s, StatusCode::OK);
    let alert = &v["alerts"][0];
    assert_eq!(alert["alertname"], "HostDown");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["labels"]["host"], "web1");
    assert!(alert["since"].as_str().unwrap().ends_with('Z'), "{alert}");
    assert!(alert["value"].as_f64().unwrap() >= 600.0, "{alert}");
    assert_eq!(alert["muted"], Value::Null);

    // Silences: admin only, validated, and they mute.
    let body = json!({
        "matchers": [{"name": "host", "value": "web.*", "isRegex": true}],
        "endsAt": "2099-01-01T00:00:00Z",
        "comment": "rack move",
    })
    .to_string();
    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/silences",
        Some(READ),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/silences",
        Some(ADMIN),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["createdBy"], "admin");
    assert_eq!(v["status"]["state"], "active");
    let id = v["id"].as_str().unwrap().to_owned();
    let bad = json!({"matchers": [{"name": "host", "value": "(", "isRegex": true}], "endsAt": "2099-01-01T00:00:00Z", "comment": "x"}).to_string();
    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/silences",
        Some(ADMIN),
        Some(&bad),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("regex"), "{v}");
    let (s, v) = call(
        &app,
        Method::POST,
        "/api/v1/silences",
        Some(ADMIN),
        Some("{\"matchers\": 1}"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, v) = call(&app, Method::GET, "/api/v1/alerts", Some(READ), None).await;
    assert_eq!(
        v["alerts"][0]["muted"],
        json!({"by": "silence", "id": id.parse::<u64>().unwrap()})
    );
    let (_, v) = call(&app, Method::GET, "/api/v1/silences", Some(READ), None).await;
    assert_eq!(v["silences"].as_array().unwrap().len(), 1);
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/silences/{id}"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/silences/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"]["state"], "expired");
    let (s, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/silences/999",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = call(&app, Method::GET, "/api/v1/alerts", Some(READ), None).await;
    assert_eq!(v["alerts"][0]["muted"], Value::Null);

    // History, rules.
    let (s, v) = call(
        &app,
        Method::GET,
        "/api/v1/alerts/history",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["transitions"][0]["from"], "inactive");
    assert_eq!(v["transitions"][0]["to"], "firing");
    let (s, v) = call(
        &app,
        Method::GET,
        "/api/v1/alerts/history?limit=0",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, v) = call(&app, Method::GET, "/api/v1/alerts/rules", Some(READ), None).await;
    assert_eq!(v["rules"][0]["name"], "HostDown");
    assert_eq!(v["rules"][0]["condition"], "no samples for 3 intervals");
    assert_eq!(v["rules"][0]["runbook"], "https://runbooks/host-down");
    assert_eq!(v["reload_error"], Value::Null);

    drop(app);
    drop(alerting);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}
