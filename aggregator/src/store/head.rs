//! The open chunk of one series, in memory until it is closed into a compressed block.
//!
//! Points are appended in arrival order in a compact byte encoding, so a head costs a few
//! bytes per point rather than sixteen: the timestamp as a zigzag varint of its
//! delta-of-delta (one byte, `0`, for a series sampled on interval boundaries), the value as
//! the XOR with the previous value's bits, its zero bytes at either end dropped (one byte,
//! `0`, for an unchanged value).

/// Tag byte of a value equal to the previous one.
const SAME: u8 = 0;
/// Tag bit of a value stored as XOR bytes; bits 3..6 count leading zero bytes, 0..3 trailing.
const XOR: u8 = 0x80;

/// The open chunk of one series.
#[derive(Debug, Clone)]
pub struct Head {
    /// Write-ahead record that holds this head's first point: the table is trimmed below the
    /// oldest open head's.
    pub first_wal: u64,
    /// Wall clock (ms UTC) when the head was opened: old heads are closed even when they are
    /// not full.
    pub opened_ms: i64,
    /// Smallest and largest timestamp in the head.
    pub min_ts: i64,
    pub max_ts: i64,
    len: u32,
    first_ts: i64,
    prev_ts: i64,
    prev_delta: i64,
    prev_bits: u64,
    bytes: Vec<u8>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 || shift >= 63 {
            break;
        }
        shift += 7;
    }
    v
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl Head {
    /// A head holding one point.
    pub fn new(first_wal: u64, opened_ms: i64, ts: i64, value: f64) -> Self {
        let bits = value.to_bits();
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(&bits.to_le_bytes());
        Self {
            first_wal,
            opened_ms,
            min_ts: ts,
            max_ts: ts,
            len: 1,
            first_ts: ts,
            prev_ts: ts,
            prev_delta: 0,
            prev_bits: bits,
            bytes,
        }
    }

    /// Appends a point; any timestamp is accepted, in any order.
    pub fn push(&mut self, ts: i64, value: f64) {
        let delta = ts.wrapping_sub(self.prev_ts);
        put_varint(&mut self.bytes, zigzag(delta.wrapping_sub(self.prev_delta)));
        self.prev_ts = ts;
        self.prev_delta = delta;
        let bits = value.to_bits();
        let xor = bits ^ self.prev_bits;
        self.prev_bits = bits;
        if xor == 0 {
            self.bytes.push(SAME);
        } else {
            let lead = (xor.leading_zeros() / 8).min(7) as usize;
            let trail = (xor.trailing_zeros() / 8).min(7) as usize;
            let tag = XOR | ((lead as u8) << 3) | trail as u8;
            self.bytes.push(tag);
            // Little-endian: trailing zero bytes come first.
            self.bytes
                .extend_from_slice(&xor.to_le_bytes()[trail..8 - lead]);
        }
        self.len += 1;
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        if self.bytes.len() == self.bytes.capacity() {
            // Grow by a quarter, not double: heads are many and small.
            self.bytes.reserve_exact(self.bytes.len() / 4 + 16);
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Heads are never empty; for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory the head holds, for accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// The points in arrival order.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        let mut pos = 8;
        let mut first = true;
        let mut ts = self.first_ts;
        let mut delta = 0i64;
        let mut bits = u64::from_le_bytes(self.bytes[..8].try_into().unwrap_or([0; 8]));
        let mut left = self.len;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            if first {
                first = false;
                return Some((ts, f64::from_bits(bits)));
            }
            let dod = unzigzag(get_varint(&self.bytes, &mut pos));
            delta = delta.wrapping_add(dod);
            ts = ts.wrapping_add(delta);
            let tag = self.bytes.get(pos).copied().unwrap_or(SAME);
            pos += 1;
            if tag != SAME {
                let lead = usize::from((tag >> 3) & 7);
                let trail = usize::from(tag & 7);
                let n = 8 - lead - trail;
                let mut le = [0u8; 8];
                if let Some(src) = self.bytes.get(pos..pos + n) {
                    le[trail..8 - lead].copy_from_slice(src);
                }
                pos += n;
                bits ^= u64::from_le_bytes(le);
            }
            Some((ts, f64::from_bits(bits)))
        })
    }

    /// The points sorted by timestamp (stable: equal timestamps keep arrival order), as two
    /// columns for the chunk codec.
    pub fn sorted_columns(&self) -> (Vec<i64>, Vec<f64>) {
        let mut points: Vec<(i64, f64)> = self.points().collect();
        points.sort_by_key(|p| p.0);
        points.into_iter().unzip()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn round_trip(points: &[(i64, f64)]) -> Vec<(i64, u64)> {
        let mut head = Head::new(7, 0, points[0].0, points[0].1);
        for &(ts, v) in &points[1..] {
            head.push(ts, v);
        }
        assert_eq!(head.len(), points.len());
        head.points().map(|(t, v)| (t, v.to_bits())).collect()
    }

    proptest! {
        #[test]
        fn any_points_come_back_bit_for_bit(
            points in prop::collection::vec((any::<i64>(), any::<u64>()), 1..300)
        ) {
            let points: Vec<(i64, f64)> =
                points.into_iter().map(|(t, b)| (t, f64::from_bits(b))).collect();
            let want: Vec<(i64, u64)> = points.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            prop_assert_eq!(round_trip(&points), want);
        }
    }

    #[test]
    fn regular_series_cost_two_bytes_a_point() {
        let mut head = Head::new(1, 0, 1_700_000_000_000, 42.0);
        for i in 1..120 {
            head.push(1_700_000_000_000 + i * 10_000, 42.0);
        }
        // The first value in full, then the first delta (3 bytes) and, from there on, one byte
        // of delta-of-delta and one of "same value" per point.
        assert_eq!(head.bytes.len(), 8 + 3 + 1 + 118 * 2);
        let (ts, values) = head.sorted_columns();
        assert_eq!(ts[119], 1_700_000_000_000 + 119 * 10_000);
        assert!(values.iter().all(|v| *v == 42.0));
    }

    #[test]
    fn special_values_and_disorder_survive() {
        let points = [
            (100, f64::NAN),
            (100, -0.0),
            (50, f64::INFINITY),
            (200, f64::NEG_INFINITY),
            (150, f64::from_bits(0x7ff8_0000_dead_beef)),
        ];
        let got = round_trip(&points);
        let want: Vec<(i64, u64)> = points.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(got, want);
        let mut head = Head::new(1, 0, 100, 1.0);
        head.push(50, 2.0);
        head.push(150, 3.0);
        assert_eq!((head.min_ts, head.max_ts), (50, 150));
        assert_eq!(
            head.sorted_columns(),
            (vec![50, 100, 150], vec![2.0, 1.0, 3.0])
        );
    }
}
