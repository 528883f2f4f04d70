//! Hostile input on the ingest port, on loopback and bounded in time: 10,000 half-open TCP
//! connections from 200 addresses held open, garbage bytes before TLS, clients without a
//! certificate, with one from another CA, expired, not yet valid, revoked, or for another
//! host, an oversized frame, a frame that lies about its length, a runaway label.
//! Throughout, a good agent keeps sending a batch every 100 ms and every ack comes back within
//! 1 s; the aggregator counts what it refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nines_common::proto::{Batch, ErrorCode, Message, Point, SeriesDef};
use nines_tests::cluster::{Aggregator, Pki, log_tail};
use nines_tests::wire::{client_config, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HALF_OPEN: usize = 10_000;
const ADDRESSES: u8 = 200;

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    s.connect(to).await
}

fn batch(seq: u64, defs: Vec<SeriesDef>, points: Vec<Point>) -> Message {
    Message::Batch(Batch {
        seq,
        series_defs: defs,
        points,
    })
}

/// A client configuration for `host` with a certificate signed by `pki`'s CA, valid from
/// `from_days` to `to_days` from now.
fn cert_between(pki: &Pki, host: &str, from_days: i64, to_days: i64) -> Arc<rustls::ClientConfig> {
    let (cert, key) = pki.leaf(host, from_days, to_days);
    let ca = std::fs::read(pki.ca()).unwrap();
    Arc::new(nines_common::tls::client_config(&ca, cert.as_bytes(), key.as_bytes()).unwrap())
}

