//! Aggregates of raw points over fixed buckets (1 min and 1 h): min, max, sum, count and
//! last. Partial aggregates merge, so a bucket that two chunks share is completed when the
//! second one closes.

use serde::Serialize;

/// One minute, ms.
pub const MINUTE: i64 = 60_000;
/// One hour, ms.
pub const HOUR: i64 = 3_600_000;

/// An aggregate over one bucket. Stored in redb as the tuple
/// `(min, max, sum, count, last, last_ts)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
    pub last: f64,
    /// Timestamp of `last`: merging keeps the later one.
    pub last_ts: i64,
}

/// The redb form of [`Agg`].
pub type AggRow = (f64, f64, f64, u64, f64, i64);

impl Agg {
    /// The aggregate of one point.
    pub fn one(ts: i64, v: f64) -> Self {
        Self {
            min: v,
            max: v,
            sum: v,
            count: 1,
            last: v,
            last_ts: ts,
        }
    }

    /// Adds one point.
    pub fn add(&mut self, ts: i64, v: f64) {
        self.merge(&Self::one(ts, v));
    }

    /// Merges another aggregate of the same bucket (or of a bucket this one covers).
    pub fn merge(&mut self, o: &Self) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.count += o.count;
        if o.last_ts >= self.last_ts {
            self.last = o.last;
            self.last_ts = o.last_ts;
        }
    }

    /// The value a query asked for.
    pub fn get(&self, f: AggFn) -> f64 {
        match f {
            AggFn::Avg => self.sum / self.count as f64,
            AggFn::Min => self.min,
            AggFn::Max => self.max,
            AggFn::Sum => self.sum,
            AggFn::Last => self.last,
            AggFn::Count => self.count as f64,
        }
    }

    pub fn to_row(self) -> AggRow {
        (
            self.min,
            self.max,
            self.sum,
            self.count,
            self.last,
            self.last_ts,
        )
    }

    pub fn from_row(r: AggRow) -> Self {
        Self {
            min: r.0,
            max: r.1,
            sum: r.2,
            count: r.3,
            last: r.4,
            last_ts: r.5,
        }
    }
}

/// Aggregation function of a stepped query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    #[default]
    Avg,
    Min,
    Max,
    Sum,
    Last,
    Count,
}

impl AggFn {
    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
            Self::Last => "last",
            Self::Count => "count",
        }
    }
}

/// Start of the bucket of width `width` that holds `ts`.
pub fn bucket(ts: i64, width: i64) -> i64 {
    ts.div_euclid(width) * width
}

/// Aggregates points sorted by timestamp into buckets of `width`, in time order.
pub fn aggregate(points: impl IntoIterator<Item = (i64, f64)>, width: i64) -> Vec<(i64, Agg)> {
    let mut out: Vec<(i64, Agg)> = Vec::new();
    for (ts, v) in points {
        let b = bucket(ts, width);
        match out.last_mut() {
            Some((start, agg)) if *start == b => agg.add(ts, v),
            _ => out.push((b, Agg::one(ts, v))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn merged_partials_equal_the_whole() {
        let points: Vec<(i64, f64)> = (0..500).map(|i| (i * 7_000, (i % 13) as f64)).collect();
        let whole = aggregate(points.iter().copied(), MINUTE);
        let (a, b) = points.split_at(217);
        let mut merged = aggregate(a.iter().copied(), MINUTE);
        for (start, agg) in aggregate(b.iter().copied(), MINUTE) {
            match merged.iter_mut().find(|(s, _)| *s == start) {
                Some((_, m)) => m.merge(&agg),
                None => merged.push((start, agg)),
            }
        }
        assert_eq!(merged, whole);
        let first = whole[0].1;
        // 0, 7, 14, ..., 56 s: nine points, values 0..=8.
        assert_eq!(first.count, 9);
        assert_eq!(
            (first.min, first.max, first.sum, first.last),
            (0.0, 8.0, 36.0, 8.0)
        );
        assert_eq!(first.get(AggFn::Avg), 4.0);
    }

    #[test]
    fn buckets_floor_negative_times() {
        assert_eq!(bucket(-1, MINUTE), -MINUTE);
        assert_eq!(bucket(HOUR + 5, HOUR), HOUR);
    }
}
