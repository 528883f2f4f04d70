//! Foundations below every layer: time, randomness, latency histograms, the Prometheus text
//! exposition writer, the process's descriptor budget, what an accept loop does when `accept`
//! fails, and the poisoned-lock policy. Nothing here imports from any other module of the
//! aggregator.

pub mod accept;
pub mod descriptors;
pub mod exposition;
pub mod histogram;
pub mod random;
pub mod sync;
pub mod time;
