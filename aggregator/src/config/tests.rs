//! The shipped example configuration, the defaults it documents, and every validation
//! error at its key.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::api::default_api_listen;
use super::ingest::default_ingest_listen;
use super::store::default_store_path;
use super::*;
use crate::store::StoreOptions;

#[test]
fn the_shipped_example_parses_with_its_documented_defaults() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/aggregator.toml"
    ));
    let c = Config::parse(text, Path::new("/etc/nines/aggregator.toml")).unwrap();
    assert_eq!(c.ingest.listen, default_ingest_listen());
    assert_eq!(c.api.listen, default_api_listen());
    assert_eq!(c.store.path, default_store_path());
    assert_eq!(c.ingest.max_frame_bytes, 4 * 1024 * 1024);
    assert_eq!(c.api.tokens.len(), 1);
    assert_eq!(c.api.tokens[0].role, Role::Read);
    assert_eq!(c.store.options(), StoreOptions::default());

    // The commented store defaults, uncommented, are the defaults.
    let mut uncommented = String::new();
    for line in text.lines() {
        let store_key = [
            "#chunk_points",
            "#max_frame_bytes",
            "#max_connections",
            "#handshake_timeout",
            "#header_read_timeout",
            "#idle_timeout",
            "#max_series_per_host",
            "#max_point_age",
            "#max_future",
            "#head_max_age",
            "#cache_mib",
            "#raw",
            "#rollup_",
            "#query_",
            "#startup_grace",
        ]
        .iter()
        .any(|k| line.starts_with(k));
        uncommented.push_str(if store_key { &line[1..] } else { line });
        uncommented.push('\n');
    }
    let u = Config::parse(&uncommented, Path::new("/etc/nines/aggregator.toml")).unwrap();
    assert_eq!(u.store, c.store);
    assert_eq!(u.ingest, c.ingest);
    assert_eq!(u.api, c.api);
    assert_eq!(u.alerts, c.alerts);
    assert_eq!(c.alerts.startup_grace, Duration::from_secs(60));
    assert_eq!(c.ingest.limits(), crate::ingest::Limits::default());
    assert_eq!(c.api.limits(), crate::http::serve::Limits::default());
    assert_eq!(
        u.api.query_limits(),
        crate::http::prom::limits::QueryLimits::default()
    );
    assert!(c.services.is_empty());

    // The commented service example, uncommented (without the k that excludes require),
    // is a valid service.
    let services: String = text
        .lines()
        .skip_while(|l| !l.starts_with("#[[services]]"))
        .filter(|l| l.starts_with('#') && !l.starts_with("# ") && !l.starts_with("#k ="))
        .map(|l| format!("{}\n", &l[1..]))
        .collect();
    let s = Config::parse(
        &format!("[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{services}"),
        Path::new("a.toml"),
    )
    .unwrap();
    assert_eq!(s.services.len(), 1);
    assert_eq!(s.services[0].required_up(), 3);
    assert!(s.services[0].exclude_maintenance);
}

#[test]
fn query_limits_outside_their_ranges_are_refused_by_name() {
    let base = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[api]\n";
    for bad in [
        "query_max_matchers = 0",
        "query_max_regex_bytes = 0",
        "query_concurrency = 0",
        "query_timeout = \"10ms\"",
        "query_timeout = \"1h\"",
    ] {
        let e = Config::parse(&format!("{base}{bad}\n"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.toml") && e.contains("query limits"),
            "{bad}: {e}"
        );
    }
    let c = Config::parse(
        &format!("{base}query_max_matchers = 8\nquery_timeout = \"2s\"\n"),
        Path::new("a.toml"),
    )
    .unwrap();
    assert_eq!(c.api.query_limits().parse.max_matchers, 8);
    assert_eq!(c.api.query_limits().timeout, Duration::from_secs(2));
}

#[test]
fn the_commented_api_tls_example_parses() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/aggregator.toml"
    ));
    let path = Path::new("/etc/nines/aggregator.toml");
    assert_eq!(Config::parse(text, path).unwrap().api.tls(), None);
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(k) if k.starts_with("tls_") || k.starts_with("client_ca") => k,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let tls = Config::parse(&uncommented, path)
        .unwrap()
        .api
        .tls()
        .unwrap();
    assert_eq!(tls.cert, Path::new("/etc/nines/api/cert.pem"));
    assert_eq!(tls.key, Path::new("/etc/nines/api/key.pem"));
    assert_eq!(
        tls.client_ca.as_deref(),
        Some(Path::new("/etc/nines/api/clients.pem"))
    );
}

