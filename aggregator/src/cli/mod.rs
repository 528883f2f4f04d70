//! The subcommands of `nines-aggregator`, one module each.

pub mod check_config;
pub mod demo;
