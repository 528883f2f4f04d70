//! Remote write's encoding of requests, and its sender against a receiver on loopback that
//! refuses some requests.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Instant;

use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};

use super::*;
use crate::store::{BatchWrite, HelloWrite};

fn labels(name: &str) -> Labels {
    Arc::new(vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }])
}

#[test]
fn requests_hold_each_series_once_in_timestamp_order_and_round_trip() {
    let (a, b) = (labels("a"), labels("b"));
    let points = vec![
        (a.clone(), 2000, 2.0),
        (b.clone(), 1000, 9.0),
        (a.clone(), 1000, 1.0),
        (a.clone(), 3000, 3.0),
    ];
    let recs = encode(points, 3);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].1, 3);
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&recs[0].0)
        .unwrap();
    let req = WriteRequest::decode(raw.as_slice()).unwrap();
    assert_eq!(req.timeseries.len(), 2);
    let ts: Vec<i64> = req.timeseries[0]
        .samples
        .iter()
        .map(|s| s.timestamp)
        .collect();
    assert_eq!(ts, vec![1000, 2000]);
    let (body, newest) = merge(recs);
    assert_eq!(newest, 3000);
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let req = WriteRequest::decode(raw.as_slice()).unwrap();
    assert_eq!(req.timeseries.len(), 2, "merged by series");
    assert_eq!(req.samples(), 4);
    let ts: Vec<i64> = req.timeseries[0]
        .samples
        .iter()
        .map(|s| s.timestamp)
        .collect();
    assert_eq!(ts, vec![1000, 2000, 3000]);
}

/// A receiver answering with the queued statuses (204 once they run out), counting the
/// requests it gets.
async fn receiver(answers: &[u16]) -> (Arc<Mutex<Vec<u16>>>, String) {
    let queue = Arc::new(Mutex::new(
        answers.iter().copied().collect::<VecDeque<u16>>(),
    ));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (q, s) = (queue.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/write",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let (q, s) = (q.clone(), s.clone());
            async move {
                let code = q.lock().unwrap().pop_front().unwrap_or(204);
                s.lock().unwrap().push(code);
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (seen, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_and_a_400_is_dropped_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = Store::open(&dir.path().join("s.redb")).unwrap();
    let (seen, url) = receiver(&[503, 503, 204, 400]).await;
    let c: RemoteWriteConfig = toml::from_str(&format!(
        "url = \"{url}\"\nqueue_dir = \"{}\"\nmax_backoff = \"50ms\"\n",
        dir.path().join("q").display()
    ))
    .unwrap();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (rw, task) = RemoteWrite::start(&c, &store, shutdown).unwrap();
    let host = HostId::new("web-1").unwrap();
    store
        .hello(HelloWrite {
            host: host.clone(),
            hello: Hello {
                protocol: 1,
                agent_version: "t".into(),
                host_id: "web-1".into(),
                boot_id: "b".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                kernel: "6".into(),
                interval_ms: 1000,
            },
            now_ms: 1,
        })
        .await
        .unwrap();
    let id = store.series_id(&host, SeriesKey::new("m", &[])).unwrap();
    let now = nines_common::model::now_ms();
    // One batch, wait until it is delivered (after two 503s), then another, refused.
    let wait = |n: u64| {
        let rw = rw.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while rw.stats.sent.load(Ordering::Relaxed) + rw.stats.failed.load(Ordering::Relaxed)
                < n
            {
                assert!(Instant::now() < deadline, "not delivered in time");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    for (seq, n) in [(1u64, 1u64), (2, 2)] {
        store
            .write_batch(BatchWrite {
                host: host.clone(),
                seq,
                points: vec![(id, now + seq as i64, 1.0)],
            })
            .await
            .unwrap();
        wait(n).await;
    }
    assert_eq!(*seen.lock().unwrap(), vec![503, 503, 204, 400]);
    assert_eq!(rw.stats.sent.load(Ordering::Relaxed), 1);
    assert_eq!(
        rw.stats.failed.load(Ordering::Relaxed),
        1,
        "the 400 is dropped"
    );
    assert_eq!(
        rw.stats.retries.load(Ordering::Relaxed),
        2,
        "only the 503s are retried"
    );
    // No retry of the refused request follows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.lock().unwrap().len(), 4);
    shutdown_tx.send(true).unwrap();
    let _ = task.await;
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
    rw.finish();
}
