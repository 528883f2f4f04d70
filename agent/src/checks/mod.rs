//! Service checks: Nagios-compatible plugins and built-in TCP and HTTP probes, each on its own
//! interval, their latest results sampled at every tick by the [`Checks`] collector.
//!
//! A check runs in its own tokio task; the tick never waits for a plugin. The metrics are
//! `check_status{check}` (0 ok, 1 warning, 2 critical, 3 unknown), `check_duration_seconds{check}`
//! and `check_perfdata{check,label,uom}`. The plugin's first output line cannot be a sample (a
//! sample is a number): it is logged when the status changes.

pub mod builtin;
pub mod perfdata;
pub mod plugin;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::collect::{CollectError, Collector, Out, Tick};
use builtin::HttpTarget;
pub use builtin::HttpUrlError;
use perfdata::PerfData;

fn default_check_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One `[[checks]]` entry of the agent configuration: a name and exactly one of `command`,
/// `tcp` or `http`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// The `check` label of its metrics; unique.
    pub name: String,
    /// A Nagios plugin and its arguments, run without a shell.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Built-in: connect to `host:port`.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Built-in: `GET http://...`, ok on 2xx and 3xx.
    #[serde(default)]
    pub http: Option<String>,
    /// Time between runs. Default 60 s.
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// A run still going after this is killed (with its process group) and is unknown.
    /// Default 10 s; at most the interval.
    #[serde(default = "default_check_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// What a check runs, validated.
#[derive(Debug, Clone, PartialEq)]
enum Probe {
    Command(Vec<String>),
    Tcp(String),
    Http(HttpTarget),
}

impl CheckConfig {
    fn probe(&self) -> Result<Probe, CheckProblem> {
        match (&self.command, &self.tcp, &self.http) {
            (Some(argv), None, None) => match argv.first() {
                Some(program) if !program.is_empty() => Ok(Probe::Command(argv.clone())),
                _ => Err(CheckProblem::EmptyCommand),
            },
            (None, Some(address), None) => {
                if crate::net::split_host_port(address).is_none() {
                    return Err(CheckProblem::TcpAddress(address.clone()));
                }
                Ok(Probe::Tcp(address.clone()))
            }
            (None, None, Some(url)) => Ok(Probe::Http(HttpTarget::parse(url)?)),
            (None, None, None) => Err(CheckProblem::NothingToRun),
            _ => Err(CheckProblem::MoreThanOne),
        }
    }
}

/// A `[[checks]]` entry that cannot be used, and which one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[[checks]] entry {} (name = {name:?}): {problem}", .index + 1)]
pub struct CheckConfigError {
    /// Which entry, counted from 0 (the message counts from 1).
    pub index: usize,
    /// The entry's name.
    pub name: String,
    /// What is wrong with it.
    pub problem: CheckProblem,
}

/// What is wrong with one `[[checks]]` entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckProblem {
    /// The name is empty, too long or has control characters.
    #[error("name must be 1 to 200 characters without control characters")]
    Name,
    /// An earlier entry has the same name.
    #[error("another check has this name; names must be unique")]
    Duplicate,
    /// `command = []` or a command whose program is empty.
    #[error(
        "command is empty: give the plugin's path first, then its arguments, e.g. \
         [\"/usr/lib/nagios/plugins/check_load\", \"-w\", \"5\", \"-c\", \"10\"]"
    )]
    EmptyCommand,
    /// `tcp` is not `host:port`.
    #[error("tcp = {0:?} is not \"host:port\"")]
    TcpAddress(String),
    /// `http` is not a URL the built-in check can fetch.
    #[error(transparent)]
    Http(#[from] HttpUrlError),
    /// None of `command`, `tcp` and `http`.
    #[error(
        "says nothing to run: give one of command = [...], tcp = \"host:port\" or \
         http = \"http://...\""
    )]
    NothingToRun,
    /// More than one of `command`, `tcp` and `http`.
    #[error("has more than one of command, tcp and http: give exactly one")]
    MoreThanOne,
    /// `interval` under a second.
    #[error("interval must be at least 1s")]
    Interval,
    /// `timeout` zero or longer than the interval.
    #[error("timeout = {timeout:?} must be more than 0 and at most the interval ({interval:?})")]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
        /// The configured interval.
        interval: Duration,
    },
}

/// Checks the `[[checks]]` entries: the first problem, naming the entry.
pub fn validate(checks: &[CheckConfig]) -> Result<(), CheckConfigError> {
    let mut names = HashSet::new();
    for (index, check) in checks.iter().enumerate() {
        let error = |problem| CheckConfigError {
            index,
            name: check.name.clone(),
            problem,
        };
        if check.name.is_empty() || check.name.len() > 200 || check.name.contains(char::is_control)
        {
            return Err(error(CheckProblem::Name));
        }
        if !names.insert(check.name.as_str()) {
            return Err(error(CheckProblem::Duplicate));
        }
        check.probe().map_err(error)?;
        if check.interval < Duration::from_secs(1) {
            return Err(error(CheckProblem::Interval));
        }
        if check.timeout.is_zero() || check.timeout > check.interval {
            return Err(error(CheckProblem::Timeout {
                timeout: check.timeout,
                interval: check.interval,
            }));
        }
    }
    Ok(())
}

