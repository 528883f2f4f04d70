//! The store's directory on a small tmpfs that fills up: no crash, no ack, /healthz says
//! why; once space is freed the store reopens itself and the batches that were refused are
//! stored when sent again. It mounts a tmpfs: as root directly, as a normal user inside a
//! user + mount namespace (tests/src/privileged.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use nines_aggregator::http::{self, AppState};
use nines_aggregator::ingest::Connections;
use nines_aggregator::store::{BatchWrite, HelloWrite, Store, StoreOptions};
use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};
use tower::ServiceExt;

#[path = "../../tests/src/privileged.rs"]
mod privileged;

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed (this test needs root or a user namespace): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

async fn healthz(app: &axum::Router) -> (StatusCode, serde_json::Value) {
    let resp = app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_acks_says_why_and_recovers_when_space_returns() {
    if !privileged::run_as_root("a_full_disk_stops_acks_says_why_and_recovers_when_space_returns") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _mount = Tmpfs::mount(dir.path(), "16m");
    let path = dir.path().join("nines.redb");
    // Heads never close in this test: everything stays in the write-ahead table, which
    // grows until the disk is full.
    let options = StoreOptions {
        chunk_points: 1 << 20,
        head_max_age: Duration::from_secs(86_400),
        ..StoreOptions::default()
    };
    let (store, writer) = Store::open_with(&path, options).unwrap();
    let app = http::router(AppState::new(
        store.clone(),
        &[],
        Arc::new(Connections::default()),
    ));
    let host = HostId::new("full-1").unwrap();
    store
        .hello(HelloWrite {
            host: host.clone(),
            hello: Hello {
                protocol: 1,
                agent_version: "t".into(),
                host_id: "full-1".into(),
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
    let ids: Vec<u32> = (0..1000)
        .map(|i| {
            store
                .series_id(&host, SeriesKey::new("m", &[("i", &i.to_string())]))
                .unwrap()
        })
        .collect();
    let t0 = (nines_common::model::now_ms() - 3_600_000) / 1000 * 1000;
    let batch = |seq: u64| BatchWrite {
        host: host.clone(),
        seq,
        points: ids
            .iter()
            .map(|&id| (id, t0 + seq as i64 * 1000, seq as f64))
            .collect(),
    };
    // Leave a little room beside the store, then write until a commit fails.
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 12 << 20]).unwrap();
    let mut acked = 0u64;
    let mut refused = None;
    for seq in 1..=2000u64 {
        match store.write_batch(batch(seq)).await {
            Ok(through) => {
                assert_eq!(through, seq);
                acked = seq;
            }
            Err(e) => {
                refused = Some((seq, e.to_string()));
                break;
            }
        }
    }
    let (first_refused, why) = refused.expect("the disk never filled up");
    assert!(acked >= 1, "nothing was stored before the disk filled");
    assert!(why.contains("No space left"), "{why}");
    // Refused, not acked, and said so on /healthz; later batches are refused too.
    let (status, body) = healthz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["reason"].as_str().unwrap().contains("No space left"),
        "{body}"
    );
    assert!(store.write_batch(batch(first_refused)).await.is_err());

    // Space comes back: within a few retries the store reopens and accepts the backlog.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = first_refused;
    while seq < first_refused + 20 {
        assert!(Instant::now() < deadline, "the store did not recover");
        match store.write_batch(batch(seq)).await {
            Ok(through) => {
                assert_eq!(through, seq);
                seq += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let (status, body) = healthz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Every acked batch and the resent backlog, once each.
    let (_, series) = store
        .query(
            "full-1",
            "m",
            &[("i".into(), "7".into())],
            (t0, i64::MAX / 2),
            None,
            1_000_000,
        )
        .unwrap();
    let ts: Vec<i64> = series[0].points.iter().map(|p| p.0).collect();
    let want: Vec<i64> = (1..seq).map(|s| t0 + s as i64 * 1000).collect();
    assert_eq!(ts, want);
    drop(app);
    drop(store);
    writer.join();
    // And the file opens again with the same points.
    let (store, writer) = Store::open(&path).unwrap();
    let (_, series) = store
        .query(
            "full-1",
            "m",
            &[("i".into(), "7".into())],
            (t0, i64::MAX / 2),
            None,
            1_000_000,
        )
        .unwrap();
    assert_eq!(series[0].points.len(), want.len());
    drop(store);
    writer.join();
}
