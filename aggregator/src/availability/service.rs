//! One service over one period from stored data: member and process outages derived from
//! samples through [`Store::query`], incidents and maintenance from [`super::records`], and
//! the arithmetic of [`super::compute`].

use serde::Serialize;

use super::compute::{self, Outage, Summary};
use super::config::ServiceConfig;
use super::gaps;
use super::interval::{self, Interval};
use super::records::{self, Incident, RecordError};
use crate::store::{QueryError, Store};
use nines_common::metrics::HOST_SAMPLES;
use nines_common::model::AGENT_STOPPING;

/// Where an alert rule fired on a host: the alert engine's transition log. The alert engine is
/// a layer above availability (docs/design.md, "The map"), so whoever asks for a service's
/// availability hands its log in (`alerts::persist::History`).
pub trait AlertLog {
    /// The intervals of `range` in which alerts of `rule` on `host` fired (one still firing
    /// fires until `now`).
    fn firing(
        &self,
        store: &Store,
        rule: &str,
        host: &str,
        range: Interval,
        now: i64,
    ) -> Result<Vec<Interval>, RecordError>;
}

/// How far before a period outages are looked for, so one running across its start keeps
/// the start (and id) it had.
const LOOKBACK_MS: i64 = 24 * 3600 * 1000;

/// An incident in a report, with what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct ReportedIncident {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Weighted scheduled minutes it cost in the period (0 if not customer-impacting).
    pub lost_minutes: f64,
}

/// A service's availability over a period.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// The service.
    pub service: String,
    /// The numbers.
    #[serde(flatten)]
    pub summary: Summary,
    /// Met, missed, or unknown when no scheduled minute of the period was monitored.
    pub verdict: compute::Verdict,
    /// When the service's time started to count (`None`: not yet, too few members seen).
    pub monitored_since: Option<i64>,
    /// Scheduled minutes of the period before that: neither up nor down, not counted.
    pub not_monitored_minutes: f64,
    /// Maintenance minutes within the schedule (taken out of scheduled time when the service
    /// excludes maintenance).
    pub maintenance_minutes: f64,
    /// Incidents of the period, most minutes lost first ("top talkers").
    pub incidents: Vec<ReportedIncident>,
    /// Ids of incidents that still have no root cause.
    pub without_root_cause: Vec<String>,
}

fn store_err(e: QueryError) -> RecordError {
    match e {
        QueryError::Store(e) => RecordError::Store(e),
        other => RecordError::Db(other.to_string()),
    }
}

/// When `svc`'s time starts to count (docs/design.md, "Monitored time"): its configured
/// `since`; else when the k-th of its members (all of them without `k`) was first seen, since
/// it could not be up with fewer; `None` while fewer have been seen. A service without members
/// (incidents reported by people only) counts from `since`, or always.
pub fn monitored_since(store: &Store, svc: &ServiceConfig) -> Option<i64> {
    if let Some(since) = svc.since_ms() {
        return Some(since);
    }
    let k = svc.required_up();
    if k == 0 {
        return Some(crate::util::time::MIN_MS);
    }
    let mut seen: Vec<i64> = svc
        .members
        .iter()
        .filter_map(|m| store.host(m))
        .map(|r| r.first_seen_ms)
        .collect();
    seen.sort_unstable();
    seen.get(k - 1).copied()
}

/// Timestamps of everything `host` sent within `range`: the [`HOST_SAMPLES`] series the
/// aggregator derives at ingest, and before its first point (data stored by an older
/// aggregator) the host's `host_uptime_seconds`.
fn sample_times(store: &Store, host: &str, range: (i64, i64)) -> Result<Vec<i64>, RecordError> {
    let times = |name: &str, range: (i64, i64)| -> Result<Vec<i64>, RecordError> {
        let (_, series) = store
            .query(host, name, &[], range, None, u64::MAX)
            .map_err(store_err)?;
        Ok(series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect())
    };
    let mut ts = times(HOST_SAMPLES, range)?;
    let first = ts.iter().copied().min().unwrap_or(range.1);
    if first > range.0 {
        ts.extend(times("host_uptime_seconds", (range.0, first))?);
    }
    ts.sort_unstable();
    ts.dedup();
    Ok(ts)
}

