//! Fills an agent's spool with a backlog, as if the agent had been cut off from every
//! aggregator: `--ticks` records one interval apart, ending before now, written through the
//! agent's own [`Spool`] (so in the real format, each append fsynced) into the spool of the
//! state directory that `--config` names.
//!
//! Each record holds what this machine's collectors produce in one tick under that
//! configuration (two real collections, so that rates are included), plus the agent's own
//! `agent_spool_*` samples, with the values varied from tick to tick.
//!
//! `cargo run --release -p nines-agent --example fill_spool -- --config agent.toml --ticks 86400`
//!
//! Prints one line of `key=value` pairs: records, samples, seqs, timestamps, bytes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use nines_agent::collect::{self, Out, Runner, Tick};
use nines_agent::config::Config;
use nines_agent::run::{next_boundary, now_ms};
use nines_agent::spool::{Limits, Spool};
use nines_common::Sample;

/// Fill an agent spool with a backlog of ticks.
#[derive(Debug, Parser)]
struct Args {
    /// Agent configuration: its state_dir, [spool] bounds and [collect] section are used.
    #[arg(long)]
    config: PathBuf,
    /// Records to append, one per interval (86400 is a day at 1 s).
    #[arg(long, default_value_t = 86_400)]
    ticks: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fill_spool: {e}");
            return ExitCode::from(64);
        }
    };
    match fill(&config, args.ticks) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fill_spool: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fill(config: &Config, ticks: u64) -> Result<String, Box<dyn std::error::Error>> {
    // The same bounds as `nines_agent::run` derives from the configuration.
    let limits = Limits {
        max_bytes: config.spool.max_bytes,
        max_age: config.spool.max_age,
        segment_bytes: (config.spool.max_bytes / 16).clamp(64 * 1024, 4 * 1024 * 1024),
    };
    let dir = config.state_dir.join("spool");
    let mut spool = Spool::open(&dir, limits, now_ms())?;

    // One real tick of this machine: a first collection, then the one a second later that
    // carries the rates.
    let mut runner = Runner::new(collect::registry(&config.collect));
    let mut scratch = Vec::new();
    runner.run(
        &Tick {
            ts_ms: now_ms(),
            now: Instant::now(),
        },
        &mut scratch,
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut template: Vec<Sample> = Vec::new();
    runner.run(
        &Tick {
            ts_ms: now_ms(),
            now: Instant::now(),
        },
        &mut template,
    );

    let step = i64::try_from(config.interval.as_millis())?;
    let span = i64::try_from(ticks)? * step;
    // The last record is one interval before the boundary the agent would tick on next.
    let first_ts = next_boundary(now_ms(), config.interval) - span - step;
    let first_seq = spool.next_seq();
    let started = Instant::now();
    let mut samples_total = 0u64;
    let mut last_ts = first_ts;
    for i in 0..ticks {
        let ts = first_ts + i64::try_from(i)? * step;
        let mut samples: Vec<Sample> = template
            .iter()
            .map(|s| Sample {
                key: s.key.clone(),
                ts_ms: ts,
                value: vary(s.value),
            })
            .collect();
        let mut out = Out::new(ts, &mut samples);
        out.push("agent_spool_bytes", &[], spool.bytes() as f64);
        out.push("agent_spool_pending_batches", &[], spool.pending() as f64);
        out.push(
            "agent_spool_dropped_batches_total",
            &[],
            spool.dropped() as f64,
        );
        samples_total += samples.len() as u64;
        spool.append(ts, samples)?;
        last_ts = ts;
    }
    if spool.dropped() > 0 {
        return Err(format!(
            "the spool's bounds dropped {} records: raise [spool] max_bytes",
            spool.dropped()
        )
        .into());
    }
    Ok(format!(
        "records={ticks} samples={samples_total} samples_per_record={:.1} first_seq={first_seq} \
         last_seq={} first_ts_ms={first_ts} last_ts_ms={last_ts} record_bytes={} \
         allocated_bytes={} seconds={:.1}",
        samples_total as f64 / ticks.max(1) as f64,
        spool.next_seq() - 1,
        spool.bytes(),
        spool.allocated(),
        started.elapsed().as_secs_f64(),
    ))
}

/// A value near `v`, as the next tick might read: ratios stay within 0..=1, whole numbers stay
/// whole.
fn vary(v: f64) -> f64 {
    let jitter = 1.0 + (fastrand::f64() - 0.5) * 0.02;
    let x = v * jitter;
    if v.fract() == 0.0 {
        x.round()
    } else if (0.0..=1.0).contains(&v) {
        x.clamp(0.0, 1.0)
    } else {
        x
    }
}
