//! Alerts (docs/alerts.md): rules evaluated against the store, notifications grouped,
//! silenced, inhibited and damped, delivered with retries, and every state and attempt kept in
//! redb.
//!
//! [`engine`] is the clock-driven state machine; [`Alerting`] runs it against the store once a
//! second, persists it, and delivers what it produces.

pub mod engine;
pub mod matcher;
pub mod notify;
pub mod persist;
pub mod rules;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::availability::Interval;
use crate::availability::config::ServiceConfig;
use crate::availability::records::{self, Maintenance};
use crate::store::Store;
use crate::util::sync::lock;
pub use engine::{Alert, Data, Engine, HostInfo, Labels, Muted, Silence, State, Transition};
use nines_common::model::now_ms;
pub use persist::{Attempt, PersistError};
pub use rules::{Rules, RulesError};

/// Points one rule may read from one host's series in one evaluation.
const MAX_POINTS: u64 = 200_000;

/// The store as the engine's [`Data`].
#[derive(Debug)]
pub struct StoreData<'a> {
    store: &'a Store,
    services: &'a [ServiceConfig],
    /// Read on first use, once: the alert loop ticks every second but evaluates less often.
    maintenance: std::cell::OnceCell<Vec<Maintenance>>,
    /// Series reads that failed (the evaluation went on without them).
    errors: std::cell::Cell<u64>,
}

impl<'a> StoreData<'a> {
    /// The store as data; maintenance windows are read once, when first asked for.
    pub fn new(store: &'a Store, services: &'a [ServiceConfig]) -> Self {
        Self {
            store,
            services,
            maintenance: std::cell::OnceCell::new(),
            errors: std::cell::Cell::new(0),
        }
    }

    fn windows(&self) -> &[Maintenance] {
        self.maintenance.get_or_init(|| {
            records::maintenance(self.store).unwrap_or_else(|e| {
                tracing::warn!("alerts: maintenance windows unreadable: {e}");
                Vec::new()
            })
        })
    }
}

/// Whether `h`'s newest sample is its agent's goodbye. Only a host silent for more than an
/// interval is looked up: a host still sending has not stopped.
pub fn said_goodbye(store: &Store, h: &crate::store::HostRecord) -> bool {
    h.last_sample_ms > 0
        && now_ms() - h.last_sample_ms > i64::from(h.interval_ms)
        && store
            .query(
                &h.host,
                nines_common::model::AGENT_STOPPING,
                &[],
                (h.last_sample_ms, h.last_sample_ms),
                None,
                16,
            )
            .is_ok_and(|(_, s)| s.iter().any(|s| !s.points.is_empty()))
}

impl Data for StoreData<'_> {
    fn hosts(&self) -> Vec<HostInfo> {
        self.store
            .hosts()
            .into_iter()
            .map(|h| HostInfo {
                interval_ms: i64::from(h.interval_ms),
                last_sample_ms: h.last_sample_ms,
                first_seen_ms: h.first_seen_ms,
                stopped: said_goodbye(self.store, &h),
                host: h.host,
            })
            .collect()
    }

    fn series(
        &self,
        host: &str,
        metric: &str,
        labels: &[(String, String)],
        from: i64,
        to: i64,
    ) -> Vec<(Labels, Vec<(i64, f64)>)> {
        match self
            .store
            .query(host, metric, labels, (from, to), None, MAX_POINTS)
        {
            Ok((_, series)) => series
                .into_iter()
                .map(|s| {
                    let labels = s
                        .labels
                        .into_iter()
                        .map(|(k, v)| {
                            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                            (k, v)
                        })
                        .collect();
                    (labels, s.points)
                })
                .collect(),
            Err(e) => {
                tracing::warn!("alerts: reading {host} {metric}: {e}");
                self.errors.set(self.errors.get() + 1);
                Vec::new()
            }
        }
    }

    fn maintenance(&self, host: &str, now: i64) -> Option<String> {
        let instant = Interval::new(now, now + 1);
        self.windows()
            .iter()
            .filter(|m| !m.when.within(instant).is_empty())
            .find(|m| {
                self.services
                    .iter()
                    .any(|s| m.covers(&s.name) && s.members.iter().any(|x| x == host))
            })
            .map(|m| m.title.clone())
    }
}

