//! The hosts endpoints (docs/api.md, `GET /api/v1/hosts`) and `/healthz`: what the store knows
//! of each host, and whether the store accepts writes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::http::AppState;
use crate::http::dto::{self, ErrorBody, Health, HealthStatus, HostList, rfc3339};
use crate::http::error::{ApiError, not_found};
use crate::ingest::Connections;
use crate::store::HostRecord;
use nines_common::model::now_ms;

/// The routes, to be merged behind the token check (`/healthz` is not: the router adds it in
/// front).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{host}", get(host))
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "The store accepts writes", body = Health), (status = 503, description = "The store refuses writes", body = Health)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.store().failure() {
        None => Json(Health {
            status: HealthStatus::Ok,
            agents_connected: Some(state.connections().count()),
            reason: None,
        })
        .into_response(),
        // The store logged the whole reason when the commit failed.
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: HealthStatus::Failing,
                agents_connected: None,
                reason: Some(public_failure(&reason).to_owned()),
            }),
        )
            .into_response(),
    }
}

/// What `/healthz`, which answers anyone, says of a store that refuses writes: the kind of
/// failure an operator acts on, not the error's text, which names files and carries redb's
/// own messages.
fn public_failure(reason: &str) -> &'static str {
    if reason.contains("No space left") || reason.contains("os error 28") {
        "the store refuses writes: No space left on device; the aggregator log has the details"
    } else if reason.contains("quota exceeded") || reason.contains("os error 122") {
        "the store refuses writes: disk quota exceeded; the aggregator log has the details"
    } else {
        "the store refuses writes after a failed commit; the aggregator log has the details"
    }
}

fn host_dto(h: &HostRecord, connections: &Connections, now: i64) -> dto::Host {
    let down_after = 3 * i64::from(h.interval_ms.max(1000));
    let up = h.last_sample_ms > 0 && now - h.last_sample_ms <= down_after;
    dto::Host {
        id: h.host.clone(),
        up,
        connected: connections.is_connected(&h.host),
        last_seen_ms: h.last_sample_ms,
        last_seen: rfc3339(h.last_sample_ms),
        first_seen: rfc3339(h.first_seen_ms),
        agent_version: h.agent_version.clone(),
        os: h.os.clone(),
        arch: h.arch.clone(),
        kernel: h.kernel.clone(),
        boot_id: h.boot_id.clone(),
        interval_ms: h.interval_ms,
    }
}

#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", responses((status = 200, description = "Every host, sorted by id", body = HostList)))]
pub(crate) async fn hosts(State(state): State<AppState>) -> Json<HostList> {
    let now = now_ms();
    let hosts = state
        .store()
        .hosts()
        .iter()
        .map(|h| host_dto(h, state.connections(), now))
        .collect();
    Json(HostList { hosts })
}

#[utoipa::path(get, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "Host id")), responses((status = 200, description = "One host", body = dto::Host), (status = 404, description = "Unknown host", body = ErrorBody)))]
pub(crate) async fn host(
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<dto::Host>, ApiError> {
    let rec = state
        .store()
        .host(&host)
        .ok_or_else(|| not_found(format!("unknown host {host:?}")))?;
    Ok(Json(host_dto(&rec, state.connections(), now_ms())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_names_the_kind_of_store_failure_without_its_text() {
        let full = "store refuses writes after a failed commit: store /var/lib/nines-aggregator/nines.redb: \
                    I/O error: No space left on device (os error 28)";
        let other = "store /var/lib/nines-aggregator/nines.redb: Corrupted database: page 4711";
        for (reason, kind) in [(full, "No space left on device"), (other, "failed commit")] {
            let public = public_failure(reason);
            assert!(public.contains(kind), "{public}");
            assert!(
                !public.contains("/var/lib") && !public.contains("page 4711"),
                "{public}"
            );
        }
    }
}
