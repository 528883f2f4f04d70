//! The shipper's state machine driven with events, no sockets. Time is tokio's paused clock.

use std::time::Duration;

use nines_common::proto::{Ack, CertificateReply, ErrorCode, ErrorMsg, Message};
use nines_common::{Sample, SeriesKey};
use tokio::time::{Instant, advance};

use super::machine::{Action, DRAIN, Event, Machine, Params, State};
use crate::error::AgentError;
use crate::spool::SpoolRecord;

const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn machine(window: usize) -> Machine {
    let params = Params {
        addresses: vec!["a:1".into(), "b:1".into()],
        window,
        ack_timeout: ACK_TIMEOUT,
    };
    let (m, first) = Machine::new(params, fastrand::Rng::with_seed(5));
    assert_eq!(first, vec![Action::Connect { index: 0 }]);
    m
}

fn record(seq: u64) -> SpoolRecord {
    SpoolRecord {
        seq,
        ts_ms: 1000 * seq as i64,
        samples: vec![Sample {
            key: SeriesKey::new("cpu_usage_ratio", &[("cpu", "total")]),
            ts_ms: 1000 * seq as i64,
            value: 0.5,
        }],
    }
}

fn on(m: &mut Machine, event: Event) -> Vec<Action> {
    m.on(event, Instant::now())
}

fn sent_seqs(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(Message::Batch(b)) => Some(b.seq),
            _ => None,
        })
        .collect()
}

fn ack(through_seq: u64) -> Event {
    Event::Frame(Message::Ack(Ack { through_seq }))
}

/// A machine connected and shipping, with nothing spooled.
fn shipping(window: usize) -> Machine {
    let mut m = machine(window);
    let actions = on(&mut m, Event::Connected { resume_from_seq: 0 });
    assert_eq!(actions, vec![Action::ResetCursor, Action::ReadBatch]);
    assert!(on(&mut m, Event::BatchRead(None)).is_empty());
    assert!(m.wants_appends() && m.wants_renewal());
    m
}

