//! Protocol handling of one connection over `tokio::io::duplex`: no TLS, only the message rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use nines_aggregator::ingest::{self, Connections};
use nines_aggregator::store::Store;
use nines_common::HostId;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Ack, Batch, ErrorCode, Hello, Message, PROTOCOL_VERSION, Point, SeriesDef, codec,
};
use tokio::io::{AsyncWriteExt, DuplexStream};

struct Peer {
    r: FrameReader<tokio::io::ReadHalf<DuplexStream>>,
    w: FrameWriter<tokio::io::WriteHalf<DuplexStream>>,
}

fn start(store: &Store) -> Peer {
    start_counted(store, Arc::new(Connections::default()))
}

fn start_counted(store: &Store, connections: Arc<Connections>) -> Peer {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let store = store.clone();
    tokio::spawn(async move {
        let _keep = _tx;
        let peer = ingest::Authenticated {
            limits: ingest::Limits {
                max_frame: 64 * 1024,
                ..ingest::Limits::default()
            },
            ..ingest::Authenticated::new(HostId::new("web-1").unwrap(), store, connections)
        };
        let _ = ingest::handle(b, peer, rx).await;
    });
    let (r, w) = tokio::io::split(a);
    Peer {
        r: FrameReader::new(r, 1 << 20),
        w: FrameWriter::new(w, 1 << 20),
    }
}

async fn error_code(peer: &mut Peer) -> ErrorCode {
    match peer.r.read().await.unwrap() {
        Some(Message::Error(e)) => e.code,
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

fn hello(protocol: u16) -> Hello {
    Hello {
        protocol,
        agent_version: "t".into(),
        host_id: "web-1".into(),
        boot_id: String::new(),
        os: String::new(),
        arch: String::new(),
        kernel: String::new(),
        interval_ms: 1000,
    }
}

#[tokio::test]
async fn protocol_violations_get_a_clear_error_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer) = Store::open(&dir.path().join("s.redb")).unwrap();

    // An older or newer protocol version.
    let mut p = start(&store);
    p.w.write(&Message::Hello(hello(PROTOCOL_VERSION + 1)))
        .await
        .unwrap();
    assert_eq!(error_code(&mut p).await, ErrorCode::UnsupportedProtocol);

    // A future Hello this version cannot even decode still gets told about the version.
    #[derive(serde::Serialize)]
    enum Future {
        Hello { protocol: u16, extra: Vec<String> },
    }
    let mut p = start(&store);
    let payload = codec::encode(
        &Future::Hello {
            protocol: 9,
            extra: vec!["x".into()],
        },
        1 << 20,
    )
    .unwrap();
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    let mut w = p.w.into_inner();
    w.write_all(&frame).await.unwrap();
    p.w = FrameWriter::new(w, 1 << 20);
    assert_eq!(error_code(&mut p).await, ErrorCode::UnsupportedProtocol);

    // Anything but Hello first.
    let mut p = start(&store);
    p.w.write(&Message::Ack(Ack { through_seq: 1 }))
        .await
        .unwrap();
    assert_eq!(error_code(&mut p).await, ErrorCode::UnexpectedMessage);

    // Garbage.
    let mut p = start(&store);
    let mut w = p.w.into_inner();
    w.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    p.w = FrameWriter::new(w, 1 << 20);
    assert_eq!(error_code(&mut p).await, ErrorCode::BadFrame);

    // A frame over the limit (64 KiB here) is refused from its header alone.
    let mut p = start(&store);
    let mut w = p.w.into_inner();
    w.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    p.w = FrameWriter::new(w, 1 << 20);
    assert_eq!(error_code(&mut p).await, ErrorCode::FrameTooLarge);

    // None of it registered a host.
    assert!(store.hosts().is_empty());
}

