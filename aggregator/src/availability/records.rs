//! Incidents and maintenance windows, kept as JSON rows in tables of their own in the store's
//! redb database. Each change is one short write transaction.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::interval::Interval;
use super::schedule::{self, Schedule};
use crate::store::{Store, StoreError};

/// Incident id → JSON [`Incident`]. Manual incidents are `m1`, `m2`, ...; an automatic
/// incident is stored only once someone annotates it, under its derived id.
const INCIDENTS: TableDefinition<&str, &str> = TableDefinition::new("availability_incidents");
/// Maintenance id → JSON [`Maintenance`].
const MAINTENANCE: TableDefinition<u64, &str> = TableDefinition::new("availability_maintenance");
/// Counters: `next_incident`, `next_maintenance`.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("availability_counters");

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// redb failed.
    #[error("availability tables: {0}")]
    Db(String),
    /// A stored row does not parse.
    #[error("availability tables: row {key}: {detail}")]
    Corrupt {
        /// Its key.
        key: String,
        /// The parser's message.
        detail: String,
    },
}

fn db(e: impl Into<redb::Error>) -> RecordError {
    RecordError::Db(e.into().to_string())
}

/// One change to an incident, kept for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// When, ms UTC.
    pub at_ms: i64,
    /// The token's name.
    pub by: String,
    /// What changed, and why where a reason was given.
    pub what: String,
}

/// An incident: an outage seen in the data, or one reported by people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `m<n>` for manual incidents, `auto:<service>:<cause>:<start ms>` for automatic ones.
    pub id: String,
    /// The service.
    pub service: String,
    /// Derived from data rather than reported.
    pub automatic: bool,
    /// What happened.
    pub title: String,
    /// Start, ms UTC.
    pub start_ms: i64,
    /// End, ms UTC; `None` while it lasts.
    pub end_ms: Option<i64>,
    /// Fraction of users affected.
    pub share: f64,
    /// Fraction of their work lost.
    pub impact: f64,
    /// Someone has taken it on.
    pub acknowledged: bool,
    /// Root cause, once known.
    pub root_cause: Option<String>,
    /// Follow-up actions.
    pub follow_up: Vec<String>,
    /// False when someone marked it as not customer-impacting: it then costs no downtime.
    pub customer_impacting: bool,
    /// Every change, oldest first.
    pub history: Vec<Change>,
}

impl Incident {
    /// Its time, up to `now` while it lasts.
    pub fn interval(&self, now: i64) -> Interval {
        Interval::new(self.start_ms, self.end_ms.unwrap_or(now))
    }
}

/// When a maintenance window applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MaintenanceWhen {
    /// Once, `[start_ms, end_ms)`.
    Once {
        /// Start, ms UTC.
        start_ms: i64,
        /// End, ms UTC.
        end_ms: i64,
    },
    /// Every week, in local time.
    Weekly {
        /// IANA time zone.
        time_zone: String,
        /// `mon` .. `sun`.
        days: Vec<String>,
        /// `HH:MM`.
        start: String,
        /// `HH:MM`.
        end: String,
    },
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Its id.
    pub id: u64,
    /// Services it covers; empty means all.
    pub services: Vec<String>,
    /// What is done.
    pub title: String,
    /// When.
    #[serde(flatten)]
    pub when: MaintenanceWhen,
    /// Who created it.
    pub created_by: String,
}

impl MaintenanceWhen {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Once { start_ms, end_ms } if end_ms <= start_ms => {
                Err("end must be after start".into())
            }
            Self::Once { .. } => Ok(()),
            Self::Weekly {
                time_zone,
                days,
                start,
                end,
            } => {
                schedule::time_zone(time_zone)?;
                schedule::parse_window(days, start, end).map(|_| ())
            }
        }
    }

    /// Its times within `range`.
    pub fn within(&self, range: Interval) -> Vec<Interval> {
        match self {
            Self::Once { start_ms, end_ms } => {
                let i = Interval::new(*start_ms, *end_ms).intersect(&range);
                if i.is_empty() { Vec::new() } else { vec![i] }
            }
            Self::Weekly {
                time_zone,
                days,
                start,
                end,
            } => {
                let (Ok(tz), Ok(w)) = (
                    schedule::time_zone(time_zone),
                    schedule::parse_window(days, start, end),
                ) else {
                    return Vec::new();
                };
                Schedule {
                    time_zone: tz,
                    weekly: vec![w],
                    holidays: Vec::new(),
                }
                .scheduled(range)
            }
        }
    }
}

impl Maintenance {
    /// Whether it covers `service`.
    pub fn covers(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, json: &str) -> Result<T, RecordError> {
    serde_json::from_str(json).map_err(|e| RecordError::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn next(txn: &redb::WriteTransaction, counter: &str) -> Result<u64, RecordError> {
    let mut t = txn.open_table(COUNTERS).map_err(db)?;
    let n = t.get(counter).map_err(db)?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert(counter, n).map_err(db)?;
    Ok(n)
}

/// Stores a new manual incident, giving it the next id, and returns it.
pub fn create_incident(store: &Store, mut inc: Incident) -> Result<Incident, RecordError> {
    let txn = store.begin_write()?;
    inc.id = format!("m{}", next(&txn, "next_incident")?);
    txn.open_table(INCIDENTS)
        .map_err(db)?
        .insert(inc.id.as_str(), to_json(&inc).as_str())
        .map_err(db)?;
    txn.commit().map_err(db)?;
    Ok(inc)
}

/// Stores an incident under its id, replacing what was there.
pub fn put_incident(store: &Store, inc: &Incident) -> Result<(), RecordError> {
    let txn = store.begin_write()?;
    txn.open_table(INCIDENTS)
        .map_err(db)?
        .insert(inc.id.as_str(), to_json(inc).as_str())
        .map_err(db)?;
    txn.commit().map_err(db)?;
    Ok(())
}

/// Every stored incident (manual ones, and annotated automatic ones).
pub fn incidents(store: &Store) -> Result<Vec<Incident>, RecordError> {
    let txn = store.begin_read()?;
    let t = match txn.open_table(INCIDENTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut out = Vec::new();
    for row in t.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        out.push(parse(k.value(), v.value())?);
    }
    Ok(out)
}

/// Stores a new maintenance window, giving it the next id.
pub fn create_maintenance(store: &Store, mut m: Maintenance) -> Result<Maintenance, RecordError> {
    let txn = store.begin_write()?;
    m.id = next(&txn, "next_maintenance")?;
    txn.open_table(MAINTENANCE)
        .map_err(db)?
        .insert(m.id, to_json(&m).as_str())
        .map_err(db)?;
    txn.commit().map_err(db)?;
    Ok(m)
}

/// Deletes a maintenance window; false if there was none with that id.
pub fn delete_maintenance(store: &Store, id: u64) -> Result<bool, RecordError> {
    let txn = store.begin_write()?;
    let found = txn
        .open_table(MAINTENANCE)
        .map_err(db)?
        .remove(id)
        .map_err(db)?
        .is_some();
    txn.commit().map_err(db)?;
    Ok(found)
}

/// Every maintenance window.
pub fn maintenance(store: &Store) -> Result<Vec<Maintenance>, RecordError> {
    let txn = store.begin_read()?;
    let t = match txn.open_table(MAINTENANCE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut out = Vec::new();
    for row in t.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        out.push(parse(&k.value().to_string(), v.value())?);
    }
    Ok(out)
}
