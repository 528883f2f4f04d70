//! The alert state machine and notification grouping, driven by a clock the caller passes in
//! (`now_ms`), so every timer (`for`, `keep_firing_for`, group_wait, group_interval,
//! repeat_interval, flapping, silences, mute windows) is testable without waiting.
//!
//! Per rule and series an **instance** goes inactive → pending → firing → resolved. Firing
//! alerts go into **groups** (per notifier and the values of the rule's `group_by` labels);
//! a group sends when it is new (after group_wait), when its alerts changed (at most every
//! group_interval) and when nothing changed but it still fires (every repeat_interval). Alerts
//! that are silenced, inside a mute window, on a host in maintenance, or inhibited by their
//! host's host_down alert are kept but notify nobody.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::matcher::{Matcher, MatcherJson, all_match};
use super::rules::{Agg, Kind, Rule, Rules, glob};
use crate::availability::Interval;
use crate::forecast::least_squares;

/// A label set, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// What the engine needs to know about a host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    /// Host id.
    pub host: String,
    /// Its sampling interval, ms.
    pub interval_ms: i64,
    /// Its newest sample's timestamp, ms (0 if none).
    pub last_sample_ms: i64,
    /// When it first said hello, ms.
    pub first_seen_ms: i64,
    /// Its newest sample is its agent's goodbye (`agent_stopping`): it stopped cleanly, and
    /// its silence is no outage (docs/design.md, "Monitored time and liveness").
    pub stopped: bool,
}

/// Where the engine reads samples from: the store, or a test's table.
pub trait Data {
    /// Every known host.
    fn hosts(&self) -> Vec<HostInfo>;
    /// The series of `host` named `metric` whose labels include `labels`, with their points in
    /// `[from, to]`.
    fn series(
        &self,
        host: &str,
        metric: &str,
        labels: &[(String, String)],
        from: i64,
        to: i64,
    ) -> Vec<(Labels, Vec<(i64, f64)>)>;
    /// The title of a maintenance window covering `host` at `now`, if any.
    fn maintenance(&self, host: &str, now: i64) -> Option<String>;
}

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not alerting; kept only while its flap history matters.
    Inactive,
    /// The condition holds, not yet for `for`.
    Pending,
    /// Alerting.
    Firing,
    /// It fired and has recovered; kept until its groups have said so.
    Resolved,
}

/// One rule on one series (or host): its state and what it last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable hash of the labels.
    pub fingerprint: String,
    /// The rule's name.
    pub rule: String,
    /// `alertname`, `severity`, `host` and the series' labels.
    pub labels: Labels,
    /// `summary`, `runbook_url`, `description`, and the forecast's figures where it has them.
    pub annotations: Labels,
    /// Where it stands.
    pub state: State,
    /// When the condition started to hold (ms).
    pub active_since_ms: i64,
    /// When it fired (ms).
    pub firing_since_ms: Option<i64>,
    /// When it resolved (ms).
    pub resolved_ms: Option<i64>,
    /// The last evaluated value.
    pub value: f64,
    /// The last evaluation at which the condition (with hysteresis) held.
    pub last_bad_ms: i64,
    /// The last evaluation that saw this series.
    pub last_eval_ms: i64,
    /// Condition results of the last evaluations, oldest first.
    pub history: Vec<bool>,
    /// Flapping: changing state too often to notify on each change.
    pub flapping: bool,
}

/// A state change, kept in the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When, ms UTC.
    pub at_ms: i64,
    /// The alert.
    pub fingerprint: String,
    /// Its labels.
    pub labels: Labels,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
    /// The value that caused it.
    pub value: f64,
}

/// A silence: alerts matching every matcher between start and end notify nobody.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id.
    pub id: u64,
    /// Label matchers.
    pub matchers: Vec<MatcherJson>,
    /// Start, ms UTC.
    pub starts_at_ms: i64,
    /// End, ms UTC.
    pub ends_at_ms: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it applies at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.starts_at_ms <= now && now < self.ends_at_ms
    }
}

/// What a group last sent for one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sent {
    /// Sent as firing.
    Firing,
    /// Sent as firing and flapping.
    Flapping,
    /// Sent as resolved.
    Resolved,
}

