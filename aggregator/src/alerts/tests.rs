//! The alert engine on a real store, with real receivers on loopback: a webhook server, a
//! command, an SMTP server.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use nines_common::model::HostId;
use nines_common::proto::Hello;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::store::{BatchWrite, HelloWrite, StoreOptions, WriterHandle};
use nines_common::SeriesKey;

/// A webhook receiver: answers with the queued statuses (200 once they run out) and keeps
/// every request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

async fn receiver(answers: &[u16]) -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    r.answers.lock().unwrap().extend(answers);
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    let code = state.answers.lock().unwrap().pop_front().unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (r, addr)
}

fn rules_text(notifier: &str) -> String {
    format!(
        "evaluation_interval = \"1s\"\n[grouping]\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\nrepeat_interval = \"1h\"\n\
         [[notifiers]]\nname = \"ops\"\nmax_attempts = 3\n{notifier}\n\
         [[rules]]\nname = \"HostDown\"\nkind = \"host_down\"\nseverity = \"critical\"\nnotify = [\"ops\"]\n\
         summary = \"{{{{host}}}} is silent\"\nrunbook = \"https://runbooks/host-down\"\n"
    )
}

fn webhook(addr: SocketAddr) -> String {
    format!("webhook = {{ url = \"http://{addr}/hook\", headers = {{ X-Team = \"ops\" }} }}")
}

async fn open_store(dir: &std::path::Path) -> (Store, WriterHandle) {
    let (store, writer) =
        Store::open_with(&dir.join("nines.redb"), StoreOptions::default()).unwrap();
    (store, writer)
}

async fn hello(store: &Store, host: &str) {
    store
        .hello(HelloWrite {
            host: HostId::new(host).unwrap(),
            hello: Hello {
                protocol: 1,
                agent_version: "t".into(),
                host_id: host.into(),
                boot_id: "b".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                kernel: "6".into(),
                interval_ms: 10_000,
            },
            now_ms: now_ms() - 120_000,
        })
        .await
        .unwrap();
}

fn open(store: &Store, text: &str) -> Arc<Alerting> {
    let rules = Rules::parse(text, std::path::Path::new("alerts.toml")).unwrap();
    Alerting::open(
        store.clone(),
        Vec::new(),
        rules,
        None,
        "http://nines".into(),
    )
    .unwrap()
}

async fn deliver_due(a: &Alerting, now: i64) -> usize {
    let due = a.tick(now).unwrap();
    for id in &due {
        a.attempt(*id).await.unwrap();
    }
    due.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_without_resending_and_resolves_after() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, addr) = receiver(&[]).await;
    let text = rules_text(&webhook(addr));
    let (store, writer) = open_store(dir.path()).await;
    hello(&store, "web1").await;
    let a = open(&store, &text);
    let now = now_ms();
    assert_eq!(deliver_due(&a, now).await, 1);
    let first = hook.got.lock().unwrap().clone();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1["status"], "firing");
    assert_eq!(first[0].0["x-team"], "ops");
    assert_eq!(first[0].0["content-type"], "application/json");
    let since = a.read(|e| e.active(now)[0].0.firing_since_ms);
    drop(a);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();

    // Restart: the firing alert is remembered, nothing is sent again.
    let (store, writer) = open_store(dir.path()).await;
    let a = open(&store, &text);
    let active = a.read(|e| e.active(now));
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].0.firing_since_ms, since);
    assert_eq!(deliver_due(&a, now + 2_000).await, 0);
    assert_eq!(deliver_due(&a, now + 4_000).await, 0);
    assert_eq!(
        hook.got.lock().unwrap().len(),
        1,
        "not re-sent after the restart"
    );

    // The host reports again: resolved, and said so once.
    let host = HostId::new("web1").unwrap();
    let id = store
        .series_id(&host, SeriesKey::new("cpu_usage_ratio", &[]))
        .unwrap();
    store
        .write_batch(BatchWrite {
            host,
            seq: 1,
            points: vec![(id, now + 5_000, 0.5)],
        })
        .await
        .unwrap();
    assert_eq!(deliver_due(&a, now + 6_000).await, 1);
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1["status"], "resolved");
    assert_eq!(got[1].1["alerts"][0]["status"], "resolved");
    assert!(a.read(|e| e.active(now + 6_000)).is_empty());

    // History and the notification log are kept.
    let h = persist::history(&store, (0, i64::MAX), 10).unwrap();
    let steps: Vec<(State, State)> = h.iter().rev().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        steps,
        [
            (State::Inactive, State::Firing),
            (State::Firing, State::Resolved)
        ]
    );
    let log = persist::attempts(&store, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|l| l.ok && l.attempt == 1));
    drop(a);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_retry_on_5xx_and_give_up_on_4xx_and_log_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, addr) = receiver(&[503, 200]).await;
    let (store, writer) = open_store(dir.path()).await;
    hello(&store, "web1").await;
    let a = open(&store, &rules_text(&webhook(addr)));
    let now = now_ms();
    assert_eq!(deliver_due(&a, now).await, 1);
    // Not due again before the backoff (1 s) has passed.
    let due = a.tick(now_ms()).unwrap();
    assert!(due.is_empty(), "{due:?}");
    assert_eq!(deliver_due(&a, now_ms() + 1_500).await, 1);
    let log = persist::attempts(&store, 10).unwrap();
    let summary: Vec<(u32, bool, bool)> = log
        .iter()
        .rev()
        .map(|l| (l.attempt, l.ok, l.gave_up))
        .collect();
    assert_eq!(summary, [(1, false, false), (2, true, false)]);
    assert!(
        log[1].error.as_deref().unwrap().contains("503"),
        "{:?}",
        log[1]
    );
    assert_eq!(
        hook.got.lock().unwrap().len(),
        2,
        "the same notification twice"
    );
    drop(a);

    // A 4xx is the receiver refusing it: given up at once.
    let (_, addr) = receiver(&[400]).await;
    hello(&store, "web2").await;
    let text = rules_text(&webhook(addr)).replace("HostDown\"\nkind", "Down2\"\nkind");
    let a = open(&store, &text);
    assert_eq!(deliver_due(&a, now_ms()).await, 1);
    let last = persist::attempts(&store, 1).unwrap();
    assert!(!last[0].ok && last[0].gave_up, "{:?}", last[0]);
    assert_eq!(deliver_due(&a, now_ms() + 10_000).await, 0, "not retried");
    drop(a);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_the_json_on_stdin_and_a_hung_one_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.json");
    let (store, writer) = open_store(dir.path()).await;
    hello(&store, "web1").await;
    let notifier = format!(
        "command = {{ argv = [\"/bin/sh\", \"-c\", \"cat > {}\"] }}",
        out.display()
    );
    let a = open(&store, &rules_text(&notifier));
    assert_eq!(deliver_due(&a, now_ms()).await, 1);
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(got["version"], "4");
    assert_eq!(got["alerts"][0]["labels"]["host"], "web1");
    drop(a);

    let pidfile = dir.path().join("child.pid");
    let notifier = format!(
        "command = {{ argv = [\"/bin/sh\", \"-c\", \"sleep 30 & echo $! > {}; wait\"], timeout = \"1s\" }}",
        pidfile.display()
    );
    hello(&store, "web2").await;
    let a = open(
        &store,
        &rules_text(&notifier).replace("HostDown\"\nkind", "Down2\"\nkind"),
    );
    let started = Instant::now();
    assert_eq!(deliver_due(&a, now_ms()).await, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    let last = persist::attempts(&store, 1).unwrap();
    assert!(
        last[0]
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 1s"),
        "{:?}",
        last[0]
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    // The grandchild went with its process group (allow the kernel a moment to reap).
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        stat.map_or(true, |s| s.split(' ').nth(2) == Some("Z"))
    });
    assert!(gone, "sleep {pid} still runs");
    drop(a);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