/// Says Hello as web-1 and returns `resume_from_seq`.
async fn welcome(peer: &mut Peer) -> u64 {
    peer.w
        .write(&Message::Hello(hello(PROTOCOL_VERSION)))
        .await
        .unwrap();
    match peer.r.read().await.unwrap() {
        Some(Message::Welcome(w)) => w.resume_from_seq,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn batch(seq: u64, points: &[(i64, f64)]) -> Message {
    Message::Batch(Batch {
        seq,
        series_defs: vec![SeriesDef {
            id: 1,
            name: "m".into(),
            labels: vec![],
        }],
        points: points
            .iter()
            .map(|&(ts_ms, value)| Point {
                series: 1,
                ts_ms,
                value,
            })
            .collect(),
    })
}

async fn acked(peer: &mut Peer) -> u64 {
    match peer.r.read().await.unwrap() {
        Some(Message::Ack(a)) => a.through_seq,
        other => panic!("expected Ack, got {other:?}"),
    }
}

/// Every stored point of web-1's series `m`, at any time a point may have.
fn stored(store: &Store) -> Vec<(i64, f64)> {
    let (_, series) = store
        .query("web-1", "m", &[], (i64::MIN, i64::MAX), None, 1_000_000)
        .unwrap();
    series.into_iter().flat_map(|s| s.points).collect()
}

#[tokio::test]
async fn points_outside_the_time_window_are_refused_and_the_rest_is_stored_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer) = Store::open(&dir.path().join("s.redb")).unwrap();
    let connections = Arc::new(Connections::default());
    let mut p = start_counted(&store, connections.clone());
    let seq = welcome(&mut p).await;
    let now = nines_common::model::now_ms();
    let year_10000 = 253_402_300_800_000;
    let day = 86_400_000;
    p.w.write(&batch(
        seq,
        &[
            (now - 1000, 1.0),
            (year_10000, 2.0),
            (i64::MAX, 3.0),
            (i64::MIN, 4.0),
            (now - 40 * day, 5.0),
            (now + 3_600_000, 6.0),
            (now + 60_000, 7.0),
            (now, f64::NAN),
        ],
    ))
    .await
    .unwrap();
    // Acked: the agent must not resend it for ever.
    assert_eq!(acked(&mut p).await, seq);
    // A batch whose every point is refused is acked too.
    p.w.write(&Message::Batch(Batch {
        seq: seq + 1,
        series_defs: vec![],
        points: vec![Point {
            series: 1,
            ts_ms: year_10000,
            value: 8.0,
        }],
    }))
    .await
    .unwrap();
    assert_eq!(acked(&mut p).await, seq + 1);
    assert_eq!(stored(&store), [(now - 1000, 1.0), (now + 60_000, 7.0)]);
    let host = store.host("web-1").unwrap();
    assert_eq!(host.last_sample_ms, now + 60_000);
    assert_eq!(host.last_seq, seq + 1);
    let r = &connections.refused;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n(&r.points_too_old), 2);
    assert_eq!(n(&r.points_too_far_in_future), 4);
    assert_eq!(n(&r.points_not_finite), 1);
}