/// Alerts batched for one notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// `notifier/{label="value",...}`.
    pub key: String,
    /// The notifier.
    pub notifier: String,
    /// The grouping labels' values.
    pub labels: Labels,
    /// When it first had something to send (ms).
    pub created_ms: i64,
    /// When it last sent (ms).
    pub last_flush_ms: Option<i64>,
    /// What it last sent, by fingerprint.
    pub sent: BTreeMap<String, Sent>,
}

/// A notification to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id, increasing.
    pub id: u64,
    /// The notifier.
    pub notifier: String,
    /// The group.
    pub group_key: String,
    /// When it was made (ms).
    pub created_ms: i64,
    /// Alertmanager's version 4 webhook payload.
    pub payload: Value,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before (ms).
    pub next_attempt_ms: i64,
}

/// Why an alert notifies nobody right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Muted {
    /// A silence.
    Silence {
        /// Its id.
        id: u64,
    },
    /// A recurring mute window.
    MuteWindow {
        /// Its name.
        name: String,
    },
    /// A maintenance window of the availability model.
    Maintenance {
        /// Its title.
        title: String,
    },
    /// The host's host_down alert.
    Inhibited {
        /// The inhibiting alert's fingerprint.
        fingerprint: String,
    },
}

/// The engine's whole state.
#[derive(Debug)]
pub struct Engine {
    rules: Rules,
    /// Alerts by fingerprint.
    pub(crate) alerts: BTreeMap<String, Alert>,
    /// Groups by key.
    pub(crate) groups: BTreeMap<String, Group>,
    /// Silences by id.
    pub(crate) silences: BTreeMap<u64, Silence>,
    /// Notifications not delivered yet.
    pub(crate) outbox: BTreeMap<u64, Notification>,
    next_notification: u64,
    next_silence: u64,
    last_eval_ms: Option<i64>,
    external_url: String,
    /// Transitions since the last [`Engine::take_transitions`].
    transitions: Vec<Transition>,
    /// Maintenance seen at the last evaluation, by host.
    maintenance: BTreeMap<String, String>,
    /// When this run of the aggregator started and until when hosts known before it are not
    /// judged down ([`Engine::set_startup_grace`]).
    startup: Option<Startup>,
}

/// The aggregator's start: hosts first seen before `started_ms` had no way to reach it while it
/// was down, so until `until_ms` their silence is not theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    /// When this run started, ms.
    pub started_ms: i64,
    /// When the grace ends, ms.
    pub until_ms: i64,
}

