//! The alert rules file (`/etc/nines/alerts.toml`, docs/alerts.md): rules (IF a condition holds,
//! DO notify, SO THAT an outcome is protected), notifiers, grouping, mute windows. Parsed and
//! validated as a whole: a rule that is not actionable (no runbook, no summary, no notifier) is
//! refused, and a bad file never replaces good rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::matcher::Matcher;
use crate::availability::Schedule;
use crate::availability::schedule::{parse_window, time_zone};

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

/// `[grouping]`: how alerts are batched into notifications (Alertmanager's meaning and
/// defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    /// Labels whose values make a group. Default `["alertname"]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group, to gather its storm. Default 30s.
    #[serde(default = "default_group_wait", with = "humantime_serde")]
    pub group_wait: Duration,
    /// Wait between notifications of a group whose alerts changed. Default 5m.
    #[serde(default = "default_group_interval", with = "humantime_serde")]
    pub group_interval: Duration,
    /// Re-send a group that is still firing and unchanged after this long. Default 4h.
    #[serde(default = "default_repeat_interval", with = "humantime_serde")]
    pub repeat_interval: Duration,
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".into()]
}
fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

impl Default for Grouping {
    fn default() -> Self {
        Self {
            group_by: default_group_by(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
        }
    }
}

/// `[flapping]`: Nagios' flap detection: the weighted percent of state changes over the last
/// `window` evaluations; flapping starts above `high` and ends below `low`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flapping {
    /// Evaluations looked at. Default 21.
    #[serde(default = "default_flap_window")]
    pub window: usize,
    /// Start flapping above this share of changes. Default 0.5.
    #[serde(default = "default_flap_high")]
    pub high: f64,
    /// Stop flapping below this share. Default 0.25.
    #[serde(default = "default_flap_low")]
    pub low: f64,
}

fn default_flap_window() -> usize {
    21
}
fn default_flap_high() -> f64 {
    0.5
}
fn default_flap_low() -> f64 {
    0.25
}

impl Default for Flapping {
    fn default() -> Self {
        Self {
            window: default_flap_window(),
            high: default_flap_high(),
            low: default_flap_low(),
        }
    }
}

/// One `[[notifiers]]` entry: where notifications go. Exactly one of `webhook`, `command`,
/// `email`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// Referred to by rules' `notify`.
    pub name: String,
    /// POST Alertmanager's version 4 JSON.
    pub webhook: Option<WebhookConfig>,
    /// Run a program with the notification as JSON on stdin.
    pub command: Option<CommandConfig>,
    /// Send a mail over SMTP.
    pub email: Option<EmailConfig>,
    /// Attempts per notification before it is given up (logged). Default 6.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    6
}

/// `webhook = { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per request. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// `command = { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Killed after this long. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (only for a relay on the same host).
    None,
    /// STARTTLS on the submission port.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `email = { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name.
    pub smtp_host: String,
    /// Port. Default 587.
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    /// Default `starttls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP user, if the server wants one.
    pub username: Option<String>,
    /// File holding the SMTP password (kept out of this file).
    pub password_file: Option<PathBuf>,
    /// Per message. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// A `[[mute]]` entry: a recurring window in which matching alerts notify nobody.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct MuteConfig {
    name: String,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default = "utc")]
    time_zone: String,
    weekly: Vec<WindowConfig>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WindowConfig {
    days: Vec<String>,
    start: String,
    end: String,
}

/// A recurring mute window.
#[derive(Debug, Clone)]
pub struct MuteWindow {
    /// Its name, shown on muted alerts.
    pub name: String,
    /// Alerts it applies to (all, if empty).
    pub matchers: Vec<Matcher>,
    /// When it applies.
    pub schedule: Schedule,
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An aggregation of a metric over a window against a threshold.
    Threshold,
    /// No samples from a host for more than `intervals` of its sampling intervals.
    HostDown,
    /// A watched process reported not running (`process_up` = 0).
    ProcessDown,
    /// A least-squares line through a filesystem's used ratio reaches 1 within `horizon`.
    DiskFullForecast,
    /// A check's last status (`check_status`: 0 ok, 1 warning, 2 critical, 3 unknown) is at
    /// least `threshold` (default 2).
    CheckFailed,
}

