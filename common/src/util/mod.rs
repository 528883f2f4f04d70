//! Small helpers the agent and the aggregator share, each written once: hex encoding, random
//! bytes, reconnection backoff, name globs and the poisoned-lock policy.

pub mod backoff;
pub mod glob;
pub mod hex;
pub mod random;
pub mod sync;
