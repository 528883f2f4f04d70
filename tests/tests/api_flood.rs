//! 20,000 idle TCP connections to the API port (no token, no byte sent), from 100 source
//! addresses, against an aggregator held to 4,096 descriptors: meanwhile an agent keeps
//! getting every ack within 1 s, `/healthz` answers on new connections, and a new agent
//! connects; the idle connections are closed after `[api] idle_timeout`, and the aggregator
//! counts what it closed. Bounded in time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use nines_common::proto::{Batch, Message, Point, SeriesDef};
use nines_tests::cluster::{Aggregator, Pki, log_tail};
use nines_tests::wire::{Session, client_config, connect};
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = 20_000;
const ADDRESSES: usize = 100;
const AGGREGATOR_NOFILE: u64 = 4096;

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    s.connect(to).await
}

/// This process's soft descriptor limit, after asking for one that holds the flood.
fn raise_own_limit() -> u64 {
    let pid = std::process::id().to_string();
    let want = (FLOOD as u64 + 4096).to_string();
    // Raising the hard limit needs privilege; without it the soft one still goes up to it.
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={want}:{want}")])
        .stderr(std::process::Stdio::null())
        .status();
    let out = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output",
            "HARD",
        ])
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:")])
        .status();
    let out = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output",
            "SOFT",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("prlimit output {:?}: {e}", out.stdout))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// Sends one batch and waits for its ack; returns how long it took.
