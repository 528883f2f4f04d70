use proptest::prelude::*;

use super::values::decimal_places;
use super::varint::{Reader, put_varint};
use super::*;

const CODECS: [ValueCodec; 4] = [
    ValueCodec::Auto,
    ValueCodec::Gorilla,
    ValueCodec::Pco,
    ValueCodec::PcoDecimal,
];

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Encodes with every codec and checks each decodes to the same timestamps and value bits.
fn assert_round_trip(ts: &[i64], values: &[f64]) {
    for codec in CODECS {
        let bytes = encode_with(ts, values, codec);
        let (got_ts, got_values) = match decode(&bytes) {
            Ok(d) => d,
            Err(e) => panic!("{codec:?}: {e}"),
        };
        assert_eq!(got_ts, ts, "{codec:?} timestamps");
        assert_eq!(bits(&got_values), bits(values), "{codec:?} values");
    }
}

fn special() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::from_bits(0x7ff0_0000_0000_0001)), // signalling NaN
        Just(f64::from_bits(0xfff8_dead_beef_0001)), // NaN with a payload
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::from_bits(1)), // smallest subnormal
        Just(f64::MAX),
        Just(f64::MIN),
    ]
}

/// Values like the ones a host sends: decimals, integers, counters, with specials sprinkled in.
fn metric_values() -> impl Strategy<Value = Vec<f64>> {
    let decimal = (any::<i32>(), 0u32..4).prop_map(|(i, k)| f64::from(i) / 10f64.powi(k as i32));
    let value = prop_oneof![
        8 => decimal,
        2 => any::<f64>(),
        1 => special(),
    ];
    prop_oneof![
        prop::collection::vec(value, 0..400),
        (any::<u64>(), 0usize..400).prop_map(|(b, n)| vec![f64::from_bits(b); n]),
        (0u32..1_000_000, prop::collection::vec(0u32..5_000, 0..400)).prop_map(|(start, incs)| {
            incs.iter()
                .scan(f64::from(start), |acc, &i| {
                    *acc += f64::from(i);
                    Some(*acc)
                })
                .collect()
        }),
    ]
}

/// Timestamps: regular with gaps, repeated, stepping back, or anything at all.
fn timestamps(n: usize) -> impl Strategy<Value = Vec<i64>> {
    let step = prop_oneof![
        10 => Just(15_000i64),
        1 => Just(0i64),
        1 => (1i64..100).prop_map(|g| g * 15_000),
        1 => -100_000i64..100_000,
        1 => any::<i64>(),
    ];
    (any::<i64>(), prop::collection::vec(step, n)).prop_map(|(start, steps)| {
        let mut t = start;
        steps
            .iter()
            .map(|s| {
                let v = t;
                t = t.wrapping_add(*s);
                v
            })
            .collect()
    })
}

fn chunk_input() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    metric_values().prop_flat_map(|values| {
        let n = values.len();
        (timestamps(n), Just(values))
    })
}

// 256 cases each by default; PROPTEST_CASES=100000 for a longer hunt.
proptest! {
    #[test]
    fn round_trips_metric_like_chunks((ts, values) in chunk_input()) {
        assert_round_trip(&ts, &values);
    }

    #[test]
    fn round_trips_arbitrary_bits(pairs in prop::collection::vec((any::<i64>(), any::<u64>()), 0..200)) {
        let ts: Vec<i64> = pairs.iter().map(|p| p.0).collect();
        let values: Vec<f64> = pairs.iter().map(|p| f64::from_bits(p.1)).collect();
        assert_round_trip(&ts, &values);
    }

    #[test]
    fn every_truncation_is_an_error((ts, values) in chunk_input(), codec in 0usize..4) {
        let bytes = encode_with(&ts, &values, CODECS[codec]);
        for len in 0..bytes.len() {
            prop_assert!(decode(&bytes[..len]).is_err(), "prefix of {len} of {} bytes decoded", bytes.len());
        }
    }

    #[test]
    fn a_flipped_bit_is_an_error((ts, values) in chunk_input(), codec in 0usize..4, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode_with(&ts, &values, CODECS[codec]);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(decode(&bytes).is_err());
    }

    /// A body that passes the checksum but was written by someone hostile: any answer but a panic,
    /// and an `Ok` must be consistent.
    #[test]
    fn hostile_bodies_with_valid_checksums_do_not_panic(
        (ts, values) in chunk_input(),
        codec in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode_with(&ts, &values, CODECS[codec]);
        let mut body = bytes[..bytes.len() - CRC_LEN].to_vec();
        for (at, b) in edits {
            let i = at.index(body.len());
            if i > 0 {
                body[i] = b;
            }
        }
        let keep = 1 + cut.index(body.len());
        body.truncate(keep);
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        if let Ok((t, v)) = decode(&body) {
            prop_assert_eq!(t.len(), v.len());
            prop_assert!(t.len() <= MAX_POINTS);
        }
    }

    #[test]
    fn random_bytes_do_not_panic(mut body in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Some(first) = body.first_mut() {
            *first = FORMAT_VERSION;
        }
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let _ = decode(&body);
        let _ = info(&body);
    }
}

#[test]
fn empty_chunk_round_trips_in_six_bytes() {
    let bytes = encode(&[], &[]);
    assert_eq!(bytes.len(), 6);
    let (ts, values) = decode(&bytes).expect("decode");
    assert!(ts.is_empty() && values.is_empty());
    assert_eq!(info(&bytes).expect("info").points, 0);
}

