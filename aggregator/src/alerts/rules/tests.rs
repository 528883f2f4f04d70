//! The shipped example rules, and files the parser refuses with the reason.

#![allow(clippy::unwrap_used)]

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
