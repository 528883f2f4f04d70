//! Opening the store: the file (made private to the aggregator's user and group), the
//! catalog, host records (repaired once if an older version left a poisoned mark), closed
//! marks and chunk span read back, legacy tables dropped, heads rebuilt from the write-ahead
//! table, and the writer and ticker threads started.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use nines_common::{HostId, SeriesKey};
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::writer::{self, Op};
use super::{
    CHUNKS, CLOSED, HOSTS, HostRecord, Inner, LEGACY_ROLLUPS, MAX_GROUP, META, ROLLUP_1H,
    ROLLUP_1M, SERIES, Store, StoreError, StoreOptions, StoreStats, WAL, WriterHandle, db_err,
    hook, repair, rollup,
};

pub(super) fn open_db(path: &Path, options: &StoreOptions) -> Result<Database, StoreError> {
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
                    let json = serde_json::to_string(&rec)
                        .map_err(|e| StoreError::db(path, format!("host record: {e}")))?;
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
}
