//! Every error the API returns is JSON in the documented shape (docs/api.md "Errors"):
//! `{"error": "..."}`, and `{"status":"error","errorType":..,"error":..}` under `/prom/api/`.
//! Malformed parameters go to each documented GET route of a real `nines-aggregator demo`,
//! including those that fail while the query string is parsed into typed fields.

use nines_tests::demo::Demo;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    /// `{"error": "..."}`
    Nines,
    /// Prometheus' `{"status":"error","errorType":"...","error":"..."}`
    Prom,
}

use Shape::{Nines, Prom};

/// (request path and query, expected status, error shape). Selectors are percent-encoded as a
/// client must send them.
const CASES: &[(&str, u16, Shape)] = &[
    ("/api/v1/nope", 404, Nines),
    ("/api/v1/hosts/no-such-host", 404, Nines),
    ("/api/v1/series", 400, Nines),
    ("/api/v1/series?host=no-such-host", 404, Nines),
    ("/api/v1/query?host=HOST", 400, Nines),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&from=yesterday",
        400,
        Nines,
    ),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&to=12:00",
        400,
        Nines,
    ),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&step=fast&agg=avg",
        400,
        Nines,
    ),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&step=1m&agg=median-ish",
        400,
        Nines,
    ),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&max_points=many",
        400,
        Nines,
    ),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&max_points=-1",
        400,
        Nines,
    ),
    (
        "/api/v1/query?host=HOST&name=cpu_usage_ratio&label=nolabel",
        400,
        Nines,
    ),
    (
        "/api/v1/availability?host=HOST&from=last-tuesday",
        400,
        Nines,
    ),
    ("/api/v1/availability?host=HOST&target=most", 400, Nines),
    ("/api/v1/availability?service=no-such-service", 404, Nines),
    ("/api/v1/incidents?from=soon", 400, Nines),
    ("/api/v1/incidents?to=2026-13-45T00:00:00Z", 400, Nines),
    ("/api/v1/alerts/history?limit=lots", 400, Nines),
    ("/api/v1/alerts/history?from=never", 400, Nines),
    ("/api/v1/alerts/notifications?limit=-3", 400, Nines),
    ("/api/v1/forecast", 400, Nines),
    (
        "/api/v1/forecast?name=filesystem_used_ratio&window=a-week",
        400,
        Nines,
    ),
    (
        "/api/v1/forecast?name=filesystem_used_ratio&horizon=0",
        400,
        Nines,
    ),
    (
        "/api/v1/forecast?name=filesystem_used_ratio&threshold=high",
        400,
        Nines,
    ),
    (
        "/api/v1/forecast?name=filesystem_used_ratio&to=tomorrow",
        400,
        Nines,
    ),
    ("/api/v1/capacity?driver=shop_tps", 400, Nines),
    (
        "/api/v1/capacity?kpi=cpu_usage_ratio%7B&driver=shop_tps",
        400,
        Nines,
    ),
    // A raw `{` is valid in a request line (a raw `"` is not; docs/api.md "Errors").
    (
        "/api/v1/capacity?kpi=cpu_usage_ratio{&driver=shop_tps",
        400,
        Nines,
    ),
    (
        "/api/v1/capacity?kpi=cpu_usage_ratio&driver=shop_tps&growth=lots",
        400,
        Nines,
    ),
    (
        "/api/v1/capacity?kpi=cpu_usage_ratio&driver=shop_tps&step=often",
        400,
        Nines,
    ),
    ("/federate?match[]=cpu_usage_ratio%7B%22", 400, Nines),
    ("/prom/api/v1/query", 400, Prom),
    ("/prom/api/v1/query?query=cpu_usage_ratio%7B", 400, Prom),
    ("/prom/api/v1/query?query=up&time=noon", 400, Prom),
    (
        "/prom/api/v1/query_range?query=up&start=0&end=60&step=fast",
        400,
        Prom,
    ),
    (
        "/prom/api/v1/query_range?query=up&start=0&end=60",
        400,
        Prom,
    ),
    ("/prom/api/v1/series", 400, Prom),
    ("/prom/api/v1/labels?match[]=%7B", 400, Prom),
    ("/prom/api/v1/label/host/values?match[]=up%7B", 400, Prom),
];

/// Every documented GET route but the open ones (`/healthz`, `/openapi.json`) and the status
/// page's HTML.
const GET_ROUTES: &[&str] = &[
    "/api/v1/hosts",
    "/api/v1/hosts/web-1",
    "/api/v1/series?host=web-1",
    "/api/v1/query?host=web-1&name=cpu_usage_ratio",
    "/api/v1/availability",
    "/api/v1/incidents",
    "/api/v1/maintenance",
    "/api/v1/alerts",
    "/api/v1/alerts/history",
    "/api/v1/alerts/rules",
    "/api/v1/alerts/notifications",
    "/api/v1/silences",
    "/api/v1/forecast?name=filesystem_used_ratio",
    "/api/v1/capacity?kpi=a&driver=b",
    "/metrics",
    "/federate",
    "/prom/api/v1/query?query=up",
    "/prom/api/v1/query_range?query=up&start=0&end=60&step=15",
    "/prom/api/v1/series?match[]=up",
    "/prom/api/v1/labels",
    "/prom/api/v1/label/host/values",
    "/prom/api/v1/status/buildinfo",
];

/// What is wrong with an error answer, if anything.
fn check(status: u16, want: u16, shape: Shape, content_type: &str, body: &str) -> Option<String> {
    if status != want {
        return Some(format!("status {status}, want {want}"));
    }
    if !content_type.starts_with("application/json") {
        return Some(format!("content-type {content_type:?}"));
    }
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return Some("a body that is not JSON".into());
    };
    let text = |k: &str| json[k].as_str().is_some_and(|s| !s.is_empty());
    let ok = match shape {
        Nines => text("error"),
        Prom => json["status"] == "error" && text("errorType") && text("error"),
    };
    (!ok).then(|| format!("not the documented {shape:?} error shape"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_error_is_json_in_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path()).await;
    let client = nines_tests::http_client();
    let mut wrong = Vec::new();
    let mut seen = 0;
    let get = async |path: &str, token: Option<&str>| {
        let mut req = client.get(format!("{}{path}", demo.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut body = resp.text().await.unwrap();
        body.truncate(body.floor_char_boundary(400));
        (status, ct, body)
    };
    // No token, a wrong token: authentication is one layer for all routes, so its refusals
    // are `{"error": ...}` under /prom too.
    for path in GET_ROUTES {
        for token in [None, Some("not-the-token")] {
            let (status, ct, body) = get(path, token).await;
            seen += 1;
            if let Some(e) = check(status, 401, Nines, &ct, &body) {
                wrong.push(format!("GET {path} (token {token:?}): {e}: {body}"));
            }
        }
    }
    for &(path, want, shape) in CASES {
        let path = path.replace("HOST", &demo.host);
        let (status, ct, body) = get(&path, Some(&demo.token)).await;
        seen += 1;
        if let Some(e) = check(status, want, shape, &ct, &body) {
            wrong.push(format!("GET {path}: {e}: {body}"));
        }
    }
    eprintln!(
        "{seen} malformed requests, {} answered otherwise than documented",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "errors not in the documented JSON shape:\n{}",
        wrong.join("\n")
    );
}
