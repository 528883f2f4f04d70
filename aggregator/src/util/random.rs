//! Randomness from the operating system, for tokens and certificate serial numbers. A failure
//! is an error for the caller to report, never a token of zero bytes.

/// The operating system gave no random bytes.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the operating system gave no random bytes")]
pub struct NoRandomness;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], NoRandomness> {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| NoRandomness)?;
    Ok(b)
}

/// An API bearer token: 192 random bits as 48 hex digits.
pub fn api_token() -> Result<String, NoRandomness> {
    Ok(bytes::<24>()?.iter().map(|b| format!("{b:02x}")).collect())
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
