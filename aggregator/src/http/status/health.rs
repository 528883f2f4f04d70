//! The one colour rule of the status pages: a host's or service's light is the worst of the
//! reasons its own page lists, computed here once from plain facts, so the overview tile and
//! the detail page cannot disagree.

use super::page::{AlertRow, IncidentRow, Light, Tile};
use crate::availability::config::ServiceConfig;

/// One thing the page colours, with its light.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// Its light.
    pub light: Light,
    /// In a few words: "sshd down", "no data for 5 min", "HighCpu (warning)".
    pub text: String,
}

/// A light and every reason behind it, worst first.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The worst light of the reasons (green when there are none).
    pub light: Light,
    /// What is not green, worst first; empty when all is well.
    pub reasons: Vec<Reason>,
}

impl Status {
    fn of(mut reasons: Vec<Reason>) -> Self {
        // Stable: reasons of one light keep the order they were found in.
        reasons.sort_by_key(|r| std::cmp::Reverse(r.light));
        Self {
            light: reasons.first().map_or(Light::Green, |r| r.light),
            reasons,
        }
    }

    /// The reasons in a line: "sshd down, HighCpu (warning)", or "ok".
    pub fn why(&self) -> String {
        if self.reasons.is_empty() {
            return "ok".to_owned();
        }
        self.reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The tile that shows it.
    pub fn tile(&self, name: &str, href: String, month: Option<(f64, f64)>) -> Tile {
        Tile {
            name: name.to_owned(),
            href,
            light: self.light,
            why: self.why(),
            month,
        }
    }
}

fn reason(light: Light, text: impl Into<String>) -> Reason {
    Reason {
        light,
        text: text.into(),
    }
}

/// What is known now about one host: everything its page shows a colour for.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    /// The host id.
    pub host: String,
    /// Its sampling interval (ms).
    pub interval_ms: i64,
    /// Its newest sample (ms; 0 or less: none yet).
    pub last_sample_ms: i64,
    /// The maintenance window it is in, if any.
    pub maintenance: Option<String>,
    /// Each watched process with its newest `process_up` (1 runs, 0 does not).
    pub processes: Vec<(String, f64)>,
    /// Each check with its newest `check_status` (0 ok, 1 warning, 2 critical, 3 unknown).
    pub checks: Vec<(String, f64)>,
    /// Its firing alerts (threshold, process, disk forecast, check, host down).
    pub alerts: Vec<AlertRow>,
    /// Its newest sample is its agent's goodbye: it was stopped cleanly.
    pub stopped: bool,
}

impl HostFacts {
    /// Whether its newest sample is older than three intervals at `now` (the availability
    /// model's "down").
    pub fn stale(&self, now: i64) -> bool {
        self.last_sample_ms > 0
            && now - self.last_sample_ms
                > crate::availability::gaps::DOWN_AFTER_INTERVALS * self.interval_ms.max(1000)
    }

    /// Whether `process` was last seen not running.
    pub fn process_down(&self, process: &str) -> bool {
        self.processes.iter().any(|(p, v)| p == process && *v < 0.5)
    }
}

