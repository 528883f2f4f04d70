//! Maintenance inside the writer's transactions: retention (expired chunks and rollup rows
//! go, the 1 min rollups of expiring raw points are kept) and compaction (runs of small
//! chunks are merged), each a slice of series per commit or a whole pass on request.

use std::path::Path;
use std::sync::atomic::Ordering;

use redb::{ReadableTable, Table, WriteTransaction};

use super::{CHUNK_BYTES, Extra, Writer};
use crate::store::chunk;
use crate::store::rollup::{self, Agg, HOUR, MINUTE};
use crate::store::{CHUNKS, ROLLUP_1H, ROLLUP_1M, StoreError, db_err};

/// Series looked at by one retention slice (one transaction).
const RETENTION_SLICE: u32 = 2000;
/// Series looked at by one compaction slice.
const COMPACT_SLICE: u32 = 500;
/// A merged chunk spans at most this long, ms, which bounds how far before a query's start a
/// chunk can begin.
const MAX_MERGED_SPAN: i64 = 7 * 86_400_000;
/// A run of small chunks is merged once it holds half of `compact_points`, or once its last
/// point is this old (ms): a sparse series is not left in small pieces for ever.
const SETTLED_AGE: i64 = 86_400_000;
impl Writer {
    /// The maintenance a commit does: a whole pass of retention or compaction when one was
    /// asked for, else a slice of each on the ticker's beat. Returns the chunks merged away.
    pub(super) fn maintain(
        &mut self,
        txn: &mut WriteTransaction,
        now: i64,
        extra: &Extra,
    ) -> Result<u64, StoreError> {
        if !extra.retain.is_empty() {
            self.retention.cursor = Some(0);
            while self.retention.cursor.is_some() {
                self.retention_slice(txn, now)?;
            }
        } else if extra.tick {
            self.retention_slice(txn, now)?;
        }
        let mut merged = 0;
        if !extra.compact.is_empty() {
            self.compaction.cursor = Some(0);
            while self.compaction.cursor.is_some() {
                merged += self.compaction_slice(txn, now, true)?;
            }
        } else if extra.tick {
            merged += self.compaction_slice(txn, now, false)?;
        }
        Ok(merged)
    }

    /// One slice of the retention pass: deletes chunks and rollup rows that expired, and
    /// trims chunks that straddle the raw cutoff, so exactly the expired points go.
    fn retention_slice(&mut self, txn: &mut WriteTransaction, now: i64) -> Result<(), StoreError> {
        let series = self.persisted.len() as u32;
        let every = self.inner.options.maintenance_every;
        let Some(slice) = self.retention.slice(series, RETENTION_SLICE, every) else {
            return Ok(());
        };
        let opts = &self.inner.options;
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let raw_cut = now.saturating_sub(ms(opts.raw_retention));
        let cut_1m = now.saturating_sub(ms(opts.rollup_1m_retention));
        let cut_1h = now.saturating_sub(ms(opts.rollup_1h_retention));
        let err = self.err();
        let mut chunks = txn.open_table(CHUNKS).map_err(|e| err(e.into()))?;
        let mut r1m = txn.open_table(ROLLUP_1M).map_err(|e| err(e.into()))?;
        let mut r1h = txn.open_table(ROLLUP_1H).map_err(|e| err(e.into()))?;
        for id in slice {
            let id = u64::from(id);
            expire_chunks(
                &mut chunks,
                &mut r1m,
                id,
                (raw_cut, cut_1m),
                &self.inner.path,
            )?;
            // A bucket goes when all of it is older than the cutoff.
            expire_rollups(&mut r1m, id, cut_1m, MINUTE, &self.inner.path)?;
            expire_rollups(&mut r1h, id, cut_1h, HOUR, &self.inner.path)?;
        }
        Ok(())
    }

