//! The writer thread: group commits, heads, chunk closing, rollups, write-ahead trimming and
//! retention. Everything that changes the database happens here, one transaction at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nines_common::model::now_ms;
use nines_common::proto::MAX_SEQ;
use redb::{ReadableTable, Table, WriteTransaction};
use tokio::sync::mpsc;

use super::head::Head;
use super::rollup::{self, Agg, HOUR, MINUTE};
use super::{
    CHUNKS, CLOSED, HOSTS, HostRecord, Inner, META, Op, ROLLUP_1H, ROLLUP_1M, SERIES, StoreError,
    WAL, WAL_POINT, db_err, labels_json,
};
use crate::store::chunk;
use crate::util::sync;

/// After a storage error, reopening the file is tried this often.
const RECOVERY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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
/// Compaction makes chunks of at most this many bytes, far below a 4 KiB redb page. A value
/// longer than a page gets a leaf of 2, 4 or 8 pages (a power of two), which wastes up to half
/// of it and which `Database::compact` cannot move below free space without an aligned block
/// of that size, so the file could not shrink past it (see [`super::Store::compact_file`]).
/// A B-tree split puts at most half of a leaf's bytes plus one entry in each half, so entries
/// of this size (and their 28 bytes of key and offsets) do not make multi-page leaves either.
/// Chunks closed from heads can be longer (240 full-precision floats: about 1,900 bytes) but
/// still fit a page. Small values also pack pages well when `compact_file` rewrites the
/// table. Measured on the storage mix: 1,000 to 1,600 bytes pack to within 2 % of each other;
/// 2,000 and 4,000 bytes cost 15 % more pages (a page holds one chunk and little else).
pub(super) const CHUNK_BYTES: usize = 1300;

/// A background pass over every series, one slice of series ids per transaction.
struct Pass {
    /// When the next pass starts.
    next: Instant,
    /// The first series id of the next slice of the pass under way.
    cursor: Option<u32>,
}

impl Pass {
    fn new(every: std::time::Duration) -> Self {
        Self {
            next: Instant::now() + every,
            cursor: None,
        }
    }

    /// The series ids of the next slice: the pass under way goes on, or a new one starts if
    /// one is due. `None` when there is nothing to do.
    fn slice(
        &mut self,
        series: u32,
        size: u32,
        every: std::time::Duration,
    ) -> Option<std::ops::Range<u32>> {
        let start = match self.cursor {
            Some(c) => c,
            None if Instant::now() >= self.next => {
                self.next = Instant::now() + every;
                0
            }
            None => return None,
        };
        let end = start.saturating_add(size).min(series);
        self.cursor = (end < series).then_some(end);
        Some(start..end)
    }
}

pub(super) struct Writer {
    inner: Arc<Inner>,
    /// By series id: its catalog row is in the table.
    persisted: Vec<bool>,
    /// By series id: the last commit whose points of the series are in closed chunks.
    closed: Vec<u64>,
    /// Number of the next commit that writes points.
    next_wal: u64,
    /// No write-ahead record below this is left.
    wal_floor: u64,
    /// Commit number → series whose head opened with a point of that commit. Entries of heads
    /// closed since are dropped lazily.
    open_by_wal: BTreeMap<u64, Vec<u32>>,
    /// Series whose head reached `chunk_points`.
    full: Vec<u32>,
    retention: Pass,
    compaction: Pass,
    /// By series: the first chunk start not known to be settled by compaction.
    compacted_from: Vec<i64>,
    /// After a failed commit: when to try reopening the file, and whether the outage has
    /// been logged.
    next_recovery: Instant,
    outage_logged: bool,
    /// Series first written by the transaction under way.
    new_series: Vec<u32>,
}

type Err = StoreError;

/// What one commit does besides storing batches.
#[derive(Default)]
struct Extra {
    flush: Vec<tokio::sync::oneshot::Sender<Result<u64, StoreError>>>,
    retain: Vec<tokio::sync::oneshot::Sender<Result<u64, StoreError>>>,
    compact: Vec<tokio::sync::oneshot::Sender<Result<u64, StoreError>>>,
    tick: bool,
}