#[tokio::test]
async fn a_batch_numbered_above_i64_max_is_refused_unacked_and_the_host_is_not_silenced() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer) = Store::open(&dir.path().join("s.redb")).unwrap();
    let connections = Arc::new(Connections::default());
    let now = nines_common::model::now_ms();

    let mut p = start_counted(&store, connections.clone());
    assert_eq!(welcome(&mut p).await, 1);
    p.w.write(&batch(5, &[(now - 2000, 1.0)])).await.unwrap();
    assert_eq!(acked(&mut p).await, 5);
    p.w.write(&batch(u64::MAX, &[(now - 1000, 2.0)]))
        .await
        .unwrap();
    // An Error frame, not an Ack, and the connection ends.
    assert_eq!(error_code(&mut p).await, ErrorCode::BadSequence);
    assert!(matches!(p.r.read().await, Ok(None) | Err(_)));

    // Just above i64::MAX, and 0, likewise.
    for bad in [i64::MAX as u64 + 1, 0] {
        let mut p = start_counted(&store, connections.clone());
        assert_eq!(welcome(&mut p).await, 6);
        p.w.write(&batch(bad, &[(now - 1000, 2.0)])).await.unwrap();
        assert_eq!(
            error_code(&mut p).await,
            ErrorCode::BadSequence,
            "seq {bad}"
        );
    }

    // The mark did not move: the next normal batch is stored and acked.
    let mut p = start_counted(&store, connections.clone());
    assert_eq!(welcome(&mut p).await, 6);
    p.w.write(&batch(6, &[(now, 3.0)])).await.unwrap();
    assert_eq!(acked(&mut p).await, 6);
    assert_eq!(stored(&store), [(now - 2000, 1.0), (now, 3.0)]);
    assert_eq!(store.host("web-1").unwrap().last_seq, 6);
    assert_eq!(
        connections
            .refused
            .bad_sequence
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test]
async fn a_store_with_a_poisoned_mark_opens_repaired_and_stores_the_hosts_next_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let now = nines_common::model::now_ms();
    {
        let (store, writer) = Store::open(&path).unwrap();
        let mut p = start(&store);
        welcome(&mut p).await;
        p.w.write(&batch(5, &[(now - 2000, 1.0)])).await.unwrap();
        assert_eq!(acked(&mut p).await, 5);
        // What an older version stored after a batch numbered 2^64-1 with a point in year
        // 10000: written straight into the hosts table.
        let mut rec = store.host("web-1").unwrap();
        rec.last_seq = u64::MAX;
        rec.last_sample_ms = 253_402_300_800_000;
        let txn = store.begin_write().unwrap();
        {
            let hosts: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("hosts");
            let mut t = txn.open_table(hosts).unwrap();
            t.insert("web-1", serde_json::to_string(&rec).unwrap().as_str())
                .unwrap();
        }
        txn.commit().unwrap();
        drop((p, store));
        // The connection's task holds a store handle until it sees the closed stream: join
        // the writer off the runtime, so that task can run and end.
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || writer.join()),
        )
        .await
        .expect("the writer ends once every store handle is dropped")
        .unwrap();
    }
    let (store, _writer) = Store::open(&path).unwrap();
    let rec = store.host("web-1").unwrap();
    assert_eq!(rec.last_seq, 0);
    assert!(rec.last_sample_ms <= nines_common::model::now_ms());
    let mut p = start(&store);
    assert_eq!(welcome(&mut p).await, 1);
    p.w.write(&batch(7, &[(now, 2.0)])).await.unwrap();
    assert_eq!(acked(&mut p).await, 7);
    p.w.write(&batch(8, &[(now + 1, 3.0)])).await.unwrap();
    assert_eq!(acked(&mut p).await, 8);
    assert_eq!(
        stored(&store),
        [(now - 2000, 1.0), (now, 2.0), (now + 1, 3.0)]
    );
}

#[tokio::test]
async fn a_renewal_between_batches_is_answered_after_their_acks_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer) = Store::open(&dir.path().join("s.redb")).unwrap();
    let mut p = start(&store);
    let next = welcome(&mut p).await;
    let now = nines_common::model::now_ms();
    // Sent without waiting: the answer to Renew must come after both acks.
    p.w.write(&batch(next, &[(now, 1.0)])).await.unwrap();
    p.w.write(&batch(next + 1, &[(now + 1, 2.0)]))
        .await
        .unwrap();
    p.w.write(&Message::Renew(nines_common::proto::Renew {
        csr_der: vec![1],
    }))
    .await
    .unwrap();
    p.w.write(&batch(next + 2, &[(now + 2, 3.0)]))
        .await
        .unwrap();
    assert_eq!(acked(&mut p).await, next);
    assert_eq!(acked(&mut p).await, next + 1);
    match p.r.read().await.unwrap() {
        // This connection offers no renewals; a refusal leaves it open.
        Some(Message::Certificate(nines_common::proto::CertificateReply::Refused { .. })) => {}
        other => panic!("expected a refused Certificate, got {other:?}"),
    }
    assert_eq!(acked(&mut p).await, next + 2);
    assert_eq!(stored(&store).len(), 3);
}
