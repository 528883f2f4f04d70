//! Drives one authenticated connection: the loop that owns the socket, the timers, the store
//! and the renewals, feeds what happens to
//! [`session::on`] and carries out the actions it returns. Protocol decisions are the
//! session's; this file only does I/O.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nines_common::HostId;
use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{CertificateReply, ErrorCode, ErrorMsg, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::ingest::admission::Connected;
use crate::ingest::resolve::Series;
use crate::ingest::session::{self, Action, Close, Event, MAX_PENDING, Read, Reply, State};
use crate::ingest::{Connections, IngestError, Limits};
use crate::pki::enroll::Enroller;
use crate::store::{Committed, HelloWrite, Store, StoreError};
use nines_common::model::now_ms;

/// An authenticated connection's peer and what serving it needs: the one way to drive a
/// connection ([`handle`]), for the accept loop and for tests over `tokio::io::duplex`.
#[derive(Debug)]
pub struct Authenticated {
    /// The host its client certificate names.
    pub host: HostId,
    /// The certificate's serial number, checked again whenever the revocation list changes;
    /// empty where there is no certificate (tests).
    pub serial: String,
    /// Where its batches go.
    pub store: Store,
    /// Limits, counters and the revocation list.
    pub connections: Arc<Connections>,
    /// Answers `Renew`; `None` refuses renewals.
    pub enroller: Option<Arc<Enroller>>,
    /// Its limits.
    pub limits: Limits,
}

impl Authenticated {
    /// `host` without a certificate serial, with the default limits, refusing renewals.
    pub fn new(host: HostId, store: Store, connections: Arc<Connections>) -> Self {
        Self {
            host,
            serial: String::new(),
            store,
            connections,
            enroller: None,
            limits: Limits::default(),
        }
    }
}

/// Serves one authenticated connection until it ends: the peer closes it, breaks the
/// protocol, stays idle, is revoked, or `shutdown` turns true.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: Authenticated,
    shutdown: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let (r, w) = tokio::io::split(stream);
    let writer = FrameWriter::new(w, peer.limits.max_frame);
    // Replies are written by their own task, so reading goes on while the peer is slow to
    // read; the queue between them is bounded like the session's.
    let (tx, rx) = mpsc::channel::<Reply>(MAX_PENDING);
    let writer_task = tokio::spawn(write_replies(writer, rx));
    let mut d = Driver {
        reader: FrameReader::new(r, peer.limits.max_frame),
        tx,
        revocations: peer.connections.revocation_changes(),
        shutdown,
        shutdown_seen: false,
        deadline: None,
        series: Series::default(),
        commits: VecDeque::new(),
        renewal: None,
        answers: VecDeque::new(),
        agent_version: String::new(),
        connected: None,
        peer,
    };

    let mut state = State::new(d.peer.host.clone());
    let close = loop {
        if let State::Closed(close) = &state {
            break close.clone();
        }
        let event = match d.answers.pop_front() {
            Some(e) => e,
            None => match d.next_event(&state).await {
                Some(e) => e,
                None => continue,
            },
        };
        let (next_state, actions) = session::on(state, event);
        state = next_state;
        let mut peer_gone = false;
        for action in actions {
            peer_gone |= !d.perform(action).await;
        }
        if peer_gone && !matches!(state, State::Closed(_)) {
            state = State::Closed(Close::Peer);
        }
    };
    let Driver {
        tx,
        connected,
        peer,
        ..
    } = d;
    drop(tx);
    let _ = writer_task.await;
    if connected.is_some() {
        tracing::info!(host = %peer.host, "agent disconnected");
    }
    match close {
        Close::Peer | Close::Shutdown => Ok(()),
        Close::Refuse(e) => Err(IngestError::Refused {
            code: e.code,
            message: e.message,
        }),
    }
}

type Renewal = Pin<Box<dyn Future<Output = CertificateReply> + Send>>;

