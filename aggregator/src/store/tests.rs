#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nines_common::proto::Hello;
use proptest::prelude::*;
use redb::{ReadableTable, ReadableTableMetadata};

use super::*;

const HOUR_MS: i64 = 3_600_000;

/// A recent hour boundary: test data must be younger than the default retention, which the
/// store's background pass enforces.
fn base() -> i64 {
    rollup::bucket(nines_common::model::now_ms() - 86_400_000, HOUR_MS)
}

fn options(chunk_points: usize) -> StoreOptions {
    StoreOptions {
        chunk_points,
        ..StoreOptions::default()
    }
}

async fn hello(store: &Store, host: &HostId) {
    store
        .hello(HelloWrite {
            host: host.clone(),
            hello: Hello {
                protocol: 1,
                agent_version: "t".into(),
                host_id: host.to_string(),
                boot_id: "b".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                kernel: "6".into(),
                interval_ms: 10_000,
            },
            now_ms: 0,
        })
        .await
        .unwrap();
}

/// Writes `points` of one series in batches of `per_batch`, numbered from `seq`.
async fn write(
    store: &Store,
    host: &HostId,
    name: &str,
    points: &[(i64, f64)],
    per_batch: usize,
    seq: &mut u64,
) -> u32 {
    let id = store
        .series_id(host, SeriesKey::new(name, &[("k", "v")]))
        .unwrap();
    for chunk in points.chunks(per_batch) {
        *seq += 1;
        store
            .write_batch(BatchWrite {
                host: host.clone(),
                seq: *seq,
                points: chunk.iter().map(|&(t, v)| (id, t, v)).collect(),
            })
            .await
            .unwrap();
    }
    id
}

fn raw(store: &Store, host: &str, name: &str, from: i64, to: i64) -> Vec<(i64, f64)> {
    let (res, series) = store
        .query(host, name, &[], (from, to), None, 10_000_000)
        .unwrap();
    assert_eq!(res, Resolution::Raw);
    assert!(series.len() <= 1);
    series
        .into_iter()
        .next()
        .map(|s| s.points)
        .unwrap_or_default()
}

fn stepped(
    store: &Store,
    name: &str,
    (from, to): (i64, i64),
    step: Step,
) -> (Resolution, Vec<(i64, f64)>) {
    let (res, series) = store
        .query("h", name, &[], (from, to), Some(step), 10_000_000)
        .unwrap();
    (
        res,
        series
            .into_iter()
            .next()
            .map(|s| s.points)
            .unwrap_or_default(),
    )
}

fn wal_rows(path: &Path) -> u64 {
    let db = Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    txn.open_table(WAL).unwrap().len().unwrap()
}

fn chunk_rows(path: &Path) -> u64 {
    let db = Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    txn.open_table(CHUNKS).unwrap().len().unwrap()
}

#[tokio::test]
async fn points_read_back_across_closed_chunks_heads_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let host = HostId::new("h").unwrap();
    let points: Vec<(i64, f64)> = (0..1000)
        .map(|i| (base() + i * 10_000, (i % 17) as f64 * 0.5))
        .collect();
    {
        let (store, writer) = Store::open_with(&path, options(64)).unwrap();
        hello(&store, &host).await;
        let mut seq = 0;
        write(&store, &host, "m", &points, 7, &mut seq).await;
        // Closed chunks and an open head together give every point once, in order.
        assert_eq!(raw(&store, "h", "m", i64::MIN, i64::MAX), points);
        assert_eq!(
            raw(&store, "h", "m", points[100].0, points[199].0),
            points[100..200].to_vec()
        );
        drop(store);
        writer.join();
    }
    // The write-ahead table holds only what the open head needs: far fewer records than the
    // 143 batches written.
    let wal = wal_rows(&path);
    assert!((1..=12).contains(&wal), "{wal} write-ahead records left");
    assert!(chunk_rows(&path) >= 14);
    let (store, writer) = Store::open_with(&path, options(64)).unwrap();
    assert_eq!(raw(&store, "h", "m", i64::MIN, i64::MAX), points);
    // A flush closes the rebuilt head; nothing is lost or doubled.
    assert_eq!(store.flush().await.unwrap(), 1);
    assert_eq!(raw(&store, "h", "m", i64::MIN, i64::MAX), points);
    drop(store);
    writer.join();
    assert_eq!(wal_rows(&path), 0);
}

