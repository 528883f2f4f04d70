//! The session driven by events alone: no sockets, no timers. Receipts come from a real
//! store, since nothing else can make a [`Committed`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nines_common::HostId;
use nines_common::proto::{
    Batch, CertificateReply, ErrorCode, Hello, Message, PROTOCOL_VERSION, ProtoError, Renew, codec,
};

use super::*;
use crate::store::{BatchWrite, HelloWrite, Store, WriterHandle};

fn host() -> HostId {
    HostId::new("web-1").unwrap()
}

struct Receipts {
    _dir: tempfile::TempDir,
    store: Store,
    _writer: WriterHandle,
}

impl Receipts {
    /// A store that knows the host.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = Store::open(&dir.path().join("s.redb")).unwrap();
        let hello = HelloWrite {
            host: host(),
            hello: hello_of("web-1", PROTOCOL_VERSION),
            now_ms: nines_common::model::now_ms(),
        };
        store.register(hello).await.unwrap();
        Self {
            _dir: dir,
            store,
            _writer: writer,
        }
    }

    /// The receipt of batch `seq`, once it is committed.
    /// The receipt of the host's `Hello`.
    async fn register(&self) -> Committed {
        let hello = HelloWrite {
            host: host(),
            hello: hello_of("web-1", PROTOCOL_VERSION),
            now_ms: nines_common::model::now_ms(),
        };
        self.store.register(hello).await.unwrap()
    }

    async fn commit(&self, seq: u64) -> Committed {
        let write = BatchWrite {
            host: host(),
            seq,
            points: vec![],
        };
        self.store
            .submit_batch(write)
            .await
            .unwrap()
            .await
            .unwrap()
            .unwrap()
    }
}

/// A session past its `Welcome`.
fn streaming() -> State {
    State::Streaming(Queue::default())
}

fn hello_of(host_id: &str, protocol: u16) -> Hello {
    Hello {
        protocol,
        agent_version: "t".into(),
        host_id: host_id.into(),
        boot_id: String::new(),
        os: String::new(),
        arch: String::new(),
        kernel: String::new(),
        interval_ms: 1000,
    }
}

fn first(hello: Hello) -> Event {
    let bytes = codec::encode(&Message::Hello(hello), 1 << 20).unwrap();
    Event::FirstFrame(Ok(Some(bytes)))
}

fn batch(seq: u64) -> Event {
    Event::Frame(Ok(Some(Message::Batch(Batch {
        seq,
        series_defs: vec![],
        points: vec![],
    }))))
}

fn renew() -> Event {
    Event::Frame(Ok(Some(Message::Renew(Renew {
        csr_der: vec![1, 2, 3],
    }))))
}

/// Feeds `events` in order: the final state and every action, described.
fn run(mut state: State, events: impl IntoIterator<Item = Event>) -> (State, Vec<String>) {
    let mut done = Vec::new();
    for e in events {
        let (next, actions) = on(state, e);
        state = next;
        done.extend(actions.into_iter().map(describe));
    }
    (state, done)
}

fn describe(a: Action) -> String {
    match a {
        Action::Register(h) => format!("register {}", h.host_id),
        Action::Submit(b) => format!("submit {}", b.seq),
        Action::Renew(_) => "renew".into(),
        Action::Send(r) => {
            // What goes on the wire: the frame, encoded and decoded again.
            let bytes = codec::encode(&r.into_message(), 1 << 20).unwrap();
            match codec::decode::<Message>(&bytes).unwrap() {
                Message::Welcome(w) => format!("welcome {}", w.resume_from_seq),
                Message::Ack(a) => format!("ack {}", a.through_seq),
                Message::Certificate(CertificateReply::Issued { .. }) => "issued".into(),
                Message::Certificate(CertificateReply::Refused { .. }) => "refused".into(),
                Message::Error(e) => format!("error {:?}", e.code),
                other => format!("{other:?}"),
            }
        }
        Action::Close => "close".into(),
    }
}

fn refused() -> Event {
    Event::Renewed(CertificateReply::Refused {
        message: "no".into(),
    })
}

#[tokio::test]
async fn the_hello_is_welcomed_once_it_is_durable_with_where_to_resume() {
    let store = Receipts::new().await;
    let _ = store.commit(7).await;
    let (state, done) = run(
        State::new(host()),
        [first(hello_of("web-1", PROTOCOL_VERSION))],
    );
    assert_eq!(done, ["register web-1"]);
    assert_eq!(state.reads(), None, "nothing is read before the Welcome");
    let (state, done) = run(state, [Event::Registered(store.register().await)]);
    assert_eq!(done, ["welcome 8"]);
    assert_eq!(state.reads(), Some(Read::Frame));

    let (state, done) = run(State::new(host()), [Event::RegisterFailed("disk".into())]);
    assert!(done.is_empty(), "{done:?}");
    let (_, done) = run(
        state,
        [
            first(hello_of("web-1", PROTOCOL_VERSION)),
            Event::RegisterFailed("disk".into()),
        ],
    );
    assert_eq!(
        done,
        ["register web-1", "error StorageUnavailable", "close"]
    );
}

