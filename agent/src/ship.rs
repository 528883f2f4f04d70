//! The shipper: sends spooled batches over one mTLS connection, advances the spool on acks,
//! and reconnects with exponential backoff and full jitter.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nines_common::SeriesKey;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{
    Batch, CertificateReply, DEFAULT_MAX_FRAME_BYTES, Hello, Message, Point, ProtoError, Renew,
    SeriesDef,
};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;

use crate::certs::Credentials;
use crate::config::{AggregatorConfig, split_host_port};
use crate::spool::{Cursor, Spool, SpoolError, SpoolRecord};

/// Longest wait between reconnection attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
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

/// Delay before reconnection attempt `attempt` (0-based): uniformly random between zero and
/// `min(cap, base · 2^attempt)` ("full jitter"), so that many agents cut off at once do not
/// return at once.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(fastrand::f64())
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

fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    // A panic while holding the lock cannot leave the spool's files inconsistent (every
    // mutation is a single append or rename), so a poisoned lock is still usable.
    spool.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shipper {
    /// Ships until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut attempt = 0u32;
        let mut index = 0usize;
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
                    let delay = backoff(attempt);
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
        let connect_err = |detail: String| ShipError::Connect {
            addr: addr.to_owned(),
            detail,
        };
        let (host, port) =
            split_host_port(addr).ok_or_else(|| connect_err("not host:port".into()))?;
        let name = self.config.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| connect_err(format!("server name {name:?}: {e}")))?;
        let tcp = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| connect_err("TCP connect timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        let connector = TlsConnector::from(self.credentials.current().tls);
        timeout(HANDSHAKE_TIMEOUT, connector.connect(server_name, tcp))
            .await
            .map_err(|_| connect_err("TLS handshake timed out".into()))?
            .map_err(|e| connect_err(format!("TLS: {e}")))
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
                _ = shutdown.wait_for(|s| *s) => None,
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

/// A new key and a certificate signing request for `host`, DER: the key never leaves this
/// machine.
pub fn renewal_request(host: &str) -> Result<(String, Vec<u8>), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

impl Shipper {
    /// Sends a `Renew` request; the new key, kept until the answer comes. A key that cannot
    /// be made postpones the renewal.
    async fn ask_renewal<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        writer: &mut FrameWriter<W>,
    ) -> Result<Option<String>, ShipError> {
        let now_s = nines_common::model::now_ms() / 1000;
        match renewal_request(&self.hello.host_id) {
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
    fn backoff_grows_to_the_cap_with_full_jitter() {
        for attempt in 0..40 {
            let ceiling = BACKOFF_BASE
                .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
                .min(BACKOFF_CAP);
            for _ in 0..50 {
                assert!(backoff(attempt) <= ceiling);
            }
        }
        let late: Vec<Duration> = (0..200).map(|_| backoff(30)).collect();
        assert!(late.iter().all(|d| *d <= BACKOFF_CAP));
        assert!(
            late.iter().any(|d| *d > Duration::from_secs(30)),
            "reaches the cap"
        );
        assert!(
            late.iter().any(|d| *d < Duration::from_secs(30)),
            "jittered"
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
