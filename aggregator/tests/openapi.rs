//! `/openapi.json` describes every `/api/v1` route: the routes registered in the router's
//! source are each in the document, and each operation in the document is answered by the
//! router (not its 404 fallback, not 405).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nines_aggregator::config::{Role, TokenConfig};
use nines_aggregator::http::{self, AppState, token_hash};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::Store;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "admin-token";

/// Every `(method, path)` registered with `.route(path, get(..).post(..))` in the API's
/// route modules.
fn registered() -> BTreeSet<(String, String)> {
    let sources = [
        include_str!("../src/http/mod.rs"),
        include_str!("../src/http/alerts.rs"),
        include_str!("../src/http/availability.rs"),
        include_str!("../src/http/forecast.rs"),
        include_str!("../src/http/prom/api.rs"),
    ];
    let route = regex::Regex::new(
        r#"\.route\(\s*"([^"]+)",\s*((?:[a-z_]+\([^()]*(?:\([^()]*\))?[^()]*\)\.?\s*)+)"#,
    )
    .unwrap();
    let method = regex::Regex::new(r"\b(get|post|patch|delete|put)\(").unwrap();
    let mut out = BTreeSet::new();
    for src in sources {
        for c in route.captures_iter(src) {
            for m in method.captures_iter(&c[2]) {
                out.insert((m[1].to_owned(), c[1].to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_api_v1_route_is_in_the_openapi_document_and_every_operation_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w) = Store::open(&dir.path().join("o.redb")).unwrap();
    let app = http::router(AppState::new(
        store,
        &[TokenConfig {
            name: "admin".into(),
            sha256: token_hash(TOKEN),
            role: Role::Admin,
        }],
        Arc::new(Connections::default()),
    ));
    let resp = app
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let routes = registered();
    let api: Vec<_> = routes
        .iter()
        .filter(|(_, p)| p.starts_with("/api/v1/") || p == "/healthz")
        .collect();
    assert!(api.len() >= 19, "the route scan found too few: {routes:?}");
    assert!(
        routes.iter().any(|(_, p)| p.starts_with("/prom/")),
        "scan sees the prom routes"
    );
    for (m, p) in &api {
        assert!(
            doc["paths"][p.as_str()][m.as_str()].is_object(),
            "{} {p} is routed but not in /openapi.json",
            m.to_uppercase()
        );
    }

    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            assert!(
                api.iter().any(|(m, p)| m == method && p == path),
                "{method} {path} is documented but not routed"
            );
            let uri = path.replace("{host}", "web-1").replace("{id}", "1");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED
                    && !String::from_utf8_lossy(&body).contains("no such endpoint"),
                "{method} {uri}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    assert_eq!(documented, api.len());
}
