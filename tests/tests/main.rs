//! The end-to-end tests, one module per area, linked into one test binary (each test binary
//! links the whole dependency graph again). They share one process: a test changes no
//! process-wide state (environment, current directory, signal handlers) but its descriptor
//! limit, and the floods that need most of that limit run alone (`nines_tests::load`).
//! Run one area with `cargo test -p nines-tests --test end_to_end hostile::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_enroll;
mod agent_goodbye;
mod alerts_e2e;
mod api_errors;
mod api_flood;
mod api_observability;
mod ca_rotation;
mod check_config_demo;
mod demo_walkthrough;
mod docs;
mod e2e;
mod fault_agent_kill;
mod fault_aggregator_away;
mod fault_aggregator_kill;
mod fault_disk_full;
mod fault_network_cut;
mod hostile;
mod layers;
mod logs;
mod prometheus;
mod status_page;
