//! Issue 9: an agent installed before its certificates exist starts, says once how to issue
//! them, and waits without exiting (systemd would otherwise restart it in a loop); once the
//! files are in place it connects on its own. `check-config` accepts such a configuration,
//! since it is the unit's `ExecStartPre`.

use std::process::Command;
use std::time::Duration;

use nines_tests::cluster::{Agent, Aggregator, Pki, log_tail};
use nines_tests::{bin, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_certificates_waits_for_them_then_connects() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;

    // The configuration names certificate files in a directory that is still empty, as the
    // packaged /etc/nines/agent.toml does on a new host.
    let host = "enroll-1";
    let mut agent = Agent::new(dir.path(), &pki, host, agg.ingest, "");
    let home = agent.config.parent().unwrap().to_owned();
    let target = home.join("pki");
    std::fs::create_dir(&target).unwrap();
    let (ca, cert, key) = (
        target.join("ca.pem"),
        target.join("agent.pem"),
        target.join("agent.key"),
    );
    let (issued_cert, issued_key) = pki.agent(host);
    let text = std::fs::read_to_string(&agent.config)
        .unwrap()
        .replace(&pki.ca().display().to_string(), &ca.display().to_string())
        .replace(
            &issued_cert.display().to_string(),
            &cert.display().to_string(),
        )
        .replace(
            &issued_key.display().to_string(),
            &key.display().to_string(),
        );
    std::fs::write(&agent.config, text).unwrap();

    let check = Command::new(bin("nines-agent"))
        .arg("check-config")
        .arg(&agent.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "check-config: {stdout}");
    assert!(
        stdout.contains("no certificates yet") && stdout.contains("ca issue"),
        "{stdout}"
    );

    agent.start();
    let hint = "nines-aggregator ca issue --dir /etc/nines/pki --host ";
    eventually(Duration::from_secs(10), || async {
        agent.log_text().contains(hint).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no enrolment hint:\n{}", log_tail(&agent.log, 20)));
    // Past the next look for the files: still running, still said once, nothing sent.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        agent.exited().is_none(),
        "the agent exited:\n{}",
        log_tail(&agent.log, 20)
    );
    let log = agent.log_text();
    assert_eq!(log.matches(hint).count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains(hint)).unwrap();
    for path in [&ca, &cert, &key] {
        assert!(line.contains(&path.display().to_string()), "{line}");
    }
    // Without `host =` in the configuration the suggested host id is the machine's name.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(line.contains(&format!("--host {}`", name.trim())), "{line}");
    assert!(agg.last_seen_ms(&client, host).await.is_none());

    // The operator copies the issued files in; the agent finds them and ships.
    std::fs::copy(pki.ca(), &ca).unwrap();
    std::fs::copy(&issued_cert, &cert).unwrap();
    std::fs::copy(&issued_key, &key).unwrap();
    eventually(Duration::from_secs(20), || async {
        agg.last_seen_ms(&client, host).await
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no data after the certificates appeared:\n{}",
            log_tail(&agent.log, 20)
        )
    });
    assert!(agent.log_text().contains("certificates found"));
    agent.stop();
    agg.stop();
}