/// A minimal SMTP server: accepts one message and returns what came after DATA.
async fn smtp_server() -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (sock, _) = l.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 test ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                }
                continue;
            }
            let cmd = line.to_ascii_uppercase();
            let reply: &[u8] = if cmd.starts_with("EHLO") {
                b"250-test\r\n250 8BITMIME\r\n"
            } else if cmd.starts_with("DATA") {
                in_data = true;
                b"354 go on\r\n"
            } else if cmd.starts_with("QUIT") {
                w.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            w.write_all(reply).await.unwrap();
        }
        data
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_goes_out_over_smtp_with_the_alert_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = smtp_server().await;
    let (store, writer) = open_store(dir.path()).await;
    hello(&store, "web1").await;
    let notifier = format!(
        "email = {{ smtp_host = \"127.0.0.1\", smtp_port = {}, tls = \"none\", from = \"nines@example.com\", to = [\"ops@example.com\"] }}",
        addr.port()
    );
    let a = open(&store, &rules_text(&notifier));
    assert_eq!(deliver_due(&a, now_ms()).await, 1);
    let mail = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(mail.contains("Subject: [FIRING:1] HostDown"), "{mail}");
    assert!(mail.contains("web1 is silent"), "{mail}");
    assert!(mail.contains("https://runbooks/host-down"), "{mail}");
    let log = persist::attempts(&store, 1).unwrap();
    assert!(log[0].ok, "{:?}", log[0]);
    drop(a);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rules_file_on_reload_keeps_the_rules_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.toml");
    let good = rules_text("webhook = { url = \"http://127.0.0.1:9/hook\" }");
    std::fs::write(&path, &good).unwrap();
    let (store, writer) = open_store(dir.path()).await;
    let a = Alerting::open(
        store.clone(),
        Vec::new(),
        Rules::load(&path).unwrap(),
        Some(path.clone()),
        String::new(),
    )
    .unwrap();
    std::fs::write(
        &path,
        good.replace("runbook = \"https://runbooks/host-down\"\n", ""),
    )
    .unwrap();
    let e = a.reload().unwrap_err();
    assert!(e.contains("`runbook` is required"), "{e}");
    assert_eq!(a.read(|e| e.rules().rules.len()), 1, "old rules kept");
    assert_eq!(a.reload_error().as_deref(), Some(e.as_str()));
    std::fs::write(&path, good.replace("HostDown", "Silent")).unwrap();
    assert_eq!(a.reload(), Ok(1));
    assert_eq!(a.read(|e| e.rules().rules[0].name.clone()), "Silent");
    assert_eq!(a.reload_error(), None);
    drop(a);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn evaluations_are_timed_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open_store(dir.path()).await;
    hello(&store, "web-1").await;
    let a = open(
        &store,
        &rules_text("webhook = { url = \"http://127.0.0.1:9/hook\" }"),
    );
    let now = now_ms();
    a.tick(now).unwrap();
    // Ticks within the 1 s evaluation interval flush, and are not evaluations.
    a.tick(now + 300).unwrap();
    a.tick(now + 600).unwrap();
    assert_eq!(a.evaluation_seconds().count, 1);
    a.tick(now + 1_000).unwrap();
    let s = a.evaluation_seconds();
    assert_eq!(s.count, 2);
    assert!(s.sum_seconds > 0.0);
    assert_eq!(a.evaluation_failures(), 0);
    drop(writer);
}
