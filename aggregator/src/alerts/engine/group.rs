//! Notification grouping: firing alerts batched per notifier and `group_by` values, sent after
//! group_wait, on change at most every group_interval, and again every repeat_interval; and
//! the notification payload each group sends.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Alert, Engine, Labels, State};

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

pub(super) fn rfc3339(ms: i64) -> String {
    crate::util::time::rfc3339_or_raw(ms.max(0))
}

impl Engine {
    pub(super) fn group_keys(&self, a: &Alert) -> Vec<(String, String, Labels)> {
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

    pub(super) fn notification(
        &self,
        group: &Group,
        set: &BTreeMap<String, Sent>,
        now: i64,
    ) -> Notification {
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