/// What the data says of one member over the judged time.
#[derive(Debug, Default)]
struct MemberState {
    /// Where it did not serve the service, with what was wrong.
    down: Vec<(Interval, String)>,
    /// Where its agent had stopped cleanly: not known either way.
    stopped: Vec<Interval>,
}

/// Intervals of `judged` in which `host` does not serve `svc` (not seen yet, silent, a
/// required process not running, or a counted alert firing; each with what was wrong), and
/// those in which its agent had stopped cleanly.
fn member_state(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    host: &str,
    judged: Interval,
    now: i64,
) -> Result<MemberState, RecordError> {
    let Some(rec) = store.host(host) else {
        return Ok(MemberState {
            down: vec![(judged, format!("{host}: no data yet"))],
            stopped: Vec::new(),
        });
    };
    let mut out: Vec<(Interval, String)> = Vec::new();
    if rec.first_seen_ms > judged.start {
        out.push((
            Interval::new(judged.start, rec.first_seen_ms.min(judged.end)),
            format!("{host}: not seen yet"),
        ));
    }
    let interval_ms = i64::from(rec.interval_ms.max(1000));
    let margin = gaps::DOWN_AFTER_INTERVALS * interval_ms;
    let wide = (judged.start - margin, judged.end);
    let ts = sample_times(store, host, (wide.0, judged.end + margin + 1))?;
    let (_, series) = store
        .query(host, AGENT_STOPPING, &[], wide, None, u64::MAX)
        .map_err(store_err)?;
    let mut goodbyes: Vec<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    goodbyes.sort_unstable();
    let silence = gaps::host_silence(&ts, &goodbyes, interval_ms, judged, rec.first_seen_ms, now);
    out.extend(
        silence
            .down
            .into_iter()
            .map(|i| (i, format!("{host} down"))),
    );
    for rule in &svc.alert_rules {
        let fired = alerts.firing(store, rule, host, judged, now)?;
        out.extend(
            fired
                .into_iter()
                .map(|i| (i, format!("alert {rule} firing on {host}"))),
        );
    }
    for p in &svc.processes {
        let matchers = [("process".to_owned(), p.clone())];
        let (_, series) = store
            .query(host, "process_up", &matchers, wide, None, u64::MAX)
            .map_err(store_err)?;
        for s in series {
            out.extend(
                gaps::process_down(&s.points, interval_ms, judged)
                    .into_iter()
                    .map(|i| (i, format!("{p} not running on {host}"))),
            );
        }
    }
    out.retain(|(i, _)| !i.is_empty());
    Ok(MemberState {
        down: out,
        stopped: silence.stopped,
    })
}

/// Outages of `svc` seen in the data within `range`, as automatic incidents: exactly the
/// maximal intervals of monitored time in which fewer than the required members served it.
/// Each starts no earlier than the service's monitored time and ends at the first moment the
/// data shows it up again; one still lasting at `now` is open.
pub fn automatic_incidents(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    range: Interval,
    now: i64,
) -> Result<Vec<Incident>, RecordError> {
    Ok(derive(store, alerts, svc, range, now)?.0)
}