#[test]
fn the_commented_remote_write_example_parses_with_its_documented_defaults() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/aggregator.toml"
    ));
    assert!(
        Config::parse(text, Path::new("/etc/nines/aggregator.toml"))
            .unwrap()
            .remote_write
            .is_none()
    );
    let section: String = text
        .lines()
        .skip_while(|l| !l.starts_with("#[remote_write]"))
        .filter(|l| l.starts_with('#') && !l.starts_with("# "))
        .map(|l| format!("{}\n", &l[1..]))
        .collect();
    let c = Config::parse(
        &format!("[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{section}"),
        Path::new("/etc/nines/aggregator.toml"),
    )
    .unwrap();
    let rw = c.remote_write.unwrap();
    assert_eq!(rw.url, "http://127.0.0.1:9090/api/v1/write");
    assert_eq!(rw.headers["X-Scope-OrgID"], "ops");
    assert_eq!(rw.queue_max_mib, 1024);
    assert_eq!(rw.max_samples_per_send, 2000);
    assert_eq!(rw.timeout, Duration::from_secs(30));
    assert_eq!(rw.max_backoff, Duration::from_secs(30));
    // The default queue directory is beside the default store file.
    assert_eq!(
        rw.queue_dir.unwrap(),
        default_store_path().parent().unwrap().join("remote_write")
    );
    assert!(rw.tls.ca.is_some() && rw.tls.cert.is_some());

    let head = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[remote_write]\n";
    for (text, want) in [
        ("url = \"ftp://x\"\n", "http:// or https://"),
        (
            "url = \"http://x\"\nheaders = { \"Content-Type\" = \"x\" }\n",
            "set by nines",
        ),
        (
            "url = \"http://x\"\n[remote_write.tls]\ncert = \"c.pem\"\n",
            "cert and key go together",
        ),
        (
            "url = \"http://x\"\nmax_samples_per_send = 0\n",
            "max_samples_per_send",
        ),
    ] {
        let e = Config::parse(&format!("{head}{text}"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn store_options_out_of_range_are_refused_with_the_rule() {
    let head = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n";
    let cases = [
        (
            "[store]\nchunk_points = 4\n",
            "chunk_points = 4: use 16 to 65536",
        ),
        (
            "[store]\nhead_max_age = \"2d\"\n",
            "head_max_age must be from 1m to 24h",
        ),
        (
            "[store.retention]\nraw = \"100d\"\n",
            "raw <= rollup_1m <= rollup_1h",
        ),
        (
            "[store.retention]\nraw = \"10m\"\n",
            "raw must be at least 1h",
        ),
        ("[store.retention]\nraw = \"ten days\"\n", "raw"),
    ];
    for (text, want) in cases {
        let e = Config::parse(&format!("{head}{text}"), Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config a.toml:") && e.contains(want),
            "{text}: {e}"
        );
    }
}

#[test]
fn a_service_counting_an_undefined_alert_rule_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alerts.toml"),
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/alerts.toml"
        )),
    )
    .unwrap();
    let text = |rule: &str| {
        format!(
            "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[alerts]\nrules = \"alerts.toml\"\n\
                 [[services]]\nname = \"shop\"\ntarget_percent = 99.9\nmembers = [\"web-1\"]\nalert_rules = [\"{rule}\"]\n"
        )
    };
    let path = dir.path().join("aggregator.toml");
    let ok = Config::parse(&text("HighCpu"), &path).unwrap();
    assert_eq!(ok.load_rules().unwrap().rules.len(), 4);
    let bad = Config::parse(&text("Typo"), &path).unwrap();
    let e = bad.load_rules().unwrap_err().to_string();
    assert!(
        e.contains("alerts.toml") && e.contains("counts alert rule \"Typo\""),
        "{e}"
    );
}

#[test]
fn every_problem_is_reported_each_at_its_key() {
    let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\nmax_future = \"2d\"\n\
                    [api]\ntls_cert = \"api.pem\"\nquery_concurrency = 0\n[alerts]\nstartup_grace = \"2h\"\n";
    let e = Config::parse(text, Path::new("a.toml")).unwrap_err();
    let found: Vec<String> = e.diagnostics().iter().map(|d| d.to_string()).collect();
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        found[0].starts_with("a.toml:5:14: [ingest] max_future"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("a.toml:7:12: [api] tls_cert is set")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|d| d.contains("[api] query limits")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("a.toml:10:17: [alerts] startup_grace")),
        "{found:?}"
    );
    // serve prints every one, a line each.
    assert_eq!(e.to_string().lines().count(), 4, "{e}");
}

#[test]
fn unknown_keys_and_bad_values_name_file_line_and_key() {
    let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\nlisten = \"nowhere\"\n";
    let e = Config::parse(text, Path::new("/etc/nines/aggregator.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/etc/nines/aggregator.toml"), "{e}");
    assert!(e.contains("line 5"), "{e}");
    assert!(e.contains("listen"), "{e}");

    let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[store]\npaht = \"x\"\n";
    let e = Config::parse(text, Path::new("a.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 6") && e.contains("paht"), "{e}");

    let text = "[ingest]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[[api.tokens]]\nname = \"x\"\nsha256 = \"secret\"\n";
    let e = Config::parse(text, Path::new("a.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("64 lower-case hex"), "{e}");
}
