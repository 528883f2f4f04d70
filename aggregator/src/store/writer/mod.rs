//! The writer thread: group commits, heads, chunk closing, rollups, write-ahead trimming and
//! retention. Everything that changes the database happens here, one transaction at a time:
//! [`apply`] stages one group's writes and commits them, [`heads`] closes heads into chunks,
//! [`maintenance`] runs retention and compaction slices, [`recover`] rebuilds the writer's
//! state at start and after a failed commit.

mod apply;
mod heads;
mod maintenance;
mod recover;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{BatchWrite, HelloWrite, Inner, StoreError};
use crate::util::sync;

/// After a storage error, reopening the file is tried this often.
const RECOVERY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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

/// The receipt of a durable write, and the only thing ingest can acknowledge a batch with.
///
/// The contract (docs/design.md, "Aggregator"): the writer creates a `Committed` for a batch
/// or a `Hello` only after the `Durability::Immediate` transaction that stored it returned
/// from `commit()`, that is after redb's fsync. Its constructor is private to the writer, so
/// no other code can make one; ingest's session turns a receipt, and nothing else, into an
/// `Ack`. An acked sample therefore survives `kill -9` and power loss.
///
/// [`Committed::through_seq`] is the host's highest sequence number stored by that commit:
/// the batch's own, or, for a duplicate that was not written again, the host's mark, which is
/// at least the duplicate's. For a `Hello` it is the mark the host resumes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    through_seq: u64,
}

impl Committed {
    /// Private to the writer: see the type's documentation.
    fn new(through_seq: u64) -> Self {
        Self { through_seq }
    }

    /// The host's highest sequence number durably stored.
    pub fn through_seq(self) -> u64 {
        self.through_seq
    }
}

/// Where the writer sends an operation's outcome.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer thread is asked to do.
pub(super) enum Op {
    /// Store a batch or a `Hello`; the receipt comes once it is committed.
    Write(Write, Reply<Committed>),
    /// Close old heads and run a slice of retention; sent by the maintenance ticker.
    Tick,
    /// Close every head now (tests, benchmarks, and `nines-bench storage`). Answers the chunks
    /// written.
    Flush(Reply<u64>),
    /// Run a whole retention pass now.
    Retain(Reply<u64>),
    /// Run a whole compaction pass now, merging even chunks that are not settled yet.
    /// Answers the chunks merged away.
    Compact(Reply<u64>),
}

/// A change of a host's data, acknowledged with a [`Committed`] receipt.
pub(super) enum Write {
    /// A registration: the host's record, and the mark it resumes after.
    Hello(HelloWrite),
    /// A batch of points.
    Batch(BatchWrite),
}

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

/// One group commit's operations, sorted by what they ask.
#[derive(Default)]
struct Group {
    writes: Vec<Write>,
    receipts: Vec<Reply<Committed>>,
    extra: Extra,
}

/// What one commit does besides storing writes.
#[derive(Default)]
struct Extra {
    flush: Vec<Reply<u64>>,
    retain: Vec<Reply<u64>>,
    compact: Vec<Reply<u64>>,
    tick: bool,
}

impl Group {
    fn new(ops: Vec<Op>) -> Self {
        let mut g = Self::default();
        for op in ops {
            match op {
                Op::Write(w, reply) => {
                    g.writes.push(w);
                    g.receipts.push(reply);
                }
                Op::Tick => g.extra.tick = true,
                Op::Flush(reply) => g.extra.flush.push(reply),
                Op::Retain(reply) => g.extra.retain.push(reply),
                Op::Compact(reply) => g.extra.compact.push(reply),
            }
        }
        g
    }
}

impl Extra {
    /// Answers every request but the writes with `e`.
    fn refuse(self, e: &StoreError) {
        for reply in self
            .flush
            .into_iter()
            .chain(self.retain)
            .chain(self.compact)
        {
            let _ = reply.send(Err(e.clone()));
        }
    }
}

/// What a committed transaction did.
struct Applied {
    /// One per write, in order.
    receipts: Vec<Committed>,
    /// Points stored.
    points: u64,
    /// Heads closed into chunks.
    chunks: u64,
    /// Chunks merged away by compaction.
    merged: u64,
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
        super::db_err(&self.inner.path)
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
            self.commit(Group::new(ops));
        }
    }

    /// Commits one group, or refuses all of it while the store is failed, and answers every
    /// operation in it.
    fn commit(&mut self, group: Group) {
        if let Some(why) = self.failure() {
            let e = StoreError::Failed(why);
            for reply in group.receipts {
                let _ = reply.send(Err(e.clone()));
            }
            group.extra.refuse(&e);
            return;
        }
        let Group {
            writes,
            receipts,
            extra,
        } = group;
        let started = Instant::now();
        match self.apply(writes, &extra) {
            Ok(applied) => {
                let stats = &self.inner.stats;
                stats.points.fetch_add(applied.points, Ordering::Relaxed);
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats
                    .chunks_closed
                    .fetch_add(applied.chunks, Ordering::Relaxed);
                let took = started.elapsed();
                stats.commit_seconds.observe(took);
                let us = took.as_micros().try_into().unwrap_or(u64::MAX);
                stats.last_commit_us.store(us, Ordering::Relaxed);
                stats.commit_us_total.fetch_add(us, Ordering::Relaxed);
                for (reply, receipt) in receipts.into_iter().zip(applied.receipts) {
                    let _ = reply.send(Ok(receipt));
                }
                for reply in extra.flush.into_iter().chain(extra.retain) {
                    let _ = reply.send(Ok(applied.chunks));
                }
                for reply in extra.compact {
                    let _ = reply.send(Ok(applied.merged));
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
                for reply in receipts {
                    let _ = reply.send(Err(e.clone()));
                }
                extra.refuse(&e);
            }
        }
    }

    /// Why the store refuses writes, after trying to recover if that is due.
    fn failure(&mut self) -> Option<String> {
        let failed = sync::lock(&self.inner.failed).clone();
        if failed.is_none() || Instant::now() < self.next_recovery {
            return failed;
        }
        self.next_recovery = Instant::now() + RECOVERY_EVERY;
        match self.recover() {
            Ok(()) => {
                tracing::info!("store is writable again; accepting batches");
                *sync::lock(&self.inner.failed) = None;
                self.outage_logged = false;
                None
            }
            Err(e) => {
                tracing::debug!("store still not writable: {e}");
                failed
            }
        }
    }
}
