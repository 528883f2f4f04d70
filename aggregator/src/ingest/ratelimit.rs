//! Rate limits on the ingest port: failed enrollments per source address (a token bucket each),
//! and log lines about hostile input (so a flood cannot fill the journal). Both take the time
//! as an argument, so tests drive them with a clock of their own.

use crate::util::sync;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed enrollments one source address may make at once.
pub const ENROLL_FAILURE_BURST: u32 = 5;
/// One more failed enrollment is allowed this often, up to the burst.
pub const ENROLL_FAILURE_EVERY: Duration = Duration::from_secs(10);
/// Addresses tracked at most; beyond, the addresses not yet tracked share one bucket, so a
/// flood from many addresses is limited as a whole and memory stays bounded.
const MAX_TRACKED: usize = 4096;

/// What a bucket is keyed by: an IPv4 address, or the /64 of an IPv6 one (a host usually
/// owns a whole /64, so rotating addresses inside it gains nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
    /// Every address not tracked because the table is full.
    Overflow,
}

fn source(ip: IpAddr) -> Source {
    match ip {
        IpAddr::V4(a) => Source::V4(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => Source::V4(u32::from(v4)),
            None => Source::V6((u128::from(a) >> 64) as u64),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, in units of one failure.
    tokens: f64,
    at: Instant,
}

/// Per source address: a token bucket of failed attempts, `burst` deep, refilled by one every
/// `every`. An attempt takes a token up front (so concurrent guesses cannot all pass) and
/// gets it back if it succeeds.
#[derive(Debug)]
pub struct FailureLimit {
    burst: u32,
    every: Duration,
    buckets: Mutex<HashMap<Source, Bucket>>,
}

impl Default for FailureLimit {
    fn default() -> Self {
        Self::new(ENROLL_FAILURE_BURST, ENROLL_FAILURE_EVERY)
    }
}

impl FailureLimit {
    /// A limit of `burst` failures at once, one more every `every`.
    pub fn new(burst: u32, every: Duration) -> Self {
        Self {
            burst: burst.max(1),
            every: every.max(Duration::from_millis(1)),
            buckets: Mutex::default(),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let gained = now.saturating_duration_since(b.at).as_secs_f64() / self.every.as_secs_f64();
        b.tokens = (b.tokens + gained).min(f64::from(self.burst));
        b.at = now;
    }

    /// Takes a token for an attempt from `ip` at `now`; `Err` with the wait until the next
    /// token if there is none (the attempt must be refused without being looked at).
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut m = sync::lock(&self.buckets);
        let mut key = source(ip);
        if !m.contains_key(&key) && m.len() >= MAX_TRACKED {
            // Forget the addresses whose buckets are full again: they owe nothing.
            let burst = f64::from(self.burst);
            m.retain(|_, b| {
                let gained =
                    now.saturating_duration_since(b.at).as_secs_f64() / self.every.as_secs_f64();
                b.tokens + gained < burst
            });
            if m.len() >= MAX_TRACKED {
                key = Source::Overflow;
            }
        }
        let b = m.entry(key).or_insert(Bucket {
            tokens: f64::from(self.burst),
            at: now,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.every.mul_f64(1.0 - b.tokens))
        }
    }

    /// The attempt from `ip` that took a token succeeded: it gets its token back.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut m = sync::lock(&self.buckets);
        let key = match source(ip) {
            k if m.contains_key(&k) => k,
            _ => Source::Overflow,
        };
        if let Some(b) = m.get_mut(&key) {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.burst));
        }
    }
}

/// At most `per_minute` lines a minute; the next line after a quiet spell says how many were
/// left out.
#[derive(Debug)]
pub struct LogLimit {
    per_minute: u32,
    state: Mutex<(Instant, u32, u64)>,
}

impl LogLimit {
    /// A limit of `per_minute` lines a minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of lines left out
    /// since the last one written, `None` if this one is to be left out.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut s = sync::lock(&self.state);
        let (start, written, suppressed) = &mut *s;
        if now.saturating_duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *written = 0;
        }
        if *written < self.per_minute {
            *written += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn failures_past_the_burst_wait_for_the_refill_and_each_address_has_its_own() {
        let limit = FailureLimit::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            limit.take(a, t0).unwrap();
        }
        let wait = limit.take(a, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        // Another address is not affected.
        limit.take(b, t0).unwrap();
        // One token back after 10 s, and only one.
        let t1 = t0 + Duration::from_secs(10);
        limit.take(a, t1).unwrap();
        assert!(limit.take(a, t1).is_err());
        // A success gives its token back.
        let t2 = t1 + Duration::from_secs(10);
        limit.take(a, t2).unwrap();
        limit.succeeded(a);
        limit.take(a, t2).unwrap();
        assert!(limit.take(a, t2).is_err());
        // The same IPv6 /64 is one source.
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let d: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        for _ in 0..3 {
            limit.take(c, t0).unwrap();
        }
        assert!(limit.take(d, t0).is_err());
    }

    #[test]
    fn a_flood_from_many_addresses_shares_one_bucket_past_the_table_limit() {
        let limit = FailureLimit::new(1, Duration::from_secs(3600));
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            limit.take(IpAddr::V4(i.into()), t0).unwrap();
        }
        let extra = |i: u32| IpAddr::V4((MAX_TRACKED as u32 + i).into());
        limit.take(extra(0), t0).unwrap();
        assert!(limit.take(extra(1), t0).is_err(), "overflow bucket shared");
        assert!(limit.buckets.lock().unwrap().len() <= MAX_TRACKED + 1);
    }

    #[test]
    fn log_lines_are_limited_per_minute_and_the_next_one_counts_what_was_left_out() {
        let log = LogLimit::new(2);
        let t0 = Instant::now();
        assert_eq!(log.allow(t0), Some(0));
        assert_eq!(log.allow(t0), Some(0));
        assert_eq!(log.allow(t0), None);
        assert_eq!(log.allow(t0), None);
        assert_eq!(log.allow(t0 + Duration::from_secs(61)), Some(2));
    }
}