/// The running alert engine: shared by the evaluation loop, the delivery tasks and the API.
#[derive(Debug)]
pub struct Alerting {
    engine: Mutex<Engine>,
    store: Store,
    services: Vec<ServiceConfig>,
    rules_path: Option<PathBuf>,
    reload_error: Mutex<Option<String>>,
    counts: Mutex<std::collections::BTreeMap<String, NotificationCounts>>,
    /// How long evaluations took (`/metrics`).
    evaluation_seconds: crate::util::histogram::Histogram,
    /// Evaluations that failed: a series unreadable, the state unsaved, or a panic.
    evaluation_failures: std::sync::atomic::AtomicU64,
}

/// Delivery attempts of one notifier since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationCounts {
    /// Notifications delivered.
    pub sent: u64,
    /// Attempts that failed (retried later or given up).
    pub failed: u64,
}

impl Alerting {
    /// The engine with `rules`, and whatever a previous run persisted in `store`.
    pub fn open(
        store: Store,
        services: Vec<ServiceConfig>,
        rules: Rules,
        rules_path: Option<PathBuf>,
        external_url: String,
    ) -> Result<Arc<Self>, PersistError> {
        let loaded = persist::load(&store)?;
        let mut engine = Engine::new(rules.clone(), external_url);
        engine.restore(
            loaded.alerts,
            loaded.groups,
            loaded.silences,
            loaded.outbox,
            loaded.next_notification,
        );
        // Rules removed while it was down take their alerts with them.
        engine.set_rules(rules);
        Ok(Arc::new(Self {
            engine: Mutex::new(engine),
            store,
            services,
            rules_path,
            reload_error: Mutex::new(None),
            counts: Mutex::default(),
            evaluation_seconds: Default::default(),
            evaluation_failures: Default::default(),
        }))
    }

    /// Runs `f` on the engine and persists what it changed.
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> Result<T, PersistError> {
        let mut e = lock(&self.engine);
        let out = f(&mut e);
        let transitions = e.take_transitions();
        persist::save(&self.store, &e, &transitions, &[])?;
        Ok(out)
    }