/// [`automatic_incidents`], and the monitored time within `range` that is not known either
/// way because agents had stopped cleanly: where the service would be down if the stopped
/// members were, and is not down with them up.
fn derive(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    range: Interval,
    now: i64,
) -> Result<(Vec<Incident>, Vec<Interval>), RecordError> {
    let Some(since) = monitored_since(store, svc) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let judged = Interval::new(range.start.max(since), range.end.min(now));
    if judged.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut states = Vec::new();
    for m in &svc.members {
        states.push(member_state(store, alerts, svc, m, judged, now)?);
    }
    let per_member: Vec<&Vec<(Interval, String)>> = states.iter().map(|s| &s.down).collect();
    let downs: Vec<Vec<Interval>> = per_member
        .iter()
        .map(|v| v.iter().map(|(i, _)| *i).collect())
        .collect();
    let k = svc.required_up();
    let pool = interval::fewer_than_k_up(&downs, k, judged);
    let unknown_or_down: Vec<Vec<Interval>> = downs
        .iter()
        .zip(&states)
        .map(|(d, s)| d.iter().chain(&s.stopped).copied().collect())
        .collect();
    let stopped = interval::subtract(
        &interval::fewer_than_k_up(&unknown_or_down, k, judged),
        &pool,
    );
    let mut out = Vec::new();
    for i in pool {
        let mut causes: Vec<&str> = Vec::new();
        for (_, c) in per_member
            .iter()
            .copied()
            .flatten()
            .filter(|(d, _)| !d.intersect(&i).is_empty())
        {
            if !causes.contains(&c.as_str()) {
                causes.push(c);
            }
        }
        let open = i.end >= judged.end && range.end >= now;
        out.push(Incident {
            id: format!("auto:{}:{}", svc.name, i.start),
            service: svc.name.clone(),
            automatic: true,
            title: causes.join("; "),
            start_ms: i.start,
            end_ms: if open { None } else { Some(i.end) },
            share: 1.0,
            impact: 1.0,
            acknowledged: false,
            root_cause: None,
            follow_up: Vec::new(),
            customer_impacting: true,
            history: Vec::new(),
        });
    }
    Ok((out, stopped))
}

/// An incident the recorder took back: later data showed no outage.
fn withdrawn(i: &Incident) -> bool {
    i.end_ms == Some(i.start_ms)
}

/// Whether stored incident `s` is the outage `d` derived over a search starting at
/// `look_start`: the same start, or `d` starts at the edge of the search and `s` runs across
/// it (an outage older than the search keeps the start and id it was recorded with).
fn same_outage(s: &Incident, d: &Incident, look_start: i64) -> bool {
    s.start_ms == d.start_ms
        || (d.start_ms == look_start
            && s.start_ms < look_start
            && !withdrawn(s)
            && s.end_ms.is_none_or(|e| e >= look_start))
}

/// What the data shows (`derived`, over `look`) with the stored automatic incidents of
/// `service`: a derived outage that was recorded keeps its record's id, start and
/// annotations and takes the data's end and title; stored incidents that ended before `look`
/// come as they were recorded.
fn merge_automatic(
    stored: &[Incident],
    service: &str,
    derived: Vec<Incident>,
    look: Interval,
) -> Vec<Incident> {
    let autos: Vec<&Incident> = stored
        .iter()
        .filter(|s| s.automatic && s.service == service)
        .collect();
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::new();
    for d in derived {
        match autos
            .iter()
            .find(|s| !used.contains(&s.id) && same_outage(s, &d, look.start))
        {
            Some(s) => {
                used.insert(s.id.clone());
                out.push(Incident {
                    start_ms: s.start_ms,
                    end_ms: d.end_ms,
                    title: d.title,
                    ..(*s).clone()
                });
            }
            None => out.push(d),
        }
    }
    out.extend(
        autos
            .into_iter()
            .filter(|s| {
                !used.contains(&s.id) && !withdrawn(s) && s.end_ms.is_some_and(|e| e < look.start)
            })
            .cloned(),
    );
    out
}

/// How far back the recorder searches the data at most (an open incident older than this
/// keeps its recorded start).
const TRACK_MAX_LOOKBACK_MS: i64 = 30 * 24 * 3600 * 1000;

