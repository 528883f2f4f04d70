//! `nines-agent collect-once`: sample this machine once and print the samples, as text, JSON
//! or the Prometheus exposition format.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use nines_agent::collect::{self, CollectConfig, Runner, Tick};
use nines_agent::run::{next_boundary, now_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file whose [collect] section to use; built-in defaults without it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One `name{labels} value` line per sample.
    Text,
    /// One JSON document: {"ts_ms": .., "samples": [{"name", "labels", "value"}]}.
    Json,
    /// Prometheus text exposition format, with timestamps.
    Prometheus,
}

pub fn main(args: Args) -> ExitCode {
    let collect = match args.config {
        Some(path) => match super::load(&path) {
            Ok(c) => c.collect,
            Err(code) => return code,
        },
        None => CollectConfig::default(),
    };
    super::init_logging();
    let mut runner = Runner::new(collect::registry(&collect));
    let mut scratch = Vec::new();
    let start = Instant::now();
    runner.run(
        &Tick {
            ts_ms: now_ms(),
            now: start,
        },
        &mut scratch,
    );
    std::thread::sleep(Duration::from_secs(1));
    let ts_ms = next_boundary(now_ms(), Duration::from_secs(1)) - 1000;
    let mut samples = Vec::new();
    runner.run(
        &Tick {
            ts_ms,
            now: Instant::now(),
        },
        &mut samples,
    );
    match args.format {
        Format::Text => {
            for s in &samples {
                println!("{} {}", s.key, s.value);
            }
        }
        Format::Prometheus => print!("{}", prometheus_text(&samples)),
        Format::Json => println!("{}", json_text(ts_ms, &samples)),
    }
    ExitCode::SUCCESS
}

/// Renders samples in the Prometheus text exposition format (0.0.4): one `# TYPE` line per
/// metric name (`counter` for `_total`, else `gauge`), label values escaped, timestamps in ms.
fn prometheus_text(samples: &[nines_common::Sample]) -> String {
    use std::fmt::Write;
    let mut sorted: Vec<&nines_common::Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = String::new();
    let mut last_name = "";
    for s in sorted {
        if s.key.name != last_name {
            let kind = if s.key.name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {} {kind}", s.key.name);
            last_name = &s.key.name;
        }
        out.push_str(&s.key.name);
        if !s.key.labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in s.key.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(out, "{k}=\"{v}\"");
            }
            out.push('}');
        }
        let _ = writeln!(out, " {} {}", s.value, s.ts_ms);
    }
    out
}

/// Writes a JSON string literal. Written by hand so that the agent does not carry a JSON
/// library for this one command.
fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"ts_ms": .., "samples": [{"name": .., "labels": {..}, "value": ..}, ..]}`.
fn json_text(ts_ms: i64, samples: &[nines_common::Sample]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 * samples.len());
    let _ = write!(out, "{{\"ts_ms\":{ts_ms},\"samples\":[");
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&mut out, &s.key.name);
        out.push_str(",\"labels\":{");
        for (j, (k, v)) in s.key.labels.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_string(&mut out, k);
            out.push(':');
            json_string(&mut out, v);
        }
        // Samples are finite by construction (`Out::push` drops the rest), so `{}` of an f64
        // is valid JSON.
        let _ = write!(out, "}},\"value\":{}}}", s.value);
    }
    out.push_str("]}");
    out
}