/// A host's status: no data, stale data, processes down, checks failing, firing alerts. In a
/// maintenance window everything is grey (expected), the reasons still listed.
pub fn host_status(h: &HostFacts, now: i64) -> Status {
    let mut reasons = Vec::new();
    let stopped = h.stale(now) && h.stopped;
    if h.last_sample_ms <= 0 {
        reasons.push(reason(Light::Grey, "no data yet"));
    } else if stopped {
        // A clean stop: not monitored, not down (docs/design.md, "Monitored time").
        reasons.push(reason(
            Light::Grey,
            format!(
                "agent stopped {} ago: not monitored",
                super::page::duration(now - h.last_sample_ms)
            ),
        ));
    } else if h.stale(now) {
        reasons.push(reason(
            Light::Red,
            format!(
                "no data for {}",
                super::page::duration(now - h.last_sample_ms)
            ),
        ));
    }
    for (p, v) in h.processes.iter().filter(|_| !stopped) {
        if *v < 0.5 {
            reasons.push(reason(Light::Red, format!("{p} down")));
        }
    }
    for (c, v) in h.checks.iter().filter(|_| !stopped) {
        // The plugin's exit code: 0 ok, 1 warning, 2 critical, 3 (or anything else) unknown.
        let (light, word) = match v.round() as i64 {
            0 => continue,
            1 => (Light::Amber, "warning"),
            2 => (Light::Red, "critical"),
            _ => (Light::Amber, "unknown"),
        };
        reasons.push(reason(light, format!("check {c} {word}")));
    }
    for a in &h.alerts {
        let (light, word) = if a.critical {
            (Light::Red, "critical")
        } else {
            (Light::Amber, "warning")
        };
        reasons.push(reason(light, format!("{} ({word})", a.name)));
    }
    if let Some(m) = &h.maintenance {
        for r in &mut reasons {
            r.light = Light::Grey;
        }
        reasons.insert(0, reason(Light::Grey, format!("maintenance: {m}")));
    }
    // Grey only when nothing else is known: a host in maintenance or without data is not
    // "green" either.
    let mut s = Status::of(reasons);
    if s.reasons.iter().all(|r| r.light == Light::Grey) && !s.reasons.is_empty() {
        s.light = Light::Grey;
    }
    s
}

