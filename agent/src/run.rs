//! The agent's main loop: tick on wall-clock boundaries, collect, spool, and ship.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nines_common::proto::{Hello, PROTOCOL_VERSION};
use nines_common::{HostId, Sample, SeriesKey};
use tokio::sync::{Notify, watch};

use crate::collect::{self, CollectConfig, Out, Runner, Tick};
use crate::config::Config;
use crate::identity::wait_for_tls;
use crate::ship::Shipper;
use crate::spool::{Limits, Spool};

pub use crate::error::AgentError;
pub use nines_common::model::now_ms;

fn first_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

/// The `Hello` this agent sends.
pub fn hello(host: &HostId, collect: &CollectConfig, interval: Duration) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        host_id: host.to_string(),
        boot_id: first_line(&collect.procfs.join("sys/kernel/random/boot_id")),
        os: os_name(),
        arch: std::env::consts::ARCH.to_owned(),
        kernel: first_line(&collect.procfs.join("sys/kernel/osrelease")),
        interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
    }
}

/// Waits for wall-clock tick boundaries. On Linux a timerfd armed at the boundary's absolute
/// `CLOCK_REALTIME` time wakes the agent once per tick, on the boundary (a tokio sleep of a
/// second wakes up to 64 ms early, at its timer wheel's slot, and sleeps again: one wakeup
/// more per tick). Elsewhere, or if no timerfd can be made, a tokio sleep.
struct Ticker {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>>,
}

impl Ticker {
    fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
            let fd = timerfd_create(
                TimerfdClockId::Realtime,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .ok()
            // `new` is deprecated because a `T` that does not own its descriptor could let it
            // be closed while registered; an `OwnedFd` moved in cannot. `register`, its
            // replacement, is `unsafe`, which this crate forbids.
            .and_then(|fd| {
                #[allow(deprecated)]
                tokio::io::unix::AsyncFd::new(fd).ok()
            });
            Self { fd }
        }
        #[cfg(not(target_os = "linux"))]
        Self {}
    }

    /// Sleeps until the wall clock reads `boundary_ms`. False if the clock was set meanwhile.
    async fn until(&mut self, boundary_ms: i64) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
            let at = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: Timespec {
                    tv_sec: boundary_ms.div_euclid(1000),
                    tv_nsec: boundary_ms.rem_euclid(1000) * 1_000_000,
                },
            };
            let flags = TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET;
            if timerfd_settime(fd.get_ref(), flags, &at).is_ok() {
                loop {
                    let Ok(mut ready) = fd.readable().await else {
                        break;
                    };
                    let mut expirations = [0u8; 8];
                    match rustix::io::read(ready.get_inner(), &mut expirations) {
                        Ok(_) => {
                            // Read: the next wait needs a new expiry, not this readiness.
                            ready.clear_ready();
                            return true;
                        }
                        Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                        Err(rustix::io::Errno::CANCELED) => return false,
                        Err(_) => break,
                    }
                }
            }
        }
        let wait = u64::try_from(boundary_ms - now_ms()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        true
    }
}

