//! `serve --log-format json`: every line the aggregator logs is one JSON object a log shipper
//! can index, with level, message and the event's fields.

use nines_tests::cluster::{Aggregator, Pki};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_are_objects_with_level_message_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.serve_args = vec!["--log-format".into(), "json".into()];
    agg.start_ready(&client).await;
    agg.stop();
    let text = std::fs::read_to_string(&agg.log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{text}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    let serving = lines
        .iter()
        .find(|l| l["fields"]["message"] == "nines-aggregator serving")
        .unwrap_or_else(|| panic!("no start line in {text}"));
    assert_eq!(serving["level"], "INFO");
    assert_eq!(
        serving["fields"]["api_addr"].as_str().unwrap(),
        agg.url.trim_start_matches("http://")
    );
}