#[test]
fn a_bad_hello_is_refused_and_closes() {
    let refused = |e: Event| run(State::new(host()), [e]).1;
    assert_eq!(
        refused(first(hello_of("db-1", PROTOCOL_VERSION))),
        ["error HostMismatch", "close"]
    );
    assert_eq!(
        refused(first(hello_of("web-1", PROTOCOL_VERSION + 1))),
        ["error UnsupportedProtocol", "close"]
    );
    let batch_first = codec::encode(
        &Message::Batch(Batch {
            seq: 1,
            series_defs: vec![],
            points: vec![],
        }),
        1 << 20,
    )
    .unwrap();
    assert_eq!(
        refused(Event::FirstFrame(Ok(Some(batch_first)))),
        ["error UnexpectedMessage", "close"]
    );
    assert_eq!(
        refused(Event::FirstFrame(Ok(Some(vec![0xff; 3])))),
        ["error BadFrame", "close"]
    );
    assert_eq!(
        refused(Event::Timeout {
            after: Duration::from_secs(10)
        }),
        ["error UnexpectedMessage", "close"]
    );
    // The peer closed before saying anything: nothing to tell it.
    assert_eq!(refused(Event::FirstFrame(Ok(None))), ["close"]);
}

#[tokio::test]
async fn a_batch_is_acked_only_once_its_commit_returned_and_in_order() {
    let store = Receipts::new().await;
    let (state, done) = run(
        streaming(),
        [batch(1), Event::Submitted, batch(2), Event::Submitted],
    );
    // Submitted is not committed: nothing is acked yet, and reading goes on.
    assert_eq!(done, ["submit 1", "submit 2"]);
    assert_eq!(state.commits(), 2);
    assert_eq!(state.reads(), Some(Read::Frame));

    let (state, done) = run(state, [Event::Committed(store.commit(1).await)]);
    assert_eq!(done, ["ack 1"]);
    let (state, done) = run(state, [Event::Committed(store.commit(2).await)]);
    assert_eq!(done, ["ack 2"]);
    assert_eq!(state.commits(), 0);
    assert!(matches!(state, State::Streaming(_)));
}

#[tokio::test]
async fn a_batch_the_store_refuses_is_not_acked_and_closes_the_connection() {
    let store = Receipts::new().await;
    let e = ErrorMsg {
        code: ErrorCode::BadSequence,
        message: "seq 0".into(),
    };
    let (state, done) = run(
        streaming(),
        [
            batch(1),
            Event::Submitted,
            batch(0),
            Event::SubmitRefused(e),
        ],
    );
    // The earlier batch is still owed its ack: the error waits for it.
    assert_eq!(done, ["submit 1", "submit 0"]);
    assert_eq!(state.reads(), None);
    let (state, done) = run(state, [Event::Committed(store.commit(1).await)]);
    assert_eq!(done, ["ack 1", "error BadSequence", "close"]);
    assert!(matches!(state, State::Closed(Close::Refuse(_))));

    // A failed commit: nothing after it is acked.
    let (state, done) = run(
        streaming(),
        [
            batch(1),
            Event::Submitted,
            batch(2),
            Event::Submitted,
            Event::CommitFailed("disk full".into()),
        ],
    );
    assert_eq!(
        done,
        ["submit 1", "submit 2", "error StorageUnavailable", "close"]
    );
    assert!(matches!(state, State::Closed(_)));
}

#[tokio::test]
async fn a_renewal_in_the_middle_of_a_stream_is_answered_in_its_turn() {
    let store = Receipts::new().await;
    let (state, done) = run(streaming(), [batch(1), Event::Submitted, renew()]);
    assert_eq!(done, ["submit 1", "renew"]);
    // No frames are read while the renewal is decided; acks still go out.
    assert!(matches!(state, State::Renewing { .. }));
    assert_eq!(state.reads(), None);

    // The answer waits behind the ack of the batch sent before the request.
    let (state, done) = run(state, [refused()]);
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(
        state.reads(),
        Some(Read::Frame),
        "a refused renewal leaves the stream open"
    );
    let (state, done) = run(state, [Event::Committed(store.commit(1).await)]);
    assert_eq!(done, ["ack 1", "refused"]);

    // The stream goes on.
    let (state, done) = run(state, [batch(2), Event::Submitted]);
    assert_eq!(done, ["submit 2"]);
    let (state, done) = run(state, [Event::Committed(store.commit(2).await)]);
    assert_eq!(done, ["ack 2"]);

    // With nothing owed, the answer goes at once.
    let (state, done) = run(state, [renew(), refused()]);
    assert_eq!(done, ["renew", "refused"]);
    assert!(matches!(state, State::Streaming(_)));
}