/// How samples in the window are reduced to one value.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    /// Mean.
    Avg,
    /// Largest.
    Max,
    /// Smallest.
    Min,
    /// Newest.
    Last,
}

/// Comparison of the value with the threshold.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Op {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// `value op threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }
}

/// Alert severity: the colour on the status page.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Amber: act within working hours.
    Warning,
    /// Red: act now.
    Critical,
}

impl Severity {
    /// `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One `[[rules]]` entry, as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    name: String,
    #[serde(default = "default_kind")]
    kind: Kind,
    metric: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default = "any_host")]
    hosts: String,
    #[serde(default = "default_agg")]
    agg: Agg,
    #[serde(default, with = "humantime_serde")]
    window: Option<Duration>,
    op: Option<Op>,
    threshold: Option<f64>,
    clear: Option<f64>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    for_: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    keep_firing_for: Option<Duration>,
    intervals: Option<u32>,
    process: Option<String>,
    check: Option<String>,
    #[serde(default, with = "humantime_serde")]
    horizon: Option<Duration>,
    severity: Option<Severity>,
    #[serde(default)]
    notify: Vec<String>,
    summary: Option<String>,
    runbook: Option<String>,
    group_by: Option<Vec<String>>,
}

fn default_kind() -> Kind {
    Kind::Threshold
}
fn any_host() -> String {
    "*".into()
}
fn default_agg() -> Agg {
    Agg::Avg
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The `alertname` label.
    pub name: String,
    /// What it watches.
    pub kind: Kind,
    /// Metric name (fixed for the built-ins).
    pub metric: String,
    /// Series labels that must match exactly.
    pub labels: Vec<(String, String)>,
    /// Host glob (`*` and `?`).
    pub hosts: String,
    /// Reduction over the window.
    pub agg: Agg,
    /// Window the aggregation (or the forecast's fit) looks back over.
    pub window: Duration,
    /// Comparison.
    pub op: Op,
    /// Fires when `value op threshold`.
    pub threshold: f64,
    /// Stays firing until `value op clear` no longer holds (hysteresis); defaults to the
    /// threshold.
    pub clear: f64,
    /// The condition must hold this long before the alert fires.
    pub for_: Duration,
    /// Keeps firing this long after the condition cleared.
    pub keep_firing_for: Duration,
    /// host_down: missed sampling intervals.
    pub intervals: u32,
    /// disk_full_forecast: how far ahead.
    pub horizon: Duration,
    /// Colour.
    pub severity: Severity,
    /// Notifier names.
    pub notify: Vec<String>,
    /// What is wrong and what it costs; `{{host}}`, `{{value}}` and `{{label}}` are filled in.
    pub summary: String,
    /// Where the steps to take are written.
    pub runbook: String,
    /// Grouping labels (the file's default unless set).
    pub group_by: Vec<String>,
}

