//! Chunk codec: one series' run of `(timestamp ms, value)` points as a compact, checksummed byte
//! block, and back, bit for bit.
//!
//! The layout is described in `docs/design.md` ("Chunk format"). In short: a format byte, the
//! point count, the timestamps (runs of equal deltas, or pco when they are irregular), the values
//! (one of four encodings, chosen per chunk), and a CRC-32 of everything before it. The value
//! encoding was chosen by measurement: `nines-aggregator bench storage` prints the comparison.
//!
//! Decoding never trusts its input: every length and count is checked against the bytes that are
//! actually there and against [`MAX_POINTS`], so a truncated or corrupted chunk is an error, not a
//! panic or a huge allocation.
//!
//! This file holds the public API and the chunk's types; `header` frames and checks a chunk,
//! `timestamps` and `values` code the two sections, `gorilla` and `pco_section` are the value
//! and timestamp codecs beneath them, and `varint` the byte-level helpers.

mod gorilla;
mod header;
mod pco_section;
mod timestamps;
mod values;
mod varint;

use pco::errors::PcoError;

use header::parse;
use timestamps::{decode_timestamps, encode_timestamps};
use values::{decode_values, encode_values};
use varint::put_varint;

/// The format byte every chunk starts with. Bump it when the layout changes; old chunks keep
/// their byte and stay readable as long as a decoder for them is kept.
pub const FORMAT_VERSION: u8 = 1;

/// The most points one chunk may hold. The store closes chunks long before this (hours of data
/// at the shortest interval); the bound keeps a hostile count from allocating without limit.
pub const MAX_POINTS: usize = 1 << 20;

/// Trailer: CRC-32 (IEEE) of every byte before it, little-endian.
const CRC_LEN: usize = 4;

/// How the timestamps of a chunk are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TimestampMode {
    /// First timestamp, then (delta, repeat count) pairs: a regular series with a few gaps is a
    /// handful of bytes whatever its length.
    DeltaRuns = 0,
    /// pco on the raw i64 timestamps (it picks its own delta order): for irregular spacing.
    Pco = 1,
}

/// How the values of a chunk are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ValueMode {
    /// Every value has the same bits: stored once.
    Constant = 0,
    /// Gorilla XOR (Pelkonen et al., VLDB 2015), as in Prometheus.
    Gorilla = 1,
    /// pco on the f64 values.
    PcoFloat = 2,
    /// Every value is an exact decimal with at most [`MAX_DECIMALS`] places: a scale byte `k`,
    /// then pco on the integers `value × 10^k`.
    PcoDecimal = 3,
}

impl TimestampMode {
    fn from_byte(b: u8) -> Result<Self, ChunkError> {
        match b {
            0 => Ok(Self::DeltaRuns),
            1 => Ok(Self::Pco),
            mode => Err(ChunkError::UnknownMode {
                section: "timestamp",
                mode,
            }),
        }
    }
}

impl ValueMode {
    fn from_byte(b: u8) -> Result<Self, ChunkError> {
        match b {
            0 => Ok(Self::Constant),
            1 => Ok(Self::Gorilla),
            2 => Ok(Self::PcoFloat),
            3 => Ok(Self::PcoDecimal),
            mode => Err(ChunkError::UnknownMode {
                section: "value",
                mode,
            }),
        }
    }
}

/// Which value encodings [`encode_with`] may use. [`encode`] uses [`ValueCodec::Auto`]; the
/// others exist so the benchmark can compare the candidates on the same data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCodec {
    /// The production choice, per chunk: constant if every value is the same, else exact
    /// decimals through pco on integers if the values allow it, else pco on the floats.
    Auto,
    /// Gorilla XOR only.
    Gorilla,
    /// pco on the f64 values only.
    Pco,
    /// Exact decimals through pco on integers where possible, else pco on the floats.
    PcoDecimal,
}