impl Writer {
    pub(super) fn new(inner: Arc<Inner>, series: usize, closed: Vec<u64>) -> Self {
        Self {
            inner: inner.clone(),
            persisted: vec![true; series],
            closed,
            next_wal: 1,
            wal_floor: 0,
            open_by_wal: BTreeMap::new(),
            full: Vec::new(),
            retention: Pass::new(inner.options.maintenance_every),
            compaction: Pass::new(inner.options.maintenance_every),
            compacted_from: Vec::new(),
            next_recovery: Instant::now(),
            outage_logged: false,
            new_series: Vec::new(),
        }
    }

    fn err(&self) -> impl Fn(redb::Error) -> StoreError + '_ {
        db_err(&self.inner.path)
    }

    /// After a failed commit: reopens the file (redb refuses further use of a handle after an
    /// I/O error), proves it writable with a small durable commit, and rebuilds the writer's
    /// state from it exactly as at start. Whatever the failed transaction did is gone; the
    /// batches in it were never acked.
    fn recover(&mut self) -> Result<(), Err> {
        let inner = self.inner.clone();
        let err = db_err(&inner.path);
        {
            let mut db = sync::write(&inner.db);
            // Drop the old handle first: it holds the file's lock.
            *db = None;
            *db = Some(super::open_db(&inner.path, &inner.options)?);
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
    pub(super) fn replay(&mut self) -> Result<(), Err> {
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

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            // Group commit: everything that queued up while the previous commit was syncing
            // goes into this one.
            let mut ops = vec![first];
            while ops.len() < super::MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.commit(ops);
        }
    }

    fn commit(&mut self, ops: Vec<Op>) {
        let mut failed = sync::lock(&self.inner.failed).clone();
        if failed.is_some() && Instant::now() >= self.next_recovery {
            self.next_recovery = Instant::now() + RECOVERY_EVERY;
            match self.recover() {
                Ok(()) => {
                    tracing::info!("store is writable again; accepting batches");
                    *sync::lock(&self.inner.failed) = None;
                    self.outage_logged = false;
                    failed = None;
                }
                Err(e) => tracing::debug!("store still not writable: {e}"),
            }
        }
        let mut replies = Vec::with_capacity(ops.len());
        let mut extra = Extra::default();
        let mut batches = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Batch(b, reply) => batches.push((Some(b), None, reply)),
                Op::Hello(h, reply) => batches.push((None, Some(h), reply)),
                Op::Tick => extra.tick = true,
                Op::Flush(reply) => extra.flush.push(reply),
                Op::Retain(reply) => extra.retain.push(reply),
                Op::Compact(reply) => extra.compact.push(reply),
            }
        }
        if let Some(why) = failed {
            for (_, _, reply) in batches {
                let _ = reply.send(Err(StoreError::Failed(why.clone())));
            }
            for reply in extra
                .flush
                .into_iter()
                .chain(extra.retain)
                .chain(extra.compact)
            {
                let _ = reply.send(Err(StoreError::Failed(why.clone())));
            }
            return;
        }
        let started = Instant::now();
        let ops: Vec<_> = batches
            .iter_mut()
            .map(|(b, h, _)| (b.take(), h.take()))
            .collect();
        match self.apply(ops, &mut replies, &extra) {
            Ok((points, chunks, merged)) => {
                let stats = &self.inner.stats;
                stats.points.fetch_add(points, Ordering::Relaxed);
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.chunks_closed.fetch_add(chunks, Ordering::Relaxed);
                let took = started.elapsed();
                stats.commit_seconds.observe(took);
                let us = took.as_micros().try_into().unwrap_or(u64::MAX);
                stats.last_commit_us.store(us, Ordering::Relaxed);
                stats.commit_us_total.fetch_add(us, Ordering::Relaxed);
                for ((_, _, reply), value) in batches.into_iter().zip(replies) {
                    let _ = reply.send(Ok(value));
                }
                for reply in extra.flush.into_iter().chain(extra.retain) {
                    let _ = reply.send(Ok(chunks));
                }
                for reply in extra.compact {
                    let _ = reply.send(Ok(merged));
                }
            }
            Err(e) => {
                for id in self.new_series.drain(..) {
                    self.persisted[id as usize] = false;
                }
                if !self.outage_logged {
                    tracing::error!(
                        "store commit failed; refusing batches and retrying every {} s: {e}",
                        RECOVERY_EVERY.as_secs()
                    );
                    self.outage_logged = true;
                }
                self.next_recovery = Instant::now() + RECOVERY_EVERY;
                *sync::lock(&self.inner.failed) = Some(e.to_string());
                for (_, _, reply) in batches {
                    let _ = reply.send(Err(e.clone()));
                }
                for reply in extra
                    .flush
                    .into_iter()
                    .chain(extra.retain)
                    .chain(extra.compact)
                {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One transaction: hellos and batches, closing due heads, trimming the write-ahead table,
    /// and a slice of retention and of compaction. Returns the points stored, the chunks
    /// closed, and the chunks merged away.
    fn apply(
        &mut self,
        ops: Vec<(Option<super::BatchWrite>, Option<super::HelloWrite>)>,
        replies: &mut Vec<u64>,
        extra: &Extra,
    ) -> Result<(u64, u64, u64), Err> {
        let path = self.inner.path.clone();
        let err = db_err(&path);
        let inner = self.inner.clone();
        // The records of the hosts this commit touches, copied on first use; the shared map is
        // updated with them once the commit has returned.
        let mut hosts: HashMap<String, HostRecord> = HashMap::new();
        let known = |host: &str| sync::read(&inner.hosts).get(host).cloned();
        let mut txn = inner.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        let seq = self.next_wal;
        let now = now_ms();
        let mut wal_buf: Vec<u8> = Vec::new();
        wal_buf.extend_from_slice(&now.to_le_bytes());
        let mut points: Vec<(u32, i64, f64)> = Vec::new();
        {
            let mut series_t = txn.open_table(SERIES).map_err(|e| err(e.into()))?;
            let catalog = sync::read(&inner.catalog);
            self.new_series.clear();
            self.persisted.resize(catalog.len(), false);
            self.closed.resize(catalog.len(), 0);
            for op in ops {
                match op {
                    (_, Some(h)) => {
                        let rec = hosts.entry(h.host.to_string()).or_insert_with(|| {
                            known(h.host.as_str()).unwrap_or_else(|| HostRecord {
                                host: h.host.to_string(),
                                agent_version: String::new(),
                                os: String::new(),
                                arch: String::new(),
                                kernel: String::new(),
                                boot_id: String::new(),
                                interval_ms: 0,
                                first_seen_ms: h.now_ms,
                                last_sample_ms: 0,
                                last_seq: 0,
                            })
                        });
                        rec.agent_version.clone_from(&h.hello.agent_version);
                        rec.os.clone_from(&h.hello.os);
                        rec.arch.clone_from(&h.hello.arch);
                        rec.kernel.clone_from(&h.hello.kernel);
                        rec.boot_id.clone_from(&h.hello.boot_id);
                        rec.interval_ms = h.hello.interval_ms;
                        // Marks are at most MAX_SEQ (refused above it, repaired at open).
                        replies.push(rec.last_seq.min(MAX_SEQ) + 1);
                    }
                    (Some(b), None) => {
                        if !hosts.contains_key(b.host.as_str())
                            && let Some(rec) = known(b.host.as_str())
                        {
                            hosts.insert(b.host.to_string(), rec);
                        }
                        let Some(rec) = hosts.get_mut(b.host.as_str()) else {
                            // Ingest registers every host with a Hello first.
                            return Err(StoreError::Db {
                                path: path.clone(),
                                detail: format!("batch from unregistered host {}", b.host),
                            });
                        };
                        if b.seq <= rec.last_seq {
                            replies.push(rec.last_seq);
                            continue;
                        }
                        let host_number = catalog.host_number(&b.host);
                        for &(id, ts, value) in &b.points {
                            if catalog.host_of(id).is_none_or(|h| Some(h) != host_number) {
                                return Err(StoreError::Db {
                                    path: path.clone(),
                                    detail: format!(
                                        "batch of {} refers to series id {id}, not one of its own",
                                        b.host
                                    ),
                                });
                            }
                            let slot = &mut self.persisted[id as usize];
                            if !*slot {
                                let Some((host, key)) = catalog.series(id) else {
                                    continue;
                                };
                                series_t
                                    .insert(
                                        (
                                            host.as_str(),
                                            key.name.as_str(),
                                            labels_json(&key).as_str(),
                                        ),
                                        u64::from(id),
                                    )
                                    .map_err(|e| err(e.into()))?;
                                // Marked now so that it is written once; unmarked again if
                                // the commit fails.
                                *slot = true;
                                self.new_series.push(id);
                            }
                            wal_buf.extend_from_slice(&id.to_le_bytes());
                            wal_buf.extend_from_slice(&ts.to_le_bytes());
                            wal_buf.extend_from_slice(&value.to_bits().to_le_bytes());
                            rec.last_sample_ms = rec.last_sample_ms.max(ts);
                        }
                        points.extend_from_slice(&b.points);
                        rec.last_seq = b.seq;
                        replies.push(b.seq);
                    }
                    (None, None) => {}
                }
            }
        }

        // Heads to close: full ones, old ones, or all of them on a flush.
        let closing = self.due(now, !extra.flush.is_empty());
        let closed_count = closing.len() as u64;
        {
            let heads = sync::read(&inner.heads);
            self.close(&mut txn, &heads, &closing, seq)?;
        }

        // The write-ahead record, and the trim below the oldest head left open.
        let wrote_wal = !points.is_empty();
        {
            let mut wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
            if wrote_wal {
                wal.insert(seq, wal_buf.as_slice())
                    .map_err(|e| err(e.into()))?;
            }
            let keep_from = self.watermark(&closing, seq);
            if keep_from > self.wal_floor {
                wal.retain_in(self.wal_floor..keep_from, |_, _| false)
                    .map_err(|e| err(e.into()))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            meta.insert("next_wal", (seq + 1) as i64)
                .map_err(|e| err(e.into()))?;
            self.wal_floor = self.wal_floor.max(keep_from);
        }

        if !extra.retain.is_empty() {
            self.retention.cursor = Some(0);
            while self.retention.cursor.is_some() {
                self.retention_slice(&mut txn, now)?;
            }
        } else if extra.tick {
            self.retention_slice(&mut txn, now)?;
        }
        let mut merged = 0;
        if !extra.compact.is_empty() {
            self.compaction.cursor = Some(0);
            while self.compaction.cursor.is_some() {
                merged += self.compaction_slice(&mut txn, now, true)?;
            }
        } else if extra.tick {
            merged += self.compaction_slice(&mut txn, now, false)?;
        }

        {
            let mut hosts_t = txn.open_table(HOSTS).map_err(|e| err(e.into()))?;
            for (host, rec) in &hosts {
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
        for &id in &closing {
            if let Some(slot) = heads.get_mut(id as usize) {
                *slot = None;
            }
            if let Some(c) = self.closed.get_mut(id as usize) {
                *c = seq - 1;
            }
        }
        let n = points.len() as u64;
        self.new_series.clear();
        for &p in &points {
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
            && !points.is_empty()
        {
            let catalog = sync::read(&inner.catalog);
            hook(&points, &|id| {
                catalog.series(id).map(|(h, k)| (h.clone(), k))
            });
        }
        sync::write(&inner.hosts).extend(hosts);
        if wrote_wal {
            self.next_wal = seq + 1;
        }
        Ok((n, closed_count, merged))
    }

    /// Series whose heads are to be closed in this commit.
    fn due(&mut self, now: i64, all: bool) -> Vec<u32> {
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
    fn watermark(&mut self, closing: &[u32], seq: u64) -> u64 {
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
    fn close(
        &self,
        txn: &mut WriteTransaction,
        heads: &[Option<Head>],
        ids: &[u32],
        seq: u64,
    ) -> Result<(), Err> {
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
                let (old_ts, old_values) = decoded.map_err(|e| StoreError::Db {
                    path: self.inner.path.clone(),
                    detail: format!("chunk of series {id} at {}: {e}", key.1),
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
            merge_rollups(&mut r1h, id, rollup::aggregate(points(), HOUR), HOUR)?;
            closed
                .insert(u64::from(id), seq - 1)
                .map_err(|e| err(e.into()))?;
        }
        if max_span > before {
            self.record_span(txn, max_span)?;
        }
        Ok(())
    }

    /// One slice of the retention pass: deletes chunks and rollup rows that expired, and
    /// trims chunks that straddle the raw cutoff, so exactly the expired points go.
    fn retention_slice(&mut self, txn: &mut WriteTransaction, now: i64) -> Result<(), Err> {
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
            expire_rollups(&mut r1m, id, cut_1m, MINUTE)?;
            expire_rollups(&mut r1h, id, cut_1h, HOUR)?;
        }
        Ok(())
    }
}

impl Writer {
    /// Records a longer chunk span: queries start looking for chunks that far before their
    /// range.
    fn record_span(&self, txn: &WriteTransaction, max_span: i64) -> Result<(), Err> {
        let err = self.err();
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.insert("max_chunk_span", max_span)
            .map_err(|e| err(e.into()))?;
        self.inner.max_chunk_span.store(max_span, Ordering::Relaxed);
        Ok(())
    }

    /// One slice of the compaction pass. Returns the chunks merged away.
    fn compaction_slice(
        &mut self,
        txn: &mut WriteTransaction,
        now: i64,
        force: bool,
    ) -> Result<u64, Err> {
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
    ) -> Result<u64, Err> {
        let err = self.err();
        let mut ts = Vec::new();
        let mut values = Vec::new();
        for &Row { start, .. } in run {
            let Some(v) = chunks.remove((id, start)).map_err(|e| err(e.into()))? else {
                continue;
            };
            let (t, x) = chunk::decode(v.value().1).map_err(|e| StoreError::Db {
                path: self.inner.path.clone(),
                detail: format!("chunk of series {id} at {start}: {e}"),
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

fn decode_point(p: &[u8]) -> (u32, i64, f64) {
    let id = u32::from_le_bytes(p[0..4].try_into().unwrap_or([0; 4]));
    let ts = i64::from_le_bytes(p[4..12].try_into().unwrap_or([0; 8]));
    let v = f64::from_bits(u64::from_le_bytes(p[12..20].try_into().unwrap_or([0; 8])));
    (id, ts, v)
}

fn push_point(
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

fn merge_rollups(
    table: &mut Table<(u64, i64), &[u8]>,
    id: u32,
    aggs: Vec<(i64, Agg)>,
    width: i64,
) -> Result<(), Err> {
    let err = |e: String| StoreError::Db {
        path: std::path::PathBuf::new(),
        detail: e,
    };
    let block_width = rollup::block_width(width);
    let mut i = 0;
    while i < aggs.len() {
        let block = rollup::bucket(aggs[i].0, block_width);
        let mut j = i;
        while j < aggs.len() && rollup::bucket(aggs[j].0, block_width) == block {
            j += 1;
        }
        let key = (u64::from(id), block);
        let mut rows = match table.get(key).map_err(|e| err(e.to_string()))? {
            Some(old) => rollup::decode_block(old.value())
                .map_err(|e| err(format!("rollup block of series {id} at {block}: {e}")))?,
            None => Vec::new(),
        };
        rollup::merge_rows(&mut rows, aggs[i..j].iter().copied());
        let bytes = rollup::encode_block(&rows);
        table
            .insert(key, bytes.as_slice())
            .map_err(|e| err(e.to_string()))?;
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
) -> Result<(), Err> {
    let err = |e: String| StoreError::Db {
        path: std::path::PathBuf::new(),
        detail: e,
    };
    let mut found: Vec<(i64, Vec<u8>)> = Vec::new();
    for row in table
        .range((id, i64::MIN)..(id, cut))
        .map_err(|e| err(e.to_string()))?
    {
        let (k, v) = row.map_err(|e| err(e.to_string()))?;
        found.push((k.value().1, v.value().to_vec()));
    }
    for (block, bytes) in found {
        let rows = rollup::decode_block(&bytes)
            .map_err(|e| err(format!("rollup block of series {id} at {block}: {e}")))?;
        let kept: Vec<(i64, Agg)> = rows
            .iter()
            .copied()
            .filter(|(b, _)| b.saturating_add(width) > cut)
            .collect();
        if kept.is_empty() {
            table.remove((id, block)).map_err(|e| err(e.to_string()))?;
        } else if kept.len() != rows.len() {
            let bytes = rollup::encode_block(&kept);
            table
                .insert((id, block), bytes.as_slice())
                .map_err(|e| err(e.to_string()))?;
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
    path: &std::path::Path,
) -> Result<(), Err> {
    let err = |e: redb::StorageError| StoreError::Db {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let mut found: Vec<(i64, Vec<u8>)> = Vec::new();
    for row in chunks.range((id, i64::MIN)..(id, cut)).map_err(err)? {
        let (k, v) = row.map_err(err)?;
        found.push((k.value().1, v.value().1.to_vec()));
    }
    let mut expired: Vec<(i64, f64)> = Vec::new();
    for (start, bytes) in found {
        let (ts, values) = chunk::decode(&bytes).map_err(|e| StoreError::Db {
            path: path.to_owned(),
            detail: format!("chunk of series {id} at {start}: {e}"),
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
    merge_rollups(r1m, id, rollup::aggregate(expired, MINUTE), MINUTE)
}
