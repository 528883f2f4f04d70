//! Issue 5, test 3: `kill -9` of the agent in the middle of a write, ten times. Each time it
//! restarts, its spool opens (no error exit), and it carries on from the next seq; at the end
//! the aggregator holds every tick the agent spooled, each once, with all its points.
//!
//! Each kill aims at a spool write: from just before a tick boundary the test watches the
//! agent's threads in `/proc/PID/task/*/syscall` and kills the moment one is blocked in
//! `fsync` or `fdatasync` (x86-64 and aarch64 numbers): the record's own `fdatasync`, or, on
//! the first tick after a restart, the `fsync` of the new, preallocated segment. Odd rounds
//! aim at that first tick. If it sees neither within 300 ms it kills then, at a random moment.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nines_common::model::now_ms;
use nines_tests::check;
use nines_tests::cluster::{Agent, Aggregator, Pki, log_tail};
use nines_tests::eventually;

const KILLS: usize = 10;

/// Syscall numbers of `fsync` and `fdatasync`: a thread blocked in them shows the number in
/// `/proc/PID/task/TID/syscall` (one on the CPU shows "running").
#[cfg(target_arch = "x86_64")]
const SYNCS: [&str; 2] = ["74", "75"];
#[cfg(target_arch = "aarch64")]
const SYNCS: [&str; 2] = ["82", "83"];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYNCS: [&str; 0] = [];

/// The `syscall` files of `pid`'s threads.
fn syscall_files(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|t| Some(t.ok()?.path().join("syscall")))
                .collect()
        })
        .unwrap_or_default()
}

/// Which file sync (0 `fsync`, 1 `fdatasync`) one of the threads is blocked in now.
fn syncing(files: &[PathBuf]) -> Option<usize> {
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        let nr = text.split_whitespace().next()?;
        SYNCS.iter().position(|s| *s == nr)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_mid_write_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.start_ready(&client).await;
    let host = "crash-1";
    let mut agent = Agent::new(dir.path(), &pki, host, agg.ingest, "");
    let started_ms = now_ms();
    agent.start();
    let first_seq = agent.first_seq(Duration::from_secs(10)).await;

    // Kills inside fsync (a new segment) and fdatasync (a record).
    let mut in_sync = [0usize; 2];
    for round in 0..KILLS {
        // Even rounds run a while first (1.2 to 2.5 s); odd ones aim at the first tick after
        // the restart. Either way the boundary aimed at is at least 300 ms away.
        if round % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(1200 + fastrand::u64(0..1300))).await;
        }
        if let Some(status) = agent.exited() {
            panic!(
                "round {round}: the agent exited ({status}) after a restart:\n{}",
                log_tail(&agent.log, 20)
            );
        }
        let files = syscall_files(agent.pid().unwrap());
        let boundary = (now_ms() + 300) / 1000 * 1000 + 1000;
        let lead = u64::try_from(boundary - 2 - now_ms()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(lead)).await;
        let until = Instant::now() + Duration::from_millis(300);
        let mut which = None;
        tokio::task::block_in_place(|| {
            agent.kill9_when(until, |_| {
                which = syncing(&files);
                which.is_some()
            })
        });
        if let Some(w) = which {
            in_sync[w] += 1;
        }
        agent.start();
    }

    // Let it settle and ship everything up to a fresh tick.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agent.exited().is_none(),
        "the agent exited after the last restart:\n{}",
        log_tail(&agent.log, 20)
    );
    let target = now_ms() + 1000;
    eventually(Duration::from_secs(75), || async {
        let s = agg.last_seen_ms(&client, host).await?;
        (s >= target).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the agent did not catch up:\n{}", log_tail(&agent.log, 20)));
    agent.stop();

    let log = agent.log_text();
    let starts = log.matches("nines-agent starting").count();
    assert_eq!(starts, KILLS + 1, "every restart got as far as running");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "errors in the agent's log: {errors:#?}");
    let torn = log.matches("truncating the segment").count();

    let stored = check::spooled_batches_stored_once(
        &client,
        &agg,
        &pki,
        &agent,
        first_seq,
        started_ms - 1000,
    )
    .await;
    eprintln!(
        "{KILLS} kills: {} inside a new segment's fsync, {} inside a record's fdatasync; \
         {torn} torn records cut off at restart; {} batches (seq {first_seq}..={}) stored once each",
        in_sync[0],
        in_sync[1],
        stored.ticks.len(),
        stored.through_seq
    );
    agg.stop();
}