/// The next multiple of `interval` after `now_ms`.
pub fn next_boundary(now_ms: i64, interval: Duration) -> i64 {
    let step = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    (now_ms.div_euclid(step) + 1) * step
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    let Some(credentials) = wait_for_tls(&config, &mut shutdown.clone()).await? else {
        tracing::info!("nines-agent stopped");
        return Ok(());
    };
    let credentials = Arc::new(credentials);
    let host = credentials.current().host;
    let spool_dir = config.state_dir.join("spool");
    let limits = Limits {
        max_bytes: config.spool.max_bytes,
        max_age: config.spool.max_age,
        segment_bytes: (config.spool.max_bytes / 16).clamp(64 * 1024, 4 * 1024 * 1024),
    };
    let spool = Arc::new(Mutex::new(Spool::open(&spool_dir, limits, now_ms())?));
    let appended = Arc::new(Notify::new());
    tracing::info!(
        host = %host,
        interval = ?config.interval,
        spool = %spool_dir.display(),
        aggregators = ?config.aggregator.addresses,
        "nines-agent starting"
    );
    let shipper = Shipper {
        config: config.aggregator.clone(),
        credentials: credentials.clone(),
        hello: hello(&host, &config.collect, config.interval),
        spool: spool.clone(),
        appended: appended.clone(),
    };
    // The shipper stops after the goodbye below is spooled, so it can send it.
    let (stop_shipper, shipper_stop) = watch::channel(false);
    let ship_task = tokio::spawn(shipper.run(shipper_stop));

    let mut collectors = collect::registry(&config.collect);
    // Beside the system collectors: checks, which run in their own tasks, and business
    // metrics from the textfile directory and the push socket.
    collectors.push(Box::new(crate::checks::Checks::start(&config.checks)));
    if let Some(textfile) = collect::textfile::Textfile::new(&config.collect.textfile) {
        collectors.push(Box::new(textfile));
    }
    #[cfg(unix)]
    if config.collect.push.enabled {
        let push = collect::push::Push::bind(&config.collect.push, &config.state_dir)
            .map_err(|source| AgentError::PushSocket { source })?;
        collectors.push(Box::new(push));
    }
    let mut runner = Runner::new(collectors);
    let mut shutdown_tick = shutdown.clone();
    let mut ticker = Ticker::new();
    let result = loop {
        let boundary = next_boundary(now_ms(), config.interval);
        let reached = tokio::select! {
            r = ticker.until(boundary) => Some(r),
            _ = shutdown_tick.wait_for(|s| *s) => None,
        };
        match reached {
            None => break Ok(()),
            // The wall clock was set: find the next boundary on the new time.
            Some(false) => continue,
            Some(true) => {}
        }
        let tick = Tick {
            ts_ms: boundary,
            now: Instant::now(),
        };
        let mut samples: Vec<Sample> = Vec::with_capacity(256);
        runner.run(&tick, &mut samples);
        let mut spool = nines_common::util::sync::lock(&spool);
        let mut out = Out::new(tick.ts_ms, &mut samples);
        out.push("agent_spool_bytes", &[], spool.bytes() as f64);
        out.push("agent_spool_pending_batches", &[], spool.pending() as f64);
        out.push(
            "agent_spool_dropped_batches_total",
            &[],
            spool.dropped() as f64,
        );
        out.push(
            "agent_certificate_expiry_timestamp_seconds",
            &[],
            credentials.not_after() as f64,
        );
        match spool.append(tick.ts_ms, samples) {
            Ok(_) => appended.notify_one(),
            // A full or failing disk loses this tick, not the agent: say so and go on.
            Err(e) => tracing::error!("cannot spool this tick's samples: {e}"),
        }
    };
    if result.is_ok() {
        // A clean stop says goodbye: the silence that follows is not monitored time, not an
        // outage (docs/metrics.md, `agent_stopping`).
        let ts_ms = now_ms();
        let goodbye = vec![Sample {
            key: SeriesKey::new("agent_stopping", &[]),
            ts_ms,
            value: 1.0,
        }];
        let mut spool = nines_common::util::sync::lock(&spool);
        match spool.append(ts_ms, goodbye) {
            Ok(_) => appended.notify_one(),
            Err(e) => tracing::error!("cannot spool the agent's goodbye: {e}"),
        }
    }
    let _ = stop_shipper.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), ship_task).await;
    tracing::info!("nines-agent stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ticker_wakes_on_the_boundary_not_before() {
        let mut ticker = Ticker::new();
        #[cfg(target_os = "linux")]
        assert!(ticker.fd.is_some(), "no timerfd");
        for _ in 0..3 {
            let boundary = next_boundary(now_ms(), Duration::from_millis(100));
            assert!(ticker.until(boundary).await);
            assert!(now_ms() >= boundary);
        }
        // A boundary already past returns at once.
        assert!(ticker.until(now_ms() - 1000).await);
    }

    #[test]
    fn the_goodbye_is_the_series_the_aggregator_reads() {
        let source = include_str!("run.rs");
        let name = nines_common::model::AGENT_STOPPING;
        assert!(source.contains(&format!("SeriesKey::new(\"{name}\"")));
    }

    #[test]
    fn ticks_fall_on_interval_boundaries() {
        let ten = Duration::from_secs(10);
        assert_eq!(next_boundary(1_700_000_003_456, ten), 1_700_000_010_000);
        assert_eq!(next_boundary(1_700_000_010_000, ten), 1_700_000_020_000);
        assert_eq!(next_boundary(999, Duration::from_secs(1)), 1000);
    }
}
