//! Issue 5, test 5: a silent network cut of 30 s between a real agent and the aggregator
//! (every byte dropped, no connection closed). The agent notices within its ack timeout (5 s
//! here), keeps spooling, and once the network is back delivers every tick: one point per
//! second of `cpu_usage_ratio{cpu="total"}`, no gap, no duplicate.
//!
//! The cut is a relay inside the test on 127.0.0.1 ([`nines_tests::blackhole`]) that stops
//! forwarding in both directions without closing anything. Connections made during the cut are
//! accepted and then never answered, so the agent's TLS handshake times out, as it would
//! against a host whose packets vanish.

use std::time::{Duration, Instant};

use nines_common::model::now_ms;
use nines_tests::blackhole::Blackhole;
use nines_tests::check;
use nines_tests::cluster::{Agent, Aggregator, Pki, log_tail};
use nines_tests::eventually;

const CUT: Duration = Duration::from_secs(30);
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
const NOTICED: &str = "no acknowledgement for 5s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_network_cut_is_noticed_and_costs_nothing() {
    let _no_flood = nines_tests::load::timed().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let relay = Blackhole::start(agg.ingest).await;
    let host = "cut-1";
    let mut agent = Agent::new(
        dir.path(),
        &pki,
        host,
        relay.addr,
        &format!("ack_timeout = \"{}s\"", ACK_TIMEOUT.as_secs()),
    );
    let started_ms = now_ms();
    agent.start();
    let first_seq = agent.first_seq(Duration::from_secs(10)).await;
    eventually(Duration::from_secs(15), || async {
        let seen = agg.last_seen_ms(&client, host).await?;
        (seen >= started_ms + 3000).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no data through the relay:\n{}", log_tail(&agent.log, 20)));

    relay.cut();
    let cut_at = Instant::now();
    let cut_ms = now_ms();
    // The oldest unacknowledged batch is at most one interval old when the cut starts.
    let noticed = eventually(ACK_TIMEOUT + Duration::from_secs(4), || async {
        agent.log_text().contains(NOTICED).then(|| cut_at.elapsed())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the agent did not log {NOTICED:?} within {:?} of the cut:\n{}",
            ACK_TIMEOUT + Duration::from_secs(4),
            log_tail(&agent.log, 20)
        )
    });
    assert!(
        noticed <= ACK_TIMEOUT + Duration::from_secs(2),
        "noticed after {noticed:?}"
    );
    let seen_during_cut = agg.last_seen_ms(&client, host).await.unwrap();
    tokio::time::sleep(CUT.saturating_sub(cut_at.elapsed())).await;
    let still_cut = agg.last_seen_ms(&client, host).await.unwrap();
    assert_eq!(
        still_cut, seen_during_cut,
        "nothing reached the aggregator during the cut"
    );
    assert!(agent.exited().is_none(), "the agent keeps running");
    relay.lift();
    let lifted_ms = now_ms();
    let lifted = Instant::now();

    // Handshakes begun during the cut time out after 10 s; then backoff (capped at 60 s).
    let target = lifted_ms + 2000;
    eventually(Duration::from_secs(80), || async {
        let seen = agg.last_seen_ms(&client, host).await?;
        (seen >= target).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the agent did not recover within 80 s of the network's return:\n{}",
            log_tail(&agent.log, 30)
        )
    });
    let recovered = lifted.elapsed();
    agent.stop();

    let stored = check::spooled_batches_stored_once(
        &client,
        &agg,
        &pki,
        &agent,
        first_seq,
        started_ms - 1000,
    )
    .await;
    let cpu = agg
        .query(
            &client,
            host,
            "cpu_usage_ratio",
            Some("cpu=total"),
            started_ms - 1000,
            now_ms() + 60_000,
        )
        .await;
    assert_eq!(cpu.len(), 1, "{cpu:?}");
    let ts: Vec<i64> = cpu[0].points.iter().map(|p| p.0).collect();
    if let Err(e) = check::every_second(&ts) {
        panic!("cpu_usage_ratio{{cpu=\"total\"}} of {host}: {e}");
    }
    let (first, last) = (ts[0], ts[ts.len() - 1]);
    assert_eq!(
        first,
        stored.ticks[0] + 1000,
        "CPU usage from the second tick on"
    );
    assert!(
        first < cut_ms && last >= target,
        "the points span the cut ({cut_ms}..{lifted_ms}): {first}..{last}"
    );
    eprintln!(
        "cut {:.0} s: noticed after {:.1} s (ack timeout {:?}); {} connections through the relay; \
         caught up {:.1} s after the network returned; {} CPU points, every second once; \
         {} batches stored once",
        CUT.as_secs_f64(),
        noticed.as_secs_f64(),
        ACK_TIMEOUT,
        relay.accepted(),
        recovered.as_secs_f64(),
        ts.len(),
        stored.ticks.len()
    );
    agg.stop();
}
