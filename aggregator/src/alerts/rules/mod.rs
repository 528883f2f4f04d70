//! The alert rules file (`/etc/nines/alerts.toml`, docs/alerts.md): rules (IF a condition holds,
//! DO notify, SO THAT an outcome is protected), notifiers, grouping, mute windows. Parsed and
//! validated as a whole: a rule that is not actionable (no runbook, no summary, no notifier) is
//! refused, and a bad file never replaces good rules.
//!
//! This file reads the whole and checks notifiers and mute windows against each other; each
//! section's types live in its own file (`rule`, `notifier`, `grouping`, `flapping`, `mute`).

mod flapping;
mod grouping;
mod mute;
mod notifier;
mod rule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use flapping::Flapping;
pub use grouping::Grouping;
pub use mute::MuteWindow;
pub use notifier::{CommandConfig, EmailConfig, NotifierConfig, SmtpTls, WebhookConfig};
pub use rule::{Agg, Kind, Op, Rule, Severity, glob};

use crate::alerts::matcher::Matcher;
use crate::availability::Schedule;
use crate::availability::schedule::{parse_window, time_zone};
use mute::MuteConfig;
use rule::{RuleConfig, validate_rule};

/// Why a rules file is refused. The message names the file and, where it can, the rule.
#[derive(Debug, thiserror::Error)]
#[error("alert rules {path}: {message}")]
pub struct RulesError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default = "default_eval", with = "humantime_serde")]
    evaluation_interval: Duration,
    #[serde(default)]
    grouping: Grouping,
    #[serde(default)]
    flapping: Flapping,
    #[serde(default)]
    notifiers: Vec<NotifierConfig>,
    #[serde(default)]
    mute: Vec<MuteConfig>,
    #[serde(default)]
    rules: Vec<RuleConfig>,
}

fn default_eval() -> Duration {
    Duration::from_secs(15)
}

/// Everything the rules file says, validated.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Where it was read from.
    pub path: PathBuf,
    /// How often rules are evaluated.
    pub evaluation_interval: Duration,
    /// Default grouping and timers.
    pub grouping: Grouping,
    /// Flap detection.
    pub flapping: Flapping,
    /// Notifiers by name.
    pub notifiers: BTreeMap<String, NotifierConfig>,
    /// Recurring mute windows.
    pub mutes: Vec<MuteWindow>,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

impl Rules {
    /// No rules at all (no rules file configured).
    pub fn empty() -> Self {
        Self {
            path: PathBuf::new(),
            evaluation_interval: default_eval(),
            grouping: Grouping::default(),
            flapping: Flapping::default(),
            notifiers: BTreeMap::new(),
            mutes: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Reads and validates a rules file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates rules text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RulesError> {
        let err = |message: String| RulesError {
            path: path.to_owned(),
            message,
        };
        let file: RulesFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if file.evaluation_interval < Duration::from_secs(1) {
            return Err(err("evaluation_interval must be at least 1s".into()));
        }
        let g = &file.grouping;
        if g.group_interval.is_zero() || g.repeat_interval < g.group_interval {
            return Err(err(
                "[grouping] needs group_interval > 0 and repeat_interval >= group_interval".into(),
            ));
        }
        let f = file.flapping;
        if f.window < 3 || !(0.0 < f.low && f.low <= f.high && f.high <= 1.0) {
            return Err(err(
                "[flapping] needs window >= 3 and 0 < low <= high <= 1".into()
            ));
        }
        let mut notifiers = BTreeMap::new();
        for n in file.notifiers {
            let kinds = [n.webhook.is_some(), n.command.is_some(), n.email.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(err(format!(
                    "notifier {:?}: give exactly one of webhook, command, email",
                    n.name
                )));
            }
            if let Some(w) = &n.webhook
                && !(w.url.starts_with("http://") || w.url.starts_with("https://"))
            {
                return Err(err(format!(
                    "notifier {:?}: webhook url must start with http:// or https://",
                    n.name
                )));
            }
            if let Some(c) = &n.command
                && c.argv.is_empty()
            {
                return Err(err(format!("notifier {:?}: command argv is empty", n.name)));
            }
            if let Some(e) = &n.email {
                if e.to.is_empty() {
                    return Err(err(format!("notifier {:?}: email needs `to`", n.name)));
                }
                for a in std::iter::once(&e.from).chain(&e.to) {
                    a.parse::<lettre::Address>()
                        .map_err(|x| err(format!("notifier {:?}: address {a:?}: {x}", n.name)))?;
                }
            }
            if n.max_attempts == 0 {
                return Err(err(format!(
                    "notifier {:?}: max_attempts must be at least 1",
                    n.name
                )));
            }
            if notifiers.insert(n.name.clone(), n.clone()).is_some() {
                return Err(err(format!("notifier {:?} is defined twice", n.name)));
            }
        }
        let mut mutes = Vec::new();
        for m in file.mute {
            let matchers = m
                .matchers
                .iter()
                .map(|s| Matcher::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("mute {:?}: {e}", m.name)))?;
            let tz = time_zone(&m.time_zone).map_err(|e| err(format!("mute {:?}: {e}", m.name)))?;
            let weekly = m
                .weekly
                .iter()
                .map(|w| parse_window(&w.days, &w.start, &w.end))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("mute {:?}: {e}", m.name)))?;
            if weekly.is_empty() {
                return Err(err(format!("mute {:?}: needs at least one window", m.name)));
            }
            mutes.push(MuteWindow {
                name: m.name,
                matchers,
                schedule: Schedule {
                    time_zone: tz,
                    weekly,
                    holidays: Vec::new(),
                },
            });
        }
        let mut rules: Vec<Rule> = Vec::new();
        for r in file.rules {
            let rule = validate_rule(r, &file.grouping, &notifiers).map_err(err)?;
            if rules.iter().any(|x| x.name == rule.name) {
                return Err(err(format!("rule {:?} is defined twice", rule.name)));
            }
            rules.push(rule);
        }
        Ok(Self {
            path: path.to_owned(),
            evaluation_interval: file.evaluation_interval,
            grouping: file.grouping,
            flapping: file.flapping,
            notifiers,
            mutes,
            rules,
        })
    }
}

#[cfg(test)]
mod tests;
