//! One authenticated connection's protocol, as a state machine without I/O: [`on`] takes the
//! [`State`] and an [`Event`] (a frame, a commit, a renewal, a timer, the shutdown) and gives
//! the next state and the [`Action`]s the driver
//! ([`crate::ingest::connection`]) turns into store writes and frames.
//!
//! The durability contract lives in the types: the only [`Reply`] that acknowledges a batch is
//! [`Reply::Ack`], which holds a [`Committed`] receipt, and only the store writer can make one,
//! after the batch's commit returned. Replies leave in the order their causes arrived: an ack
//! or a certificate waits behind the acks of every batch received before it.

use std::collections::VecDeque;
use std::time::Duration;

use nines_common::HostId;
use nines_common::proto::{
    Ack, Batch, CertificateReply, ErrorCode, ErrorMsg, Hello, Message, PROTOCOL_VERSION,
    ProtoError, Welcome, codec,
};

use crate::store::Committed;

/// Replies of one connection waiting to be sent, at most; beyond, reading pauses.
pub(crate) const MAX_PENDING: usize = 256;

/// What happened to the connection.
#[derive(Debug)]
pub(crate) enum Event {
    /// The first frame arrived, undecoded so that a `Hello` of another version can still be
    /// read, or the stream closed or broke first.
    FirstFrame(Result<Option<Vec<u8>>, ProtoError>),
    /// The `Hello` of the last [`Action::Register`] is durable; the receipt carries the
    /// host's mark.
    Registered(Committed),
    /// The `Hello` could not be stored.
    RegisterFailed(String),
    /// A frame arrived (`Ok(None)`: the peer closed the stream between frames), or the
    /// stream broke the framing.
    Frame(Result<Option<Message>, ProtoError>),
    /// The batch of the last [`Action::Submit`] was handed to the store; its commit is due.
    Submitted,
    /// The batch of the last [`Action::Submit`] was refused before the store took it.
    SubmitRefused(ErrorMsg),
    /// The oldest batch waiting for its commit is durable.
    Committed(Committed),
    /// The oldest batch waiting for its commit was not stored.
    CommitFailed(String),
    /// The store stopped before committing the oldest waiting batch.
    CommitAbandoned,
    /// The renewal of the last [`Action::Renew`] is decided.
    Renewed(CertificateReply),
    /// Nothing arrived for `after`: `handshake_timeout` for the `Hello`, `idle_timeout`
    /// after it.
    Timeout {
        /// How long the driver waited.
        after: Duration,
    },
    /// The connection's certificate was revoked since it connected.
    Revoked {
        /// The certificate's host.
        host: HostId,
        /// Its serial number.
        serial: String,
    },
    /// The aggregator is shutting down.
    Shutdown,
}

/// What the driver is to do, in order.
#[derive(Debug)]
pub(crate) enum Action {
    /// Store the host's `Hello` durably; answer with [`Event::Registered`] or
    /// [`Event::RegisterFailed`].
    Register(Hello),
    /// Check and resolve the batch and submit it to the store; answer with
    /// [`Event::Submitted`] or [`Event::SubmitRefused`] before anything else.
    Submit(Batch),
    /// Decide a certificate renewal for this CSR; answer with [`Event::Renewed`].
    Renew(Vec<u8>),
    /// Send this frame.
    Send(Reply),
    /// Send nothing more: close the sending side; the connection is over.
    Close,
}

/// A frame the session sends. There is no way to acknowledge a batch without its receipt.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The `Hello` is durable: the host resumes after the receipt's mark.
    Welcome(Committed),
    /// The batch whose commit gave this receipt is durable.
    Ack(Committed),
    /// The answer to a `Renew`; the connection goes on.
    Certificate(CertificateReply),
    /// Fatal: the connection closes after it.
    Error(ErrorMsg),
}

impl Reply {
    /// The message on the wire.
    pub(crate) fn into_message(self) -> Message {
        match self {
            Reply::Welcome(receipt) => Message::Welcome(Welcome {
                server_time_ms: nines_common::model::now_ms(),
                resume_from_seq: resume_from_seq(receipt),
            }),
            Reply::Ack(receipt) => Message::Ack(Ack {
                through_seq: receipt.through_seq(),
            }),
            Reply::Certificate(c) => Message::Certificate(c),
            Reply::Error(e) => Message::Error(e),
        }
    }
}

