//! Why an alert notifies nobody: silences people add and expire, mute windows, maintenance,
//! and inhibition by the host's `host_down` alert.

use serde::{Deserialize, Serialize};

use super::Engine;
use super::alert::{Alert, State};
use crate::alerts::matcher::{Matcher, MatcherJson, all_match};
use crate::alerts::rules::Kind;
use crate::availability::Interval;

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

impl Engine {
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
}
