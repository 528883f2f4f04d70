//! `nines-aggregator check-config` on files in a temporary directory: warnings for alert rules
//! on metrics nines does not produce (with the closest name), `--strict`, and every error of a
//! file reported in one run.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nines-aggregator");

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(config: &Path, strict: bool) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config");
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd.arg(config).output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A directory with a CA and server certificate, an aggregator.toml naming `alerts.toml` with
/// `extra` appended, and that rules file.
fn setup(extra: &str, rules: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = Command::new(BIN)
        .args([
            "ca",
            "init",
            "--dir",
            pki.to_str().unwrap(),
            "--san",
            "localhost",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\
             [store]\npath = \"nines.redb\"\n[alerts]\nrules = \"alerts.toml\"\n{extra}"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("alerts.toml"), rules).unwrap();
    (dir, config)
}

const NOTIFIER: &str =
    "[[notifiers]]\nname = \"ops\"\nwebhook = { url = \"http://127.0.0.1:9/\" }\n";

fn rule(name: &str, metric: &str) -> String {
    format!(
        "\n[[rules]]\nname = \"{name}\"\nmetric = \"{metric}\"\nop = \">\"\nthreshold = 0.9\n\
         window = \"5m\"\nseverity = \"warning\"\nnotify = [\"ops\"]\nsummary = \"s\"\nrunbook = \"r\"\n"
    )
}

#[test]
fn a_rule_on_a_misspelt_metric_warns_with_the_closest_name_and_fails_only_under_strict() {
    let rules = format!(
        "{NOTIFIER}{}{}",
        rule("cpu_ok", "cpu_usage_ratio"),
        rule("cpu_hot", "cpu_usage_ration")
    );
    let (dir, config) = setup("", &rules);
    let out = check(&config, false);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // The second rule's metric is on line 18, its value at column 10.
    let alerts = dir.path().join("alerts.toml");
    let want = format!(
        "warning: {}:18:10: alert rule \"cpu_hot\": metric \"cpu_usage_ration\" is not produced by nines or configured here; did you mean \"cpu_usage_ratio\"?",
        alerts.display()
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    assert!(out.stderr.contains("0 errors, 1 warning"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("warning: ").count(), 1, "{}", out.stderr);
    assert!(out.stdout.contains("ok, 2 alert rules"), "{}", out.stdout);

    let strict = check(&config, true);
    assert_eq!(strict.code, Some(64), "{}", strict.stderr);
    assert!(strict.stderr.contains(&want), "{}", strict.stderr);
}

#[test]
fn a_label_the_metric_does_not_have_is_warned_about() {
    let rules = format!(
        "{NOTIFIER}{}labels = {{ devce = \"sda\" }}\n",
        rule("busy", "disk_busy_ratio")
    );
    let (_dir, config) = setup("", &rules);
    let out = check(&config, true);
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "metric \"disk_busy_ratio\" has no label \"devce\" (only device), so the rule matches no series; did you mean \"device\"?"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn metrics_listed_as_known_and_the_built_in_kinds_are_not_warned_about() {
    let check_rule = "\n[[rules]]\nname = \"web_check\"\nkind = \"check_failed\"\ncheck = \"web\"\n\
                      severity = \"critical\"\nnotify = [\"ops\"]\nsummary = \"s\"\nrunbook = \"r\"\n";
    let rules = format!(
        "{NOTIFIER}{}{}{check_rule}",
        rule("orders", "shop_orders_total"),
        rule("backup", "backup_age_seconds")
    );
    // Unlisted, a textfile metric is warned about, with what to do since no name is close.
    let (_dir, config) = setup("", &rules);
    let out = check(&config, false);
    assert_eq!(out.code, Some(0));
    assert!(
        out.stderr.contains("metric \"shop_orders_total\" is not produced by nines or configured here; if it comes from a textfile, the push socket or remote write, list it in [check] known_metrics"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("0 errors, 2 warnings"),
        "{}",
        out.stderr
    );

    let (_dir, config) = setup(
        "[check]\nknown_metrics = [\"shop_*\", \"backup_age_seconds\"]\n",
        &rules,
    );
    let out = check(&config, true);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert!(out.stdout.contains("ok, 3 alert rules"), "{}", out.stdout);
}

#[test]
fn every_error_of_a_file_is_reported_with_its_place_and_counted() {
    let (dir, config) = setup(
        "\n[[services]]\nname = \"shop\"\ntarget_percent = 99.9\nmembers = [\"web-1\"]\nalert_rules = [\"Nope\"]\n",
        NOTIFIER,
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "key = \"pki/server.key\"\n",
        "key = \"pki/server.key\"\nmax_frame_bytes = 10\nagent_cert_days = 0\n",
    );
    text = text.replace(
        "path = \"nines.redb\"\n",
        "path = \"nines.redb\"\nchunk_points = 4\n",
    );
    std::fs::write(&config, text).unwrap();
    let out = check(&config, false);
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    let file = config.display().to_string();
    for want in [
        format!("error: {file}:5:19: [ingest] max_frame_bytes must be at least 65536"),
        format!("error: {file}:6:19: [ingest] agent_cert_days must be from 1 to 3650"),
        format!("error: {file}:9:16: [store] chunk_points = 4: use 16 to 65536"),
    ] {
        assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);
    }
    assert!(
        out.stderr
            .contains(&format!("{file}: 3 errors, 0 warnings")),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains(": ok"), "{}", out.stdout);

    // With those fixed, the service's unknown alert rule is the one error left, at its place.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_frame_bytes = 10\nagent_cert_days = 0\n", "")
        .replace("chunk_points = 4\n", "");
    std::fs::write(&config, text).unwrap();
    let out = check(&config, false);
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "error: {file}:14:16: [[services]] \"shop\" counts alert rule \"Nope\""
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 error, 0 warnings"), "{}", out.stderr);
    drop(dir);
}

#[test]
fn every_bad_service_is_named_at_its_entry() {
    let services = "\n[[services]]\nname = \"shop\"\ntarget_percent = 120.0\nmembers = [\"web-1\"]\n\
                    \n[[services]]\nname = \"api\"\ntarget_percent = 99.9\nmembers = [\"web-1\"]\n\
                    \n[[services]]\nname = \"db\"\ntarget_percent = 99.9\nmembers = [\"db-1\"]\nk = 2\n\
                    \n[[services]]\nname = \"api\"\ntarget_percent = 99.9\nmembers = [\"web-2\"]\n";
    let (_dir, config) = setup(services, NOTIFIER);
    let out = check(&config, false);
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    let file = config.display().to_string();
    for want in [
        format!("error: {file}:10:1: [[services]] \"shop\": target_percent = 120"),
        format!("error: {file}:20:1: [[services]] \"db\""),
        format!("error: {file}:27:8: [[services]] \"api\": name is used twice"),
    ] {
        assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);
    }
    assert!(
        out.stderr.contains("3 errors, 0 warnings"),
        "{}",
        out.stderr
    );
}

#[test]
fn serve_refuses_a_file_with_several_errors_naming_each() {
    let (_dir, config) = setup("", NOTIFIER);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "path = \"nines.redb\"\n",
        "path = \"nines.redb\"\nchunk_points = 4\ncache_mib = 0\n",
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chunk_points = 4: use 16 to 65536"), "{err}");
    assert!(err.contains("cache_mib must be at least 1"), "{err}");
}

/// The shipped aggregator.toml with its rules file, the commented rules uncommented, gives no
/// warning under --strict.
#[test]
fn the_shipped_examples_pass_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging");
    let pki = dir.path().join("pki");
    let out = Command::new(BIN)
        .args([
            "ca",
            "init",
            "--dir",
            pki.to_str().unwrap(),
            "--san",
            "localhost",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let uncomment = |text: &str| -> String {
        text.lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => {
                    format!("{rest}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect()
    };
    let rules = std::fs::read_to_string(root.join("alerts.toml")).unwrap();
    let rules = uncomment(&rules);
    assert!(rules.contains("name = \"NginxDown\""));
    std::fs::write(dir.path().join("alerts.toml"), rules).unwrap();
    let config = std::fs::read_to_string(root.join("aggregator.toml"))
        .unwrap()
        .replace("/etc/nines/", &format!("{}/", dir.path().display()))
        .replace("#rules = \"alerts.toml\"", "rules = \"alerts.toml\"");
    let path = dir.path().join("aggregator.toml");
    std::fs::write(&path, config).unwrap();
    let out = check(&path, true);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert!(out.stdout.contains("ok, 5 alert rules"), "{}", out.stdout);
}