/// The I/O side of one connection.
struct Driver<R> {
    peer: Authenticated,
    reader: FrameReader<R>,
    /// To the task writing replies.
    tx: mpsc::Sender<Reply>,
    revocations: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    shutdown_seen: bool,
    /// When the frame being waited for is late.
    deadline: Option<Instant>,
    series: Series,
    /// The commits of submitted batches, oldest first.
    commits: VecDeque<oneshot::Receiver<Result<Committed, StoreError>>>,
    renewal: Option<Renewal>,
    /// Answers to actions, fed to the session before anything else happens.
    answers: VecDeque<Event>,
    agent_version: String,
    /// The host counted as connected, from its `Welcome` on.
    connected: Option<Connected>,
}

impl<R: AsyncRead + Unpin> Driver<R> {
    /// Waits for what happens next in `state`; `None`: something that changes nothing.
    async fn next_event(&mut self, state: &State) -> Option<Event> {
        let limits = &self.peer.limits;
        let reads = state.reads();
        let wait = match reads {
            Some(Read::Hello) => limits.handshake_timeout,
            _ => limits.idle_timeout,
        };
        if reads.is_none() {
            self.deadline = None;
        }
        let until = *self.deadline.get_or_insert_with(|| Instant::now() + wait);
        let woke = tokio::select! {
            w = read(&mut self.reader, reads), if reads.is_some() => w,
            () = tokio::time::sleep_until(until), if reads.is_some() => Woke::Timeout,
            _ = self.shutdown.wait_for(|s| *s), if !self.shutdown_seen && state.may_close() => {
                Woke::Shutdown
            }
            Ok(()) = self.revocations.changed(), if state.may_close() => Woke::Revocations,
            c = next(&mut self.commits), if !self.commits.is_empty() => Woke::Commit(c),
            r = next_renewal(&mut self.renewal), if self.renewal.is_some() => Woke::Renewed(r),
        };
        let (host, connections) = (&self.peer.host, &self.peer.connections);
        Some(match woke {
            Woke::First(p) => {
                self.deadline = None;
                Event::FirstFrame(p)
            }
            Woke::Frame(m) => {
                self.deadline = None;
                Event::Frame(m)
            }
            Woke::Timeout => {
                if reads == Some(Read::Frame) {
                    connections.refused.idle.fetch_add(1, Ordering::Relaxed);
                }
                Event::Timeout { after: wait }
            }
            Woke::Shutdown => {
                self.shutdown_seen = true;
                Event::Shutdown
            }
            Woke::Revocations => {
                let serial = &self.peer.serial;
                if !connections.is_revoked(host.as_str(), serial) {
                    return None;
                }
                connections.refused.revoked.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%host, serial, "certificate revoked: disconnecting");
                Event::Revoked {
                    host: host.clone(),
                    serial: serial.clone(),
                }
            }
            Woke::Commit(Ok(Ok(receipt))) => Event::Committed(receipt),
            Woke::Commit(Ok(Err(e))) => Event::CommitFailed(e.to_string()),
            Woke::Commit(Err(_)) => Event::CommitAbandoned,
            Woke::Renewed(reply) => {
                self.renewal = None;
                Event::Renewed(reply)
            }
        })
    }

    /// Carries out `action`; `false`: the peer went away.
    async fn perform(&mut self, action: Action) -> bool {
        let Authenticated {
            host,
            store,
            connections,
            limits,
            ..
        } = &self.peer;
        match action {
            Action::Register(hello) => {
                self.agent_version = hello.agent_version.clone();
                let registered = store
                    .register(HelloWrite {
                        host: host.clone(),
                        hello,
                        now_ms: now_ms(),
                    })
                    .await;
                self.answers.push_back(match registered {
                    Ok(receipt) => Event::Registered(receipt),
                    Err(e) => Event::RegisterFailed(e.to_string()),
                });
            }
            Action::Submit(batch) => {
                let prepared = self.series.prepare(
                    store,
                    host,
                    batch,
                    connections,
                    &limits.points,
                    limits.max_series_per_host,
                );
                let answer = match prepared {
                    Ok(write) => match store.submit_batch(write).await {
                        Ok(rx) => {
                            self.commits.push_back(rx);
                            Event::Submitted
                        }
                        Err(e) => Event::SubmitRefused(ErrorMsg {
                            code: ErrorCode::StorageUnavailable,
                            message: e.to_string(),
                        }),
                    },
                    Err(e) => Event::SubmitRefused(e),
                };
                self.answers.push_back(answer);
            }
            Action::Renew(csr_der) => {
                self.renewal = Some(Box::pin(renew(
                    self.peer.enroller.clone(),
                    host.clone(),
                    csr_der,
                    connections.clone(),
                )));
            }
            Action::Send(reply) => {
                if let Reply::Welcome(receipt) = &reply {
                    let resume_from_seq = session::resume_from_seq(*receipt);
                    let agent = &self.agent_version;
                    tracing::info!(%host, %agent, resume_from_seq, "agent connected");
                    self.connected = Some(connections.connected(host));
                }
                // The writer stops after a failed write: the peer went away.
                return self.tx.send(reply).await.is_ok();
            }
            Action::Close => {}
        }
        true
    }
}

