//! Locks and the poisoned-lock policy: a lock whose holder panicked is taken anyway, with a
//! logged warning. Every guarded value in the aggregator stays consistent between statements
//! (a panic cannot leave it half-updated in a way a reader could misuse), and the store's
//! writer, the one place where that would not hold, aborts the process when it panics.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

fn poisoned<G>(what: &'static str, p: PoisonError<G>) -> G {
    tracing::warn!("a thread panicked while holding a {what}; going on with the value it left");
    p.into_inner()
}

/// Locks `m`, recovering it (with a warning) if a panic poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| poisoned("mutex", p))
}

/// Takes the read lock of `l`, recovering it (with a warning) if a panic poisoned it.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| poisoned("lock", p))
}

/// Takes the write lock of `l`, recovering it (with a warning) if a panic poisoned it.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| poisoned("lock", p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_with_the_value_its_holder_left() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let l = std::sync::Arc::new(RwLock::new(1));
        let (m2, l2) = (m.clone(), l.clone());
        let _ = std::thread::spawn(move || {
            let _g = lock(&m2);
            let mut w = write(&l2);
            *w = 2;
            panic!("poison both");
        })
        .join();
        assert!(m.is_poisoned() && l.is_poisoned());
        assert_eq!(*lock(&m), 1);
        assert_eq!(*read(&l), 2);
        *write(&l) = 3;
        assert_eq!(*read(&l), 3);
    }
}
