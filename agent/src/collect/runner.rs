//! The runner: every collector once per tick, timed, with failures counted and each cause of
//! failure logged once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nines_common::Sample;

use super::{CollectError, Collector, Out, Tick, TickState};

/// Distinct failure causes remembered, at most; beyond, new causes are counted but not
/// logged, so that a pathological host cannot grow the set without bound.
const MAX_CAUSES: usize = 256;

/// Per-collector bookkeeping kept by the runner.
#[derive(Debug, Default, Clone, Copy)]
pub struct CollectorStats {
    /// Failures so far: errors returned by the collector, and failures of one part (a
    /// process, a mount, a line) it reported and went on.
    pub failures: u64,
    /// Time spent in the collector on the last tick.
    pub last_duration: Duration,
}

/// Runs every collector once per tick.
pub struct Runner {
    collectors: Vec<(Box<dyn Collector>, CollectorStats)>,
    /// Files shared by the collectors within a tick, buffers kept across ticks.
    state: TickState,
    /// `collector cause` of every failure logged so far.
    logged: HashSet<String>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.collectors.iter().map(|(c, s)| (c.name(), s)))
            .finish()
    }
}

impl Runner {
    /// A runner over the given collectors.
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> Self {
        Self {
            collectors: collectors
                .into_iter()
                .map(|c| (c, CollectorStats::default()))
                .collect(),
            state: TickState::new(),
            logged: HashSet::new(),
        }
    }

    /// Runs every collector for `tick`, appending to `samples`. Every failure is counted
    /// (`agent_collector_failures_total{collector}`) and its cause logged the first time it
    /// is seen; a failing collector is skipped and the others go on.
    pub fn run(&mut self, tick: &Tick, samples: &mut Vec<Sample>) {
        self.state.files.begin_tick();
        let mut out = Out::lend(tick.ts_ms, samples, &mut self.state);
        for (collector, stats) in &mut self.collectors {
            let started = Instant::now();
            if let Err(e) = collector.collect(tick, &mut out) {
                out.fail(e);
            }
            stats.last_duration = started.elapsed();
            let name = collector.name();
            for e in out.state().failures.drain(..) {
                stats.failures += 1;
                if first_time(&mut self.logged, name, &e) {
                    tracing::warn!(
                        collector = name,
                        "collector failed: {e} (logged once; every failure is counted in \
                         agent_collector_failures_total)"
                    );
                }
            }
        }
        for (collector, stats) in &self.collectors {
            let name = collector.name();
            out.push(
                "agent_collector_failures_total",
                &[("collector", name)],
                stats.failures as f64,
            );
            out.push(
                "agent_collector_duration_seconds",
                &[("collector", name)],
                stats.last_duration.as_secs_f64(),
            );
        }
    }
}

/// Whether this failure's cause is new and should be logged.
fn first_time(logged: &mut HashSet<String>, collector: &str, e: &CollectError) -> bool {
    if logged.len() > MAX_CAUSES {
        return false;
    }
    let key = format!("{collector} {}", e.cause());
    if logged.len() == MAX_CAUSES {
        logged.insert(key);
        tracing::warn!(
            "more than {MAX_CAUSES} distinct collector failures; new ones are counted but no \
             longer logged"
        );
        return false;
    }
    logged.insert(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::super::testing::get;
    use super::*;

    /// Fails on `/proc/[pid]/fd` for two pids every tick, and wholly every other tick.
    struct Flaky {
        ticks: u64,
    }

    impl Collector for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
            self.ticks += 1;
            for pid in [12, 34] {
                out.fail(CollectError::Read {
                    path: PathBuf::from(format!("/proc/{pid}/fd")),
                    source: std::io::Error::from_raw_os_error(13),
                });
            }
            out.push("flaky_up", &[], 1.0);
            if self.ticks.is_multiple_of(2) {
                return Err(CollectError::Parse {
                    path: PathBuf::from("/proc/flaky"),
                    detail: format!("tick {}", self.ticks),
                });
            }
            Ok(())
        }
    }

    #[test]
    fn counts_every_failure_and_logs_each_cause_once() {
        let mut runner = Runner::new(vec![Box::new(Flaky { ticks: 0 })]);
        let start = Instant::now();
        let mut last = Vec::new();
        for secs in 0..4 {
            last.clear();
            runner.run(&super::super::testing::tick(start, secs), &mut last);
        }
        // 2 per tick, plus the whole collector on ticks 2 and 4.
        let labels = [("collector", "flaky")];
        assert_eq!(
            get(&last, "agent_collector_failures_total", &labels),
            Some(10.0)
        );
        assert_eq!(get(&last, "flaky_up", &[]), Some(1.0));
        assert!(get(&last, "agent_collector_duration_seconds", &labels).is_some());
        // Two causes: the fd directories of any pid, and the parse error of any tick.
        assert_eq!(runner.logged.len(), 2, "{:?}", runner.logged);
    }

    #[test]
    fn stops_remembering_causes_past_the_limit() {
        let mut logged = HashSet::new();
        let mut logs = 0;
        for i in 0..1000 {
            let e = CollectError::Statvfs {
                mount: format!("/mnt/m{i}"),
                source: std::io::Error::from_raw_os_error(116),
            };
            logs += usize::from(first_time(&mut logged, "filesystem", &e));
        }
        assert_eq!(logs, MAX_CAUSES);
        assert_eq!(logged.len(), MAX_CAUSES + 1);
    }
}
