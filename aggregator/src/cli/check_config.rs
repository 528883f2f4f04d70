//! `nines-aggregator check-config`: every problem of a configuration and its alert rules in
//! one run. Errors (what `serve` refuses) and warnings (what works but cannot do what it says:
//! an alert rule on a metric nobody sends), each with file, line and column where known, then
//! their count.

use std::path::Path;

use nines_common::diag::{Diagnostic, Key, Severity, summary};
use nines_common::metrics;

use super::EXIT_CONFIG;
use crate::alerts::Rules;
use crate::alerts::rules::Kind;
use crate::config::{CheckConfig, Config};

/// What a check found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Problems that make `serve` refuse the configuration.
    pub errors: Vec<Diagnostic>,
    /// Problems it accepts.
    pub warnings: Vec<Diagnostic>,
    /// What was checked and found fine, one line each, for people.
    pub notes: Vec<String>,
}

impl Outcome {
    fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }
}

/// Checks the configuration file, its certificates, and its alert rules.
pub fn check(file: &Path) -> Outcome {
    let mut out = Outcome::default();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            out.errors.push(plain(file, format!("cannot read it: {e}")));
            return out;
        }
    };
    let config = match Config::parse(&text, file) {
        Ok(c) => c,
        Err(e) => {
            out.errors.extend(e.diagnostics());
            return out;
        }
    };
    if let Err(e) = crate::server::ingest_tls(&config) {
        let keys = [Key::Name("ingest"), Key::Name("cert")];
        out.push(Diagnostic::error(file, &text, &keys, e.to_string()));
    }
    if let Err(e) = crate::server::api_tls(&config) {
        let keys = [Key::Name("api"), Key::Name("tls_cert")];
        out.push(Diagnostic::error(file, &text, &keys, e.to_string()));
    }
    let rules = match &config.alerts.rules {
        None => Some((Rules::empty(), String::new())),
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => {
                let keys = [Key::Name("alerts"), Key::Name("rules")];
                let message = format!("alert rules {}: {e}", p.display());
                out.push(Diagnostic::error(file, &text, &keys, message));
                None
            }
            Ok(rules_text) => match Rules::parse(&rules_text, p) {
                Ok(r) => Some((r, rules_text)),
                Err(e) => {
                    out.errors.push(plain(p, e.message));
                    None
                }
            },
        },
    };
    if let Some((rules, rules_text)) = &rules {
        for (i, s) in config.services.iter().enumerate() {
            for (j, r) in s.alert_rules.iter().enumerate() {
                if rules.rules.iter().any(|x| &x.name == r) {
                    continue;
                }
                let keys = [
                    Key::Name("services"),
                    Key::Index(i),
                    Key::Name("alert_rules"),
                    Key::Index(j),
                ];
                let message = format!(
                    "[[services]] {:?} counts alert rule {r:?} as down time, but no rule has that name{}",
                    s.name,
                    if config.alerts.rules.is_none() {
                        " ([alerts] rules names no file)"
                    } else {
                        ""
                    }
                );
                out.push(Diagnostic::error(file, &text, &keys, message));
            }
        }
        for w in rule_warnings(rules, rules_text, &config.check) {
            out.push(w);
        }
    }
    if !out.errors.is_empty() {
        return out;
    }
    out.notes.push(format!("{}: ok", file.display()));
    let budget = crate::util::descriptors::Budget::plan(
        crate::util::descriptors::hard_limit(),
        config.ingest.max_connections,
        config.api.max_connections,
    );
    out.notes.push(match budget.configured {
        None => budget.describe(),
        Some(_) => format!("warning: {}", budget.describe()),
    });
    let enroll = crate::pki::enroll::Enroller::new(config.enroll());
    out.notes.push(match enroll.check() {
        Ok(()) => format!(
            "enrollment and renewal: on (signing with {})",
            config.ingest.ca_key_path().display()
        ),
        Err(e) => format!("enrollment and renewal: off: {e}"),
    });
    if let (Some(p), Some((rules, _))) = (&config.alerts.rules, &rules) {
        out.notes.push(format!(
            "{}: ok, {} alert rules",
            p.display(),
            rules.rules.len()
        ));
    }
    out
}

