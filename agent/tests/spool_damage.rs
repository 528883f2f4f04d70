//! A damaged spool directory never stops the agent: inputs the `spool_reader` fuzz target found
//! (docs/security.md, "Fuzzing"), laid out on disk exactly as the spool saw them.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use nines_agent::spool::{Cursor, Limits, Spool};
use nines_common::{Sample, SeriesKey};

const NOW_MS: i64 = 1_765_000_000_000;

fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(7 * 86_400),
        segment_bytes: 4096,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/spool")
            .join(name),
    )
    .unwrap()
}

fn seqs(spool: &mut Spool) -> Vec<u64> {
    let mut c = Cursor::at(0);
    let mut out = Vec::new();
    while let Some(r) = spool.read(&mut c).unwrap() {
        out.push(r.seq);
    }
    out
}

fn sample() -> Vec<Sample> {
    vec![Sample {
        key: SeriesKey::new("memory_used_bytes", &[]),
        ts_ms: NOW_MS,
        value: 1.0,
    }]
}

/// A segment whose first record, checksum intact, is numbered u64::MAX. Opening the spool
/// overflowed `last seq + 1` (a panic at start in builds with overflow checks, wrapped numbers
/// otherwise). Numbers above i64::MAX are damage: the segment ends before such a record.
#[test]
fn a_record_numbered_u64_max_is_cut_off_and_the_agent_starts() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("18446744073709551615.seg"),
        fixture("seq-max.seg"),
    )
    .unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(seqs(&mut spool), Vec::<u64>::new());
    assert_eq!(
        spool.next_seq(),
        NOW_MS as u64,
        "numbering restarts from the clock"
    );
    assert_eq!(spool.append(NOW_MS, sample()).unwrap(), NOW_MS as u64);
    assert_eq!(seqs(&mut spool), vec![NOW_MS as u64]);
}

/// A record numbered u64::MAX - 1 was kept, so the next append took u64::MAX and counting on
/// overflowed.
#[test]
fn a_record_numbered_u64_max_minus_1_is_cut_off_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("acked"), "00000001765000000001\n").unwrap();
    fs::write(
        dir.path().join("18446744073709551614.seg"),
        fixture("seq-max-minus-1.seg"),
    )
    .unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(seqs(&mut spool), Vec::<u64>::new());
    let next = 1_765_000_000_002;
    assert_eq!(
        spool.next_seq(),
        next,
        "numbering goes on after the ack mark"
    );
    assert_eq!(spool.append(NOW_MS, sample()).unwrap(), next);
    assert_eq!(spool.append(NOW_MS, sample()).unwrap(), next + 1);
    assert_eq!(seqs(&mut spool), vec![next, next + 1]);
}

/// A file `00000000000000000000.seg` (its record numbered 0): `first seq - 1` underflowed.
/// Sequence numbers start at 1, so it is not a segment of this spool and is left alone.
#[test]
fn a_segment_named_zero_is_not_taken_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("00000000000000000000.seg");
    fs::write(&zero, fixture("seq-zero.seg")).unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(seqs(&mut spool), Vec::<u64>::new());
    assert_eq!(spool.append(NOW_MS, sample()).unwrap(), NOW_MS as u64);
    assert_eq!(seqs(&mut spool), vec![NOW_MS as u64]);
    assert!(zero.exists());
}

/// An ack mark of bytes that are not UTF-8 made `Spool::open` fail, so the agent refused to
/// start, although an unreadable mark is meant to mean "resend the whole spool".
#[test]
fn an_ack_mark_that_is_not_text_means_resending_everything() {
    // Exactly as found: the mark and an empty segment.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("acked"), fixture("ack-mark-not-text")).unwrap();
    fs::write(dir.path().join("00000000000000000001.seg"), b"").unwrap();
    let spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(spool.acked(), 0);
    drop(spool);

    // With records behind it: all of them are sent again.
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    for _ in 0..3 {
        spool.append(NOW_MS, sample()).unwrap();
    }
    spool.ack(NOW_MS as u64 + 1).unwrap();
    drop(spool);
    fs::write(dir.path().join("acked"), fixture("ack-mark-not-text")).unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(spool.acked(), 0);
    let first = NOW_MS as u64;
    assert_eq!(seqs(&mut spool), vec![first, first + 1, first + 2]);
}

/// An ack mark longer than the 21 bytes the spool writes kept its tail through every rewrite
/// in place, so from the second start on it was unreadable and every start resent the whole
/// spool. The first rewrite now cuts it to size.
#[test]
fn a_longer_ack_mark_is_cut_to_size_and_holds_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("acked"), fixture("ack-mark-long")).unwrap();
    fs::write(
        dir.path().join("00000001765000000000.seg"),
        fixture("ack-mark-long.seg"),
    )
    .unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(spool.acked(), 1_765_000_000_001);
    let pending = seqs(&mut spool);
    assert_eq!(pending, vec![1_765_000_000_002]);
    drop(spool);
    assert_eq!(
        fs::read_to_string(dir.path().join("acked")).unwrap(),
        "00000001765000000001\n"
    );
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(spool.acked(), 1_765_000_000_001);
    assert_eq!(seqs(&mut spool), pending, "a restart resends nothing more");
}

/// An ack mark of u64::MAX overflowed `acked + 1`. Nothing is numbered above i64::MAX, so
/// the mark is unreadable: the spool starts over from the clock.
#[test]
fn an_ack_mark_of_u64_max_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("acked"), "18446744073709551615\n").unwrap();
    let mut spool = Spool::open(dir.path(), limits(), NOW_MS).unwrap();
    assert_eq!(spool.acked(), 0);
    assert_eq!(spool.append(NOW_MS, sample()).unwrap(), NOW_MS as u64);
    assert_eq!(seqs(&mut spool), vec![NOW_MS as u64]);
}
