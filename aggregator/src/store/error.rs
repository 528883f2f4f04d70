//! What can go wrong in the store, with the file it happened to. redb's errors and the chunk
//! codec's are kept as sources, not flattened to text. Errors are `Clone` because one failed
//! group commit answers every batch in it: the sources are shared behind an `Arc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nines_common::proto::MAX_SEQ;

use crate::store::chunk::ChunkError;

/// A store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, a full disk, a corrupted file, ...).
    #[error("store {path}: {source}")]
    Redb {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: Arc<redb::Error>,
    },
    /// A chunk or rollup block in the file does not decode: corruption, or a newer format.
    #[error("store {path}: {what}: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which block: series and start.
        what: String,
        /// What the codec said.
        #[source]
        source: Arc<ChunkError>,
    },
    /// The store cannot do what was asked; the text says why.
    #[error("store {path}: {detail}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
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

impl StoreError {
    /// A redb error on the file at `path`.
    pub(crate) fn redb(path: &Path, e: impl Into<redb::Error>) -> Self {
        Self::Redb {
            path: path.to_owned(),
            source: Arc::new(e.into()),
        }
    }

    /// A block of the file at `path` that does not decode; `what` names it.
    pub(crate) fn corrupt(path: &Path, what: String, e: ChunkError) -> Self {
        Self::Corrupt {
            path: path.to_owned(),
            what,
            source: Arc::new(e),
        }
    }

    /// Something the store at `path` cannot do.
    pub(crate) fn db(path: &Path, detail: impl Into<String>) -> Self {
        Self::Db {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Converts redb errors on the file at `path`.
pub(crate) fn db_err(path: &Path) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::redb(path, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redb_error_is_kept_as_the_source_and_named_with_the_file() {
        let io = std::io::Error::other("disk on fire");
        let e = StoreError::redb(Path::new("/srv/nines.redb"), io);
        assert!(e.to_string().starts_with("store /srv/nines.redb: "), "{e}");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<Arc<redb::Error>>().is_some());
        assert!(source.to_string().contains("disk on fire"));
    }
}
