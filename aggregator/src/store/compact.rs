//! Compacting the file of a store that is not open.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, TableHandle};

use super::{
    CHUNKS, CLOSED, HOSTS, META, ROLLUP_1H, ROLLUP_1M, SERIES, Store, StoreError, WAL, db_err,
};

impl Store {
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
    /// chunks under [`super::writer::CHUNK_BYTES`]). Then every page can move below any free page,
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
