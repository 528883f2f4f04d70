//! The alert engine's state in the store's redb database, as JSON rows in tables of their own:
//! alerts, groups, silences and undelivered notifications (rewritten after each change, so a
//! restart neither re-sends nor forgets), and two append-only logs: state transitions and
//! delivery attempts, pruned after [`LOG_RETENTION_MS`].

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::engine::{Alert, Engine, Group, Notification, Silence, Transition};
use crate::store::{Store, StoreError};

const ALERTS: TableDefinition<&str, &str> = TableDefinition::new("alerts_state");
const GROUPS: TableDefinition<&str, &str> = TableDefinition::new("alerts_groups");
const SILENCES: TableDefinition<u64, &str> = TableDefinition::new("alerts_silences");
const OUTBOX: TableDefinition<u64, &str> = TableDefinition::new("alerts_outbox");
const HISTORY: TableDefinition<u64, &str> = TableDefinition::new("alerts_history");
const NLOG: TableDefinition<u64, &str> = TableDefinition::new("alerts_notification_log");
const META: TableDefinition<&str, u64> = TableDefinition::new("alerts_meta");

/// How long transitions and delivery attempts are kept: 90 days.
pub const LOG_RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;

/// Why alert state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// redb failed.
    #[error("alert tables: {0}")]
    Db(String),
    /// A row does not parse.
    #[error("alert tables: row {0}: {1}")]
    Corrupt(String, String),
}

fn db(e: impl Into<redb::Error>) -> PersistError {
    PersistError::Db(e.into().to_string())
}

/// One delivery attempt, as the notification log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it finished, ms UTC.
    pub at_ms: i64,
    /// The notification.
    pub notification: u64,
    /// The notifier.
    pub notifier: String,
    /// The group.
    pub group_key: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Alerts it carried.
    pub alerts: usize,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Delivered.
    pub ok: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// No more attempts will be made.
    pub gave_up: bool,
}

/// What a previous run left.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Alerts.
    pub alerts: Vec<Alert>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Silences.
    pub silences: Vec<Silence>,
    /// Undelivered notifications.
    pub outbox: Vec<Notification>,
    /// Next notification id.
    pub next_notification: u64,
}

fn rows<K: redb::Key + 'static, T: for<'de> Deserialize<'de>>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, &'static str>,
) -> Result<Vec<T>, PersistError>
where
    for<'a> K::SelfType<'a>: std::fmt::Debug,
{
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let parsed = serde_json::from_str(v.value())
            .map_err(|e| PersistError::Corrupt(format!("{:?}", k.value()), e.to_string()))?;
        out.push(parsed);
    }
    Ok(out)
}

