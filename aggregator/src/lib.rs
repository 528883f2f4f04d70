//! nines-aggregator: mTLS ingest, redb store, HTTP API, PKI and the demo.

pub mod accept;
pub mod alerts;
pub mod api;
pub mod api_alerts;
pub mod api_availability;
pub mod api_forecast;
mod api_layers;
pub mod api_serve;
pub mod api_tls;
pub mod availability;
pub mod bench_ingest;
pub mod bench_storage;
pub mod bench_store;
pub mod chunk;
pub mod config;
pub mod demo;
pub mod descriptors;
pub mod enroll;
pub mod forecast;
pub mod ingest;
pub mod ingest_check;
mod ingest_enroll;
pub mod ingest_tls;
pub mod openapi;
pub mod pki;
pub mod prom;
pub mod ratelimit;
pub mod remote_write;
pub mod report;
pub mod revoke;
pub mod server;
pub mod status;
pub mod store;
pub mod time;

pub use config::Config;
pub use server::{Server, run};
