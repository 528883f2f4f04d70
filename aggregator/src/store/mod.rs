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
mod head;
mod hook;
mod query;
mod repair;
pub mod rollup;
mod writer;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::util::sync;
use nines_common::proto::MAX_SEQ;
use nines_common::{HostId, SeriesKey};
use redb::{Database, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use head::Head;
pub use hook::{CommitHook, SeriesLookup};
pub use query::{QueryError, Resolution, SeriesPoints, Step};
pub use rollup::{Agg, AggFn};

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

/// A store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("store {path}: {detail}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's message.
        detail: String,
    },
    /// A commit failed (disk full, I/O error); the store refuses writes until it has reopened
    /// the file and proved it writable, which it tries every few seconds.
    #[error("store refuses writes after a failed commit: {0}")]
    Failed(String),
    /// The store is shutting down.
    #[error("store is shutting down")]
    Closed,
    /// The series catalog is full.
    #[error("the store holds {0} series, its limit")]
    TooManySeries(usize),
    /// A batch's sequence number is 0 or above [`MAX_SEQ`]: storing it would make every later
    /// batch of the host look like a duplicate.
    #[error("batch of {host}: sequence number {seq} is outside 1..={MAX_SEQ}")]
    BadSequence {
        /// The host.
        host: String,
        /// The sequence number.
        seq: u64,
    },
}

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

