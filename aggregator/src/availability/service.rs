//! One service over one period from stored data: member and process outages derived from
//! samples through [`Store::query`], incidents and maintenance from [`super::records`], and
//! the arithmetic of [`super::compute`].

use serde::Serialize;

use super::compute::{self, Outage, Summary};
use super::config::ServiceConfig;
use super::gaps;
use super::interval::{self, Interval};
use super::records::{self, Incident, RecordError};
use crate::ingest::HOST_SAMPLES;
use crate::store::{QueryError, Store};
use nines_common::model::AGENT_STOPPING;

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
        let fired = crate::alerts::persist::firing(store, rule, host, judged, now)
            .map_err(|e| RecordError::Db(e.to_string()))?;
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
    svc: &ServiceConfig,
    range: Interval,
    now: i64,
) -> Result<Vec<Incident>, RecordError> {
    Ok(derive(store, svc, range, now)?.0)
}

/// [`automatic_incidents`], and the monitored time within `range` that is not known either
/// way because agents had stopped cleanly: where the service would be down if the stopped
/// members were, and is not down with them up.
fn derive(
    store: &Store,
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
        states.push(member_state(store, svc, m, judged, now)?);
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
pub fn track(store: &Store, svc: &ServiceConfig, now: i64) -> Result<usize, RecordError> {
    track_within(store, svc, now, LOOKBACK_MS)
}

/// [`track`] searching only `lookback_ms` back (and to the start of any incident still open):
/// for every host's own incidents, where a day of every host's samples a minute would cost
/// more than data arriving later than that is worth. Reports recompute from the data anyway.
pub fn track_within(
    store: &Store,
    svc: &ServiceConfig,
    now: i64,
    lookback_ms: i64,
) -> Result<usize, RecordError> {
    let stored: Vec<Incident> = records::incidents(store)?
        .into_iter()
        .filter(|s| s.automatic && s.service == svc.name)
        .collect();
    track_stored(store, svc, stored, now, lookback_ms)
}

/// [`track_within`] for each `(service, lookback ms)`, reading the stored incidents once for
/// all of them (the aggregator's pass over every service and every host). One result per
/// service, in order.
pub fn track_many(
    store: &Store,
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
            track_stored(store, svc, stored, now, *lookback_ms)
        })
        .collect())
}

