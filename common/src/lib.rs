//! nines-common: the wire protocol, the metric model and TLS configuration shared by the agent
//! and the aggregator. No sockets and no files: callers own I/O.

#[cfg(feature = "cli-docs")]
pub mod cli_docs;
pub mod diag;
pub mod metrics;
pub mod model;
pub mod proto;
pub mod tls;
pub mod util;

pub use model::{HostId, Sample, SeriesKey};
