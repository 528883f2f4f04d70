//! Choosing what to report, shared by the collectors of named devices (disks, interfaces):
//! the name globs, and the table of devices seen in a counters file, each with the state it
//! keeps between ticks, selected once when its name first appears and forgotten when it goes.

#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

pub(crate) use nines_common::util::glob::{glob_match, selected};

use super::{CollectError, Out};

#[derive(Debug)]
struct Entry<S> {
    /// Selected; decided once, when the name first appears.
    report: bool,
    seen: bool,
    state: S,
}

/// The devices of one counters file, and when it was last read.
#[derive(Debug)]
pub(crate) struct Devices<S> {
    entries: HashMap<String, Entry<S>>,
    prev_at: Option<Instant>,
}

impl<S> Devices<S> {
    pub(crate) fn new() -> Self {
        Self {
            entries: HashMap::new(),
            prev_at: None,
        }
    }

    /// Seconds since the previous tick, if there was one and time went forward.
    pub(crate) fn secs(&self, now: Instant) -> Option<f64> {
        self.prev_at
            .map(|at| now.saturating_duration_since(at).as_secs_f64())
            .filter(|s| *s > 0.0)
    }

    /// One tick's lines of `path`: a bad line is a failure of its own and skipped; a name seen
    /// for the first time gets `first(name)` (selected, initial state); each selected device
    /// goes to `report` with its state and counters.
    pub(crate) fn update<'t, C>(
        &mut self,
        path: &Path,
        lines: impl Iterator<Item = Result<(&'t str, C), String>>,
        out: &mut Out<'_>,
        mut first: impl FnMut(&str) -> (bool, S),
        mut report: impl FnMut(&mut Out<'_>, &str, &mut S, C),
    ) {
        for line in lines {
            let (name, cur) = match line {
                Ok(device) => device,
                Err(detail) => {
                    out.fail(CollectError::Parse {
                        path: path.to_owned(),
                        detail,
                    });
                    continue;
                }
            };
            let entry = match self.entries.get_mut(name) {
                Some(entry) => entry,
                None => {
                    let (report, state) = first(name);
                    self.entries.entry(name.to_owned()).or_insert(Entry {
                        report,
                        seen: false,
                        state,
                    })
                }
            };
            entry.seen = true;
            if entry.report {
                report(out, name, &mut entry.state, cur);
            }
        }
    }

    /// Ends the tick at `now`: devices that went away are forgotten, so that one that comes
    /// back starts afresh.
    pub(crate) fn end_tick(&mut self, now: Instant) {
        self.entries
            .retain(|_, entry| std::mem::take(&mut entry.seen));
        self.prev_at = Some(now);
    }
}
