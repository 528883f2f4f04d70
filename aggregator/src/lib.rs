//! nines-aggregator: mTLS ingest, redb store, HTTP API, PKI and the demo.
//!
//! The layers, from the top (docs/design.md, "The map"): `cli` → `server` → `http`, `ingest` →
//! `alerts`, `availability`, `forecast`, `promql`, `remote_write`, `report` → `pki`, `store` →
//! `config`, `util`. A module imports only from layers below its own.

pub mod alerts;
pub mod availability;
pub mod cli;
pub mod config;
pub mod forecast;
pub mod http;
pub mod ingest;
pub mod pki;
pub mod promql;
pub mod remote_write;
pub mod report;
pub mod server;
pub mod store;
pub mod util;

pub use config::Config;
pub use server::{Server, run};
