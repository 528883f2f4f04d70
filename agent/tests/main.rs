//! The agent's integration tests, one binary: each module was a test binary of its own.

mod check_config;
mod cli;
mod plugins;
mod spool_damage;
