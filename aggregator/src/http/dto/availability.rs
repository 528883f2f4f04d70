//! Availability reports, incidents and maintenance windows.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::availability::Verdict;

/// `GET /api/v1/availability`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AvailabilityReport {
    /// Start of the period, RFC 3339.
    pub from: Option<String>,
    /// End of the period, clipped to now, RFC 3339.
    pub to: Option<String>,
    /// One entry per service (or the one host).
    pub services: Vec<ServiceAvailability>,
    /// Totals over the services.
    pub total: TotalAvailability,
}

/// One service's availability over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceAvailability {
    /// Service name (`host:H` for a host's own).
    pub service: String,
    /// Met, missed, or unknown (nothing monitored to judge).
    #[schema(schema_with = super::verdict_schema)]
    pub verdict: Verdict,
    /// When the service's time started to count, RFC 3339; `null`: not yet.
    pub monitored_since: Option<String>,
    /// Scheduled minutes of the period before it was monitored: not counted.
    pub not_monitored_minutes: f64,
    /// Monitored minutes of the schedule in the period, maintenance excluded where configured.
    pub scheduled_minutes: f64,
    /// Outage minutes in scheduled time, weighted by share and impact.
    pub downtime_minutes: f64,
    /// Availability, percent; `null` when nothing was monitored to judge.
    pub availability_percent: Option<f64>,
    /// Target, percent.
    pub target_percent: f64,
    /// The target is met.
    pub met: bool,
    /// Downtime the target allows.
    pub error_budget_minutes: f64,
    /// Budget left; negative when overspent.
    pub error_budget_minutes_left: f64,
    /// Maintenance minutes in the period.
    pub maintenance_minutes: f64,
    /// Incidents that cost downtime.
    pub incident_count: usize,
    /// Mean time to recover.
    pub mttr_minutes: Option<f64>,
    /// Mean time between failures.
    pub mtbf_minutes: Option<f64>,
    /// Incidents of the period, most minutes lost first.
    pub incidents: Vec<Incident>,
    /// Ids of incidents still without a root cause.
    pub without_root_cause: Vec<String>,
}

/// Totals over the services of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TotalAvailability {
    /// Missed if a service missed; else unknown if one has nothing to judge; else met.
    #[schema(schema_with = super::verdict_schema)]
    pub verdict: Verdict,
    /// Availability with each service weighted by its scheduled minutes (the services with a
    /// verdict); `null` when none has.
    pub weighted_percent: Option<f64>,
    /// Product of the availabilities: a chain of services that are all required.
    pub serial_percent: Option<f64>,
    /// Every service met its target.
    pub met: bool,
}

/// An incident: an outage seen in the data (`auto:...`), or one reported by people (`m<n>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// `auto:<service>:<start ms>` or `m<n>`.
    pub id: String,
    /// The service it belongs to.
    pub service: String,
    /// Seen in the data rather than reported by someone.
    pub automatic: bool,
    /// What happened.
    pub title: String,
    /// Start, RFC 3339.
    pub start: Option<String>,
    /// End, RFC 3339; `null` while it lasts.
    pub end: Option<String>,
    /// Start, ms.
    pub start_ms: i64,
    /// End, ms; `null` while it lasts.
    pub end_ms: Option<i64>,
    /// Fraction of users affected, 0 to 1.
    pub share: f64,
    /// Fraction of their work lost, 0 to 1.
    pub impact: f64,
    /// Someone has taken it on.
    pub acknowledged: bool,
    /// Root cause, once known.
    pub root_cause: Option<String>,
    /// Follow-up actions.
    pub follow_up: Vec<String>,
    /// False when someone marked it as not customer-impacting: it then costs no downtime.
    pub customer_impacting: bool,
    /// Every change, oldest first.
    pub history: Vec<IncidentChange>,
    /// Weighted minutes lost in scheduled time in the period; in reports and listings only,
    /// not in the answer to a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_minutes: Option<f64>,
}

/// One change of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentChange {
    /// When, RFC 3339.
    pub at: Option<String>,
    /// The token's name.
    pub by: String,
    /// What changed, and why where a reason was given.
    pub what: String,
}

/// `GET /api/v1/incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentList {
    /// In start order.
    pub incidents: Vec<Incident>,
}

/// `POST /api/v1/incidents`: a manual incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// A configured service.
    pub service: String,
    /// What happened.
    pub title: String,
    /// Start: ms, RFC 3339 or now-relative.
    #[schema(value_type = Value)]
    pub start: Value,
    /// End, as `start`; absent while it lasts.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub end: Option<Value>,
    /// Fraction of users affected, 0 to 1 (default 1).
    #[serde(default)]
    pub share: Option<f64>,
    /// Instead of `share`: a share group of the service.
    #[serde(default)]
    pub share_group: Option<String>,
    /// Fraction of their work lost, 0 to 1 (default 1).
    #[serde(default)]
    pub impact: Option<f64>,
}

/// `PATCH /api/v1/incidents/{id}`: the fields to change, at least one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    /// Someone has taken it on.
    #[serde(default)]
    pub acknowledged: Option<bool>,
    /// The root cause.
    #[serde(default)]
    pub root_cause: Option<String>,
    /// Follow-up actions (replaces the list).
    #[serde(default)]
    pub follow_up: Option<Vec<String>>,
    /// False needs a `reason`.
    #[serde(default)]
    pub customer_impacting: Option<bool>,
    /// Why it is not customer-impacting.
    #[serde(default)]
    pub reason: Option<String>,
    /// End of a manual incident: ms, RFC 3339 or now-relative.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub end: Option<Value>,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Maintenance {
    /// Its id.
    pub id: u64,
    /// Services it covers; empty means all.
    pub services: Vec<String>,
    /// What is done.
    pub title: String,
    /// The token's name that created it.
    pub created_by: String,
    /// `once` or `weekly`.
    pub kind: MaintenanceKind,
    /// `once`: start, RFC 3339; `weekly`: local time `HH:MM`.
    pub start: Option<String>,
    /// `once`: end, RFC 3339; `weekly`: local time `HH:MM`.
    pub end: Option<String>,
    /// `weekly` only: the IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `weekly` only: `mon` .. `sun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
}

/// How a maintenance window recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceKind {
    /// Once, from `start` to `end`.
    Once,
    /// Every week on `days`, from `start` to `end` local time.
    Weekly,
}

/// `GET /api/v1/maintenance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceList {
    /// Every window.
    pub maintenance: Vec<Maintenance>,
}

/// `POST /api/v1/maintenance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenance {
    /// Services it covers; empty or absent means all.
    #[serde(default)]
    pub services: Vec<String>,
    /// What is done.
    pub title: String,
    /// `once` or `weekly`.
    pub kind: String,
    /// `once`: ms, RFC 3339 or now-relative; `weekly`: `"HH:MM"`.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub start: Option<Value>,
    /// As `start`.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub end: Option<Value>,
    /// `weekly`: IANA time zone (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `weekly`: `mon` .. `sun`.
    #[serde(default)]
    pub days: Vec<String>,
}
