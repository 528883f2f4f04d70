//! Writes the binary seed corpora: frames encoded by the codec and a segment written by the
//! spool itself. Run `cargo +nightly run --release --example seeds` in `fuzz/`. The config
//! seeds are the shipped example files, copied by hand.

use std::path::Path;
use std::time::Duration;

use nines_agent::spool::{Limits, Spool};
use nines_common::proto::*;
use nines_common::{Sample, SeriesKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let frames = root.join("frame_decoder");
    let messages = [
        (
            "hello",
            Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                host_id: "web-1".into(),
                boot_id: "5f0c7a1e-0d3b-4bb8-9a7c-2f1d6e8b9c01".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                arch: "x86_64".into(),
                kernel: "6.1.0-18-amd64".into(),
                interval_ms: 10_000,
            }),
        ),
        (
            "welcome",
            Message::Welcome(Welcome {
                server_time_ms: 1_765_000_000_000,
                resume_from_seq: 1_765_000_000_042,
            }),
        ),
        (
            "batch",
            Message::Batch(Batch {
                seq: 1_765_000_000_042,
                series_defs: vec![
                    SeriesDef {
                        id: 0,
                        name: "cpu_usage_ratio".into(),
                        labels: vec![("cpu".into(), "total".into())],
                    },
                    SeriesDef {
                        id: 1,
                        name: "memory_available_bytes".into(),
                        labels: vec![],
                    },
                ],
                points: vec![
                    Point {
                        series: 0,
                        ts_ms: 1_765_000_000_000,
                        value: 0.25,
                    },
                    Point {
                        series: 1,
                        ts_ms: 1_765_000_000_000,
                        value: 8.0e9,
                    },
                    Point {
                        series: 0,
                        ts_ms: 1_765_000_010_000,
                        value: f64::NAN,
                    },
                ],
            }),
        ),
        ("ack", Message::Ack(Ack { through_seq: 42 })),
        (
            "error",
            Message::Error(ErrorMsg {
                code: ErrorCode::StorageUnavailable,
                message: "No space left on device".into(),
            }),
        ),
    ];
    let mut stream = Vec::new();
    for (name, msg) in &messages {
        let mut buf = Vec::new();
        frame::encode(msg, DEFAULT_MAX_FRAME_BYTES, &mut buf)?;
        std::fs::write(frames.join(name), &buf)?;
        stream.extend_from_slice(&buf);
    }
    // A conversation: several frames back to back, as a connection carries them.
    std::fs::write(frames.join("stream"), &stream)?;

    let tmp = tempfile::tempdir()?;
    let limits = Limits {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(7 * 86_400),
        segment_bytes: 1024,
    };
    let mut spool = Spool::open(tmp.path(), limits, 1_765_000_000_000)?;
    for i in 0..3 {
        let samples = vec![
            Sample {
                key: SeriesKey::new("cpu_usage_ratio", &[("cpu", "total")]),
                ts_ms: 1_765_000_000_000 + i * 10_000,
                value: 0.25,
            },
            Sample {
                key: SeriesKey::new("memory_available_bytes", &[]),
                ts_ms: 1_765_000_000_000 + i * 10_000,
                value: 8.0e9,
            },
        ];
        spool.append(1_765_000_000_000 + i * 10_000, samples)?;
    }
    drop(spool);
    let mut segments: Vec<_> = std::fs::read_dir(tmp.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let segment = std::fs::read(segments.first().ok_or("the spool wrote no segment")?)?;
    // The flag byte: 0 writes the bytes as they are, 1 repairs checksums first, 2 writes an
    // ack mark (up to the first newline) too.
    let spools = root.join("spool_reader");
    for flag in [0u8, 1] {
        let mut seed = vec![flag];
        seed.extend_from_slice(&segment);
        std::fs::write(spools.join(format!("segment-{flag}")), seed)?;
    }
    let mut seed = vec![3u8];
    seed.extend_from_slice(format!("{:020}\n", 1_765_000_000_001u64).as_bytes());
    seed.extend_from_slice(&segment);
    std::fs::write(spools.join("segment-acked"), seed)?;

    // What ingest keeps of a batch: 24 bytes of clock, max age and max future, then a
    // `Batch` payload carrying the integers that once got through (year 10000, i64::MAX,
    // seq 2^64-1).
    let batches = root.join("ingest_batch");
    std::fs::create_dir_all(&batches)?;
    let extreme = |seq: u64| {
        Message::Batch(Batch {
            seq,
            series_defs: vec![SeriesDef {
                id: 0,
                name: "m".into(),
                labels: vec![],
            }],
            points: [1_765_000_000_000, 253_402_300_800_000, i64::MAX, i64::MIN, -1]
                .into_iter()
                .map(|ts_ms| Point {
                    series: 0,
                    ts_ms,
                    value: 1.0,
                })
                .collect(),
        })
    };
    for (name, seq) in [("good", 1_765_000_000_042), ("seq-max", u64::MAX), ("seq-i64", 1 << 63)] {
        let mut seed = Vec::new();
        seed.extend_from_slice(&1_765_000_000_000u64.to_le_bytes());
        seed.extend_from_slice(&(35 * 86_400_000u64).to_le_bytes());
        seed.extend_from_slice(&600_000u64.to_le_bytes());
        seed.extend_from_slice(&codec::encode(&extreme(seq), u64::from(DEFAULT_MAX_FRAME_BYTES))?);
        std::fs::write(batches.join(name), seed)?;
    }
    Ok(())
}
