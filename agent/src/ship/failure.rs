//! Why a session with an aggregator ended, whether retrying soon can help, and how long to
//! wait before the next attempt.

use std::time::Duration;

use nines_common::proto::ProtoError;
use nines_common::util::backoff::Backoff;

use crate::spool::SpoolError;

/// Longest wait between attempts while the aggregator cannot be reached (refused, reset or
/// timed-out connections: it is restarting or the network is down), so that an agent is back
/// within a few seconds of the aggregator.
pub const BACKOFF_CAP: Duration = Duration::from_secs(4);
/// Longest wait between attempts while the aggregator refuses this agent (a certificate it
/// does not accept, a host or protocol mismatch): retrying sooner would not help.
pub const REFUSED_BACKOFF_CAP: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The first attempt after a working connection ended waits at most this (jitter only).
const FIRST_RETRY_JITTER: Duration = Duration::from_millis(100);
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session with an aggregator ended.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// TCP connect or TLS handshake failed.
    #[error("connecting to {addr}: {detail}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        detail: String,
        /// The TLS handshake failed on a certificate (refused by either side), not the network.
        tls_refused: bool,
    },
    /// Framing or transport error.
    #[error("protocol: {0}")]
    Proto(#[from] ProtoError),
    /// The aggregator sent an error frame.
    #[error("aggregator refused: {code}: {message}")]
    Refused {
        /// Its code.
        code: nines_common::proto::ErrorCode,
        /// Its message.
        message: String,
    },
    /// The aggregator sent something out of place.
    #[error("unexpected message from aggregator: {0}")]
    Unexpected(String),
    /// No ack arrived within the ack timeout.
    #[error("no acknowledgement for {0:?}; assuming the connection is dead")]
    AckTimeout(Duration),
    /// The aggregator closed the connection.
    #[error("aggregator closed the connection")]
    Closed,
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// How a session failed, for the backoff: whether retrying soon can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The aggregator could not be reached or dropped the connection: it heals by itself.
    Transient,
    /// The aggregator refused this agent (TLS alert, `HostMismatch`, unsupported protocol, a
    /// batch it will not take): it heals only when someone acts.
    Refused,
}

impl ShipError {
    /// Whether retrying soon can help.
    pub fn failure(&self) -> Failure {
        use nines_common::proto::ErrorCode;
        match self {
            Self::Refused { code, .. } => match code {
                ErrorCode::StorageUnavailable | ErrorCode::ShuttingDown => Failure::Transient,
                _ => Failure::Refused,
            },
            Self::Connect { tls_refused, .. } if *tls_refused => Failure::Refused,
            // A TLS alert read after the handshake (TLS 1.3 sends the server's verdict on the
            // client's certificate then): the aggregator refused the certificate.
            Self::Proto(ProtoError::Io(e)) if is_tls_refusal(e) => Failure::Refused,
            Self::Unexpected(_) => Failure::Refused,
            _ => Failure::Transient,
        }
    }
}

/// Whether an I/O error carries a TLS refusal (an alert or a certificate rustls rejects),
/// not a network failure.
pub(crate) fn is_tls_refusal(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some()
}

