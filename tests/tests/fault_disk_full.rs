//! Issue 5, test 4: the aggregator's data directory on a small tmpfs that fills up: no crash,
//! no ack, /healthz says why; once space is freed, the backlog drains.
//!
//! The real `nines-aggregator` keeps its store on a 24 MiB tmpfs (with heads that never close,
//! so every point stays in the write-ahead table and the file grows with each commit). A filler
//! file takes all but a few MiB of it, and a client speaking the real protocol over mTLS sends
//! batches of many series until the aggregator answers `Error{StorageUnavailable}` instead of
//! an ack. Then `/healthz` must be 503 with the reason, the log must say it, a new connection
//! must be refused at `Hello`, and the process must still run. The filler is deleted: within
//! 30 s `/healthz` is 200, the client reconnects, resumes where `Welcome` says, sends again what
//! was not acked plus some new batches, and all are acked. Finally every acked batch is in the
//! API exactly once in every series. It mounts a tmpfs: as root directly, as a normal user
//! inside a user + mount namespace (`nines_tests::privileged`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nines_common::model::now_ms;
use nines_common::proto::{Batch, ErrorCode, ErrorMsg, Message, Point, SeriesDef};
use nines_tests::cluster::{Aggregator, Pki, log_tail};
use nines_tests::wire;
use tokio::sync::mpsc;

/// The client's host name (its certificate's common name).
const HOST: &str = "fill-1";
/// Size of the tmpfs that holds the store.
const TMPFS: &str = "24m";
/// Free space the filler leaves on it.
const HEADROOM: u64 = 4 << 20;
/// Series per batch: one point each, 20 bytes in the write-ahead table.
const SERIES: usize = 2000;
/// Unacknowledged batches in flight at most.
const WINDOW: u64 = 16;
/// The fill gives up (and the test fails) after this many batches or this long.
const MAX_FILL_BATCHES: u64 = 400;
const FILL_LIMIT: Duration = Duration::from_secs(15);
/// New batches sent after the recovery, beside the ones sent again.
const AFTER: u64 = 20;

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed (this test needs root or a user namespace): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self(dir.to_owned())
    }

    /// Free bytes on it.
    fn available(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.0)
            .output()
            .expect("run stat -f");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
        it.next().unwrap() * it.next().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn batch(seq: u64, base_ts: i64, define: bool) -> Batch {
    Batch {
        seq,
        series_defs: if define {
            (0..SERIES)
                .map(|i| SeriesDef {
                    id: i as u32,
                    name: "fill_seq".into(),
                    labels: vec![("series".into(), i.to_string())],
                })
                .collect()
        } else {
            Vec::new()
        },
        // One point per series per batch, a second apart; the value is the seq.
        points: (0..SERIES)
            .map(|i| Point {
                series: i as u32,
                ts_ms: base_ts + seq as i64 * 1000,
                value: seq as f64,
            })
            .collect(),
    }
}

/// How a session ended.
#[derive(Debug)]
enum End {
    /// Every batch up to the last one asked for was acked.
    AllAcked,
    /// The aggregator sent an error instead of an ack.
    Refused(ErrorMsg),
    /// The connection ended without an error.
    Closed,
    /// The time limit passed.
    TimedOut,
}

/// What the client knows.
#[derive(Debug, Default)]
struct Client {
    /// Highest seq acknowledged.
    acked: u64,
    /// Highest seq sent.
    sent: u64,
}

