//! The timestamp section: runs of equal deltas for regular series, pco for irregular ones.

use super::pco_section::{pco_compress, pco_decompress};
use super::varint::{Reader, put_varint, unzigzag, zigzag};
use super::{ChunkError, TimestampMode};

pub(super) fn encode_timestamps(ts: &[i64]) -> (TimestampMode, Vec<u8>) {
    let runs = delta_runs(ts);
    // A regular series with a few gaps is a few pairs; only when the spacing is irregular is pco
    // worth its time.
    if runs.len() > 8 {
        let mut rle = Vec::new();
        put_delta_runs(&mut rle, ts[0], &runs);
        if let Ok(p) = pco_compress(ts)
            && p.len() < rle.len()
        {
            return (TimestampMode::Pco, p);
        }
        return (TimestampMode::DeltaRuns, rle);
    }
    let mut rle = Vec::new();
    put_delta_runs(&mut rle, ts[0], &runs);
    (TimestampMode::DeltaRuns, rle)
}

/// (delta, count) runs of consecutive timestamp deltas; deltas wrap, so any i64 sequence works.
pub(super) fn delta_runs(ts: &[i64]) -> Vec<(i64, u64)> {
    let mut runs: Vec<(i64, u64)> = Vec::new();
    for w in ts.windows(2) {
        let d = w[1].wrapping_sub(w[0]);
        match runs.last_mut() {
            Some((last, count)) if *last == d => *count += 1,
            _ => runs.push((d, 1)),
        }
    }
    runs
}

pub(super) fn put_delta_runs(out: &mut Vec<u8>, first: i64, runs: &[(i64, u64)]) {
    put_varint(out, zigzag(first));
    for &(d, count) in runs {
        put_varint(out, zigzag(d));
        put_varint(out, count - 1);
    }
}

pub(super) fn decode_timestamps(
    mode: TimestampMode,
    bytes: &[u8],
    n: usize,
) -> Result<Vec<i64>, ChunkError> {
    match mode {
        TimestampMode::DeltaRuns => {
            let mut r = Reader::new(bytes);
            let mut t = unzigzag(r.varint()?);
            let mut out = Vec::with_capacity(n);
            out.push(t);
            while out.len() < n {
                let d = unzigzag(r.varint()?);
                let count = r.varint()?;
                if count >= (n - out.len()) as u64 {
                    return Err(ChunkError::Corrupt("timestamp runs exceed the point count"));
                }
                for _ in 0..=count {
                    t = t.wrapping_add(d);
                    out.push(t);
                }
            }
            if !r.is_empty() {
                return Err(ChunkError::Corrupt("bytes after the timestamp runs"));
            }
            Ok(out)
        }
        TimestampMode::Pco => pco_decompress::<i64>(bytes, n, "timestamp"),
    }
}
