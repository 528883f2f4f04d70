//! The shipper's protocol core, without I/O: a [`State`], the [`Event`]s the driver observes
//! (connected, a frame read, a batch read from the spool, a renewal due or done, a timer,
//! shutdown) and the [`Action`]s it must carry out in order (send a frame, advance the
//! spool, write renewed credentials, reconnect after a backoff). Success is never an error:
//! a renewed certificate is a state the session passes through, and a clean stop is
//! [`State::Stopped`].
//!
//! The invariants it keeps: the spool is advanced only by an `Ack` (or the `Welcome`'s
//! resume point), never by sending; at most `window` batches are in flight; a failure
//! reconnects after [`backoff`], to the next aggregator if the session made no progress.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use nines_common::SeriesKey;
use nines_common::proto::{CertificateReply, Message, Renew};
use tokio::time::Instant;

use super::encode::encode_batch;
use super::failure::{ShipError, backoff};
use crate::error::AgentError;
use crate::spool::SpoolRecord;

/// How long a stopping agent goes on sending what is spooled, its goodbye last.
pub const DRAIN: Duration = Duration::from_secs(2);

/// What the machine needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct Params {
    /// The aggregators' addresses, tried in turn (for log lines; the driver connects).
    pub addresses: Vec<String>,
    /// Most batches in flight.
    pub window: usize,
    /// How long the oldest batch in flight may wait for its ack.
    pub ack_timeout: Duration,
}

/// One connection's progress.
#[derive(Debug)]
pub struct Session {
    /// Which aggregator (index into the addresses, modulo their number).
    pub index: usize,
    /// Failed attempts before this connection.
    pub attempt: u32,
    /// Batches sent and not acknowledged: sequence number and when it was sent.
    pub inflight: VecDeque<(u64, Instant)>,
    /// Series defined on this connection.
    dict: HashMap<SeriesKey, u32>,
    /// A [`Action::ReadBatch`] is outstanding.
    reading: bool,
    /// The last read found nothing more in the spool.
    spool_empty: bool,
    /// An ack arrived on this connection: the next failure retries at once.
    pub progressed: bool,
}

/// Where the shipper is.
#[derive(Debug)]
pub enum State {
    /// Waiting until `until` before connecting.
    Waiting {
        /// When to connect.
        until: Instant,
        /// Failed attempts so far.
        attempt: u32,
        /// Which aggregator next.
        index: usize,
    },
    /// Connecting and exchanging `Hello`/`Welcome`.
    Connecting {
        /// Failed attempts so far.
        attempt: u32,
        /// Which aggregator.
        index: usize,
    },
    /// Sending spooled batches and taking acks.
    Shipping(Session),
    /// Shipping, and a `Renew` request is on its way; its key waits for the certificate.
    Renewing {
        /// The connection.
        session: Session,
        /// The new key, PEM.
        key_pem: String,
    },
    /// Stopping: sending what is left in the spool until everything is acknowledged or
    /// `until` passes.
    Draining {
        /// The connection.
        session: Session,
        /// When to give up.
        until: Instant,
    },
    /// Done.
    Stopped,
}

/// What the driver saw.
#[derive(Debug)]
pub enum Event {
    /// The aggregator welcomed this agent; it has everything before `resume_from_seq`.
    Connected {
        /// From the `Welcome`.
        resume_from_seq: u64,
    },
    /// A frame arrived.
    Frame(Message),
    /// The aggregator closed the connection.
    Closed,
    /// Connecting, reading, writing or the spool failed.
    Failed(ShipError),
    /// The answer to [`Action::ReadBatch`]: the next record, or `None` if the spool has no more.
    BatchRead(Option<SpoolRecord>),
    /// Something was appended to the spool.
    Appended,
    /// The certificate is due for renewal: a new key (PEM) and its request (DER), or why none
    /// could be made.
    RenewalDue(Result<(String, Vec<u8>), rcgen::Error>),
    /// The answer to [`Action::InstallCredentials`]: in force, or why the renewed
    /// credentials are unusable.
    RenewalDone(Result<(), AgentError>),
    /// The time [`Machine::deadline`] named has come.
    Timeout,
    /// The agent is stopping.
    Shutdown,
}

