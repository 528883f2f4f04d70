//! The frame around the sections: the format byte, the point count, the timestamp section's
//! length, the value mode, and the CRC-32 trailer, checked before any section is decoded.

use super::varint::Reader;
use super::{CRC_LEN, ChunkError, FORMAT_VERSION, MAX_POINTS, TimestampMode, ValueMode};

pub(super) struct Sections<'a> {
    pub(super) points: usize,
    pub(super) body: Option<Body<'a>>,
}

pub(super) struct Body<'a> {
    pub(super) ts_mode: TimestampMode,
    pub(super) ts_bytes: &'a [u8],
    pub(super) value_mode: ValueMode,
    pub(super) value_bytes: &'a [u8],
}

pub(super) fn parse(bytes: &[u8]) -> Result<Sections<'_>, ChunkError> {
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
