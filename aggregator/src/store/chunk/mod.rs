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

use pco::data_types::Number;
use pco::errors::PcoError;
use pco::wrapped::{FileCompressor, FileDecompressor};
use pco::{ChunkConfig, PagingSpec};

/// The format byte every chunk starts with. Bump it when the layout changes; old chunks keep
/// their byte and stay readable as long as a decoder for them is kept.
pub const FORMAT_VERSION: u8 = 1;

/// The most points one chunk may hold. The store closes chunks long before this (hours of data
/// at the shortest interval); the bound keeps a hostile count from allocating without limit.
pub const MAX_POINTS: usize = 1 << 20;

/// Decimal places tried when looking for values that are exact decimals (`12.34` is `1234` at
/// two places). Powers of ten up to 10^22 are exact doubles, so division by them rounds once.
const MAX_DECIMALS: u8 = 9;
const POW10: [f64; MAX_DECIMALS as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers beyond 2^53 are not all representable as doubles.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

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

struct Sections<'a> {
    points: usize,
    body: Option<Body<'a>>,
}

struct Body<'a> {
    ts_mode: TimestampMode,
    ts_bytes: &'a [u8],
    value_mode: ValueMode,
    value_bytes: &'a [u8],
}

fn parse(bytes: &[u8]) -> Result<Sections<'_>, ChunkError> {
    let (&version, _) = bytes
        .split_first()
        .ok_or(ChunkError::Truncated("no format byte"))?;
    if version != FORMAT_VERSION {
        return Err(ChunkError::UnsupportedVersion(version));
    }
    if bytes.len() < 2 + CRC_LEN {
        return Err(ChunkError::Truncated("shorter than the smallest chunk"));
    }
    let (covered, trailer) = bytes.split_at(bytes.len() - CRC_LEN);
    let mut stored = [0u8; CRC_LEN];
    stored.copy_from_slice(trailer);
    let stored = u32::from_le_bytes(stored);
    let computed = crc32fast::hash(covered);
    if stored != computed {
        return Err(ChunkError::Checksum { stored, computed });
    }
    let mut r = Reader::new(&covered[1..]);
    let points = r.varint()?;
    if points > MAX_POINTS as u64 {
        return Err(ChunkError::TooManyPoints(points));
    }
    let points = points as usize;
    if points == 0 {
        if !r.is_empty() {
            return Err(ChunkError::Corrupt("bytes after an empty chunk's header"));
        }
        return Ok(Sections { points, body: None });
    }
    let ts_mode = TimestampMode::from_byte(r.byte()?)?;
    let ts_len = r.varint()?;
    let ts_len = usize::try_from(ts_len)
        .ok()
        .filter(|&l| l <= r.remaining())
        .ok_or(ChunkError::Truncated(
            "timestamp section is longer than the chunk",
        ))?;
    let ts_bytes = r.take(ts_len)?;
    let value_mode = ValueMode::from_byte(r.byte()?)?;
    let value_bytes = r.rest();
    Ok(Sections {
        points,
        body: Some(Body {
            ts_mode,
            ts_bytes,
            value_mode,
            value_bytes,
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// Timestamps

fn encode_timestamps(ts: &[i64]) -> (TimestampMode, Vec<u8>) {
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
fn delta_runs(ts: &[i64]) -> Vec<(i64, u64)> {
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

fn put_delta_runs(out: &mut Vec<u8>, first: i64, runs: &[(i64, u64)]) {
    put_varint(out, zigzag(first));
    for &(d, count) in runs {
        put_varint(out, zigzag(d));
        put_varint(out, count - 1);
    }
}

fn decode_timestamps(mode: TimestampMode, bytes: &[u8], n: usize) -> Result<Vec<i64>, ChunkError> {
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

// ---------------------------------------------------------------------------------------------
// Values

fn encode_values(values: &[f64], codec: ValueCodec) -> (ValueMode, Vec<u8>) {
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

fn pco_float(values: &[f64]) -> (ValueMode, Vec<u8>) {
    match pco_compress(values) {
        Ok(b) => (ValueMode::PcoFloat, b),
        // pco only fails on invalid configuration, which ours is not; Gorilla takes anything.
        Err(_) => (ValueMode::Gorilla, gorilla_encode(values)),
    }
}

/// Exact decimals as integers: `Some` only if every value is `i / 10^k` for one `k` and an
/// integer `i` of at most 53 bits, with `i as f64 / 10^k` giving back the same bits.
fn pco_decimal(values: &[f64]) -> Option<(ValueMode, Vec<u8>)> {
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
fn decimal_places(values: &[f64]) -> Option<u8> {
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

fn decode_values(mode: ValueMode, bytes: &[u8], n: usize) -> Result<Vec<f64>, ChunkError> {
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

// ---------------------------------------------------------------------------------------------
// pco, wrapped format: a one-byte pco header, the chunk metadata and a single page. The page
// count is ours (the chunk header), so pco's own standalone framing is not needed.

fn pco_compress<T: Number>(nums: &[T]) -> Result<Vec<u8>, PcoError> {
    let config = ChunkConfig::default().with_paging_spec(PagingSpec::Exact(vec![nums.len()]));
    let fc = FileCompressor::default();
    let mut out = Vec::new();
    fc.write_header(&mut out)?;
    let mut cc = fc.chunk_compressor(nums, &config)?;
    cc.write_meta(&mut out)?;
    cc.write_page(0, &mut out)?;
    Ok(out)
}

fn pco_decompress<T: Number>(
    bytes: &[u8],
    n: usize,
    section: &'static str,
) -> Result<Vec<T>, ChunkError> {
    let err = |source| ChunkError::Pco { section, source };
    let (fd, rest) = FileDecompressor::new(bytes).map_err(err)?;
    let (mut cd, rest) = fd.chunk_decompressor::<T, _>(rest).map_err(err)?;
    let mut pd = cd.page_decompressor(rest, n).map_err(err)?;
    let mut out = vec![T::default(); n];
    let progress = pd.read(&mut out).map_err(err)?;
    if progress.n_processed != n || !progress.finished {
        return Err(ChunkError::Corrupt(
            "pco section holds fewer points than the chunk",
        ));
    }
    if !pd.into_src().is_empty() {
        return Err(ChunkError::Corrupt("bytes after the pco section"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Gorilla XOR. Per value after the first: `0` if the bits repeat; `10` + the meaningful bits if
// the XOR fits the previous leading/trailing-zero window; `11` + 5 bits of leading zeros + 6 bits
// of meaningful length (0 meaning 64) + the meaningful bits otherwise.

fn gorilla_encode(values: &[f64]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(values.len() * 2);
    let mut prev = values[0].to_bits();
    w.write(prev, 64);
    let mut window: Option<(u32, u32)> = None;
    for v in &values[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write(0, 1);
            continue;
        }
        let lz = x.leading_zeros().min(31);
        let tz = x.trailing_zeros();
        match window {
            Some((plz, ptz)) if lz >= plz && tz >= ptz => {
                w.write(0b10, 2);
                w.write(x >> ptz, 64 - plz - ptz);
            }
            _ => {
                let sig = 64 - lz - tz;
                w.write(0b11, 2);
                w.write(u64::from(lz), 5);
                w.write(u64::from(sig & 63), 6);
                w.write(x >> tz, sig);
                window = Some((lz, tz));
            }
        }
    }
    w.finish()
}

fn gorilla_decode(bytes: &[u8], n: usize) -> Result<Vec<f64>, ChunkError> {
    const SHORT: ChunkError = ChunkError::Truncated("Gorilla bit stream ends early");
    // Every value after the first takes at least one bit: a cheap bound before allocating.
    if (n - 1) as u64 > (bytes.len() as u64 * 8).saturating_sub(64) {
        return Err(SHORT);
    }
    let mut r = BitReader::new(bytes);
    let mut prev = r.read(64).ok_or(SHORT)?;
    let mut out = Vec::with_capacity(n);
    out.push(f64::from_bits(prev));
    let mut window: Option<(u32, u32)> = None;
    while out.len() < n {
        if r.read(1).ok_or(SHORT)? == 1 {
            let (lz, tz) = if r.read(1).ok_or(SHORT)? == 0 {
                window.ok_or(ChunkError::Corrupt("Gorilla reuses a window it never set"))?
            } else {
                let lz = r.read(5).ok_or(SHORT)? as u32;
                let sig = match r.read(6).ok_or(SHORT)? as u32 {
                    0 => 64,
                    s => s,
                };
                if lz + sig > 64 {
                    return Err(ChunkError::Corrupt("Gorilla window wider than 64 bits"));
                }
                let tz = 64 - lz - sig;
                window = Some((lz, tz));
                (lz, tz)
            };
            let x = r.read(64 - lz - tz).ok_or(SHORT)?;
            prev ^= x << tz;
        }
        out.push(f64::from_bits(prev));
    }
    if !r.only_zero_padding_left() {
        return Err(ChunkError::Corrupt("bytes after the Gorilla bit stream"));
    }
    Ok(out)
}

struct BitWriter {
    out: Vec<u8>,
    acc: u128,
    pending: u32,
}

impl BitWriter {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            out: Vec::with_capacity(bytes),
            acc: 0,
            pending: 0,
        }
    }

    /// Appends the low `bits` bits of `value` (`bits` ≤ 64), most significant first.
    fn write(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let value = if bits == 64 {
            value
        } else {
            value & ((1u64 << bits) - 1)
        };
        // At most 7 bits are pending between calls, so 7 + 64 bits fit the accumulator.
        self.acc = (self.acc << bits) | u128::from(value);
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u128 << self.pending) - 1;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
        self.out
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The next `bits` bits (≤ 64) as an integer, or `None` past the end.
    fn read(&mut self, bits: u32) -> Option<u64> {
        if bits == 0 {
            return Some(0);
        }
        let end = self.pos.checked_add(bits as usize)?;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let first = self.pos / 8;
        let last = (end - 1) / 8;
        let mut acc: u128 = 0;
        for &b in &self.bytes[first..=last] {
            acc = (acc << 8) | u128::from(b);
        }
        acc >>= (last + 1) * 8 - end;
        self.pos = end;
        let mask = if bits == 64 {
            u128::from(u64::MAX)
        } else {
            (1u128 << bits) - 1
        };
        Some((acc & mask) as u64)
    }

    fn only_zero_padding_left(&self) -> bool {
        let rest_bits = self.bytes.len() * 8 - self.pos;
        if rest_bits >= 8 {
            return false;
        }
        rest_bits == 0 || self.bytes[self.pos / 8] & ((1u8 << rest_bits) - 1) == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Byte-level helpers

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or(ChunkError::Truncated("ends in the middle of a field"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        if n > self.bytes.len() {
            return Err(ChunkError::Truncated("section ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// LEB128, at most 10 bytes, rejecting bits beyond 64 so one value has one encoding.
    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && (b & 0x7e) != 0 {
                return Err(ChunkError::Corrupt("varint longer than 64 bits"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError::Corrupt("varint longer than 64 bits"))
    }
}

#[cfg(test)]
mod tests;
