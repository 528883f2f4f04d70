//! The engine against a table of samples and a clock the test moves.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::alerts::matcher::MatcherJson;

/// Series of one (host, metric): labels and points.
type SeriesList = Vec<(Labels, Vec<(i64, f64)>)>;

/// Samples by (host, metric), hosts, and maintenance, all set by the test.
#[derive(Default)]
struct Mem {
    hosts: RefCell<Vec<HostInfo>>,
    series: RefCell<HashMap<(String, String), SeriesList>>,
    maintenance: RefCell<BTreeMap<String, String>>,
}

impl Mem {
    fn host(&self, host: &str, interval_ms: i64, last_sample_ms: i64) {
        let mut h = self.hosts.borrow_mut();
        h.retain(|x| x.host != host);
        h.push(HostInfo {
            host: host.into(),
            interval_ms,
            last_sample_ms,
            first_seen_ms: 1,
            stopped: false,
        });
    }

    fn point(&self, host: &str, metric: &str, labels: &[(&str, &str)], t: i64, v: f64) {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = self.series.borrow_mut();
        let list = s.entry((host.into(), metric.into())).or_default();
        match list.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, pts)) => pts.push((t, v)),
            None => list.push((labels, vec![(t, v)])),
        }
    }
}

impl Data for Mem {
    fn hosts(&self) -> Vec<HostInfo> {
        self.hosts.borrow().clone()
    }
    fn series(
        &self,
        host: &str,
        metric: &str,
        labels: &[(String, String)],
        from: i64,
        to: i64,
    ) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.series
            .borrow()
            .get(&(host.to_owned(), metric.to_owned()))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|(l, _)| labels.iter().all(|(k, v)| l.get(k) == Some(v)))
            .map(|(l, p)| {
                let p: Vec<(i64, f64)> = p
                    .into_iter()
                    .filter(|(t, _)| *t >= from && *t <= to)
                    .collect();
                (l, p)
            })
            .collect()
    }
    fn maintenance(&self, host: &str, _now: i64) -> Option<String> {
        self.maintenance.borrow().get(host).cloned()
    }
}

const S: i64 = 1000;
const M: i64 = 60 * S;
/// Monday 2026-11-23 00:00:00 UTC.
const MONDAY: i64 = 1_795_392_000_000;

fn rules(grouping: &str, rules: &str) -> Rules {
    let text = format!(
        "evaluation_interval = \"1s\"\n[grouping]\n{grouping}\n\
         [[notifiers]]\nname = \"ops\"\nwebhook = {{ url = \"http://127.0.0.1:9/\" }}\n{rules}"
    );
    Rules::parse(&text, Path::new("alerts.toml")).unwrap()
}

const FAST: &str = "group_wait = \"0s\"\ngroup_interval = \"1s\"\nrepeat_interval = \"1h\"";

fn rule(name: &str, body: &str) -> String {
    format!(
        "[[rules]]\nname = \"{name}\"\nseverity = \"warning\"\nnotify = [\"ops\"]\n\
         summary = \"{name} on {{{{host}}}} at {{{{value}}}}\"\nrunbook = \"https://runbooks/{name}\"\n{body}\n"
    )
}

fn cpu_rule(extra: &str) -> String {
    rule(
        "HighCpu",
        &format!(
            "metric = \"cpu_usage_ratio\"\nagg = \"last\"\nop = \">\"\nthreshold = 0.9\n{}{extra}",
            if extra.contains("window") {
                ""
            } else {
                "window = \"1m\"\n"
            }
        ),
    )
}

fn states(e: &Engine) -> Vec<State> {
    e.alerts.values().map(|a| a.state).collect()
}

