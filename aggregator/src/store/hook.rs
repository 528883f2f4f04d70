//! A hook that sees every point once its commit is durable (remote write forwards them).

use std::sync::OnceLock;

/// Called on the writer thread after each durable commit with the points it stored
/// (`(series id, timestamp ms, value)`, in commit order; duplicates already skipped) and a
/// lookup of a series id's host and key. It must return quickly: commits wait for it.
pub type CommitHook = Box<dyn Fn(&[(u32, i64, f64)], &SeriesLookup<'_>) + Send + Sync>;

/// A series id's host and key.
pub type SeriesLookup<'a> =
    dyn Fn(u32) -> Option<(nines_common::HostId, nines_common::SeriesKey)> + 'a;

#[derive(Default)]
pub(super) struct OnCommit(pub(super) OnceLock<CommitHook>);

impl std::fmt::Debug for OnCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "OnCommit(set)"
        } else {
            "OnCommit(unset)"
        })
    }
}
