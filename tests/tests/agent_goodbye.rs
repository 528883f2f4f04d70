//! A clean stop says goodbye, a kill does not: after SIGTERM the agent's last sample is
//! `agent_stopping`, delivered before it exits, and the silence that follows is not monitored
//! time; after `kill -9` the same silence is down time with an incident, in the host's
//! availability and in `/api/v1/incidents`.

use std::time::Duration;

use nines_common::model::now_ms;
use nines_tests::cluster::{Agent, Aggregator, Pki};
use nines_tests::{eventually, get_json};
use serde_json::Value;

async fn host_report(client: &reqwest::Client, agg: &Aggregator, host: &str) -> Value {
    let doc = get_json(
        client,
        &format!("{}/api/v1/availability?host={host}", agg.url),
        &agg.token,
    )
    .await
    .expect("availability answers");
    doc["services"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_is_not_monitored_and_a_kill_is_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let host = "bye-1";
    let mut agent = Agent::new(dir.path(), &pki, host, agg.ingest, "");
    let t0 = now_ms() - 60_000;
    agent.start();
    agent.first_seq(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // SIGTERM: the goodbye is stored before the agent has exited.
    agent.stop();
    let goodbye = agg
        .query(&client, host, "agent_stopping", None, t0, now_ms() + 60_000)
        .await;
    assert_eq!(goodbye.len(), 1, "no agent_stopping series");
    assert_eq!(goodbye[0].points.len(), 1, "{:?}", goodbye[0].points);
    let (bye_ms, value) = goodbye[0].points[0];
    assert_eq!(value, 1.0);
    let ticks = agg
        .query(
            &client,
            host,
            "nines_host_samples",
            None,
            t0,
            now_ms() + 60_000,
        )
        .await;
    assert_eq!(
        ticks[0].points.last().unwrap().0,
        bye_ms,
        "the goodbye is the last sample"
    );

    // Six intervals of silence after the goodbye: not monitored, no downtime, no incident.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = host_report(&client, &agg, host).await;
    assert_eq!(r["downtime_minutes"], 0.0, "{r}");
    assert_eq!(r["incident_count"], 0, "{r}");
    assert!(r["verdict"] == "met", "{r}");

    // Back, then killed: the same silence is an outage.
    agent.start();
    eventually(Duration::from_secs(15), || async {
        let s = agg
            .query(
                &client,
                host,
                "nines_host_samples",
                None,
                bye_ms + 1,
                now_ms() + 60_000,
            )
            .await;
        (s.first().map_or(0, |s| s.points.len()) >= 3).then_some(())
    })
    .await
    .expect("the agent ships again");
    agent.kill9();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = host_report(&client, &agg, host).await;
    assert!(r["downtime_minutes"].as_f64().unwrap() > 0.05, "{r}");
    assert_eq!(r["incident_count"], 1, "{r}");
    assert_eq!(r["verdict"], "missed", "{r}");
    let doc = get_json(
        &client,
        &format!("{}/api/v1/incidents?host={host}", agg.url),
        &agg.token,
    )
    .await
    .unwrap();
    let incidents = doc["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{doc}");
    assert_eq!(incidents[0]["service"], format!("host:{host}"));
    assert_eq!(incidents[0]["end"], Value::Null, "{doc}");
    assert_eq!(incidents[0]["title"], format!("{host} down"));
    agg.stop();
}