/// What the driver must do, in order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Connect to aggregator `index` (modulo their number) and send the `Hello`.
    Connect {
        /// Which aggregator.
        index: usize,
    },
    /// Read from the spool from its acknowledged point on (a new connection's cursor).
    ResetCursor,
    /// Read the next record at the cursor; answer with [`Event::BatchRead`].
    ReadBatch,
    /// Send a frame.
    Send(Message),
    /// The aggregator has everything through this sequence number: advance the spool.
    AckSpool(u64),
    /// A renewal request is about to be sent.
    RenewalAsked,
    /// The renewal failed or was refused: ask again later.
    RenewalFailed,
    /// Check and write the renewed key, certificate and CA bundle, and put them in force;
    /// answer with [`Event::RenewalDone`].
    InstallCredentials {
        /// The key made for the request.
        key_pem: String,
        /// The certificate issued.
        cert_pem: String,
        /// The CA bundle.
        ca_pem: String,
    },
    /// Close the connection (if any): the session is over.
    Close,
    /// Stop shipping.
    Stop,
}

/// The state machine with its parameters and the random source of its backoff jitter.
#[derive(Debug)]
pub struct Machine {
    state: State,
    params: Params,
    rng: fastrand::Rng,
}

impl Machine {
    /// A machine that connects to the first aggregator at once. `rng` draws the backoff jitter
    /// (seed it for reproducible tests).
    pub fn new(params: Params, rng: fastrand::Rng) -> (Self, Vec<Action>) {
        let machine = Self {
            state: State::Connecting {
                attempt: 0,
                index: 0,
            },
            params,
            rng,
        };
        (machine, vec![Action::Connect { index: 0 }])
    }

    /// Where the machine is.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// When the driver must send [`Event::Timeout`]: the end of a backoff, the ack deadline of
    /// the oldest batch in flight, or the end of the drain, whichever comes first.
    pub fn deadline(&self) -> Option<Instant> {
        let ack = |s: &Session| {
            s.inflight
                .front()
                .map(|(_, t)| *t + self.params.ack_timeout)
        };
        match &self.state {
            State::Waiting { until, .. } => Some(*until),
            State::Shipping(s) | State::Renewing { session: s, .. } => ack(s),
            State::Draining { session, until } => {
                Some(ack(session).map_or(*until, |a| a.min(*until)))
            }
            State::Connecting { .. } | State::Stopped => None,
        }
    }

    /// Whether the driver should tell the machine when the certificate is due for renewal.
    pub fn wants_renewal(&self) -> bool {
        matches!(self.state, State::Shipping(_))
    }

    /// Whether the driver should tell the machine about appends to the spool: there is room
    /// in the window and the last read found the spool empty.
    pub fn wants_appends(&self) -> bool {
        self.session()
            .is_some_and(|s| s.spool_empty && s.inflight.len() < self.params.window)
    }

    /// Whether there is a connection the driver should read frames from.
    pub fn connected(&self) -> bool {
        self.session().is_some()
    }

