//! Closing heads into chunks: which heads are due (full, or open for `head_max_age`, or all
//! on a flush), writing them as chunks with their 1 h rollups, and how much of the
//! write-ahead table the heads left open still need.

use std::sync::atomic::Ordering;

use redb::{ReadableTable, WriteTransaction};

use super::Writer;
use super::maintenance::merge_rollups;
use crate::store::chunk;
use crate::store::head::Head;
use crate::store::rollup::{self, HOUR};
use crate::store::{CHUNKS, CLOSED, META, ROLLUP_1H, StoreError};
use crate::util::sync;

impl Writer {
    /// Series whose heads are to be closed in this commit.
    pub(super) fn due(&mut self, now: i64, all: bool) -> Vec<u32> {
        let heads = sync::read(&self.inner.heads);
        let mut out: Vec<u32> = if all {
            heads
                .iter()
                .enumerate()
                .filter(|(_, h)| h.is_some())
                .map(|(id, _)| id as u32)
                .collect()
        } else {
            let limit = self.inner.options.chunk_points;
            let mut out: Vec<u32> = self
                .full
                .drain(..)
                .filter(|id| {
                    heads
                        .get(*id as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|h| h.len() >= limit)
                })
                .collect();
            let max_age =
                i64::try_from(self.inner.options.head_max_age.as_millis()).unwrap_or(i64::MAX);
            // Heads opened by the oldest commits first; stop at the first commit whose heads
            // are young enough.
            for (&wseq, ids) in &self.open_by_wal {
                let mut young = false;
                for &id in ids {
                    if let Some(h) = heads.get(id as usize).and_then(Option::as_ref)
                        && h.first_wal == wseq
                    {
                        if now - h.opened_ms >= max_age {
                            out.push(id);
                        } else {
                            young = true;
                        }
                    }
                }
                if young {
                    break;
                }
            }
            out
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The lowest commit number a head still open after this commit needs, dropping entries
    /// of closed heads on the way.
    pub(super) fn watermark(&mut self, closing: &[u32], seq: u64) -> u64 {
        let heads = sync::read(&self.inner.heads);
        while let Some(mut entry) = self.open_by_wal.first_entry() {
            let wseq = *entry.key();
            entry.get_mut().retain(|id| {
                heads
                    .get(*id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|h| h.first_wal == wseq)
                    && closing.binary_search(id).is_err()
            });
            if entry.get().is_empty() {
                entry.remove();
            } else {
                return wseq;
            }
        }
        seq
    }

    /// Writes the heads of `ids` as chunks with their 1 h rollups, and marks them closed
    /// through commit `seq - 1`. (1 min rollups are made when raw points expire: until then
    /// the raw points answer 1 min steps as cheaply, and cost less to keep.)
    pub(super) fn close(
        &self,
        txn: &mut WriteTransaction,
        heads: &[Option<Head>],
        ids: &[u32],
        seq: u64,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let err = self.err();
        let mut chunks = txn.open_table(CHUNKS).map_err(|e| err(e.into()))?;
        let mut r1h = txn.open_table(ROLLUP_1H).map_err(|e| err(e.into()))?;
        let mut closed = txn.open_table(CLOSED).map_err(|e| err(e.into()))?;
        let mut max_span = self.inner.max_chunk_span.load(Ordering::Relaxed);
        let before = max_span;
        for &id in ids {
            let Some(head) = heads.get(id as usize).and_then(Option::as_ref) else {
                continue;
            };
            let (mut ts, mut values) = head.sorted_columns();
            let key = (u64::from(id), ts[0]);
            // A chunk may already start at this very timestamp (late points): merge.
            let existing = chunks
                .get(key)
                .map_err(|e| err(e.into()))?
                .map(|v| chunk::decode(v.value().1));
            if let Some(decoded) = existing {
                let (old_ts, old_values) = decoded.map_err(|e| {
                    let what = format!("chunk of series {id} at {}", key.1);
                    StoreError::corrupt(&self.inner.path, what, e)
                })?;
                let mut all: Vec<(i64, f64)> = old_ts.into_iter().zip(old_values).collect();
                all.extend(ts.iter().copied().zip(values.iter().copied()));
                all.sort_by_key(|p| p.0);
                (ts, values) = all.into_iter().unzip();
            }
            let end = *ts.last().unwrap_or(&key.1);
            let bytes = chunk::encode(&ts, &values);
            chunks
                .insert(key, (end, bytes.as_slice()))
                .map_err(|e| err(e.into()))?;
            max_span = max_span.max(end - key.1);
            let points = || ts.iter().copied().zip(values.iter().copied());
            let path = &self.inner.path;
            merge_rollups(&mut r1h, id, rollup::aggregate(points(), HOUR), HOUR, path)?;
            closed
                .insert(u64::from(id), seq - 1)
                .map_err(|e| err(e.into()))?;
        }
        if max_span > before {
            self.record_span(txn, max_span)?;
        }
        Ok(())
    }

    /// Records a longer chunk span: queries start looking for chunks that far before their
    /// range.
    pub(super) fn record_span(
        &self,
        txn: &WriteTransaction,
        max_span: i64,
    ) -> Result<(), StoreError> {
        let err = self.err();
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.insert("max_chunk_span", max_span)
            .map_err(|e| err(e.into()))?;
        self.inner.max_chunk_span.store(max_span, Ordering::Relaxed);
        Ok(())
    }
}
