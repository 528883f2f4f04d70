//! Issue 9: an agent installed before its certificates exist starts, says once how to issue
//! them, and waits without exiting (systemd would otherwise restart it in a loop); once the
//! files are in place it connects on its own. `check-config` accepts such a configuration,
//! since it is the unit's `ExecStartPre`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
