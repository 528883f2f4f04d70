//! nines-agent: collectors, durable spool and mTLS shipper.

pub mod checks;
pub mod collect;
pub mod config;
pub mod error;
pub mod identity;
pub mod net;
pub mod run;
pub mod ship;
pub mod spool;

pub use config::Config;
pub use run::run;
