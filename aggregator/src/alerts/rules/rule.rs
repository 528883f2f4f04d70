//! One `[[rules]]` entry: its kind, condition, severity and notifiers as written, the
//! validated [`Rule`] the engine runs, the validation between them, and host globs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::grouping::Grouping;
use super::notifier::NotifierConfig;

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
pub(super) struct RuleConfig {
    pub(super) name: String,
    #[serde(default = "default_kind")]
    pub(super) kind: Kind,
    pub(super) metric: Option<String>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    #[serde(default = "any_host")]
    pub(super) hosts: String,
    #[serde(default = "default_agg")]
    pub(super) agg: Agg,
    #[serde(default, with = "humantime_serde")]
    pub(super) window: Option<Duration>,
    pub(super) op: Option<Op>,
    pub(super) threshold: Option<f64>,
    pub(super) clear: Option<f64>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub(super) for_: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) keep_firing_for: Option<Duration>,
    pub(super) intervals: Option<u32>,
    pub(super) process: Option<String>,
    pub(super) check: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(super) horizon: Option<Duration>,
    pub(super) severity: Option<Severity>,
    #[serde(default)]
    pub(super) notify: Vec<String>,
    pub(super) summary: Option<String>,
    pub(super) runbook: Option<String>,
    pub(super) group_by: Option<Vec<String>>,
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

pub(super) fn validate_rule(
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