/// The first sequence number a host whose `Hello` got `receipt` has not stored.
pub(crate) fn resume_from_seq(receipt: Committed) -> u64 {
    receipt.through_seq() + 1
}

/// Why a connection ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Close {
    /// The peer closed the stream, or stopped reading.
    Peer,
    /// The aggregator is shutting down; the peer is told so.
    Shutdown,
    /// The peer broke a rule, or its data could not be stored; it is told why.
    Refuse(ErrorMsg),
}

impl Close {
    /// The last frame sent, if any.
    fn last_words(&self) -> Option<Reply> {
        match self {
            Close::Peer => None,
            Close::Shutdown => Some(Reply::Error(shutting_down())),
            Close::Refuse(e) => Some(Reply::Error(e.clone())),
        }
    }
}

fn shutting_down() -> ErrorMsg {
    ErrorMsg {
        code: ErrorCode::ShuttingDown,
        message: "aggregator is shutting down".into(),
    }
}

/// A reply waiting for its turn.
#[derive(Debug)]
enum Slot {
    /// The ack of a submitted batch, once its commit returns.
    Commit {
        /// The batch's sequence number.
        seq: u64,
    },
    /// A reply to send once every commit before it was acked.
    Reply(Reply),
}

/// Replies in the order they are owed.
#[derive(Debug, Default)]
pub(crate) struct Queue(VecDeque<Slot>);

impl Queue {
    /// Replies owed, commits included.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Batches submitted whose commit has not returned.
    #[cfg(test)]
    fn commits(&self) -> usize {
        self.0
            .iter()
            .filter(|s| matches!(s, Slot::Commit { .. }))
            .count()
    }

    /// Queues `reply` and sends what is free to go.
    fn push(&mut self, reply: Reply, actions: &mut Vec<Action>) {
        self.0.push_back(Slot::Reply(reply));
        self.flush(actions);
    }

    /// Sends the replies before the first batch still waiting for its commit.
    fn flush(&mut self, actions: &mut Vec<Action>) {
        while let Some(Slot::Reply(_)) = self.0.front() {
            if let Some(Slot::Reply(r)) = self.0.pop_front() {
                actions.push(Action::Send(r));
            }
        }
    }

    /// The oldest commit returned with `receipt`: its ack, then what waited behind it.
    fn committed(&mut self, receipt: Committed, actions: &mut Vec<Action>) {
        if let Some(Slot::Commit { seq }) = self.0.front() {
            // The receipt is the host's mark, which a duplicate leaves above its own seq.
            debug_assert!(
                receipt.through_seq() >= *seq,
                "receipts come in batch order"
            );
            self.0.pop_front();
            actions.push(Action::Send(Reply::Ack(receipt)));
        }
        self.flush(actions);
    }
}

/// Where the connection is.
#[derive(Debug)]
pub(crate) enum State {
    /// Waiting for the `Hello` of `host`, the one its client certificate names.
    AwaitingHello(HostId),
    /// The `Hello` is being stored.
    Registering,
    /// Reading batches and renewals.
    Streaming(Queue),
    /// The driver is submitting the batch with this `seq`; nothing else happens meanwhile.
    Submitting {
        /// Replies owed.
        queue: Queue,
        /// The batch's sequence number.
        seq: u64,
    },
    /// A `Renew` is being decided; no frames are read until it is. Renewal is a state of the
    /// stream, not an error: a refusal leaves the connection open.
    Renewing {
        /// Replies owed.
        queue: Queue,
        /// A close that came meanwhile, applied once the certificate is queued.
        then: Option<Close>,
    },
    /// No more frames are read: the owed replies go out, then `close`'s last words.
    Draining {
        /// Replies owed.
        queue: Queue,
        /// Why.
        close: Close,
    },
    /// Over.
    Closed(Close),
}

impl State {
    /// A new connection from `host`.
    pub(crate) fn new(host: HostId) -> Self {
        State::AwaitingHello(host)
    }

    /// What the driver is to read next, if anything (and run the matching timer for).
    pub(crate) fn reads(&self) -> Option<Read> {
        match self {
            State::AwaitingHello(_) => Some(Read::Hello),
            State::Streaming(q) if q.len() < MAX_PENDING => Some(Read::Frame),
            _ => None,
        }
    }

