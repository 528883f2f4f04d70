//! The time-series store on redb. One writer thread group-commits batches from every
//! connection in a single `Durability::Immediate` transaction and only then answers each
//! batch, so an acknowledged sample is on disk (docs/design.md). Readers use redb's MVCC read
//! transactions concurrently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use nines_common::{HostId, SeriesKey};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// (host, metric name, labels as canonical JSON) → series id.
const SERIES: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("series");
/// (series id, timestamp ms) → value.
const SAMPLES: TableDefinition<(u64, i64), f64> = TableDefinition::new("samples");
/// host → JSON [`HostRecord`].
const HOSTS: TableDefinition<&str, &str> = TableDefinition::new("hosts");

/// Most batches in one transaction; more wait for the next commit.
const MAX_GROUP: usize = 4096;

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
    /// An earlier write failed; the store refuses writes until it is reopened, rather than
    /// guess what reached the disk.
    #[error("store refuses writes after an earlier failure: {0}")]
    Failed(String),
    /// The store is shutting down.
    #[error("store is shutting down")]
    Closed,
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

/// One batch from one host, with series resolved to keys.
#[derive(Debug)]
pub struct BatchWrite {
    /// The sender.
    pub host: HostId,
    /// Its sequence number.
    pub seq: u64,
    /// (series, timestamp ms, value).
    pub points: Vec<(Arc<SeriesKey>, i64, f64)>,
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
}

/// Shared read side and a handle to the writer thread.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Op>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    path: PathBuf,
    hosts: RwLock<HashMap<String, HostRecord>>,
    failed: Mutex<Option<String>>,
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

/// A stored series and its points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoints {
    /// Labels.
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// `[timestamp ms, value]` pairs in time order.
    pub points: Vec<(i64, f64)>,
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
    /// Opens or creates the database at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<(Self, WriterHandle), StoreError> {
        let err = db_err(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.into()))?;
        }
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let mut hosts = HashMap::new();
        let mut series = HashMap::new();
        let mut next_id = 1u64;
        {
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            {
                let s = txn.open_table(SERIES).map_err(|e| err(e.into()))?;
                for row in s.iter().map_err(|e| err(e.into()))? {
                    let (k, v) = row.map_err(|e| err(e.into()))?;
                    let (host, name, labels) = k.value();
                    let id = v.value();
                    next_id = next_id.max(id + 1);
                    let labels: Vec<(String, String)> =
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(labels)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                            .collect();
                    let Ok(host) = HostId::new(host) else {
                        continue;
                    };
                    series.insert((host, SeriesKey::from_parts(name.to_owned(), labels)), id);
                }
                txn.open_table(SAMPLES).map_err(|e| err(e.into()))?;
                let h = txn.open_table(HOSTS).map_err(|e| err(e.into()))?;
                for row in h.iter().map_err(|e| err(e.into()))? {
                    let (k, v) = row.map_err(|e| err(e.into()))?;
                    if let Ok(rec) = serde_json::from_str::<HostRecord>(v.value()) {
                        hosts.insert(k.value().to_owned(), rec);
                    }
                }
            }
            txn.commit().map_err(|e| err(e.into()))?;
        }
        let inner = Arc::new(Inner {
            db,
            path: path.to_owned(),
            hosts: RwLock::new(hosts),
            failed: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(MAX_GROUP);
        let writer = Writer {
            inner: inner.clone(),
            series,
            next_id,
        };
        let handle = std::thread::Builder::new()
            .name("nines-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| err(e.into()))?;
        Ok((Self { inner, tx }, WriterHandle(handle)))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Why the store refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        self.inner
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

    /// Every known host.
    pub fn hosts(&self) -> Vec<HostRecord> {
        let hosts = self.inner.hosts.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<HostRecord> = hosts.values().cloned().collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }

    /// One host.
    pub fn host(&self, host: &str) -> Option<HostRecord> {
        let hosts = self.inner.hosts.read().unwrap_or_else(|p| p.into_inner());
        hosts.get(host).cloned()
    }

    fn series_rows(
        &self,
        host: &str,
        name: Option<&str>,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let err = db_err(&self.inner.path);
        let txn = self.inner.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(SERIES).map_err(|e| err(e.into()))?;
        let start = (host, name.unwrap_or(""), "");
        let mut out = Vec::new();
        for row in table.range(start..).map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let (h, n, labels) = k.value();
            if h != host || name.is_some_and(|name| n != name) {
                break;
            }
            out.push((n.to_owned(), labels.to_owned(), v.value()));
        }
        Ok(out)
    }

    /// Names and labels of a host's series.
    pub fn series(&self, host: &str) -> Result<Vec<SeriesInfo>, StoreError> {
        Ok(self
            .series_rows(host, None)?
            .into_iter()
            .map(|(name, labels, _)| SeriesInfo {
                name,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
            })
            .collect())
    }

    /// Points of a host's series named `name` whose labels include every `(k, v)` of
    /// `matchers`, with `from <= ts <= to`.
    pub fn query(
        &self,
        host: &str,
        name: &str,
        matchers: &[(String, String)],
        from: i64,
        to: i64,
    ) -> Result<Vec<SeriesPoints>, StoreError> {
        let err = db_err(&self.inner.path);
        let rows = self.series_rows(host, Some(name))?;
        let txn = self.inner.db.begin_read().map_err(|e| err(e.into()))?;
        let samples = txn.open_table(SAMPLES).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for (_, labels, id) in rows {
            let labels: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&labels).unwrap_or_default();
            let matches = matchers
                .iter()
                .all(|(k, v)| labels.get(k).and_then(|x| x.as_str()) == Some(v.as_str()));
            if !matches {
                continue;
            }
            let mut points = Vec::new();
            for row in samples
                .range((id, from)..=(id, to))
                .map_err(|e| err(e.into()))?
            {
                let (k, v) = row.map_err(|e| err(e.into()))?;
                points.push((k.value().1, v.value()));
            }
            out.push(SeriesPoints { labels, points });
        }
        Ok(out)
    }
}

