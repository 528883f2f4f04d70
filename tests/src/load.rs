//! The end-to-end tests share one process and the machine, and run in parallel. A flood
//! (`hostile`, `api_flood`) holds most of the process's descriptors (10,000 and 20,000
//! sockets) and keeps both cores busy: two of them at once would not fit under the
//! descriptor limit, and a test beside one that bounds how long something may take would
//! measure the flood. So a flood runs under [`flood`], alone among the tests that take
//! either lock, and those tight bounds run under [`timed`], beside each other but never
//! beside a flood. The locks are tokio's: a failed test releases its lock without
//! poisoning it.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static LOAD: RwLock<()> = RwLock::const_new(());

/// Held for the whole of a flood test: no other flood and no [`timed`] test runs meanwhile.
pub async fn flood() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().await
}

/// Held for the whole of a test that asserts a duration a flood beside it could stretch (a
/// reconnect within 5 s, a cut noticed within the ack timeout).
pub async fn timed() -> RwLockReadGuard<'static, ()> {
    LOAD.read().await
}
