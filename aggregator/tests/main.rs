//! The aggregator's integration tests, one module per area, in one test binary (each binary
//! links the whole crate again).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod api_alerts;
mod api_availability;
mod api_forecast;
mod api_hostile;
mod api_queries;
mod api_tls;
mod check_config;
mod cli;
mod enroll;
mod ingest_proto;
mod ingest_tls;
mod openapi;
mod report;
mod report_capacity;
mod revoke;
mod status;
mod store_crash;
mod store_full;
mod util;