/// Why a chunk could not be decoded. Each variant means the bytes are not a chunk this build
/// wrote (corruption, truncation, or a newer format), never a bug to be retried.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk is truncated: {0}")]
    Truncated(&'static str),
    #[error("chunk format {0} is not supported (this build reads format {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("chunk checksum mismatch (stored {stored:08x}, computed {computed:08x}): corrupted")]
    Checksum { stored: u32, computed: u32 },
    #[error("chunk claims {0} points, more than the limit of {MAX_POINTS}")]
    TooManyPoints(u64),
    #[error("chunk has unknown {section} encoding {mode}")]
    UnknownMode { section: &'static str, mode: u8 },
    #[error("chunk is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("chunk {section} section is corrupt: {source}")]
    Pco {
        section: &'static str,
        #[source]
        source: PcoError,
    },
}

/// What a chunk holds and how, read from its header without decoding the points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub points: usize,
    /// `None` for an empty chunk.
    pub timestamp_mode: Option<TimestampMode>,
    pub timestamp_bytes: usize,
    pub value_mode: Option<ValueMode>,
    pub value_bytes: usize,
}

/// Encodes one chunk with the production choice of value encoding ([`ValueCodec::Auto`]).
///
/// Timestamps are milliseconds and are kept in the order given (the caller sorts); repeats and
/// steps backwards are allowed. Values round-trip bit for bit, NaN payloads and -0.0 included.
///
/// # Panics
/// If `ts` and `values` differ in length or hold more than [`MAX_POINTS`] points: both are bugs
/// in the caller, which owns the chunk boundaries.
pub fn encode(ts: &[i64], values: &[f64]) -> Vec<u8> {
    encode_with(ts, values, ValueCodec::Auto)
}

/// Encodes one chunk, restricting the value encodings to `codec`. See [`encode`].
///
/// # Panics
/// As [`encode`].
pub fn encode_with(ts: &[i64], values: &[f64], codec: ValueCodec) -> Vec<u8> {
    assert_eq!(
        ts.len(),
        values.len(),
        "chunk::encode: {} timestamps but {} values",
        ts.len(),
        values.len()
    );
    assert!(
        ts.len() <= MAX_POINTS,
        "chunk::encode: {} points, more than MAX_POINTS ({MAX_POINTS})",
        ts.len()
    );
    let mut out = Vec::with_capacity(16 + ts.len());
    out.push(FORMAT_VERSION);
    put_varint(&mut out, ts.len() as u64);
    if !ts.is_empty() {
        let (ts_mode, ts_bytes) = encode_timestamps(ts);
        out.push(ts_mode as u8);
        put_varint(&mut out, ts_bytes.len() as u64);
        out.extend_from_slice(&ts_bytes);
        let (value_mode, value_bytes) = encode_values(values, codec);
        out.push(value_mode as u8);
        out.extend_from_slice(&value_bytes);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a chunk made by [`encode`] into its timestamps and values, in the order encoded.
pub fn decode(bytes: &[u8]) -> Result<(Vec<i64>, Vec<f64>), ChunkError> {
    let sections = parse(bytes)?;
    let Some(s) = sections.body else {
        return Ok((Vec::new(), Vec::new()));
    };
    let ts = decode_timestamps(s.ts_mode, s.ts_bytes, sections.points)?;
    let values = decode_values(s.value_mode, s.value_bytes, sections.points)?;
    Ok((ts, values))
}

/// Checks a chunk's format and checksum and reports its point count and encodings.
pub fn info(bytes: &[u8]) -> Result<ChunkInfo, ChunkError> {
    let s = parse(bytes)?;
    Ok(ChunkInfo {
        points: s.points,
        timestamp_mode: s.body.as_ref().map(|b| b.ts_mode),
        timestamp_bytes: s.body.as_ref().map_or(0, |b| b.ts_bytes.len()),
        value_mode: s.body.as_ref().map(|b| b.value_mode),
        value_bytes: s.body.as_ref().map_or(0, |b| b.value_bytes.len()),
    })
}

#[cfg(test)]
mod tests;
