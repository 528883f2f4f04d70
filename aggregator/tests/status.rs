//! The status page through `router(state).oneshot(..)`: the login cookie, anonymous mode, the
//! service page, and clear answers for what does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use nines_aggregator::availability::config::ServiceConfig;
use nines_aggregator::config::{Role, TokenConfig};
use nines_aggregator::http::{self, AppState, token_hash};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::{BatchWrite, HelloWrite, Store};
use nines_common::model::now_ms;
use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};
use tower::ServiceExt;

const TOKEN: &str = "read-token";

async fn get(
    app: &axum::Router,
    method: Method,
    uri: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn store_with_host(dir: &std::path::Path) -> (Store, nines_aggregator::store::WriterHandle) {
    let (store, writer) = Store::open(&dir.join("nines.redb")).unwrap();
    let host = HostId::new("web-1").unwrap();
    store
        .hello(HelloWrite {
            host: host.clone(),
            hello: Hello {
                protocol: 1,
                agent_version: "0.1.0".into(),
                host_id: "web-1".into(),
                boot_id: "b".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                kernel: "6.1".into(),
                interval_ms: 10_000,
            },
            now_ms: now_ms() - 3_600_000,
        })
        .await
        .unwrap();
    let id = store
        .series_id(&host, SeriesKey::new("host_uptime_seconds", &[]))
        .unwrap();
    let now = now_ms();
    store
        .write_batch(BatchWrite {
            host,
            seq: 1,
            points: (0..360)
                .map(|i| (id, now - 3_600_000 + i * 10_000, i as f64))
                .collect(),
        })
        .await
        .unwrap();
    (store, writer)
}

fn app(store: Store, anonymous: bool) -> axum::Router {
    let tokens = [TokenConfig {
        name: "viewer".into(),
        sha256: token_hash(TOKEN),
        role: Role::Read,
    }];
    let shop: ServiceConfig =
        toml::from_str("name = \"shop\"\ntarget_percent = 99.9\nmembers = [\"web-1\"]\n").unwrap();
    http::router(
        AppState::new(store, &tokens, Arc::new(Connections::default()))
            .with_services(vec![shop])
            .with_anonymous_status(anonymous),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_asked_once_and_kept_in_a_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = store_with_host(dir.path()).await;
    let app = app(store.clone(), false);

    let (s, h, _) = get(&app, Method::GET, "/status", None, "").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/status/login");
    let (s, _, _) = get(&app, Method::GET, "/status/live", None, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, body) = get(&app, Method::GET, "/status/login", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("name=token type=password"), "{body}");

    let (s, h, body) = get(&app, Method::POST, "/status/login", None, "token=wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.get(header::SET_COOKIE).is_none());
    assert!(body.contains("not valid"));
    let (s, h, _) = get(
        &app,
        Method::POST,
        "/status/login",
        None,
        "token=read-token",
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cookie = h[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(pair, "nines_token=read-token");

    let (s, h, body) = get(&app, Method::GET, "/status", Some(&pair), "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert!(body.contains("✔ web-1"), "{body}");
    assert!(body.contains("shop"), "{body}");
    // A cookie with a token that is not (or no longer) configured is sent to log in again.
    let (s, _, _) = get(&app, Method::GET, "/status", Some("nines_token=old"), "").await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // The service page: this month, the error budget, 30 days of bars.
    let (s, _, body) = get(&app, Method::GET, "/status/service/shop", Some(&pair), "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("error budget left"), "{body}");
    assert_eq!(body.matches("<span class=").count(), 30, "{body}");
    let (s, _, body) = get(&app, Method::GET, "/status/service/nope", Some(&pair), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("No service &quot;nope&quot;"), "{body}");
    let (s, _, _) = get(
        &app,
        Method::GET,
        "/status/host/web-1?range=2y",
        Some(&pair),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = get(&app, Method::GET, "/status/host/ghost", Some(&pair), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, body) = get(
        &app,
        Method::GET,
        "/status/host/web-1?range=1h",
        Some(&pair),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.matches("<figure class=chart>").count(), 7, "{body}");

    // Anonymous mode: read-only, no token.
    let anon = app_anon(store.clone());
    let (s, _, body) = get(&anon, Method::GET, "/status", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("web-1"));
    // The API itself still wants a token.
    let (s, _, _) = get(&anon, Method::GET, "/api/v1/hosts", None, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    drop((app, anon, store));
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

fn app_anon(store: Store) -> axum::Router {
    app(store, true)
}