    /// One slice of the compaction pass. Returns the chunks merged away.
    fn compaction_slice(
        &mut self,
        txn: &mut WriteTransaction,
        now: i64,
        force: bool,
    ) -> Result<u64, StoreError> {
        let series = self.persisted.len() as u32;
        let every = self.inner.options.maintenance_every;
        let Some(slice) = self.compaction.slice(series, COMPACT_SLICE, every) else {
            return Ok(0);
        };
        if self.compacted_from.len() < series as usize {
            self.compacted_from.resize(series as usize, i64::MIN);
        }
        let target = self.inner.options.compact_points;
        let path = self.inner.path.clone();
        let err = db_err(&path);
        let mut chunks = txn.open_table(CHUNKS).map_err(|e| err(e.into()))?;
        let mut merged = 0;
        let mut max_span = self.inner.max_chunk_span.load(Ordering::Relaxed);
        let before = max_span;
        for id in slice {
            let from = self.compacted_from[id as usize];
            let key = u64::from(id);
            // Every chunk not known to be settled.
            let mut rows: Vec<Row> = Vec::new();
            for row in chunks
                .range((key, from)..=(key, i64::MAX))
                .map_err(|e| err(e.into()))?
            {
                let (k, v) = row.map_err(|e| err(e.into()))?;
                let (end, bytes) = v.value();
                rows.push(Row {
                    start: k.value().1,
                    end,
                    points: chunk::info(bytes).map_or(usize::MAX, |i| i.points),
                    bytes: bytes.len(),
                });
            }
            let mut settled_to = from;
            let mut i = 0;
            while i < rows.len() {
                // A run of small chunks from i, within the point, byte and span bounds. The
                // sum of the chunks' bytes overstates the merged chunk's (each chunk repeats
                // a header and the codec's tables), by about a quarter for 240-point chunks:
                // merge_run cuts what does not fit.
                let mut j = i;
                let (mut total, mut bytes) = (0, 0);
                while j < rows.len()
                    && rows[j].small(target)
                    && total + rows[j].points <= target
                    && bytes + rows[j].bytes <= CHUNK_BYTES * 5 / 4
                    && rows[j].end - rows[i].start <= MAX_MERGED_SPAN
                {
                    total += rows[j].points;
                    bytes += rows[j].bytes;
                    j += 1;
                }
                if j == i {
                    // A big chunk: settled.
                    settled_to = rows[i].start;
                    i += 1;
                    continue;
                }
                let full = total >= target / 2 || bytes >= CHUNK_BYTES || j < rows.len();
                let old = now - rows[j - 1].end >= SETTLED_AGE;
                if j - i >= 2 && (full || old || force) {
                    merged += self.merge_run(&mut chunks, key, &rows[i..j])?;
                    max_span = max_span.max(rows[j - 1].end - rows[i].start);
                    settled_to = rows[i].start;
                } else if !(full || old) {
                    // The newest run is still growing: look at it again next pass.
                    break;
                } else {
                    settled_to = rows[i].start;
                }
                i = j;
            }
            self.compacted_from[id as usize] = settled_to;
        }
        if max_span > before {
            self.record_span(txn, max_span)?;
        }
        Ok(merged)
    }

    /// Replaces the chunks `run` of series `id` by as few as hold their points in at most
    /// [`CHUNK_BYTES`] each: one, unless the run's points need more. Returns the chunks merged
    /// away.
    fn merge_run(
        &self,
        chunks: &mut Table<(u64, i64), (i64, &[u8])>,
        id: u64,
        run: &[Row],
    ) -> Result<u64, StoreError> {
        let err = self.err();
        let mut ts = Vec::new();
        let mut values = Vec::new();
        for &Row { start, .. } in run {
            let Some(v) = chunks.remove((id, start)).map_err(|e| err(e.into()))? else {
                continue;
            };
            let (t, x) = chunk::decode(v.value().1).map_err(|e| {
                let what = format!("chunk of series {id} at {start}");
                StoreError::corrupt(&self.inner.path, what, e)
            })?;
            ts.extend(t);
            values.extend(x);
        }
        // Chunks of one series may overlap when late points came in: sort to be sure.
        let mut points: Vec<(i64, f64)> = ts.into_iter().zip(values).collect();
        points.sort_by_key(|p| p.0);
        let (ts, values): (Vec<i64>, Vec<f64>) = points.into_iter().unzip();
        let mut written = 0;
        for (range, bytes) in encode_fitting(&ts, &values, CHUNK_BYTES) {
            chunks
                .insert((id, ts[range.start]), (ts[range.end - 1], bytes.as_slice()))
                .map_err(|e| err(e.into()))?;
            written += 1;
        }
        Ok((run.len() as u64).saturating_sub(written))
    }
}

/// A closed chunk as the compaction pass sees it.
struct Row {
    start: i64,
    end: i64,
    points: usize,
    bytes: usize,
}

impl Row {
    /// Small enough to be merged with its neighbours.
    fn small(&self, compact_points: usize) -> bool {
        self.points < compact_points / 2 && self.bytes < CHUNK_BYTES / 2
    }
}

/// Encodes the points in order as chunks of at most `budget` bytes each, every one but the
/// last within a few percent of the budget; a single point is one chunk whatever its size.
/// Returns each chunk's range of points and bytes.
fn encode_fitting(
    ts: &[i64],
    values: &[f64],
    budget: usize,
) -> Vec<(std::ops::Range<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < ts.len() {
        let mut len = ts.len() - start;
        let mut bytes = chunk::encode(&ts[start..start + len], &values[start..start + len]);
        // Bytes grow about linearly with points: shrink by the overshoot and a margin that
        // widens with each try, until it fits.
        let mut tries = 0u32;
        while bytes.len() > budget && len > 1 {
            tries += 1;
            let slack = 100 - 3 * tries.min(30) as usize;
            len = (len * budget / bytes.len() * slack / 100).clamp(1, len - 1);
            bytes = chunk::encode(&ts[start..start + len], &values[start..start + len]);
        }
        out.push((start..start + len, bytes));
        start += len;
    }
    out
}

