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

/// Intervals in which `host` does not serve `svc`: the host down, or a required process not
/// running; each with what was wrong.
fn member_down(
    store: &Store,
    svc: &ServiceConfig,
    host: &str,
    range: Interval,
    now: i64,
) -> Result<Vec<(Interval, String)>, RecordError> {
    let Some(rec) = store.host(host) else {
        return Ok(vec![(range, format!("{host}: no data ever"))]);
    };
    let interval_ms = i64::from(rec.interval_ms.max(1000));
    let wide = (
        range.start - gaps::DOWN_AFTER_INTERVALS * interval_ms,
        range.end,
    );
    let (_, series) = store
        .query(host, "host_uptime_seconds", &[], wide, None, u64::MAX)
        .map_err(store_err)?;
    let mut ts: Vec<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    ts.sort_unstable();
    let mut out: Vec<(Interval, String)> =
        gaps::host_down(&ts, interval_ms, range, rec.first_seen_ms, now)
            .into_iter()
            .map(|i| (i, format!("{host} down")))
            .collect();
    for rule in &svc.alert_rules {
        let fired = crate::alerts::persist::firing(store, rule, host, range, now)
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
                gaps::process_down(&s.points, range)
                    .into_iter()
                    .map(|i| (i, format!("{p} not running on {host}"))),
            );
        }
    }
    Ok(out)
}

/// Outages of `svc` seen in the data within `range`, as automatic incidents.
pub fn automatic_incidents(
    store: &Store,
    svc: &ServiceConfig,
    range: Interval,
    now: i64,
) -> Result<Vec<Incident>, RecordError> {
    let mut per_member = Vec::new();
    for m in &svc.members {
        per_member.push(member_down(store, svc, m, range, now)?);
    }
    let downs: Vec<Vec<Interval>> = per_member
        .iter()
        .map(|v| v.iter().map(|(i, _)| *i).collect())
        .collect();
    let pool = interval::fewer_than_k_up(&downs, svc.required_up(), range);
    let mut out = Vec::new();
    for i in pool {
        let mut causes: Vec<&str> = per_member
            .iter()
            .flatten()
            .filter(|(d, _)| !d.intersect(&i).is_empty())
            .map(|(_, c)| c.as_str())
            .collect();
        causes.dedup();
        let lasts = i.end >= range.end.min(now);
        out.push(Incident {
            id: format!("auto:{}:{}", svc.name, i.start),
            service: svc.name.clone(),
            automatic: true,
            title: causes.join("; "),
            start_ms: i.start,
            end_ms: if lasts && range.end >= now {
                None
            } else {
                Some(i.end)
            },
            share: 1.0,
            impact: 1.0,
            acknowledged: false,
            root_cause: None,
            follow_up: Vec::new(),
            customer_impacting: true,
            history: Vec::new(),
        });
    }
    Ok(out)
}

fn overlaps(a: &Incident, b: &Incident, now: i64) -> bool {
    a.start_ms <= b.end_ms.unwrap_or(now) && b.start_ms <= a.end_ms.unwrap_or(now)
}

/// What the data shows (`derived`, over `look`) merged with the automatic incidents stored
/// for `service`: a stored incident that overlaps a derived one keeps its id, start and
/// annotations and takes the data's end and title; stored incidents older than `look` come as
/// they were recorded.
fn merge_automatic(
    stored: &[Incident],
    service: &str,
    derived: Vec<Incident>,
    look: Interval,
    now: i64,
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
            .find(|s| !used.contains(&s.id) && overlaps(s, &d, now))
        {
            Some(s) => {
                used.insert(s.id.clone());
                out.push(Incident {
                    start_ms: s.start_ms.min(d.start_ms),
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
            .filter(|s| !used.contains(&s.id) && s.end_ms.is_some_and(|e| e < look.start))
            .cloned(),
    );
    out
}

/// Records `svc`'s automatic incidents as they open and close, so an outage keeps its id and
/// start however long it lasts: opens an incident for an outage the data shows, closes it
/// when the data shows recovery, and withdraws an open one the data no longer shows (an agent's
/// spool arrived late: it was not an outage). Returns how many incidents it changed. The
/// aggregator runs it every minute for every service.
pub fn track(store: &Store, svc: &ServiceConfig, now: i64) -> Result<usize, RecordError> {
    let look = Interval::new(now - LOOKBACK_MS, now);
    let derived = automatic_incidents(store, svc, look, now)?;
    let stored: Vec<Incident> = records::incidents(store)?
        .into_iter()
        .filter(|s| s.automatic && s.service == svc.name)
        .collect();
    let by = |what: String| records::Change {
        at_ms: now,
        by: "nines".into(),
        what,
    };
    let mut changed = 0;
    let mut seen = std::collections::HashSet::new();
    for d in derived {
        match stored
            .iter()
            .find(|s| !seen.contains(&s.id) && overlaps(s, &d, now))
        {
            Some(s) => {
                seen.insert(s.id.clone());
                if s.end_ms != d.end_ms || s.title != d.title {
                    let mut u = s.clone();
                    if u.end_ms.is_none()
                        && let Some(e) = d.end_ms
                    {
                        u.history.push(by(format!(
                            "closed: the data shows recovery at {}",
                            crate::time::rfc3339_or_raw(e)
                        )));
                    }
                    u.end_ms = d.end_ms;
                    u.title = d.title;
                    records::put_incident(store, &u)?;
                    changed += 1;
                }
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
        if s.end_ms.is_none() && !seen.contains(&s.id) && s.start_ms >= look.start {
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
    let maintenance_minutes = interval::minutes(&interval::intersect(&planned, &maintenance));
    let scheduled = compute::effective_schedule(planned, &maintenance, svc.exclude_maintenance);

    let stored = records::incidents(store)?;
    let look = Interval::new(range.start - LOOKBACK_MS, range.end);
    let derived = automatic_incidents(store, svc, look, now)?;
    let mut incidents = merge_automatic(&stored, &svc.name, derived, look, now);
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
        summary,
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
                now_ms: 0,
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
}
