#![allow(clippy::unwrap_used)]

use super::*;
use nines_common::SeriesKey;

fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(7 * 86400),
        segment_bytes: 1024,
    }
}

fn samples(v: f64) -> Vec<Sample> {
    vec![Sample {
        key: SeriesKey::new("memory_used_bytes", &[]),
        ts_ms: 1000,
        value: v,
    }]
}

fn drain(spool: &mut Spool, from: u64) -> Vec<u64> {
    let mut c = Cursor::at(from);
    let mut seqs = Vec::new();
    while let Some(r) = spool.read(&mut c).unwrap() {
        seqs.push(r.seq);
    }
    seqs
}

#[test]
fn appended_records_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 5_000).unwrap();
    assert_eq!(s.next_seq(), 5_000, "a new spool starts at the clock");
    for i in 0..200 {
        assert_eq!(s.append(i, samples(i as f64)).unwrap(), 5_000 + i as u64);
    }
    drop(s);
    let mut s = Spool::open(dir.path(), limits(), 9_999_999).unwrap();
    assert_eq!(s.next_seq(), 5_200);
    let seqs = drain(&mut s, 0);
    assert_eq!(seqs, (5_000..5_200).collect::<Vec<_>>());
    let mut c = Cursor::at(5_150);
    let r = s.read(&mut c).unwrap().unwrap();
    assert_eq!((r.seq, r.samples[0].value), (5_150, 150.0));
}

#[test]
fn the_newest_record_is_handed_over_from_memory_and_again_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    s.append(10, samples(1.0)).unwrap();
    s.append(20, samples(2.0)).unwrap();
    let mut c = Cursor::at(1);
    let first = s.read(&mut c).unwrap().unwrap();
    let from_memory = s.read(&mut c).unwrap().unwrap();
    assert_eq!((first.seq, from_memory.seq), (1, 2));
    assert!(s.read(&mut c).unwrap().is_none());
    // A new connection starts over from the ack: the same record comes from disk.
    let mut again = Cursor::at(2);
    assert_eq!(s.read(&mut again).unwrap().unwrap(), from_memory);
}

#[test]
fn segments_are_preallocated_so_appends_do_not_change_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    s.append(1, samples(1.0)).unwrap();
    let seg = s.segments.back().unwrap().path.clone();
    let size = fs::metadata(&seg).unwrap().len();
    assert_eq!(size, limits().segment_bytes);
    s.append(2, samples(2.0)).unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), size);
    drop(s);
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    assert_eq!(
        drain(&mut s, 0),
        vec![1, 2],
        "the zeros end the records cleanly"
    );
}

#[test]
fn a_torn_tail_is_truncated_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    for i in 0..3 {
        s.append(i, samples(1.0)).unwrap();
    }
    let seg = s.segments.back().unwrap().path.clone();
    let end = s.segments.back().unwrap().len;
    drop(s);
    // A crash in the middle of a write: half a record after the last whole one.
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0, 0, 0, 50, 1, 2, 3], end).unwrap();
    drop(f);
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    assert_eq!(drain(&mut s, 0), vec![1, 2, 3]);
    assert_eq!(s.append(9, samples(2.0)).unwrap(), 4);
    assert_eq!(drain(&mut s, 0), vec![1, 2, 3, 4]);
}

#[test]
fn a_corrupt_record_cuts_the_segment_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    for i in 0..3 {
        s.append(i, samples(1.0)).unwrap();
    }
    let seg = s.segments.back().unwrap().path.clone();
    let end = s.segments.back().unwrap().len as usize;
    drop(s);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[end - 1] ^= 0xff;
    fs::write(&seg, bytes).unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    assert_eq!(drain(&mut s, 0), vec![1, 2]);
}

#[test]
fn acked_segments_are_deleted_and_the_ack_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    for i in 0..100 {
        s.append(i, samples(1.0)).unwrap();
    }
    let before = s.segments.len();
    assert!(before > 2, "small segments rotate");
    s.ack(60).unwrap();
    assert!(s.segments.len() < before);
    assert_eq!(s.pending(), 40);
    drop(s);
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    assert_eq!(s.acked(), 60);
    assert_eq!(drain(&mut s, 0), (61..=100).collect::<Vec<_>>());
    s.ack(100).unwrap();
    assert_eq!(s.pending(), 0);
    assert_eq!(s.segments.len(), 1, "the segment being appended to is kept");
    drop(s);
    assert_eq!(Spool::open(dir.path(), limits(), 1).unwrap().bytes(), 0);
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    assert_eq!(
        s.append(0, samples(1.0)).unwrap(),
        101,
        "seq continues after ack"
    );
}

#[test]
fn the_ack_mark_is_written_now_and_then_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), limits(), 1).unwrap();
    for i in 0..10 {
        s.append(i, samples(1.0)).unwrap();
    }
    let mark = || fs::read_to_string(dir.path().join("acked")).unwrap();
    s.ack(3).unwrap();
    assert_eq!(mark().trim(), "00000000000000000003");
    s.ack(7).unwrap();
    assert_eq!(
        mark().trim(),
        "00000000000000000003",
        "not rewritten within 5 s"
    );
    drop(s);
    assert_eq!(mark().trim(), "00000000000000000007", "written on close");
    let s = Spool::open(dir.path(), limits(), 1).unwrap();
    assert_eq!(s.acked(), 7);
}

#[test]
fn overflow_drops_the_oldest_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let lim = Limits {
        max_bytes: 16 * 1024,
        ..limits()
    };
    let mut s = Spool::open(dir.path(), lim, 1).unwrap();
    for i in 0..1000 {
        s.append(i, samples(1.0)).unwrap();
    }
    assert!(s.allocated() <= lim.max_bytes);
    assert!(s.dropped() > 0);
    let seqs = drain(&mut s, 0);
    assert_eq!(*seqs.last().unwrap(), 1000, "the newest data is kept");
    assert_eq!(
        seqs.len() as u64 + s.dropped(),
        1000,
        "every loss is counted"
    );
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn old_data_expires_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let lim = Limits {
        max_age: Duration::from_secs(60),
        ..limits()
    };
    let mut s = Spool::open(dir.path(), lim, 1).unwrap();
    for i in 0..100 {
        s.append(i * 1000, samples(1.0)).unwrap();
    }
    s.append(1_000_000, samples(1.0)).unwrap();
    assert_eq!(drain(&mut s, 0), vec![101]);
    assert_eq!(s.dropped(), 100);
}
