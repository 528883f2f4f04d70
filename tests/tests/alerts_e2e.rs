//! Alerts end to end: a real aggregator with a rules file, a real agent, and a webhook
//! receiver on loopback. The agent is killed: the receiver gets Alertmanager's version 4
//! payload for HostDown; the agent comes back: it gets the resolution. SIGHUP with a bad rules
//! file keeps the rules in force and says why; with a good one, the new rules apply.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use nines_tests::cluster::{Agent, Aggregator, Pki, log_tail};
use nines_tests::{eventually, get_json};
use serde_json::Value;

type Got = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn receiver() -> (Got, String) {
    let got: Got = Arc::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let state = state.clone();
            async move {
                state.lock().unwrap().push((h, body));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (got, url)
}

fn rules(url: &str, name: &str, runbook: bool) -> String {
    format!(
        "evaluation_interval = \"1s\"\n[grouping]\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\n\
         [[notifiers]]\nname = \"ops\"\nwebhook = {{ url = \"{url}\" }}\n\
         [[rules]]\nname = \"{name}\"\nkind = \"host_down\"\nintervals = 3\nseverity = \"critical\"\n\
         notify = [\"ops\"]\nsummary = \"{{{{host}}}} is silent\"\n{}",
        if runbook {
            "runbook = \"https://runbooks.example.com/host-down\"\n"
        } else {
            ""
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_down_notifies_a_webhook_resolves_and_sighup_reloads_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let (got, url) = receiver().await;
    let rules_path = dir.path().join("alerts.toml");
    std::fs::write(&rules_path, rules(&url, "HostDown", true)).unwrap();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.add_config(&format!(
        "\n[alerts]\nrules = \"{}\"\nexternal_url = \"http://nines.example.com\"\n",
        rules_path.display()
    ));
    agg.start_ready(&client).await;
    let mut agent = Agent::new(dir.path(), &pki, "edge-1", agg.ingest, "");
    agent.start();
    let seen = eventually(Duration::from_secs(30), || async {
        agg.last_seen_ms(&client, "edge-1").await
    })
    .await;
    assert!(seen.is_some(), "no data:\n{}", log_tail(&agent.log, 20));
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing fires while it reports"
    );

    agent.kill9();
    let firing = eventually(Duration::from_secs(30), || async {
        got.lock().unwrap().first().cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no notification:\n{}", log_tail(&agg.log, 30)));
    let (headers, body) = firing;
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "ops");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["groupKey"], "{}:{alertname=\"HostDown\"}");
    assert_eq!(body["externalURL"], "http://nines.example.com");
    assert_eq!(body["truncatedAlerts"], 0);
    let a = &body["alerts"][0];
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(a["status"], "firing");
    assert_eq!(
        a["labels"],
        serde_json::json!({"alertname": "HostDown", "host": "edge-1", "severity": "critical"})
    );
    assert_eq!(a["annotations"]["summary"], "edge-1 is silent");
    assert_eq!(
        a["annotations"]["runbook_url"],
        "https://runbooks.example.com/host-down"
    );
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert!(a["startsAt"].as_str().unwrap().ends_with('Z'), "{a}");
    assert_eq!(a["generatorURL"], "http://nines.example.com/api/v1/alerts");
    let base = agg.url.clone();
    let api = |path: &str| format!("{base}{path}");
    let active = get_json(&client, &api("/api/v1/alerts"), &agg.token)
        .await
        .unwrap();
    assert_eq!(active["alerts"][0]["state"], "firing", "{active}");

    agent.start();
    let resolved = eventually(Duration::from_secs(30), || async {
        got.lock().unwrap().get(1).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no resolution:\n{}", log_tail(&agg.log, 30)));
    assert_eq!(resolved.1["status"], "resolved");
    assert_eq!(resolved.1["alerts"][0]["status"], "resolved");
    let log = get_json(&client, &api("/api/v1/alerts/notifications"), &agg.token)
        .await
        .unwrap();
    assert_eq!(log["attempts"].as_array().unwrap().len(), 2, "{log}");

    // A bad file on SIGHUP: the rules in force stay, and the API says why.
    std::fs::write(&rules_path, rules(&url, "Silent", false)).unwrap();
    agg.hangup();
    let error = eventually(Duration::from_secs(10), || async {
        let r = get_json(&client, &api("/api/v1/alerts/rules"), &agg.token).await?;
        r["reload_error"].as_str().map(str::to_owned)
    })
    .await
    .expect("reload_error shown");
    assert!(error.contains("`runbook` is required"), "{error}");
    let r = get_json(&client, &api("/api/v1/alerts/rules"), &agg.token)
        .await
        .unwrap();
    assert_eq!(r["rules"][0]["name"], "HostDown");
    assert!(agg.running());

    // A good one replaces them.
    std::fs::write(&rules_path, rules(&url, "Silent", true)).unwrap();
    agg.hangup();
    let name = eventually(Duration::from_secs(10), || async {
        let r = get_json(&client, &api("/api/v1/alerts/rules"), &agg.token).await?;
        (r["reload_error"].is_null() && r["rules"][0]["name"] == "Silent").then_some(())
    })
    .await;
    assert!(name.is_some(), "{}", log_tail(&agg.log, 10));
    agent.stop();
    agg.stop();
}