/// A service's status from its members' facts and statuses and its open incidents: red while
/// fewer members serve it than it requires (a member down, a required process not running, a
/// listed alert rule firing) or an incident is open; amber while a member is red or amber but
/// the service still runs; grey when it has no members or they all are grey.
pub fn service_status(
    svc: &ServiceConfig,
    members: &[(&HostFacts, &Status)],
    open: &[IncidentRow],
    now: i64,
) -> Status {
    let mut reasons = Vec::new();
    let mut serving = 0;
    let mut unknown = Vec::new();
    let mut causes = Vec::new();
    for m in &svc.members {
        let Some((facts, _)) = members.iter().find(|(f, _)| &f.host == m) else {
            causes.push(format!("{m}: no data ever"));
            continue;
        };
        if facts.stale(now) && facts.stopped {
            unknown.push(format!("{m}: agent stopped, not monitored"));
            continue;
        }
        let mut mine = Vec::new();
        if facts.last_sample_ms <= 0 {
            mine.push(format!("{m}: no data yet"));
        } else if facts.stale(now) {
            mine.push(format!("{m} down"));
        }
        for p in svc.processes.iter().filter(|p| facts.process_down(p)) {
            mine.push(format!("{p} not running on {m}"));
        }
        for r in &svc.alert_rules {
            if facts.alerts.iter().any(|a| &a.name == r) {
                mine.push(format!("alert {r} firing on {m}"));
            }
        }
        if mine.is_empty() {
            serving += 1;
        }
        causes.extend(mine);
    }
    let in_maintenance =
        !members.is_empty() && members.iter().all(|(f, _)| f.maintenance.is_some());
    if svc.members.is_empty() {
        reasons.push(reason(Light::Grey, "no members"));
    } else if serving < svc.required_up() && serving + unknown.len() >= svc.required_up() {
        // Up or not depends on members whose agents were stopped: not monitored.
        reasons.extend(unknown.iter().map(|c| reason(Light::Grey, c.clone())));
    } else if serving < svc.required_up() {
        let light = if in_maintenance {
            Light::Grey
        } else {
            Light::Red
        };
        reasons.extend(causes.iter().map(|c| reason(light, c.clone())));
    }
    // The live state already says what an open automatic incident says; an incident still
    // open after the data recovered (or a manual one) is red on its own.
    if reasons.is_empty() {
        for i in open {
            reasons.push(reason(Light::Red, format!("open incident: {}", i.title)));
        }
    }
    for (f, st) in members {
        if matches!(st.light, Light::Red | Light::Amber) {
            reasons.push(reason(Light::Amber, format!("{}: {}", f.host, st.why())));
        }
    }
    if reasons.is_empty()
        && !members.is_empty()
        && members.iter().all(|(_, s)| s.light == Light::Grey)
    {
        reasons.push(reason(
            Light::Grey,
            members.first().map(|(_, s)| s.why()).unwrap_or_default(),
        ));
    }
    Status::of(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn facts(host: &str) -> HostFacts {
        HostFacts {
            stopped: false,
            host: host.into(),
            interval_ms: 1000,
            last_sample_ms: NOW - 500,
            maintenance: None,
            processes: vec![("nginx".into(), 1.0)],
            checks: Vec::new(),
            alerts: Vec::new(),
        }
    }

    fn service(processes: &[&str]) -> ServiceConfig {
        let text = format!(
            "name = \"shop\"\ntarget_percent = 99.9\nmembers = [\"web-1\", \"web-2\"]\nk = 1\nprocesses = {processes:?}\n"
        );
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_host_whose_watched_process_is_down_is_red_and_says_so() {
        let mut h = facts("web-1");
        assert_eq!(host_status(&h, NOW).light, Light::Green);
        assert_eq!(host_status(&h, NOW).why(), "ok");
        h.processes.push(("sshd".into(), 0.0));
        let s = host_status(&h, NOW);
        assert_eq!(s.light, Light::Red);
        assert_eq!(s.why(), "sshd down");
        h.checks.push(("tls".into(), 1.0));
        assert_eq!(host_status(&h, NOW).why(), "sshd down, check tls warning");
        h.maintenance = Some("kernel update".into());
        let s = host_status(&h, NOW);
        assert_eq!(s.light, Light::Grey);
        assert!(
            s.why().starts_with("maintenance: kernel update"),
            "{}",
            s.why()
        );
    }

    #[test]
    fn stale_data_is_red_and_no_data_is_grey() {
        let mut h = facts("web-1");
        h.last_sample_ms = NOW - 4_000;
        assert_eq!(host_status(&h, NOW).light, Light::Red);
        h.last_sample_ms = 0;
        assert_eq!(host_status(&h, NOW).light, Light::Grey);
    }

    #[test]
    fn a_host_whose_agent_said_goodbye_is_grey_not_monitored() {
        let mut h = facts("web-1");
        h.last_sample_ms = NOW - 60_000;
        h.processes[0].1 = 0.0;
        h.stopped = true;
        let s = host_status(&h, NOW);
        assert_eq!(s.light, Light::Grey, "{s:?}");
        assert_eq!(s.why(), "agent stopped 1 min ago: not monitored");
        // Both members of a 1-of-2 pool stopped: the service is not monitored either.
        let svc = service(&[]);
        let mut b = h.clone();
        b.host = "web-2".into();
        let (sa, sb) = (host_status(&h, NOW), host_status(&b, NOW));
        let st = service_status(&svc, &[(&h, &sa), (&b, &sb)], &[], NOW);
        assert_eq!(st.light, Light::Grey, "{st:?}");
        // Without the goodbye the same silence is red.
        h.stopped = false;
        assert_eq!(host_status(&h, NOW).light, Light::Red);
    }

    #[test]
    fn a_service_is_red_only_when_too_few_members_serve_it() {
        let svc = service(&["nginx"]);
        let mut a = facts("web-1");
        let b = facts("web-2");
        a.processes.push(("sshd".into(), 0.0));
        let (sa, sb) = (host_status(&a, NOW), host_status(&b, NOW));
        let s = service_status(&svc, &[(&a, &sa), (&b, &sb)], &[], NOW);
        assert_eq!(s.light, Light::Amber, "{s:?}");
        assert_eq!(s.why(), "web-1: sshd down");
        a.processes[0].1 = 0.0;
        let mut b = b;
        b.processes[0].1 = 0.0;
        let (sa, sb) = (host_status(&a, NOW), host_status(&b, NOW));
        let s = service_status(&svc, &[(&a, &sa), (&b, &sb)], &[], NOW);
        assert_eq!(s.light, Light::Red);
        assert!(
            s.why()
                .starts_with("nginx not running on web-1, nginx not running on web-2")
        );
    }
}
