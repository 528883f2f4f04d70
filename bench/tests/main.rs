//! The benchmarks at a tiny scale: each runs and reports every figure it promises. One test
//! binary for the crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ingest;
mod store;

/// The benchmark binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_nines-bench");
