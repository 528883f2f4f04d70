//! The availability endpoints through `router(state).oneshot(..)`: reports, incidents,
//! maintenance, and the roles writes need.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use nines_aggregator::availability::config::ServiceConfig;
use nines_aggregator::config::{Role, TokenConfig};
use nines_aggregator::http::{self, AppState, token_hash};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::Store;
use nines_common::model::now_ms;
use serde_json::{Value, json};
use tower::ServiceExt;

const READ: &str = "read-token";
const ADMIN: &str = "admin-token";
const MIN: i64 = 60_000;

fn app(store: Store) -> axum::Router {
    let tokens = [(READ, Role::Read), (ADMIN, Role::Admin)].map(|(t, role)| TokenConfig {
        name: format!("{role:?}").to_lowercase(),
        sha256: token_hash(t),
        role,
    });
    let shop: ServiceConfig = toml::from_str("name = \"shop\"\ntarget_percent = 99.9\n").unwrap();
    http::router(
        AppState::new(store, &tokens, Arc::new(Connections::default())).with_services(vec![shop]),
    )
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
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

#[tokio::test]
async fn a_manual_incident_costs_its_weighted_minutes_until_marked_not_customer_impacting() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer) = Store::open(&dir.path().join("a.redb")).unwrap();
    let app = app(store);
    // A whole 24x7 week that is over.
    let to = now_ms() / MIN * MIN - 7 * 1440 * MIN;
    let from = to - 7 * 1440 * MIN;
    let report = format!("/api/v1/availability?service=shop&from={from}&to={to}");

    let (s, _) = call(&app, Method::GET, &report, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let incident = json!({"service": "shop", "title": "checkout down",
        "start": from + 3000 * MIN, "end": from + 3060 * MIN});
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/incidents",
        Some(READ),
        Some(incident.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/incidents",
        Some(ADMIN),
        Some(incident),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["id"], "m1");

    let (s, b) = call(&app, Method::GET, &report, Some(READ), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let shop = &b["services"][0];
    assert_eq!(shop["scheduled_minutes"], 10080.0);
    assert_eq!(shop["downtime_minutes"], 60.0);
    assert_eq!(shop["availability_percent"], 99.404762);
    assert_eq!(shop["met"], false);
    assert_eq!(shop["error_budget_minutes_left"], -49.92);
    assert_eq!(shop["incidents"][0]["lost_minutes"], 60.0);
    assert_eq!(shop["without_root_cause"], json!(["m1"]));
    assert_eq!(b["total"]["met"], false);

    // A tenth of the users, a fifth of their work: 1.2 minutes.
    let partial = json!({"service": "shop", "title": "eu slow", "share": 0.1, "impact": 0.2,
        "start": from + 5000 * MIN, "end": from + 5060 * MIN});
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/incidents",
        Some(ADMIN),
        Some(partial),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, b) = call(
        &app,
        Method::PATCH,
        "/api/v1/incidents/m1",
        Some(ADMIN),
        Some(json!({"customer_impacting": false})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = call(
        &app,
        Method::PATCH,
        "/api/v1/incidents/m1",
        Some(ADMIN),
        Some(
            json!({"customer_impacting": false, "reason": "internal tool only",
            "root_cause": "expired certificate", "acknowledged": true}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["history"].as_array().unwrap().len(), 2);
    assert!(
        b["history"][1]["what"]
            .as_str()
            .unwrap()
            .contains("internal tool only")
    );

    let (_, b) = call(&app, Method::GET, &report, Some(READ), None).await;
    let shop = &b["services"][0];
    assert_eq!(shop["downtime_minutes"], 1.2);
    assert_eq!(shop["met"], true);
    // Top talkers: the partial incident now costs the most.
    assert_eq!(shop["incidents"][0]["id"], "m2");
    assert_eq!(shop["without_root_cause"], json!(["m2"]));

    // A maintenance window of two hours comes out of scheduled time.
    let mw = json!({"services": ["shop"], "title": "upgrade", "kind": "once",
        "start": from + 100 * MIN, "end": from + 220 * MIN});
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/maintenance",
        Some(READ),
        Some(mw.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/maintenance",
        Some(ADMIN),
        Some(mw),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, b) = call(&app, Method::GET, &report, Some(READ), None).await;
    assert_eq!(b["services"][0]["scheduled_minutes"], 9960.0);
    assert_eq!(b["services"][0]["maintenance_minutes"], 120.0);

    let (s, _) = call(
        &app,
        Method::GET,
        "/api/v1/availability?service=nope",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
