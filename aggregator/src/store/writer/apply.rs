//! One group commit as one transaction: each write is staged by its own function (a `Hello`
//! updates its host's record, a batch appends its points to the write-ahead record), then due
//! heads are closed, the write-ahead table is trimmed, a maintenance slice runs, and the
//! transaction commits. Receipts are made only after `commit()` returned.

use std::collections::{BTreeMap, HashMap};

use nines_common::model::now_ms;
use nines_common::proto::MAX_SEQ;
use redb::{Table, WriteTransaction};

use super::{Applied, Committed, Extra, Write, Writer};
use crate::store::catalog::Catalog;
use crate::store::head::Head;
use crate::store::{
    BatchWrite, HOSTS, HelloWrite, HostRecord, META, SERIES, StoreError, WAL, db_err, labels_json,
};
use crate::util::sync;

/// The series catalog table, as the writer opens it.
type SeriesTable<'txn> = Table<'txn, (&'static str, &'static str, &'static str), u64>;

/// What the writes of one group commit change, before it commits.
struct Staged {
    /// The records of the hosts this commit touches, copied on first use; the shared map is
    /// updated with them once the commit has returned.
    hosts: HashMap<String, HostRecord>,
    /// The write-ahead record: the wall clock, then the points (see `WAL`).
    wal: Vec<u8>,
    /// The points stored, in order.
    points: Vec<(u32, i64, f64)>,
    /// Per write, the sequence number its receipt will carry.
    marks: Vec<u64>,
}

impl Writer {
    /// One transaction: hellos and batches, closing due heads, trimming the write-ahead table,
    /// and a slice of retention and of compaction.
    pub(super) fn apply(
        &mut self,
        writes: Vec<Write>,
        extra: &Extra,
    ) -> Result<Applied, StoreError> {
        let inner = self.inner.clone();
        let err = db_err(&inner.path);
        let mut txn = inner.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        let seq = self.next_wal;
        let now = now_ms();
        let mut staged = Staged {
            hosts: HashMap::new(),
            wal: now.to_le_bytes().to_vec(),
            points: Vec::new(),
            marks: Vec::with_capacity(writes.len()),
        };
        {
            let mut series = txn.open_table(SERIES).map_err(|e| err(e.into()))?;
            let catalog = sync::read(&inner.catalog);
            self.new_series.clear();
            self.persisted.resize(catalog.len(), false);
            self.closed.resize(catalog.len(), 0);
            for write in writes {
                let mark = match write {
                    Write::Hello(h) => self.stage_hello(&mut staged, &h),
                    Write::Batch(b) => self.stage_batch(&mut staged, &mut series, &catalog, &b)?,
                };
                staged.marks.push(mark);
            }
        }

        // Heads to close: full ones, old ones, or all of them on a flush.
        let closing = self.due(now, !extra.flush.is_empty());
        {
            let heads = sync::read(&inner.heads);
            self.close(&mut txn, &heads, &closing, seq)?;
        }
        self.write_ahead(&txn, &staged, &closing, seq)?;
        let merged = self.maintain(&mut txn, now, extra)?;
        {
            let mut hosts_t = txn.open_table(HOSTS).map_err(|e| err(e.into()))?;
            for (host, rec) in &staged.hosts {
                let json = serde_json::to_string(rec).unwrap_or_default();
                hosts_t
                    .insert(host.as_str(), json.as_str())
                    .map_err(|e| err(e.into()))?;
            }
        }

        // Commit with the heads locked, so that no reader sees a closed chunk both on disk
        // and in memory, then bring the heads up to date.
        let mut heads = sync::write(&inner.heads);
        txn.commit().map_err(|e| err(e.into()))?;
        // Durable: from here on, and only here, the writes get their receipts.
        let receipts = staged.marks.iter().map(|&m| Committed::new(m)).collect();
        for &id in &closing {
            if let Some(slot) = heads.get_mut(id as usize) {
                *slot = None;
            }
            if let Some(c) = self.closed.get_mut(id as usize) {
                *c = seq - 1;
            }
        }
        self.new_series.clear();
        for &p in &staged.points {
            push_point(
                &mut heads,
                &mut self.open_by_wal,
                &mut self.full,
                inner.options.chunk_points,
                seq,
                now,
                p,
            );
        }
        drop(heads);
        if let Some(hook) = inner.on_commit.0.get()
            && !staged.points.is_empty()
        {
            let catalog = sync::read(&inner.catalog);
            hook(&staged.points, &|id| {
                catalog.series(id).map(|(h, k)| (h.clone(), k))
            });
        }
        sync::write(&inner.hosts).extend(staged.hosts);
        if !staged.points.is_empty() {
            self.next_wal = seq + 1;
        }
        Ok(Applied {
            receipts,
            points: staged.points.len() as u64,
            chunks: closing.len() as u64,
            merged,
        })
    }

    /// The shared record of `host`, copied.
    fn known(&self, host: &str) -> Option<HostRecord> {
        sync::read(&self.inner.hosts).get(host).cloned()
    }

    /// A `Hello`: the host's record takes what it says. Returns the host's mark, the highest
    /// sequence number stored for it.
    fn stage_hello(&self, staged: &mut Staged, h: &HelloWrite) -> u64 {
        let host = h.host.as_str();
        let rec = staged.hosts.entry(host.to_owned()).or_insert_with(|| {
            self.known(host)
                .unwrap_or_else(|| first_seen(host, h.now_ms))
        });
        rec.agent_version.clone_from(&h.hello.agent_version);
        rec.os.clone_from(&h.hello.os);
        rec.arch.clone_from(&h.hello.arch);
        rec.kernel.clone_from(&h.hello.kernel);
        rec.boot_id.clone_from(&h.hello.boot_id);
        rec.interval_ms = h.hello.interval_ms;
        // Marks are at most MAX_SEQ (refused above it, repaired at open).
        rec.last_seq.min(MAX_SEQ)
    }

    /// A batch: its points go to the write-ahead record and its series, if new, to the
    /// catalog table. A batch at or below the host's mark is a duplicate: not written, and
    /// answered with the mark. Returns the sequence number the receipt carries.
    fn stage_batch(
        &mut self,
        staged: &mut Staged,
        series: &mut SeriesTable<'_>,
        catalog: &Catalog,
        b: &BatchWrite,
    ) -> Result<u64, StoreError> {
        let path = self.inner.path.clone();
        let Staged {
            hosts, wal, points, ..
        } = staged;
        if !hosts.contains_key(b.host.as_str())
            && let Some(rec) = self.known(b.host.as_str())
        {
            hosts.insert(b.host.to_string(), rec);
        }
        let Some(rec) = hosts.get_mut(b.host.as_str()) else {
            // Ingest registers every host with a Hello first.
            return Err(StoreError::db(
                &path,
                format!("batch from unregistered host {}", b.host),
            ));
        };
        if b.seq <= rec.last_seq {
            return Ok(rec.last_seq);
        }
        let host_number = catalog.host_number(&b.host);
        for &(id, ts, value) in &b.points {
            if catalog.host_of(id).is_none_or(|h| Some(h) != host_number) {
                return Err(StoreError::db(
                    &path,
                    format!(
                        "batch of {} refers to series id {id}, not one of its own",
                        b.host
                    ),
                ));
            }
            self.persist_series(series, catalog, id)?;
            wal.extend_from_slice(&id.to_le_bytes());
            wal.extend_from_slice(&ts.to_le_bytes());
            wal.extend_from_slice(&value.to_bits().to_le_bytes());
            rec.last_sample_ms = rec.last_sample_ms.max(ts);
        }
        points.extend_from_slice(&b.points);
        rec.last_seq = b.seq;
        Ok(b.seq)
    }

    /// Writes series `id`'s catalog row if no commit has yet.
    fn persist_series(
        &mut self,
        series: &mut SeriesTable<'_>,
        catalog: &Catalog,
        id: u32,
    ) -> Result<(), StoreError> {
        let slot = &mut self.persisted[id as usize];
        if *slot {
            return Ok(());
        }
        let Some((host, key)) = catalog.series(id) else {
            return Ok(());
        };
        series
            .insert(
                (host.as_str(), key.name.as_str(), labels_json(&key).as_str()),
                u64::from(id),
            )
            .map_err(|e| StoreError::redb(&self.inner.path, e))?;
        // Marked now so that it is written once; unmarked again if the commit fails.
        *slot = true;
        self.new_series.push(id);
        Ok(())
    }

    /// The write-ahead record of commit `seq`, if it stored points, and the trim below the
    /// oldest head left open.
    fn write_ahead(
        &mut self,
        txn: &WriteTransaction,
        staged: &Staged,
        closing: &[u32],
        seq: u64,
    ) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let err = db_err(&inner.path);
        let mut wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        if !staged.points.is_empty() {
            wal.insert(seq, staged.wal.as_slice())
                .map_err(|e| err(e.into()))?;
        }
        let keep_from = self.watermark(closing, seq);
        if keep_from > self.wal_floor {
            wal.retain_in(self.wal_floor..keep_from, |_, _| false)
                .map_err(|e| err(e.into()))?;
        }
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.insert("next_wal", (seq + 1) as i64)
            .map_err(|e| err(e.into()))?;
        self.wal_floor = self.wal_floor.max(keep_from);
        Ok(())
    }
}

/// The record of a host never seen before.
fn first_seen(host: &str, now_ms: i64) -> HostRecord {
    HostRecord {
        host: host.to_owned(),
        agent_version: String::new(),
        os: String::new(),
        arch: String::new(),
        kernel: String::new(),
        boot_id: String::new(),
        interval_ms: 0,
        first_seen_ms: now_ms,
        last_sample_ms: 0,
        last_seq: 0,
    }
}

/// Appends a committed point to its series' head, opening the head if there is none.
pub(super) fn push_point(
    heads: &mut Vec<Option<Head>>,
    open_by_wal: &mut BTreeMap<u64, Vec<u32>>,
    full: &mut Vec<u32>,
    chunk_points: usize,
    seq: u64,
    wall: i64,
    (id, ts, value): (u32, i64, f64),
) {
    let i = id as usize;
    if heads.len() <= i {
        heads.resize_with(i + 1, || None);
    }
    match &mut heads[i] {
        Some(h) => {
            h.push(ts, value);
            if h.len() == chunk_points {
                full.push(id);
            }
        }
        slot @ None => {
            *slot = Some(Head::new(seq, wall, ts, value));
            open_by_wal.entry(seq).or_default().push(id);
        }
    }
}