fn statuses(n: &Notification) -> Vec<(String, String)> {
    n.payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["host"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn for_clear_and_keep_firing_for() {
    let mut e = Engine::new(
        rules(
            FAST,
            &cpu_rule("for = \"60s\"\nclear = 0.8\nkeep_firing_for = \"30s\""),
        ),
        String::new(),
    );
    let d = Mem::default();
    d.host("web1", 10 * S, MONDAY);
    let at = |e: &mut Engine, t: i64, v: f64| {
        d.point(
            "web1",
            "cpu_usage_ratio",
            &[("cpu", "total")],
            MONDAY + t,
            v,
        );
        e.evaluate(MONDAY + t, &d);
        e.flush(MONDAY + t)
    };
    assert!(at(&mut e, 0, 0.95).is_empty());
    assert_eq!(states(&e), [State::Pending]);
    // A dip while pending starts `for` over.
    at(&mut e, 30 * S, 0.5);
    assert_eq!(states(&e), [State::Inactive]);
    at(&mut e, 40 * S, 0.95);
    at(&mut e, 90 * S, 0.95);
    assert_eq!(states(&e), [State::Pending], "only 50 s of the 60 s");
    let sent = at(&mut e, 100 * S, 0.95);
    assert_eq!(states(&e), [State::Firing]);
    assert_eq!(sent.len(), 1);
    assert_eq!(statuses(&sent[0]), [("web1".into(), "firing".into())]);
    // Below the threshold but above `clear`: hysteresis keeps it firing.
    assert!(at(&mut e, 110 * S, 0.85).is_empty());
    assert_eq!(states(&e), [State::Firing]);
    // Cleared at 120 s; keep_firing_for holds it 30 s after the last bad value (110 s).
    at(&mut e, 120 * S, 0.7);
    at(&mut e, 135 * S, 0.7);
    assert_eq!(states(&e), [State::Firing]);
    let sent = at(&mut e, 140 * S, 0.7);
    assert_eq!(sent.len(), 1);
    assert_eq!(statuses(&sent[0]), [("web1".into(), "resolved".into())]);
    assert_eq!(sent[0].payload["status"], "resolved");
    let t: Vec<(State, State)> = e
        .take_transitions()
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        t,
        [
            (State::Inactive, State::Pending),
            (State::Pending, State::Inactive),
            (State::Inactive, State::Pending),
            (State::Pending, State::Firing),
            (State::Firing, State::Resolved),
        ]
    );
}

#[test]
fn a_flapping_rule_is_damped_and_says_so() {
    let grouping = "group_wait = \"0s\"\ngroup_interval = \"1m\"\nrepeat_interval = \"4h\"";
    let mut e = Engine::new(rules(grouping, &cpu_rule("window = \"5s\"")), String::new());
    let d = Mem::default();
    d.host("web1", 15 * S, MONDAY);
    let mut sent = Vec::new();
    // 40 evaluations 15 s apart, bad and good in turn.
    for i in 0..40 {
        let t = MONDAY + i * 15 * S;
        d.point(
            "web1",
            "cpu_usage_ratio",
            &[],
            t,
            if i % 2 == 0 { 0.95 } else { 0.1 },
        );
        e.evaluate(t, &d);
        sent.extend(e.flush(t));
    }
    let a = e.alerts.values().next().unwrap().clone();
    assert!(a.flapping, "{:?}", a.history);
    assert_eq!(a.state, State::Firing, "held firing while flapping");
    let flapping: Vec<&Notification> = sent
        .iter()
        .filter(|n| n.payload["alerts"][0]["annotations"]["flapping"] == "true")
        .collect();
    assert_eq!(flapping.len(), 1, "one notification says it flaps");
    let summary = flapping[0].payload["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap();
    assert!(summary.starts_with("[flapping"), "{summary}");
    // Once flapping, no resolved notifications, no matter how often it changes.
    let after = sent
        .iter()
        .position(|n| std::ptr::eq(n, flapping[0]))
        .unwrap();
    assert_eq!(sent.len(), after + 1, "nothing after the flapping notice");
    // It settles: healthy values bring the change rate under `low`, then it resolves.
    let mut resolved = None;
    for i in 40..80 {
        let t = MONDAY + i * 15 * S;
        d.point("web1", "cpu_usage_ratio", &[], t, 0.1);
        e.evaluate(t, &d);
        for n in e.flush(t) {
            if n.payload["status"] == "resolved" {
                resolved.get_or_insert(i);
            }
        }
    }
    let i = resolved.expect("resolved once settled");
    assert!(i > 45, "not before the history calms down: {i}");
    assert!(e.alerts.is_empty() || states(&e) == [State::Inactive]);
}

#[test]
fn a_storm_is_one_notification_and_group_interval_and_repeat_hold() {
    let grouping = "group_wait = \"30s\"\ngroup_interval = \"5m\"\nrepeat_interval = \"4h\"";
    let mut e = Engine::new(
        rules(grouping, &rule("HostDown", "kind = \"host_down\"")),
        String::new(),
    );
    let d = Mem::default();
    for h in ["a", "b", "c"] {
        d.host(h, 10 * S, MONDAY);
    }
    d.host("d", 10 * S, MONDAY + 2 * M);
    let mut tick = |t: i64| {
        e.evaluate(MONDAY + t, &d);
        e.flush(MONDAY + t)
    };
    assert!(tick(31 * S).is_empty(), "fired at 31 s, waits group_wait");
    assert!(tick(60 * S).is_empty());
    let first = tick(61 * S);
    assert_eq!(first.len(), 1, "one notification for three hosts");
    assert_eq!(first[0].payload["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(
        first[0].payload["groupLabels"],
        json!({"alertname": "HostDown"})
    );
    assert_eq!(first[0].payload["commonLabels"]["alertname"], "HostDown");
    // d goes down at 2 min 31 s: the change waits out group_interval after the last send.
    assert!(tick(2 * M + 40 * S).is_empty(), "d fired but waits");
    assert!(tick(6 * M).is_empty());
    let second = tick(6 * M + S);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].payload["alerts"].as_array().unwrap().len(), 4);
    // Nothing changes: silent until repeat_interval after the last send.
    assert!(tick(4 * 3600 * S + 6 * M).is_empty());
    let repeat = tick(4 * 3600 * S + 6 * M + S);
    assert_eq!(repeat.len(), 1);
    assert_eq!(repeat[0].payload["alerts"].as_array().unwrap().len(), 4);
}

#[test]
fn host_down_inhibits_the_hosts_other_alerts() {
    let mut e = Engine::new(
        rules(
            FAST,
            &format!(
                "{}{}",
                rule("HostDown", "kind = \"host_down\""),
                cpu_rule("window = \"10m\"")
            ),
        ),
        String::new(),
    );
    let d = Mem::default();
    d.host("web1", 10 * S, MONDAY);
    d.host("web2", 10 * S, MONDAY + 5 * M);
    d.point("web1", "cpu_usage_ratio", &[], MONDAY, 0.99);
    d.point("web2", "cpu_usage_ratio", &[], MONDAY + 5 * M, 0.99);
    let now = MONDAY + 5 * M;
    e.evaluate(now, &d);
    let sent = e.flush(now);
    let names: Vec<(String, String)> = sent
        .iter()
        .flat_map(|n| n.payload["alerts"].as_array().unwrap().clone())
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_owned(),
                a["labels"]["host"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(names.contains(&("HostDown".into(), "web1".into())));
    assert!(names.contains(&("HighCpu".into(), "web2".into())));
    assert!(
        !names.contains(&("HighCpu".into(), "web1".into())),
        "{names:?}"
    );
    let active = e.active(now);
    let inhibited = active
        .iter()
        .find(|(a, _)| a.rule == "HighCpu" && a.labels["host"] == "web1")
        .unwrap();
    assert!(matches!(inhibited.1, Some(Muted::Inhibited { .. })));
}

#[test]
fn silences_mute_windows_and_maintenance_hold_notifications() {
    let text = format!(
        "{}[[mute]]\nname = \"backup\"\nmatchers = [\"host=~db-.*\"]\nweekly = [{{ days = [\"mon\"], start = \"02:00\", end = \"03:00\" }}]\n",
        rule("HostDown", "kind = \"host_down\"")
    );
    let mut e = Engine::new(rules(FAST, &text), String::new());
    let d = Mem::default();
    d.host("db-1", 10 * S, MONDAY + 2 * 3600 * S);
    d.host("web1", 10 * S, MONDAY + 2 * 3600 * S);
    e.add_silence(Silence {
        id: 0,
        matchers: vec![MatcherJson {
            name: "host".into(),
            value: "web1".into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at_ms: MONDAY,
        ends_at_ms: MONDAY + 2 * 3600 * S + 40 * M,
        created_by: "t".into(),
        comment: "replacing a disk".into(),
    })
    .unwrap();
    let mut tick = |t: i64| {
        e.evaluate(MONDAY + t, &d);
        let n = e.flush(MONDAY + t);
        let mut active: Vec<(String, Option<Muted>)> = e
            .active(MONDAY + t)
            .into_iter()
            .map(|(a, m)| (a.labels["host"].clone(), m))
            .collect();
        active.sort_by(|a, b| a.0.cmp(&b.0));
        (n, active)
    };
    // 02:30: both down; db-1 in the backup window, web1 silenced.
    let (n, active) = tick(2 * 3600 * S + 30 * M);
    assert!(n.is_empty(), "{n:?}");
    assert!(matches!(&active[0].1, Some(Muted::MuteWindow { name }) if name == "backup"));
    assert!(matches!(&active[1].1, Some(Muted::Silence { id: 1 })));
    // 02:45: the silence is over, web1 notifies.
    let (n, _) = tick(2 * 3600 * S + 45 * M);
    assert_eq!(statuses(&n[0]), [("web1".into(), "firing".into())]);
    // 03:00: the window is over, db-1 notifies.
    let (n, _) = tick(3 * 3600 * S + 1);
    assert_eq!(n.len(), 1);
    assert_eq!(
        statuses(&n[0]),
        [
            ("db-1".into(), "firing".into()),
            ("web1".into(), "firing".into())
        ]
    );
    // A maintenance window of the availability model mutes too; its resolution is then not
    // announced either (it is not in the group any more), and the group is forgotten.
    d.maintenance
        .borrow_mut()
        .insert("web1".into(), "kernel upgrade".into());
    let (_, active) = tick(3 * 3600 * S + 2 * S);
    assert!(
        matches!(&active[1].1, Some(Muted::Maintenance { title }) if title == "kernel upgrade")
    );
}

#[test]
fn the_disk_forecast_carries_slope_r2_and_the_predicted_time() {
    let r = rule(
        "DiskFullSoon",
        "kind = \"disk_full_forecast\"\nwindow = \"6h\"\nhorizon = \"24h\"",
    );
    let mut e = Engine::new(rules(FAST, &r), String::new());
    let d = Mem::default();
    d.host("db-1", 60 * S, MONDAY + 6 * 3600 * S);
    for i in 0..=360 {
        let t = MONDAY + i * M;
        // "/" fills 2 % per hour from 50 %: full 19 h after the last point. "/var" 1 %/h: 44 h.
        d.point(
            "db-1",
            "filesystem_used_ratio",
            &[("mount", "/")],
            t,
            0.5 + 0.02 * i as f64 / 60.0,
        );
        d.point(
            "db-1",
            "filesystem_used_ratio",
            &[("mount", "/var")],
            t,
            0.5 + 0.01 * i as f64 / 60.0,
        );
    }
    let now = MONDAY + 6 * 3600 * S;
    e.evaluate(now, &d);
    let sent = e.flush(now);
    let alerts = sent[0].payload["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1, "only / is due within 24 h");
    let a = &alerts[0];
    assert_eq!(a["labels"]["mount"], "/");
    assert_eq!(a["annotations"]["slope_per_hour"], "0.020000");
    assert_eq!(a["annotations"]["r2"], "1.0000");
    let full = a["annotations"]["predicted_full_at"].as_str().unwrap();
    // 6 h of data from Monday 00:00, full 19 h after 06:00: Tuesday 01:00.
    assert_eq!(full, "2026-11-24T01:00:00.000Z");
    assert_eq!(a["annotations"]["summary"], "DiskFullSoon on db-1 at 0.62");
}

#[test]
fn the_payload_is_alertmanagers_version_4() {
    let mut e = Engine::new(
        rules(FAST, &rule("HostDown", "kind = \"host_down\"")),
        "https://nines.example.com".into(),
    );
    let d = Mem::default();
    d.host("web1", 10 * S, MONDAY);
    e.evaluate(MONDAY + M, &d);
    let n = e.flush(MONDAY + M);
    let fp = e.alerts.keys().next().unwrap().clone();
    let labels = json!({"alertname": "HostDown", "host": "web1", "severity": "warning"});
    let annotations = json!({
        "description": "no samples for 3 intervals (value 60)",
        "last_sample": "2026-11-23T00:00:00.000Z",
        "runbook_url": "https://runbooks/HostDown",
        "summary": "HostDown on web1 at 60",
    });
    assert_eq!(
        n[0].payload,
        json!({
            "receiver": "ops",
            "status": "firing",
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-11-23T00:01:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://nines.example.com/api/v1/alerts",
                "fingerprint": fp,
            }],
            "groupLabels": {"alertname": "HostDown"},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "https://nines.example.com",
            "version": "4",
            "groupKey": "{}:{alertname=\"HostDown\"}",
            "truncatedAlerts": 0,
        })
    );
}

#[test]
fn flap_change_is_nagios_weighted() {
    assert_eq!(flap_change(&[true; 21]), 0.0);
    let alternating: Vec<bool> = (0..21).map(|i| i % 2 == 0).collect();
    assert!((flap_change(&alternating) - 1.0).abs() < 1e-9);
    // One change at the newest end weighs 1.2, at the oldest 0.8, over 20 possible changes.
    let mut newest = vec![false; 21];
    newest[20] = true;
    assert!((flap_change(&newest) - 1.2 / 20.0).abs() < 1e-9);
    let mut oldest = vec![true; 21];
    oldest[0] = false;
    assert!((flap_change(&oldest) - 0.8 / 20.0).abs() < 1e-9);
}

#[test]
fn rules_reloaded_keep_the_state_of_rules_that_stay() {
    let mut e = Engine::new(
        rules(
            FAST,
            &format!(
                "{}{}",
                rule("HostDown", "kind = \"host_down\""),
                cpu_rule("")
            ),
        ),
        String::new(),
    );
    let d = Mem::default();
    d.host("web1", 10 * S, MONDAY);
    d.point("web1", "cpu_usage_ratio", &[], MONDAY, 0.99);
    e.evaluate(MONDAY + 40 * S, &d);
    assert_eq!(e.alerts.len(), 2);
    let since = e
        .alerts
        .values()
        .find(|a| a.rule == "HostDown")
        .unwrap()
        .firing_since_ms;
    e.set_rules(rules(FAST, &rule("HostDown", "kind = \"host_down\"")));
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(e.alerts.values().next().unwrap().firing_since_ms, since);
}

/// The names of the firing alerts, by host.
fn firing(e: &Engine) -> Vec<String> {
    e.alerts
        .values()
        .filter(|a| a.state == State::Firing)
        .map(|a| a.labels["host"].clone())
        .collect()
}

#[test]
fn hosts_known_before_a_restart_are_not_judged_down_during_the_startup_grace() {
    let mut e = Engine::new(
        rules(FAST, &rule("HostDown", "kind = \"host_down\"")),
        String::new(),
    );
    // The aggregator was down from MONDAY to MONDAY + 10 m; it starts with a 60 s grace.
    let start = MONDAY + 10 * M;
    e.set_startup_grace(start, 60 * S);
    let d = Mem::default();
    // web1 reconnects 5 s after the start and sends its backlog; web2 stays silent.
    d.host("web1", 10 * S, MONDAY);
    d.host("web2", 10 * S, MONDAY);
    e.evaluate(start, &d);
    assert!(firing(&e).is_empty(), "nothing fires at the start");
    assert!(e.flush(start).is_empty());
    d.host("web1", 10 * S, start + 5 * S);
    for t in (start..start + 60 * S).step_by(10_000) {
        e.evaluate(t, &d);
        assert!(firing(&e).is_empty(), "fired at {}", t - start);
        assert!(e.flush(t).is_empty(), "notified at {}", t - start);
    }
    // After the grace: web2, still silent, fires at once (its silence is 11 minutes, counted
    // from its real last sample); web1, which came back, never does.
    let after = start + 60 * S;
    d.host("web1", 10 * S, after - 5 * S);
    e.evaluate(after, &d);
    assert_eq!(firing(&e), ["web2"]);
    let sent = e.flush(after);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].payload["alerts"][0]["labels"]["host"], "web2");
}

#[test]
fn a_host_new_since_the_start_is_judged_at_once_and_a_firing_alert_stays_firing() {
    let mut e = Engine::new(
        rules(FAST, &rule("HostDown", "kind = \"host_down\"")),
        String::new(),
    );
    let d = Mem::default();
    d.host("web1", 10 * S, MONDAY);
    // Firing before the restart (restored from the store).
    e.evaluate(MONDAY + M, &d);
    assert_eq!(firing(&e), ["web1"]);
    let start = MONDAY + 2 * M;
    e.set_startup_grace(start, 60 * S);
    e.evaluate(start + S, &d);
    assert_eq!(
        firing(&e),
        ["web1"],
        "the grace does not resolve what was firing"
    );
    // A host first seen after the start is not covered by the grace.
    d.hosts.borrow_mut().push(HostInfo {
        host: "web9".into(),
        interval_ms: 10 * S,
        last_sample_ms: 0,
        first_seen_ms: start + S,
        stopped: false,
    });
    e.evaluate(start + 40 * S, &d);
    let mut f = firing(&e);
    f.sort();
    assert_eq!(f, ["web1", "web9"]);
}

#[test]
fn a_disk_forecast_from_a_few_minutes_of_data_fires_nothing() {
    let r = rule(
        "DiskFullSoon",
        "kind = \"disk_full_forecast\"\nwindow = \"6h\"\nhorizon = \"24h\"",
    );
    let mut e = Engine::new(rules(FAST, &r), String::new());
    let d = Mem::default();
    // Three minutes of a file system "filling" 10 % a minute: full within the hour on the
    // line, but 19 points over 3 minutes is no evidence for a 6 h window.
    let now = MONDAY + 3 * M;
    d.host("db-1", 10 * S, now);
    for i in 0..=18 {
        d.point(
            "db-1",
            "filesystem_used_ratio",
            &[("mount", "/")],
            MONDAY + i * 10 * S,
            0.5 + 0.1 * (i as f64 / 6.0),
        );
    }
    e.evaluate(now, &d);
    assert!(e.flush(now).is_empty());
    assert!(e.alerts.values().all(|a| a.state != State::Firing));
}

#[test]
fn a_host_whose_agent_said_goodbye_is_not_down() {
    let mut e = Engine::new(
        rules(FAST, &rule("HostDown", "kind = \"host_down\"")),
        String::new(),
    );
    let d = Mem::default();
    d.host("web1", 10 * S, MONDAY);
    d.host("web2", 10 * S, MONDAY);
    // web2 stopped cleanly: its newest sample is the goodbye.
    d.hosts
        .borrow_mut()
        .iter_mut()
        .filter(|h| h.host == "web2")
        .for_each(|h| h.stopped = true);
    for t in 0..12 {
        e.evaluate(MONDAY + t * 10 * S, &d);
    }
    assert_eq!(firing(&e), ["web1"]);
}