#[test]
fn one_point_chunks_round_trip() {
    for v in [
        0.0,
        -0.0,
        1.5,
        f64::NAN,
        f64::NEG_INFINITY,
        f64::from_bits(1),
    ] {
        assert_round_trip(&[i64::MIN], &[v]);
        assert_round_trip(&[i64::MAX], &[v]);
    }
}

#[test]
fn specials_survive_every_codec() {
    let values = [
        1.25,
        f64::from_bits(0x7ff8_0000_0000_0042), // NaN with payload 0x42
        f64::from_bits(0xfff4_0000_0000_0001), // negative signalling NaN
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        2.5,
    ];
    let ts = [0, 15_000, 15_000, 10_000, i64::MAX, i64::MIN, -1, 0];
    assert_round_trip(&ts, &values);
}

#[test]
fn negative_zero_among_decimals_is_not_turned_into_zero() {
    let values = [0.5, 1.25, -0.0, 3.0];
    let bytes = encode(&[1, 2, 3, 4], &values);
    let (_, got) = decode(&bytes).expect("decode");
    assert_eq!(bits(&got), bits(&values));
}

#[test]
fn regular_timestamps_with_gaps_cost_a_few_bytes() {
    let mut ts: Vec<i64> = (0..7200).map(|i| 1_767_225_600_000 + i * 15_000).collect();
    for t in &mut ts[3000..] {
        *t += 600_000; // the agent was down for ten minutes
    }
    let values: Vec<f64> = (0..7200).map(|i| f64::from(i % 97) / 4.0).collect();
    let info = info(&encode(&ts, &values)).expect("info");
    assert_eq!(info.timestamp_mode, Some(TimestampMode::DeltaRuns));
    assert!(info.timestamp_bytes <= 24, "{info:?}");
}

#[test]
fn irregular_timestamps_use_pco_when_smaller() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut t = 0i64;
    let ts: Vec<i64> = (0..1000)
        .map(|_| {
            t += 15_000 + rng.i64(-50..50);
            t
        })
        .collect();
    let values = vec![1.0; 1000];
    let bytes = encode(&ts, &values);
    assert_eq!(
        info(&bytes).expect("info").timestamp_mode,
        Some(TimestampMode::Pco)
    );
    assert_eq!(decode(&bytes).expect("decode").0, ts);
}

#[test]
fn auto_picks_constant_then_decimal_then_float() {
    let ts: Vec<i64> = (0..500).map(|i| i * 10_000).collect();
    let mode = |values: &[f64]| info(&encode(&ts, values)).expect("info").value_mode;

    assert_eq!(mode(&vec![f64::NAN; 500]), Some(ValueMode::Constant));
    let load: Vec<f64> = (0..500).map(|i| f64::from(i % 800) / 100.0).collect();
    assert_eq!(mode(&load), Some(ValueMode::PcoDecimal));
    let bytes_free: Vec<f64> = (0..500).map(|i| 1e11 - f64::from(i) * 4096.0).collect();
    assert_eq!(mode(&bytes_free), Some(ValueMode::PcoDecimal));
    let ratios: Vec<f64> = (1..=500).map(|i| 1.0 / f64::from(i)).collect();
    assert_eq!(mode(&ratios), Some(ValueMode::PcoFloat));
}

#[test]
fn decimal_detection_finds_the_fewest_places() {
    assert_eq!(decimal_places(&[1.0, 2.0, 1e15]), Some(0));
    assert_eq!(decimal_places(&[0.07, 7.5, 3.25]), Some(2));
    assert_eq!(decimal_places(&[0.1 + 0.2]), None); // 0.30000000000000004
    assert_eq!(decimal_places(&[f64::NAN]), None);
    assert_eq!(decimal_places(&[1e300]), None);
}

#[test]
fn header_errors_say_what_is_wrong() {
    assert!(matches!(decode(&[]), Err(ChunkError::Truncated(_))));
    let mut future = encode(&[1], &[1.0]);
    future[0] = 2;
    assert!(matches!(
        decode(&future),
        Err(ChunkError::UnsupportedVersion(2))
    ));

    let mut huge = vec![FORMAT_VERSION];
    put_varint(&mut huge, MAX_POINTS as u64 + 1);
    huge.extend_from_slice(&[0, 1, 0, 0]);
    let crc = crc32fast::hash(&huge);
    huge.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(decode(&huge), Err(ChunkError::TooManyPoints(_))));

    let mut flipped = encode(&[1, 2], &[1.0, 2.0]);
    flipped[3] ^= 0x10;
    assert!(matches!(decode(&flipped), Err(ChunkError::Checksum { .. })));
}

#[test]
#[should_panic(expected = "timestamps but")]
fn mismatched_lengths_are_a_caller_bug() {
    let _ = encode(&[1, 2], &[1.0]);
}

#[test]
fn varints_reject_overlong_encodings() {
    let mut r = Reader::new(&[0xff; 11]);
    assert!(r.varint().is_err());
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    assert!(r.varint().is_err());
    let mut max = Vec::new();
    put_varint(&mut max, u64::MAX);
    assert_eq!(Reader::new(&max).varint().expect("u64::MAX"), u64::MAX);
}
