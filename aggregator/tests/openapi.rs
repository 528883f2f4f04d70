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

/// The source of every file under `src/http/`, so a route module added later is scanned too.
fn http_sources() -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/http"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

/// Every `(method, path)` registered with `.route(path, get(..).post(..))` in the API's
/// route modules.
fn registered() -> BTreeSet<(String, String)> {
    let route = regex::Regex::new(
        r#"\.route\(\s*"([^"]+)",\s*((?:[a-z_]+\((?:[^()]|\([^()]*\))*\)\.?\s*)+)"#,
    )
    .unwrap();
    let method = regex::Regex::new(r"\b(get|post|patch|delete|put)\(").unwrap();
    let mut out = BTreeSet::new();
    for (_, src) in http_sources() {
        for c in route.captures_iter(&src) {
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

    // Every JSON body, answered or sent, is a named schema, and every named schema says
    // what its fields are: no free-form `Object`.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut bodies: Vec<&Value> = op["responses"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|r| r["content"].get("application/json"))
                .collect();
            bodies.extend(op["requestBody"]["content"].get("application/json"));
            assert!(
                !bodies.is_empty() || op["responses"].get("204").is_some(),
                "{method} {path}: no JSON body"
            );
            for body in bodies {
                let name = body["schema"]["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .unwrap_or_else(|| {
                        panic!("{method} {path}: body {body} is not a named schema")
                    });
                assert!(
                    schemas.contains_key(name),
                    "{method} {path}: {name} missing"
                );
            }
        }
    }
    for (name, schema) in schemas {
        let described = schema.get("properties").is_some()
            || schema.get("oneOf").is_some()
            || schema.get("enum").is_some();
        assert!(described, "schema {name} names no field: {schema}");
        for (field, s) in schema["properties"].as_object().into_iter().flatten() {
            assert!(
                s.as_object().is_some_and(|o| !o.is_empty()) && s["type"] != "object"
                    || s.get("properties").is_some()
                    || s.get("additionalProperties").is_some(),
                "{name}.{field} is a free-form object: {s}"
            );
        }
    }
}

/// Parses an example into one DTO and writes it back.
type Roundtrip = fn(&str) -> Result<Value, String>;

/// The DTO a ```json example of docs/api.md shows, by the heading of the section it is in,
/// parsed and written back unchanged: what the example shows is what the API writes.
fn roundtrip(heading: &str, example: &str) -> Result<Value, String> {
    use nines_aggregator::http::dto;
    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(text: &str) -> Result<Value, String> {
        let v: T = serde_json::from_str(text).map_err(|e| e.to_string())?;
        serde_json::to_value(v).map_err(|e| e.to_string())
    }
    let route = heading.trim_start_matches('#').trim().trim_matches('`');
    let path = route.split(['?', '[']).next().unwrap_or_default();
    // A section that shows a listing and one item, or a request body too, tries each in turn.
    let candidates: &[Roundtrip] = match path {
        "GET /api/v1/hosts" => &[via::<dto::HostList>],
        "GET /api/v1/hosts/{host}" => &[via::<dto::Host>],
        "GET /api/v1/series" => &[via::<dto::SeriesAnswer>],
        "GET /api/v1/query" => &[via::<dto::QueryAnswer>],
        "GET /api/v1/availability" => &[via::<dto::AvailabilityReport>],
        "Incidents" => &[
            via::<dto::Incident>,
            via::<dto::IncidentList>,
            via::<dto::NewIncident>,
            via::<dto::IncidentPatch>,
        ],
        "Maintenance windows" => &[
            via::<dto::MaintenanceList>,
            via::<dto::Maintenance>,
            via::<dto::NewMaintenance>,
        ],
        "GET /api/v1/alerts" => &[via::<dto::AlertList>],
        "GET /api/v1/alerts/history" => &[via::<dto::TransitionList>],
        "GET /api/v1/alerts/rules" => &[via::<dto::RuleList>],
        "GET /api/v1/alerts/notifications" => &[via::<dto::AttemptList>],
        "Silences" => &[
            via::<dto::Silence>,
            via::<dto::SilenceList>,
            via::<dto::NewSilence>,
        ],
        "GET /api/v1/forecast" => &[via::<dto::Forecast>],
        "GET /api/v1/capacity" => &[via::<dto::Capacity>],
        "GET /healthz" => &[via::<dto::Health>],
        other => return Err(format!("no DTO known for the section {other:?}")),
    };
    let example: Value = serde_json::from_str(example).map_err(|e| e.to_string())?;
    let mut why = Vec::new();
    for parse in candidates {
        match parse(&example.to_string()) {
            Ok(written) if written == example => return Ok(written),
            Ok(written) => why.push(format!("written back as {written}")),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

#[test]
fn every_json_example_in_the_api_docs_is_what_its_dto_writes() {
    let doc = include_str!("../../docs/api.md");
    let mut heading = "";
    let mut block: Option<String> = None;
    let mut checked = 0;
    for line in doc.lines() {
        match &mut block {
            Some(text) if line.trim() == "```" => {
                let example: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{heading}: the example is not JSON: {e}\n{text}"));
                let written =
                    roundtrip(heading, text).unwrap_or_else(|e| panic!("{heading}: {e}\n{text}"));
                assert_eq!(written, example, "{heading}: the DTO writes another shape");
                checked += 1;
                block = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None if line.trim() == "```json" => block = Some(String::new()),
            None if line.starts_with('#') => heading = line,
            None => {}
        }
    }
    assert_eq!(checked, doc.matches("```json").count());
}
