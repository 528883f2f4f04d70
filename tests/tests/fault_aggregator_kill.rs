//! Issue 5, test 2: `kill -9` of the aggregator 20 times at random moments (0.3 to 1.5 s after
//! it came up each time) under load, and every batch an agent saw acked is queryable afterwards.
//!
//! The load comes from three clients speaking the real protocol over mTLS, each with its own
//! certificate, sending a batch every 5 ms with up to 32 unacknowledged (agents sample at 1 s at
//! the fastest, too slow to have a batch in flight at most kills). They know exactly what was
//! acked: at every reconnect the aggregator's `Welcome` must show it stored at least that much,
//! and at the end every acked batch's points must be in the API, once. Two real `nines-agent`
//! processes ship alongside at 1 s; their spools' ack marks must not be beyond what is stored,
//! and every batch they spooled must be stored once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nines_common::model::now_ms;
use nines_common::proto::{Batch, Message, Point, SeriesDef};
use nines_tests::check;
use nines_tests::cluster::{Agent, Aggregator, Pki, log_tail};
use nines_tests::eventually;
use nines_tests::wire;
use tokio::sync::{mpsc, watch};

const KILLS: usize = 20;
const CLIENTS: usize = 3;
const SERIES: usize = 8;
const WINDOW: usize = 32;
const SEND_EVERY: Duration = Duration::from_millis(5);

/// What one load client saw.
#[derive(Debug, Default)]
struct Seen {
    host: String,
    /// Highest seq acknowledged to it.
    acked: u64,
    /// Highest seq it sent.
    sent: u64,
    connections: u32,
    /// Batches sent again on a new connection because their ack had not arrived.
    resent: u64,
    /// Batches the aggregator had committed but whose ack the kill swallowed.
    committed_unacked: u64,
    /// Moments the aggregator had forgotten an acked batch.
    violations: Vec<String>,
}

fn batch(seq: u64, base_ts: i64, define: bool) -> Batch {
    Batch {
        seq,
        series_defs: if define {
            (0..SERIES)
                .map(|i| SeriesDef {
                    id: i as u32,
                    name: "load_seq".into(),
                    labels: vec![("series".into(), i.to_string())],
                })
                .collect()
        } else {
            Vec::new()
        },
        // The value is the seq, so the API shows which batch each point came from.
        points: (0..SERIES)
            .map(|i| Point {
                series: i as u32,
                ts_ms: base_ts + seq as i64,
                value: seq as f64,
            })
            .collect(),
    }
}

