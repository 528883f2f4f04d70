//! `[[services]]` in the aggregator configuration: what a service is made of and when it is
//! expected to be available. Parsed with the rest of the file, checked by [`validate`].

use serde::Deserialize;

use super::schedule::{self, Schedule};

/// One `[[services]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Its name in the API and reports: letters, digits, '.', '-', '_'.
    pub name: String,
    /// Availability target, percent of scheduled time (for example 99.9).
    pub target_percent: f64,
    /// When it is expected to be available. Default 24x7 in UTC.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Host ids whose agents serve it.
    #[serde(default)]
    pub members: Vec<String>,
    /// `"all"` (default): every member is required.
    #[serde(default)]
    pub require: Option<String>,
    /// A redundant pool: available while at least `k` members are up. Excludes `require`.
    #[serde(default)]
    pub k: Option<usize>,
    /// `process_up` watch names that must run on a member for it to count as up.
    #[serde(default)]
    pub processes: Vec<String>,
    /// Alert rules (docs/alerts.md) whose firing on a member counts as that member down.
    #[serde(default)]
    pub alert_rules: Vec<String>,
    /// Whether maintenance windows are taken out of scheduled time. Default true.
    #[serde(default = "default_true")]
    pub exclude_maintenance: bool,
    /// Groups of users and the fraction of all users each carries, for manual incidents.
    #[serde(default)]
    pub share_groups: Vec<ShareGroup>,
    /// When the service's time starts to count (RFC 3339). Without it, when enough of its
    /// members were first seen to carry it (docs/design.md, "Monitored time").
    #[serde(default)]
    pub since: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `[services.schedule]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// IANA time zone the windows and holidays are read in. Default `"UTC"`.
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// Weekly windows; none means 24x7.
    #[serde(default)]
    pub weekly: Vec<WindowConfig>,
    /// Local dates (`YYYY-MM-DD`) with nothing scheduled.
    #[serde(default)]
    pub holidays: Vec<String>,
}

fn default_tz() -> String {
    "UTC".into()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            time_zone: default_tz(),
            weekly: Vec::new(),
            holidays: Vec::new(),
        }
    }
}

/// One weekly window: `{ days = ["mon", "fri"], start = "09:00", end = "17:00" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `mon` .. `sun`.
    pub days: Vec<String>,
    /// Local opening time, `HH:MM`.
    pub start: String,
    /// Local closing time, `HH:MM` (`24:00` is midnight; before `start` runs overnight).
    pub end: String,
}

/// `[[services.share_groups]]`: for example a region and the fraction of users in it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShareGroup {
    /// Its name, used as `share_group` when reporting an incident.
    pub name: String,
    /// Fraction of all users, more than 0, at most 1.
    pub share: f64,
}