/// Runs a command; its exit code, stdout and stderr.
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An agent configuration for `host` whose certificate files do not exist yet.
fn fresh_agent(dir: &std::path::Path, pki: &Pki, host: &str, agg: &Aggregator) -> Agent {
    let agent = Agent::new(dir, pki, host, agg.ingest, "");
    let target = agent.config.parent().unwrap().join("pki");
    let (issued_cert, issued_key) = pki.agent(host);
    let text = std::fs::read_to_string(&agent.config)
        .unwrap()
        .replace(
            &pki.ca().display().to_string(),
            &target.join("ca.pem").display().to_string(),
        )
        .replace(
            &issued_cert.display().to_string(),
            &target.join("agent.pem").display().to_string(),
        )
        .replace(
            &issued_key.display().to_string(),
            &target.join("agent.key").display().to_string(),
        );
    std::fs::write(&agent.config, format!("host = \"{host}\"\n{text}")).unwrap();
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_with_a_one_time_token_and_ships() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let host = "enroll-2";
    let mut agent = fresh_agent(dir.path(), &pki, host, &agg);
    let pki_dir = agent.config.parent().unwrap().join("pki");

    // On the aggregator: a token, printed with the command to run on the host.
    let (code, out, err) = run(Command::new(bin("nines-aggregator"))
        .args(["ca", "token", "--dir"])
        .arg(&pki.dir)
        .args(["--host", host, "--ttl", "10m", "--aggregator"])
        .arg(agg.ingest.to_string()));
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains("nines-agent enroll"))
        .unwrap_or_else(|| panic!("{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let arg = |flag: &str| {
        let i = words.iter().position(|w| *w == flag).unwrap();
        words[i + 1].to_owned()
    };
    let (token, fingerprint) = (arg("--token"), arg("--ca-fingerprint"));
    assert_eq!(arg("--aggregator"), agg.ingest.to_string());
    let (_, printed, _) = run(Command::new(bin("nines-aggregator"))
        .args(["ca", "fingerprint", "--dir"])
        .arg(&pki.dir));
    assert_eq!(printed.trim(), fingerprint);

    let enroll = |fp: &str, extra: &[&str]| {
        let mut cmd = Command::new(bin("nines-agent"));
        cmd.args(["enroll", "--config"])
            .arg(&agent.config)
            .args(["--aggregator", &agg.ingest.to_string(), "--server-name"])
            .args(["localhost", "--token", &token, "--ca-fingerprint", fp])
            .args(extra);
        run(&mut cmd)
    };

    // Pinned to another CA, the agent stops at the handshake and the token is not spent.
    let (code, _, err) = enroll(&"ab".repeat(32), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fingerprint"), "{err}");
    assert!(!pki_dir.join("agent.key").exists());

    let (code, out, err) = enroll(&fingerprint, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("enrolled as {host}")), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pki_dir.join("agent.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(pki_dir.join("ca.pem")).unwrap(),
        std::fs::read_to_string(pki.ca()).unwrap()
    );

    // Enrolling again: refused here without --force, there because the token is spent.
    let (code, _, err) = enroll(&fingerprint, &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = enroll(&fingerprint, &["--force"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("used already"), "{err}");

    agent.start();
    eventually(Duration::from_secs(20), || async {
        agg.last_seen_ms(&client, host).await
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no data from the enrolled agent:\n{}",
            log_tail(&agent.log, 20)
        )
    });
    agent.stop();
    agg.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_renews_its_certificate_and_keeps_shipping_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let host = "renew-1";
    let mut agent = Agent::new(dir.path(), &pki, host, agg.ingest, "");

    // Replace its certificate with one 20 of its 30 days old: due for renewal.
    let old = pki.reissue(host, -20, 10);
    let (cert, _) = pki.agent(host);

    let start_ms = nines_common::model::now_ms();
    agent.start();
    let renewed = agent.state_dir.join("tls/agent.pem");
    agent
        .wait_for_log(
            "reconnecting with the renewed certificate",
            Duration::from_secs(20),
        )
        .await;
    let new_pem = std::fs::read(&renewed).unwrap();
    let new_der = nines_common::tls::parse_certs(&new_pem, "renewed").unwrap();
    let (_, not_after) = nines_common::tls::cert_validity(new_der[0].as_ref()).unwrap();
    let day = 86_400;
    let now_s = start_ms / 1000;
    assert!(
        (now_s + 29 * day..now_s + 31 * day).contains(&not_after),
        "{not_after}"
    );
    // The configured files were left as they were; the key is the agent's only.
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), old);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(agent.state_dir.join("tls/agent.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The same process ships on, and reports the new expiry.
    let expiry = eventually(Duration::from_secs(20), || async {
        let series = agg
            .query(
                &client,
                host,
                "agent_certificate_expiry_timestamp_seconds",
                None,
                start_ms,
                nines_common::model::now_ms(),
            )
            .await;
        let last = series.first()?.points.last()?.1 as i64;
        (last == not_after).then_some(last)
    })
    .await;
    assert!(
        expiry.is_some(),
        "the new expiry never arrived:\n{}",
        log_tail(&agent.log, 20)
    );
    let metrics = nines_tests::get_text(&client, &format!("{}/metrics", agg.url), &agg.token)
        .await
        .unwrap();
    assert!(
        metrics.contains("nines_ingest_certificates_issued_total{kind=\"renewal\"} 1"),
        "{metrics}"
    );

    // After a restart the renewed certificate is the one in force: no second renewal.
    agent.stop();
    agent.start();
    let seen = agg.last_seen_ms(&client, host).await.unwrap();
    eventually(Duration::from_secs(20), || async {
        (agg.last_seen_ms(&client, host).await? > seen + 2000).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no data after the restart:\n{}", log_tail(&agent.log, 20)));
    let metrics = nines_tests::get_text(&client, &format!("{}/metrics", agg.url), &agg.token)
        .await
        .unwrap();
    assert!(
        metrics.contains("nines_ingest_certificates_issued_total{kind=\"renewal\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        agent
            .log_text()
            .matches("asking the aggregator to renew")
            .count(),
        1
    );
    agent.stop();
    agg.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_falling_due_on_a_lasting_connection_is_renewed_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let host = "renew-2";
    let mut agent = Agent::new(dir.path(), &pki, host, agg.ingest, "");
    // 45 s of life, 20 s gone: due in 10 s, expired in 25 s.
    pki.reissue_secs(host, -20, 25);
    agent.start();
    agent
        .wait_for_log(
            "reconnecting with the renewed certificate",
            Duration::from_secs(30),
        )
        .await;
    // Asked on the connection made at start, not at a reconnect.
    let log = agent.log_text();
    let asked = log.find("asking the aggregator to renew").unwrap();
    assert_eq!(log[..asked].matches("connected").count(), 1, "{log}");
    // Past the old certificate's end, the agent still ships.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let seen = agg.last_seen_ms(&client, host).await.unwrap();
    assert!(
        seen > nines_common::model::now_ms() - 5_000,
        "last seen {seen}:\n{}",
        log_tail(&agent.log, 20)
    );
    agent.stop();
    agg.stop();
}