impl Client {
    /// One connection: sends batches `from..=last` with at most `WINDOW` unacked and reads the
    /// acks until all are acked, an error comes, the connection ends, or `limit` passes.
    async fn session(
        &mut self,
        session: wire::Session,
        from: u64,
        last: u64,
        base_ts: i64,
        limit: Duration,
    ) -> End {
        let deadline = tokio::time::Instant::now() + limit;
        let wire::Session {
            mut reader,
            mut writer,
            ..
        } = session;
        let (tx, mut rx) = mpsc::channel(64);
        let reader_task = tokio::spawn(async move {
            while let Ok(Some(msg)) = reader.read().await {
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
        let mut next = from;
        let mut writable = true;
        let end = loop {
            if self.acked >= last {
                break End::AllAcked;
            }
            while writable && next <= last && next - 1 - self.acked.min(next - 1) < WINDOW {
                if writer
                    .write(&Message::Batch(batch(next, base_ts, next == from)))
                    .await
                    .is_err()
                {
                    // The aggregator closed the connection; its error is still to be read.
                    writable = false;
                    break;
                }
                self.sent = self.sent.max(next);
                next += 1;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Message::Ack(a))) => self.acked = self.acked.max(a.through_seq),
                Ok(Some(Message::Error(e))) => break End::Refused(e),
                Ok(Some(other)) => panic!("expected Ack or Error, got {other:?}"),
                Ok(None) => break End::Closed,
                Err(_) => break End::TimedOut,
            }
        };
        reader_task.abort();
        let _ = writer.shutdown().await;
        end
    }
}

/// `/healthz`: status code and body.
async fn healthz(client: &reqwest::Client, agg: &Aggregator) -> Option<(u16, serde_json::Value)> {
    let resp = client
        .get(format!("{}/healthz", agg.url))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.ok()?))
}

