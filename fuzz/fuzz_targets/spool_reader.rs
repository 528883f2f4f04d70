//! The agent's spool opening a directory whose segment file holds arbitrary bytes, as after a
//! crash or a damaged disk, then handing every record to a reader.
//!
//! The input is one flag byte, then the content of one segment file. If the flag's bit 1 is
//! set, the content up to the first newline is written to the spool's `acked` file first (the
//! ack mark, which a torn rewrite can leave in any state). If the flag's bit 0 is set, the CRC
//! field of every record the length fields chain together is made to match its
//! payload before the file is written: a fuzzer cannot forge CRC-32s, and without this it would
//! rarely get past the checksum to the record decoder. With the bit clear the bytes are written
//! as they are. The file is named as the spool names segments, after the sequence number of its
//! first record (or 1 if the bytes do not start with one).
//!
//! The recovery contract (docs/design.md, "Agent spool"), checked beyond "does not panic":
//! - opening never fails on corrupt contents: a torn or corrupt record ends the segment;
//! - every record the spool kept can be read back, in order, sequence numbers +1 each, and
//!   `pending()` counts exactly them;
//! - opening again keeps exactly the same records (recovery is idempotent);
//! - the spool then takes a new record with the next sequence number and hands it out last.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nines_agent::spool::{Cursor, Limits, Spool, SpoolRecord};
use nines_common::proto::codec;
use nines_common::{Sample, SeriesKey};

/// No age bound: records carry any timestamp, and the age bound deleting them on append is
/// documented behaviour, not a reader's fault.
const LIMITS: Limits = Limits {
    max_bytes: 1 << 30,
    max_age: Duration::MAX,
    segment_bytes: 4096,
};
const NOW_MS: i64 = 1_765_000_000_000;

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("spool");
    std::fs::create_dir(&dir).expect("spool dir");
    let Some((flags, segment)) = data.split_first() else {
        return;
    };
    let segment = if flags & 2 == 2 {
        let cut = segment
            .iter()
            .position(|&b| b == b'\n')
            .map_or(segment.len(), |i| i + 1);
        std::fs::write(dir.join("acked"), &segment[..cut]).expect("ack mark");
        &segment[cut..]
    } else {
        segment
    };
    let mut segment = segment.to_vec();
    if flags & 1 == 1 {
        fix_checksums(&mut segment);
    }
    let name = format!("{:020}.seg", first_seq(&segment).unwrap_or(1));
    std::fs::write(dir.join(name), &segment).expect("segment");

    let mut spool = Spool::open(&dir, LIMITS, NOW_MS).expect("corrupt segments are repaired");
    let kept = read_all(&mut spool, data.len());
    assert_eq!(
        spool.pending(),
        kept.len() as u64,
        "pending() != records read"
    );
    if let Some(last) = kept.last() {
        assert_eq!(spool.next_seq(), last.seq + 1);
    }
    drop(spool);

    let mut spool = Spool::open(&dir, LIMITS, NOW_MS).expect("reopen");
    let again = read_all(&mut spool, data.len());
    assert_eq!(kept.len(), again.len(), "a second open changed the records");
    for (a, b) in kept.iter().zip(&again) {
        assert_eq!(encoded(a), encoded(b), "a second open changed a record");
    }

    let next = spool.next_seq();
    let sample = Sample {
        key: SeriesKey::new("memory_used_bytes", &[]),
        ts_ms: NOW_MS,
        value: 1.0,
    };
    let seq = spool
        .append(NOW_MS, vec![sample])
        .expect("append after repair");
    assert_eq!(seq, next);
    let after = read_all(&mut spool, data.len() + 1);
    assert_eq!(after.len(), kept.len() + 1, "records lost by an append");
    assert_eq!(after.last().map(|r| r.seq), Some(seq));
});

/// Sets the CRC of each record `u32 length, u32 CRC, payload` from the start, as far as the
/// lengths lead.
fn fix_checksums(segment: &mut [u8]) {
    let mut offset = 0usize;
    while let Some(header) = segment.get(offset..offset + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = offset + 8;
        let Some(payload) = start
            .checked_add(len)
            .and_then(|end| segment.get(start..end))
        else {
            return;
        };
        let crc = crc32fast::hash(payload).to_be_bytes();
        segment[offset + 4..start].copy_from_slice(&crc);
        offset = start + len;
    }
}

/// The sequence number of the record at the start of `data`, if it starts with one.
fn first_seq(data: &[u8]) -> Option<u64> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let payload = data.get(8..8usize.checked_add(len)?)?;
    codec::decode::<SpoolRecord>(payload).ok().map(|r| r.seq)
}

fn encoded(r: &SpoolRecord) -> Vec<u8> {
    codec::encode(r, u64::MAX).expect("a record re-encodes")
}

/// Reads every record from the start, checking order. A record takes at least 9 bytes on
/// disk, so more reads than `bytes` means the reader is going round in circles.
fn read_all(spool: &mut Spool, bytes: usize) -> Vec<SpoolRecord> {
    let mut cursor = Cursor::at(0);
    let mut out: Vec<SpoolRecord> = Vec::new();
    while let Some(r) = spool.read(&mut cursor).expect("a kept record reads back") {
        if let Some(prev) = out.last() {
            assert_eq!(r.seq, prev.seq + 1, "records out of order");
        }
        out.push(r);
        assert!(out.len() <= bytes, "more records than bytes");
    }
    out
}