/// Records `svc`'s automatic incidents as they open and close, so an outage keeps its id and
/// start however long it lasts. Every pass makes the record equal what the data shows over
/// the last day (and back to the start of any incident still open): it opens an incident for
/// each outage the data shows, closes it at the first moment the data shows the service up,
/// opens a new one for a later outage, and withdraws one the data no longer shows (an agent's
/// spool arrived late: it was not an outage). Returns how many incidents it changed. The
/// aggregator runs it every minute for every service and every host.
pub fn track(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    now: i64,
) -> Result<usize, RecordError> {
    track_within(store, alerts, svc, now, LOOKBACK_MS)
}

/// [`track`] searching only `lookback_ms` back (and to the start of any incident still open):
/// for every host's own incidents, where a day of every host's samples a minute would cost
/// more than data arriving later than that is worth. Reports recompute from the data anyway.
pub fn track_within(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    now: i64,
    lookback_ms: i64,
) -> Result<usize, RecordError> {
    let stored: Vec<Incident> = records::incidents(store)?
        .into_iter()
        .filter(|s| s.automatic && s.service == svc.name)
        .collect();
    track_stored(store, alerts, svc, stored, now, lookback_ms)
}

/// [`track_within`] for each `(service, lookback ms)`, reading the stored incidents once for
/// all of them (the aggregator's pass over every service and every host). One result per
/// service, in order.
pub fn track_many(
    store: &Store,
    alerts: &dyn AlertLog,
    list: &[(ServiceConfig, i64)],
    now: i64,
) -> Result<Vec<Result<usize, RecordError>>, RecordError> {
    let mut by_service: std::collections::HashMap<String, Vec<Incident>> =
        std::collections::HashMap::new();
    for i in records::incidents(store)?
        .into_iter()
        .filter(|i| i.automatic)
    {
        by_service.entry(i.service.clone()).or_default().push(i);
    }
    Ok(list
        .iter()
        .map(|(svc, lookback_ms)| {
            let stored = by_service.remove(&svc.name).unwrap_or_default();
            track_stored(store, alerts, svc, stored, now, *lookback_ms)
        })
        .collect())
}