/// Reads what a previous run persisted.
pub fn load(store: &Store) -> Result<Loaded, PersistError> {
    let txn = store.begin_read()?;
    let next_notification = match txn.open_table(META) {
        Ok(t) => t
            .get("next_notification")
            .map_err(db)?
            .map_or(1, |v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => 1,
        Err(e) => return Err(db(e)),
    };
    Ok(Loaded {
        alerts: rows(&txn, ALERTS)?,
        groups: rows(&txn, GROUPS)?,
        silences: rows(&txn, SILENCES)?,
        outbox: rows(&txn, OUTBOX)?,
        next_notification,
    })
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Writes the engine's state and appends transitions and attempts, in one transaction.
pub fn save(
    store: &Store,
    engine: &Engine,
    transitions: &[Transition],
    attempts: &[Attempt],
) -> Result<(), PersistError> {
    let txn = store.begin_write()?;
    {
        for name in [ALERTS, GROUPS] {
            txn.delete_table(name).map_err(db)?;
        }
        txn.delete_table(SILENCES).map_err(db)?;
        txn.delete_table(OUTBOX).map_err(db)?;
        let mut t = txn.open_table(ALERTS).map_err(db)?;
        for a in engine.alerts.values() {
            t.insert(a.fingerprint.as_str(), json(a).as_str())
                .map_err(db)?;
        }
        let mut t = txn.open_table(GROUPS).map_err(db)?;
        for g in engine.groups.values() {
            t.insert(g.key.as_str(), json(g).as_str()).map_err(db)?;
        }
        let mut t = txn.open_table(SILENCES).map_err(db)?;
        for s in engine.silences.values() {
            t.insert(s.id, json(s).as_str()).map_err(db)?;
        }
        let mut t = txn.open_table(OUTBOX).map_err(db)?;
        for n in engine.outbox.values() {
            t.insert(n.id, json(n).as_str()).map_err(db)?;
        }
        let mut meta = txn.open_table(META).map_err(db)?;
        meta.insert("next_notification", engine.next_notification_id())
            .map_err(db)?;
        let mut append = |def: TableDefinition<u64, &str>,
                          counter: &str,
                          items: Vec<String>|
         -> Result<(), PersistError> {
            if items.is_empty() {
                return Ok(());
            }
            let mut next = meta.get(counter).map_err(db)?.map_or(1, |v| v.value());
            let mut t = txn.open_table(def).map_err(db)?;
            for item in items {
                t.insert(next, item.as_str()).map_err(db)?;
                next += 1;
            }
            meta.insert(counter, next).map_err(db)?;
            Ok(())
        };
        append(
            HISTORY,
            "next_history",
            transitions.iter().map(json).collect(),
        )?;
        append(NLOG, "next_attempt", attempts.iter().map(json).collect())?;
    }
    txn.commit().map_err(db)
}

fn newest<T: for<'de> Deserialize<'de>>(
    store: &Store,
    def: TableDefinition<u64, &'static str>,
    keep: impl Fn(&T) -> bool,
    limit: usize,
) -> Result<Vec<T>, PersistError> {
    let txn = store.begin_read()?;
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(db)?.rev() {
        let (k, v) = row.map_err(db)?;
        let item: T = serde_json::from_str(v.value())
            .map_err(|e| PersistError::Corrupt(k.value().to_string(), e.to_string()))?;
        if keep(&item) {
            out.push(item);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// State transitions in `[from, to]`, newest first, at most `limit`.
pub fn history(
    store: &Store,
    (from, to): (i64, i64),
    limit: usize,
) -> Result<Vec<Transition>, PersistError> {
    newest(
        store,
        HISTORY,
        |t: &Transition| t.at_ms >= from && t.at_ms <= to,
        limit,
    )
}

/// Delivery attempts, newest first, at most `limit`.
pub fn attempts(store: &Store, limit: usize) -> Result<Vec<Attempt>, PersistError> {
    newest(store, NLOG, |_: &Attempt| true, limit)
}

/// Deletes transitions and attempts older than `cutoff_ms`.
pub fn prune(store: &Store, cutoff_ms: i64) -> Result<usize, PersistError> {
    let txn = store.begin_write()?;
    let mut removed = 0;
    {
        for def in [HISTORY, NLOG] {
            let mut t = txn.open_table(def).map_err(db)?;
            let mut old = Vec::new();
            for row in t.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let at: Option<i64> = serde_json::from_str::<serde_json::Value>(v.value())
                    .ok()
                    .and_then(|j| j.get("at_ms")?.as_i64());
                if at.is_some_and(|a| a < cutoff_ms) {
                    old.push(k.value());
                } else {
                    break;
                }
            }
            for k in &old {
                t.remove(*k).map_err(db)?;
            }
            removed += old.len();
        }
    }
    txn.commit().map_err(db)?;
    Ok(removed)
}

/// Where alerts of rule `rule` on `host` fired within `range`, from the transition log (an
/// alert still firing fires until `now`).
pub fn firing(
    store: &Store,
    rule: &str,
    host: &str,
    range: crate::availability::Interval,
    now: i64,
) -> Result<Vec<crate::availability::Interval>, PersistError> {
    use super::engine::State;
    use crate::availability::Interval;
    let txn = store.begin_read()?;
    let table = match txn.open_table(HISTORY) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut open: std::collections::BTreeMap<String, i64> = Default::default();
    let mut out = Vec::new();
    for row in table.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let t: Transition = serde_json::from_str(v.value())
            .map_err(|e| PersistError::Corrupt(k.value().to_string(), e.to_string()))?;
        if t.labels.get("alertname").map(String::as_str) != Some(rule)
            || t.labels.get("host").map(String::as_str) != Some(host)
        {
            continue;
        }
        if t.at_ms > range.end {
            break;
        }
        match (t.from, t.to) {
            (_, State::Firing) => {
                open.insert(t.fingerprint, t.at_ms);
            }
            (State::Firing, _) => {
                if let Some(start) = open.remove(&t.fingerprint) {
                    out.push(Interval::new(start, t.at_ms).intersect(&range));
                }
            }
            _ => {}
        }
    }
    for start in open.into_values() {
        out.push(Interval::new(start, now.min(range.end)).intersect(&range));
    }
    Ok(crate::availability::interval::normalize(
        out.into_iter().filter(|i| !i.is_empty()).collect(),
    ))
}

/// The transition log, as availability reads it: a service's alert rules count against it
/// while they fire.
#[derive(Debug, Clone, Copy, Default)]
pub struct History;

impl crate::availability::service::AlertLog for History {
    fn firing(
        &self,
        store: &Store,
        rule: &str,
        host: &str,
        range: crate::availability::Interval,
        now: i64,
    ) -> Result<Vec<crate::availability::Interval>, crate::availability::records::RecordError> {
        firing(store, rule, host, range, now)
            .map_err(|e| crate::availability::records::RecordError::Db(e.to_string()))
    }
}