    /// Whether a shutdown or a revocation still changes anything.
    pub(crate) fn may_close(&self) -> bool {
        matches!(
            self,
            State::Streaming(_) | State::Renewing { then: None, .. }
        )
    }

    /// Batches submitted whose commit has not returned.
    #[cfg(test)]
    fn commits(&self) -> usize {
        match self {
            State::Streaming(queue)
            | State::Submitting { queue, .. }
            | State::Renewing { queue, .. }
            | State::Draining { queue, .. } => queue.commits(),
            State::AwaitingHello(_) | State::Registering | State::Closed(_) => 0,
        }
    }
}

/// What the driver reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The first frame, undecoded, within `handshake_timeout`.
    Hello,
    /// A message, within `idle_timeout`.
    Frame,
}

/// The next state after `event` in `state`, and what to do.
pub(crate) fn on(state: State, event: Event) -> (State, Vec<Action>) {
    let mut actions = Vec::new();
    let next = match (state, event) {
        (State::Closed(c), _) => State::Closed(c),

        (State::AwaitingHello(host), Event::FirstFrame(first)) => match hello(&host, first) {
            Ok(Some(h)) => {
                actions.push(Action::Register(h));
                State::Registering
            }
            Ok(None) => end(Close::Peer, &mut actions),
            Err(e) => end(Close::Refuse(e), &mut actions),
        },
        (State::AwaitingHello(_), Event::Timeout { after }) => {
            let e = ErrorMsg {
                code: ErrorCode::UnexpectedMessage,
                message: format!("no Hello within {}", humantime::format_duration(after)),
            };
            end(Close::Refuse(e), &mut actions)
        }
        (State::Registering, Event::Registered(receipt)) => {
            actions.push(Action::Send(Reply::Welcome(receipt)));
            State::Streaming(Queue::default())
        }
        (State::Registering, Event::RegisterFailed(message)) => {
            let e = ErrorMsg {
                code: ErrorCode::StorageUnavailable,
                message,
            };
            end(Close::Refuse(e), &mut actions)
        }

        // Commits return in batch order, whatever else the connection is doing.
        (State::Streaming(mut queue), Event::Committed(r)) => {
            queue.committed(r, &mut actions);
            State::Streaming(queue)
        }
        (State::Submitting { mut queue, seq }, Event::Committed(r)) => {
            queue.committed(r, &mut actions);
            State::Submitting { queue, seq }
        }
        (State::Renewing { mut queue, then }, Event::Committed(r)) => {
            queue.committed(r, &mut actions);
            State::Renewing { queue, then }
        }
        (State::Draining { mut queue, close }, Event::Committed(r)) => {
            queue.committed(r, &mut actions);
            drain(queue, close, &mut actions)
        }
        (_, Event::CommitFailed(message)) => {
            // Nothing after a failed commit is acked: the agent sends it all again.
            let e = ErrorMsg {
                code: ErrorCode::StorageUnavailable,
                message,
            };
            end(Close::Refuse(e), &mut actions)
        }
        (_, Event::CommitAbandoned) => end(Close::Shutdown, &mut actions),

        (State::Streaming(queue), Event::Frame(frame)) => match frame {
            Ok(Some(Message::Batch(b))) => {
                let seq = b.seq;
                actions.push(Action::Submit(b));
                State::Submitting { queue, seq }
            }
            Ok(Some(Message::Renew(r))) => {
                actions.push(Action::Renew(r.csr_der));
                State::Renewing { queue, then: None }
            }
            Ok(None) => drain(queue, Close::Peer, &mut actions),
            Ok(Some(other)) => {
                let e = ErrorMsg {
                    code: ErrorCode::UnexpectedMessage,
                    message: format!("expected Batch, got {}", kind(&other)),
                };
                drain(queue, Close::Refuse(e), &mut actions)
            }
            Err(e) => {
                let e = ErrorMsg {
                    code: e.code(),
                    message: e.to_string(),
                };
                drain(queue, Close::Refuse(e), &mut actions)
            }
        },
        (State::Submitting { mut queue, seq }, Event::Submitted) => {
            queue.0.push_back(Slot::Commit { seq });
            State::Streaming(queue)
        }
        (State::Submitting { queue, .. }, Event::SubmitRefused(e)) => {
            drain(queue, Close::Refuse(e), &mut actions)
        }

        (State::Renewing { mut queue, then }, Event::Renewed(reply)) => {
            queue.push(Reply::Certificate(reply), &mut actions);
            match then {
                Some(close) => drain(queue, close, &mut actions),
                None => State::Streaming(queue),
            }
        }

        (State::Streaming(queue), Event::Timeout { after }) => {
            let e = ErrorMsg {
                code: ErrorCode::UnexpectedMessage,
                message: format!(
                    "nothing received for {}: closing ([ingest] idle_timeout)",
                    humantime::format_duration(after)
                ),
            };
            drain(queue, Close::Refuse(e), &mut actions)
        }
        (State::Streaming(queue), e @ (Event::Revoked { .. } | Event::Shutdown)) => {
            drain(queue, closing(e), &mut actions)
        }
        (State::Renewing { queue, then: None }, e @ (Event::Revoked { .. } | Event::Shutdown)) => {
            State::Renewing {
                queue,
                then: Some(closing(e)),
            }
        }

        // The driver does not cause these (it reads only what `State::reads` says, and
        // answers a submission or a registration before anything else); they change nothing.
        (state, _) => state,
    };
    (next, actions)
}