#[tokio::test]
async fn old_heads_close_and_a_duplicate_batch_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let host = HostId::new("h").unwrap();
    let (store, writer) = Store::open_with(
        &path,
        StoreOptions {
            head_max_age: Duration::from_millis(300),
            ..options(1000)
        },
    )
    .unwrap();
    hello(&store, &host).await;
    let mut seq = 0;
    let t = base();
    let both = vec![(t + 1_000, 1.0), (t + 2_000, 2.0)];
    write(&store, &host, "m", &both, 2, &mut seq).await;
    let mut again = seq - 1;
    write(&store, &host, "m", &[(t + 3_000, 3.0)], 1, &mut again).await;
    assert_eq!(raw(&store, "h", "m", t, t + 10_000), both);
    // The ticker closes the head once it is older than head_max_age.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store
        .stats()
        .chunks_closed
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the old head was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(raw(&store, "h", "m", t, t + 10_000), both);
    drop(store);
    writer.join();
    assert_eq!(wal_rows(&path), 0);
}

fn reference(points: &[(i64, f64)], from: i64, to: i64, step: i64, f: AggFn) -> Vec<(i64, f64)> {
    let inside = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= rollup::bucket(from, step) && *t <= to);
    let mut sorted: Vec<(i64, f64)> = inside.collect();
    sorted.sort_by_key(|p| p.0);
    rollup::aggregate(sorted, step)
        .into_iter()
        .map(|(b, a)| (b, a.get(f)))
        .collect()
}

fn close_enough(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0 && (x.1 == y.1 || (x.1 - y.1).abs() <= 1e-9 * x.1.abs().max(1.0))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Rollups equal the aggregates of the raw points, for every aggregation, whether the
    /// points sit in closed chunks or in the open head, in or out of order, with gaps.
    #[test]
    fn rollups_equal_the_aggregates_of_the_raw_points(
        steps in prop::collection::vec((1i64..=120_000, -1e6f64..1e6), 50..600),
        shuffle in any::<bool>(),
        chunk_points in 16usize..100,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let host = HostId::new("h").unwrap();
            let (store, writer) =
                Store::open_with(&dir.path().join("s.redb"), options(chunk_points)).unwrap();
            hello(&store, &host).await;
            let first = base();
            let mut t = first;
            let mut points: Vec<(i64, f64)> = steps
                .iter()
                .map(|(dt, v)| {
                    t += dt;
                    (t, *v)
                })
                .collect();
            if shuffle {
                let n = points.len();
                for i in (0..n).step_by(7) {
                    points.swap(i, (i * 31 + 3) % n);
                }
            }
            let mut seq = 0;
            write(&store, &host, "m", &points, 5, &mut seq).await;
            let last = t;
            for (step, want_res) in [
                (60_000, Resolution::Minute),
                (300_000, Resolution::Minute),
                (HOUR_MS, Resolution::Hour),
                (45_000, Resolution::Raw),
            ] {
                for f in [AggFn::Avg, AggFn::Min, AggFn::Max, AggFn::Sum, AggFn::Last, AggFn::Count] {
                    let from = first + (last - first) / 3;
                    let (res, got) = stepped(&store, "m", (from, last), Step { ms: step, agg: f });
                    prop_assert_eq!(res, want_res);
                    let want = reference(&points, from, last, step, f);
                    prop_assert!(close_enough(&got, &want), "step {} {:?}: {:?} vs {:?}", step, f, got, want);
                }
            }
            drop(store);
            writer.join();
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn retention_deletes_exactly_what_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let host = HostId::new("h").unwrap();
    let day = 86_400_000i64;
    let (store, writer) = Store::open_with(
        &path,
        StoreOptions {
            raw_retention: Duration::from_secs(2 * 86_400),
            rollup_1m_retention: Duration::from_secs(3 * 86_400),
            rollup_1h_retention: Duration::from_secs(4 * 86_400),
            ..options(50)
        },
    )
    .unwrap();
    hello(&store, &host).await;
    let now = nines_common::model::now_ms();
    // Six days of a point every 10 minutes, up to now.
    let points: Vec<(i64, f64)> = (0..6 * 144)
        .rev()
        .map(|i| (now - i * 600_000, i as f64))
        .collect();
    let mut seq = 0;
    write(&store, &host, "m", &points, 10, &mut seq).await;
    store.flush().await.unwrap();
    store.enforce_retention().await.unwrap();
    let now_after = nines_common::model::now_ms();
    let kept = raw(&store, "h", "m", i64::MIN, i64::MAX);
    // Exactly the points younger than two days stay (the cutoff moved by the time the pass
    // took, so allow points in that sliver to go either way).
    let sure: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= now_after - 2 * day)
        .collect();
    let maybe: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= now - 2 * day)
        .collect();
    assert!(kept == sure || kept == maybe, "{} kept", kept.len());
    // 1 min buckets entirely older than three days are gone, younger ones stay whole.
    let (_, minutes) = stepped(
        &store,
        "m",
        (now - 10 * day, now),
        Step {
            ms: 60_000,
            agg: AggFn::Count,
        },
    );
    let oldest = minutes.first().unwrap().0;
    assert!(oldest + 60_000 > now_after - 3 * day && oldest <= now - 3 * day + 600_000);
    assert!(minutes.iter().all(|(_, n)| *n == 1.0));
    let (_, hours) = stepped(
        &store,
        "m",
        (now - 10 * day, now),
        Step {
            ms: HOUR_MS,
            agg: AggFn::Count,
        },
    );
    let oldest = hours.first().unwrap().0;
    assert!(oldest + HOUR_MS > now_after - 4 * day && oldest <= now - 4 * day + HOUR_MS);
    assert_eq!(hours.iter().map(|(_, n)| n).sum::<f64>() as usize, {
        points.iter().filter(|(t, _)| *t >= oldest).count()
    });
    drop(store);
    writer.join();
}

