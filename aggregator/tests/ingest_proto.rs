//! Protocol handling of one connection over `tokio::io::duplex`: no TLS, only the message rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use nines_aggregator::ingest::{self, Connections};
use nines_aggregator::store::Store;
use nines_common::HostId;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{Ack, ErrorCode, Hello, Message, PROTOCOL_VERSION, codec};
use tokio::io::{AsyncWriteExt, DuplexStream};

struct Peer {
    r: FrameReader<tokio::io::ReadHalf<DuplexStream>>,
    w: FrameWriter<tokio::io::WriteHalf<DuplexStream>>,
}

fn start(store: &Store) -> Peer {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let store = store.clone();
    tokio::spawn(async move {
        let _keep = _tx;
        let _ = ingest::handle(
            b,
            HostId::new("web-1").unwrap(),
            store,
            Arc::new(Connections::default()),
            64 * 1024,
            rx,
        )
        .await;
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