    /// Reads the engine without changing it.
    pub fn read<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(&lock(&self.engine))
    }

    /// The store the state lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Re-reads the rules file. A bad file keeps the rules in force and returns the error,
    /// which the API shows until a good file is loaded.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.rules_path else {
            return Ok(0);
        };
        match Rules::load(path) {
            Ok(rules) => {
                let n = rules.rules.len();
                let _ = self.with_engine(|e| e.set_rules(rules));
                *lock(&self.reload_error) = None;
                tracing::info!(rules = n, file = %path.display(), "alert rules reloaded");
                Ok(n)
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!("{msg}; the previous rules stay in force");
                *lock(&self.reload_error) = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// The last reload's error, while the file stays bad.
    pub fn reload_error(&self) -> Option<String> {
        lock(&self.reload_error).clone()
    }

    /// Evaluates and flushes at `now`, persists, and returns the ids of notifications due for
    /// delivery.
    pub fn tick(&self, now: i64) -> Result<Vec<u64>, PersistError> {
        let started = std::time::Instant::now();
        let data = StoreData::new(&self.store, &self.services);
        let mut e = lock(&self.engine);
        let before = e.next_notification_id();
        let evaluated_before = e.last_evaluation_ms();
        let made = e.tick(now, &data);
        let evaluated = e.last_evaluation_ms() != evaluated_before;
        let transitions = e.take_transitions();
        let changed =
            !made.is_empty() || !transitions.is_empty() || e.next_notification_id() != before;
        if changed && let Err(err) = persist::save(&self.store, &e, &transitions, &[]) {
            self.evaluation_failed();
            return Err(err);
        }
        if evaluated {
            self.evaluation_seconds.observe(started.elapsed());
            if data.errors.get() > 0 {
                self.evaluation_failed();
            }
        }
        Ok(e.outbox
            .values()
            .filter(|n| n.next_attempt_ms <= now)
            .map(|n| n.id)
            .collect())
    }

    fn evaluation_failed(&self) {
        self.evaluation_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the evaluations since start took (saving the state included).
    pub fn evaluation_seconds(&self) -> crate::util::histogram::Snapshot {
        self.evaluation_seconds.snapshot()
    }

    /// Evaluations since start that failed: a series could not be read, the state could not
    /// be saved, or the evaluation panicked.
    pub fn evaluation_failures(&self) -> u64 {
        self.evaluation_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Delivered and failed attempts by notifier, since start.
    pub fn notification_counts(&self) -> Vec<(String, NotificationCounts)> {
        lock(&self.counts)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Makes one delivery attempt of notification `id` and records it: delivered or given up,
    /// it leaves the outbox; otherwise it is retried after [`notify::backoff`].
    pub async fn attempt(&self, id: u64) -> Result<(), PersistError> {
        let (n, notifier) = {
            let e = lock(&self.engine);
            let Some(n) = e.outbox.get(&id).cloned() else {
                return Ok(());
            };
            let notifier = e.rules().notifiers.get(&n.notifier).cloned();
            (n, notifier)
        };
        let result = match &notifier {
            Some(cfg) => notify::deliver(cfg, &n).await,
            None => Err(notify::Failure {
                message: format!("notifier {:?} is no longer configured", n.notifier),
                retry: false,
            }),
        };
        {
            let mut counts = lock(&self.counts);
            let c = counts.entry(n.notifier.clone()).or_default();
            if result.is_ok() {
                c.sent += 1;
            } else {
                c.failed += 1;
            }
        }
        let now = now_ms();
        let attempt_no = n.attempts + 1;
        let max = notifier.as_ref().map_or(1, |c| c.max_attempts);
        let (ok, error, gave_up) = match &result {
            Ok(()) => (true, None, false),
            Err(f) => (
                false,
                Some(f.message.clone()),
                !f.retry || attempt_no >= max,
            ),
        };
        let alerts = n.payload["alerts"].as_array().map_or(0, Vec::len);
        let record = Attempt {
            at_ms: now,
            notification: id,
            notifier: n.notifier.clone(),
            group_key: n.group_key.clone(),
            status: n.payload["status"].as_str().unwrap_or("").to_owned(),
            alerts,
            attempt: attempt_no,
            ok,
            error: error.clone(),
            gave_up,
        };
        match &error {
            None => {
                tracing::info!(notifier = %n.notifier, group = %n.group_key, alerts, "notification delivered")
            }
            Some(msg) if gave_up => {
                tracing::error!(notifier = %n.notifier, attempt = attempt_no, "notification given up: {msg}")
            }
            Some(msg) => {
                tracing::warn!(notifier = %n.notifier, attempt = attempt_no, "notification failed, will retry: {msg}")
            }
        }
        let mut e = lock(&self.engine);
        if ok || gave_up {
            e.outbox.remove(&id);
        } else if let Some(o) = e.outbox.get_mut(&id) {
            o.attempts = attempt_no;
            o.next_attempt_ms = now + notify::backoff(attempt_no).as_millis() as i64;
        }
        let transitions = e.take_transitions();
        persist::save(&self.store, &e, &transitions, &[record])
    }

    /// Evaluates once a second until `shutdown`, delivering notifications as they fall due.
    pub fn spawn(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
            let mut in_flight: BTreeSet<u64> = BTreeSet::new();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_prune = 0i64;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    Some(id) = done_rx.recv() => { in_flight.remove(&id); continue; }
                    _ = shutdown.wait_for(|s| *s) => break,
                }
                let me = self.clone();
                let now = now_ms();
                let due = tokio::task::spawn_blocking(move || {
                    if now - last_prune > 3_600_000
                        && let Err(e) = persist::prune(&me.store, now - persist::LOG_RETENTION_MS)
                    {
                        tracing::warn!("alerts: pruning logs: {e}");
                    }
                    me.tick(now)
                })
                .await;
                if now - last_prune > 3_600_000 {
                    last_prune = now;
                }
                let due = match due {
                    Ok(Ok(due)) => due,
                    Ok(Err(e)) => {
                        tracing::warn!("alerts: {e}");
                        continue;
                    }
                    Err(_) => {
                        self.evaluation_failed();
                        continue;
                    }
                };
                for id in due {
                    if !in_flight.insert(id) {
                        continue;
                    }
                    let me = self.clone();
                    let tx = done_tx.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.attempt(id).await {
                            tracing::warn!("alerts: recording a delivery: {e}");
                        }
                        let _ = tx.send(id);
                    });
                }
            }
        })
    }
}
