//! What ingest accepts of a `Batch`, as a pure function of the batch, the aggregator's clock
//! and the bounds (docs/protocol.md, "Sequence numbers" and "Timestamps"): a sequence number
//! outside `1..=MAX_SEQ` refuses the whole batch; a point outside the time window, or with a
//! value that is not finite, is refused alone and the rest of the batch is kept.

use std::time::Duration;

use nines_common::proto::{MAX_SEQ, Point};

/// 9999-12-31T23:59:59.999Z in ms ([`crate::util::time::MAX_MS`]): no accepted point is later,
/// whatever the clock and the configuration say, so every stored time formats.
pub const MAX_TS_MS: i64 = crate::util::time::MAX_MS;

/// The time window a point must fall in, relative to the aggregator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointBounds {
    /// Points older than this are refused (`[ingest] max_point_age`).
    pub max_age: Duration,
    /// Points further ahead of the clock than this are refused (`[ingest] max_future`).
    pub max_future: Duration,
}

impl Default for PointBounds {
    fn default() -> Self {
        Self {
            max_age: crate::store::StoreOptions::default().raw_retention,
            max_future: Duration::from_secs(600),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PointBounds {
    /// The accepted timestamps at `now_ms`, inclusive: never before the Unix epoch and never
    /// after [`MAX_TS_MS`], so every accepted timestamp can be formatted and subtracted from
    /// any other without overflow.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        let lo = now_ms.saturating_sub(ms(self.max_age)).clamp(0, MAX_TS_MS);
        let hi = now_ms
            .saturating_add(ms(self.max_future))
            .clamp(0, MAX_TS_MS);
        (lo, hi)
    }
}

/// Why a single point was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointRefusal {
    /// Older than `max_point_age` (or before 1970).
    TooOld,
    /// More than `max_future` ahead of the aggregator's clock (or after year 9999).
    TooFarInFuture,
    /// NaN or ±∞.
    NotFinite,
}

impl PointRefusal {
    /// The `reason` label of `nines_ingest_points_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooOld => "too_old",
            Self::TooFarInFuture => "too_far_in_future",
            Self::NotFinite => "not_finite",
        }
    }
}

/// Points refused, per reason, and the first one refused for the time window (for the log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    /// Older than the window.
    pub too_old: u64,
    /// Later than the window.
    pub too_far_in_future: u64,
    /// Not finite.
    pub not_finite: u64,
    /// Timestamp of the first point refused for its time, if any.
    pub first_ts_ms: Option<i64>,
}

impl Refused {
    /// Points refused in all.
    pub fn total(&self) -> u64 {
        self.too_old
            .saturating_add(self.too_far_in_future)
            .saturating_add(self.not_finite)
    }
}

/// A batch refused as a whole: its sequence number is 0 or above [`MAX_SEQ`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "batch sequence number {0} is outside 1..={MAX_SEQ}: refused, not acknowledged \
     (a damaged spool or a hostile agent)"
)]
pub struct BadSequence(pub u64);

/// Whether `seq` may be stored and acknowledged.
pub fn check_seq(seq: u64) -> Result<(), BadSequence> {
    if (1..=MAX_SEQ).contains(&seq) {
        Ok(())
    } else {
        Err(BadSequence(seq))
    }
}

/// Whether one point may be stored, given the window of [`PointBounds::window`].
pub fn check_point(p: &Point, window: (i64, i64)) -> Result<(), PointRefusal> {
    if !p.value.is_finite() {
        Err(PointRefusal::NotFinite)
    } else if p.ts_ms < window.0 {
        Err(PointRefusal::TooOld)
    } else if p.ts_ms > window.1 {
        Err(PointRefusal::TooFarInFuture)
    } else {
        Ok(())
    }
}

/// Checks a batch at `now_ms`: `Err` if its sequence number refuses it whole, else the points
/// to keep (in order) and what was refused.
pub fn check_batch(
    seq: u64,
    points: Vec<Point>,
    now_ms: i64,
    bounds: &PointBounds,
) -> Result<(Vec<Point>, Refused), BadSequence> {
    check_seq(seq)?;
    let window = bounds.window(now_ms);
    let mut refused = Refused::default();
    let mut kept = Vec::with_capacity(points.len());
    for p in points {
        match check_point(&p, window) {
            Ok(()) => kept.push(p),
            Err(why) => {
                match why {
                    PointRefusal::TooOld => refused.too_old += 1,
                    PointRefusal::TooFarInFuture => refused.too_far_in_future += 1,
                    PointRefusal::NotFinite => refused.not_finite += 1,
                }
                if why != PointRefusal::NotFinite {
                    refused.first_ts_ms.get_or_insert(p.ts_ms);
                }
            }
        }
    }
    Ok((kept, refused))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOW: i64 = 1_765_000_000_000;

    fn p(ts_ms: i64, value: f64) -> Point {
        Point {
            series: 1,
            ts_ms,
            value,
        }
    }

    #[test]
    fn sequence_numbers_outside_one_to_i64_max_refuse_the_batch() {
        let b = PointBounds::default();
        for seq in [0, MAX_SEQ + 1, u64::MAX - 1, u64::MAX] {
            assert_eq!(
                check_batch(seq, vec![p(NOW, 1.0)], NOW, &b),
                Err(BadSequence(seq))
            );
        }
        for seq in [1, MAX_SEQ] {
            assert!(check_batch(seq, vec![p(NOW, 1.0)], NOW, &b).is_ok());
        }
    }

    #[test]
    fn points_outside_the_window_are_refused_one_by_one() {
        let b = PointBounds {
            max_age: Duration::from_secs(3600),
            max_future: Duration::from_secs(600),
        };
        let points = vec![
            p(NOW, 1.0),
            p(NOW - 3_600_000, 2.0),
            p(NOW - 3_600_001, 3.0),
            p(NOW + 600_000, 4.0),
            p(NOW + 600_001, 5.0),
            p(253_402_300_800_000, 6.0),
            p(i64::MAX, 7.0),
            p(i64::MIN, 8.0),
            p(-1, 9.0),
            p(NOW, f64::NAN),
            p(NOW, f64::INFINITY),
        ];
        let (kept, refused) = check_batch(7, points, NOW, &b).unwrap();
        let values: Vec<f64> = kept.iter().map(|p| p.value).collect();
        assert_eq!(values, [1.0, 2.0, 4.0]);
        assert_eq!(
            refused,
            Refused {
                too_old: 3,
                too_far_in_future: 3,
                not_finite: 2,
                first_ts_ms: Some(NOW - 3_600_001),
            }
        );
        assert_eq!(refused.total(), 8);
    }

    #[test]
    fn the_window_stays_within_1970_to_9999_whatever_the_clock_and_bounds() {
        let huge = PointBounds {
            max_age: Duration::MAX,
            max_future: Duration::MAX,
        };
        for now in [i64::MIN, -1, 0, NOW, MAX_TS_MS, i64::MAX] {
            let (lo, hi) = huge.window(now);
            assert!((0..=MAX_TS_MS).contains(&lo) && (0..=MAX_TS_MS).contains(&hi));
            let (lo, hi) = PointBounds::default().window(now);
            assert!(lo <= hi && lo >= 0 && hi <= MAX_TS_MS, "{now}: {lo}..{hi}");
        }
    }
}