impl ScheduleConfig {
    /// The schedule, or what is wrong with it.
    pub fn to_schedule(&self) -> Result<Schedule, String> {
        Ok(Schedule {
            time_zone: schedule::time_zone(&self.time_zone)?,
            weekly: self
                .weekly
                .iter()
                .map(|w| schedule::parse_window(&w.days, &w.start, &w.end))
                .collect::<Result<_, _>>()?,
            holidays: self
                .holidays
                .iter()
                .map(|d| schedule::parse_date(d))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl ServiceConfig {
    /// The service a host's own availability is about (`GET /api/v1/availability?host=H`,
    /// its automatic incidents): the host alone, 24x7 in UTC, named `host:H`.
    pub fn for_host(host: &str, target_percent: f64) -> Self {
        Self {
            name: format!("host:{host}"),
            target_percent,
            schedule: ScheduleConfig::default(),
            members: vec![host.to_owned()],
            require: None,
            k: None,
            processes: Vec::new(),
            alert_rules: Vec::new(),
            exclude_maintenance: true,
            share_groups: Vec::new(),
            since: None,
        }
    }

    /// `since`, ms UTC; `None` when not configured (or invalid, which `validate` refuses).
    pub fn since_ms(&self) -> Option<i64> {
        self.since
            .as_deref()
            .and_then(|v| crate::util::time::parse_ms("since", v).ok())
    }

    /// Members that must be up: `k`, or all of them.
    pub fn required_up(&self) -> usize {
        self.k.unwrap_or(self.members.len())
    }

    /// The share of a named group.
    pub fn share_of(&self, group: &str) -> Option<f64> {
        self.share_groups
            .iter()
            .find(|g| g.name == group)
            .map(|g| g.share)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Checks every service; the message names the service and the key.
pub fn validate(services: &[ServiceConfig]) -> Result<(), String> {
    for (i, s) in services.iter().enumerate() {
        if !valid_name(&s.name) {
            return Err(format!(
                "[[services]] name {:?}: use 1 to 128 ASCII letters, digits, '.', '-', '_'",
                s.name
            ));
        }
        let at = format!("[[services]] {:?}", s.name);
        if services[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("{at}: name is used twice"));
        }
        if !(s.target_percent > 0.0 && s.target_percent <= 100.0) {
            return Err(format!(
                "{at}: target_percent = {}: use more than 0, at most 100 (for example 99.9)",
                s.target_percent
            ));
        }
        s.schedule
            .to_schedule()
            .map_err(|e| format!("{at}: schedule: {e}"))?;
        if let Some(v) = &s.since {
            crate::util::time::parse_ms("since", v).map_err(|e| format!("{at}: {e}"))?;
        }
        for m in &s.members {
            nines_common::HostId::new(m.clone())
                .map_err(|e| format!("{at}: members: {m:?}: {e}"))?;
        }
        match (s.require.as_deref(), s.k) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{at}: give either require = \"all\" or k = N, not both"
                ));
            }
            (Some(r), None) if r != "all" => {
                return Err(format!(
                    "{at}: require = {r:?}: use \"all\", or k = N for a pool"
                ));
            }
            (None, Some(k)) if k == 0 || k > s.members.len() => {
                return Err(format!(
                    "{at}: k = {k}: use 1 to the number of members ({})",
                    s.members.len()
                ));
            }
            _ => {}
        }
        if !s.processes.is_empty() && s.members.is_empty() {
            return Err(format!(
                "{at}: processes need members to run on; add members = [\"host\"]"
            ));
        }
        if !s.alert_rules.is_empty() && s.members.is_empty() {
            return Err(format!(
                "{at}: alert_rules need members to fire on; add members = [\"host\"]"
            ));
        }
        let mut sum = 0.0;
        for g in &s.share_groups {
            if !(g.share > 0.0 && g.share <= 1.0) {
                return Err(format!(
                    "{at}: share_groups {:?}: share = {}: use more than 0, at most 1",
                    g.name, g.share
                ));
            }
            sum += g.share;
        }
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "{at}: share_groups: shares add up to {sum}, more than 1"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        services: Vec<ServiceConfig>,
    }

    fn check(text: &str) -> Result<Vec<ServiceConfig>, String> {
        let d: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&d.services)?;
        Ok(d.services)
    }

    #[test]
    fn a_business_hours_pool_parses() {
        let s = check(
            r#"
[[services]]
name = "shop"
target_percent = 99.9
members = ["web-1", "web-2", "web-3"]
k = 2
processes = ["nginx"]
[services.schedule]
time_zone = "Europe/Berlin"
weekly = [{ days = ["mon", "tue", "wed", "thu", "fri"], start = "09:00", end = "17:00" }]
holidays = ["2026-12-25"]
[[services.share_groups]]
name = "eu"
share = 0.6
"#,
        )
        .unwrap();
        assert_eq!(s[0].required_up(), 2);
        assert!(s[0].exclude_maintenance);
        assert_eq!(s[0].share_of("eu"), Some(0.6));
        assert_eq!(s[0].schedule.to_schedule().unwrap().weekly.len(), 1);
    }

    #[test]
    fn mistakes_name_the_service_and_the_key() {
        let base =
            "[[services]]\nname = \"shop\"\ntarget_percent = 99.9\nmembers = [\"a\", \"b\"]\n";
        let cases = [
            (
                "k = 3\n",
                "\"shop\": k = 3: use 1 to the number of members (2)",
            ),
            ("require = \"most\"\n", "require = \"most\""),
            ("require = \"all\"\nk = 1\n", "not both"),
            (
                "[services.schedule]\ntime_zone = \"Europe/Berln\"\n",
                "schedule: unknown time zone \"Europe/Berln\"",
            ),
            (
                "[services.schedule]\nweekly = [{ days = [\"mon\"], start = \"9\", end = \"17:00\" }]\n",
                "time \"9\"",
            ),
            (
                "[[services.share_groups]]\nname = \"eu\"\nshare = 1.5\n",
                "share = 1.5",
            ),
        ];
        for (extra, want) in cases {
            let e = check(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = check("[[services]]\nname = \"x\"\ntarget_percent = 101\n").unwrap_err();
        assert!(e.contains("target_percent = 101"), "{e}");
        let e =
            check("[[services]]\nname = \"x\"\ntarget_percent = 99\nmembrs = []\n").unwrap_err();
        assert!(e.contains("membrs"), "{e}");
    }
}