#[tokio::test]
async fn a_query_over_its_point_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostId::new("h").unwrap();
    let (store, writer) = Store::open_with(&dir.path().join("s.redb"), options(16)).unwrap();
    hello(&store, &host).await;
    let points: Vec<(i64, f64)> = (0..100).map(|i| (i * 1000, 1.0)).collect();
    let mut seq = 0;
    write(&store, &host, "m", &points, 10, &mut seq).await;
    let too_many = store.query("h", "m", &[], (0, 100_000), None, 99);
    assert!(matches!(
        too_many,
        Err(QueryError::TooManyPoints {
            points: 100,
            max: 99
        })
    ));
    // A step's bucket count is checked before anything is read.
    let step = Some(Step {
        ms: 1000,
        agg: AggFn::Max,
    });
    let buckets = store.query("h", "m", &[], (0, 10 * 86_400_000), step, 11_000);
    assert!(matches!(buckets, Err(QueryError::TooManyPoints { .. })));
    drop(store);
    writer.join();
}

#[tokio::test]
async fn small_chunks_merge_into_long_ones_and_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let host = HostId::new("h").unwrap();
    let t0 = base();
    // Two days at 60 s: a merged chunk may span one day at most.
    let points: Vec<(i64, f64)> = (0..2880)
        .map(|i| (t0 - 86_400_000 + i * 60_000, (i % 100) as f64))
        .collect();
    let (store, writer) = Store::open_with(
        &path,
        StoreOptions {
            compact_points: 1000,
            // No background pass: this test runs them.
            maintenance_every: Duration::from_secs(86_400),
            ..options(16)
        },
    )
    .unwrap();
    hello(&store, &host).await;
    let mut seq = 0;
    write(&store, &host, "m", &points, 40, &mut seq).await;
    store.flush().await.unwrap();
    let hourly = |store: &Store| {
        stepped(
            store,
            "m",
            (t0 - 2 * 86_400_000, t0 + 86_400_000),
            Step {
                ms: HOUR_MS,
                agg: AggFn::Sum,
            },
        )
    };
    let before = hourly(&store);
    let merged = store.compact().await.unwrap();
    assert_eq!(raw(&store, "h", "m", i64::MIN, i64::MAX), points);
    assert_eq!(hourly(&store), before);
    // A head closes at the commit after it reached 16 points, so with 40 points per batch
    // the 72 chunks hold 40 each; they become three of at most 1000 points (and a day).
    assert_eq!(merged, 72 - 3);
    // A second pass finds nothing more to do.
    assert_eq!(store.compact().await.unwrap(), 0);
    drop(store);
    writer.join();
    assert_eq!(chunk_rows(&path), 3);
}