fn track_stored(
    store: &Store,
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
    let derived = automatic_incidents(store, svc, look, now)?;
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
    let all = compute::effective_schedule(planned, &maintenance, svc.exclude_maintenance);
    let scheduled = interval::intersect(&all, &[monitored]);
    let not_monitored_minutes = interval::minutes(&interval::subtract(&all, &[monitored]));

    let stored = records::incidents(store)?;
    let look = Interval::new(range.start - LOOKBACK_MS, range.end);
    let (derived, stopped) = derive(store, svc, look, now)?;
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{BatchWrite, HelloWrite};
    use nines_common::proto::Hello;
    use nines_common::{HostId, SeriesKey};

    const MIN: i64 = 60_000;

    fn service(members: &[&str], k: Option<usize>) -> ServiceConfig {
        toml::from_str::<ServiceConfig>(&format!(
            "name = \"shop\"\ntarget_percent = 99.9\nmembers = {members:?}\n{}",
            k.map(|k| format!("k = {k}\n")).unwrap_or_default()
        ))
        .unwrap()
    }

    async fn hello(store: &Store, host: &str) {
        hello_at(store, host, 0).await;
    }

    /// A host's first `Hello` at `at`, aggregator time.
    async fn hello_at(store: &Store, host: &str, at: i64) {
        let host = HostId::new(host).unwrap();
        store
            .hello(HelloWrite {
                host: host.clone(),
                hello: Hello {
                    protocol: 1,
                    agent_version: "t".into(),
                    host_id: host.to_string(),
                    boot_id: "b".into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    kernel: "6".into(),
                    interval_ms: 10_000,
                },
                now_ms: at,
            })
            .await
            .unwrap();
    }

    /// What ingest stores for a host's ticks at `ts`: one [`HOST_SAMPLES`] point each (and
    /// no `host_uptime_seconds`: liveness must not need that collector).
    async fn ticks(store: &Store, host: &str, ts: &[i64], seq: u64) {
        let h = HostId::new(host).unwrap();
        let id = store
            .series_id(&h, SeriesKey::new(HOST_SAMPLES, &[]))
            .unwrap();
        store
            .write_batch(BatchWrite {
                host: h,
                seq,
                points: ts.iter().map(|&t| (id, t, 40.0)).collect(),
            })
            .await
            .unwrap();
    }

    /// Uptime samples every 10 s over `[from, to)`.
    async fn uptime(store: &Store, host: &str, from: i64, to: i64, seq: u64) {
        let h = HostId::new(host).unwrap();
        let id = store
            .series_id(&h, SeriesKey::new("host_uptime_seconds", &[]))
            .unwrap();
        store
            .write_batch(BatchWrite {
                host: h,
                seq,
                points: (from..to)
                    .step_by(10_000)
                    .map(|t| (id, t, t as f64 / 1000.0))
                    .collect(),
            })
            .await
            .unwrap();
    }

    fn base() -> i64 {
        (nines_common::model::now_ms() / 3_600_000 - 48) * 3_600_000
    }

    #[tokio::test]
    async fn a_counted_alert_rule_firing_on_a_member_is_down_time() {
        use crate::alerts::{Engine, Rules, State, Transition};
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t0 = base();
        let day = Interval::new(t0, t0 + 24 * 60 * MIN);
        hello(&store, "web-1").await;
        uptime(&store, "web-1", t0 - 26 * 60 * MIN, day.end, 1).await;
        let labels = |host: &str, rule: &str| -> crate::alerts::Labels {
            [
                ("alertname", rule),
                ("host", host),
                ("severity", "critical"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        let t = |at: i64, host: &str, rule: &str, from: State, to: State| Transition {
            at_ms: at,
            fingerprint: format!("{host}{rule}"),
            labels: labels(host, rule),
            from,
            to,
            value: 1.0,
        };
        // HighLatency fires 30 min on web-1; another rule, and the same rule on another
        // host, do not count; one firing from before the day counts from its start.
        let log = [
            t(
                t0 - 60 * MIN,
                "web-1",
                "HighLatency",
                State::Pending,
                State::Firing,
            ),
            t(
                t0 + 15 * MIN,
                "web-1",
                "HighLatency",
                State::Firing,
                State::Resolved,
            ),
            t(
                t0 + 100 * MIN,
                "web-1",
                "HighLatency",
                State::Inactive,
                State::Pending,
            ),
            t(
                t0 + 110 * MIN,
                "web-1",
                "HighLatency",
                State::Pending,
                State::Firing,
            ),
            t(
                t0 + 125 * MIN,
                "web-1",
                "HighLatency",
                State::Firing,
                State::Resolved,
            ),
            t(
                t0 + 200 * MIN,
                "web-1",
                "DiskFullSoon",
                State::Inactive,
                State::Firing,
            ),
            t(
                t0 + 300 * MIN,
                "web-2",
                "HighLatency",
                State::Inactive,
                State::Firing,
            ),
        ];
        let engine = Engine::new(Rules::empty(), String::new());
        crate::alerts::persist::save(&store, &engine, &log, &[]).unwrap();
        let mut svc = service(&["web-1"], None);
        svc.alert_rules = vec!["HighLatency".into()];
        let r = report(&store, &svc, day, day.end).unwrap();
        assert!(
            (r.summary.downtime_minutes - 30.0).abs() < 1e-9,
            "{:?}",
            r.summary
        );
        let titles: Vec<&str> = r
            .incidents
            .iter()
            .map(|i| i.incident.title.as_str())
            .collect();
        assert_eq!(
            titles,
            [
                "alert HighLatency firing on web-1",
                "alert HighLatency firing on web-1"
            ]
        );
        // Without the rule counted, the same day is all up.
        let r = report(&store, &service(&["web-1"], None), day, day.end).unwrap();
        assert_eq!(r.summary.downtime_minutes, 0.0);
    }

    #[tokio::test]
    async fn a_tracked_outage_keeps_its_id_and_start_past_a_day_and_closes_on_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t0 = base() - 24 * 60 * MIN;
        hello(&store, "web-1").await;
        uptime(&store, "web-1", t0 - 26 * 60 * MIN, t0, 1).await;
        let svc = service(&["web-1"], None);
        let h = 60 * MIN;
        // Silent from t0 on; the tracker opens the incident at its real start.
        assert_eq!(track(&store, &svc, t0 + 30 * MIN).unwrap(), 1);
        let stored = records::incidents(&store).unwrap();
        assert_eq!(stored.len(), 1);
        let id = stored[0].id.clone();
        assert_eq!(stored[0].start_ms, t0 - 10_000);
        assert_eq!(stored[0].end_ms, None);
        assert!(
            stored[0].history[0]
                .what
                .starts_with("opened from the data")
        );
        // 30 h later, still down: nothing changes, and a report of the last 5 h shows the
        // incident with its real start and id, not the edge of what the data search sees.
        assert_eq!(track(&store, &svc, t0 + 30 * h).unwrap(), 0);
        let r = report(
            &store,
            &svc,
            Interval::new(t0 + 25 * h, t0 + 30 * h),
            t0 + 30 * h,
        )
        .unwrap();
        assert_eq!(r.incidents.len(), 1);
        assert_eq!(r.incidents[0].incident.id, id);
        assert_eq!(r.incidents[0].incident.start_ms, t0 - 10_000);
        assert!((r.summary.downtime_minutes - 300.0).abs() < 1e-9);
        // It recovers: closed, with the recovery time.
        uptime(&store, "web-1", t0 + 30 * h, t0 + 31 * h, 2).await;
        assert_eq!(track(&store, &svc, t0 + 31 * h).unwrap(), 1);
        let stored = records::incidents(&store).unwrap();
        assert_eq!(stored[0].end_ms, Some(t0 + 30 * h));
        assert!(
            stored[0].history[1].what.starts_with("closed"),
            "{:?}",
            stored[0].history
        );
    }

    #[tokio::test]
    async fn an_open_incident_the_late_spool_disproves_is_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t0 = base();
        hello(&store, "web-1").await;
        uptime(&store, "web-1", t0 - 26 * 60 * MIN, t0, 1).await;
        let svc = service(&["web-1"], None);
        assert_eq!(track(&store, &svc, t0 + 20 * MIN).unwrap(), 1);
        // The spooled samples arrive: no gap after all.
        uptime(&store, "web-1", t0, t0 + 20 * MIN, 2).await;
        assert_eq!(track(&store, &svc, t0 + 20 * MIN).unwrap(), 1);
        let stored = records::incidents(&store).unwrap();
        assert_eq!(stored[0].end_ms, Some(stored[0].start_ms));
        assert!(stored[0].history[1].what.starts_with("withdrawn"));
        let r = report(
            &store,
            &svc,
            Interval::new(t0 - 60 * MIN, t0 + 20 * MIN),
            t0 + 20 * MIN,
        )
        .unwrap();
        assert_eq!(r.summary.downtime_minutes, 0.0);
    }

    #[tokio::test]
    async fn late_spooled_data_is_not_down_and_one_pool_member_down_is_no_outage() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t0 = base();
        let day = Interval::new(t0, t0 + 24 * 60 * MIN);
        let now = day.end;
        for h in ["web-1", "web-2", "web-3"] {
            hello(&store, h).await;
        }
        // web-1 sends everything but 20 minutes at first...
        uptime(&store, "web-1", t0 - 10 * MIN, t0 + 600 * MIN, 1).await;
        uptime(&store, "web-1", t0 + 620 * MIN, day.end, 2).await;
        for h in ["web-2", "web-3"] {
            uptime(&store, h, t0 - 10 * MIN, day.end, 1).await;
        }

        let all = report(
            &store,
            &service(&["web-1", "web-2", "web-3"], None),
            day,
            now,
        )
        .unwrap();
        assert_eq!(all.summary.scheduled_minutes, 1_440.0);
        // Down from the last sample before the gap to the first after it: 20 min 10 s.
        assert!((all.summary.downtime_minutes - (20.0 + 10.0 / 60.0)).abs() < 1e-9);
        assert_eq!(all.incidents.len(), 1);
        assert_eq!(
            all.incidents[0].incident.id,
            format!("auto:shop:{}", t0 + 600 * MIN - 10_000)
        );
        assert_eq!(all.incidents[0].incident.title, "web-1 down");

        // ...but as a pool of 2 of 3, one host down is no outage.
        let pool = report(
            &store,
            &service(&["web-1", "web-2", "web-3"], Some(2)),
            day,
            now,
        )
        .unwrap();
        assert_eq!(pool.summary.downtime_minutes, 0.0);
        assert_eq!(pool.summary.availability_percent, 100.0);
        assert!(pool.incidents.is_empty());

        // The spool arrives later with the missing timestamps: no gap, no down time.
        uptime(&store, "web-1", t0 + 600 * MIN, t0 + 620 * MIN, 3).await;
        let all = report(
            &store,
            &service(&["web-1", "web-2", "web-3"], None),
            day,
            now,
        )
        .unwrap();
        assert_eq!(all.summary.downtime_minutes, 0.0);
        assert!(all.incidents.is_empty());
    }

    #[tokio::test]
    async fn manual_incidents_and_maintenance_come_from_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t0 = base();
        let day = Interval::new(t0, t0 + 24 * 60 * MIN);
        let inc = records::create_incident(
            &store,
            Incident {
                id: String::new(),
                service: "shop".into(),
                automatic: false,
                title: "checkout slow in eu".into(),
                start_ms: t0 + 60 * MIN,
                end_ms: Some(t0 + 120 * MIN),
                share: 0.1,
                impact: 0.2,
                acknowledged: false,
                root_cause: None,
                follow_up: Vec::new(),
                customer_impacting: true,
                history: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(inc.id, "m1");
        records::create_maintenance(
            &store,
            records::Maintenance {
                id: 0,
                services: vec!["shop".into()],
                title: "db upgrade".into(),
                when: records::MaintenanceWhen::Once {
                    start_ms: t0 + 600 * MIN,
                    end_ms: t0 + 720 * MIN,
                },
                created_by: "t".into(),
            },
        )
        .unwrap();
        let r = report(&store, &service(&[], None), day, day.end).unwrap();
        assert_eq!(r.summary.scheduled_minutes, 1_320.0);
        assert_eq!(r.maintenance_minutes, 120.0);
        assert!((r.summary.downtime_minutes - 1.2).abs() < 1e-9);
        assert_eq!(r.without_root_cause, vec!["m1".to_string()]);
    }

    /// Automatic incidents stored for `svc`, withdrawn ones left out, as (start, end).
    fn recorded(store: &Store, svc: &str) -> Vec<(i64, Option<i64>)> {
        let mut v: Vec<(i64, Option<i64>)> = records::incidents(store)
            .unwrap()
            .into_iter()
            .filter(|i| i.automatic && i.service == svc && !withdrawn(i))
            .map(|i| (i.start_ms, i.end_ms))
            .collect();
        v.sort_unstable();
        v
    }

    fn spans(v: &[Incident]) -> Vec<(i64, Option<i64>)> {
        let mut v: Vec<(i64, Option<i64>)> = v.iter().map(|i| (i.start_ms, i.end_ms)).collect();
        v.sort_unstable();
        v
    }

    #[tokio::test]
    async fn a_fresh_install_counts_from_first_contact_and_each_gap_is_its_own_incident() {
        // The finding: services configured before their agents were enrolled got an incident
        // "no data ever" starting 24 h before the aggregator existed, closed at the end of the
        // last gap of a pass, swallowing the up-time between.
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t = base();
        let svc = service(&["h1", "h2"], None);
        // The aggregator runs; no agent yet: nothing to judge, nothing recorded.
        assert_eq!(track(&store, &svc, t + MIN).unwrap(), 0);
        assert_eq!(monitored_since(&store, &svc), None);
        let r = report(&store, &svc, Interval::new(t - 60 * MIN, t + MIN), t + MIN).unwrap();
        assert_eq!(r.verdict, compute::Verdict::Unknown);
        assert_eq!(r.summary.scheduled_minutes, 0.0);
        // h1 comes at t+2m, h2 at t+3m; h1 is silent 5m..6m and 8m..9m, up between.
        hello_at(&store, "h1", t + 2 * MIN).await;
        hello_at(&store, "h2", t + 3 * MIN).await;
        let every = |from: i64, to: i64| (from..to).step_by(10_000).collect::<Vec<_>>();
        let mut h1 = every(t + 2 * MIN, t + 5 * MIN);
        h1.extend(every(t + 6 * MIN, t + 8 * MIN));
        h1.extend(every(t + 9 * MIN, t + 12 * MIN));
        ticks(&store, "h1", &h1, 1).await;
        ticks(&store, "h2", &every(t + 3 * MIN, t + 12 * MIN), 1).await;
        let now = t + 12 * MIN;
        track(&store, &svc, now).unwrap();
        assert_eq!(monitored_since(&store, &svc), Some(t + 3 * MIN));
        let last_before = |end: i64| end - 10_000;
        assert_eq!(
            recorded(&store, "shop"),
            vec![
                (last_before(t + 5 * MIN), Some(t + 6 * MIN)),
                (last_before(t + 8 * MIN), Some(t + 9 * MIN)),
            ]
        );
        let r = report(&store, &svc, Interval::new(t - 60 * MIN, now), now).unwrap();
        assert_eq!(r.monitored_since, Some(t + 3 * MIN));
        assert_eq!(r.summary.scheduled_minutes, 9.0);
        assert!((r.not_monitored_minutes - 63.0).abs() < 1e-9);
        let down = 2.0 * (1.0 + 10.0 / 60.0);
        assert!((r.summary.downtime_minutes - down).abs() < 1e-9, "{r:?}");
        assert_eq!(r.incidents.len(), 2);
        assert_eq!(r.verdict, compute::Verdict::Missed);
    }

    #[tokio::test]
    async fn a_host_is_judged_by_all_it_sends_and_counted_from_its_first_contact() {
        // The finding: 4 minutes of data answered 99.999 % over 43,200 scheduled minutes
        // with an MTBF of 43,199.75 minutes.
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t = base();
        hello_at(&store, "vm", t).await;
        let mut ts: Vec<i64> = (t..t + 2 * MIN).step_by(10_000).collect();
        ts.extend((t + 2 * MIN + 50_000..t + 4 * MIN).step_by(10_000));
        ticks(&store, "vm", &ts, 1).await;
        let now = t + 4 * MIN;
        let host = ServiceConfig::for_host("vm", 99.9);
        let r = report(
            &store,
            &host,
            Interval::new(now - 30 * 24 * 60 * MIN, now),
            now,
        )
        .unwrap();
        assert_eq!(r.summary.scheduled_minutes, 4.0);
        assert!((r.summary.downtime_minutes - 1.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.summary.mtbf_minutes, Some(3.0));
        assert_eq!(r.incidents.len(), 1);
        assert_eq!(
            r.incidents[0].incident.id,
            format!("auto:host:vm:{}", t + 2 * MIN - 10_000)
        );
        // The recorder keeps the host's own incidents too (the aggregator's pass over every
        // host, reading the records once).
        let other = service(&["vm"], None);
        let done = track_many(
            &store,
            &[(host.clone(), 2 * 60 * MIN), (other, 24 * 60 * MIN)],
            now,
        )
        .unwrap();
        assert_eq!(
            done.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [1, 1]
        );
        assert_eq!(recorded(&store, "shop").len(), 1);
        assert_eq!(
            recorded(&store, "host:vm"),
            vec![(t + 2 * MIN - 10_000, Some(t + 2 * MIN + 50_000))]
        );
    }

    #[tokio::test]
    async fn a_clean_stop_is_not_monitored_and_a_kill_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
        let t = base();
        hello_at(&store, "h1", t).await;
        let every = |from: i64, to: i64| (from..to).step_by(10_000).collect::<Vec<_>>();
        // Stopped cleanly at 10m + 3 s (its goodbye), started again at 20m; killed at 30m,
        // back at 40m.
        let mut ts = every(t, t + 10 * MIN);
        ts.push(t + 10 * MIN + 3_000);
        ts.extend(every(t + 20 * MIN, t + 30 * MIN));
        ts.extend(every(t + 40 * MIN, t + 50 * MIN));
        ticks(&store, "h1", &ts, 1).await;
        let h = HostId::new("h1").unwrap();
        let id = store
            .series_id(&h, SeriesKey::new(AGENT_STOPPING, &[]))
            .unwrap();
        store
            .write_batch(BatchWrite {
                host: h,
                seq: 2,
                points: vec![(id, t + 10 * MIN + 3_000, 1.0)],
            })
            .await
            .unwrap();
        let now = t + 50 * MIN;
        let svc = service(&["h1"], None);
        let r = report(&store, &svc, Interval::new(t, now), now).unwrap();
        assert!(
            (r.not_monitored_minutes - (10.0 - 3.0 / 60.0)).abs() < 1e-9,
            "{r:?}"
        );
        assert!((r.summary.scheduled_minutes - (40.0 + 3.0 / 60.0)).abs() < 1e-9);
        let down = 10.0 + 10.0 / 60.0;
        assert!((r.summary.downtime_minutes - down).abs() < 1e-9, "{r:?}");
        assert_eq!(r.incidents.len(), 1, "{:?}", r.incidents);
        assert_eq!(r.incidents[0].incident.start_ms, t + 30 * MIN - 10_000);
        track(&store, &svc, now).unwrap();
        assert_eq!(
            recorded(&store, "shop"),
            vec![(t + 30 * MIN - 10_000, Some(t + 40 * MIN))]
        );
    }

    /// One member's tick plan: per tick, delivered at the tick, later (`Some(d)`: at tick
    /// `d`), or never.
    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Live,
        Late(usize),
        Lost,
    }

    fn plan(ticks: usize, gaps: &[(usize, usize, bool, usize)]) -> Vec<Fate> {
        let mut v = vec![Fate::Live; ticks];
        for &(at, len, late, delay) in gaps {
            for f in v.iter_mut().skip(at).take(len) {
                *f = if late {
                    Fate::Late((at + len + delay).min(ticks - 1))
                } else {
                    Fate::Lost
                };
            }
        }
        v
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

        /// The recorder's incidents, after passes at random moments with data arriving live
        /// and late, are exactly what recomputing the whole period from the data gives; none
        /// starts before the service was monitored; and the availability of the period is
        /// within bounds and adds up over any split of the period.
        #[test]
        fn the_recorder_equals_recomputing_from_the_data(
            g1 in proptest::collection::vec((0usize..300, 1usize..40, proptest::bool::ANY, 0usize..30), 0..5),
            g2 in proptest::collection::vec((0usize..300, 1usize..40, proptest::bool::ANY, 0usize..30), 0..5),
            first2 in 0usize..60,
            pool in proptest::bool::ANY,
            passes in proptest::collection::btree_set(1usize..360, 1..25),
            split in 1usize..359,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                const TICKS: usize = 360;
                let dir = tempfile::tempdir().unwrap();
                let (store, _w) = Store::open(&dir.path().join("s.redb")).unwrap();
                let t0 = base();
                let at = |i: usize| t0 + i as i64 * 10_000;
                let svc = service(&["h1", "h2"], pool.then_some(1));
                let plans = [plan(TICKS, &g1), plan(TICKS, &g2)];
                let first = [0usize, first2];
                let mut sent = [vec![false; TICKS], vec![false; TICKS]];
                let mut seq = [0u64; 2];
                let mut greeted = [false; 2];
                for p in passes.iter().copied().chain([TICKS - 1]) {
                    for m in 0..2 {
                        let host = ["h1", "h2"][m];
                        if p >= first[m] && !greeted[m] {
                            hello_at(&store, host, at(first[m])).await;
                            greeted[m] = true;
                        }
                        let due: Vec<i64> = (first[m]..=p)
                            .filter(|&i| !sent[m][i])
                            .filter(|&i| match plans[m][i] {
                                Fate::Live => true,
                                Fate::Late(d) => d <= p || p == TICKS - 1,
                                Fate::Lost => false,
                            })
                            .collect::<Vec<_>>()
                            .into_iter()
                            .inspect(|&i| sent[m][i] = true)
                            .map(at)
                            .collect();
                        if !due.is_empty() {
                            seq[m] += 1;
                            ticks(&store, host, &due, seq[m]).await;
                        }
                    }
                    track(&store, &svc, at(p)).unwrap();
                }
                let end = at(TICKS - 1);
                let since = monitored_since(&store, &svc).unwrap();
                let whole = Interval::new(t0 - 60 * MIN, end);
                let derived = automatic_incidents(&store, &svc, whole, end).unwrap();
                let rec = recorded(&store, "shop");
                assert_eq!(rec, spans(&derived), "recorded vs derived");
                assert!(rec.iter().all(|(s, _)| *s >= since), "{rec:?} before {since}");
                for w in rec.windows(2) {
                    assert!(w[0].1.is_some_and(|e| e < w[1].0), "not maximal: {rec:?}");
                }
                let r = report(&store, &svc, whole, end).unwrap();
                assert_eq!(spans(&r.incidents.iter().map(|i| i.incident.clone()).collect::<Vec<_>>()), rec);
                let s = &r.summary;
                assert!((0.0..=100.0).contains(&s.availability_percent), "{s:?}");
                assert!(s.downtime_minutes >= 0.0 && s.downtime_minutes.is_sign_positive());
                assert!(s.downtime_minutes <= s.scheduled_minutes + 1e-9);
                assert!((s.scheduled_minutes - (end - since) as f64 / 60_000.0).abs() < 1e-9);
                assert!((r.not_monitored_minutes - (since - whole.start) as f64 / 60_000.0).abs() < 1e-9);
                let mid = at(split) + 5_000;
                let a = report(&store, &svc, Interval::new(whole.start, mid), end).unwrap();
                let b = report(&store, &svc, Interval::new(mid, end), end).unwrap();
                let sum = |f: fn(&ServiceReport) -> f64| f(&a) + f(&b);
                assert!((sum(|r| r.summary.scheduled_minutes) - s.scheduled_minutes).abs() < 1e-6);
                assert!((sum(|r| r.summary.downtime_minutes) - s.downtime_minutes).abs() < 1e-6);
                assert!((sum(|r| r.not_monitored_minutes) - r.not_monitored_minutes).abs() < 1e-6);
            });
        }
    }
}
