//! Portable backend: the collectors on the sysinfo library, for systems without procfs, and on
//! Linux with `[collect] backend = "sysinfo"`. They send the procfs collectors' metric names and
//! labels for what sysinfo can tell, under the same collector names; what it cannot tell is
//! absent (docs/metrics.md, "Portable backend").
//!
//! One `System` is shared by the collectors that read it (cpu, memory, swap, process, host),
//! and each refreshes only what it reports.

mod filesystem;
mod network;
mod process;
mod system;
#[cfg(all(test, feature = "sysinfo"))]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use sysinfo::System;

pub use filesystem::Filesystem;
pub use network::Network;
pub use process::Process;
pub use system::{Cpu, Host, Memory, Swap};

use super::{CollectConfig, CollectError, Collector};

/// The backend's one `System`, or why sysinfo could not set it up (every collector that needs
/// it then fails with that reason on every tick).
pub(super) type Shared = Result<Arc<Mutex<System>>, String>;

pub(super) fn lock<'a>(
    system: &'a Shared,
    what: &'static str,
) -> Result<MutexGuard<'a, System>, CollectError> {
    match system {
        // A collector that panicked holding the lock left nothing half-written that matters:
        // every reading starts with a refresh.
        Ok(system) => Ok(nines_common::util::sync::lock(system)),
        Err(detail) => Err(failed(what, detail)),
    }
}

pub(super) fn failed(what: &'static str, detail: impl ToString) -> CollectError {
    CollectError::Sysinfo {
        what,
        detail: detail.to_string(),
    }
}

/// Every portable collector, configured, in the order of the procfs registry.
pub fn registry(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let system: Shared = System::new()
        .map(|s| Arc::new(Mutex::new(s)))
        .map_err(|e| e.to_string());
    vec![
        Box::new(Cpu::new(system.clone())),
        Box::new(Memory::new(system.clone())),
        Box::new(Swap::new(system.clone())),
        Box::new(Filesystem::new(config)),
        Box::new(Network::new(config)),
        Box::new(Process::new(config, system.clone())),
        // Last, so that the agent's own CPU time includes this tick's collection.
        Box::new(Host::new(system)),
    ]
}

/// A sysinfo percentage as a ratio in 0..=1.
pub(super) fn ratio(percent: f32) -> f64 {
    (f64::from(percent) / 100.0).clamp(0.0, 1.0)
}
