#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use nines_common::Sample;
use tokio::io::AsyncWriteExt;

use super::super::testing;
use super::*;

fn config(dir: &Path, max_series: usize) -> PushConfig {
    PushConfig {
        enabled: true,
        socket: Some(dir.join("push.sock")),
        max_series,
        stale_after: Duration::from_secs(300),
    }
}

async fn send(path: &Path, text: &str) {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(text.as_bytes()).await.unwrap();
}

/// Ticks until `done` holds for the samples (the server takes lines in its own task), for at
/// most 5 s.
async fn tick_until(push: &mut Push, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let start = Instant::now();
    testing::poll(Duration::from_secs(5), || {
        Some(testing::run_ok(push, &testing::tick(start, 0))).filter(|s| done(s))
    })
    .await
    .expect("the pushed lines never showed")
}

fn count(samples: &[Sample], name: &str) -> Option<f64> {
    testing::get(samples, name, &[])
}

#[tokio::test]
async fn pushed_lines_are_sampled_with_their_latest_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut push = Push::bind(&config(dir.path(), 1000), dir.path()).unwrap();
    let mode = std::fs::metadata(push.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    send(
        push.path(),
        "# TYPE shop_orders_total counter\nshop_orders_total{channel=\"web\"} 10\n\
         shop_queue_depth 4\nshop_orders_total{channel=\"web\"} 11\nnot a metric line\n\
         shop_last 7",
    )
    .await;
    let samples = tick_until(&mut push, |s| count(s, "agent_push_series") == Some(3.0)).await;
    assert_eq!(
        testing::get(&samples, "shop_orders_total", &[("channel", "web")]),
        Some(11.0)
    );
    assert_eq!(count(&samples, "shop_queue_depth"), Some(4.0));
    assert_eq!(
        count(&samples, "shop_last"),
        Some(7.0),
        "a last line without newline"
    );
    assert_eq!(count(&samples, "agent_push_errors_total"), Some(1.0));
    let path = push.path().to_owned();
    drop(push);
    assert!(!path.exists(), "the socket is removed when the agent stops");
}

/// Beyond max_series new series are refused and counted; known ones still update; a series
/// gone stale frees its place.
#[tokio::test]
async fn series_are_bounded_and_stale_ones_make_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut push = Push::bind(&config(dir.path(), 3), dir.path()).unwrap();
    let lines: String = (0..5)
        .map(|i| format!("app_jobs{{queue=\"q{i}\"}} {i}\n"))
        .collect();
    send(push.path(), &lines).await;
    let samples = tick_until(&mut push, |s| {
        count(s, "agent_push_refused_series_total") == Some(2.0)
    })
    .await;
    assert_eq!(count(&samples, "agent_push_series"), Some(3.0));
    assert_eq!(testing::get(&samples, "app_jobs", &[("queue", "q3")]), None);
    send(push.path(), "app_jobs{queue=\"q0\"} 100\n").await;
    tick_until(&mut push, |s| {
        testing::get(s, "app_jobs", &[("queue", "q0")]) == Some(100.0)
    })
    .await;

    // Past stale_after every series is forgotten and new ones are taken again.
    let later = Tick {
        ts_ms: 0,
        now: Instant::now() + Duration::from_secs(301),
    };
    let samples = testing::run_ok(&mut push, &later);
    assert_eq!(count(&samples, "agent_push_series"), Some(0.0));
    send(push.path(), "app_jobs{queue=\"q4\"} 4\n").await;
    tick_until(&mut push, |s| {
        testing::get(s, "app_jobs", &[("queue", "q4")]) == Some(4.0)
    })
    .await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("push.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let push = Push::bind(&config(dir.path(), 10), dir.path()).unwrap();
    drop(push);
    std::fs::write(&path, "precious").unwrap();
    assert!(Push::bind(&config(dir.path(), 10), dir.path()).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    // The default path is in the state directory.
    let default = PushConfig {
        socket: None,
        ..config(dir.path(), 10)
    };
    let push = Push::bind(&default, &dir.path().join("state-less")).map(|p| p.path().to_owned());
    assert!(push.is_err(), "no state directory, no socket");
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let push = Push::bind(&default, &dir.path().join("state")).unwrap();
    assert_eq!(push.path(), dir.path().join("state/push.sock"));
}