/// Stable 64-bit FNV-1a of the labels, in hex.
pub fn fingerprint(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn rfc3339(ms: i64) -> String {
    crate::util::time::rfc3339_or_raw(ms.max(0))
}

/// What one evaluation saw for one series.
struct Observation {
    labels: Labels,
    value: f64,
    /// `value op threshold`.
    bad: bool,
    /// `value op clear`.
    still_bad: bool,
    extra: Labels,
}

fn aggregate(agg: Agg, points: &[(i64, f64)]) -> Option<f64> {
    let vals = points.iter().map(|p| p.1).filter(|v| !v.is_nan());
    match agg {
        Agg::Avg => {
            let (s, n) = vals.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            (n > 0).then(|| s / n as f64)
        }
        Agg::Max => vals.reduce(f64::max),
        Agg::Min => vals.reduce(f64::min),
        Agg::Last => points.last().map(|p| p.1),
    }
}

fn fill(template: &str, labels: &Labels, value: f64) -> String {
    let mut out = template.replace(
        "{{value}}",
        &format!("{}", (value * 1000.0).round() / 1000.0),
    );
    for (k, v) in labels {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

impl Engine {
    /// An engine with these rules and nothing remembered.
    pub fn new(rules: Rules, external_url: String) -> Self {
        Self {
            rules,
            alerts: BTreeMap::new(),
            groups: BTreeMap::new(),
            silences: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_notification: 1,
            next_silence: 1,
            last_eval_ms: None,
            external_url,
            transitions: Vec::new(),
            maintenance: BTreeMap::new(),
            startup: None,
        }
    }

    /// From `started_ms` to `started_ms + grace_ms`, a host known before `started_ms` does not
    /// start a `host_down` alert (one already firing stays firing): its agent is reconnecting
    /// and sending what it spooled while the aggregator was down. A host still silent after the
    /// grace is judged from its real last sample, so nothing real is hidden for long.
    pub fn set_startup_grace(&mut self, started_ms: i64, grace_ms: i64) {
        self.startup = Some(Startup {
            started_ms,
            until_ms: started_ms.saturating_add(grace_ms.max(0)),
        });
    }

    /// Puts back what a previous run persisted.
    pub fn restore(
        &mut self,
        alerts: Vec<Alert>,
        groups: Vec<Group>,
        silences: Vec<Silence>,
        outbox: Vec<Notification>,
        next_notification: u64,
    ) {
        self.next_silence = silences.iter().map(|s| s.id + 1).max().unwrap_or(1);
        self.next_notification =
            next_notification.max(outbox.iter().map(|n| n.id + 1).max().unwrap_or(1));
        self.alerts = alerts
            .into_iter()
            .map(|a| (a.fingerprint.clone(), a))
            .collect();
        self.groups = groups.into_iter().map(|g| (g.key.clone(), g)).collect();
        self.silences = silences.into_iter().map(|s| (s.id, s)).collect();
        self.outbox = outbox.into_iter().map(|n| (n.id, n)).collect();
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replaces the rules. Alerts of rules that are gone are dropped; the others keep their
    /// state.
    pub fn set_rules(&mut self, rules: Rules) {
        let names: BTreeSet<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
        self.alerts.retain(|_, a| names.contains(a.rule.as_str()));
        self.groups
            .retain(|_, g| rules.notifiers.contains_key(&g.notifier));
        self.rules = rules;
    }

    /// When the rules were last evaluated, ms.
    pub fn last_evaluation_ms(&self) -> Option<i64> {
        self.last_eval_ms
    }

    /// The id the next notification will get.
    pub fn next_notification_id(&self) -> u64 {
        self.next_notification
    }

    /// State changes since the last call, oldest first.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// Every alert that is pending or firing, with why it notifies nobody if it does not.
    pub fn active(&self, now: i64) -> Vec<(Alert, Option<Muted>)> {
        self.alerts
            .values()
            .filter(|a| matches!(a.state, State::Pending | State::Firing))
            .map(|a| (a.clone(), self.muted(a, now)))
            .collect()
    }

    /// The silences.
    pub fn silences(&self) -> Vec<Silence> {
        self.silences.values().cloned().collect()
    }

    /// Adds a silence; returns it with its id.
    pub fn add_silence(&mut self, mut s: Silence) -> Result<Silence, String> {
        if s.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        for m in &s.matchers {
            Matcher::from_json(m)?;
        }
        if s.ends_at_ms <= s.starts_at_ms {
            return Err("endsAt must be after startsAt".into());
        }
        s.id = self.next_silence;
        self.next_silence += 1;
        self.silences.insert(s.id, s.clone());
        Ok(s)
    }

    /// Ends a silence now (it stays listed, expired). False if there is no such silence.
    pub fn expire_silence(&mut self, id: u64, now: i64) -> Option<Silence> {
        let s = self.silences.get_mut(&id)?;
        s.ends_at_ms = s.ends_at_ms.min(now).max(s.starts_at_ms);
        Some(s.clone())
    }

    /// Why `a` notifies nobody at `now`, if it does not.
    pub fn muted(&self, a: &Alert, now: i64) -> Option<Muted> {
        for s in self.silences.values().filter(|s| s.active(now)) {
            let ms: Result<Vec<Matcher>, String> =
                s.matchers.iter().map(Matcher::from_json).collect();
            if let Ok(ms) = ms
                && all_match(&ms, &a.labels)
            {
                return Some(Muted::Silence { id: s.id });
            }
        }
        let instant = Interval::new(now, now + 1);
        for m in &self.rules.mutes {
            if all_match(&m.matchers, &a.labels) && !m.schedule.scheduled(instant).is_empty() {
                return Some(Muted::MuteWindow {
                    name: m.name.clone(),
                });
            }
        }
        let host = a.labels.get("host")?;
        if let Some(title) = self.maintenance.get(host) {
            return Some(Muted::Maintenance {
                title: title.clone(),
            });
        }
        let kind = self.rule(&a.rule).map(|r| r.kind);
        if kind != Some(Kind::HostDown) {
            for b in self.alerts.values() {
                if b.state == State::Firing
                    && b.labels.get("host") == Some(host)
                    && self.rule(&b.rule).map(|r| r.kind) == Some(Kind::HostDown)
                {
                    return Some(Muted::Inhibited {
                        fingerprint: b.fingerprint.clone(),
                    });
                }
            }
        }
        None
    }

    fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.rules.iter().find(|r| r.name == name)
    }

    /// Advances to `now`: evaluates the rules if an evaluation interval has passed, then
    /// flushes the groups that are due. Returns the notifications made (also kept in the
    /// outbox until delivered).
    pub fn tick(&mut self, now: i64, data: &dyn Data) -> Vec<Notification> {
        let every = self.rules.evaluation_interval.as_millis() as i64;
        // A clock that went back evaluates at once rather than waiting for it to catch up.
        if self
            .last_eval_ms
            .is_none_or(|t| now - t >= every || now < t)
        {
            self.evaluate(now, data);
            self.last_eval_ms = Some(now);
        }
        self.flush(now)
    }

    /// Evaluates every rule at `now`.
    pub fn evaluate(&mut self, now: i64, data: &dyn Data) {
        let hosts = data.hosts();
        self.maintenance = hosts
            .iter()
            .filter_map(|h| Some((h.host.clone(), data.maintenance(&h.host, now)?)))
            .collect();
        let rules = self.rules.rules.clone();
        let startup = self.startup.filter(|s| now < s.until_ms);
        for rule in &rules {
            let obs = observe(rule, &hosts, data, now, startup);
            let mut seen = BTreeSet::new();
            for o in obs {
                let fp = fingerprint(&o.labels);
                seen.insert(fp.clone());
                self.step(rule, fp, Some(o), now);
            }
            let unseen: Vec<String> = self
                .alerts
                .values()
                .filter(|a| a.rule == rule.name && !seen.contains(&a.fingerprint))
                .map(|a| a.fingerprint.clone())
                .collect();
            for fp in unseen {
                // No data for the series: the condition does not hold.
                self.step(rule, fp, None, now);
            }
        }
    }

    fn step(&mut self, rule: &Rule, fp: String, obs: Option<Observation>, now: i64) {
        let flap = self.rules.flapping;
        let existing = self.alerts.get(&fp);
        let was = existing.map_or(State::Inactive, |a| a.state);
        let bad = match (&obs, was) {
            (None, _) => false,
            (Some(o), State::Firing) => o.still_bad,
            (Some(o), _) => o.bad,
        };
        if existing.is_none() && !bad {
            return;
        }
        let mut a = match self.alerts.remove(&fp) {
            Some(a) => a,
            None => {
                let Some(o) = &obs else { return };
                Alert {
                    fingerprint: fp.clone(),
                    rule: rule.name.clone(),
                    labels: o.labels.clone(),
                    annotations: Labels::new(),
                    state: State::Inactive,
                    active_since_ms: now,
                    firing_since_ms: None,
                    resolved_ms: None,
                    value: o.value,
                    last_bad_ms: 0,
                    last_eval_ms: now,
                    history: Vec::new(),
                    flapping: false,
                }
            }
        };
        if let Some(o) = &obs {
            a.value = o.value;
            let mut ann = Labels::new();
            ann.insert("summary".into(), fill(&rule.summary, &o.labels, o.value));
            ann.insert("runbook_url".into(), rule.runbook.clone());
            ann.insert(
                "description".into(),
                format!("{} (value {})", rule.condition(), o.value),
            );
            ann.extend(o.extra.clone());
            a.annotations = ann;
        }
        a.last_eval_ms = now;
        if bad {
            a.last_bad_ms = now;
        }
        // Flap detection on the condition's results.
        a.history.push(bad);
        if a.history.len() > flap.window {
            let cut = a.history.len() - flap.window;
            a.history.drain(..cut);
        }
        let change = flap_change(&a.history);
        if a.history.len() >= flap.window && change > flap.high {
            a.flapping = true;
        } else if change < flap.low {
            a.flapping = false;
        }
        let next = match (a.state, bad) {
            (State::Inactive | State::Resolved, true) => {
                a.active_since_ms = now;
                a.resolved_ms = None;
                if rule.for_.is_zero() {
                    State::Firing
                } else {
                    State::Pending
                }
            }
            (State::Pending, true) if now - a.active_since_ms >= rule.for_.as_millis() as i64 => {
                State::Firing
            }
            (State::Pending, true) => State::Pending,
            (State::Pending, false) => State::Inactive,
            (State::Firing, true) => State::Firing,
            (State::Firing, false) => {
                let keep = rule.keep_firing_for.as_millis() as i64;
                if (keep > 0 && now - a.last_bad_ms < keep) || a.flapping {
                    State::Firing
                } else {
                    State::Resolved
                }
            }
            (s @ (State::Inactive | State::Resolved), false) => s,
        };
        if next != a.state {
            match next {
                State::Firing => a.firing_since_ms = Some(now),
                State::Resolved => a.resolved_ms = Some(now),
                _ => {}
            }
            self.transitions.push(Transition {
                at_ms: now,
                fingerprint: a.fingerprint.clone(),
                labels: a.labels.clone(),
                from: a.state,
                to: next,
                value: a.value,
            });
            a.state = next;
        }
        let keep = match a.state {
            State::Inactive => a.history.iter().any(|b| *b) || a.flapping,
            State::Resolved => {
                self.groups
                    .values()
                    .any(|g| matches!(g.sent.get(&fp), Some(Sent::Firing | Sent::Flapping)))
                    || a.history.iter().any(|b| *b)
            }
            _ => true,
        };
        if keep {
            self.alerts.insert(fp, a);
        }
    }

    fn group_keys(&self, a: &Alert) -> Vec<(String, String, Labels)> {
        let Some(rule) = self.rule(&a.rule) else {
            return Vec::new();
        };
        let labels: Labels = rule
            .group_by
            .iter()
            .map(|k| (k.clone(), a.labels.get(k).cloned().unwrap_or_default()))
            .collect();
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        rule.notify
            .iter()
            .map(|n| {
                (
                    format!("{n}/{{{}}}", inner.join(",")),
                    n.clone(),
                    labels.clone(),
                )
            })
            .collect()
    }

    /// Sends the groups that are due at `now`.
    pub fn flush(&mut self, now: i64) -> Vec<Notification> {
        // What each group would send now.
        let mut current: BTreeMap<String, (String, Labels, BTreeMap<String, Sent>)> =
            BTreeMap::new();
        for a in self.alerts.values() {
            let status = match a.state {
                State::Firing if a.flapping => Sent::Flapping,
                State::Firing => Sent::Firing,
                State::Resolved => Sent::Resolved,
                _ => continue,
            };
            if self.muted(a, now).is_some() {
                continue;
            }
            for (key, notifier, labels) in self.group_keys(a) {
                if status == Sent::Resolved
                    && !self
                        .groups
                        .get(&key)
                        .is_some_and(|g| g.sent.contains_key(&a.fingerprint))
                {
                    // Never told as firing: nothing to say about its end.
                    continue;
                }
                current
                    .entry(key)
                    .or_insert_with(|| (notifier, labels, BTreeMap::new()))
                    .2
                    .insert(a.fingerprint.clone(), status);
            }
        }
        for (key, (notifier, labels, _)) in &current {
            self.groups.entry(key.clone()).or_insert_with(|| Group {
                key: key.clone(),
                notifier: notifier.clone(),
                labels: labels.clone(),
                created_ms: now,
                last_flush_ms: None,
                sent: BTreeMap::new(),
            });
        }
        let g = self.rules.grouping.clone();
        let (wait, interval, repeat) = (
            g.group_wait.as_millis() as i64,
            g.group_interval.as_millis() as i64,
            g.repeat_interval.as_millis() as i64,
        );
        let mut out = Vec::new();
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        for key in keys {
            let now_set = current.get(&key).map(|c| c.2.clone()).unwrap_or_default();
            let Some(group) = self.groups.get(&key) else {
                continue;
            };
            if now_set.is_empty() {
                // Nothing left to say (all muted or gone): forget the group.
                self.groups.remove(&key);
                continue;
            }
            let firing = now_set.values().any(|s| *s != Sent::Resolved);
            let due = match group.last_flush_ms {
                None => now - group.created_ms >= wait,
                Some(t) if now_set != group.sent => now - t >= interval,
                Some(t) => firing && now - t >= repeat,
            };
            if !due {
                continue;
            }
            let mut n = self.notification(group, &now_set, now);
            n.id = self.next_notification;
            self.next_notification += 1;
            out.push(n.clone());
            self.outbox.insert(n.id, n);
            let sent: BTreeMap<String, Sent> = now_set
                .into_iter()
                .filter(|(_, s)| *s != Sent::Resolved)
                .collect();
            if sent.is_empty() {
                self.groups.remove(&key);
            } else if let Some(group) = self.groups.get_mut(&key) {
                group.sent = sent;
                group.last_flush_ms = Some(now);
            }
        }
        // Resolved alerts no group still owes a word about are done.
        let owed: BTreeSet<&String> = self.groups.values().flat_map(|g| g.sent.keys()).collect();
        let done: Vec<String> = self
            .alerts
            .values()
            .filter(|a| {
                a.state == State::Resolved
                    && !owed.contains(&a.fingerprint)
                    && !a.history.iter().any(|b| *b)
            })
            .map(|a| a.fingerprint.clone())
            .collect();
        for fp in done {
            self.alerts.remove(&fp);
        }
        out
    }

    fn notification(&self, group: &Group, set: &BTreeMap<String, Sent>, now: i64) -> Notification {
        let mut alerts: Vec<&Alert> = set.keys().filter_map(|fp| self.alerts.get(fp)).collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        let firing = set.values().any(|s| *s != Sent::Resolved);
        let common = |f: &dyn Fn(&Alert) -> &Labels| -> Labels {
            let mut it = alerts.iter();
            let Some(first) = it.next() else {
                return Labels::new();
            };
            let mut c = f(first).clone();
            for a in it {
                c.retain(|k, v| f(a).get(k) == Some(v));
            }
            c
        };
        let payload_alerts: Vec<Value> = alerts
            .iter()
            .map(|a| {
                let resolved = set.get(&a.fingerprint) == Some(&Sent::Resolved);
                let mut ann = a.annotations.clone();
                if a.flapping && !resolved {
                    ann.insert("flapping".into(), "true".into());
                    ann.insert(
                        "summary".into(),
                        format!(
                            "[flapping: notifications damped until it settles] {}",
                            ann.get("summary").cloned().unwrap_or_default()
                        ),
                    );
                }
                json!({
                    "status": if resolved { "resolved" } else { "firing" },
                    "labels": a.labels,
                    "annotations": ann,
                    "startsAt": rfc3339(a.firing_since_ms.unwrap_or(a.active_since_ms)),
                    "endsAt": if resolved {
                        rfc3339(a.resolved_ms.unwrap_or(now))
                    } else {
                        "0001-01-01T00:00:00Z".to_owned()
                    },
                    "generatorURL": format!("{}/api/v1/alerts", self.external_url),
                    "fingerprint": a.fingerprint,
                })
            })
            .collect();
        let group_key = format!(
            "{{}}:{{{}}}",
            group
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let payload = json!({
            "receiver": group.notifier,
            "status": if firing { "firing" } else { "resolved" },
            "alerts": payload_alerts,
            "groupLabels": group.labels,
            "commonLabels": common(&|a| &a.labels),
            "commonAnnotations": common(&|a| &a.annotations),
            "externalURL": self.external_url,
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
        });
        Notification {
            id: 0,
            notifier: group.notifier.clone(),
            group_key: group.key.clone(),
            created_ms: now,
            payload,
            attempts: 0,
            next_attempt_ms: now,
        }
    }
}

/// Nagios' weighted percent state change: changes between consecutive results, the oldest
/// weighted 0.8 and the newest 1.2, over the number of possible changes.
pub fn flap_change(history: &[bool]) -> f64 {
    let n = history.len();
    if n < 2 {
        return 0.0;
    }
    let mut total = 0.0;
    for i in 1..n {
        if history[i] != history[i - 1] {
            let pos = if n > 2 {
                (i - 1) as f64 / (n - 2) as f64
            } else {
                0.5
            };
            total += 0.8 + 0.4 * pos;
        }
    }
    total / (n - 1) as f64
}

fn observe(
    rule: &Rule,
    hosts: &[HostInfo],
    data: &dyn Data,
    now: i64,
    startup: Option<Startup>,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let window = rule.window.as_millis() as i64;
    for h in hosts.iter().filter(|h| glob(&rule.hosts, &h.host)) {
        let base = |series: &Labels| -> Labels {
            let mut l = series.clone();
            l.insert("alertname".into(), rule.name.clone());
            l.insert("severity".into(), rule.severity.as_str().into());
            l.insert("host".into(), h.host.clone());
            l
        };
        match rule.kind {
            Kind::HostDown => {
                let last = h.last_sample_ms.max(h.first_seen_ms);
                let silent_ms = now - last;
                let limit = i64::from(rule.intervals) * h.interval_ms.max(1);
                let bad = silent_ms > limit && !h.stopped;
                // In the startup grace, a host known before the start starts no alert.
                let in_grace = startup.is_some_and(|s| h.first_seen_ms < s.started_ms);
                out.push(Observation {
                    labels: base(&Labels::new()),
                    value: silent_ms as f64 / 1000.0,
                    bad: bad && !in_grace,
                    still_bad: bad,
                    extra: [("last_sample".to_owned(), rfc3339(h.last_sample_ms))].into(),
                });
            }
            Kind::Threshold | Kind::ProcessDown | Kind::CheckFailed => {
                let window = if rule.kind == Kind::Threshold {
                    window
                } else {
                    // The last report counts while it is fresh.
                    window.max(3 * h.interval_ms)
                };
                let agg = if rule.kind == Kind::Threshold {
                    rule.agg
                } else {
                    Agg::Last
                };
                for (labels, points) in
                    data.series(&h.host, &rule.metric, &rule.labels, now - window, now)
                {
                    let Some(value) = aggregate(agg, &points) else {
                        continue;
                    };
                    out.push(Observation {
                        labels: base(&labels),
                        value,
                        bad: rule.op.holds(value, rule.threshold),
                        still_bad: rule.op.holds(value, rule.clear),
                        extra: Labels::new(),
                    });
                }
            }
            Kind::DiskFullForecast => {
                for (labels, points) in
                    data.series(&h.host, &rule.metric, &rule.labels, now - window, now)
                {
                    let xy: Vec<(f64, f64)> = points
                        .iter()
                        .filter(|p| p.1.is_finite())
                        .map(|&(t, v)| (t as f64, v))
                        .collect();
                    let Some(fit) = least_squares(&xy) else {
                        continue;
                    };
                    if fit.n < 3 {
                        continue;
                    }
                    let horizon = rule.horizon.as_millis() as f64;
                    let full = fit.reaches(1.0, now as f64);
                    let due = full.is_some_and(|t| t <= now as f64 + horizon);
                    // Too little data (docs/api.md, "Forecast and capacity": 30 points over
                    // half the window) starts no alert; one already firing is judged as before.
                    let ts: Vec<i64> = points
                        .iter()
                        .filter(|p| p.1.is_finite())
                        .map(|p| p.0)
                        .collect();
                    let evidence = crate::forecast::evidence(&ts, window).is_ok();
                    let bad = due && evidence;
                    let mut extra = Labels::new();
                    extra.insert(
                        "slope_per_hour".into(),
                        format!("{:.6}", fit.slope * 3_600_000.0),
                    );
                    extra.insert("r2".into(), format!("{:.4}", fit.r2));
                    if let Some(t) = full {
                        extra.insert("predicted_full_at".into(), rfc3339(t as i64));
                    }
                    let Some(&(_, latest)) = points.last() else {
                        continue;
                    };
                    out.push(Observation {
                        labels: base(&labels),
                        value: latest,
                        bad,
                        still_bad: due,
                        extra,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