/// The `Hello` in the first frame, checked against the certificate's `host`; `None`: the peer
/// closed the stream first.
fn hello(
    host: &HostId,
    first: Result<Option<Vec<u8>>, ProtoError>,
) -> Result<Option<Hello>, ErrorMsg> {
    let refuse = |code, message| ErrorMsg { code, message };
    let first = match first {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(None),
        Err(e) => return Err(refuse(e.code(), e.to_string())),
    };
    let hello = match codec::decode::<Message>(&first) {
        Ok(Message::Hello(h)) if h.protocol == PROTOCOL_VERSION => h,
        Ok(Message::Hello(h)) => return Err(unsupported(h.protocol)),
        Ok(other) => {
            let msg = format!("expected Hello, got {}", kind(&other));
            return Err(refuse(ErrorCode::UnexpectedMessage, msg));
        }
        Err(e) => {
            if let Some(v) = codec::peek_hello_protocol(&first).filter(|v| *v != PROTOCOL_VERSION) {
                return Err(unsupported(v));
            }
            return Err(refuse(ErrorCode::BadFrame, e.to_string()));
        }
    };
    if hello.host_id != host.as_str() {
        let msg = format!(
            "Hello claims host {:?} but the client certificate is for {host:?}",
            hello.host_id
        );
        return Err(refuse(ErrorCode::HostMismatch, msg));
    }
    Ok(Some(hello))
}

/// The refusal of a protocol version this aggregator does not speak.
pub(crate) fn unsupported(v: u16) -> ErrorMsg {
    ErrorMsg {
        code: ErrorCode::UnsupportedProtocol,
        message: format!(
            "protocol version {v} is not supported; this aggregator speaks {PROTOCOL_VERSION}"
        ),
    }
}

/// The close an event asks for.
fn closing(e: Event) -> Close {
    match e {
        Event::Revoked { host, serial } => Close::Refuse(ErrorMsg {
            code: ErrorCode::HostMismatch,
            message: format!("the certificate of {host} (serial {serial}) is revoked"),
        }),
        _ => Close::Shutdown,
    }
}

/// Stops reading: the owed replies go out as their commits return, then `close`'s.
fn drain(mut queue: Queue, close: Close, actions: &mut Vec<Action>) -> State {
    queue.flush(actions);
    if queue.len() == 0 {
        end(close, actions)
    } else {
        State::Draining { queue, close }
    }
}

/// Sends `close`'s last words now and ends; whatever is still owed is dropped.
fn end(close: Close, actions: &mut Vec<Action>) -> State {
    if let Some(r) = close.last_words() {
        actions.push(Action::Send(r));
    }
    actions.push(Action::Close);
    State::Closed(close)
}

/// A message's name, for error messages.
pub(crate) fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "Hello",
        Message::Welcome(_) => "Welcome",
        Message::Batch(_) => "Batch",
        Message::Ack(_) => "Ack",
        Message::Error(_) => "Error",
        Message::Enroll(_) => "Enroll",
        Message::Renew(_) => "Renew",
        Message::Certificate(_) => "Certificate",
    }
}

#[cfg(test)]
mod tests;
