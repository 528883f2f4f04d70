//! The demo's walk-through, as a newcomer follows it (README, "Try it on one machine"): the
//! real `nines-aggregator demo` with its real agent; the shop process is stopped with the
//! command the demo prints; the service goes down in the API and red on the status page, an
//! incident opens, the alert fires and its notification lands in the notifier's file, the
//! real `report availability` counts the lost minutes; then the demo starts the shop again and
//! everything recovers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nines_tests::demo::{self, read_env};
use nines_tests::{Proc, eventually, get_json};
use serde_json::Value;

/// The command the demo printed after `label`.
fn printed(out: &Path, label: &str) -> Option<String> {
    std::fs::read_to_string(out)
        .ok()?
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|c| c.trim().to_owned())
}

/// The newest `process_up` of the shop, if any in the last 10 s.
async fn shop_up(client: &reqwest::Client, url: &str, token: &str, host: &str) -> Option<f64> {
    let from = nines_common::model::now_ms() - 10_000;
    let q = format!(
        "{url}/api/v1/query?host={host}&name=process_up&label=process=nines-demo-shop&from={from}"
    );
    let doc = get_json(client, &q, token).await?;
    doc["series"][0]["points"].as_array()?.last()?[1].as_f64()
}

/// The class of the demo-shop service's tile on the overview.
async fn shop_tile(client: &reqwest::Client, url: &str, token: &str) -> Option<String> {
    let html = client
        .get(format!("{url}/status"))
        .header("cookie", format!("nines_token={token}"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let at = html.find("href=\"/status/service/demo-shop\"")?;
    let class = html[..at].rsplit("<a class=").next()?;
    Some(class.trim().to_owned())
}

/// The demo-shop incidents.
async fn incidents(client: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    get_json(
        client,
        &format!("{url}/api/v1/incidents?service=demo-shop"),
        token,
    )
    .await
    .and_then(|d| d["incidents"].as_array().cloned())
    .unwrap_or_default()
}

/// Notifications in the notifier's file: (status, alertname) per line.
fn notifications(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("notifications.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            (
                v["status"].as_str().unwrap_or_default().to_owned(),
                v["alerts"][0]["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walkthrough_shows_an_outage_and_its_recovery() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("demo.out");
    let mut demo =
        Proc::spawn(demo::command(&d.join("demo")).stdout(std::fs::File::create(&out).unwrap()));
    let dir = d.join("demo");
    let (url, token) = eventually(Duration::from_secs(15), || async { read_env(&dir) })
        .await
        .expect("demo.env");
    let stop = eventually(Duration::from_secs(10), || async {
        printed(&out, "stop the shop:")
    })
    .await
    .expect("the demo prints how to stop the shop");
    let report = printed(&out, "minutes lost:").expect("the demo prints the report command");
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("faster than production"),
        "the demo says its settings are faster than production's"
    );
    let client = nines_tests::http_client();
    let host = eventually(Duration::from_secs(15), || async {
        let hosts = get_json(&client, &format!("{url}/api/v1/hosts"), &token).await?;
        let h = hosts["hosts"].as_array()?.first()?.clone();
        (h["up"] == Value::Bool(true)).then(|| h["id"].as_str().map(str::to_owned))?
    })
    .await
    .expect("the local host is up");
    let up = eventually(Duration::from_secs(20), || async {
        (shop_up(&client, &url, &token, &host).await? == 1.0).then_some(())
    })
    .await;
    assert!(up.is_some(), "the shop runs and is watched");
    assert_eq!(
        shop_tile(&client, &url, &token).await.as_deref(),
        Some("g"),
        "demo-shop is green before the outage"
    );
    // Only processes that exist are watched: nothing is down before the outage.
    let q = format!("{url}/api/v1/query?host={host}&name=process_up");
    let doc = get_json(&client, &q, &token).await.unwrap();
    for s in doc["series"].as_array().unwrap() {
        let last = s["points"].as_array().unwrap().last().unwrap()[1].as_f64();
        assert_eq!(last, Some(1.0), "watched and not running: {}", s["labels"]);
    }
    let maintenance = get_json(&client, &format!("{url}/api/v1/maintenance"), &token)
        .await
        .unwrap();
    let m = &maintenance["maintenance"][0];
    assert_eq!(m["kind"], "weekly", "{maintenance}");
    assert_eq!(m["services"][0], "demo-shop", "{maintenance}");

    // The outage, with the printed command.
    let pid = std::fs::read_to_string(dir.join("shop.pid"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(alive(&pid));
    let status = Command::new("sh").args(["-c", &stop]).status().unwrap();
    assert!(status.success(), "{stop}");
    let killed_at = Instant::now();
    let down = eventually(Duration::from_secs(20), || async {
        (shop_up(&client, &url, &token, &host).await? == 0.0).then_some(())
    })
    .await;
    assert!(down.is_some(), "process_up turns 0");
    let from = nines_common::model::now_ms() - 3_600_000;
    let downtime = eventually(Duration::from_secs(20), || async {
        let a = get_json(
            &client,
            &format!("{url}/api/v1/availability?service=demo-shop&from={from}"),
            &token,
        )
        .await?;
        let m = a["services"][0]["downtime_minutes"].as_f64()?;
        (m > 0.0).then_some(m)
    })
    .await;
    assert!(downtime.is_some(), "the service is down in the API");
    // An incident opens and lasts: its end is null while the shop is down.
    let open = eventually(Duration::from_secs(20), || async {
        incidents(&client, &url, &token)
            .await
            .into_iter()
            .find(|i| i["end"].is_null() && i["service"] == "demo-shop")
    })
    .await;
    let Some(open) = open else {
        panic!(
            "no open incident: {:?}",
            incidents(&client, &url, &token).await
        );
    };
    assert!(
        open["title"]
            .as_str()
            .unwrap()
            .contains("nines-demo-shop not running"),
        "{open}"
    );
    assert_eq!(open["automatic"], true, "{open}");
    let red = eventually(Duration::from_secs(20), || async {
        (shop_tile(&client, &url, &token).await? == "r").then_some(())
    })
    .await;
    assert!(red.is_some(), "demo-shop turns red on the status page");
    let firing = eventually(Duration::from_secs(40), || async {
        let a = get_json(&client, &format!("{url}/api/v1/alerts"), &token).await?;
        a["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["alertname"] == "DemoShopDown" && a["state"] == "firing")
            .cloned()
    })
    .await;
    assert!(firing.is_some(), "DemoShopDown fires");
    let delivered = eventually(Duration::from_secs(30), || async {
        notifications(&dir)
            .contains(&("firing".into(), "DemoShopDown".into()))
            .then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "the notification is in the file: {:?}",
        notifications(&dir)
    );

    // The report, as printed, in JSON.
    let r = Command::new("sh")
        .args(["-c", &format!("{report} --format json --service demo-shop")])
        .output()
        .unwrap();
    let code = r.status.code().unwrap();
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        )
    });
    let lost = doc["services"][0]["downtime_minutes"].as_f64().unwrap();
    assert!(lost > 0.0, "{doc}");
    let met = doc["met"].as_bool().unwrap();
    assert_eq!(code, if met { 0 } else { 1 }, "exit 0 met, 1 missed: {doc}");

    // Recovery: the demo starts the shop again a minute after it stopped.
    let back = eventually(Duration::from_secs(90), || async {
        (shop_up(&client, &url, &token, &host).await? == 1.0).then_some(())
    })
    .await;
    assert!(back.is_some(), "the shop runs again");
    let after = killed_at.elapsed();
    assert!(
        after >= Duration::from_secs(55),
        "restarted after {after:?}"
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("nines-demo-shop started again"),
        "the demo says so"
    );
    let closed = eventually(Duration::from_secs(20), || async {
        let now = nines_common::model::now_ms();
        let list = incidents(&client, &url, &token).await;
        (!list.is_empty()
            && list
                .iter()
                .all(|i| i["end_ms"].as_i64().is_some_and(|e| e < now - 5_000)))
        .then_some(list)
    })
    .await;
    assert!(
        closed.is_some(),
        "the incident closes: {:?}",
        incidents(&client, &url, &token).await
    );
    let resolved = eventually(Duration::from_secs(40), || async {
        notifications(&dir)
            .contains(&("resolved".into(), "DemoShopDown".into()))
            .then_some(())
    })
    .await;
    assert!(
        resolved.is_some(),
        "the resolution is in the file: {:?}",
        notifications(&dir)
    );
    let green = eventually(Duration::from_secs(70), || async {
        (shop_tile(&client, &url, &token).await? == "g").then_some(())
    })
    .await;
    assert!(green.is_some(), "demo-shop is green again");

    let new_pid = std::fs::read_to_string(dir.join("shop.pid"))
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(new_pid, pid);
    let status = demo.terminate(Duration::from_secs(15)).expect("demo stops");
    assert!(status.success(), "{status:?}");
    assert!(!alive(&new_pid), "the shop stops with the demo");
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "{:?}",
        started.elapsed()
    );
}
