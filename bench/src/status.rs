//! `nines-bench status`: the status overview of N hosts, gathered from a real store and
//! rendered, timed over several runs.

use std::sync::Arc;
use std::time::Instant;

use nines_common::proto::Hello;
use nines_common::{HostId, SeriesKey};

use nines_aggregator::http::AppState;
use nines_aggregator::http::status::health::{self, HostFacts};
use nines_aggregator::http::status::page::{self, AlertRow, Overview};
use nines_aggregator::http::status::{gather, host_href};
use nines_aggregator::ingest::{Connections, now_ms};
use nines_aggregator::store::{BatchWrite, HelloWrite, HostRecord, Store};

/// What one run of the benchmark measured.
#[derive(Debug)]
struct Figures {
    /// Hosts on the page.
    hosts: usize,
    /// Gather and render, ms, median and slowest.
    full_ms: (f64, f64),
    /// Render alone (a tenth of the hosts with a warning alert), ms, median and slowest.
    render_ms: (f64, f64),
    /// Bytes of the page.
    bytes: usize,
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

/// Runs it.
async fn run(hosts: usize, runs: usize) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let (store, writer) = Store::open(&dir.path().join("nines.redb"))?;
    let now = now_ms();
    for i in 0..hosts {
        let host = HostId::new(format!("host-{i:04}"))?;
        store
            .hello(HelloWrite {
                host: host.clone(),
                hello: Hello {
                    protocol: 1,
                    agent_version: "0.1.0".into(),
                    host_id: host.to_string(),
                    boot_id: "b".into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    kernel: "6.1".into(),
                    interval_ms: 10_000,
                },
                now_ms: now - 3_600_000,
            })
            .await?;
        let id = store.series_id(&host, SeriesKey::new("host_uptime_seconds", &[]))?;
        let ts = if i % 50 == 7 {
            now - 600_000
        } else {
            now - 5_000
        };
        store
            .write_batch(BatchWrite {
                host,
                seq: 1,
                points: vec![(id, ts, 1.0)],
            })
            .await?;
    }
    let state = AppState::new(store.clone(), &[], Arc::new(Connections::default()));
    let runs = runs.max(1);
    let (mut full, mut render) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let page = page::overview(&gather(&state, now_ms()));
        full.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = page.len();
        let t = Instant::now();
        let page = page::overview(&synthetic_overview(hosts, now_ms()));
        render.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(page);
    }
    drop(state);
    drop(store);
    tokio::task::spawn_blocking(move || writer.join()).await?;
    Ok(Figures {
        hosts,
        full_ms: median_max(full),
        render_ms: median_max(render),
        bytes,
    })
}

/// Builds an overview of `hosts` synthetic hosts (a tenth with a warning, one in fifty down)
/// the render-alone half of the benchmark.
fn synthetic_overview(hosts: usize, now: i64) -> Overview {
    let mut alerts = Vec::new();
    let recs: Vec<HostRecord> = (0..hosts)
        .map(|i| HostRecord {
            host: format!("host-{i:04}"),
            agent_version: "0.1.0".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            kernel: "6.1".into(),
            boot_id: String::new(),
            interval_ms: 10_000,
            first_seen_ms: now - 86_400_000,
            last_sample_ms: if i % 50 == 7 {
                now - 600_000
            } else {
                now - 5_000
            },
            last_seq: 0,
        })
        .collect();
    for (i, h) in recs.iter().enumerate().filter(|(i, _)| i % 10 == 3) {
        alerts.push(AlertRow {
            name: "HighCpu".into(),
            host: h.host.clone(),
            critical: false,
            since_ms: now - (i as i64) * 1000,
            summary: format!("CPU on {} averaged 0.93 for 15 minutes", h.host),
            muted: None,
        });
    }
    let hosts = recs
        .iter()
        .map(|h| {
            let f = HostFacts {
                host: h.host.clone(),
                interval_ms: i64::from(h.interval_ms),
                last_sample_ms: h.last_sample_ms,
                maintenance: None,
                processes: Vec::new(),
                checks: Vec::new(),
                alerts: alerts
                    .iter()
                    .filter(|a| a.host == h.host)
                    .cloned()
                    .collect(),
                stopped: false,
            };
            health::host_status(&f, now).tile(&h.host, host_href(&h.host), None)
        })
        .collect();
    Overview {
        services: Vec::new(),
        hosts,
        alerts,
        incidents: Vec::new(),
        now_ms: now,
    }
}

/// Flags of `nines-bench status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hosts on the overview.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Timed runs; the median and the slowest are reported.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Under a second at a tiny scale (50 hosts, 3 runs), to check that the benchmark works;
    /// overrides those two flags.
    #[arg(long)]
    quick: bool,
}

/// `nines-bench status`.
pub async fn main(mut args: Args) -> Result<(), crate::Failure> {
    if args.quick {
        args.hosts = 50;
        args.runs = 3;
    }
    if args.hosts == 0 || args.runs == 0 {
        return Err(crate::Failure::Usage(
            "--hosts and --runs must be at least 1".into(),
        ));
    }
    let f = run(args.hosts, args.runs)
        .await
        .map_err(|e| crate::Failure::Run(e.to_string()))?;
    println!(
        "status overview, {} hosts, {} runs:\n  gathered from the store and rendered: median {:.2} ms, slowest {:.2} ms\n  rendered alone (a tenth with warnings): median {:.2} ms, slowest {:.2} ms\n  page: {} bytes",
        f.hosts, args.runs, f.full_ms.0, f.full_ms.1, f.render_ms.0, f.render_ms.1, f.bytes
    );
    Ok(())
}