impl Rule {
    /// The condition in words, for the API and notifications.
    pub fn condition(&self) -> String {
        let sel = if self.labels.is_empty() {
            self.metric.clone()
        } else {
            let l: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            format!("{}{{{}}}", self.metric, l.join(","))
        };
        match self.kind {
            Kind::Threshold => format!(
                "{:?}({sel}[{}]) {} {}",
                self.agg,
                humantime::format_duration(self.window),
                self.op.as_str(),
                self.threshold
            )
            .to_lowercase(),
            Kind::HostDown => format!("no samples for {} intervals", self.intervals),
            Kind::ProcessDown => format!("{sel} == 0"),
            Kind::DiskFullForecast => format!(
                "least squares of {sel} over {} reaches 1 within {}",
                humantime::format_duration(self.window),
                humantime::format_duration(self.horizon)
            ),
            Kind::CheckFailed => format!("{sel} >= {}", self.threshold),
        }
    }
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

fn validate_rule(
    r: RuleConfig,
    grouping: &Grouping,
    notifiers: &BTreeMap<String, NotifierConfig>,
) -> Result<Rule, String> {
    let name = r.name.clone();
    let bad = |m: &str| format!("rule {name:?}: {m}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("name must be letters, digits and _"));
    }
    // SO THAT: a rule nobody can act on is noise.
    let summary = r
        .summary
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| bad("`summary` is required: say what is wrong and what it costs users"))?;
    let runbook = r.runbook.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        bad("`runbook` is required: say where the steps to take are written (a URL or a path)")
    })?;
    // DO.
    if r.notify.is_empty() {
        return Err(bad(
            "`notify` is required: name at least one notifier that someone acts on",
        ));
    }
    for n in &r.notify {
        if !notifiers.contains_key(n) {
            return Err(bad(&format!(
                "notifier {n:?} is not defined in [[notifiers]]"
            )));
        }
    }
    let severity = r
        .severity
        .ok_or_else(|| bad("`severity` is required: warning or critical"))?;
    glob_check(&r.hosts).map_err(|e| bad(&e))?;
    let fixed_metric = |m: &str| -> Result<String, String> {
        match &r.metric {
            Some(x) if x != m => Err(bad(&format!("kind {:?} watches {m}", r.kind))),
            _ => Ok(m.to_owned()),
        }
    };
    let mut labels: Vec<(String, String)> = r.labels.into_iter().collect();
    let (metric, op, threshold) = match r.kind {
        Kind::Threshold => {
            let metric = r
                .metric
                .clone()
                .ok_or_else(|| bad("`metric` is required"))?;
            let op = r.op.ok_or_else(|| bad("`op` is required"))?;
            let t = r.threshold.ok_or_else(|| bad("`threshold` is required"))?;
            (metric, op, t)
        }
        Kind::HostDown => ("".to_owned(), Op::Gt, 0.0),
        Kind::ProcessDown => {
            if let Some(p) = &r.process {
                labels.push(("process".into(), p.clone()));
            }
            (fixed_metric("process_up")?, Op::Lt, 0.5)
        }
        Kind::DiskFullForecast => (fixed_metric("filesystem_used_ratio")?, Op::Le, 0.0),
        Kind::CheckFailed => {
            if let Some(c) = &r.check {
                labels.push(("check".into(), c.clone()));
            }
            (
                fixed_metric("check_status")?,
                Op::Ge,
                r.threshold.unwrap_or(2.0),
            )
        }
    };
    if !threshold.is_finite() {
        return Err(bad("threshold must be a finite number"));
    }
    let clear = r.clear.unwrap_or(threshold);
    if let (Kind::Threshold, Some(c)) = (r.kind, r.clear) {
        // The clear level must sit on the healthy side of the threshold.
        let ok = match op {
            Op::Gt | Op::Ge => c <= threshold,
            Op::Lt | Op::Le => c >= threshold,
            Op::Eq | Op::Ne => c == threshold,
        };
        if !ok {
            return Err(bad(&format!(
                "clear = {c} must be on the healthy side of threshold {threshold} for op {}",
                op.as_str()
            )));
        }
    } else if r.clear.is_some() {
        return Err(bad("`clear` applies only to threshold rules"));
    }
    let window = match r.kind {
        Kind::Threshold => r.window.unwrap_or(Duration::from_secs(60)),
        Kind::DiskFullForecast => r.window.unwrap_or(Duration::from_secs(6 * 3600)),
        _ => r.window.unwrap_or(Duration::from_secs(60)),
    };
    if window < Duration::from_secs(1) || window > Duration::from_secs(31 * 86_400) {
        return Err(bad("window must be from 1s to 31d"));
    }
    let horizon = r.horizon.unwrap_or(Duration::from_secs(24 * 3600));
    if r.kind == Kind::DiskFullForecast && horizon.is_zero() {
        return Err(bad("horizon must be positive"));
    }
    let intervals = r.intervals.unwrap_or(3);
    if intervals == 0 {
        return Err(bad("intervals must be at least 1"));
    }
    Ok(Rule {
        name,
        kind: r.kind,
        metric,
        labels,
        hosts: r.hosts,
        agg: r.agg,
        window,
        op,
        threshold,
        clear,
        for_: r.for_.unwrap_or_default(),
        keep_firing_for: r.keep_firing_for.unwrap_or_default(),
        intervals,
        horizon,
        severity,
        notify: r.notify,
        summary,
        runbook,
        group_by: r.group_by.unwrap_or_else(|| grouping.group_by.clone()),
    })
}

