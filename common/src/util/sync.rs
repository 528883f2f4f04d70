//! The poisoned-lock policy: a lock whose holder panicked is used anyway, with a warning.
//! Every structure shared behind a lock here is changed by single assignments or appends, so a
//! panic in a holder cannot leave it half-updated; refusing the lock would only turn one
//! panic into many.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, recovering it if a holder panicked.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| {
        tracing::warn!("a lock was poisoned by a panic; using it anyway");
        mutex.clear_poison();
        poisoned.into_inner()
    })
}

/// Read-locks `lock`, recovering it if a writer panicked.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| {
        tracing::warn!("a lock was poisoned by a panic; using it anyway");
        lock.clear_poison();
        poisoned.into_inner()
    })
}

/// Write-locks `lock`, recovering it if a holder panicked.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| {
        tracing::warn!("a lock was poisoned by a panic; using it anyway");
        lock.clear_poison();
        poisoned.into_inner()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_value() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = super::lock(&m2);
            panic!("holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        *super::lock(&m) += 1;
        assert_eq!(*super::lock(&m), 2);
        assert!(!m.is_poisoned());
    }
}
