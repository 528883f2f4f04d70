//! Reading a request: query-string parameters, times and durations in them (ms, RFC 3339 or
//! now-relative), hosts that must be known, and JSON bodies. Every refusal is a 400 (404 for
//! an unknown host) that names the parameter.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http::AppState;
use crate::http::error::{ApiError, bad_request, not_found};

/// The query string's `name=value` pairs, in order, decoded.
pub(crate) fn params(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The first value of parameter `name`.
pub(crate) fn one<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses a time parameter: integer milliseconds since the epoch, RFC 3339 or now-relative, in
/// the years 1970 to 9999 (anything else is a 400).
pub(crate) fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    crate::util::time::parse_ms(name, v).map_err(|e| bad_request(e.to_string()))
}

/// A duration parameter, 1 ms to [`crate::util::time::MAX_MS`] (anything else is a 400).
pub(crate) fn parse_duration(name: &str, v: &str) -> Result<i64, ApiError> {
    crate::util::time::parse_duration_ms(name, v).map_err(|e| bad_request(e.to_string()))
}

/// `host` if the store knows it, else a 404.
pub(crate) fn known_host(state: &AppState, host: &str) -> Result<(), ApiError> {
    match state.store().host(host) {
        Some(_) => Ok(()),
        None => Err(not_found(format!("unknown host {host:?}"))),
    }
}

/// The `host` parameter, which is required and must be a known host.
pub(crate) fn host_param(
    state: &AppState,
    params: &[(String, String)],
) -> Result<String, ApiError> {
    let host = one(params, "host").ok_or_else(|| bad_request("missing parameter host"))?;
    known_host(state, host)?;
    Ok(host.to_owned())
}

/// A time in a JSON body: milliseconds, or a string as [`parse_time`] reads it.
pub(crate) fn time_value(name: &str, v: &Value) -> Result<i64, ApiError> {
    let wrong = || {
        bad_request(format!(
            "{name}: use milliseconds, RFC 3339 or now-relative (now-1h)"
        ))
    };
    match v {
        Value::Number(n) => {
            let ms = n.as_i64().ok_or_else(wrong)?;
            crate::util::time::checked(name, &n.to_string(), ms)
                .map_err(|e| bad_request(e.to_string()))
        }
        Value::String(s) => parse_time(name, s),
        _ => Err(wrong()),
    }
}

/// A JSON request body as `T`; anything else is a 400 saying where it is wrong.
pub(crate) fn json_body<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| bad_request(format!("body: {e}")))
}
