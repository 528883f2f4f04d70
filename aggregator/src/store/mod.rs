//! The time-series store on redb (docs/design.md, "Storage").
//!
//! One writer thread group-commits batches from every connection in a single
//! `Durability::Immediate` transaction and only then answers each batch, so an acknowledged
//! sample is on disk. A commit appends its points to the write-ahead table and, once
//! committed, to the in-memory heads (one open chunk per series). A head is closed into a
//! compressed chunk when it holds `chunk_points` points or has been open for `head_max_age`;
//! closing writes the chunk and its 1 min and 1 h rollups and trims the write-ahead table in
//! the same transaction. At start the heads are rebuilt from the write-ahead table. Readers use
//! redb's MVCC read transactions and a snapshot of the heads.

mod catalog;
pub mod chunk;
mod compact;
mod error;
mod head;
mod hook;
mod open;
mod query;
mod repair;
pub mod rollup;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::util::sync;
use nines_common::proto::MAX_SEQ;
use nines_common::{HostId, SeriesKey};
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use error::StoreError;
use error::db_err;
pub use head::Head;
pub use hook::{CommitHook, SeriesLookup};
use open::open_db;
pub use query::{QueryError, Resolution, SeriesPoints, Step};
pub use rollup::{Agg, AggFn};
pub use writer::Committed;
use writer::{Op, Write};

/// (host, metric name, labels as canonical JSON) → series id.
const SERIES: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("series");
/// host → JSON [`HostRecord`].
const HOSTS: TableDefinition<&str, &str> = TableDefinition::new("hosts");
/// Commit number → the points that commit stored: wall clock ms (i64), then per point the
/// series id (u32), timestamp ms (i64) and value (f64 bits), little-endian.
const WAL: TableDefinition<u64, &[u8]> = TableDefinition::new("wal");
/// Series id → the last commit number whose points of that series are in closed chunks.
/// Replaying the write-ahead table skips those.
const CLOSED: TableDefinition<u64, u64> = TableDefinition::new("closed");
/// (series id, first timestamp) → (last timestamp, chunk bytes, see [`crate::store::chunk`]).
const CHUNKS: TableDefinition<(u64, i64), (i64, &[u8])> = TableDefinition::new("chunks");
/// (series id, block start) → a block of rollup rows ([`rollup::encode_block`]): the 1 min
/// rows of an hour, the 1 h rows of a day.
const ROLLUP_1M: TableDefinition<(u64, i64), &[u8]> = TableDefinition::new("rollups_1m");
const ROLLUP_1H: TableDefinition<(u64, i64), &[u8]> = TableDefinition::new("rollups_1h");
/// Rollups as one row per bucket, as an earlier version stored them; deleted at open.
const LEGACY_ROLLUPS: [&str; 2] = ["rollup_1m", "rollup_1h"];
/// Store-wide values: `max_chunk_span` (ms).
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// Most batches in one transaction; more wait for the next commit.
const MAX_GROUP: usize = 4096;
/// Bytes of one point in the write-ahead table.
const WAL_POINT: usize = 20;

/// How long each resolution is kept, and how heads are closed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Raw points (closed chunks) are kept this long after their timestamp.
    pub raw_retention: Duration,
    /// 1 min rollups are kept this long.
    pub rollup_1m_retention: Duration,
    /// 1 h rollups are kept this long.
    pub rollup_1h_retention: Duration,
    /// A head is closed into a chunk at this many points.
    pub chunk_points: usize,
    /// A head is closed after this long open, full or not: the bound on replay at start.
    pub head_max_age: Duration,
    /// Page cache of redb, bytes.
    pub cache_bytes: usize,
    /// Retention and compaction passes start this often.
    pub maintenance_every: Duration,
    /// Closed chunks are merged with their neighbours up to this many points, so that the
    /// codec sees long runs (docs/design.md, "Chunk format").
    pub compact_points: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            raw_retention: Duration::from_secs(35 * DAY),
            rollup_1m_retention: Duration::from_secs(90 * DAY),
            rollup_1h_retention: Duration::from_secs(3 * 366 * DAY),
            chunk_points: 240,
            head_max_age: Duration::from_secs(3600),
            cache_bytes: 64 << 20,
            maintenance_every: Duration::from_secs(60),
            compact_points: 16384,
        }
    }
}

/// What the aggregator knows about a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host id.
    pub host: String,
    /// Agent version from the last `Hello`.
    pub agent_version: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// Boot id.
    pub boot_id: String,
    /// Sampling interval, ms.
    pub interval_ms: u32,
    /// First `Hello`, ms UTC.
    pub first_seen_ms: i64,
    /// Newest sample timestamp stored, ms UTC (0 if none).
    pub last_sample_ms: i64,
    /// Highest batch sequence number stored.
    pub last_seq: u64,
}

