#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;
use crate::collect::testing;

fn command(name: &str, argv: &[&str], timeout: Duration) -> CheckConfig {
    CheckConfig {
        name: name.to_owned(),
        command: Some(argv.iter().map(|s| (*s).to_owned()).collect()),
        tcp: None,
        http: None,
        interval: Duration::from_secs(60),
        timeout,
    }
}

fn sh(script: &str) -> CheckConfig {
    command("sh", &["sh", "-c", script], Duration::from_secs(10))
}

#[tokio::test]
async fn exit_codes_map_to_nagios_states() {
    for (script, status) in [
        ("echo OK; exit 0", Status::Ok),
        ("echo WARN; exit 1", Status::Warning),
        ("echo CRIT; exit 2", Status::Critical),
        ("echo UNKNOWN; exit 3", Status::Unknown),
        ("echo odd; exit 4", Status::Unknown),
        ("exit 255", Status::Unknown),
        ("kill -9 $$", Status::Unknown),
    ] {
        let outcome = run_once(&sh(script)).await.unwrap();
        assert_eq!(outcome.status, status, "{script}");
    }
    let missing = command("x", &["/nonexistent/check_nothing"], Duration::from_secs(1));
    let outcome = run_once(&missing).await.unwrap();
    assert_eq!(outcome.status, Status::Unknown);
    assert!(
        outcome.summary.contains("cannot run"),
        "{}",
        outcome.summary
    );
}

#[tokio::test]
async fn output_becomes_summary_and_perfdata_samples() {
    let outcome = run_once(&sh(
        "printf \"LOAD WARNING - load 3.2 | load1=3.2;3;5;0 'free mem'=512MB;;;0;2048 rta=0.5ms\\nlong text\\n\"; exit 1",
    ))
    .await
    .unwrap();
    assert_eq!(outcome.status, Status::Warning);
    assert_eq!(outcome.summary, "LOAD WARNING - load 3.2");
    let mut samples = Vec::new();
    push_outcome(&mut Out::new(1000, &mut samples), "load", &outcome);
    let get = |name: &str, labels: &[(&str, &str)]| testing::get(&samples, name, labels);
    assert_eq!(get("check_status", &[("check", "load")]), Some(1.0));
    assert!(get("check_duration_seconds", &[("check", "load")]).unwrap() >= 0.0);
    assert_eq!(
        get(
            "check_perfdata",
            &[("check", "load"), ("label", "free mem"), ("uom", "MB")]
        ),
        Some(512.0)
    );
    assert_eq!(
        get(
            "check_perfdata",
            &[("check", "load"), ("label", "rta"), ("uom", "ms")]
        ),
        Some(0.5)
    );
    assert_eq!(
        get(
            "check_perfdata",
            &[("check", "load"), ("label", "load1"), ("uom", "")]
        ),
        Some(3.2)
    );
    for s in &samples {
        s.key.validate().unwrap();
    }
}

/// Live processes (not zombies) whose process group is `pgid`, from /proc.
fn live_in_group(pgid: i32) -> Vec<String> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the `(comm)`: state, ppid, pgrp.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(stat);
        }
    }
    live
}

/// A plugin that ignores SIGTERM and has started a grandchild is killed at its timeout, whole
/// group, and reported unknown; nothing of it is left running.
#[tokio::test]
async fn a_hung_plugin_and_its_grandchild_are_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let script = format!(
        "trap '' TERM; sleep 60 & echo $$ $! > {}; sleep 60; echo never",
        pidfile.display()
    );
    let check = command("hang", &["sh", "-c", &script], Duration::from_millis(700));
    let started = Instant::now();
    let outcome = run_once(&check).await.unwrap();
    let took = started.elapsed();
    assert_eq!(outcome.status, Status::Unknown);
    assert!(outcome.summary.contains("timed out"), "{}", outcome.summary);
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    let pids: Vec<i32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "the shell and its background sleep");
    // The shell leads its own group: the agent's group is not the plugin's.
    assert_ne!(
        rustix::process::getpgrp().as_raw_nonzero().get(),
        pids[0],
        "the plugin shares the agent's process group"
    );
    // SIGKILL is delivered at once, but the kernel takes a moment to tear processes down.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live = live_in_group(pids[0]);
        if live.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {live:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn builtin_tcp_connects_or_is_critical() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let check = CheckConfig {
        command: None,
        tcp: Some(address.clone()),
        ..sh("")
    };
    let outcome = run_once(&check).await.unwrap();
    assert_eq!(outcome.status, Status::Ok, "{}", outcome.summary);
    assert_eq!(outcome.perfdata[0].label, "time");
    drop(listener);
    let outcome = run_once(&check).await.unwrap();
    assert_eq!(outcome.status, Status::Critical, "{}", outcome.summary);
    assert!(outcome.summary.contains(&address), "{}", outcome.summary);
}

