//! The HTTP API (docs/api.md): JSON over axum. [`router`] builds the routes; serving them is
//! the caller's business ([`serve`]). Who may call is [`auth`]; the bodies are the typed
//! structs of [`dto`]; reading a request is [`params`], answering an error [`error`].

pub mod alerts;
pub mod auth;
pub mod availability;
pub mod dto;
pub mod error;
pub mod forecast;
pub mod hosts;
mod layers;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod prom;
pub mod series;
pub mod serve;
pub mod status;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::http::auth::TokenConfig;
use crate::ingest::Connections;
use crate::store::Store;

pub use auth::{Caller, token_hash};
pub use error::ApiError;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    store: Store,
    tokens: Arc<auth::Tokens>,
    connections: Arc<Connections>,
    pub(crate) services: Arc<Vec<crate::availability::config::ServiceConfig>>,
    pub(crate) alerts: Option<Arc<crate::alerts::Alerting>>,
    pub(crate) status_anonymous: bool,
    pub(crate) month_cache: crate::http::status::SharedMonthCache,
    pub(crate) remote_write: Option<Arc<crate::remote_write::RemoteWrite>>,
    pub(crate) queries: crate::http::prom::limits::QueryGate,
    pub(crate) http: Arc<crate::http::metrics::HttpMetrics>,
}

impl AppState {
    /// State over a store, the configured tokens and the ingest connection table.
    pub fn new(store: Store, tokens: &[TokenConfig], connections: Arc<Connections>) -> Self {
        Self {
            store,
            tokens: Arc::new(auth::Tokens::new(tokens)),
            connections,
            services: Arc::default(),
            alerts: None,
            status_anonymous: false,
            month_cache: Arc::default(),
            remote_write: None,
            queries: Default::default(),
            http: Arc::default(),
        }
    }

    /// What one query may cost (`[api] query_*`).
    pub fn with_query_limits(mut self, limits: crate::http::prom::limits::QueryLimits) -> Self {
        self.queries = crate::http::prom::limits::QueryGate::new(limits);
        self
    }

    /// Whether the status page answers without a token (`[status] anonymous`).
    pub fn with_anonymous_status(mut self, anonymous: bool) -> Self {
        self.status_anonymous = anonymous;
        self
    }

    /// The alert engine the alert endpoints answer from.
    pub fn with_alerts(mut self, alerts: Arc<crate::alerts::Alerting>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The services availability is reported on.
    pub fn with_services(
        mut self,
        services: Vec<crate::availability::config::ServiceConfig>,
    ) -> Self {
        self.services = Arc::new(services);
        self
    }

    /// The remote-write forwarder, whose counters `/metrics` shows.
    pub fn with_remote_write(mut self, rw: Arc<crate::remote_write::RemoteWrite>) -> Self {
        self.remote_write = Some(rw);
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn connections(&self) -> &Connections {
        &self.connections
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .merge(crate::http::hosts::routes())
        .merge(crate::http::series::routes())
        .merge(crate::http::availability::routes())
        .merge(crate::http::alerts::routes())
        .merge(crate::http::forecast::routes())
        .route("/metrics", get(crate::http::prom::metrics::metrics))
        .route("/federate", get(crate::http::prom::metrics::federate))
        .merge(crate::http::prom::api::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::auth));
    let app = Router::new()
        .route("/healthz", get(crate::http::hosts::healthz))
        .route("/openapi.json", get(crate::http::openapi::openapi_json))
        .merge(protected)
        .merge(crate::http::status::routes(state.clone()))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state.clone());
    // Outermost, so that the status it counts is the one sent (a panic's 500 included).
    crate::http::layers::wrap(app).layer(middleware::from_fn_with_state(
        state.http.clone(),
        crate::http::metrics::record,
    ))
}
