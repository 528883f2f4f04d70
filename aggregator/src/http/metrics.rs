//! Counts and times every HTTP request by matched route template, method and status code, for
//! `nines_http_requests_total` and `nines_http_request_duration_seconds` in `/metrics`
//! (docs/metrics.md). The route is the template (`/api/v1/hosts/{host}`), never the raw path,
//! and methods outside the standard ones count as `other`, so the label sets stay bounded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::util::histogram::{Histogram, Snapshot};
use crate::util::sync::lock;

/// The `route` of a request no route matched (a 404 from the fallback).
pub const UNMATCHED: &str = "unmatched";

/// Requests seen since start.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    durations: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

/// A method as a label value: the standard ones by name, anything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl HttpMetrics {
    /// Counts one request to `route` that answered `code` after `took`.
    pub fn record(&self, route: &str, method: &Method, code: u16, took: std::time::Duration) {
        *lock(&self.requests)
            .entry((route.to_owned(), method_label(method), code))
            .or_default() += 1;
        let h = lock(&self.durations)
            .entry(route.to_owned())
            .or_default()
            .clone();
        h.observe(took);
    }

    /// `((route, method, code), requests)`, sorted.
    pub fn requests(&self) -> Vec<((String, &'static str, u16), u64)> {
        lock(&self.requests)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// `(route, durations)`, sorted by route.
    pub fn durations(&self) -> Vec<(String, Snapshot)> {
        lock(&self.durations)
            .iter()
            .map(|(k, h)| (k.clone(), h.snapshot()))
            .collect()
    }
}

/// The middleware: times the request through to its response head.
pub(crate) async fn record(
    State(metrics): State<Arc<HttpMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let r = next.run(req).await;
    metrics.record(&route, &method, r.status().as_u16(), started.elapsed());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        let m = HttpMetrics::default();
        let d = std::time::Duration::from_millis(3);
        for method in ["GET", "GET", "BREW", "PROPFIND"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            m.record("/api/v1/hosts", &method, 200, d);
        }
        assert_eq!(
            m.requests(),
            vec![
                (("/api/v1/hosts".to_owned(), "GET", 200), 2),
                (("/api/v1/hosts".to_owned(), "other", 200), 2),
            ]
        );
        let durations = m.durations();
        assert_eq!(durations.len(), 1);
        assert_eq!(durations[0].1.count, 4);
    }
}
