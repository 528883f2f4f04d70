//! `nines-aggregator report availability`: asks a running aggregator's HTTP API for a period's
//! availability and renders it for a cron mail, a wiki, a spreadsheet, a script or a browser.
//!
//! Exit status, so cron can branch: [`EXIT_MET`] when every target is met, [`EXIT_MISSED`] when
//! one is missed, [`EXIT_UNKNOWN`] when none is missed but one has nothing to judge (no
//! monitored scheduled minute in the period), [`EXIT_ERROR`] when there is no report (bad
//! arguments, unreadable token file, aggregator unreachable, token refused).

pub mod capacity;
pub mod client;
pub mod html;
pub mod period;
pub mod render;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::availability::Verdict;
pub use client::{Fetch, FetchError, fetch, read_token};
pub use period::{Period, PeriodError};

/// Every target of the report is met.
pub const EXIT_MET: u8 = 0;
/// At least one target is missed.
pub const EXIT_MISSED: u8 = 1;
/// No report: bad arguments, token file, network, or the API refused.
pub const EXIT_ERROR: u8 = 2;
/// A report, but not enough data to say met or missed (Nagios' UNKNOWN): a service not
/// monitored in the period; for capacity, no series, or a series without enough points for a
/// forecast.
pub const EXIT_UNKNOWN: u8 = 3;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One table, lines of at most 80 columns: a cron mail or a phone screen.
    Text,
    /// Tables for a wiki or a ticket.
    Markdown,
    /// One row per service with a header row (RFC 4180).
    Csv,
    /// For scripts; keys as in `GET /api/v1/availability`, plus `period` and `met`.
    Json,
    /// One self-contained page: a bar per service and the incident table.
    Html,
}

/// The answer of `GET /api/v1/availability` (docs/api.md), as far as reports use it. Field
/// order is the key order of the JSON output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Start of the period, RFC 3339.
    pub from: String,
    /// End of the period (clipped to now by the aggregator), RFC 3339.
    pub to: String,
    /// One entry per service.
    pub services: Vec<ServiceAvailability>,
    /// Totals over the services.
    pub total: Total,
}

/// Totals over the services of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Total {
    /// Missed if a service missed; else unknown if one has nothing to judge; else met.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Availability with each service weighted by its scheduled minutes (the services with
    /// something to judge); `None` when none has.
    pub weighted_percent: Option<f64>,
    /// Product of the availabilities: a chain of services that are all required.
    pub serial_percent: Option<f64>,
    /// Every service met its target.
    pub met: bool,
}

/// One service's availability over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAvailability {
    /// Service name.
    pub service: String,
    /// Met, missed, or unknown (nothing monitored to judge).
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// When the service's time started to count, RFC 3339; `None`: not yet.
    #[serde(default)]
    pub monitored_since: Option<String>,
    /// Scheduled minutes of the period before it was monitored: not counted.
    #[serde(default)]
    pub not_monitored_minutes: f64,
    /// Monitored minutes of the schedule in the period, maintenance excluded where configured.
    pub scheduled_minutes: f64,
    /// Outage minutes in scheduled time, weighted by share and impact.
    pub downtime_minutes: f64,
    /// Availability, percent; `None` when nothing was monitored to judge.
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
    pub incident_count: u64,
    /// Mean time to recover.
    pub mttr_minutes: Option<f64>,
    /// Mean time between failures.
    pub mtbf_minutes: Option<f64>,
    /// Incidents of the period, most minutes lost first.
    pub incidents: Vec<Incident>,
    /// Ids of incidents still without a root cause.
    pub without_root_cause: Vec<String>,
}