fn glob_check(g: &str) -> Result<(), String> {
    if g.is_empty() {
        Err("hosts must not be empty (use \"*\" for every host)".into())
    } else {
        Ok(())
    }
}

/// Shell-style glob match of `text` against `pattern` (`*` any run, `?` one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOTIFIER: &str =
        "[[notifiers]]\nname = \"ops\"\nwebhook = { url = \"http://127.0.0.1:9/\" }\n";

    fn parse(rule: &str) -> Result<Rules, RulesError> {
        Rules::parse(
            &format!("{NOTIFIER}[[rules]]\n{rule}"),
            Path::new("alerts.toml"),
        )
    }

    const GOOD: &str = "name = \"HighCpu\"\nmetric = \"cpu_usage_ratio\"\nop = \">\"\nthreshold = 0.9\nseverity = \"warning\"\nnotify = [\"ops\"]\nsummary = \"s\"\nrunbook = \"https://r\"\n";

    #[test]
    fn a_rule_without_runbook_summary_or_notifier_is_refused_and_says_why() {
        assert!(parse(GOOD).is_ok());
        let no_runbook = GOOD.replace("runbook = \"https://r\"\n", "");
        let e = parse(&no_runbook).unwrap_err().to_string();
        assert!(
            e.starts_with("alert rules alerts.toml: rule \"HighCpu\": `runbook` is required"),
            "{e}"
        );
        let e = parse(&GOOD.replace("summary = \"s\"\n", "summary = \" \"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`summary` is required"), "{e}");
        let e = parse(&GOOD.replace("notify = [\"ops\"]\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`notify` is required"), "{e}");
        let e = parse(&GOOD.replace("[\"ops\"]", "[\"pager\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("notifier \"pager\" is not defined"), "{e}");
        let e = parse(&GOOD.replace("severity = \"warning\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`severity` is required"), "{e}");
    }

    #[test]
    fn clear_must_be_on_the_healthy_side_and_unknown_keys_name_the_line() {
        assert_eq!(
            parse(&format!("{GOOD}clear = 0.8\n")).unwrap().rules[0].clear,
            0.8
        );
        let e = parse(&format!("{GOOD}clear = 0.95\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("healthy side"), "{e}");
        let e = parse(&format!("{GOOD}treshold = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("treshold") && e.contains("line"), "{e}");
    }

    #[test]
    fn builtins_fill_their_metric_and_labels() {
        let r = parse("name = \"Nginx\"\nkind = \"process_down\"\nprocess = \"nginx\"\nseverity = \"critical\"\nnotify = [\"ops\"]\nsummary = \"s\"\nrunbook = \"r\"\n").unwrap();
        assert_eq!(r.rules[0].metric, "process_up");
        assert_eq!(
            r.rules[0].labels,
            vec![("process".to_owned(), "nginx".to_owned())]
        );
        let e = parse("name = \"D\"\nkind = \"disk_full_forecast\"\nmetric = \"x\"\nseverity = \"critical\"\nnotify = [\"ops\"]\nsummary = \"s\"\nrunbook = \"r\"\n").unwrap_err().to_string();
        assert!(e.contains("watches filesystem_used_ratio"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let r = Rules::parse(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../packaging/alerts.toml"
            )),
            Path::new("/etc/nines/alerts.toml"),
        )
        .unwrap();
        assert!(r.rules.len() >= 4, "{}", r.rules.len());
        assert!(!r.mutes.is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("web-*", "web-01"));
        assert!(!glob("web-*", "db-01"));
        assert!(glob("db-?1", "db-01"));
        assert!(glob("*-0*", "web-01"));
        assert!(!glob("web", "web-01"));
    }
}