fn track_stored(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    stored: Vec<Incident>,
    now: i64,
    lookback_ms: i64,
) -> Result<usize, RecordError> {
    let oldest_open = stored
        .iter()
        .filter(|s| s.end_ms.is_none())
        .map(|s| s.start_ms)
        .min()
        .unwrap_or(now);
    let look = Interval::new(
        (now - lookback_ms)
            .min(oldest_open)
            .max(now - TRACK_MAX_LOOKBACK_MS),
        now,
    );
    let derived = automatic_incidents(store, alerts, svc, look, now)?;
    let by = |what: String| records::Change {
        at_ms: now,
        by: "nines".into(),
        what,
    };
    let at = crate::util::time::rfc3339_or_raw;
    let mut changed = 0;
    let mut seen = std::collections::HashSet::new();
    for d in derived {
        match stored
            .iter()
            .find(|s| !seen.contains(&s.id) && same_outage(s, &d, look.start))
        {
            Some(s) => {
                seen.insert(s.id.clone());
                if s.end_ms == d.end_ms && s.title == d.title {
                    continue;
                }
                let mut u = s.clone();
                let what = match (withdrawn(s), s.end_ms, d.end_ms) {
                    (true, _, _) => "reopened: the data shows the outage after all".to_owned(),
                    (false, None, Some(e)) => {
                        format!("closed: the data shows recovery at {}", at(e))
                    }
                    (false, Some(_), None) => {
                        "reopened: data that arrived later shows it lasts".to_owned()
                    }
                    (false, Some(_), Some(e)) if s.end_ms != d.end_ms => {
                        format!("end moved to {} by data that arrived later", at(e))
                    }
                    _ => format!("cause now: {}", d.title),
                };
                u.history.push(by(what));
                u.end_ms = d.end_ms;
                u.title = d.title;
                records::put_incident(store, &u)?;
                changed += 1;
            }
            None => {
                let mut n = d;
                n.history
                    .push(by(format!("opened from the data: {}", n.title)));
                records::put_incident(store, &n)?;
                changed += 1;
            }
        }
    }
    for s in stored {
        if !seen.contains(&s.id) && !withdrawn(&s) && s.start_ms >= look.start {
            let mut u = s;
            u.end_ms = Some(u.start_ms);
            u.history.push(by(
                "withdrawn: data that arrived later shows no outage".into()
            ));
            records::put_incident(store, &u)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// `svc`'s availability over `range` (clipped to `now`).
pub fn report(
    store: &Store,
    alerts: &dyn AlertLog,
    svc: &ServiceConfig,
    range: Interval,
    now: i64,
) -> Result<ServiceReport, RecordError> {
    let range = Interval::new(range.start, range.end.min(now));
    let schedule = svc
        .schedule
        .to_schedule()
        .map_err(|e| RecordError::Db(format!("service {:?}: {e}", svc.name)))?;
    let planned = schedule.scheduled(range);
    let maintenance: Vec<Interval> = interval::normalize(
        records::maintenance(store)?
            .iter()
            .filter(|m| m.covers(&svc.name))
            .flat_map(|m| m.when.within(range))
            .collect(),
    );
    let since = monitored_since(store, svc);
    let monitored = match since {
        Some(s) => Interval::new(range.start.max(s).min(range.end), range.end),
        None => Interval::new(range.end, range.end),
    };
    let maintenance_minutes = interval::minutes(&interval::intersect(
        &interval::intersect(&planned, &maintenance),
        &[monitored],
    ));
    let all = super::schedule::effective_schedule(planned, &maintenance, svc.exclude_maintenance);
    let scheduled = interval::intersect(&all, &[monitored]);
    let not_monitored_minutes = interval::minutes(&interval::subtract(&all, &[monitored]));

    let stored = records::incidents(store)?;
    let look = Interval::new(range.start - LOOKBACK_MS, range.end);
    let (derived, stopped) = derive(store, alerts, svc, look, now)?;
    let stopped = interval::intersect(&stopped, &[range]);
    let not_monitored_minutes =
        not_monitored_minutes + interval::minutes(&interval::intersect(&scheduled, &stopped));
    let scheduled = interval::subtract(&scheduled, &stopped);
    let mut incidents = merge_automatic(&stored, &svc.name, derived, look);
    incidents.extend(
        stored
            .into_iter()
            .filter(|s| !s.automatic && s.service == svc.name),
    );
    incidents.retain(|i| !i.interval(now).intersect(&range).is_empty());

    let outages: Vec<Outage> = incidents
        .iter()
        .filter(|i| i.customer_impacting)
        .map(|i| Outage {
            interval: i.interval(now).intersect(&range),
            share: i.share,
            impact: i.impact,
        })
        .collect();
    let summary = compute::summarize(&scheduled, &outages, svc.target_percent);
    let mut reported: Vec<ReportedIncident> = incidents
        .into_iter()
        .map(|incident| {
            let lost_minutes = if incident.customer_impacting {
                Outage {
                    interval: incident.interval(now).intersect(&range),
                    share: incident.share,
                    impact: incident.impact,
                }
                .lost_minutes(&scheduled)
            } else {
                0.0
            };
            ReportedIncident {
                incident,
                lost_minutes,
            }
        })
        .collect();
    reported.sort_by(|a, b| {
        b.lost_minutes
            .total_cmp(&a.lost_minutes)
            .then(a.incident.start_ms.cmp(&b.incident.start_ms))
    });
    let without_root_cause = reported
        .iter()
        .filter(|r| r.incident.root_cause.is_none())
        .map(|r| r.incident.id.clone())
        .collect();
    Ok(ServiceReport {
        service: svc.name.clone(),
        verdict: summary.verdict(),
        summary,
        monitored_since: since,
        not_monitored_minutes,
        maintenance_minutes,
        incidents: reported,
        without_root_cause,
    })
}

#[cfg(test)]
mod tests;
