//! Admission: how many connections may be open, from where and for which hosts, what was
//! refused, and the guards that give a connection's place back when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nines_common::HostId;
use tokio::sync::watch;

use crate::ingest::Limits;
use crate::ingest::ratelimit::{FailureLimit, LogLimit};
use crate::util::sync;

/// Lines a minute about refused connections, batches and points, all connections together.
const LOG_LINES_PER_MINUTE: u32 = 20;

/// What the ingest port refused or closed, for `/metrics`.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Connections closed at once: `max_connections` were open.
    pub over_total: AtomicU64,
    /// Connections closed at once: their address had `max_connections_per_address` open.
    pub over_address: AtomicU64,
    /// TLS handshakes that failed or timed out (no, wrong, expired certificate; garbage).
    pub handshake: AtomicU64,
    /// Connections closed after `idle_timeout` without a frame.
    pub idle: AtomicU64,
    /// Points of series refused by `max_series_per_host`.
    pub series_points: AtomicU64,
    /// Connections refused or closed because their certificate is revoked.
    pub revoked: AtomicU64,
    /// Connections without a client certificate that did not enroll.
    pub no_certificate: AtomicU64,
    /// Enrollments that got a certificate.
    pub enrolled: AtomicU64,
    /// Enrollments refused (unknown, used or expired token, wrong host, bad request).
    pub enroll_refused: AtomicU64,
    /// Renewals that got a certificate.
    pub renewed: AtomicU64,
    /// Renewals refused.
    pub renew_refused: AtomicU64,
    /// Enrollments refused unread: their address had failed too often.
    pub enroll_rate: AtomicU64,
    /// Batches refused for their sequence number (the connection is closed, nothing acked).
    pub bad_sequence: AtomicU64,
    /// Points refused as older than `max_point_age`.
    pub points_too_old: AtomicU64,
    /// Points refused as further ahead of the clock than `max_future`.
    pub points_too_far_in_future: AtomicU64,
    /// Points refused for a value that is not finite.
    pub points_not_finite: AtomicU64,
}

/// Hosts with an open connection, how many connections are open from where, what was
/// refused, and the revocation list connections are checked against.
#[derive(Debug)]
pub struct Connections {
    hosts: Mutex<HashMap<String, usize>>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Refusal counters.
    pub refused: Refusals,
    revocations: std::sync::RwLock<Option<Arc<crate::pki::revoke::Revocations>>>,
    /// Bumped when the revocation list changes: every connection checks itself again.
    generation: watch::Sender<u64>,
    /// Failed enrollments per source address.
    pub(crate) enroll_limit: FailureLimit,
    /// Log lines about refused connections, batches and points.
    pub(crate) log_limit: LogLimit,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            hosts: Mutex::default(),
            open: AtomicUsize::new(0),
            per_address: Mutex::default(),
            refused: Refusals::default(),
            revocations: std::sync::RwLock::new(None),
            generation: watch::channel(0).0,
            enroll_limit: FailureLimit::default(),
            log_limit: LogLimit::new(LOG_LINES_PER_MINUTE),
        }
    }
}

/// A connection's place in the limits, given back when it is dropped.
pub(crate) struct Admitted(Arc<Connections>, IpAddr);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        let mut m = sync::lock(&self.0.per_address);
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

impl Connections {
    /// Takes a place for a new connection from `ip`, or says why there is none.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &Limits,
    ) -> Result<Admitted, &'static str> {
        let mut m = sync::lock(&self.per_address);
        if self.open.load(Ordering::Relaxed) >= limits.max_connections {
            self.refused.over_total.fetch_add(1, Ordering::Relaxed);
            return Err("max_connections");
        }
        let n = m.entry(ip).or_default();
        if *n >= limits.max_connections_per_address {
            self.refused.over_address.fetch_add(1, Ordering::Relaxed);
            return Err("max_connections_per_address");
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted(self.clone(), ip))
    }

    /// Checks new and open connections against `r` from now on.
    pub fn set_revocations(&self, r: Arc<crate::pki::revoke::Revocations>) {
        *sync::write(&self.revocations) = Some(r);
    }

    /// The revocation list changed: every open connection checks itself again.
    pub fn revocations_changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether `host`'s certificate with `serial` is revoked.
    pub fn is_revoked(&self, host: &str, serial: &str) -> bool {
        sync::read(&self.revocations)
            .as_ref()
            .is_some_and(|r| r.revoked(host, serial))
    }

    /// Connections open now, TLS handshakes included.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts `host` as connected until the guard is dropped.
    pub(crate) fn connected(self: &Arc<Self>, host: &HostId) -> Connected {
        let mut m = sync::lock(&self.hosts);
        *m.entry(host.to_string()).or_default() += 1;
        Connected(self.clone(), host.clone())
    }

    /// Changes whenever the revocation list does.
    pub(crate) fn revocation_changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn remove(&self, host: &HostId) {
        let mut m = sync::lock(&self.hosts);
        if let Some(n) = m.get_mut(host.as_str()) {
            *n -= 1;
            if *n == 0 {
                m.remove(host.as_str());
            }
        }
    }

    /// Whether `host` has a connection open now.
    pub fn is_connected(&self, host: &str) -> bool {
        let m = sync::lock(&self.hosts);
        m.contains_key(host)
    }

    /// Number of hosts connected.
    pub fn count(&self) -> usize {
        sync::lock(&self.hosts).len()
    }
}

/// A host counted as connected, until dropped.
pub(crate) struct Connected(Arc<Connections>, HostId);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}