#[tokio::test(start_paused = true)]
async fn the_spool_advances_only_after_the_ack_and_from_the_welcome() {
    let mut m = machine(64);
    // The aggregator has everything before 5: the spool skips it, then reading starts.
    let actions = on(&mut m, Event::Connected { resume_from_seq: 5 });
    assert_eq!(
        actions,
        vec![Action::AckSpool(4), Action::ResetCursor, Action::ReadBatch]
    );
    let actions = on(&mut m, Event::BatchRead(Some(record(5))));
    assert_eq!(sent_seqs(&actions), vec![5]);
    assert!(!actions.iter().any(|a| matches!(a, Action::AckSpool(_))));
    let actions = on(&mut m, Event::BatchRead(Some(record(6))));
    assert_eq!(sent_seqs(&actions), vec![6]);
    assert!(!actions.iter().any(|a| matches!(a, Action::AckSpool(_))));
    assert!(on(&mut m, Event::BatchRead(None)).is_empty());
    // Sending is not storing: only the ack moves the spool, and only as far as it says.
    let actions = on(&mut m, ack(5));
    assert_eq!(actions, vec![Action::AckSpool(5), Action::ReadBatch]);
    let State::Shipping(session) = m.state() else {
        panic!("{:?}", m.state());
    };
    assert_eq!(session.inflight.len(), 1);
    assert!(session.progressed);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_window_is_in_flight() {
    let mut m = machine(2);
    on(&mut m, Event::Connected { resume_from_seq: 0 });
    assert_eq!(on(&mut m, Event::BatchRead(Some(record(1)))).len(), 2);
    let actions = on(&mut m, Event::BatchRead(Some(record(2))));
    assert_eq!(sent_seqs(&actions), vec![2]);
    assert!(!actions.contains(&Action::ReadBatch), "window full");
    assert!(!m.wants_appends());
    assert!(on(&mut m, Event::Appended).is_empty());
    assert!(on(&mut m, ack(1)).contains(&Action::ReadBatch));
}

#[tokio::test(start_paused = true)]
async fn an_error_frame_reconnects_to_the_next_aggregator_after_a_backoff() {
    let mut m = shipping(64);
    let actions = on(
        &mut m,
        Event::Frame(Message::Error(ErrorMsg {
            code: ErrorCode::StorageUnavailable,
            message: "disk full".into(),
        })),
    );
    assert_eq!(actions, vec![Action::Close]);
    let State::Waiting {
        until,
        attempt,
        index,
    } = *m.state()
    else {
        panic!("{:?}", m.state());
    };
    assert_eq!((attempt, index), (1, 1));
    let delay = until - Instant::now();
    // Attempt 1 waits within [125 ms, 250 ms].
    assert!(
        delay >= Duration::from_millis(125) && delay <= Duration::from_millis(250),
        "{delay:?}"
    );
    assert_eq!(m.deadline(), Some(until));
    // Not before the backoff is over.
    advance(delay / 2).await;
    assert!(on(&mut m, Event::Timeout).is_empty());
    advance(delay).await;
    assert_eq!(
        on(&mut m, Event::Timeout),
        vec![Action::Connect { index: 1 }]
    );
    // The second failure in a row waits longer.
    let actions = on(&mut m, Event::Failed(super::ShipError::Closed));
    assert_eq!(actions, vec![Action::Close]);
    let State::Waiting { until, attempt, .. } = *m.state() else {
        panic!("{:?}", m.state());
    };
    assert_eq!(attempt, 2);
    assert!(until - Instant::now() >= Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_missing_ack_times_out_and_reconnects_and_a_working_one_retries_at_once() {
    let mut m = shipping(64);
    on(&mut m, Event::Appended);
    on(&mut m, Event::BatchRead(Some(record(1))));
    on(&mut m, Event::BatchRead(None));
    let deadline = m.deadline().expect("an ack deadline");
    assert_eq!(deadline, Instant::now() + ACK_TIMEOUT);
    advance(ACK_TIMEOUT - Duration::from_millis(1)).await;
    assert!(on(&mut m, Event::Timeout).is_empty());
    advance(Duration::from_millis(1)).await;
    assert_eq!(on(&mut m, Event::Timeout), vec![Action::Close]);
    assert!(matches!(
        m.state(),
        State::Waiting {
            attempt: 1,
            index: 1,
            ..
        }
    ));

    // A session that had its acks: the next attempt is within 100 ms, same aggregator.
    let mut m = shipping(64);
    on(&mut m, Event::Appended);
    on(&mut m, Event::BatchRead(Some(record(1))));
    on(&mut m, ack(1));
    assert_eq!(on(&mut m, Event::Closed), vec![Action::Close]);
    let State::Waiting {
        until,
        attempt,
        index,
    } = *m.state()
    else {
        panic!("{:?}", m.state());
    };
    assert_eq!((attempt, index), (0, 0));
    assert!(until - Instant::now() <= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_renewal_is_a_state_and_shipping_resumes_with_the_new_certificate() {
    let mut m = shipping(64);
    let actions = on(&mut m, Event::RenewalDue(Ok(("KEY".into(), vec![1, 2, 3]))));
    assert_eq!(actions[0], Action::RenewalAsked);
    assert!(matches!(&actions[1], Action::Send(Message::Renew(r)) if r.csr_der == [1, 2, 3]));
    assert!(matches!(m.state(), State::Renewing { .. }));
    assert!(!m.wants_renewal(), "one request at a time");
    // Batches keep flowing while the request is out.
    on(&mut m, Event::Appended);
    let actions = on(&mut m, Event::BatchRead(Some(record(1))));
    assert_eq!(sent_seqs(&actions), vec![1]);
    let actions = on(
        &mut m,
        Event::Frame(Message::Certificate(CertificateReply::Issued {
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
        })),
    );
    assert!(actions.contains(&Action::InstallCredentials {
        key_pem: "KEY".into(),
        cert_pem: "CERT".into(),
        ca_pem: "CA".into(),
    }));
    // Installed: the session ends and the next one, at once, presents the new certificate.
    let actions = on(&mut m, Event::RenewalDone(Ok(())));
    assert_eq!(actions, vec![Action::Close, Action::Connect { index: 0 }]);
    assert!(matches!(
        m.state(),
        State::Connecting {
            attempt: 0,
            index: 0
        }
    ));
    let actions = on(&mut m, Event::Connected { resume_from_seq: 2 });
    assert_eq!(
        actions,
        vec![Action::AckSpool(1), Action::ResetCursor, Action::ReadBatch]
    );
    assert!(matches!(m.state(), State::Shipping(_)));
}

#[tokio::test(start_paused = true)]
async fn a_refused_or_unusable_renewal_goes_back_to_shipping_and_asks_later() {
    let mut m = shipping(64);
    on(&mut m, Event::RenewalDue(Ok(("KEY".into(), vec![1]))));
    let actions = on(
        &mut m,
        Event::Frame(Message::Certificate(CertificateReply::Refused {
            message: "revoked".into(),
        })),
    );
    assert_eq!(actions, vec![Action::RenewalFailed]);
    assert!(matches!(m.state(), State::Shipping(_)));

    on(&mut m, Event::RenewalDue(Ok(("KEY".into(), vec![1]))));
    on(
        &mut m,
        Event::Frame(Message::Certificate(CertificateReply::Issued {
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
        })),
    );
    let wrong_host = AgentError::HostMismatch {
        configured: "web-1".into(),
        certified: "web-2".into(),
    };
    let actions = on(&mut m, Event::RenewalDone(Err(wrong_host)));
    assert_eq!(actions, vec![Action::RenewalFailed]);
    assert!(matches!(m.state(), State::Shipping(_)));

    // No key could be made: no request, asked again later.
    let no_key = rcgen::Error::KeyGenerationUnavailable;
    let actions = on(&mut m, Event::RenewalDue(Err(no_key)));
    assert_eq!(actions, vec![Action::RenewalFailed]);
    assert!(matches!(m.state(), State::Shipping(_)));

    // A certificate nobody asked for is a protocol error.
    let actions = on(
        &mut m,
        Event::Frame(Message::Certificate(CertificateReply::Refused {
            message: String::new(),
        })),
    );
    assert_eq!(actions, vec![Action::Close]);
    assert!(matches!(m.state(), State::Waiting { .. }));
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_the_goodbye_and_stops_once_it_is_acknowledged() {
    let mut m = shipping(64);
    // The goodbye was appended just before the stop: the spool is read again.
    assert_eq!(on(&mut m, Event::Shutdown), vec![Action::ReadBatch]);
    assert!(matches!(m.state(), State::Draining { .. }));
    assert!(!m.wants_renewal());
    let actions = on(&mut m, Event::BatchRead(Some(record(9))));
    assert_eq!(sent_seqs(&actions), vec![9]);
    assert!(on(&mut m, Event::BatchRead(None)).is_empty());
    let actions = on(&mut m, ack(9));
    assert_eq!(actions, vec![Action::AckSpool(9), Action::ReadBatch,]);
    let actions = on(&mut m, Event::BatchRead(None));
    assert_eq!(actions, vec![Action::Close, Action::Stop]);
    assert!(matches!(m.state(), State::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_drain_without_an_ack_stops_after_its_time_and_keeps_the_rest_spooled() {
    let mut m = shipping(64);
    on(&mut m, Event::Shutdown);
    on(&mut m, Event::BatchRead(Some(record(9))));
    on(&mut m, Event::BatchRead(None));
    assert_eq!(m.deadline(), Some(Instant::now() + DRAIN));
    advance(DRAIN).await;
    let actions = on(&mut m, Event::Timeout);
    assert_eq!(actions, vec![Action::Close, Action::Stop]);
    assert!(!actions.iter().any(|a| matches!(a, Action::AckSpool(_))));

    // A failure while draining stops too: no reconnecting on the way out.
    let mut m = shipping(64);
    on(&mut m, Event::Shutdown);
    assert_eq!(on(&mut m, Event::Closed), vec![Action::Close, Action::Stop]);

    // Not connected: stop at once.
    let mut m = shipping(64);
    on(&mut m, Event::Closed);
    assert_eq!(
        on(&mut m, Event::Shutdown),
        vec![Action::Close, Action::Stop]
    );
}