/// Everything a user can read back from a store: every series' raw points and hourly sums,
/// and the host record.
type Contents = Vec<(Vec<(i64, f64)>, (Resolution, Vec<(i64, f64)>))>;

fn contents(store: &Store, names: &[String], (from, to): (i64, i64)) -> Contents {
    assert_eq!(store.series("h").unwrap().len(), names.len());
    names
        .iter()
        .map(|name| {
            let hourly = stepped(
                store,
                name,
                (from, to),
                Step {
                    ms: HOUR_MS,
                    agg: AggFn::Sum,
                },
            );
            (raw(store, "h", name, i64::MIN, i64::MAX), hourly)
        })
        .collect()
}

#[tokio::test]
async fn compacting_the_file_gives_back_its_free_pages_and_keeps_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let host = HostId::new("h").unwrap();
    let t0 = base() - 2 * 86_400_000;
    let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    // Percentages with two decimals: about a byte per point, so closed chunks get merged.
    let value = |s: usize, i: i64| ((i as f64 * 0.37 + s as f64).sin() * 5e3).round().abs() / 100.0;
    let (store, writer) = Store::open_with(&path, options(240)).unwrap();
    hello(&store, &host).await;
    let ids: Vec<u32> = names
        .iter()
        .map(|n| {
            store
                .series_id(&host, SeriesKey::new(n, &[("k", "v")]))
                .unwrap()
        })
        .collect();
    let mut seq = 0;
    // One batch per 10 s tick, every series in it; heads close at 240 points.
    for i in 0..2000i64 {
        seq += 1;
        let points = ids
            .iter()
            .enumerate()
            .map(|(s, &id)| (id, t0 + i * 10_000, value(s, i)))
            .collect();
        store
            .write_batch(BatchWrite {
                host: host.clone(),
                seq,
                points,
            })
            .await
            .unwrap();
    }
    // Merge the closed chunks (the pages they held are freed), and leave open heads behind.
    assert!(store.compact().await.unwrap() > 0);
    let before = contents(&store, &names, (t0 - HOUR_MS, t0 + 2 * 86_400_000));
    assert_eq!(before[7].0.len(), 2000);
    drop(store);
    writer.join();
    // A table of another module (availability keeps its own) is carried over untouched.
    const OTHER: TableDefinition<&str, u64> = TableDefinition::new("other");
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OTHER).unwrap().insert("kept", 7).unwrap();
        txn.commit().unwrap();
    }

    let (size_before, size_after) = Store::compact_file(&path).unwrap();
    assert_eq!(size_after, std::fs::metadata(&path).unwrap().len());
    // The file holds its pages and little else: redb's header and allocator state.
    let db = Database::open(&path).unwrap();
    let txn = db.begin_write().unwrap();
    let stats = txn.stats().unwrap();
    let used = stats.allocated_pages() * stats.page_size() as u64;
    assert_eq!(
        txn.open_table(OTHER)
            .unwrap()
            .get("kept")
            .unwrap()
            .unwrap()
            .value(),
        7
    );
    drop(txn);
    drop(db);
    assert!(
        size_after <= used + 16 * 4096,
        "{size_after} bytes for {used} bytes of pages (was {size_before})"
    );
    // How far the file grew before depends on how the background ticks fell between the
    // commits; it always held the merged-away chunks' pages.
    assert!(size_after < size_before, "{size_before} -> {size_after}");

    // Every point, rollup and open head is still there, and the store writes on.
    let (store, writer) = Store::open_with(&path, options(240)).unwrap();
    assert_eq!(
        contents(&store, &names, (t0 - HOUR_MS, t0 + 2 * 86_400_000)),
        before
    );
    assert_eq!(store.host("h").unwrap().last_seq, seq);
    write(
        &store,
        &host,
        "m3",
        &[(t0 + 2000 * 10_000, 1.0)],
        1,
        &mut seq,
    )
    .await;
    assert_eq!(raw(&store, "h", "m3", i64::MIN, i64::MAX).len(), 2001);
    drop(store);
    writer.join();
}
