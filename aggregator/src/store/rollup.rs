//! Aggregates of raw points over fixed buckets (1 min and 1 h): min, max, sum, count and
//! last. Partial aggregates merge, so a bucket that two chunks share is completed when the
//! second one closes.

use serde::Serialize;

use crate::store::chunk;

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

/// One day, ms.
pub const DAY: i64 = 86_400_000;

/// Rollup rows are stored in blocks: the 1 min rows of an hour, the 1 h rows of a week
/// (blocks start on multiples of their width since the epoch, a Thursday for weeks).
pub fn block_width(width: i64) -> i64 {
    if width >= HOUR { 7 * DAY } else { HOUR }
}

/// Encodes time-ordered rows as five chunks (see [`crate::store::chunk`]): min, max, sum and count
/// against the bucket starts, and last against its own timestamps. A day of 1 h rows costs
/// about 150 bytes instead of 1.5 KB as table rows.
pub fn encode_block(rows: &[(i64, Agg)]) -> Vec<u8> {
    let starts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let column = |f: fn(&Agg) -> f64| -> Vec<f64> { rows.iter().map(|r| f(&r.1)).collect() };
    let last_ts: Vec<i64> = rows.iter().map(|r| r.1.last_ts).collect();
    let parts = [
        chunk::encode(&starts, &column(|a| a.min)),
        chunk::encode(&starts, &column(|a| a.max)),
        chunk::encode(&starts, &column(|a| a.sum)),
        chunk::encode(&starts, &column(|a| a.count as f64)),
        chunk::encode(&last_ts, &column(|a| a.last)),
    ];
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&p);
    }
    out
}

/// Decodes a block made by [`encode_block`].
pub fn decode_block(bytes: &[u8]) -> Result<Vec<(i64, Agg)>, chunk::ChunkError> {
    let mut rest = bytes;
    let mut cols: Vec<(Vec<i64>, Vec<f64>)> = Vec::with_capacity(5);
    for _ in 0..5 {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(chunk::ChunkError::Truncated("rollup block"))?;
        let len = u32::from_le_bytes(*len) as usize;
        let part = tail
            .get(..len)
            .ok_or(chunk::ChunkError::Truncated("rollup block"))?;
        cols.push(chunk::decode(part)?);
        rest = &tail[len..];
    }
    let n = cols[0].0.len();
    if cols.iter().any(|c| c.0.len() != n) {
        return Err(chunk::ChunkError::Corrupt(
            "rollup block columns differ in length",
        ));
    }
    Ok((0..n)
        .map(|i| {
            (
                cols[0].0[i],
                Agg {
                    min: cols[0].1[i],
                    max: cols[1].1[i],
                    sum: cols[2].1[i],
                    count: cols[3].1[i] as u64,
                    last: cols[4].1[i],
                    last_ts: cols[4].0[i],
                },
            )
        })
        .collect())
}

/// Merges time-ordered `more` into time-ordered `rows`.
pub fn merge_rows(rows: &mut Vec<(i64, Agg)>, more: impl IntoIterator<Item = (i64, Agg)>) {
    for (b, agg) in more {
        match rows.binary_search_by_key(&b, |x| x.0) {
            Ok(i) => rows[i].1.merge(&agg),
            Err(i) => rows.insert(i, (b, agg)),
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
    fn blocks_round_trip_and_refuse_garbage() {
        let rows = aggregate((0..600).map(|i| (i * 10_000, (i % 7) as f64 * 1.5)), MINUTE);
        let bytes = encode_block(&rows);
        assert_eq!(decode_block(&bytes).unwrap(), rows);
        // 100 one-minute rows cost well under the 64 bytes each a table row would.
        assert!(bytes.len() < 100 * 10, "{}", bytes.len());
        assert!(decode_block(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode_block(&[]).is_err());
    }

    #[test]
    fn buckets_floor_negative_times() {
        assert_eq!(bucket(-1, MINUTE), -MINUTE);
        assert_eq!(bucket(HOUR + 5, HOUR), HOUR);
    }
}
