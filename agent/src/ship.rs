//! The shipper: sends spooled batches over one mTLS connection, advances the spool on acks,
//! and reconnects: at once after losing a working connection, then with a short capped backoff
//! while the aggregator is unreachable (it is restarting), and a long one only when it refuses
//! this agent (docs/protocol.md, "Reconnecting").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nines_common::SeriesKey;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Batch, CertificateReply, DEFAULT_MAX_FRAME_BYTES, Hello, Message, Point, ProtoError, Renew,
    SeriesDef,
};
use nines_common::util::backoff::Backoff;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, timeout};

use nines_common::util::sync::lock;

use crate::config::AggregatorConfig;
use crate::identity::certs::Credentials;
use crate::net::{self, ConnectError};
use crate::spool::{Cursor, Spool, SpoolError, SpoolRecord};

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
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The certificate was renewed: the session ends so that the next one presents it.
    #[error("certificate renewed; reconnecting with it")]
    Renewed,
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
fn is_tls_refusal(e: &std::io::Error) -> bool {
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

/// Everything a shipper needs.
#[derive(Debug, Clone)]
pub struct Shipper {
    /// Where to ship and how.
    pub config: AggregatorConfig,
    /// The agent certificate in force, renewed over the connection when due.
    pub credentials: Arc<Credentials>,
    /// The `Hello` to send on every connection.
    pub hello: Hello,
    /// The spool to ship from.
    pub spool: Arc<Mutex<Spool>>,
    /// Signalled after each append.
    pub appended: Arc<Notify>,
}

enum End {
    Shutdown,
    Failed { error: ShipError, progressed: bool },
}

/// How long a stopping agent goes on sending what is spooled, its goodbye last.
const DRAIN: Duration = Duration::from_secs(2);

impl Shipper {
    /// Ships until `shutdown` turns true; then, on an open connection, sends what is left in
    /// the spool and waits for its acknowledgement for up to [`DRAIN`].
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut attempt = 0u32;
        let mut index = 0usize;
        let mut rng = fastrand::Rng::new();
        loop {
            let addr = &self.config.addresses[index % self.config.addresses.len()];
            match self.session(addr, &mut shutdown).await {
                End::Shutdown => return,
                End::Failed {
                    error: ShipError::Renewed,
                    ..
                } => {
                    attempt = 0;
                    tracing::info!(aggregator = %addr, "reconnecting with the renewed certificate");
                }
                End::Failed { error, progressed } => {
                    if progressed {
                        attempt = 0;
                    } else {
                        attempt = attempt.saturating_add(1);
                        // Try the next aggregator in the list.
                        index = index.wrapping_add(1);
                    }
                    let delay = backoff(attempt, error.failure(), &mut rng);
                    tracing::warn!(aggregator = %addr, retry_in = ?delay, "{error}");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }

    async fn session(&self, addr: &str, shutdown: &mut watch::Receiver<bool>) -> End {
        let mut progressed = false;
        let end = match self.session_inner(addr, shutdown, &mut progressed).await {
            Ok(()) => End::Shutdown,
            Err(error) => End::Failed { error, progressed },
        };
        self.credentials
            .connection_ended(nines_common::model::now_ms() / 1000);
        end
    }

    async fn connect(
        &self,
        addr: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ShipError> {
        let tls = self.credentials.current().tls;
        let server_name = self.config.server_name.as_deref();
        net::connect(addr, server_name, tls, HANDSHAKE_TIMEOUT, true)
            .await
            .map_err(|e| {
                let (detail, tls_refused) = match e {
                    ConnectError::Address => ("not host:port".into(), false),
                    ConnectError::ServerName { name, detail } => {
                        (format!("server name {name:?}: {detail}"), false)
                    }
                    ConnectError::TcpTimeout => ("TCP connect timed out".into(), false),
                    ConnectError::Tcp(e) => (e.to_string(), false),
                    ConnectError::TlsTimeout => ("TLS handshake timed out".into(), false),
                    ConnectError::Tls(e) => (format!("TLS: {e}"), is_tls_refusal(&e)),
                };
                ShipError::Connect {
                    addr: addr.to_owned(),
                    detail,
                    tls_refused,
                }
            })
    }

    async fn session_inner(
        &self,
        addr: &str,
        shutdown: &mut watch::Receiver<bool>,
        progressed: &mut bool,
    ) -> Result<(), ShipError> {
        let stream = tokio::select! {
            s = self.connect(addr) => s?,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES);
        let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES);
        writer.write(&Message::Hello(self.hello.clone())).await?;
        let welcome = match timeout(HANDSHAKE_TIMEOUT, reader.read()).await {
            Err(_) => return Err(ShipError::AckTimeout(HANDSHAKE_TIMEOUT)),
            Ok(Ok(Some(Message::Welcome(w)))) => w,
            Ok(Ok(Some(Message::Error(e)))) => {
                return Err(ShipError::Refused {
                    code: e.code,
                    message: e.message,
                });
            }
            Ok(Ok(Some(other))) => return Err(ShipError::Unexpected(format!("{other:?}"))),
            Ok(Ok(None)) => return Err(ShipError::Closed),
            Ok(Err(e)) => return Err(e.into()),
        };
        tracing::info!(aggregator = %addr, resume_from = welcome.resume_from_seq, "connected");
        let mut cursor = {
            let mut spool = lock(&self.spool);
            // Whatever the aggregator already stored need not be sent again.
            if welcome.resume_from_seq > 0 {
                spool.ack(welcome.resume_from_seq - 1)?;
            }
            Cursor::at(spool.acked() + 1)
        };

        // Reading runs in its own task so that a half-read frame is never lost to a select.
        let (tx, mut rx) = mpsc::channel(16);
        let read_task = tokio::spawn(async move {
            loop {
                let msg = reader.read().await;
                let end = !matches!(msg, Ok(Some(_)));
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        let _abort = AbortOnDrop(read_task);

        // A certificate past two thirds of its life is renewed over this connection: at once
        // if it is due, or when it falls due on a connection that lasts.
        let mut renewal_key: Option<String> = None;

        let mut dict: HashMap<SeriesKey, u32> = HashMap::new();
        let mut inflight: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            while inflight.len() < self.config.window {
                let record = lock(&self.spool).read(&mut cursor)?;
                let Some(record) = record else { break };
                let seq = record.seq;
                writer
                    .write(&Message::Batch(encode_batch(record, &mut dict)))
                    .await?;
                inflight.push_back((seq, Instant::now()));
            }
            let deadline = inflight
                .front()
                .map(|(_, sent)| *sent + self.config.ack_timeout);
            let now_s = nines_common::model::now_ms() / 1000;
            let renew_in = self.credentials.until_renewal(now_s);
            // The renewal is sent after the select: awaiting inside an arm would hold the
            // shutdown receiver's guard across the await.
            let mut renew_now = false;
            if draining.is_some() && inflight.is_empty() {
                // Stopping, and everything spooled is acknowledged: the goodbye too.
                tracing::debug!("everything spooled is acknowledged");
                let _ = timeout(Duration::from_secs(2), writer.shutdown()).await;
                return Ok(());
            }
            let event = tokio::select! {
                msg = rx.recv() => Some(msg),
                _ = tokio::time::sleep(renew_in), if renewal_key.is_none() => {
                    renew_now = true;
                    Some(None)
                }
                _ = self.appended.notified(), if inflight.len() < self.config.window => continue,
                _ = sleep_until_opt(deadline) => {
                    return Err(ShipError::AckTimeout(self.config.ack_timeout));
                }
                _ = shutdown.wait_for(|s| *s), if draining.is_none() => {
                    // Send what is spooled (the agent's goodbye last) and wait for its ack,
                    // briefly; what is left stays spooled for the next start.
                    draining = Some(tokio::time::Instant::now() + DRAIN);
                    continue;
                }
                _ = sleep_until_opt(draining), if draining.is_some() => {
                    tracing::warn!(
                        unacknowledged = inflight.len(),
                        "stopping before the aggregator acknowledged everything; the rest stays \
                         spooled for the next start"
                    );
                    None
                }
            };
            if renew_now {
                renewal_key = self.ask_renewal(&mut writer).await?;
                continue;
            }
            let Some(msg) = event else {
                // Unacked batches stay in the spool and are sent again next time.
                let _ = timeout(Duration::from_secs(2), writer.shutdown()).await;
                return Ok(());
            };
            match msg {
                Some(Ok(Some(Message::Ack(ack)))) => {
                    lock(&self.spool).ack(ack.through_seq)?;
                    inflight.retain(|(seq, _)| *seq > ack.through_seq);
                    *progressed = true;
                }
                Some(Ok(Some(Message::Error(e)))) => {
                    return Err(ShipError::Refused {
                        code: e.code,
                        message: e.message,
                    });
                }
                Some(Ok(Some(Message::Certificate(reply)))) => {
                    let Some(key_pem) = renewal_key.take() else {
                        return Err(ShipError::Unexpected(
                            "a certificate nobody asked for".into(),
                        ));
                    };
                    let now_s = nines_common::model::now_ms() / 1000;
                    match reply {
                        CertificateReply::Issued { cert_pem, ca_pem } => {
                            match self.credentials.install(&key_pem, &cert_pem, &ca_pem) {
                                Ok(()) => {
                                    let _ =
                                        timeout(Duration::from_secs(2), writer.shutdown()).await;
                                    return Err(ShipError::Renewed);
                                }
                                Err(e) => {
                                    tracing::error!("the renewed certificate is unusable: {e}");
                                    self.credentials.renewal_failed(now_s);
                                }
                            }
                        }
                        CertificateReply::Refused { message } => {
                            tracing::warn!(
                                "the aggregator refused to renew the certificate: {message}; \
                                 asking again in an hour"
                            );
                            self.credentials.renewal_failed(now_s);
                        }
                    }
                }
                Some(Ok(Some(other))) => {
                    return Err(ShipError::Unexpected(format!("{other:?}")));
                }
                Some(Ok(None)) | None => return Err(ShipError::Closed),
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}

impl Shipper {
    /// Sends a `Renew` request; the new key, kept until the answer comes. A key that cannot
    /// be made postpones the renewal.
    async fn ask_renewal<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        writer: &mut FrameWriter<W>,
    ) -> Result<Option<String>, ShipError> {
        let now_s = nines_common::model::now_ms() / 1000;
        match crate::identity::csr::request(&self.hello.host_id) {
            Ok((key_pem, csr_der)) => {
                tracing::info!(
                    expires = self.credentials.not_after(),
                    "asking the aggregator to renew the certificate"
                );
                self.credentials.renewal_asked();
                writer.write(&Message::Renew(Renew { csr_der })).await?;
                Ok(Some(key_pem))
            }
            Err(e) => {
                tracing::warn!("cannot make a certificate request: {e}");
                self.credentials.renewal_failed(now_s);
                Ok(None)
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Turns a spool record into a wire batch, defining series not yet defined on this connection.
pub fn encode_batch(record: SpoolRecord, dict: &mut HashMap<SeriesKey, u32>) -> Batch {
    let mut series_defs = Vec::new();
    let mut points = Vec::with_capacity(record.samples.len());
    for sample in record.samples {
        let id = match dict.get(&sample.key) {
            Some(id) => *id,
            None => {
                let id = dict.len() as u32;
                series_defs.push(SeriesDef {
                    id,
                    name: sample.key.name.clone(),
                    labels: sample.key.labels.clone(),
                });
                dict.insert(sample.key, id);
                id
            }
        };
        points.push(Point {
            series: id,
            ts_ms: sample.ts_ms,
            value: sample.value,
        });
    }
    Batch {
        seq: record.seq,
        series_defs,
        points,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nines_common::Sample;

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

    #[test]
    fn series_are_defined_once_per_connection() {
        let rec = |seq| SpoolRecord {
            seq,
            ts_ms: 1000 * seq as i64,
            samples: vec![
                Sample {
                    key: SeriesKey::new("a", &[]),
                    ts_ms: 1000 * seq as i64,
                    value: 1.0,
                },
                Sample {
                    key: SeriesKey::new("b", &[("x", "y")]),
                    ts_ms: 1000 * seq as i64,
                    value: 2.0,
                },
            ],
        };
        let mut dict = HashMap::new();
        let first = encode_batch(rec(1), &mut dict);
        assert_eq!(first.series_defs.len(), 2);
        let second = encode_batch(rec(2), &mut dict);
        assert!(second.series_defs.is_empty());
        assert_eq!(second.points[1].series, first.series_defs[1].id);
        assert_eq!(second.points[1].value, 2.0);
    }
}