/// A check's state, as Nagios numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0.
    Ok = 0,
    /// 1.
    Warning = 1,
    /// 2.
    Critical = 2,
    /// 3: the plugin said so, exited with another code, was killed, timed out or could not be
    /// started.
    Unknown = 3,
}

impl Status {
    /// The status a plugin's exit code means; `None` (killed by a signal) and codes other than
    /// 0 to 3 are unknown.
    pub fn from_exit(code: Option<i32>) -> Self {
        match code {
            Some(0) => Self::Ok,
            Some(1) => Self::Warning,
            Some(2) => Self::Critical,
            _ => Self::Unknown,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Unknown => "unknown",
        }
    }
}

/// The result of one run of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its status.
    pub status: Status,
    /// Wall time of the run.
    pub duration: Duration,
    /// The first output line, without performance data.
    pub summary: String,
    /// Performance data.
    pub perfdata: Vec<PerfData>,
}

/// Runs one check once.
async fn run_probe(probe: &Probe, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let (status, summary, perfdata) = match probe {
        Probe::Command(argv) => match plugin::run(argv, timeout).await {
            plugin::Ended::Exited {
                status,
                stdout,
                stderr,
            } => {
                let mut output = perfdata::parse_output(&stdout);
                if output.summary.is_empty() {
                    output.summary = stderr.lines().next().unwrap_or("(no output)").to_owned();
                }
                (
                    Status::from_exit(status.code()),
                    output.summary,
                    output.perfdata,
                )
            }
            plugin::Ended::TimedOut => (
                Status::Unknown,
                format!("timed out after {timeout:?}; its process group was killed"),
                Vec::new(),
            ),
            plugin::Ended::Spawn(e) => (
                Status::Unknown,
                format!("cannot run {:?}: {e}", argv[0]),
                Vec::new(),
            ),
        },
        Probe::Tcp(address) => probe_result(builtin::tcp(address, timeout).await),
        Probe::Http(target) => probe_result(builtin::http(target, timeout).await),
    };
    Outcome {
        status,
        duration: started.elapsed(),
        summary,
        perfdata,
    }
}

fn probe_result(p: builtin::Probe) -> (Status, String, Vec<PerfData>) {
    let perf = p
        .time
        .map(|t| PerfData {
            label: "time".to_owned(),
            value: t.as_secs_f64(),
            uom: "s".to_owned(),
            warn: None,
            crit: None,
            min: Some(0.0),
            max: None,
        })
        .into_iter()
        .collect();
    (p.status, p.summary, perf)
}

/// Runs one configured check once, for `nines-agent` commands and tests.
pub async fn run_once(check: &CheckConfig) -> Result<Outcome, CheckProblem> {
    Ok(run_probe(&check.probe()?, check.timeout).await)
}

type Latest = Arc<Mutex<Vec<Option<Outcome>>>>;

/// The collector of check results; owns the checks' tasks, which stop (and kill any running
/// plugin's group) when it is dropped.
pub struct Checks {
    names: Vec<String>,
    latest: Latest,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks")
            .field("names", &self.names)
            .finish()
    }
}

impl Checks {
    /// Starts one task per check on the current tokio runtime. The checks must have passed
    /// [`validate`]; an entry that did not is skipped.
    pub fn start(checks: &[CheckConfig]) -> Self {
        let latest: Latest = Arc::new(Mutex::new(vec![None; checks.len()]));
        let mut tasks = Vec::new();
        for (i, check) in checks.iter().enumerate() {
            let Ok(probe) = check.probe() else { continue };
            let (name, interval, timeout) = (check.name.clone(), check.interval, check.timeout);
            let latest = latest.clone();
            tasks.push(tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_status = None;
                loop {
                    ticks.tick().await;
                    let outcome = run_probe(&probe, timeout).await;
                    if last_status != Some(outcome.status) {
                        log_change(&name, &outcome);
                        last_status = Some(outcome.status);
                    }
                    let mut latest = nines_common::util::sync::lock(&latest);
                    latest[i] = Some(outcome);
                }
            }));
        }
        Self {
            names: checks.iter().map(|c| c.name.clone()).collect(),
            latest,
            tasks,
        }
    }
}

fn log_change(name: &str, outcome: &Outcome) {
    let status = outcome.status.word();
    if outcome.status == Status::Ok {
        tracing::info!(
            check = name,
            status,
            "check {name} is {status}: {}",
            outcome.summary
        );
    } else {
        tracing::warn!(
            check = name,
            status,
            "check {name} is {status}: {}",
            outcome.summary
        );
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Pushes the samples of one outcome.
pub fn push_outcome(out: &mut Out<'_>, name: &str, outcome: &Outcome) {
    let check = [("check", name)];
    out.push("check_status", &check, f64::from(outcome.status as u8));
    out.push(
        "check_duration_seconds",
        &check,
        outcome.duration.as_secs_f64(),
    );
    for p in &outcome.perfdata {
        if p.label.len() <= 1024 {
            out.push(
                "check_perfdata",
                &[("check", name), ("label", &p.label), ("uom", &p.uom)],
                p.value,
            );
        }
    }
}

impl Collector for Checks {
    fn name(&self) -> &'static str {
        "checks"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let latest = nines_common::util::sync::lock(&self.latest);
        for (name, outcome) in self.names.iter().zip(latest.iter()) {
            if let Some(outcome) = outcome {
                push_outcome(out, name, outcome);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