async fn connect(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<wire::Session, String> {
    wire::connect(addr, tls.clone(), HOST, Duration::from_secs(5)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_acks_says_why_and_the_backlog_drains_once_space_returns() {
    if !nines_tests::privileged::run_as_root(
        "fault_disk_full::a_full_disk_stops_acks_says_why_and_the_backlog_drains_once_space_returns",
    ) {
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mount = Tmpfs::mount(&data, TMPFS);
    let pki = Pki::init(&dir.path().join("pki"));
    pki.issue(HOST);
    let tls = wire::client_config(&pki, HOST);
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    // Heads never close: every point stays in the write-ahead table.
    agg.set_store(
        &data.join("nines.redb"),
        "chunk_points = 65536\nhead_max_age = \"24h\"",
    );
    agg.start_ready(&client).await;

    // Leave HEADROOM beside the store.
    let filler = data.join("filler");
    let fill = mount.available().saturating_sub(HEADROOM);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    eprintln!(
        "store {} bytes, filler {fill} bytes, {} bytes left",
        std::fs::metadata(&agg.store).map(|m| m.len()).unwrap_or(0),
        mount.available()
    );

    // Fill: batches until the aggregator stops acking.
    let base_ts = now_ms().div_euclid(1000) * 1000 - 3_600_000;
    let mut c = Client::default();
    let fill_started = Instant::now();
    let session = connect(agg.ingest, &tls)
        .await
        .unwrap_or_else(|e| panic!("first connection: {e}\n{}", log_tail(&agg.log, 20)));
    assert_eq!(session.resume_from_seq, 1);
    let end = c
        .session(session, 1, MAX_FILL_BATCHES, base_ts, FILL_LIMIT)
        .await;
    let refusal = match end {
        End::Refused(e) => e,
        other => panic!(
            "the disk should have filled up and the aggregator refused a batch; the fill ended \
             with {other:?} after {} acked of {} sent\n{}",
            c.acked,
            c.sent,
            log_tail(&agg.log, 20)
        ),
    };
    let filled_in = fill_started.elapsed();
    let acked_before = c.acked;
    let sent_before = c.sent;
    assert_eq!(refusal.code, ErrorCode::StorageUnavailable, "{refusal:?}");
    assert!(
        refusal.message.contains("No space left"),
        "the error does not say why: {refusal:?}"
    );
    assert!(acked_before > 0, "nothing was acked before the disk filled");
    assert!(
        acked_before < sent_before,
        "the refused batch was acked too: acked {acked_before} of {sent_before}"
    );

    // No crash, no ack, and /healthz and the log say why.
    let (status, body) = healthz(&client, &agg)
        .await
        .expect("/healthz answers while the disk is full");
    assert_eq!(status, 503, "/healthz with a full disk: {body}");
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("No space left"), "/healthz reason: {body}");
    assert!(
        agg.running(),
        "the aggregator died when its disk filled:\n{}",
        log_tail(&agg.log, 30)
    );
    let log = std::fs::read_to_string(&agg.log).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("store commit failed") && l.contains("No space left")),
        "the log does not say why:\n{}",
        log_tail(&agg.log, 30)
    );
    match connect(agg.ingest, &tls).await {
        Err(e) => assert!(
            e.contains("StorageUnavailable"),
            "a new connection should be refused at Hello with StorageUnavailable: {e}"
        ),
        Ok(s) => panic!(
            "a new connection was welcomed (resume from {}) while the disk is full",
            s.resume_from_seq
        ),
    }

    // Space returns. The client keeps dialing, as an agent would, every 250 ms; until the
    // store has reopened its file, each attempt is refused at Hello.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut refused_at_hello = 0u32;
    let session = loop {
        match connect(agg.ingest, &tls).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    e.contains("StorageUnavailable"),
                    "reconnecting after freeing space: {e}\n{}",
                    log_tail(&agg.log, 20)
                );
                refused_at_hello += 1;
            }
        }
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "still refused 30 s after freeing space:\n{}",
            log_tail(&agg.log, 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let welcomed_in = freed.elapsed();
    let (status, body) = healthz(&client, &agg).await.expect("/healthz answers");
    assert_eq!(
        status, 200,
        "/healthz once a connection is welcomed again: {body}"
    );
    assert!(agg.running(), "the aggregator exited");

    // It resumes where Welcome says, sends again what was not acked, and the backlog drains.
    let stored = session.resume_from_seq - 1;
    assert_eq!(
        stored, acked_before,
        "after the outage the aggregator should hold exactly the acked batches \
         (less is a loss; more means a refused batch was stored)"
    );
    let last = sent_before + AFTER;
    let end = c
        .session(session, stored + 1, last, base_ts, Duration::from_secs(15))
        .await;
    assert!(
        matches!(end, End::AllAcked),
        "after the recovery: {end:?}, acked {} of {last}\n{}",
        c.acked,
        log_tail(&agg.log, 20)
    );
    let drained_in = freed.elapsed();
    assert_eq!(c.acked, last);

    // Every acked batch is stored, once, in every series.
    assert_eq!(wire::stored_through(agg.ingest, &pki, HOST).await, last);
    let series = agg
        .query(
            &client,
            HOST,
            "fill_seq",
            None,
            base_ts,
            base_ts + (last as i64 + 1) * 1000,
        )
        .await;
    assert_eq!(series.len(), SERIES, "one answer per series");
    let want: Vec<u64> = (1..=last).collect();
    for s in &series {
        let values: Vec<u64> = s.points.iter().map(|p| p.1 as u64).collect();
        if values != want {
            let missing: Vec<u64> = want
                .iter()
                .filter(|v| !values.contains(v))
                .take(10)
                .copied()
                .collect();
            panic!(
                "{}: {} points for {last} acked batches; missing {missing:?}",
                s.labels,
                values.len()
            );
        }
    }
    agg.stop();
    eprintln!(
        "{acked_before} batches of {SERIES} points acked in {:.1} s before the disk filled \
         ({sent_before} sent; refused: {}); welcomed again {:.1} s after freeing space \
         ({refused_at_hello} attempts refused at Hello before), /healthz 200; {} batches sent again and {AFTER} new, all acked {:.1} s after freeing space; \
         {last} batches stored once each; test took {:.1} s",
        filled_in.as_secs_f64(),
        refusal.message,
        welcomed_in.as_secs_f64(),
        sent_before - stored,
        drained_in.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
    );
}
