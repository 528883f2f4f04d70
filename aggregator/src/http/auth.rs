//! Who may call the API (docs/api.md, "Authentication"): bearer tokens (or the password of
//! Basic auth) checked against the configured SHA-256 hashes, the [`Caller`] a request then
//! carries, and the role check of the write routes ([`admin`]).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;

use crate::http::{ApiError, AppState};

/// Roles of API tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read everything.
    Read,
    /// May read and change (incidents, silences, maintenance).
    Admin,
}

/// One `[[api.tokens]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it, for logs.
    pub name: String,
    /// Lower-case hex SHA-256 of the token (`nines-aggregator token new` prints it).
    pub sha256: String,
    /// What it may do. Default `read`.
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Read
}

/// The configured tokens: hash, role, name.
#[derive(Debug, Default)]
pub(crate) struct Tokens(Vec<(Vec<u8>, Role, String)>);

impl Tokens {
    /// The tokens of `[[api.tokens]]`.
    pub(crate) fn new(tokens: &[TokenConfig]) -> Self {
        Self(
            tokens
                .iter()
                .map(|t| (hex_decode(&t.sha256), t.role, t.name.clone()))
                .collect(),
        )
    }

    /// Who holds `token`, if it is a configured one. Compares against every configured hash
    /// in constant time, so timing reveals nothing.
    fn caller(&self, token: &str) -> Option<Caller> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut found = None;
        for (hash, r, name) in &self.0 {
            if constant_time_eq(hash, digest.as_ref()) {
                found = Some(Caller {
                    role: *r,
                    name: name.clone(),
                });
            }
        }
        found
    }
}

impl AppState {
    /// Who holds `token`, if it is a configured one.
    pub(crate) fn caller(&self, token: &str) -> Option<Caller> {
        self.tokens.caller(token)
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex SHA-256 of a token, as configured in `[[api.tokens]]`.
pub fn token_hash(token: &str) -> String {
    nines_common::util::hex::encode(
        ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref(),
    )
}

/// Who made a request: the role and name of the token it presented.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the token may do.
    pub role: Role,
    /// The token's configured name.
    pub name: String,
}

/// The role check of every write route: the caller's token must have the admin role.
pub(crate) fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "token {:?} has the read role; this needs admin",
            caller.name
        )))
    }
}

/// The token check in front of every route but `/healthz`, `/openapi.json` and the status
/// page (which checks its cookie): a request without a configured token gets 401; one with
/// carries its [`Caller`] as an extension.
pub(crate) async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credential);
    let Some(token) = presented.as_deref() else {
        return ApiError::Unauthorized(
            "missing bearer token: send Authorization: Bearer <token>".into(),
        )
        .into_response();
    };
    match state.caller(token) {
        Some(caller) => {
            let mut req = req;
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => ApiError::Unauthorized("invalid bearer token".into()).into_response(),
    }
}

/// The token an `Authorization` value carries: `Bearer <token>`, or the password of
/// `Basic base64(user:password)` (clients that cannot send a bearer token, promtool and some
/// Grafana setups, send the token as the password, with any user name). The scheme is
/// case-insensitive (RFC 7235 section 2.1).
fn credential(header: &str) -> Option<String> {
    let (scheme, rest) = header.trim_start().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_scheme_is_case_insensitive() {
        let basic = base64::engine::general_purpose::STANDARD.encode("grafana:tok");
        for h in [
            "Bearer tok".to_owned(),
            "bearer tok".into(),
            "BEARER tok".into(),
            "bEaReR  tok ".into(),
            format!("Basic {basic}"),
            format!("basic {basic}"),
            format!("BASIC {basic}"),
        ] {
            assert_eq!(credential(&h).as_deref(), Some("tok"), "{h}");
        }
        for h in ["Bearertok", "Token tok", "Digest tok", "Basic !!!", ""] {
            assert_eq!(credential(h), None, "{h}");
        }
    }

    #[test]
    fn a_configured_token_names_its_caller_and_role() {
        let tokens = Tokens::new(&[
            TokenConfig {
                name: "ops".into(),
                sha256: token_hash("admin-secret"),
                role: Role::Admin,
            },
            TokenConfig {
                name: "grafana".into(),
                sha256: token_hash("read-secret"),
                role: Role::Read,
            },
        ]);
        let ops = tokens.caller("admin-secret").unwrap();
        assert_eq!((ops.name.as_str(), ops.role), ("ops", Role::Admin));
        assert!(admin(&ops).is_ok());
        let grafana = tokens.caller("read-secret").unwrap();
        let refused = admin(&grafana).unwrap_err();
        assert!(matches!(refused, ApiError::Forbidden(_)), "{refused}");
        assert!(refused.to_string().contains("grafana"), "{refused}");
        assert!(tokens.caller("admin-secre").is_none());
        assert!(tokens.caller("").is_none());
    }
}
