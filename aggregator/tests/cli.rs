//! The `nines-aggregator` binary as a sysadmin meets it: bad configs, the CA commands.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nines-aggregator");

#[test]
fn a_bad_config_exits_64_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aggregator.toml");
    std::fs::write(
        &path,
        "[ingest]\nca = \"ca.pem\"\ncert = \"s.pem\"\nkey = \"s.key\"\n\n[store]\npaht = \"x.redb\"\n",
    )
    .unwrap();
    for args in [
        vec!["check-config", path.to_str().unwrap()],
        vec!["serve", "--config", path.to_str().unwrap()],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("paht"), "{err}");
    }
}

#[test]
fn ca_init_and_issue_write_certificates_the_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    let out = run(&[
        "ca",
        "init",
        "--dir",
        pki.to_str().unwrap(),
        "--san",
        "agg.example.net",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "ca",
        "issue",
        "--dir",
        pki.to_str().unwrap(),
        "--host",
        "web-1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Short-lived like enrolled certificates (docs/security.md): 30 days unless --days says.
    let pem = std::fs::read(pki.join("agents/web-1.pem")).unwrap();
    let der = nines_common::tls::parse_certs(&pem, "agent").unwrap();
    let (not_before, not_after) = nines_common::tls::cert_validity(der[0].as_ref()).unwrap();
    let days = (not_after - not_before) as f64 / 86_400.0;
    assert!((29.9..30.1).contains(&days), "{days} days");
    for key in ["ca.key", "server.key", "agents/web-1.key"] {
        let mode = std::fs::metadata(pki.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    // Running init again must not destroy the CA.
    let out = run(&["ca", "init", "--dir", pki.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // A bad host id is refused before anything is written.
    let out = run(&[
        "ca",
        "issue",
        "--dir",
        pki.to_str().unwrap(),
        "--host",
        "../etc",
    ]);
    assert_eq!(out.status.code(), Some(64));

    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        "[ingest]\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n",
    )
    .unwrap();
    let out = run(&["check-config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Under a descriptor limit that cannot hold both ports' connections, check-config says
    // so and by how much the limits are lowered.
    let out = Command::new("prlimit")
        .arg("--nofile=4096:4096")
        .arg(BIN)
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning: descriptors: limit 4096 does not hold [ingest] max_connections 16384 + [api] max_connections 1024")
            && text.contains("lowered to 3614 and 226"),
        "{text}"
    );
}

#[test]
fn token_new_prints_a_token_whose_hash_is_the_config_entry() {
    let out = Command::new(BIN)
        .args(["token", "new", "--name", "grafana"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap();
    let hash = nines_aggregator::http::token_hash(token);
    assert!(text.contains(&format!("sha256 = \"{hash}\"")), "{text}");
    assert!(text.contains("name = \"grafana\""));
}
