//! Byte-level helpers: LEB128 varints, zigzag for signed deltas, and a [`Reader`] that checks
//! every length against the bytes that are there.

use super::ChunkError;

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn byte(&mut self) -> Result<u8, ChunkError> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or(ChunkError::Truncated("ends in the middle of a field"))?;
        self.bytes = rest;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        if n > self.bytes.len() {
            return Err(ChunkError::Truncated("section ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// LEB128, at most 10 bytes, rejecting bits beyond 64 so one value has one encoding.
    pub(super) fn varint(&mut self) -> Result<u64, ChunkError> {
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