    fn session(&self) -> Option<&Session> {
        match &self.state {
            State::Shipping(s) | State::Renewing { session: s, .. } => Some(s),
            State::Draining { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Handles `event`, observed at `now`: the new state is kept, the actions returned.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let state = std::mem::replace(&mut self.state, State::Stopped);
        let (state, actions) = step(state, event, now, &self.params, &mut self.rng);
        self.state = state;
        actions
    }
}

/// The transition function.
fn step(
    state: State,
    event: Event,
    now: Instant,
    params: &Params,
    rng: &mut fastrand::Rng,
) -> (State, Vec<Action>) {
    let mut actions = Vec::new();
    let state = match (state, event) {
        (State::Stopped, _) => State::Stopped,

        (State::Waiting { .. } | State::Connecting { .. }, Event::Shutdown) => {
            actions.push(Action::Close);
            actions.push(Action::Stop);
            State::Stopped
        }
        (
            State::Waiting {
                until,
                attempt,
                index,
            },
            Event::Timeout,
        ) if now >= until => {
            actions.push(Action::Connect { index });
            State::Connecting { attempt, index }
        }
        (state @ State::Waiting { .. }, _) => state,

        (State::Connecting { attempt, index }, Event::Connected { resume_from_seq }) => {
            tracing::info!(
                aggregator = %address(params, index),
                resume_from = resume_from_seq,
                "connected"
            );
            // Whatever the aggregator already stored need not be sent again.
            if resume_from_seq > 0 {
                actions.push(Action::AckSpool(resume_from_seq - 1));
            }
            actions.push(Action::ResetCursor);
            State::Shipping(Session {
                index,
                attempt,
                inflight: VecDeque::new(),
                dict: HashMap::new(),
                reading: false,
                spool_empty: false,
                progressed: false,
            })
        }
        (State::Connecting { attempt, index }, Event::Failed(error)) => {
            fail(attempt, index, false, error, now, rng, params, &mut actions)
        }
        (State::Connecting { attempt, index }, Event::Closed) => fail(
            attempt,
            index,
            false,
            ShipError::Closed,
            now,
            rng,
            params,
            &mut actions,
        ),
        (state @ State::Connecting { .. }, _) => state,

        // A connection: shipping, renewing or draining.
        (state, event) => connected(state, event, now, params, rng, &mut actions),
    };
    let state = fill(state, params, &mut actions);
    (state, actions)
}

fn address(params: &Params, index: usize) -> &str {
    match params.addresses.len() {
        0 => "",
        n => &params.addresses[index % n],
    }
}

/// A session ended with `error`: close it and wait before the next attempt.
#[allow(clippy::too_many_arguments)]
fn fail(
    attempt: u32,
    index: usize,
    progressed: bool,
    error: ShipError,
    now: Instant,
    rng: &mut fastrand::Rng,
    params: &Params,
    actions: &mut Vec<Action>,
) -> State {
    let addr = address(params, index).to_owned();
    let (attempt, next) = if progressed {
        (0, index)
    } else {
        // Try the next aggregator in the list.
        (attempt.saturating_add(1), index.wrapping_add(1))
    };
    let delay = backoff(attempt, error.failure(), rng);
    tracing::warn!(aggregator = %addr, retry_in = ?delay, "{error}");
    actions.push(Action::Close);
    State::Waiting {
        until: now + delay,
        attempt,
        index: next,
    }
}

fn connected(
    state: State,
    event: Event,
    now: Instant,
    params: &Params,
    rng: &mut fastrand::Rng,
    actions: &mut Vec<Action>,
) -> State {
    let (mut session, renewing, draining) = match state {
        State::Shipping(s) => (s, None, None),
        State::Renewing { session, key_pem } => (session, Some(key_pem), None),
        State::Draining { session, until } => (session, None, Some(until)),
        other => return other,
    };
    // How the session goes on when nothing changes its kind.
    let rebuild = |session: Session, renewing: Option<String>| match (draining, renewing) {
        (Some(until), _) => State::Draining { session, until },
        (None, Some(key_pem)) => State::Renewing { session, key_pem },
        (None, None) => State::Shipping(session),
    };
    let mut failed = |session: Session, error: ShipError, actions: &mut Vec<Action>| {
        if draining.is_some() {
            // A stopping agent does not reconnect: what is unacknowledged stays spooled.
            tracing::warn!("stopping: {error}; what is unacknowledged stays spooled");
            actions.push(Action::Close);
            actions.push(Action::Stop);
            return State::Stopped;
        }
        fail(
            session.attempt,
            session.index,
            session.progressed,
            error,
            now,
            rng,
            params,
            actions,
        )
    };
    match event {
        Event::BatchRead(record) => {
            session.reading = false;
            match record {
                Some(record) => {
                    let seq = record.seq;
                    let batch = encode_batch(record, &mut session.dict);
                    actions.push(Action::Send(Message::Batch(batch)));
                    session.inflight.push_back((seq, now));
                }
                None => session.spool_empty = true,
            }
            rebuild(session, renewing)
        }
        Event::Appended => {
            session.spool_empty = false;
            rebuild(session, renewing)
        }
        Event::Frame(Message::Ack(ack)) => {
            actions.push(Action::AckSpool(ack.through_seq));
            session.inflight.retain(|(seq, _)| *seq > ack.through_seq);
            session.progressed = true;
            // Room in the window: look at the spool again.
            session.spool_empty = false;
            rebuild(session, renewing)
        }
        Event::Frame(Message::Error(e)) => failed(
            session,
            ShipError::Refused {
                code: e.code,
                message: e.message,
            },
            actions,
        ),
        Event::Frame(Message::Certificate(reply)) => match (renewing, reply) {
            (Some(key_pem), CertificateReply::Issued { cert_pem, ca_pem }) => {
                actions.push(Action::InstallCredentials {
                    key_pem: key_pem.clone(),
                    cert_pem,
                    ca_pem,
                });
                State::Renewing { session, key_pem }
            }
            (Some(_), CertificateReply::Refused { message }) => {
                tracing::warn!(
                    "the aggregator refused to renew the certificate: {message}; asking again \
                     in an hour"
                );
                actions.push(Action::RenewalFailed);
                rebuild(session, None)
            }
            // A stopping agent does not start using a new certificate.
            (None, _) if draining.is_some() => rebuild(session, None),
            (None, _) => failed(
                session,
                ShipError::Unexpected("a certificate nobody asked for".into()),
                actions,
            ),
        },
        Event::Frame(other) => failed(
            session,
            ShipError::Unexpected(format!("{other:?}")),
            actions,
        ),
        Event::Closed => failed(session, ShipError::Closed, actions),
        Event::Failed(error) => failed(session, error, actions),
        Event::RenewalDue(request) if renewing.is_none() && draining.is_none() => match request {
            Ok((key_pem, csr_der)) => {
                actions.push(Action::RenewalAsked);
                actions.push(Action::Send(Message::Renew(Renew { csr_der })));
                State::Renewing { session, key_pem }
            }
            Err(e) => {
                tracing::warn!("cannot make a certificate request: {e}");
                actions.push(Action::RenewalFailed);
                State::Shipping(session)
            }
        },
        Event::RenewalDone(Ok(())) if renewing.is_some() => {
            tracing::info!(
                aggregator = %address(params, session.index),
                "reconnecting with the renewed certificate"
            );
            actions.push(Action::Close);
            actions.push(Action::Connect {
                index: session.index,
            });
            State::Connecting {
                attempt: 0,
                index: session.index,
            }
        }
        Event::RenewalDone(Err(e)) if renewing.is_some() => {
            tracing::error!("the renewed certificate is unusable: {e}");
            actions.push(Action::RenewalFailed);
            State::Shipping(session)
        }
        Event::Timeout => {
            if let Some(until) = draining
                && now >= until
            {
                tracing::warn!(
                    unacknowledged = session.inflight.len(),
                    "stopping before the aggregator acknowledged everything; the rest stays \
                     spooled for the next start"
                );
                // Unacked batches stay in the spool and are sent again next time.
                actions.push(Action::Close);
                actions.push(Action::Stop);
                return State::Stopped;
            }
            let overdue = session
                .inflight
                .front()
                .is_some_and(|(_, sent)| now >= *sent + params.ack_timeout);
            if overdue {
                failed(session, ShipError::AckTimeout(params.ack_timeout), actions)
            } else {
                rebuild(session, renewing)
            }
        }
        Event::Shutdown if draining.is_none() => {
            // Send what is spooled (the agent's goodbye last) and wait for its ack, briefly;
            // what is left stays spooled for the next start.
            session.spool_empty = false;
            State::Draining {
                session,
                until: now + DRAIN,
            }
        }
        // Out of place here (a second `Welcome`, a renewal answer nobody waits for): nothing
        // changes.
        Event::Connected { .. }
        | Event::RenewalDue(_)
        | Event::RenewalDone(_)
        | Event::Shutdown => rebuild(session, renewing),
    }
}

/// Asks for the next record while the window has room, and ends a drain that is complete.
fn fill(state: State, params: &Params, actions: &mut Vec<Action>) -> State {
    let mut state = state;
    let session = match &mut state {
        State::Shipping(s) | State::Renewing { session: s, .. } => s,
        State::Draining { session, .. } => session,
        _ => return state,
    };
    if actions.contains(&Action::Close) {
        return state;
    }
    if !session.reading && !session.spool_empty && session.inflight.len() < params.window {
        session.reading = true;
        actions.push(Action::ReadBatch);
    }
    if let State::Draining { session, .. } = &state
        && !session.reading
        && session.spool_empty
        && session.inflight.is_empty()
    {
        // Stopping, and everything spooled is acknowledged: the goodbye too.
        tracing::debug!("everything spooled is acknowledged");
        actions.push(Action::Close);
        actions.push(Action::Stop);
        return State::Stopped;
    }
    state
}
