//! The JSON bodies of the API (docs/api.md), one typed struct per request and response, shared
//! by the handlers, the OpenAPI document (`/openapi.json` names every field from these) and
//! the report client. Field names and null-versus-absent are the API's contract: a field that
//! some answers leave out is `skip_serializing_if`, one that is `null` is an `Option` without.
//! Answers accept unknown fields when read back (docs/api.md: new fields may be added), so an
//! older report client reads a newer aggregator; request bodies refuse them.
//! This module knows serde and the schema, nothing of axum or the store.

mod alerts;
mod availability;
mod forecast;
mod hosts;

pub use alerts::*;
pub use availability::*;
pub use forecast::*;
pub use hosts::*;

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// Every error answer of the JSON API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong, and what to do.
    pub error: String,
}

/// A stored time as the API writes it: RFC 3339, or `None` (`null`) for "never" (0 or less)
/// and for a value outside the years 1970 to 9999, which no formatter can write.
pub fn rfc3339(ms: i64) -> Option<String> {
    if ms <= 0 {
        return None;
    }
    crate::util::time::rfc3339_ms(ms)
}

/// Labels of a series: name to value.
pub type Labels = serde_json::Map<String, serde_json::Value>;

fn strings(values: &[&str], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

fn verdict_schema() -> Object {
    strings(
        &["met", "missed", "unknown"],
        "met or missed; unknown when no scheduled minute of the period was monitored",
    )
}

fn alert_state_schema() -> Object {
    strings(
        &["inactive", "pending", "firing", "resolved"],
        "An alert's state",
    )
}

fn severity_schema() -> Object {
    strings(&["warning", "critical"], "Amber or red")
}
