//! The state machine of one instance: inactive, pending, firing, resolved, with `for`,
//! `keep_firing_for`, the clear threshold's hysteresis and flapping detection; and the
//! annotations filled in from labels and value.

use super::evaluate::Observation;
use super::{Alert, Engine, Labels, Sent, State, Transition};
use crate::alerts::rules::Rule;

pub(super) fn fill(template: &str, labels: &Labels, value: f64) -> String {
    let mut out = template.replace(
        "{{value}}",
        &format!("{}", (value * 1000.0).round() / 1000.0),
    );
    for (k, v) in labels {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
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

impl Engine {
    pub(super) fn step(&mut self, rule: &Rule, fp: String, obs: Option<Observation>, now: i64) {
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
}
