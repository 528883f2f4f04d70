//! What an accept loop does when `accept` fails: out of descriptors (EMFILE, ENFILE) and the
//! like pause the loop briefly rather than spin on a listener that stays readable, and a burst
//! of failures is logged once, when it starts, and once more when accepting works again.

use std::time::Duration;

/// How long a loop pauses after an accept that failed for want of a resource.
pub const PAUSE: Duration = Duration::from_millis(100);

/// One accept loop's failures.
#[derive(Debug)]
pub struct AcceptErrors {
    /// Which port, for the log: `ingest` or `HTTP API`.
    port: &'static str,
    /// Failures since the burst began; 0 outside a burst.
    failures: u64,
}

/// The peer went away between the kernel's handshake and `accept`: nothing is wrong here, the
/// next connection can be taken at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

impl AcceptErrors {
    /// For the port named `port` in the log.
    pub fn new(port: &'static str) -> Self {
        Self { port, failures: 0 }
    }

    /// Records a failed accept and pauses if the cause may last (descriptors, memory).
    pub async fn failed(&mut self, e: &std::io::Error) {
        if is_connection_error(e) {
            return;
        }
        if self.failures == 0 {
            tracing::warn!(
                "{} accept failed: {e}; pausing {} ms between tries until it works again",
                self.port,
                PAUSE.as_millis()
            );
        }
        self.failures += 1;
        tokio::time::sleep(PAUSE).await;
    }

    /// Records an accept that worked, ending a burst of failures.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::warn!(
                "{} accepting again after {} failed tries",
                self.port,
                self.failures
            );
            self.failures = 0;
        }
    }

    /// Failed tries in the burst under way.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn descriptor_exhaustion_pauses_and_a_vanished_peer_does_not() {
        let mut a = AcceptErrors::new("test");
        let start = std::time::Instant::now();
        a.failed(&std::io::Error::from_raw_os_error(24)).await; // EMFILE
        a.failed(&std::io::Error::from_raw_os_error(23)).await; // ENFILE
        assert!(start.elapsed() >= PAUSE * 2, "{:?}", start.elapsed());
        assert_eq!(a.failures(), 2);
        let start = std::time::Instant::now();
        a.failed(&std::io::ErrorKind::ConnectionAborted.into())
            .await;
        assert!(start.elapsed() < PAUSE, "{:?}", start.elapsed());
        a.succeeded();
        assert_eq!(a.failures(), 0);
    }
}