#[tokio::test]
async fn a_shutdown_during_a_renewal_waits_for_its_answer() {
    let (state, done) = run(streaming(), [renew(), Event::Shutdown]);
    assert_eq!(done, ["renew"]);
    let (state, done) = run(state, [refused()]);
    assert_eq!(done, ["refused", "error ShuttingDown", "close"]);
    assert!(matches!(state, State::Closed(Close::Shutdown)));
}

#[tokio::test]
async fn a_malformed_frame_gets_an_error_reply_and_closes() {
    let (state, done) = run(
        streaming(),
        [Event::Frame(Err(ProtoError::Malformed("junk".into())))],
    );
    assert_eq!(done, ["error BadFrame", "close"]);
    assert!(matches!(state, State::Closed(Close::Refuse(_))));

    let too_large = ProtoError::FrameTooLarge {
        len: 1 << 30,
        max: 1 << 22,
    };
    let (_, done) = run(streaming(), [Event::Frame(Err(too_large))]);
    assert_eq!(done, ["error FrameTooLarge", "close"]);

    // A message out of place is refused the same way, and nothing after it is read.
    let ack = Message::Ack(nines_common::proto::Ack { through_seq: 1 });
    let (state, done) = run(streaming(), [Event::Frame(Ok(Some(ack))), batch(1)]);
    assert_eq!(done, ["error UnexpectedMessage", "close"]);
    assert!(matches!(state, State::Closed(_)));
}

#[tokio::test]
async fn an_idle_connection_is_told_why_and_closed() {
    let idle = Event::Timeout {
        after: Duration::from_secs(600),
    };
    let (state, actions) = on(streaming(), idle);
    let State::Closed(Close::Refuse(e)) = state else {
        panic!("{state:?}");
    };
    assert_eq!(e.code, ErrorCode::UnexpectedMessage);
    assert!(
        e.message.contains("10m") && e.message.contains("idle_timeout"),
        "{e:?}"
    );
    assert_eq!(
        actions.into_iter().map(describe).collect::<Vec<_>>(),
        ["error UnexpectedMessage", "close"]
    );
}

#[tokio::test]
async fn a_shutdown_while_a_batch_is_in_flight_acks_it_first() {
    let store = Receipts::new().await;
    let (state, done) = run(streaming(), [batch(1), Event::Submitted, Event::Shutdown]);
    assert_eq!(done, ["submit 1"]);
    assert_eq!(state.reads(), None);
    assert!(!state.may_close(), "a second shutdown changes nothing");
    let (state, done) = run(state, [Event::Committed(store.commit(1).await)]);
    assert_eq!(done, ["ack 1", "error ShuttingDown", "close"]);
    assert!(matches!(state, State::Closed(Close::Shutdown)));

    // The store stopped before the commit: the agent is told, nothing is acked.
    let (state, done) = run(
        streaming(),
        [
            batch(1),
            Event::Submitted,
            Event::Shutdown,
            Event::CommitAbandoned,
        ],
    );
    assert_eq!(done, ["submit 1", "error ShuttingDown", "close"]);
    assert!(matches!(state, State::Closed(Close::Shutdown)));
}

#[tokio::test]
async fn the_end_of_the_stream_sends_the_acks_owed_then_closes_quietly() {
    let store = Receipts::new().await;
    let (state, done) = run(
        streaming(),
        [batch(1), Event::Submitted, Event::Frame(Ok(None))],
    );
    assert_eq!(done, ["submit 1"]);
    let (state, done) = run(state, [Event::Committed(store.commit(1).await)]);
    assert_eq!(done, ["ack 1", "close"]);
    assert!(matches!(state, State::Closed(Close::Peer)));
}

#[test]
fn a_revoked_certificate_closes_the_connection_naming_it() {
    let (state, done) = run(
        streaming(),
        [Event::Revoked {
            host: host(),
            serial: "0a".into(),
        }],
    );
    assert_eq!(done, ["error HostMismatch", "close"]);
    let State::Closed(Close::Refuse(e)) = state else {
        panic!("{state:?}");
    };
    assert!(
        e.message.contains("web-1") && e.message.contains("0a"),
        "{e:?}"
    );
}

#[test]
fn reading_pauses_while_too_many_replies_are_owed() {
    let mut state = streaming();
    for seq in 1..=MAX_PENDING as u64 {
        assert_eq!(state.reads(), Some(Read::Frame));
        (state, _) = run(state, [batch(seq), Event::Submitted]);
    }
    assert_eq!(state.reads(), None);
    assert_eq!(state.commits(), MAX_PENDING);
}
