//! What ingest keeps of a `Batch`, on batches decoded from arbitrary bytes with the codec (so
//! sequence numbers, timestamps and values take every extreme the wire can carry: 0,
//! `2^63-1`, `2^64-1`, `i64::MIN`, NaN, ±∞), at any aggregator clock and any configured window.
//!
//! Properties, beyond "does not panic":
//! - a batch is refused whole exactly when its sequence number is outside `1..=2^63-1`;
//! - every kept point has a finite value and a timestamp in the window, and the window lies in
//!   the years 1970 to 9999 (so every kept timestamp formats);
//! - kept and refused points add up to the batch, kept ones in their order.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nines_aggregator::ingest::check::{PointBounds, check_batch};
use nines_aggregator::util::time;
use nines_common::proto::{MAX_SEQ, Message, codec};

fuzz_target!(|data: &[u8]| {
    // 24 bytes of set-up (clock, max age, max future), the rest a `Message` payload.
    let Some((head, payload)) = data.split_at_checked(24) else {
        return;
    };
    let word = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
    let now_ms = word(0) as i64;
    let bounds = PointBounds {
        max_age: Duration::from_millis(word(8)),
        max_future: Duration::from_millis(word(16)),
    };
    let Ok(Message::Batch(batch)) = codec::decode::<Message>(payload) else {
        return;
    };
    let window = bounds.window(now_ms);
    assert!(time::in_range(window.0) && time::in_range(window.1), "{window:?}");
    let total = batch.points.len() as u64;
    let points = batch.points.clone();
    match check_batch(batch.seq, batch.points, now_ms, &bounds) {
        Err(_) => assert!(batch.seq == 0 || batch.seq > MAX_SEQ, "seq {}", batch.seq),
        Ok((kept, refused)) => {
            assert!((1..=MAX_SEQ).contains(&batch.seq), "seq {}", batch.seq);
            assert_eq!(kept.len() as u64 + refused.total(), total);
            for p in &kept {
                assert!(p.value.is_finite());
                assert!((window.0..=window.1).contains(&p.ts_ms), "{} in {window:?}", p.ts_ms);
                assert!(time::rfc3339_ms(p.ts_ms).is_some());
            }
            // Kept points are a subsequence of the batch, in order.
            let mut rest = points.iter();
            for p in &kept {
                assert!(
                    rest.any(|q| q.series == p.series && q.ts_ms == p.ts_ms
                        && q.value.to_bits() == p.value.to_bits()),
                    "kept point out of order or invented"
                );
            }
        }
    }
});