/// Serves one canned response to every connection, in a background task.
async fn http_server(response: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    address
}

#[tokio::test]
async fn builtin_http_judges_the_status_line() {
    for (response, status) in [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Status::Ok),
        ("HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n", Status::Ok),
        ("HTTP/1.1 404 Not Found\r\n\r\n", Status::Critical),
        ("HTTP/1.1 503 Busy\r\n\r\n", Status::Critical),
        ("SSH-2.0-OpenSSH_9.2\r\n", Status::Critical),
    ] {
        let address = http_server(response).await;
        let check = CheckConfig {
            command: None,
            http: Some(format!("http://{address}/health")),
            ..sh("")
        };
        let outcome = run_once(&check).await.unwrap();
        assert_eq!(outcome.status, status, "{response:?}: {}", outcome.summary);
    }
    // Nobody listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let check = CheckConfig {
        command: None,
        http: Some(format!("http://{address}/")),
        ..sh("")
    };
    assert_eq!(run_once(&check).await.unwrap().status, Status::Critical);
}

#[test]
fn bad_definitions_are_refused_naming_the_entry() {
    let ok = sh("exit 0");
    assert!(validate(std::slice::from_ref(&ok)).is_ok());
    for (bad, needle) in [
        (
            CheckConfig {
                command: Some(vec![]),
                ..ok.clone()
            },
            "command is empty",
        ),
        (
            CheckConfig {
                command: None,
                ..ok.clone()
            },
            "says nothing to run",
        ),
        (
            CheckConfig {
                tcp: Some("localhost:22".into()),
                ..ok.clone()
            },
            "more than one",
        ),
        (
            CheckConfig {
                command: None,
                tcp: Some("localhost".into()),
                ..ok.clone()
            },
            "is not \"host:port\"",
        ),
        (
            CheckConfig {
                command: None,
                http: Some("https://example.net/".into()),
                ..ok.clone()
            },
            "plain HTTP only",
        ),
        (
            CheckConfig {
                timeout: Duration::from_secs(120),
                ..ok.clone()
            },
            "at most the interval",
        ),
        (
            CheckConfig {
                name: String::new(),
                ..ok.clone()
            },
            "name must be",
        ),
    ] {
        let e = validate(&[bad]).unwrap_err().to_string();
        assert!(e.contains("[[checks]] entry 1"), "{e}");
        assert!(e.contains(needle), "{e}");
    }
    let e = validate(&[ok.clone(), ok]).unwrap_err();
    assert_eq!((e.index, &e.problem), (1, &CheckProblem::Duplicate));
    let e = e.to_string();
    assert!(e.contains("entry 2") && e.contains("unique"), "{e}");
}

/// Started checks report through the collector as their results come in.
#[tokio::test]
async fn the_collector_samples_the_latest_results() {
    let checks = [
        CheckConfig {
            name: "fast".into(),
            ..sh("echo fine; exit 0")
        },
        CheckConfig {
            name: "slow".into(),
            ..sh("sleep 30")
        },
    ];
    let mut collector = Checks::start(&checks);
    let start = Instant::now();
    let samples = testing::poll(Duration::from_secs(5), || {
        Some(testing::run_ok(&mut collector, &testing::tick(start, 0))).filter(|s| !s.is_empty())
    })
    .await
    .expect("the fast check reported within 5 s");
    assert_eq!(
        testing::get(&samples, "check_status", &[("check", "fast")]),
        Some(0.0)
    );
    // The slow one has no result yet, and no sample stands in for it.
    assert_eq!(
        testing::get(&samples, "check_status", &[("check", "slow")]),
        None
    );
    drop(collector);
}
