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
//!
//! This file holds the engine and its inputs; `evaluate` reads the data, `state` steps each
//! instance, `group` batches alerts into notifications (delivered by `alerts::notify`), `silence`
//! decides what is muted, `alert` is what is kept.

mod alert;
mod evaluate;
mod group;
mod silence;
mod state;

use std::collections::{BTreeMap, BTreeSet};

pub use alert::{Alert, State, Transition, fingerprint};
pub use group::{Group, Notification, Sent};
pub use silence::{Muted, Silence};
pub use state::flap_change;

use super::rules::{Rule, Rules};

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
}

#[cfg(test)]
mod tests;