async fn send(session: &mut Session, seq: u64, n: u64) -> Duration {
    let defs = if n == 0 {
        vec![SeriesDef {
            id: 1,
            name: "m".into(),
            labels: vec![],
        }]
    } else {
        vec![]
    };
    let batch = Message::Batch(Batch {
        seq,
        series_defs: defs,
        points: vec![Point {
            series: 1,
            ts_ms: nines_common::model::now_ms(),
            value: n as f64,
        }],
    });
    let sent = Instant::now();
    session.writer.write(&batch).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), session.reader.read()).await {
        Ok(Ok(Some(Message::Ack(a)))) => assert_eq!(a.through_seq, seq),
        other => panic!("batch {seq}: {other:?}"),
    }
    sent.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_idle_api_connections_do_not_starve_ingest_or_healthz() {
    let _alone = nines_tests::load::flood().await;
    let own = raise_own_limit();
    // The flood this process can hold beside its own files and the probes.
    let flood = FLOOD.min(own.saturating_sub(1024) as usize);
    println!("descriptor limit {own}: flooding with {flood} connections");
    assert!(
        flood as u64 > 2 * AGGREGATOR_NOFILE,
        "a flood of {flood} would not exhaust the aggregator's {AGGREGATOR_NOFILE} descriptors"
    );

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("steady-1");
    pki.issue("late-1");
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.set_ingest("max_connections = 2048");
    let text = std::fs::read_to_string(&agg.config).unwrap();
    std::fs::write(
        &agg.config,
        text.replacen(
            "[api]\n",
            "[api]\nidle_timeout = \"2s\"\nheader_read_timeout = \"5s\"\n",
            1,
        ),
    )
    .unwrap();
    // The default [api] max_connections (1024) and per-address cap (256), under a limit that
    // 20,000 connections would exhaust many times over.
    agg.nofile = Some(AGGREGATOR_NOFILE);
    agg.start_ready(&client).await;
    let api: SocketAddr = agg.url.trim_start_matches("http://").parse().unwrap();
    let ingest = agg.ingest;

    // The steady agent: a batch every 100 ms until told to stop, each ack timed.
    let mut steady = connect(
        ingest,
        client_config(&pki, "steady-1"),
        "steady-1",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let steady_task = tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut seq = steady.resume_from_seq;
        let start = Instant::now();
        while !*stopped.borrow() && start.elapsed() < Duration::from_secs(120) {
            acks.push(send(&mut steady, seq, acks.len() as u64).await);
            seq += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        acks
    });
    // /healthz on a new connection every 250 ms, each answer timed.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health_url = format!("{}/healthz", agg.url);
    let stopped = stop.subscribe();
    let health_task = tokio::spawn(async move {
        let mut answers = Vec::new();
        let start = Instant::now();
        while !*stopped.borrow() && start.elapsed() < Duration::from_secs(120) {
            let sent = Instant::now();
            let r = probe
                .get(&health_url)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => answers.push(sent.elapsed()),
                other => panic!("/healthz during the flood: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        answers
    });

    // The flood: 200 connections from each of 100 addresses (under the per-address cap of
    // 256, so the global limit is what holds), all kept open by this test.
    let started = Instant::now();
    let mut openers = Vec::new();
    for t in 0..4usize {
        openers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            for i in (t..flood).step_by(4) {
                let from = Ipv4Addr::new(127, 3, 0, (i % ADDRESSES) as u8 + 1);
                if let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(5), connect_from(from, api)).await
                {
                    held.push(s);
                }
                if started.elapsed() > Duration::from_secs(90) {
                    break;
                }
            }
            held
        }));
    }
    let mut held = Vec::with_capacity(flood);
    for o in openers {
        held.extend(o.await.unwrap());
    }
    let flood_took = started.elapsed();
    println!("{} idle connections opened in {flood_took:?}", held.len());
    assert!(
        held.len() >= flood * 9 / 10,
        "only {} of {flood} connections opened:\n{}",
        held.len(),
        log_tail(&agg.log, 20)
    );

    // A new agent connects while the flood is held, and its batch is acked within 1 s.
    let mut late = connect(
        ingest,
        client_config(&pki, "late-1"),
        "late-1",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "a new agent during the flood: {e}\n{}",
            log_tail(&agg.log, 20)
        )
    });
    let seq = late.resume_from_seq;
    let took = send(&mut late, seq, 0).await;
    assert!(
        took < Duration::from_secs(1),
        "new agent's ack took {took:?}"
    );

    // The idle connections are closed after idle_timeout (2 s), though this test still holds
    // every one of them.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = client
            .get(format!("{}/metrics", agg.url))
            .bearer_auth(&agg.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, "nines_api_connections_open") <= 2.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "idle API connections still open 15 s after the flood:\n{}",
            text.lines()
                .filter(|l| l.starts_with("nines_api"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let closed_idle = metric(&text, "nines_api_connections_closed_total{reason=\"idle\"}");
    let evicted = metric(
        &text,
        "nines_api_connections_closed_total{reason=\"evicted\"}",
    );
    let refused = metric(
        &text,
        "nines_api_connections_refused_total{reason=\"max_connections\"}",
    ) + metric(
        &text,
        "nines_api_connections_refused_total{reason=\"max_connections_per_address\"}",
    );
    println!(
        "API connections: {closed_idle} closed idle, {evicted} closed to make room, {refused} refused"
    );
    assert!(
        closed_idle + evicted + refused >= held.len() as f64,
        "{closed_idle} + {evicted} + {refused} < {}",
        held.len()
    );
    assert!(closed_idle >= 1.0 && evicted >= 1.0);

    let _ = stop.send(true);
    let mut acks = steady_task.await.unwrap();
    let answers = health_task.await.unwrap();
    acks.sort();
    let worst = acks.last().copied().unwrap_or_default();
    println!(
        "steady agent: {} batches, ack median {:?}, slowest {worst:?}; /healthz: {} answers, slowest {:?}",
        acks.len(),
        acks[acks.len() / 2],
        answers.len(),
        answers.iter().max()
    );
    assert!(worst < Duration::from_secs(1), "slowest ack {worst:?}");
    assert!(answers.len() >= 4, "{} /healthz answers", answers.len());
    assert!(
        answers.iter().all(|a| *a < Duration::from_secs(1)),
        "{answers:?}"
    );
    assert!(agg.running(), "{}", log_tail(&agg.log, 20));
    drop(held);
    agg.stop();
}
