//! Reconnection backoff: exponential, capped, with bounded jitter.

use std::time::Duration;

/// Delays between reconnection attempts. Attempt 0 follows a connection that worked: it waits
/// up to `first` (jitter only, so clients cut off together do not all return in the same
/// millisecond). Attempt `n` waits between half of and the whole of `min(cap, base · 2^(n-1))`:
/// bounded jitter, so nobody waits the full cap by chance while the peer is already back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of attempt 1.
    pub base: Duration,
    /// The ceiling no attempt exceeds.
    pub cap: Duration,
    /// The ceiling of attempt 0.
    pub first: Duration,
}

impl Backoff {
    /// The delay before attempt `attempt`, drawn from `rng` (deterministic for a seed).
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        if attempt == 0 {
            return self.first.mul_f64(rng.f64());
        }
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl((attempt - 1).min(16)).unwrap_or(u32::MAX))
            .min(self.cap);
        ceiling.mul_f64(0.5 + 0.5 * rng.f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_half_and_whole() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            first: Duration::from_millis(10),
        };
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            assert!(b.delay(0, &mut rng) <= Duration::from_millis(10));
            let d = b.delay(2, &mut rng);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
            let d = b.delay(40, &mut rng);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
        }
    }
}
