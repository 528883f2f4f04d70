//! Availability of services over scheduled time (docs/design.md, "Availability"): schedules,
//! outages from data and from people, and the arithmetic of reports.
//!
//! Uptime is not availability: a host can be up while the service on it is not usable. A
//! service is available while its required hosts are up (all, or k of n), its required
//! processes run, and no incident says otherwise, counted only in scheduled time.

pub mod compute;
pub mod config;
pub mod gaps;
pub mod interval;
pub mod records;
pub mod schedule;
pub mod service;

pub use compute::{Outage, Summary, Total, Verdict, summarize, total};
pub use interval::Interval;
pub use schedule::effective_schedule;
pub use schedule::{Schedule, WeeklyWindow};