/// What woke the loop.
enum Woke {
    First(Result<Option<Vec<u8>>, nines_common::proto::ProtoError>),
    Frame(Result<Option<Message>, nines_common::proto::ProtoError>),
    Timeout,
    Shutdown,
    Revocations,
    Commit(Result<Result<Committed, StoreError>, oneshot::error::RecvError>),
    Renewed(CertificateReply),
}

/// The next frame, read as `what` says (never, if nothing is to be read).
async fn read<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>, what: Option<Read>) -> Woke {
    match what {
        Some(Read::Hello) => Woke::First(reader.read_payload().await),
        Some(Read::Frame) => Woke::Frame(reader.read().await),
        None => std::future::pending().await,
    }
}

/// The outcome of the oldest pending commit (never, if there is none).
async fn next(
    commits: &mut VecDeque<oneshot::Receiver<Result<Committed, StoreError>>>,
) -> Result<Result<Committed, StoreError>, oneshot::error::RecvError> {
    let Some(rx) = commits.front_mut() else {
        return std::future::pending().await;
    };
    let outcome = rx.await;
    commits.pop_front();
    outcome
}

/// The renewal's answer (never, if none is being decided).
async fn next_renewal(renewal: &mut Option<Renewal>) -> CertificateReply {
    match renewal {
        Some(r) => r.await,
        None => std::future::pending().await,
    }
}

/// Writes the session's replies in order; stops after an error frame or a failed write.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<Reply>,
) {
    while let Some(reply) = rx.recv().await {
        let fatal = matches!(reply, Reply::Error(_));
        if writer.write(&reply.into_message()).await.is_err() || fatal {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

/// Decides a renewal for `host` (whatever the CSR says), counted and logged.
async fn renew(
    enroller: Option<Arc<Enroller>>,
    host: HostId,
    csr_der: Vec<u8>,
    connections: Arc<Connections>,
) -> CertificateReply {
    let reply = match enroller {
        Some(e) => {
            let host = host.clone();
            tokio::task::spawn_blocking(move || e.renew(&host, &csr_der))
                .await
                .unwrap_or_else(|_| CertificateReply::Refused {
                    message: "internal error".into(),
                })
        }
        None => CertificateReply::Refused {
            message: "renewal is not offered here".into(),
        },
    };
    match &reply {
        CertificateReply::Issued { .. } => {
            connections.refused.renewed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%host, "agent certificate renewed");
        }
        CertificateReply::Refused { message } => {
            connections
                .refused
                .renew_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%host, "certificate renewal refused: {message}");
        }
    }
    reply
}