/// One batch from one host, its series resolved with [`Store::series_id`].
#[derive(Debug)]
pub struct BatchWrite {
    /// The sender.
    pub host: HostId,
    /// Its sequence number.
    pub seq: u64,
    /// (series id, timestamp ms, value).
    pub points: Vec<(u32, i64, f64)>,
}

/// A registration from a `Hello`.
#[derive(Debug)]
pub struct HelloWrite {
    /// The host.
    pub host: HostId,
    /// What it said about itself.
    pub hello: nines_common::proto::Hello,
    /// Aggregator time, ms UTC.
    pub now_ms: i64,
}

use catalog::Catalog;

/// Counters for the aggregator's own health.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Points committed since start.
    pub points: AtomicU64,
    /// Commits since start.
    pub commits: AtomicU64,
    /// Chunks closed since start.
    pub chunks_closed: AtomicU64,
    /// Duration of the last commit, µs.
    pub last_commit_us: AtomicU64,
    /// Duration of every commit since start, summed, µs.
    pub commit_us_total: AtomicU64,
    /// Durations of the commits since start, fsync included.
    pub commit_seconds: crate::util::histogram::Histogram,
}

/// Shared read side and a handle to the writer thread.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Op>,
}

#[derive(Debug)]
struct Inner {
    /// `None` while the writer reopens the file after a storage error.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    options: StoreOptions,
    hosts: RwLock<HashMap<String, HostRecord>>,
    catalog: RwLock<Catalog>,
    /// Open heads by series id. The writer holds the write lock from just before a commit
    /// until the heads reflect it, so a reader that takes the read lock and then opens a read
    /// transaction sees every point exactly once.
    heads: RwLock<Vec<Option<Head>>>,
    /// Longest span of any chunk, ms: how far before a query's start a chunk may begin.
    max_chunk_span: AtomicI64,
    failed: Mutex<Option<String>>,
    stats: StoreStats,
    on_commit: hook::OnCommit,
}

/// Join handle of the writer thread; joining waits for the last commit.
#[derive(Debug)]
pub struct WriterHandle(std::thread::JoinHandle<()>);

impl WriterHandle {
    /// Waits for the writer to finish its last commit (after every [`Store`] clone is dropped).
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl Inner {
    fn unavailable(&self) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            detail: "the database is being reopened after a storage error".into(),
        }
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        use redb::ReadableDatabase;
        let db = sync::read(&self.db);
        let db = db.as_ref().ok_or_else(|| self.unavailable())?;
        db.begin_read().map_err(|e| db_err(&self.path)(e.into()))
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let db = sync::read(&self.db);
        let db = db.as_ref().ok_or_else(|| self.unavailable())?;
        db.begin_write().map_err(|e| db_err(&self.path)(e.into()))
    }
}

