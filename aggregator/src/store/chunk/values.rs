//! The value section: the encoding chosen per chunk (Gorilla XOR, pco on floats, or pco on
//! exact decimals scaled to integers) and its decoding.

use super::gorilla::{gorilla_decode, gorilla_encode};
use super::pco_section::{pco_compress, pco_decompress};
use super::{ChunkError, ValueCodec, ValueMode};

/// Decimal places tried when looking for values that are exact decimals (`12.34` is `1234` at
/// two places). Powers of ten up to 10^22 are exact doubles, so division by them rounds once.
pub(super) const MAX_DECIMALS: u8 = 9;
pub(super) const POW10: [f64; MAX_DECIMALS as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers beyond 2^53 are not all representable as doubles.
pub(super) const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

pub(super) fn encode_values(values: &[f64], codec: ValueCodec) -> (ValueMode, Vec<u8>) {
    match codec {
        ValueCodec::Gorilla => (ValueMode::Gorilla, gorilla_encode(values)),
        ValueCodec::Pco => pco_float(values),
        ValueCodec::PcoDecimal => pco_decimal(values).unwrap_or_else(|| pco_float(values)),
        ValueCodec::Auto => {
            let first = values[0].to_bits();
            if values.iter().all(|v| v.to_bits() == first) {
                return (ValueMode::Constant, first.to_le_bytes().to_vec());
            }
            pco_decimal(values).unwrap_or_else(|| pco_float(values))
        }
    }
}

pub(super) fn pco_float(values: &[f64]) -> (ValueMode, Vec<u8>) {
    match pco_compress(values) {
        Ok(b) => (ValueMode::PcoFloat, b),
        // pco only fails on invalid configuration, which ours is not; Gorilla takes anything.
        Err(_) => (ValueMode::Gorilla, gorilla_encode(values)),
    }
}

/// Exact decimals as integers: `Some` only if every value is `i / 10^k` for one `k` and an
/// integer `i` of at most 53 bits, with `i as f64 / 10^k` giving back the same bits.
pub(super) fn pco_decimal(values: &[f64]) -> Option<(ValueMode, Vec<u8>)> {
    let k = decimal_places(values)?;
    let scale = POW10[usize::from(k)];
    let mut ints = Vec::with_capacity(values.len());
    for &v in values {
        let i = (v * scale).round() as i64;
        // -0.0, NaN, infinities and anything the scaling rounds differently end up here.
        if (i as f64 / scale).to_bits() != v.to_bits() {
            return None;
        }
        ints.push(i);
    }
    let mut out = vec![k];
    out.extend_from_slice(&pco_compress(&ints).ok()?);
    Some((ValueMode::PcoDecimal, out))
}

/// The fewest decimal places that represent every value exactly, if any up to `MAX_DECIMALS`.
pub(super) fn decimal_places(values: &[f64]) -> Option<u8> {
    let mut k = 0u8;
    for &v in values {
        if !v.is_finite() {
            return None;
        }
        loop {
            let s = v * POW10[usize::from(k)];
            if s.abs() <= MAX_EXACT_INT && s.round() / POW10[usize::from(k)] == v {
                break;
            }
            k += 1;
            if k > MAX_DECIMALS {
                return None;
            }
        }
    }
    Some(k)
}

pub(super) fn decode_values(
    mode: ValueMode,
    bytes: &[u8],
    n: usize,
) -> Result<Vec<f64>, ChunkError> {
    match mode {
        ValueMode::Constant => {
            let bits: [u8; 8] = bytes
                .try_into()
                .map_err(|_| ChunkError::Corrupt("constant value is not 8 bytes"))?;
            Ok(vec![f64::from_bits(u64::from_le_bytes(bits)); n])
        }
        ValueMode::Gorilla => gorilla_decode(bytes, n),
        ValueMode::PcoFloat => pco_decompress::<f64>(bytes, n, "value"),
        ValueMode::PcoDecimal => {
            let (&k, rest) = bytes
                .split_first()
                .ok_or(ChunkError::Truncated("no decimal scale byte"))?;
            let scale = *POW10
                .get(usize::from(k))
                .ok_or(ChunkError::Corrupt("decimal scale out of range"))?;
            let ints = pco_decompress::<i64>(rest, n, "value")?;
            Ok(ints.into_iter().map(|i| i as f64 / scale).collect())
        }
    }
}