enum Op {
    Batch(BatchWrite, oneshot::Sender<Result<u64, StoreError>>),
    Hello(HelloWrite, oneshot::Sender<Result<u64, StoreError>>),
    /// Close old heads and run a slice of retention; sent by the maintenance ticker.
    Tick,
    /// Close every head now (tests, benchmarks, and `bench storage`).
    Flush(oneshot::Sender<Result<u64, StoreError>>),
    /// Run a whole retention pass now.
    Retain(oneshot::Sender<Result<u64, StoreError>>),
    /// Run a whole compaction pass now, merging even chunks that are not settled yet.
    Compact(oneshot::Sender<Result<u64, StoreError>>),
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

fn open_db(path: &Path, options: &StoreOptions) -> Result<Database, StoreError> {
    // A new file is made here, mode 0640, rather than by redb with the umask's 0644: the store
    // holds every host's samples and incident notes. redb initialises an empty file.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(db_err(path)(e.into())),
    }
    Database::builder()
        .set_cache_size(options.cache_bytes)
        .create(path)
        .map_err(|e| db_err(path)(e.into()))
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

fn db_err(path: &Path) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::Db {
        path: path.to_owned(),
        detail: e.to_string(),
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
    /// Opens or creates the database at `path` with default options.
    pub fn open(path: &Path) -> Result<(Self, WriterHandle), StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens or creates the database at `path`, rebuilds the heads from the write-ahead
    /// table, and starts the writer thread.
    pub fn open_with(
        path: &Path,
        options: StoreOptions,
    ) -> Result<(Self, WriterHandle), StoreError> {
        let err = db_err(path);
        if let Some(parent) = path.parent() {
            // Only the aggregator's user and group (the backup job, say) may look inside.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(parent)
                .map_err(|e| err(e.into()))?;
        }
        let db = open_db(path, &options)?;
        let mut hosts = HashMap::new();
        let mut catalog = Catalog::default();
        let mut max_span = 0;
        let mut closed: Vec<u64> = Vec::new();
        {
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            {
                let s = txn.open_table(SERIES).map_err(|e| err(e.into()))?;
                let mut rows: Vec<(u64, HostId, SeriesKey)> = Vec::new();
                for row in s.iter().map_err(|e| err(e.into()))? {
                    let (k, v) = row.map_err(|e| err(e.into()))?;
                    let (host, name, labels) = k.value();
                    let labels: Vec<(String, String)> =
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(labels)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                            .collect();
                    let Ok(host) = HostId::new(host) else {
                        continue;
                    };
                    rows.push((
                        v.value(),
                        host,
                        SeriesKey::from_parts(name.to_owned(), labels),
                    ));
                }
                rows.sort_by_key(|r| r.0);
                for (id, host, key) in rows {
                    // Ids are dense; a gap (never written) gets a placeholder nobody can name.
                    catalog.pad_to(id as usize);
                    catalog.push(&host, &key);
                }
                let mut h = txn.open_table(HOSTS).map_err(|e| err(e.into()))?;
                let mut repaired = Vec::new();
                for row in h.iter().map_err(|e| err(e.into()))? {
                    let (k, v) = row.map_err(|e| err(e.into()))?;
                    if let Ok(mut rec) = serde_json::from_str::<HostRecord>(v.value()) {
                        if repair::repair(&mut rec, nines_common::model::now_ms()) {
                            repaired.push(rec.clone());
                        }
                        hosts.insert(k.value().to_owned(), rec);
                    }
                }
                // Written in the transaction that opens the store: repaired once, said once.
                for rec in repaired {
                    let json = serde_json::to_string(&rec).map_err(|e| StoreError::Db {
                        path: path.to_owned(),
                        detail: e.to_string(),
                    })?;
                    h.insert(rec.host.as_str(), json.as_str())
                        .map_err(|e| err(e.into()))?;
                }
                let c = txn.open_table(CLOSED).map_err(|e| err(e.into()))?;
                closed.resize(catalog.len(), 0);
                for row in c.iter().map_err(|e| err(e.into()))? {
                    let (k, v) = row.map_err(|e| err(e.into()))?;
                    if let Some(slot) = closed.get_mut(k.value() as usize) {
                        *slot = v.value();
                    }
                }
                let m = txn.open_table(META).map_err(|e| err(e.into()))?;
                if let Some(v) = m.get("max_chunk_span").map_err(|e| err(e.into()))? {
                    max_span = v.value();
                }
                txn.open_table(WAL).map_err(|e| err(e.into()))?;
                txn.open_table(CHUNKS).map_err(|e| err(e.into()))?;
                txn.open_table(ROLLUP_1M).map_err(|e| err(e.into()))?;
                txn.open_table(ROLLUP_1H).map_err(|e| err(e.into()))?;
            }
            for name in LEGACY_ROLLUPS {
                let legacy: TableDefinition<(u64, i64), rollup::AggRow> =
                    TableDefinition::new(name);
                txn.delete_table(legacy).map_err(|e| err(e.into()))?;
            }
            txn.commit().map_err(|e| err(e.into()))?;
        }
        let series_count = catalog.len();
        let inner = Arc::new(Inner {
            db: RwLock::new(Some(db)),
            path: path.to_owned(),
            options,
            hosts: RwLock::new(hosts),
            catalog: RwLock::new(catalog),
            heads: RwLock::new(Vec::new()),
            max_chunk_span: AtomicI64::new(max_span),
            failed: Mutex::new(None),
            stats: StoreStats::default(),
            on_commit: hook::OnCommit::default(),
        });
        let mut writer = writer::Writer::new(inner.clone(), series_count, closed);
        writer.replay()?;
        let (tx, rx) = mpsc::channel(MAX_GROUP);
        let ticker = tx.downgrade();
        let every = inner.options.maintenance_every.min(Duration::from_secs(1));
        std::thread::Builder::new()
            .name("nines-store-tick".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let Some(tx) = ticker.upgrade() else { return };
                    // A full queue means the writer is busy and will look at heads anyway.
                    let _ = tx.try_send(Op::Tick);
                }
            })
            .map_err(|e| err(e.into()))?;
        let handle = std::thread::Builder::new()
            .name("nines-store-writer".into())
            .spawn(move || {
                // The writer's in-memory heads and the file are one state: after a panic
                // half-way through a group commit nobody can say what the heads hold, and a
                // store without its writer would queue batches forever. End the process, as
                // `panic = "abort"` did; the service manager restarts it and the heads are
                // rebuilt from the write-ahead table. No batch of the interrupted commit was
                // acked, so the agents resend it.
                let run = std::panic::AssertUnwindSafe(move || writer.run(rx));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("the store's writer thread panicked; stopping the aggregator");
                    std::process::abort();
                }
            })
            .map_err(|e| err(e.into()))?;
        Ok((Self { inner, tx }, WriterHandle(handle)))
    }

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
    /// returned, the highest sequence number stored for the host; a batch at or below the
    /// stored one is a duplicate and is skipped. Batches are committed in submission order.
    pub async fn submit_batch(
        &self,
        batch: BatchWrite,
    ) -> Result<oneshot::Receiver<Result<u64, StoreError>>, StoreError> {
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
            .send(Op::Batch(batch, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Stores a batch durably; see [`Store::submit_batch`].
    pub async fn write_batch(&self, batch: BatchWrite) -> Result<u64, StoreError> {
        self.submit_batch(batch)
            .await?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Registers a `Hello` durably. Returns the first sequence number not yet stored for the
    /// host; it is ordered after every batch submitted before it.
    pub async fn hello(&self, hello: HelloWrite) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Hello(hello, reply))
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

    /// Compacts the database file of a store that is not open (maintenance: `nines-aggregator
    /// compact-store`, and the benchmarks after settling). Needs no other handle on the
    /// database. Returns the file's size before and after, bytes.
    ///
    /// redb's `Database::compact` moves pages down into free space, the highest first, and
    /// stops at the first page it cannot move: a leaf of 2, 4 or 8 pages needs a free block
    /// of that size, aligned to it, below it. Where the store's write pattern has left single
    /// free pages between small ones (rollup blocks, host records), such a leaf pins
    /// everything above the free space below it: measured, a file of 297 pages holding 160.
    /// So every table of the store is first copied, in key order and in one durable
    /// transaction per table, into a fresh table that replaces it: appending in key order
    /// packs leaves full, each one page as long as no entry outgrows a page (compaction keeps
    /// chunks under [`writer::CHUNK_BYTES`]). Then every page can move below any free page,
    /// and `compact` is repeated until it moves nothing. A crash part way leaves either table,
    /// whole: each copy replaces its original in the transaction that writes it.
    pub fn compact_file(path: &Path) -> Result<(u64, u64), StoreError> {
        let err = db_err(path);
        let size = || {
            std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| err(e.into()))
        };
        let before = size()?;
        let mut db = Database::open(path).map_err(|e| err(e.into()))?;
        rewrite(&db, SERIES).map_err(&err)?;
        rewrite(&db, HOSTS).map_err(&err)?;
        rewrite(&db, WAL).map_err(&err)?;
        rewrite(&db, CLOSED).map_err(&err)?;
        rewrite(&db, CHUNKS).map_err(&err)?;
        rewrite(&db, ROLLUP_1M).map_err(&err)?;
        rewrite(&db, ROLLUP_1H).map_err(&err)?;
        rewrite(&db, META).map_err(&err)?;
        for _ in 0..16 {
            if !db.compact().map_err(|e| err(e.into()))? {
                break;
            }
        }
        drop(db);
        Ok((before, size()?))
    }
}

/// Replaces `table` by a copy written in key order, if it exists.
fn rewrite<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &Database,
    table: TableDefinition<K, V>,
) -> Result<(), redb::Error> {
    let name = table.name().to_owned();
    let copy_name = format!("{name}.compacting");
    let copy: TableDefinition<K, V> = TableDefinition::new(&copy_name);
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    {
        if !txn.list_tables()?.any(|t| t.name() == name) {
            return Ok(());
        }
        let from = txn.open_table(table)?;
        let mut to = txn.open_table(copy)?;
        for row in from.iter()? {
            let (k, v) = row?;
            to.insert(k.value(), v.value())?;
        }
    }
    txn.delete_table(table)?;
    txn.rename_table(copy, table)?;
    txn.commit()?;
    Ok(())
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
