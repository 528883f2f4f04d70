//! The shipper: sends spooled batches over one mTLS connection, advances the spool on acks,
//! and reconnects: at once after losing a working connection, then with a short capped backoff
//! while the aggregator is unreachable (it is restarting), and a long one only when it refuses
//! this agent (docs/protocol.md, "Reconnecting").
//!
//! The protocol is the state machine in [`machine`]; this module is its I/O driver: it owns
//! the socket, the timers and the spool cursor, turns what happens into [`Event`]s and carries
//! out the [`Action`]s.

mod encode;
mod failure;
pub mod machine;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{DEFAULT_MAX_FRAME_BYTES, Hello, Message, ProtoError, Welcome};
use nines_common::util::sync::lock;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, timeout};
use tokio_rustls::client::TlsStream;

pub use encode::encode_batch;
pub use failure::{BACKOFF_CAP, Failure, REFUSED_BACKOFF_CAP, ShipError, backoff};
pub use machine::{Action, DRAIN, Event, Machine, Params, State};

use crate::config::AggregatorConfig;
use crate::identity::certs::Credentials;
use crate::net::{self, ConnectError};
use crate::spool::{Cursor, Spool};
use failure::{HANDSHAKE_TIMEOUT, is_tls_refusal};

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

type Stream = TlsStream<TcpStream>;

/// An open connection: the writing half, frames read by their own task (so that a half-read
/// frame is never lost to a `select!`), and where in the spool the next batch comes from.
struct Connection {
    writer: FrameWriter<WriteHalf<Stream>>,
    frames: mpsc::Receiver<Result<Option<Message>, ProtoError>>,
    _reader: AbortOnDrop,
    cursor: Cursor,
}

fn now_s() -> i64 {
    nines_common::model::now_ms() / 1000
}

impl Shipper {
    /// Ships until `shutdown` turns true; then, on an open connection, sends what is left in
    /// the spool and waits for its acknowledgement for up to [`DRAIN`].
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let params = Params {
            addresses: self.config.addresses.clone(),
            window: self.config.window,
            ack_timeout: self.config.ack_timeout,
        };
        let (mut machine, first) = Machine::new(params, fastrand::Rng::new());
        let mut actions: VecDeque<Action> = first.into();
        let mut conn: Option<Connection> = None;
        let mut stopping = false;
        loop {
            while let Some(action) = actions.pop_front() {
                if action == Action::Stop {
                    return;
                }
                if let Some(event) = self.execute(action, &mut conn, &mut shutdown).await {
                    stopping |= matches!(event, Event::Shutdown);
                    actions.extend(machine.on(event, Instant::now()));
                }
            }
            let event = self
                .next_event(&machine, &mut conn, &mut shutdown, stopping)
                .await;
            stopping |= matches!(event, Event::Shutdown);
            actions.extend(machine.on(event, Instant::now()));
        }
    }

    /// Waits for what the machine is waiting for.
    async fn next_event(
        &self,
        machine: &Machine,
        conn: &mut Option<Connection>,
        shutdown: &mut watch::Receiver<bool>,
        stopping: bool,
    ) -> Event {
        let renew_in = self.credentials.until_renewal(now_s());
        let deadline = machine.deadline();
        let frames = async {
            match conn {
                Some(c) if machine.connected() => c.frames.recv().await,
                _ => std::future::pending().await,
            }
        };
        // A certificate past two thirds of its life is renewed over this connection: at once
        // if it is due, or when it falls due on a connection that lasts.
        tokio::select! {
            msg = frames => match msg {
                Some(Ok(Some(msg))) => Event::Frame(msg),
                Some(Ok(None)) | None => Event::Closed,
                Some(Err(e)) => Event::Failed(e.into()),
            },
            _ = tokio::time::sleep(renew_in), if machine.wants_renewal() => {
                let request = crate::identity::csr::request(&self.hello.host_id);
                if request.is_ok() {
                    tracing::info!(
                        expires = self.credentials.not_after(),
                        "asking the aggregator to renew the certificate"
                    );
                }
                Event::RenewalDue(request)
            }
            _ = self.appended.notified(), if machine.wants_appends() => Event::Appended,
            _ = sleep_until_opt(deadline) => Event::Timeout,
            _ = shutdown.wait_for(|s| *s), if !stopping => Event::Shutdown,
        }
    }

    /// Carries out one action; the event it produces at once, if any.
    async fn execute(
        &self,
        action: Action,
        conn: &mut Option<Connection>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Event> {
        match action {
            Action::Connect { index } => {
                let addr = &self.config.addresses[index % self.config.addresses.len()];
                tokio::select! {
                    opened = self.open(addr) => Some(match opened {
                        Ok((c, welcome)) => {
                            *conn = Some(c);
                            Event::Connected { resume_from_seq: welcome.resume_from_seq }
                        }
                        Err(e) => Event::Failed(e),
                    }),
                    _ = shutdown.wait_for(|s| *s) => Some(Event::Shutdown),
                }
            }
            Action::ResetCursor => {
                let c = conn.as_mut()?;
                c.cursor = Cursor::at(lock(&self.spool).acked() + 1);
                None
            }
            Action::ReadBatch => {
                let c = conn.as_mut()?;
                Some(match lock(&self.spool).read(&mut c.cursor) {
                    Ok(record) => Event::BatchRead(record),
                    Err(e) => Event::Failed(e.into()),
                })
            }
            Action::Send(msg) => {
                let c = conn.as_mut()?;
                c.writer
                    .write(&msg)
                    .await
                    .err()
                    .map(|e| Event::Failed(e.into()))
            }
            Action::AckSpool(seq) => lock(&self.spool)
                .ack(seq)
                .err()
                .map(|e| Event::Failed(e.into())),
            Action::RenewalAsked => {
                self.credentials.renewal_asked();
                None
            }
            Action::RenewalFailed => {
                self.credentials.renewal_failed(now_s());
                None
            }
            Action::InstallCredentials {
                key_pem,
                cert_pem,
                ca_pem,
            } => Some(Event::RenewalDone(
                self.credentials.install(&key_pem, &cert_pem, &ca_pem),
            )),
            Action::Close => {
                if let Some(mut c) = conn.take() {
                    let _ = timeout(Duration::from_secs(2), c.writer.shutdown()).await;
                }
                self.credentials.connection_ended(now_s());
                None
            }
            Action::Stop => None,
        }
    }

    async fn connect(&self, addr: &str) -> Result<Stream, ShipError> {
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

    /// Connects, says `Hello` and waits for the `Welcome`.
    async fn open(&self, addr: &str) -> Result<(Connection, Welcome), ShipError> {
        let stream = self.connect(addr).await?;
        let (r, w) = tokio::io::split(stream);
        let mut reader: FrameReader<ReadHalf<Stream>> =
            FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES);
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
        let (tx, frames) = mpsc::channel(16);
        let read_task = tokio::spawn(async move {
            loop {
                let msg = reader.read().await;
                let end = !matches!(msg, Ok(Some(_)));
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        let conn = Connection {
            writer,
            frames,
            _reader: AbortOnDrop(read_task),
            cursor: Cursor::at(lock(&self.spool).acked() + 1),
        };
        Ok((conn, welcome))
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