/// Merges `aggs` (buckets of `width`, in order) of series `id` into its rollup blocks.
pub(super) fn merge_rollups(
    table: &mut Table<(u64, i64), &[u8]>,
    id: u32,
    aggs: Vec<(i64, Agg)>,
    width: i64,
    path: &Path,
) -> Result<(), StoreError> {
    let err = |e: redb::StorageError| StoreError::redb(path, e);
    let block_width = rollup::block_width(width);
    let mut i = 0;
    while i < aggs.len() {
        let block = rollup::bucket(aggs[i].0, block_width);
        let mut j = i;
        while j < aggs.len() && rollup::bucket(aggs[j].0, block_width) == block {
            j += 1;
        }
        let key = (u64::from(id), block);
        let mut rows = match table.get(key).map_err(err)? {
            Some(old) => rollup::decode_block(old.value()).map_err(|e| {
                StoreError::corrupt(path, format!("rollup block of series {id} at {block}"), e)
            })?,
            None => Vec::new(),
        };
        rollup::merge_rows(&mut rows, aggs[i..j].iter().copied());
        let bytes = rollup::encode_block(&rows);
        table.insert(key, bytes.as_slice()).map_err(err)?;
        i = j;
    }
    Ok(())
}

/// Deletes the rollup rows of series `id` whose bucket (of `width`) ends at or before `cut`.
fn expire_rollups(
    table: &mut Table<(u64, i64), &[u8]>,
    id: u64,
    cut: i64,
    width: i64,
    path: &Path,
) -> Result<(), StoreError> {
    let err = |e: redb::StorageError| StoreError::redb(path, e);
    let mut found: Vec<(i64, Vec<u8>)> = Vec::new();
    for row in table.range((id, i64::MIN)..(id, cut)).map_err(err)? {
        let (k, v) = row.map_err(err)?;
        found.push((k.value().1, v.value().to_vec()));
    }
    for (block, bytes) in found {
        let rows = rollup::decode_block(&bytes).map_err(|e| {
            StoreError::corrupt(path, format!("rollup block of series {id} at {block}"), e)
        })?;
        let kept: Vec<(i64, Agg)> = rows
            .iter()
            .copied()
            .filter(|(b, _)| b.saturating_add(width) > cut)
            .collect();
        if kept.is_empty() {
            table.remove((id, block)).map_err(err)?;
        } else if kept.len() != rows.len() {
            let bytes = rollup::encode_block(&kept);
            table.insert((id, block), bytes.as_slice()).map_err(err)?;
        }
    }
    Ok(())
}

/// Deletes the chunks of series `id` whose points all precede `cut`, and rewrites the one
/// that straddles it without its expired points. The expired points younger than `cut_1m`
/// are kept as 1 min rollups.
fn expire_chunks(
    chunks: &mut Table<(u64, i64), (i64, &[u8])>,
    r1m: &mut Table<(u64, i64), &[u8]>,
    id: u64,
    (cut, cut_1m): (i64, i64),
    path: &Path,
) -> Result<(), StoreError> {
    let err = |e: redb::StorageError| StoreError::redb(path, e);
    let mut found: Vec<(i64, Vec<u8>)> = Vec::new();
    for row in chunks.range((id, i64::MIN)..(id, cut)).map_err(err)? {
        let (k, v) = row.map_err(err)?;
        found.push((k.value().1, v.value().1.to_vec()));
    }
    let mut expired: Vec<(i64, f64)> = Vec::new();
    for (start, bytes) in found {
        let (ts, values) = chunk::decode(&bytes).map_err(|e| {
            StoreError::corrupt(path, format!("chunk of series {id} at {start}"), e)
        })?;
        chunks.remove((id, start)).map_err(err)?;
        let (mut keep_ts, mut keep_values) = (Vec::new(), Vec::new());
        for (t, v) in ts.into_iter().zip(values) {
            if t >= cut {
                keep_ts.push(t);
                keep_values.push(v);
            } else if t >= cut_1m {
                expired.push((t, v));
            }
        }
        let (ts, values) = (keep_ts, keep_values);
        if let (Some(&first), Some(&last)) = (ts.first(), ts.last()) {
            let bytes = chunk::encode(&ts, &values);
            chunks
                .insert((id, first), (last, bytes.as_slice()))
                .map_err(err)?;
        }
    }
    expired.sort_by_key(|p| p.0);
    let id = u32::try_from(id).unwrap_or(u32::MAX);
    merge_rollups(r1m, id, rollup::aggregate(expired, MINUTE), MINUTE, path)
}