/// An incident as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `auto:<service>:<start ms>` or `m<n>`.
    pub id: String,
    /// The service it belongs to.
    pub service: String,
    /// Seen in the data rather than reported by someone.
    pub automatic: bool,
    /// Title.
    pub title: String,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339; `None` while it lasts.
    pub end: Option<String>,
    /// Fraction of users affected.
    pub share: f64,
    /// Fraction of their work lost.
    pub impact: f64,
    /// Someone has acknowledged it.
    pub acknowledged: bool,
    /// Root cause, once known.
    pub root_cause: Option<String>,
    /// Whether it costs downtime.
    pub customer_impacting: bool,
    /// Weighted minutes lost in scheduled time in the period.
    #[serde(default)]
    pub lost_minutes: f64,
}

impl Incident {
    /// No root cause recorded yet (blank counts as none).
    pub fn without_root_cause(&self) -> bool {
        self.root_cause
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    }
}

impl ServiceAvailability {
    /// The verdict; from `met` when an older aggregator sent none.
    pub fn verdict(&self) -> Verdict {
        self.verdict.unwrap_or(if self.met {
            Verdict::Met
        } else {
            Verdict::Missed
        })
    }
}

impl Availability {
    /// Missed if a service missed; else unknown if one has nothing to judge or there is no
    /// service; else met.
    pub fn verdict(&self) -> Verdict {
        let v: Vec<Verdict> = self.services.iter().map(|s| s.verdict()).collect();
        if v.contains(&Verdict::Missed) {
            Verdict::Missed
        } else if v.is_empty() || v.contains(&Verdict::Unknown) {
            Verdict::Unknown
        } else {
            Verdict::Met
        }
    }

    /// Every target met.
    pub fn met(&self) -> bool {
        self.verdict() == Verdict::Met
    }

    /// The exit status for this report.
    pub fn exit_code(&self) -> u8 {
        match self.verdict() {
            Verdict::Met => EXIT_MET,
            Verdict::Missed => EXIT_MISSED,
            Verdict::Unknown => EXIT_UNKNOWN,
        }
    }

    /// Services that missed their target.
    pub fn missed(&self) -> Vec<&str> {
        self.with(Verdict::Missed)
    }

    /// Services with nothing to judge in the period.
    pub fn unknown(&self) -> Vec<&str> {
        self.with(Verdict::Unknown)
    }

    fn with(&self, v: Verdict) -> Vec<&str> {
        self.services
            .iter()
            .filter(|s| s.verdict() == v)
            .map(|s| s.service.as_str())
            .collect()
    }

    /// All incidents of all services, most minutes lost first ("top talkers"), then by start.
    pub fn incidents_by_loss(&self) -> Vec<&Incident> {
        let mut v: Vec<&Incident> = self.services.iter().flat_map(|s| &s.incidents).collect();
        v.sort_by(|a, b| {
            b.lost_minutes
                .total_cmp(&a.lost_minutes)
                .then_with(|| a.start.cmp(&b.start))
        });
        v
    }
}

/// `report availability` as given on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL of the aggregator's API.
    pub url: String,
    /// File holding the bearer token.
    pub token_file: PathBuf,
    /// PEM file of CA certificates to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// `last-month`, `last-week`, `YYYY-MM` or `FROM..TO`.
    pub period: String,
    /// Output format.
    pub format: Format,
    /// One service instead of all.
    pub service: Option<String>,
    /// Limit for the request.
    pub timeout: Duration,
}

/// Why there is no report (exit status [`EXIT_ERROR`]).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Bad `--period`.
    #[error(transparent)]
    Period(#[from] PeriodError),
    /// Token file, URL, network or API.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Output(std::io::Error),
}

/// Fetches and renders the report into `out`; returns the exit status ([`EXIT_MET`],
/// [`EXIT_MISSED`] or [`EXIT_UNKNOWN`]). Arguments are checked before the token file is read, and the token file
/// before anything goes over the network.
pub async fn run(
    opts: &Options,
    now: jiff::Timestamp,
    out: &mut impl Write,
) -> Result<u8, ReportError> {
    let period = period::parse(&opts.period, now)?;
    let token = read_token(&opts.token_file)?;
    let report = fetch(&Fetch {
        url: opts.url.clone(),
        token,
        ca: opts.ca.clone(),
        period: period.clone(),
        service: opts.service.clone(),
        timeout: opts.timeout,
    })
    .await?;
    out.write_all(render(&report, &period, opts.format).as_bytes())
        .and_then(|()| out.flush())
        .map_err(ReportError::Output)?;
    Ok(report.exit_code())
}

