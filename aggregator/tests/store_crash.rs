//! `kill -9` of a process that is writing and closing chunks leaves a store that opens with
//! every acknowledged point, none twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nines_aggregator::store::{BatchWrite, HelloWrite, Store, StoreOptions};
use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};

const CHILD: &str = "NINES_STORE_CRASH_CHILD";
const TEST: &str = "store_crash::kill_9_while_chunks_close_loses_no_acked_point";
const SERIES: usize = 50;

fn base() -> i64 {
    (nines_common::model::now_ms() - 86_400_000) / 1000 * 1000
}

fn options() -> StoreOptions {
    // Small chunks: a head closes every 16 batches, so the kill lands among closes.
    StoreOptions {
        chunk_points: 16,
        ..StoreOptions::default()
    }
}

/// The child: writes batches of one point per series as fast as it can and prints each
/// acknowledged sequence number. It never returns; the parent kills it.
fn child(path: &str, base: i64) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (store, _writer) = Store::open_with(path.as_ref(), options()).unwrap();
        let host = HostId::new("crash-1").unwrap();
        let resume = store
            .hello(HelloWrite {
                host: host.clone(),
                hello: Hello {
                    protocol: 1,
                    agent_version: "t".into(),
                    host_id: "crash-1".into(),
                    boot_id: "b".into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    kernel: "6".into(),
                    interval_ms: 1000,
                },
                now_ms: 0,
            })
            .await
            .unwrap();
        let ids: Vec<u32> = (0..SERIES)
            .map(|i| {
                store
                    .series_id(&host, SeriesKey::new("m", &[("i", &i.to_string())]))
                    .unwrap()
            })
            .collect();
        let mut out = std::io::stdout();
        for seq in resume.. {
            let ts = base + seq as i64 * 1000;
            let points = ids.iter().map(|&id| (id, ts, seq as f64)).collect();
            store
                .write_batch(BatchWrite {
                    host: host.clone(),
                    seq,
                    points,
                })
                .await
                .unwrap();
            writeln!(out, "acked {seq}").unwrap();
            out.flush().unwrap();
        }
    });
    unreachable!("the child writes until it is killed")
}

#[test]
fn kill_9_while_chunks_close_loses_no_acked_point() {
    if let Ok(spec) = std::env::var(CHILD) {
        let (path, base) = spec.split_once('|').unwrap();
        child(path, base.parse().unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let base = base();
    let mut acked = 0u64;
    for round in 0..3 {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}|{base}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Let it run past a few dozen chunk closes, then kill it mid-stream.
        let target = acked + 100 + 37 * round;
        while acked < target {
            assert!(Instant::now() < deadline, "child too slow: {acked} acked");
            let Some(line) = lines.next() else {
                panic!("child exited after {acked} acks")
            };
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().unwrap();
            }
        }
        proc.kill().unwrap();
        proc.wait().unwrap();
        // Acks the child printed before dying count too.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().unwrap();
            }
        }

        let (store, writer) = Store::open_with(&path, options()).unwrap();
        let (_, series) = store
            .query("crash-1", "m", &[], (base, i64::MAX / 2), None, 100_000_000)
            .unwrap();
        assert_eq!(series.len(), SERIES);
        for s in &series {
            let ts: Vec<i64> = s.points.iter().map(|p| p.0).collect();
            // In order, none twice, and every acked one there (one more may have been
            // committed without its ack printed).
            assert!(
                ts.windows(2).all(|w| w[0] < w[1]),
                "duplicates after round {round}"
            );
            assert!(
                ts.len() as u64 >= acked,
                "{} of {acked} acked points",
                ts.len()
            );
            assert!(ts.len() as u64 <= acked + 1);
            for (i, t) in ts.iter().enumerate() {
                assert_eq!(*t, base + (i as i64 + 1) * 1000);
            }
        }
        // The host resumes after the last stored batch.
        assert!(store.host("crash-1").unwrap().last_seq >= acked);
        acked = store.host("crash-1").unwrap().last_seq;
        drop(store);
        writer.join();
    }
}