fn plain(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_owned(),
        position: None,
        message,
    }
}

/// Warnings for alert rules that watch a metric nines does not produce and `[check]
/// known_metrics` does not name, or a label their metric does not have: such a rule never
/// fires.
pub fn rule_warnings(rules: &Rules, text: &str, check: &CheckConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, rule) in rules.rules.iter().enumerate() {
        // The built-in kinds watch fixed metrics of the registry; host_down watches none.
        if rule.kind != Kind::Threshold {
            continue;
        }
        if !check.knows(&rule.metric) {
            let literal = check
                .known_metrics
                .iter()
                .filter(|g| !g.contains(['*', '?']))
                .map(String::as_str);
            let names = metrics::METRICS
                .iter()
                .chain(metrics::DERIVED)
                .map(|m| m.name)
                .chain(literal);
            let hint = match metrics::closest_in(&rule.metric, names) {
                Some(name) => format!("did you mean {name:?}?"),
                None => "if it comes from a textfile, the push socket or remote write, \
                         list it in [check] known_metrics"
                    .to_owned(),
            };
            let message = format!(
                "alert rule {:?}: metric {:?} is not produced by nines or configured here; {hint}",
                rule.name, rule.metric
            );
            let keys = [Key::Name("rules"), Key::Index(i), Key::Name("metric")];
            out.push(Diagnostic::warning(&rules.path, text, &keys, message));
            continue;
        }
        let Some(m) = metrics::lookup(&rule.metric) else {
            continue;
        };
        for (label, _) in &rule.labels {
            if m.labels.contains(&label.as_str()) {
                continue;
            }
            let hint = match metrics::closest_in(label, m.labels.iter().copied()) {
                Some(l) => format!("; did you mean {l:?}?"),
                None => String::new(),
            };
            let has = if m.labels.is_empty() {
                "no labels".to_owned()
            } else {
                format!("only {}", m.labels.join(", "))
            };
            let keys = [
                Key::Name("rules"),
                Key::Index(i),
                Key::Name("labels"),
                Key::Name(label),
            ];
            let message = format!(
                "alert rule {:?}: metric {:?} has no label {label:?} ({has}), so the rule matches no series{hint}",
                rule.name, rule.metric
            );
            out.push(Diagnostic::warning(&rules.path, text, &keys, message));
        }
    }
    out
}

/// Flags of `check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file.
    file: std::path::PathBuf,
    /// Treat warnings as errors: exit 64 if there is any.
    #[arg(long)]
    strict: bool,
}

/// `nines-aggregator check-config`.
pub fn main(args: CheckConfigArgs) -> std::process::ExitCode {
    std::process::ExitCode::from(run(&args.file, args.strict))
}

/// Runs the check and prints it: notes to stdout; errors, warnings and their count to stderr.
/// Returns the exit status: 0 usable (warnings allowed unless `strict`), [`EXIT_CONFIG`]
/// otherwise.
pub fn run(file: &Path, strict: bool) -> u8 {
    let out = check(file);
    for n in &out.notes {
        println!("{n}");
    }
    for e in &out.errors {
        eprintln!("error: {e}");
    }
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    let failed = !out.errors.is_empty() || (strict && !out.warnings.is_empty());
    if !out.errors.is_empty() || !out.warnings.is_empty() {
        eprintln!(
            "{}: {}{}",
            file.display(),
            summary(out.errors.len(), out.warnings.len()),
            if strict && out.errors.is_empty() {
                " (--strict: warnings fail the check)"
            } else {
                ""
            }
        );
    }
    if failed { EXIT_CONFIG } else { 0 }
}