/// Sends numbered batches from seq 1 until `stop`, reconnecting at once whenever the
/// connection dies, then waits until everything it sent is acked (bounded by `limit`).
async fn load(
    addr: SocketAddr,
    pki: Pki,
    host: String,
    base_ts: i64,
    mut stop: watch::Receiver<bool>,
    limit: Duration,
) -> Seen {
    let tls = wire::client_config(&pki, &host);
    let deadline = Instant::now() + limit;
    let mut seen = Seen {
        host: host.clone(),
        ..Seen::default()
    };
    while Instant::now() < deadline {
        let stopping = *stop.borrow();
        if stopping && seen.acked == seen.sent {
            break;
        }
        let session = match wire::connect(addr, tls.clone(), &host, Duration::from_secs(2)).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        seen.connections += 1;
        let stored = session.resume_from_seq.saturating_sub(1);
        seen.committed_unacked += stored.saturating_sub(seen.acked);
        if stored < seen.acked {
            seen.violations.push(format!(
                "connection {}: aggregator stored through {stored} but had acked {}",
                seen.connections, seen.acked
            ));
        }
        let wire::Session {
            mut reader,
            mut writer,
            ..
        } = session;
        let (tx, mut acks) = mpsc::channel(64);
        let reader_task = tokio::spawn(async move {
            while let Ok(Some(msg)) = reader.read().await {
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
        let mut next = seen.acked.max(stored) + 1;
        let mut defined = false;
        let mut tick = tokio::time::interval(SEND_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let broken = loop {
            let stopping = *stop.borrow();
            if stopping && seen.acked >= seen.sent {
                break false;
            }
            tokio::select! {
                _ = tick.tick() => {
                    // Resend what is unacked first, then new batches while not stopping.
                    let may_send = next <= seen.sent || !stopping;
                    if may_send && next - 1 - seen.acked.min(next - 1) < WINDOW as u64 {
                        let b = batch(next, base_ts, !defined);
                        if writer.write(&Message::Batch(b)).await.is_err() {
                            break true;
                        }
                        defined = true;
                        if next <= seen.sent {
                            seen.resent += 1;
                        }
                        seen.sent = seen.sent.max(next);
                        next += 1;
                    }
                }
                msg = acks.recv() => match msg {
                    Some(Message::Ack(a)) => seen.acked = seen.acked.max(a.through_seq),
                    _ => break true,
                },
                _ = stop.changed() => {}
                _ = tokio::time::sleep_until(deadline.into()) => break true,
            }
        };
        reader_task.abort();
        if !broken {
            let _ = writer.shutdown().await;
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_aggregator_loses_no_acked_batch() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;

    let started_ms = now_ms();
    let mut agents: Vec<Agent> = (1..=2)
        .map(|i| Agent::new(dir.path(), &pki, &format!("agent-{i}"), agg.ingest, ""))
        .collect();
    for a in &mut agents {
        a.start();
    }
    let mut first_seqs = Vec::new();
    for a in &agents {
        first_seqs.push(a.first_seq(Duration::from_secs(10)).await);
    }

    let base_ts = started_ms.div_euclid(1000) * 1000 - 3_600_000;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    for i in 1..=CLIENTS {
        let host = format!("load-{i}");
        pki.issue(&host);
        clients.push(tokio::spawn(load(
            agg.ingest,
            pki.clone(),
            host,
            base_ts,
            stop_rx.clone(),
            Duration::from_secs(60),
        )));
    }
    let clients_started = Instant::now();

    let t0 = Instant::now();
    for _ in 0..KILLS {
        let pause = Duration::from_millis(300 + fastrand::u64(0..1200));
        tokio::time::sleep(pause).await;
        assert!(
            agg.running(),
            "the aggregator died on its own:\n{}",
            log_tail(&agg.log, 30)
        );
        agg.kill9();
        agg.start_ready(&client).await;
    }
    let kills_took = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send(true).unwrap();
    let mut seen = Vec::new();
    for c in clients {
        seen.push(c.await.unwrap());
    }
    let load_took = clients_started.elapsed();

    // The real agents may be in a backoff of up to 60 s; wait until both sent a fresh tick.
    let target = now_ms() + 1000;
    for a in &agents {
        eventually(Duration::from_secs(75), || async {
            let s = agg.last_seen_ms(&client, &a.host).await?;
            (s >= target).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{} did not catch up:\n{}", a.host, log_tail(&a.log, 20)));
    }
    for a in &mut agents {
        assert!(a.exited().is_none(), "{} exited", a.host);
        a.stop();
    }

    for s in &seen {
        assert!(s.violations.is_empty(), "{}: {:?}", s.host, s.violations);
        assert!(s.acked > 0, "{}: nothing was acked", s.host);
        assert_eq!(
            s.acked, s.sent,
            "{}: everything sent is acked once the aggregator stays up",
            s.host
        );
        let stored = wire::stored_through(agg.ingest, &pki, &s.host).await;
        assert_eq!(stored, s.acked, "{}", s.host);
        let series = agg
            .query(
                &client,
                &s.host,
                "load_seq",
                None,
                base_ts,
                base_ts + s.acked as i64 + 1,
            )
            .await;
        assert_eq!(series.len(), SERIES, "{}", s.host);
        for one in &series {
            let values: Vec<u64> = one.points.iter().map(|p| p.1 as u64).collect();
            let missing: Vec<u64> = (1..=s.acked)
                .filter(|v| values.binary_search(v).is_err())
                .take(10)
                .collect();
            assert!(
                missing.is_empty(),
                "{} {}: acked batches missing: {missing:?}",
                s.host,
                one.labels
            );
            assert_eq!(
                values.len() as u64,
                s.acked,
                "{} {}: each acked batch once",
                s.host,
                one.labels
            );
        }
    }
    let mut agent_ticks = Vec::new();
    for (a, first) in agents.iter().zip(&first_seqs) {
        let stored =
            check::spooled_batches_stored_once(&client, &agg, &pki, a, *first, started_ms - 1000)
                .await;
        agent_ticks.push(stored.ticks.len());
    }
    let restarts_after_kill = agg.starts - 1;
    eprintln!(
        "{KILLS} kills in {:.1} s ({restarts_after_kill} restarts); load clients ran {:.1} s: {}; \
         real agents: {agent_ticks:?} ticks stored once each",
        kills_took.as_secs_f64(),
        load_took.as_secs_f64(),
        seen.iter()
            .map(|s| format!(
                "{} acked {} batches over {} connections ({} sent again, {} committed \
                 but not acked when killed)",
                s.host, s.acked, s.connections, s.resent, s.committed_unacked
            ))
            .collect::<Vec<_>>()
            .join(", "),
    );
    agg.stop();
}
