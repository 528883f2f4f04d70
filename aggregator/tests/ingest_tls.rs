//! The ingest port over real mTLS on loopback: who is let in, who is refused, and what an ack
//! promises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use nines_aggregator::{Config, Server};
use nines_common::proto::{Batch, ErrorCode, Message, Point, SeriesDef};
use util::*;

async fn start(dir: &std::path::Path, ca: &Ca) -> Server {
    let path = write_config(dir, ca, &"0".repeat(64));
    Server::start(&Config::load(&path).unwrap()).await.unwrap()
}

/// An hour ago, fixed for the test run: ingest stores only points near its clock.
fn base() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| nines_common::model::now_ms() - 3_600_000)
}

/// A batch with one point at `base() + ts`.
fn batch(seq: u64, define: bool, ts: i64, v: f64) -> Message {
    Message::Batch(Batch {
        seq,
        series_defs: if define {
            vec![SeriesDef {
                id: 7,
                name: "memory_used_bytes".into(),
                labels: vec![],
            }]
        } else {
            vec![]
        },
        points: vec![Point {
            series: 7,
            ts_ms: base() + ts,
            value: v,
        }],
    })
}

#[tokio::test]
async fn only_a_valid_certificate_for_the_claimed_host_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(dir.path(), &ca).await;
    let addr = server.ingest_addr;

    // No client certificate at all: the handshake completes (such a connection may enroll),
    // but a Hello gets an error pointing at enrollment.
    let r = hello_reply(addr, &ca.pem, None, "web-1").await;
    match r {
        Ok(Message::Error(e)) => {
            assert_eq!(e.code, ErrorCode::UnexpectedMessage);
            assert!(e.message.contains("no client certificate"), "{}", e.message);
        }
        other => panic!("no cert: {other:?}"),
    }

    // A certificate from another CA.
    let rogue = Ca::new("rogue CA");
    let r = hello_reply(addr, &ca.pem, Some(&rogue.agent("web-1")), "web-1").await;
    assert!(!matches!(r, Ok(Message::Welcome(_))), "wrong CA: {r:?}");

    // An expired certificate from the right CA.
    let r = hello_reply(addr, &ca.pem, Some(&ca.expired_agent("web-1")), "web-1").await;
    assert!(!matches!(r, Ok(Message::Welcome(_))), "expired: {r:?}");

    // A certificate from the right CA that is not valid yet.
    let r = hello_reply(addr, &ca.pem, Some(&ca.future_agent("web-1")), "web-1").await;
    assert!(
        !matches!(r, Ok(Message::Welcome(_))),
        "not yet valid: {r:?}"
    );

    // A valid certificate for web-1 that says Hello as web-2.
    let r = hello_reply(addr, &ca.pem, Some(&ca.agent("web-1")), "web-2").await;
    match r {
        Ok(Message::Error(e)) => {
            assert_eq!(e.code, ErrorCode::HostMismatch);
            assert!(e.message.contains("web-2") && e.message.contains("web-1"));
        }
        other => panic!("identity mismatch must be refused with HostMismatch: {other:?}"),
    }

    // The right one.
    let r = hello_reply(addr, &ca.pem, Some(&ca.agent("web-1")), "web-1").await;
    match r {
        Ok(Message::Welcome(w)) => assert_eq!(w.resume_from_seq, 1),
        other => panic!("valid agent refused: {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn acked_batches_survive_a_restart_and_duplicates_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let agent = ca.agent("web-1");
    let server = start(dir.path(), &ca).await;
    let (mut r, mut w) = connect(server.ingest_addr, &ca.pem, Some(&agent))
        .await
        .unwrap();
    w.write(&Message::Hello(hello("web-1"))).await.unwrap();
    assert!(matches!(r.read().await.unwrap(), Some(Message::Welcome(_))));
    w.write(&batch(10, true, 1_000, 1.5)).await.unwrap();
    w.write(&batch(11, false, 2_000, 2.5)).await.unwrap();
    // The same batch again, as after a reconnect: acked, not stored twice.
    w.write(&batch(11, false, 2_000, 99.0)).await.unwrap();
    let mut acks = Vec::new();
    for _ in 0..3 {
        match r.read().await.unwrap() {
            Some(Message::Ack(a)) => acks.push(a.through_seq),
            other => panic!("expected Ack, got {other:?}"),
        }
    }
    assert_eq!(acks, vec![10, 11, 11]);
    drop((r, w));
    server.stop().await;

    // Everything acked is there after a restart, and the next Hello resumes after it.
    let path = dir.path().join("aggregator.toml");
    let server = Server::start(&Config::load(&path).unwrap()).await.unwrap();
    let r = hello_reply(server.ingest_addr, &ca.pem, Some(&agent), "web-1").await;
    match r {
        Ok(Message::Welcome(w)) => assert_eq!(w.resume_from_seq, 12),
        other => panic!("{other:?}"),
    }
    server.stop().await;
    let (store, writer) =
        nines_aggregator::store::Store::open(&dir.path().join("db/nines.redb")).unwrap();
    let (_, series) = store
        .query(
            "web-1",
            "memory_used_bytes",
            &[],
            (base(), base() + 10_000),
            None,
            1000,
        )
        .unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].points,
        vec![(base() + 1_000, 1.5), (base() + 2_000, 2.5)]
    );
    drop(store);
    writer.join();
}

#[tokio::test]
async fn a_point_for_an_undefined_series_is_refused_and_nothing_is_acked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("nines test CA");
    let server = start(dir.path(), &ca).await;
    let (mut r, mut w) = connect(server.ingest_addr, &ca.pem, Some(&ca.agent("db-1")))
        .await
        .unwrap();
    w.write(&Message::Hello(hello("db-1"))).await.unwrap();
    assert!(matches!(r.read().await.unwrap(), Some(Message::Welcome(_))));
    w.write(&batch(1, false, 1_000, 1.0)).await.unwrap();
    match r.read().await.unwrap() {
        Some(Message::Error(e)) => assert_eq!(e.code, ErrorCode::BadSeries),
        other => panic!("{other:?}"),
    }
    // The aggregator keeps serving others.
    let r = hello_reply(server.ingest_addr, &ca.pem, Some(&ca.agent("db-2")), "db-2").await;
    assert!(matches!(r, Ok(Message::Welcome(_))), "{r:?}");
    server.stop().await;
}
