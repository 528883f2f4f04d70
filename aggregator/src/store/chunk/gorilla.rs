//! Gorilla XOR. Per value after the first: `0` if the bits repeat; `10` + the meaningful bits if
//! the XOR fits the previous leading/trailing-zero window; `11` + 5 bits of leading zeros + 6 bits
//! of meaningful length (0 meaning 64) + the meaningful bits otherwise.

use super::ChunkError;

pub(super) fn gorilla_encode(values: &[f64]) -> Vec<u8> {
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

pub(super) fn gorilla_decode(bytes: &[u8], n: usize) -> Result<Vec<f64>, ChunkError> {
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

pub(super) struct BitWriter {
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

pub(super) struct BitReader<'a> {
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
