//! Randomness for tokens and certificate serial numbers: the operating system's, through
//! [`nines_common::util::random`]. A failure is an error for the caller to report, never a
//! token of zero bytes.

pub use nines_common::util::random::{RandomError, random_bytes};

/// An API bearer token: 192 random bits as 48 hex digits.
pub fn api_token() -> Result<String, RandomError> {
    Ok(nines_common::util::hex::encode(&random_bytes::<24>()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_48_hex_digits_and_differ() {
        let (a, b) = (super::api_token().unwrap(), super::api_token().unwrap());
        assert_eq!(a.len(), 48);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