/// A client configuration trusting `pki`'s CA without a certificate of its own.
fn no_certificate(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.ca()).unwrap();
    for c in nines_common::tls::parse_certs(&ca, "ca").unwrap() {
        roots.add(c).unwrap();
    }
    let mut c = rustls::ClientConfig::builder_with_provider(nines_common::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![nines_common::proto::ALPN.to_vec()];
    Arc::new(c)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_agents_are_served_within_a_second_through_hostile_input() {
    let _alone = nines_tests::load::flood().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue("good-1");
    pki.issue("runaway-1");
    pki.issue("revoked-1");
    let status = Command::new(nines_tests::bin("nines-aggregator"))
        .args(["ca", "revoke", "--dir"])
        .arg(&pki.dir)
        .args(["--host", "revoked-1"])
        .status()
        .unwrap();
    assert!(status.success());
    let rogue = Pki::init(&dir.path().join("rogue-pki"));
    rogue.issue("good-1");
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.set_ingest(
        "handshake_timeout = \"3s\"\nidle_timeout = \"10s\"\nmax_series_per_host = 50\nmax_connections_per_address = 64",
    );
    agg.start_ready(&client).await;
    let addr = agg.ingest;

    // The good agent: a batch every 100 ms, each ack timed.
    let mut good = connect(
        addr,
        client_config(&pki, "good-1"),
        "good-1",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let good_task = tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut seq = good.resume_from_seq;
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(12) {
            let defs = if n == 0 {
                vec![SeriesDef {
                    id: 1,
                    name: "m".into(),
                    labels: vec![],
                }]
            } else {
                vec![]
            };
            let points = vec![Point {
                series: 1,
                ts_ms: nines_common::model::now_ms(),
                value: n as f64,
            }];
            let sent = Instant::now();
            good.writer.write(&batch(seq, defs, points)).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(5), good.reader.read()).await {
                Ok(Ok(Some(Message::Ack(a)))) => assert_eq!(a.through_seq, seq),
                other => panic!("batch {seq}: {other:?}"),
            }
            acks.push(sent.elapsed());
            seq += 1;
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (n, acks)
    });

    // 10,000 half-open connections from 200 addresses (50 each, under the per-address limit),
    // held open; then 100 more from one address, over its limit of 64.
    let mut held = Vec::with_capacity(HALF_OPEN);
    let started = Instant::now();
    for i in 0..HALF_OPEN {
        let from = Ipv4Addr::new(127, 1, 0, (i % ADDRESSES as usize) as u8 + 1);
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(5), connect_from(from, addr)).await
        {
            held.push(s);
        }
    }
    let opened = held.len();
    assert!(
        opened >= HALF_OPEN * 9 / 10,
        "only {opened} connections opened"
    );
    let mut over = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = connect_from(Ipv4Addr::new(127, 2, 0, 1), addr).await {
            over.push(s);
        }
    }
    println!("{opened} half-open connections in {:?}", started.elapsed());

    // Garbage before TLS: closed without an answer worth reading.
    let mut g = TcpStream::connect(addr).await.unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: nines\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), g.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(r, Ok(n) if n < 64) || r.is_err(), "{r:?}");

    // Certificates that must not get in, each tried while the good agent is timed. The
    // rogue CA's client does not trust this aggregator either; what matters is it gets no
    // Welcome.
    let attempts = [
        ("no certificate", no_certificate(&pki), "good-1"),
        (
            "another CA",
            {
                let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
                let (c, k) = rogue.agent("good-1");
                Arc::new(
                    nines_common::tls::client_config(&read(pki.ca()), &read(c), &read(k)).unwrap(),
                )
            },
            "good-1",
        ),
        ("expired", cert_between(&pki, "good-1", -30, -1), "good-1"),
        (
            "not yet valid",
            cert_between(&pki, "good-1", 1, 30),
            "good-1",
        ),
        ("revoked", client_config(&pki, "revoked-1"), "revoked-1"),
        ("another host's", client_config(&pki, "runaway-1"), "good-1"),
    ];
    for round in 0..5 {
        for (what, tls, host) in &attempts {
            let r = connect(addr, tls.clone(), host, Duration::from_secs(5)).await;
            assert!(r.is_err(), "{what} certificate got in (round {round})");
        }
    }

    // A frame larger than the limit, and one that lies about its length.
    let mut big = connect(
        addr,
        client_config(&pki, "good-1"),
        "good-1",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut raw = big.writer.into_inner();
    raw.write_all(&(64u32 * 1024 * 1024).to_be_bytes())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), big.reader.read()).await {
        Ok(Ok(Some(Message::Error(e)))) => assert_eq!(e.code, ErrorCode::FrameTooLarge, "{e:?}"),
        other => panic!("oversized frame: {other:?}"),
    }
    let liar = connect(
        addr,
        client_config(&pki, "good-1"),
        "good-1",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut raw = liar.writer.into_inner();
    raw.write_all(&1000u32.to_be_bytes()).await.unwrap();
    raw.write_all(&[1u8; 10]).await.unwrap();
    raw.flush().await.unwrap();

    // A runaway label: 60 new series against a limit of 50. Acked; 10 points dropped.
    let mut run = connect(
        addr,
        client_config(&pki, "runaway-1"),
        "runaway-1",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let defs: Vec<SeriesDef> = (0..60)
        .map(|i| SeriesDef {
            id: i,
            name: "requests".into(),
            labels: vec![("user_id".into(), format!("u{i}"))],
        })
        .collect();
    let points: Vec<Point> = (0..60)
        .map(|i| Point {
            series: i,
            ts_ms: nines_common::model::now_ms(),
            value: 1.0,
        })
        .collect();
    run.writer
        .write(&batch(run.resume_from_seq, defs, points))
        .await
        .unwrap();
    assert!(matches!(run.reader.read().await, Ok(Some(Message::Ack(_)))));

    let (sent, mut acks) = good_task.await.unwrap();
    assert!(sent >= 40, "{sent}");
    acks.sort();
    let worst = acks.last().copied().unwrap_or_default();
    println!(
        "good agent: {sent} batches, ack median {:?}, p99 {:?}, slowest {worst:?}",
        acks[acks.len() / 2],
        acks[acks.len() * 99 / 100]
    );
    assert!(worst < Duration::from_secs(1), "slowest ack {worst:?}");
    // The liar's connection was closed for idling (10 s), the half-open ones at the handshake
    // timeout; the ones over the per-address limit were closed at once.
    let url = format!("{}/metrics", agg.url);
    let m = nines_tests::eventually(Duration::from_secs(20), || async {
        let m = nines_tests::get_text(&client, &url, &agg.token).await?;
        (metric(&m, "nines_ingest_idle_closed_total") >= 1.0).then_some(m)
    })
    .await
    .expect("the lying frame's connection closed for idling");
    let refused = |reason: &str| {
        metric(
            &m,
            &format!("nines_ingest_connections_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    assert!(
        refused("max_connections_per_address") >= 36.0,
        "{}",
        refused("max_connections_per_address")
    );
    assert!(
        refused("handshake") >= opened as f64 * 0.9,
        "{} of {opened}",
        refused("handshake")
    );
    assert_eq!(metric(&m, "nines_ingest_series_points_refused_total"), 10.0);
    assert_eq!(refused("revoked"), 5.0);
    assert_eq!(refused("no_certificate"), 5.0);
    drop((held, over, g, big.reader, liar.reader, raw, run));
    assert!(agg.running(), "{}", log_tail(&agg.log, 20));
    agg.stop();
}
