//! The API's error answer (docs/api.md, "Errors"): a status and `{"error": message}`. A
//! failure on the server's side keeps its cause for the log and answers [`INTERNAL_ERROR`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::dto::ErrorBody;
use crate::store::QueryError;

/// The cause of a failure on the server's side.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What every 5xx answer that is the server's fault says. The cause (store errors, file
/// paths, panics) is for the log only: it would tell a caller about the machine, and a caller
/// can do nothing about it.
pub(crate) const INTERNAL_ERROR: &str = "internal error; the aggregator log has the details";

/// An error answer. The message of a 4xx describes the request, never the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a bad or missing parameter or body.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or one that is not configured.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such endpoint, host, service, incident, window or silence.
    #[error("{0}")]
    NotFound(String),
    /// 422: well-formed, but there is nothing to compute from.
    #[error("{0}")]
    Unprocessable(String),
    /// 503: a part that is not running, a timeout, or no turn for a query.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a failure on the server's side, logged with its cause when answered.
    #[error("{what}: {source}")]
    Internal {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: Cause,
    },
}

impl ApiError {
    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the caller is told.
    pub fn message(&self) -> String {
        match self {
            Self::Internal { .. } => INTERNAL_ERROR.to_owned(),
            e => e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal { what, source } = &self {
            tracing::error!("{what}: {}", chain(source.as_ref()));
        }
        let status = self.status();
        let mut r = (
            status,
            Json(ErrorBody {
                error: self.message(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nines\""),
            );
        }
        r
    }
}

/// An error and its sources on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A 400 with `msg`.
pub(crate) fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// A 404 with `msg`.
pub(crate) fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::NotFound(msg.into())
}

/// A failure on the server's side while doing `what`: answers 500 with [`INTERNAL_ERROR`],
/// and logs `what` and the cause when it is answered.
pub(crate) fn internal(what: &'static str, cause: impl Into<Cause>) -> ApiError {
    ApiError::Internal {
        what,
        source: cause.into(),
    }
}

/// A query's error: too many points is the caller's to fix (400), a store error is not (500).
pub(crate) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::TooManyPoints { .. } => bad_request(e.to_string()),
        QueryError::Store(e) => internal("query", e),
    }
}

/// Runs blocking work off the async threads; a panic in it is a 500 like any other failure.
pub(crate) async fn spawn_blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(what, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    async fn body(e: ApiError) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_failure_on_the_server_side_is_logged_not_answered() {
        let store_error = crate::store::StoreError::Db {
            path: "/var/lib/nines-aggregator/nines.redb".into(),
            detail: "Corrupted database: page 4711".into(),
        };
        let failed = internal("query", store_error);
        let panicked = spawn_blocking("query", || -> () {
            panic!("index out of bounds in /home/build/nines/aggregator/src/store/mod.rs")
        })
        .await;
        let store_query = query_error(QueryError::Store(crate::store::StoreError::Failed(
            "store /srv/nines.redb: I/O error".into(),
        )));
        for e in [failed, panicked.unwrap_err(), store_query] {
            assert!(
                matches!(&e, ApiError::Internal { source, .. } if !source.to_string().is_empty()),
                "the cause is kept for the log"
            );
            let (status, text) = body(e).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                json!({ "error": INTERNAL_ERROR })
            );
        }
    }

    #[tokio::test]
    async fn the_callers_own_mistake_is_described_to_the_caller() {
        let e = query_error(QueryError::TooManyPoints {
            points: 2_000_000,
            max: 11_000,
        });
        let (status, text) = body(e).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("11000"), "{text}");
    }
}
