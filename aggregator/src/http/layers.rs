//! What wraps every route of the HTTP API: a panic in a handler answers 500 (and is logged)
//! instead of ending the connection or the process; error answers that axum's extractors write
//! as plain text (a body over the limit, a bad content type) are rewritten into the documented
//! JSON error; every response carries the security headers (docs/api.md, "Errors" and
//! "Security headers"); and every time parameter of one request reads the same `now`.

use std::any::Any;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use crate::http::dto::ErrorBody;

/// Longest plain-text error body that is carried over into the JSON one; axum's own are a
/// line.
const MAX_TEXT_ERROR: usize = 4096;

/// `router` with the panic catcher, JSON errors and security headers around every route.
pub(crate) fn wrap(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn(request_now))
}

/// One `now` per request: `from=now-1h&to=now` is exactly an hour.
async fn request_now(req: Request, next: Next) -> Response {
    crate::util::time::with_now(crate::util::time::now_ms(), next.run(req)).await
}

/// A handler panicked: the message goes to the log, the caller gets [`crate::http::error::INTERNAL_ERROR`].
fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    crate::http::error::internal("request handler panicked", what).into_response()
}

fn is_plain_text(r: &Response) -> bool {
    r.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"))
}

/// An error answer in plain text (axum's rejections: 413 body too large, 415, 422, ...)
/// becomes `{"error": text}`, or Prometheus' shape under `/prom/api/`.
async fn json_errors(req: Request, next: Next) -> Response {
    let prom = req.uri().path().starts_with("/prom/api/");
    let r = next.run(req).await;
    if !(r.status().is_client_error() || r.status().is_server_error()) || !is_plain_text(&r) {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT_ERROR).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_owned(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    if !prom {
        return (parts, axum::Json(ErrorBody { error: text })).into_response();
    }
    let kind = if parts.status.is_server_error() {
        "internal"
    } else {
        "bad_data"
    };
    let body = json!({"status": "error", "errorType": kind, "error": text});
    (parts, axum::Json(body)).into_response()
}

/// The policy: nothing may load but the page's own inline styles (the stylesheet, the
/// charts' legend colours) and its one script, allowed by hash; it may fetch only from its own
/// origin (the live refresh), post forms only to it (the login), and never be framed.
fn content_security_policy() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            crate::http::status::page::LIVE_SCRIPT.as_bytes(),
        );
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let policy = format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        HeaderValue::from_str(&policy)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    })
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let fixed: [(HeaderName, HeaderValue); 3] = [
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    for (name, value) in fixed {
        h.insert(name, value);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        content_security_policy().clone(),
    );
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use serde_json::Value;
    use tower::ServiceExt;

    async fn send(app: &Router, req: Request) -> (StatusCode, Response) {
        let r = app.clone().oneshot(req).await.unwrap();
        (r.status(), r)
    }

    async fn json_body(r: Response) -> Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    fn test_router() -> Router {
        // An index out of bounds, as a bug in a handler would have it.
        async fn boom() -> String {
            let v: Vec<u8> = Vec::new();
            v[v.len() + 3].to_string()
        }
        wrap(
            Router::new()
                .route("/boom", get(boom))
                .route("/ok", get(|| async { "fine" }))
                .route(
                    "/body",
                    post(|b: String| async move { b.len().to_string() }),
                )
                .route("/prom/api/v1/query", post(|b: String| async move { b })),
        )
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_keeps_serving() {
        let app = test_router();
        let (s, r) = send(&app, Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json_body(r).await,
            json!({ "error": crate::http::error::INTERNAL_ERROR })
        );
        let (s, _) = send(&app, Request::get("/ok").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_json_413() {
        let app = test_router();
        let big = vec![b'x'; 3 << 20];
        let (s, r) = send(
            &app,
            Request::post("/body")
                .body(Body::from(big.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let v = json_body(r).await;
        assert!(v["error"].as_str().unwrap().contains("length limit"), "{v}");
        let (s, r) = send(
            &app,
            Request::post("/prom/api/v1/query")
                .body(Body::from(big))
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let v = json_body(r).await;
        assert_eq!(
            (&v["status"], &v["errorType"]),
            (&json!("error"), &json!("bad_data"))
        );
    }

    #[tokio::test]
    async fn every_response_carries_the_security_headers() {
        let app = test_router();
        for uri in ["/ok", "/boom", "/nowhere"] {
            let (_, r) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
            let h = r.headers();
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{uri}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{uri}");
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
    }
}