/// Delay before reconnection attempt `attempt` after a failure of kind `failure`, drawn
/// from `rng`. Attempt 0 follows a connection that worked: it waits at most 100 ms (jitter
/// only, so agents cut off together do not all return in the same millisecond). Attempt `n`
/// waits between half of and the whole of `min(cap, 250 ms · 2^(n-1))`, the cap 4 s while
/// the aggregator is unreachable, 60 s while it refuses the agent: bounded jitter, so no
/// agent waits the full cap by chance while its aggregator is already back.
pub fn backoff(attempt: u32, failure: Failure, rng: &mut fastrand::Rng) -> Duration {
    let cap = match failure {
        Failure::Transient => BACKOFF_CAP,
        Failure::Refused => REFUSED_BACKOFF_CAP,
    };
    Backoff {
        base: BACKOFF_BASE,
        cap,
        first: FIRST_RETRY_JITTER,
    }
    .delay(attempt, rng)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_is_at_once_and_an_unreachable_aggregator_is_retried_within_4_s() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            for failure in [Failure::Transient, Failure::Refused] {
                assert!(backoff(0, failure, &mut rng) <= Duration::from_millis(100));
            }
        }
        // Attempt n waits within [c/2, c], c = min(cap, 250 ms * 2^(n-1)).
        let mut total = Duration::ZERO;
        for attempt in 1..200 {
            let c = (Duration::from_millis(250) * 2u32.pow((attempt - 1).min(16))).min(BACKOFF_CAP);
            for _ in 0..50 {
                let d = backoff(attempt, Failure::Transient, &mut rng);
                assert!(
                    d >= c / 2 && d <= c,
                    "attempt {attempt}: {d:?} outside {c:?}"
                );
            }
            if attempt <= 8 {
                total += c;
            }
        }
        // So an agent that has been retrying for any time tries again at most 4 s after the
        // aggregator is back, and the first eight attempts span under 20 s.
        assert_eq!(BACKOFF_CAP, Duration::from_secs(4));
        assert!(total < Duration::from_secs(20), "{total:?}");
        let late: Vec<Duration> = (0..500)
            .map(|_| backoff(30, Failure::Transient, &mut rng))
            .collect();
        assert!(
            late.iter().any(|d| *d < Duration::from_millis(2500)),
            "jittered"
        );
        assert!(
            late.iter().any(|d| *d > Duration::from_millis(3500)),
            "reaches the cap"
        );
    }

    #[test]
    fn a_refusing_aggregator_is_retried_slowly_up_to_a_minute() {
        let mut rng = fastrand::Rng::with_seed(11);
        let late: Vec<Duration> = (0..500)
            .map(|_| backoff(30, Failure::Refused, &mut rng))
            .collect();
        assert!(
            late.iter()
                .all(|d| *d >= Duration::from_secs(30) && *d <= REFUSED_BACKOFF_CAP)
        );
        assert!(late.iter().any(|d| *d > Duration::from_secs(55)));
        // Deterministic for a seed: the property tests above are reproducible.
        let a: Vec<_> = (1..20)
            .map(|n| backoff(n, Failure::Refused, &mut fastrand::Rng::with_seed(3)))
            .collect();
        let b: Vec<_> = (1..20)
            .map(|n| backoff(n, Failure::Refused, &mut fastrand::Rng::with_seed(3)))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn failures_are_told_apart_by_whether_they_heal_by_themselves() {
        use nines_common::proto::ErrorCode;
        let refused = |code| ShipError::Refused {
            code,
            message: String::new(),
        };
        assert_eq!(
            refused(ErrorCode::ShuttingDown).failure(),
            Failure::Transient
        );
        assert_eq!(
            refused(ErrorCode::StorageUnavailable).failure(),
            Failure::Transient
        );
        assert_eq!(refused(ErrorCode::HostMismatch).failure(), Failure::Refused);
        assert_eq!(
            refused(ErrorCode::UnsupportedProtocol).failure(),
            Failure::Refused
        );
        let connect = |tls_refused| ShipError::Connect {
            addr: "a:1".into(),
            detail: String::new(),
            tls_refused,
        };
        assert_eq!(connect(false).failure(), Failure::Transient);
        assert_eq!(connect(true).failure(), Failure::Refused);
        let io = |e: std::io::Error| ShipError::Proto(ProtoError::Io(e));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(io(reset).failure(), Failure::Transient);
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRevoked),
        );
        assert_eq!(io(alert).failure(), Failure::Refused);
        assert_eq!(ShipError::Closed.failure(), Failure::Transient);
        assert_eq!(
            ShipError::AckTimeout(Duration::from_secs(1)).failure(),
            Failure::Transient
        );
    }
}
