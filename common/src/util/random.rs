//! Random bytes from the operating system (ring's `SystemRandom`). A failing source is an
//! error: tokens, keys and serials are never made of zero bytes.

use ring::rand::{SecureRandom, SystemRandom};

/// The operating system gave no random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        let (a, b) = (super::random_bytes::<32>(), super::random_bytes::<32>());
        assert!(matches!((a, b), (Ok(a), Ok(b)) if a != b));
    }
}
