//! A lock-free latency histogram with fixed buckets, in Prometheus' shape (cumulative `le`
//! buckets, a sum and a count). Below every layer that times something (store commits, alert
//! evaluations, HTTP requests); `/metrics` writes it out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The buckets every nines histogram has, seconds: Prometheus' default ones (5 ms to 10 s)
/// and 1 ms and 2.5 ms below them, where most API answers and durable commits on flash fall.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Observations counted into fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// What a histogram held at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative, ending with
    /// `f64::INFINITY` and the count.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
    /// Observations.
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(DEFAULT_BUCKETS)
    }
}

impl Histogram {
    /// A histogram over `bounds` (seconds, ascending), plus `+Inf`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The buckets, sum and count now. Read without a lock: a concurrent observation may be in
    /// the sum and not yet in a bucket. The count is the `+Inf` bucket, so buckets and count
    /// always agree, as Prometheus requires.
    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        for (le, c) in bounds.zip(self.counts.iter()) {
            total += c.load(Ordering::Relaxed);
            buckets.push((le, total));
        }
        Snapshot {
            buckets,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new(&[0.01, 0.1, 1.0]);
        for ms in [1, 10, 50, 100, 700, 3000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(
            s.buckets,
            vec![(0.01, 2), (0.1, 4), (1.0, 5), (f64::INFINITY, 6)]
        );
        assert_eq!(s.count, 6);
        assert!((s.sum_seconds - 3.861).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
