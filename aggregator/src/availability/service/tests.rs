//! Availability of services computed from samples, incidents and maintenance written to a
//! temporary store.

#![allow(clippy::unwrap_used)]

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
    let r = report(&store, &crate::alerts::persist::History, &svc, day, day.end).unwrap();
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
    let r = report(
        &store,
        &crate::alerts::persist::History,
        &service(&["web-1"], None),
        day,
        day.end,
    )
    .unwrap();
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
    assert_eq!(
        track(
            &store,
            &crate::alerts::persist::History,
            &svc,
            t0 + 30 * MIN
        )
        .unwrap(),
        1
    );
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
    assert_eq!(
        track(&store, &crate::alerts::persist::History, &svc, t0 + 30 * h).unwrap(),
        0
    );
    let r = report(
        &store,
        &crate::alerts::persist::History,
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
    assert_eq!(
        track(&store, &crate::alerts::persist::History, &svc, t0 + 31 * h).unwrap(),
        1
    );
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
    assert_eq!(
        track(
            &store,
            &crate::alerts::persist::History,
            &svc,
            t0 + 20 * MIN
        )
        .unwrap(),
        1
    );
    // The spooled samples arrive: no gap after all.
    uptime(&store, "web-1", t0, t0 + 20 * MIN, 2).await;
    assert_eq!(
        track(
            &store,
            &crate::alerts::persist::History,
            &svc,
            t0 + 20 * MIN
        )
        .unwrap(),
        1
    );
    let stored = records::incidents(&store).unwrap();
    assert_eq!(stored[0].end_ms, Some(stored[0].start_ms));
    assert!(stored[0].history[1].what.starts_with("withdrawn"));
    let r = report(
        &store,
        &crate::alerts::persist::History,
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
        &crate::alerts::persist::History,
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
        &crate::alerts::persist::History,
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
        &crate::alerts::persist::History,
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
    let r = report(
        &store,
        &crate::alerts::persist::History,
        &service(&[], None),
        day,
        day.end,
    )
    .unwrap();
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
    assert_eq!(
        track(&store, &crate::alerts::persist::History, &svc, t + MIN).unwrap(),
        0
    );
    assert_eq!(monitored_since(&store, &svc), None);
    let r = report(
        &store,
        &crate::alerts::persist::History,
        &svc,
        Interval::new(t - 60 * MIN, t + MIN),
        t + MIN,
    )
    .unwrap();
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
    track(&store, &crate::alerts::persist::History, &svc, now).unwrap();
    assert_eq!(monitored_since(&store, &svc), Some(t + 3 * MIN));
    let last_before = |end: i64| end - 10_000;
    assert_eq!(
        recorded(&store, "shop"),
        vec![
            (last_before(t + 5 * MIN), Some(t + 6 * MIN)),
            (last_before(t + 8 * MIN), Some(t + 9 * MIN)),
        ]
    );
    let r = report(
        &store,
        &crate::alerts::persist::History,
        &svc,
        Interval::new(t - 60 * MIN, now),
        now,
    )
    .unwrap();
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
        &crate::alerts::persist::History,
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
        &crate::alerts::persist::History,
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
    let r = report(
        &store,
        &crate::alerts::persist::History,
        &svc,
        Interval::new(t, now),
        now,
    )
    .unwrap();
    assert!(
        (r.not_monitored_minutes - (10.0 - 3.0 / 60.0)).abs() < 1e-9,
        "{r:?}"
    );
    assert!((r.summary.scheduled_minutes - (40.0 + 3.0 / 60.0)).abs() < 1e-9);
    let down = 10.0 + 10.0 / 60.0;
    assert!((r.summary.downtime_minutes - down).abs() < 1e-9, "{r:?}");
    assert_eq!(r.incidents.len(), 1, "{:?}", r.incidents);
    assert_eq!(r.incidents[0].incident.start_ms, t + 30 * MIN - 10_000);
    track(&store, &crate::alerts::persist::History, &svc, now).unwrap();
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
                track(&store, &crate::alerts::persist::History, &svc, at(p)).unwrap();
            }
            let end = at(TICKS - 1);
            let since = monitored_since(&store, &svc).unwrap();
            let whole = Interval::new(t0 - 60 * MIN, end);
            let derived = automatic_incidents(&store, &crate::alerts::persist::History, &svc, whole, end).unwrap();
            let rec = recorded(&store, "shop");
            assert_eq!(rec, spans(&derived), "recorded vs derived");
            assert!(rec.iter().all(|(s, _)| *s >= since), "{rec:?} before {since}");
            for w in rec.windows(2) {
                assert!(w[0].1.is_some_and(|e| e < w[1].0), "not maximal: {rec:?}");
            }
            let r = report(&store, &crate::alerts::persist::History, &svc, whole, end).unwrap();
            assert_eq!(spans(&r.incidents.iter().map(|i| i.incident.clone()).collect::<Vec<_>>()), rec);
            let s = &r.summary;
            assert!((0.0..=100.0).contains(&s.availability_percent), "{s:?}");
            assert!(s.downtime_minutes >= 0.0 && s.downtime_minutes.is_sign_positive());
            assert!(s.downtime_minutes <= s.scheduled_minutes + 1e-9);
            assert!((s.scheduled_minutes - (end - since) as f64 / 60_000.0).abs() < 1e-9);
            assert!((r.not_monitored_minutes - (since - whole.start) as f64 / 60_000.0).abs() < 1e-9);
            let mid = at(split) + 5_000;
            let a = report(&store, &crate::alerts::persist::History, &svc, Interval::new(whole.start, mid), end).unwrap();
            let b = report(&store, &crate::alerts::persist::History, &svc, Interval::new(mid, end), end).unwrap();
            let sum = |f: fn(&ServiceReport) -> f64| f(&a) + f(&b);
            assert!((sum(|r| r.summary.scheduled_minutes) - s.scheduled_minutes).abs() < 1e-6);
            assert!((sum(|r| r.summary.downtime_minutes) - s.downtime_minutes).abs() < 1e-6);
            assert!((sum(|r| r.not_monitored_minutes) - r.not_monitored_minutes).abs() < 1e-6);
        });
    }
}
