//! The only place that calls bincode. Everything nines serialises in binary (frames, spool
//! records) goes through here, so a change of format is a change of this file plus a protocol
//! version bump.

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

use super::ProtoError;

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .with_varint_encoding()
        .reject_trailing_bytes()
}

/// Encodes `value`, refusing results longer than `limit` bytes.
pub fn encode<T: Serialize>(value: &T, limit: u64) -> Result<Vec<u8>, ProtoError> {
    options(limit).serialize(value).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => ProtoError::FrameTooLarge {
            len: limit.saturating_add(1),
            max: u32::try_from(limit).unwrap_or(u32::MAX),
        },
        other => ProtoError::Malformed(other.to_string()),
    })
}

/// Decodes exactly one value from `bytes`: trailing bytes and allocations beyond `bytes.len()`
/// are errors, so a hostile length field inside the payload cannot make us allocate.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    options(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Reads the protocol version of a `Hello` payload even when the rest is not decodable (a newer
/// agent). Returns `None` if the payload does not start like a `Hello`.
pub fn peek_hello_protocol(bytes: &[u8]) -> Option<u16> {
    let opts = bincode::DefaultOptions::new()
        .with_limit(bytes.len() as u64)
        .with_varint_encoding()
        .allow_trailing_bytes();
    let (tag, protocol): (u32, u16) = opts.deserialize(bytes).ok()?;
    (tag == 0).then_some(protocol)
}
