//! Range queries: raw points, or aggregates per step answered from the coarsest rollup that
//! divides the step.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::rollup::{self, Agg, AggFn, HOUR, MINUTE};
use super::{CHUNKS, ROLLUP_1H, ROLLUP_1M, Store, StoreError, db_err, label_map};
use crate::store::chunk;
use crate::util::sync;

/// A stepped query: one aggregate per `ms`-wide bucket, buckets aligned to multiples of `ms`
/// since the epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Bucket width, ms.
    pub ms: i64,
    /// What each bucket reports.
    pub agg: AggFn,
}

/// Where a query's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Raw points.
    Raw,
    /// Raw points where they are kept, 1 min rollups of older ones.
    #[serde(rename = "1m")]
    Minute,
    /// 1 h rollups (and raw points not rolled up yet).
    #[serde(rename = "1h")]
    Hour,
}

/// A stored series and its points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoints {
    /// Labels.
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// `[timestamp ms, value]` pairs in time order; with a step, the timestamp is the start of
    /// the bucket.
    pub points: Vec<(i64, f64)>,
}

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The answer would hold more points than allowed.
    #[error(
        "the query would return {points} points, more than max_points={max}; narrow the range, raise step, or raise max_points"
    )]
    TooManyPoints {
        /// Points the answer would hold (at least).
        points: u64,
        /// The bound.
        max: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Points of `host`'s series named `name` whose labels include every `(k, v)` of
    /// `matchers`, with `from <= ts <= to` (raw), or per step bucket from the bucket holding
    /// `from` through `to`. At most `max_points` points in all.
    pub fn query(
        &self,
        host: &str,
        name: &str,
        matchers: &[(String, String)],
        (from, to): (i64, i64),
        step: Option<Step>,
        max_points: u64,
    ) -> Result<(Resolution, Vec<SeriesPoints>), QueryError> {
        let series = self.matching(host, Some(name), matchers);
        let err = db_err(&self.inner.path);
        let resolution = match step {
            None => Resolution::Raw,
            Some(s) if s.ms % HOUR == 0 => Resolution::Hour,
            Some(s) if s.ms % MINUTE == 0 => Resolution::Minute,
            Some(_) => Resolution::Raw,
        };
        let from = match step {
            Some(s) => rollup::bucket(from, s.ms),
            None => from,
        };
        if let Some(s) = step {
            let buckets = (to.saturating_sub(from) / s.ms).saturating_add(1).max(0) as u64;
            let total = buckets.saturating_mul(series.len() as u64);
            if total > max_points {
                return Err(QueryError::TooManyPoints {
                    points: total,
                    max: max_points,
                });
            }
        }
        // Head points first, then a read transaction, both under the heads' read lock: the
        // writer commits only under the write lock, so each point is seen exactly once.
        let (head_points, txn) = {
            let heads = sync::read(&self.inner.heads);
            let points: Vec<Vec<(i64, f64)>> = series
                .iter()
                .map(|(id, _)| {
                    heads
                        .get(*id as usize)
                        .and_then(Option::as_ref)
                        .filter(|h| h.max_ts >= from && h.min_ts <= to)
                        .map(|h| h.points().filter(|(t, _)| *t >= from && *t <= to).collect())
                        .unwrap_or_default()
                })
                .collect();
            let txn = self.inner.begin_read()?;
            (points, txn)
        };
        let max_span = self.inner.max_chunk_span.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(series.len());
        let mut total = 0u64;
        for ((id, key), head) in series.iter().zip(head_points) {
            let id = u64::from(*id);
            let points = match (step, resolution) {
                (Some(s), Resolution::Minute | Resolution::Hour) => {
                    let table = if resolution == Resolution::Hour {
                        ROLLUP_1H
                    } else {
                        ROLLUP_1M
                    };
                    let rows = txn.open_table(table).map_err(|e| err(e.into()))?;
                    let mut buckets: Vec<(i64, Agg)> = Vec::new();
                    let mut add = |b: i64, agg: Agg| match buckets.last_mut() {
                        Some((start, a)) if *start == b => a.merge(&agg),
                        _ => buckets.push((b, agg)),
                    };
                    let width = if resolution == Resolution::Hour {
                        HOUR
                    } else {
                        MINUTE
                    };
                    let first_block = rollup::bucket(from, rollup::block_width(width));
                    for row in rows
                        .range((id, first_block)..=(id, to))
                        .map_err(|e| err(e.into()))?
                    {
                        let (k, v) = row.map_err(|e| err(e.into()))?;
                        let block = rollup::decode_block(v.value()).map_err(|e| {
                            let what = format!("rollup block of series {id} at {}", k.value().1);
                            StoreError::corrupt(&self.inner.path, what, e)
                        })?;
                        for (b, agg) in block {
                            if b >= from && b <= to {
                                add(rollup::bucket(b, s.ms), agg);
                            }
                        }
                    }
                    let mut fresh = head;
                    if resolution == Resolution::Minute {
                        // 1 min rollups hold only points whose raw copies expired: the
                        // rest are still raw.
                        fresh.extend(self.raw(&txn, id, from, to, max_span)?);
                    }
                    merge_buckets(&mut buckets, rollup::aggregate(sorted(fresh), s.ms));
                    buckets
                        .into_iter()
                        .map(|(b, a)| (b, a.get(s.agg)))
                        .collect()
                }
                _ => {
                    let mut raw = self.raw(&txn, id, from, to, max_span)?;
                    raw.extend(head);
                    let raw = sorted(raw);
                    match step {
                        Some(s) => rollup::aggregate(raw, s.ms)
                            .into_iter()
                            .map(|(b, a)| (b, a.get(s.agg)))
                            .collect(),
                        None => raw,
                    }
                }
            };
            total += points.len() as u64;
            if total > max_points {
                return Err(QueryError::TooManyPoints {
                    points: total,
                    max: max_points,
                });
            }
            out.push(SeriesPoints {
                labels: label_map(key),
                points,
            });
        }
        Ok((resolution, out))
    }

    /// Raw points of series `id` in closed chunks with `from <= ts <= to`.
    fn raw(
        &self,
        txn: &redb::ReadTransaction,
        id: u64,
        from: i64,
        to: i64,
        max_span: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let err = db_err(&self.inner.path);
        let chunks = txn.open_table(CHUNKS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        let lo = (id, from.saturating_sub(max_span));
        for row in chunks.range(lo..=(id, to)).map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let (start, (end, bytes)) = (k.value().1, v.value());
            if end < from {
                continue;
            }
            let (ts, values) = chunk::decode(bytes).map_err(|e| {
                let what = format!("chunk of series {id} at {start}");
                StoreError::corrupt(&self.inner.path, what, e)
            })?;
            out.extend(
                ts.into_iter()
                    .zip(values)
                    .filter(|(t, _)| *t >= from && *t <= to),
            );
        }
        Ok(out)
    }
}

fn sorted(mut points: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    points.sort_by_key(|p| p.0);
    points
}

/// Merges time-ordered `more` into time-ordered `buckets`.
fn merge_buckets(buckets: &mut Vec<(i64, Agg)>, more: Vec<(i64, Agg)>) {
    if more.is_empty() {
        return;
    }
    for (b, agg) in more {
        match buckets.binary_search_by_key(&b, |x| x.0) {
            Ok(i) => buckets[i].1.merge(&agg),
            Err(i) => buckets.insert(i, (b, agg)),
        }
    }
}