/// Renders `report` for `period` in `format`.
pub fn render(report: &Availability, period: &Period, format: Format) -> String {
    match format {
        Format::Text => render::text(report, period),
        Format::Markdown => render::markdown(report, period),
        Format::Csv => render::csv(report),
        Format::Json => render::json(report, period),
        Format::Html => html::page(report, period),
    }
}

#[cfg(test)]
pub(crate) mod sample {
    //! A report as the API gives it, for the renderers' tests.
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub fn report() -> (Availability, Period) {
        let json = serde_json::json!({
            "from": "2026-11-02T00:00:00.000Z", "to": "2026-11-09T00:00:00.000Z",
            "services": [{
                "service": "shop", "scheduled_minutes": 10080.0, "downtime_minutes": 61.2,
                "availability_percent": 99.392857, "target_percent": 99.9, "met": false,
                "error_budget_minutes": 10.08, "error_budget_minutes_left": -51.12,
                "maintenance_minutes": 120.0, "incident_count": 2, "mttr_minutes": 60.0,
                "mtbf_minutes": 5010.0,
                "incidents": [
                    {"id": "m1", "service": "shop", "automatic": false,
                     "title": "checkout down, \"payment\" <provider> & bank\nline two",
                     "start": "2026-11-04T02:00:00.000Z", "end": "2026-11-04T03:00:00.000Z",
                     "start_ms": 0, "end_ms": 0, "share": 1.0, "impact": 1.0,
                     "acknowledged": true, "root_cause": null, "follow_up": [],
                     "customer_impacting": true, "history": [], "lost_minutes": 60.0},
                    {"id": "m2", "service": "shop", "automatic": false, "title": "eu slow",
                     "start": "2026-11-05T11:20:00.000Z", "end": "2026-11-05T12:20:00.000Z",
                     "start_ms": 0, "end_ms": 0, "share": 0.1, "impact": 0.2,
                     "acknowledged": true, "root_cause": "disk full", "follow_up": [],
                     "customer_impacting": true, "history": [], "lost_minutes": 1.2}],
                "without_root_cause": ["m1"]},
              {
                "service": "a-service-with-a-rather-long-name-for-a-column",
                "scheduled_minutes": 3600.0, "downtime_minutes": 0.0,
                "availability_percent": 100.0, "target_percent": 99.0, "met": true,
                "error_budget_minutes": 36.0, "error_budget_minutes_left": 36.0,
                "maintenance_minutes": 0.0, "incident_count": 0, "mttr_minutes": null,
                "mtbf_minutes": null, "incidents": [], "without_root_cause": []}],
            "total": {"weighted_percent": 99.552632, "serial_percent": 99.392857, "met": false}
        });
        let period = Period {
            from: "2026-11-02T00:00:00Z".parse().unwrap(),
            to: "2026-11-09T00:00:00Z".parse().unwrap(),
            label: "2026-W45".into(),
        };
        (serde_json::from_value(json).unwrap(), period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_talkers_and_exit_status_follow_the_targets() {
        let (mut r, _) = sample::report();
        assert_eq!(r.exit_code(), EXIT_MISSED);
        assert_eq!(r.missed(), vec!["shop"]);
        let ids: Vec<_> = r.incidents_by_loss().iter().map(|i| &i.id).collect();
        assert_eq!(ids, ["m1", "m2"]);
        r.services.remove(0);
        r.total.met = true;
        assert_eq!(r.exit_code(), EXIT_MET);
    }
}
