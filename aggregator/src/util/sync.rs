//! Locks whose poisoning is recovered with a logged warning: a panic elsewhere while holding
//! one leaves data that is still consistent enough to serve, and stopping would be worse.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering it (with a warning) if a panic poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| {
        tracing::warn!("recovered a lock poisoned by a panic");
        p.into_inner()
    })
}

/// Read-locks `l`, recovering it (with a warning) if a panic poisoned it.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| {
        tracing::warn!("recovered a lock poisoned by a panic");
        p.into_inner()
    })
}

/// Write-locks `l`, recovering it (with a warning) if a panic poisoned it.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| {
        tracing::warn!("recovered a lock poisoned by a panic");
        p.into_inner()
    })
}