fn labels_json(key: &SeriesKey) -> String {
    let map: serde_json::Map<String, serde_json::Value> = key
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A series name and labels, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesInfo {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: serde_json::Map<String, serde_json::Value>,
}

impl Store {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Counters for the aggregator's own health.
    pub fn stats(&self) -> &StoreStats {
        &self.inner.stats
    }

    /// Installs the hook that sees every committed point (once per store; a second call
    /// returns false and changes nothing).
    pub fn on_commit(&self, hook: CommitHook) -> bool {
        self.inner.on_commit.0.set(hook).is_ok()
    }

    /// Why the store refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        sync::lock(&self.inner.failed).clone()
    }

    /// The id of `host`'s series `key`, assigning a new one if it is new. A new series is
    /// written to the catalog table by the commit of the first batch that uses it.
    pub fn series_id(&self, host: &HostId, key: SeriesKey) -> Result<u32, StoreError> {
        if let Some(id) = sync::read(&self.inner.catalog).get(host, &key) {
            return Ok(id);
        }
        let mut catalog = sync::write(&self.inner.catalog);
        if let Some(id) = catalog.get(host, &key) {
            return Ok(id);
        }
        if catalog.len() >= u32::MAX as usize {
            return Err(StoreError::TooManySeries(catalog.len()));
        }
        Ok(catalog.push(host, &key))
    }

    /// Like [`Store::series_id`], but a series new to `host` is not created (`None`) once the
    /// host has `max_per_host` series: a runaway label cannot grow the catalog without bound.
    pub fn series_id_within(
        &self,
        host: &HostId,
        key: SeriesKey,
        max_per_host: usize,
    ) -> Result<Option<u32>, StoreError> {
        {
            let catalog = sync::read(&self.inner.catalog);
            if let Some(id) = catalog.get(host, &key) {
                return Ok(Some(id));
            }
            if catalog.count_for(host) >= max_per_host {
                return Ok(None);
            }
        }
        let mut catalog = sync::write(&self.inner.catalog);
        if let Some(id) = catalog.get(host, &key) {
            return Ok(Some(id));
        }
        if catalog.count_for(host) >= max_per_host {
            return Ok(None);
        }
        if catalog.len() >= u32::MAX as usize {
            return Err(StoreError::TooManySeries(catalog.len()));
        }
        Ok(Some(catalog.push(host, &key)))
    }

    /// Queues a batch for the next group commit. The receiver yields, once the commit has
    /// returned, its [`Committed`] receipt: the highest sequence number stored for the host; a
    /// batch at or below the stored one is a duplicate and is skipped. Batches are committed
    /// in submission order.
    pub async fn submit_batch(
        &self,
        batch: BatchWrite,
    ) -> Result<oneshot::Receiver<Result<Committed, StoreError>>, StoreError> {
        if let Some(why) = self.failure() {
            return Err(StoreError::Failed(why));
        }
        if !(1..=MAX_SEQ).contains(&batch.seq) {
            return Err(StoreError::BadSequence {
                host: batch.host.to_string(),
                seq: batch.seq,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Write(Write::Batch(batch), reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Stores a batch durably; see [`Store::submit_batch`].
    pub async fn write_batch(&self, batch: BatchWrite) -> Result<u64, StoreError> {
        let receipt = self
            .submit_batch(batch)
            .await?
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(receipt.through_seq())
    }

    /// Registers a `Hello` durably. Returns the first sequence number not yet stored for the
    /// host; it is ordered after every batch submitted before it.
    pub async fn hello(&self, hello: HelloWrite) -> Result<u64, StoreError> {
        Ok(self.register(hello).await?.through_seq() + 1)
    }

    /// Registers a `Hello` durably. The receipt carries the host's mark, the highest sequence
    /// number stored for it: batches up to it are durable, and the host resumes after it.
    pub async fn register(&self, hello: HelloWrite) -> Result<Committed, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Write(Write::Hello(hello), reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Closes every open head into chunks now. Returns the number of chunks written.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Flush(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a whole retention pass now instead of slice by slice in the background.
    pub async fn enforce_retention(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Retain(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?.map(|_| ())
    }

    /// Merges every run of small closed chunks now, settled or not (benchmarks and tests; the
    /// background pass waits until a run is settled). Returns the chunks merged away.
    pub async fn compact(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Compact(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Every known host.
    pub fn hosts(&self) -> Vec<HostRecord> {
        let hosts = sync::read(&self.inner.hosts);
        let mut v: Vec<HostRecord> = hosts.values().cloned().collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }

    /// One host.
    pub fn host(&self, host: &str) -> Option<HostRecord> {
        let hosts = sync::read(&self.inner.hosts);
        hosts.get(host).cloned()
    }

    /// Series ids whose host is `host`, name `name` (any if `None`), and whose labels include
    /// every `(k, v)` of `matchers`, with their keys, in name and label order.
    fn matching(
        &self,
        host: &str,
        name: Option<&str>,
        matchers: &[(String, String)],
    ) -> Vec<(u32, SeriesKey)> {
        let catalog = sync::read(&self.inner.catalog);
        let mut out = catalog.matching(host, name, matchers);
        drop(catalog);
        out.sort_by(|a, b| (&a.1.name, &a.1.labels).cmp(&(&b.1.name, &b.1.labels)));
        out
    }

    /// Names and labels of a host's series.
    pub fn series(&self, host: &str) -> Result<Vec<SeriesInfo>, StoreError> {
        Ok(self
            .matching(host, None, &[])
            .into_iter()
            .map(|(_, key)| SeriesInfo {
                name: key.name.clone(),
                labels: label_map(&key),
            })
            .collect())
    }

    /// Number of series in the catalog.
    pub fn series_count(&self) -> usize {
        sync::read(&self.inner.catalog).len()
    }
}

fn label_map(key: &SeriesKey) -> serde_json::Map<String, serde_json::Value> {
    key.labels
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests;

impl Store {
    /// A read transaction on the database, for modules that keep tables of their own
    /// (availability's incidents and maintenance windows).
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.inner.begin_read()
    }

    /// A write transaction on the database, for modules that keep tables of their own. It
    /// waits for and then holds up the writer thread's commits: keep it short.
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.inner.begin_write()
    }
}
