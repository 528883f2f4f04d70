//! `nines-aggregator report capacity` against a real aggregator fed over mTLS: a filesystem
//! filling 1 %/h is listed with when it reaches 90 %, one that is flat is not, and the exit
//! status says whether anything will cross.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use std::os::unix::fs::PermissionsExt;

use nines_aggregator::http::token_hash;
use nines_aggregator::{Config, Server};
use nines_common::proto::{Batch, Message, Point, SeriesDef};
use util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filling_disk_is_listed_with_its_crossing_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("capacity test CA");
    let path = write_config(dir.path(), &ca, &token_hash("cap-token"));
    let server = Server::start(&Config::load(&path).unwrap()).await.unwrap();
    let (mut r, mut w) = connect(server.ingest_addr, &ca.pem, Some(&ca.agent("db-1")))
        .await
        .unwrap();
    w.write(&Message::Hello(hello("db-1"))).await.unwrap();
    assert!(matches!(r.read().await.unwrap(), Some(Message::Welcome(_))));
    // Six hours every 10 minutes up to now: "/" from 50 % at 1 %/h, "/srv" flat at 95 %.
    let now = nines_common::model::now_ms();
    let mut points = Vec::new();
    for i in 0..=36i64 {
        let t = now - 6 * 3_600_000 + i * 600_000;
        points.push(Point {
            series: 1,
            ts_ms: t,
            value: 0.5 + 0.01 * i as f64 / 6.0,
        });
        points.push(Point {
            series: 2,
            ts_ms: t,
            value: 0.95,
        });
    }
    let def = |id, mount: &str| SeriesDef {
        id,
        name: "filesystem_used_ratio".into(),
        labels: vec![("mount".into(), mount.into())],
    };
    w.write(&Message::Batch(Batch {
        seq: 1,
        series_defs: vec![def(1, "/"), def(2, "/srv")],
        points,
    }))
    .await
    .unwrap();
    assert!(matches!(r.read().await.unwrap(), Some(Message::Ack(_))));

    let token = dir.path().join("token");
    std::fs::write(&token, "cap-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = |horizon: &'static str, format: &'static str| {
        let url = format!("http://{}", server.api_addr);
        let token = token.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nines-aggregator"))
                .args(["report", "capacity", "--url", &url, "--token-file"])
                .arg(&token)
                .args(["--window", "6h", "--horizon", horizon, "--threshold", "0.9"])
                .args(["--format", format])
                .output()
                .await
                .unwrap();
            (
                out.status.code().unwrap(),
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        }
    };
    // 0.56 now, +0.01/h: 0.9 in 34 h. Within 2 days: listed, exit 1.
    let (code, out, err) = run("2d", "json").await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["series"], 2);
    assert_eq!(v["crossing"].as_array().unwrap().len(), 1, "{v}");
    let c = &v["crossing"][0];
    assert_eq!(c["host"], "db-1");
    assert_eq!(c["labels"], "mount=/");
    assert!(
        (c["slope_per_day"].as_f64().unwrap() - 0.24).abs() < 1e-6,
        "{c}"
    );
    let reached = humantime::parse_rfc3339(c["reached_at"].as_str().unwrap()).unwrap();
    let hours = (reached
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - now) as f64
        / 3_600_000.0;
    assert!((hours - 34.0).abs() < 0.01, "{hours}");
    // Within a day: nothing, exit 0; the text says so.
    let (code, out, _) = run("1d", "text").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("none of 2 series"), "{out}");
    // A token file others can read: exit 2, before any request.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run("1d", "text").await;
    assert_eq!(code, 2);
    assert!(err.contains("chmod 600"), "{err}");
    drop((r, w));
    server.stop().await;
}
