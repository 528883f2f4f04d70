//! Rebuilding the writer's state from the file: at start, and after a failed commit, when the
//! file is reopened and proved writable first.

use nines_common::model::now_ms;
use redb::ReadableTable;

use super::Writer;
use super::apply::push_point;
use crate::store::{CLOSED, META, StoreError, WAL, WAL_POINT, db_err};
use crate::util::sync;

impl Writer {
    /// After a failed commit: reopens the file (redb refuses further use of a handle after an
    /// I/O error), proves it writable with a small durable commit, and rebuilds the writer's
    /// state from it exactly as at start. Whatever the failed transaction did is gone; the
    /// batches in it were never acked.
    pub(super) fn recover(&mut self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let err = db_err(&inner.path);
        {
            let mut db = sync::write(&inner.db);
            // Drop the old handle first: it holds the file's lock.
            *db = None;
            *db = Some(crate::store::open_db(&inner.path, &inner.options)?);
        }
        let mut txn = inner.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        let mut closed = vec![0; self.persisted.len()];
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            meta.insert("recovered_at", now_ms())
                .map_err(|e| err(e.into()))?;
            let table = txn.open_table(CLOSED).map_err(|e| err(e.into()))?;
            for row in table.iter().map_err(|e| err(e.into()))? {
                let (k, v) = row.map_err(|e| err(e.into()))?;
                if let Some(slot) = closed.get_mut(k.value() as usize) {
                    *slot = v.value();
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        self.closed = closed;
        self.open_by_wal.clear();
        self.full.clear();
        self.retention.cursor = None;
        self.compaction.cursor = None;
        self.compacted_from.clear();
        self.replay()
    }

    /// Rebuilds the heads from the write-ahead table, skipping points already in chunks.
    pub(in crate::store) fn replay(&mut self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let err = db_err(&inner.path);
        let txn = inner.begin_read()?;
        let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let mut next = meta
            .get("next_wal")
            .map_err(|e| err(e.into()))?
            .map_or(1, |v| v.value().max(1) as u64);
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        let mut heads = sync::write(&inner.heads);
        heads.clear();
        let mut floor = None;
        let series = self.persisted.len();
        for row in wal.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let seq = k.value();
            floor.get_or_insert(seq);
            next = next.max(seq + 1);
            let bytes = v.value();
            let Some(wall) = bytes.get(..8) else { continue };
            let wall = i64::from_le_bytes(wall.try_into().unwrap_or([0; 8]));
            for p in bytes[8..].chunks_exact(WAL_POINT) {
                let (id, ts, value) = decode_point(p);
                if id as usize >= series
                    || self.closed.get(id as usize).copied().unwrap_or(0) >= seq
                {
                    continue;
                }
                push_point(
                    &mut heads,
                    &mut self.open_by_wal,
                    &mut self.full,
                    inner.options.chunk_points,
                    seq,
                    wall,
                    (id, ts, value),
                );
            }
        }
        self.next_wal = next;
        self.wal_floor = floor.unwrap_or(next);
        Ok(())
    }
}

fn decode_point(p: &[u8]) -> (u32, i64, f64) {
    let id = u32::from_le_bytes(p[0..4].try_into().unwrap_or([0; 4]));
    let ts = i64::from_le_bytes(p[4..12].try_into().unwrap_or([0; 8]));
    let v = f64::from_bits(u64::from_le_bytes(p[12..20].try_into().unwrap_or([0; 8])));
    (id, ts, v)
}
