//! The collectors and the metric registry of `nines_common::metrics` (from which
//! docs/metrics.md's tables are generated) cannot drift apart.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use nines_common::metrics;

use super::{CollectConfig, Runner, registry, testing, textfile};

/// The names the collectors send over two ticks on the system under `root` (or this host),
/// with process watches and a textfile directory configured. Every label of a registered
/// metric must be one the registry lists for it.
fn emitted(root: Option<&Path>) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.prom"), "shop_orders_total 3\n").unwrap();
    let roots = match root {
        Some(r) => format!(
            "procfs = {:?}\nsysfs = {:?}\n",
            r.join("proc").display().to_string(),
            r.join("sys").display().to_string()
        ),
        None => String::new(),
    };
    let text = format!(
        "{roots}[process]\nwatch = [\"sshd\", \"nginx\", \"init\", \"systemd\", \
         {{ name = \"all\", cmdline = '.' }}]\n[textfile]\ndirectory = {:?}\n",
        dir.path().display().to_string()
    );
    let config: CollectConfig = toml::from_str(&text).unwrap();
    let mut collectors = registry(&config);
    collectors.push(Box::new(textfile::Textfile::new(&config.textfile).unwrap()));
    let mut runner = Runner::new(collectors);
    let start = Instant::now();
    let mut names = BTreeSet::new();
    for secs in 0..2 {
        let mut samples = Vec::new();
        runner.run(&testing::tick(start, secs), &mut samples);
        for s in samples {
            if let Some(m) = metrics::lookup(&s.key.name) {
                for (label, _) in &s.key.labels {
                    assert!(
                        m.labels.contains(&label.as_str()),
                        "{root:?}: {} has label {label:?}, which the registry does not list",
                        s.key.name
                    );
                }
            }
            names.insert(s.key.name);
        }
    }
    names.remove("shop_orders_total");
    names
}

#[test]
fn every_name_a_collector_sends_here_and_on_the_fixtures_is_in_the_registry() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all = BTreeSet::new();
    for root in [
        None,
        Some(fixtures.join("old")),
        Some(fixtures.join("vm")),
        Some(fixtures.join("server")),
        Some(fixtures.join("arm32/t0")),
    ] {
        let names = emitted(root.as_deref());
        assert!(names.len() > 10, "{root:?}: {names:?}");
        for n in &names {
            assert!(
                metrics::lookup(n).is_some(),
                "{root:?}: the agent sends {n:?}, which is not in nines_common::metrics \
                 (add it to its family in common/src/metrics/list/ and regenerate docs/metrics.md)"
            );
        }
        all.extend(names);
    }
    // Every collector was seen sending, so this test covers them. (CPU ratios are absent
    // when no clock tick passed between the two readings, as on a fixture.)
    for m in [
        "load_average_1m",
        "memory_used_ratio",
        "swap_used_ratio",
        "disk_busy_ratio",
        "filesystem_used_ratio",
        "network_up",
        "process_up",
        "host_uptime_seconds",
        "agent_collector_failures_total",
        "agent_textfile_series",
    ] {
        assert!(all.contains(m), "{m}");
    }
}

/// `text` up to its first inline test module. A `#[cfg(test)] mod tests;` declaration does not
/// end it: that module is a file of its own, which the walk skips.
fn outside_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        let line = rest.lines().next().unwrap_or("");
        if !(line.starts_with("mod ") && line.trim_end().ends_with(';')) {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

/// The first argument of every `.push("name", ...)` outside tests in the agent's source,
/// with its file, and that source.
fn pushed_in_source() -> (BTreeSet<(String, String)>, String) {
    fn walk(dir: &Path, out: &mut BTreeSet<(String, String)>, all: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out, all);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            // Test modules in files of their own (`tests.rs`, `registry_tests.rs`).
            if path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = outside_tests(&text);
            all.push_str(code);
            for (i, _) in code.match_indices("push(") {
                let rest = code[i + 5..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if rest[name.len()..].starts_with('"') && !name.is_empty() {
                    out.insert((name, path.display().to_string()));
                }
            }
        }
    }
    let (mut out, mut all) = (BTreeSet::new(), String::new());
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut out,
        &mut all,
    );
    (out, all)
}

#[test]
fn every_name_pushed_in_the_source_is_registered_and_every_registered_name_is_sent() {
    let (pushed, source) = pushed_in_source();
    for (name, file) in &pushed {
        assert!(
            metrics::lookup(name).is_some(),
            "{file} sends {name:?}, which is not in nines_common::metrics"
        );
    }
    for m in metrics::METRICS {
        // Pushed, or named in a table of names the collector pushes in a loop.
        assert!(
            source.contains(&format!("\"{}\"", m.name)),
            "nines_common::metrics lists {:?}, which no collector sends",
            m.name
        );
    }
}