struct Writer {
    inner: Arc<Inner>,
    series: HashMap<(HostId, SeriesKey), u64>,
    next_id: u64,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            // Group commit: everything that queued up while the previous commit was syncing
            // goes into this one.
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.commit(ops);
        }
    }

    fn commit(&mut self, ops: Vec<Op>) {
        let failed = self
            .inner
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(why) = failed {
            for op in ops {
                let (Op::Batch(_, reply) | Op::Hello(_, reply)) = op;
                let _ = reply.send(Err(StoreError::Failed(why.clone())));
            }
            return;
        }
        let mut hosts = self
            .inner
            .hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let series_before = self.next_id;
        let mut replies = Vec::with_capacity(ops.len());
        let result = self.apply(&ops, &mut hosts, &mut replies);
        match result {
            Ok(()) => {
                *self.inner.hosts.write().unwrap_or_else(|p| p.into_inner()) = hosts;
                for (op, value) in ops.into_iter().zip(replies) {
                    let (Op::Batch(_, reply) | Op::Hello(_, reply)) = op;
                    let _ = reply.send(Ok(value));
                }
            }
            Err(e) => {
                // Series ids handed out in the failed transaction were never stored.
                self.series.retain(|_, id| *id < series_before);
                self.next_id = series_before;
                tracing::error!("store commit failed; refusing writes until restart: {e}");
                *self.inner.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                for op in ops {
                    let (Op::Batch(_, reply) | Op::Hello(_, reply)) = op;
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn apply(
        &mut self,
        ops: &[Op],
        hosts: &mut HashMap<String, HostRecord>,
        replies: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        let err = db_err(&self.inner.path);
        let mut txn = self.inner.db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        let mut touched: Vec<String> = Vec::new();
        {
            let mut series_t = txn.open_table(SERIES).map_err(|e| err(e.into()))?;
            let mut samples_t = txn.open_table(SAMPLES).map_err(|e| err(e.into()))?;
            for op in ops {
                match op {
                    Op::Hello(h, _) => {
                        let rec = hosts
                            .entry(h.host.to_string())
                            .or_insert_with(|| HostRecord {
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
                            });
                        rec.agent_version.clone_from(&h.hello.agent_version);
                        rec.os.clone_from(&h.hello.os);
                        rec.arch.clone_from(&h.hello.arch);
                        rec.kernel.clone_from(&h.hello.kernel);
                        rec.boot_id.clone_from(&h.hello.boot_id);
                        rec.interval_ms = h.hello.interval_ms;
                        replies.push(rec.last_seq + 1);
                        touched.push(h.host.to_string());
                    }
                    Op::Batch(b, _) => {
                        let Some(rec) = hosts.get_mut(b.host.as_str()) else {
                            // Ingest registers every host with a Hello first.
                            return Err(StoreError::Db {
                                path: self.inner.path.clone(),
                                detail: format!("batch from unregistered host {}", b.host),
                            });
                        };
                        if b.seq <= rec.last_seq {
                            replies.push(rec.last_seq);
                            continue;
                        }
                        for (key, ts, value) in &b.points {
                            let cache_key = (b.host.clone(), SeriesKey::clone(key));
                            let id = match self.series.get(&cache_key) {
                                Some(id) => *id,
                                None => {
                                    let id = self.next_id;
                                    self.next_id += 1;
                                    series_t
                                        .insert(
                                            (
                                                b.host.as_str(),
                                                key.name.as_str(),
                                                labels_json(key).as_str(),
                                            ),
                                            id,
                                        )
                                        .map_err(|e| err(e.into()))?;
                                    self.series.insert(cache_key, id);
                                    id
                                }
                            };
                            samples_t
                                .insert((id, *ts), *value)
                                .map_err(|e| err(e.into()))?;
                            rec.last_sample_ms = rec.last_sample_ms.max(*ts);
                        }
                        rec.last_seq = b.seq;
                        replies.push(b.seq);
                        touched.push(b.host.to_string());
                    }
                }
            }
            touched.sort();
            touched.dedup();
            let mut hosts_t = txn.open_table(HOSTS).map_err(|e| err(e.into()))?;
            for host in &touched {
                if let Some(rec) = hosts.get(host) {
                    let json = serde_json::to_string(rec).unwrap_or_default();
                    hosts_t
                        .insert(host.as_str(), json.as_str())
                        .map_err(|e| err(e.into()))?;
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(())
    }
}
