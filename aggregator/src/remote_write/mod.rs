//! Prometheus remote write 1.0 (docs/design.md, "Remote write"): every committed sample is
//! forwarded to a receiver (Prometheus, Mimir, Thanos receive, VictoriaMetrics) from a bounded
//! durable queue, so a backlog survives restarts.
//!
//! The store's commit hook resolves each point's series to labels (`__name__`, `host`, the
//! series' labels, external labels) and hands the points to the appender thread, which groups
//! them into `WriteRequest`s of at most `max_samples_per_send` samples, snappy-compresses them
//! and appends them to the [`queue::Queue`] (fsynced). The sender task reads the queue in
//! order, merges records up to `max_samples_per_send`, POSTs them, and advances the queue only
//! on a 2xx answer. 5xx, 429 and network errors are retried with exponential backoff and full
//! jitter; any other 4xx drops the request (counted and logged), as Prometheus does.

pub mod config;
pub mod proto;
pub mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use config::RemoteWriteConfig;
use proto::{Label, Sample, TimeSeries, WriteRequest};
use queue::Queue;

use crate::store::Store;
use crate::util::exposition::Exposition;
use crate::util::sync::lock;

/// Commits waiting for the appender; past this the store's writer waits (the queue's disk is
/// slower than the store's, which it shares).
const HANDOFF: usize = 256;

/// Why remote write could not start.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The queue directory is unusable.
    #[error("remote-write queue {path}: {source}")]
    Queue {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A TLS or token file is unusable.
    #[error("[remote_write] {0}")]
    Setup(String),
}

/// Counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    requests: AtomicU64,
    last_sent_ts: AtomicU64,
}

/// The running forwarder.
#[derive(Debug)]
pub struct RemoteWrite {
    url: String,
    queue: Arc<Mutex<Queue>>,
    stats: Stats,
    appender: Mutex<Option<std::thread::JoinHandle<()>>>,
}

type Labels = Arc<Vec<Label>>;

/// Groups points into requests of at most `max` samples, each series' samples in the order
/// given, and encodes them (protobuf, then snappy block format).
fn encode(points: Vec<(Labels, i64, f64)>, max: usize) -> Vec<(Vec<u8>, u32)> {
    let mut out = Vec::new();
    for chunk in points.chunks(max) {
        let mut index: HashMap<*const Vec<Label>, usize> = HashMap::new();
        let mut req = WriteRequest::default();
        for (labels, ts, v) in chunk {
            let i = *index.entry(Arc::as_ptr(labels)).or_insert_with(|| {
                req.timeseries.push(TimeSeries {
                    labels: labels.as_ref().clone(),
                    samples: Vec::new(),
                });
                req.timeseries.len() - 1
            });
            req.timeseries[i].samples.push(Sample {
                value: *v,
                timestamp: *ts,
            });
        }
        for t in &mut req.timeseries {
            // Stable: equal timestamps keep their commit order.
            t.samples.sort_by_key(|s| s.timestamp);
        }
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap_or_default();
        out.push((body, chunk.len() as u32));
    }
    out
}

fn client(c: &RemoteWriteConfig) -> Result<reqwest::Client, RemoteWriteError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let setup =
        |what: &str, e: &dyn std::fmt::Display| RemoteWriteError::Setup(format!("{what}: {e}"));
    let read =
        |p: &std::path::Path| std::fs::read(p).map_err(|e| setup(&p.display().to_string(), &e));
    let mut b = reqwest::Client::builder()
        .timeout(c.timeout)
        .user_agent(concat!("nines-aggregator/", env!("CARGO_PKG_VERSION")));
    if c.tls.ca.is_some() || c.tls.cert.is_some() {
        let mut roots = rustls::RootCertStore::empty();
        match &c.tls.ca {
            Some(ca) => {
                for cert in nines_common::tls::parse_certs(&read(ca)?, "remote_write CA")
                    .map_err(|e| setup("tls.ca", &e))?
                {
                    roots.add(cert).map_err(|e| setup("tls.ca", &e))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(nines_common::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup("tls", &e))?
            .with_root_certificates(roots);
        let tls = match (&c.tls.cert, &c.tls.key) {
            (Some(cert), Some(key)) => {
                let certs = nines_common::tls::parse_certs(&read(cert)?, "remote_write cert")
                    .map_err(|e| setup("tls.cert", &e))?;
                let key = nines_common::tls::parse_key(&read(key)?, "remote_write key")
                    .map_err(|e| setup("tls.key", &e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| setup("tls.cert", &e))?
            }
            _ => builder.with_no_client_auth(),
        };
        b = b.tls_backend_preconfigured(tls);
    }
    b.build().map_err(|e| setup("client", &e))
}

impl RemoteWrite {
    /// Opens the queue, hooks into `store`'s commits and starts the sender. The sender stops
    /// when `shutdown` turns true; [`RemoteWrite::finish`] waits for the appender.
    pub fn start(
        c: &RemoteWriteConfig,
        store: &Store,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Arc<Self>, JoinHandle<()>), RemoteWriteError> {
        let dir = c.queue_dir.clone().unwrap_or_default();
        let queue =
            Queue::open(&dir, c.queue_max_mib << 20).map_err(|source| RemoteWriteError::Queue {
                path: dir.clone(),
                source,
            })?;
        let client = client(c)?;
        let token = match (&c.bearer_token, &c.bearer_token_file) {
            (Some(t), _) => Some(t.trim().to_owned()),
            (None, Some(p)) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| RemoteWriteError::Setup(format!("{}: {e}", p.display())))?
                    .trim()
                    .to_owned(),
            ),
            _ => None,
        };
        let queue = Arc::new(Mutex::new(queue));
        let wake = Arc::new(Notify::new());
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Labels, i64, f64)>>(HANDOFF);
        let max = c.max_samples_per_send;
        let appender = {
            let queue = queue.clone();
            let wake = wake.clone();
            std::thread::Builder::new()
                .name("nines-remote-write-queue".into())
                .spawn(move || {
                    // Ends when the store (holding the hook and so `tx`) is gone and the
                    // hand-off is drained.
                    while let Ok(mut points) = rx.recv() {
                        while let Ok(more) = rx.try_recv() {
                            points.extend(more);
                        }
                        let records = encode(points, max);
                        if let Err(e) = lock(&queue).append(&records) {
                            let n: u64 = records.iter().map(|r| u64::from(r.1)).sum();
                            tracing::error!(
                                samples = n,
                                "remote-write queue append failed; samples not forwarded: {e}"
                            );
                            lock(&queue).dropped += n;
                        }
                        wake.notify_one();
                    }
                })
                .map_err(|e| RemoteWriteError::Setup(format!("appender thread: {e}")))?
        };
        let external: Vec<Label> = c
            .external_labels
            .iter()
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.clone(),
            })
            .collect();
        let cache: Mutex<HashMap<u32, Labels>> = Mutex::new(HashMap::new());
        store.on_commit(Box::new(move |points, lookup| {
            let mut cache = lock(&cache);
            let mut out = Vec::with_capacity(points.len());
            for &(id, ts, v) in points {
                let labels = match cache.get(&id) {
                    Some(l) => l.clone(),
                    None => {
                        let Some((host, key)) = lookup(id) else {
                            continue;
                        };
                        let mut m: std::collections::BTreeMap<String, String> = external
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect();
                        m.extend(key.labels);
                        m.insert("host".into(), host.to_string());
                        m.insert("__name__".into(), key.name);
                        let l: Labels = Arc::new(
                            m.into_iter()
                                .map(|(name, value)| Label { name, value })
                                .collect(),
                        );
                        cache.insert(id, l.clone());
                        l
                    }
                };
                out.push((labels, ts, v));
            }
            let _ = tx.send(out);
        }));
        let me = Arc::new(Self {
            url: c.url.clone(),
            queue,
            stats: Stats::default(),
            appender: Mutex::new(Some(appender)),
        });
        let task = tokio::spawn(
            me.clone()
                .send_loop(client, c.clone(), token, wake, shutdown),
        );
        tracing::info!(url = %c.url, queue = %dir.display(), "remote write on");
        Ok((me, task))
    }

    /// Waits for the appender to queue what the store committed last (after the store's
    /// writer has stopped).
    pub fn finish(&self) {
        let handle = lock(&self.appender).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    async fn send_loop(
        self: Arc<Self>,
        client: reqwest::Client,
        c: RemoteWriteConfig,
        token: Option<String>,
        wake: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let max = c.max_samples_per_send as u64;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let queue = self.queue.clone();
            let batch = tokio::task::spawn_blocking(move || lock(&queue).peek(max)).await;
            let (records, to) = match batch {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!("remote-write queue unreadable: {e}");
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
                Err(_) => return,
            };
            if records.is_empty() {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let samples: u64 = records.iter().map(|r| u64::from(r.1)).sum();
            let body = merge(records);
            let newest = body.1;
            let Some(delivered) = self
                .deliver(
                    &client,
                    &c,
                    token.as_deref(),
                    body.0,
                    samples,
                    &mut shutdown,
                )
                .await
            else {
                return;
            };
            if delivered {
                self.stats.sent.fetch_add(samples, Ordering::Relaxed);
                self.stats
                    .last_sent_ts
                    .fetch_max(newest.max(0) as u64, Ordering::Relaxed);
            } else {
                self.stats.failed.fetch_add(samples, Ordering::Relaxed);
            }
            let queue = self.queue.clone();
            let acked = tokio::task::spawn_blocking(move || lock(&queue).ack(to, samples)).await;
            if let Ok(Err(e)) = acked {
                tracing::error!("remote-write queue cursor not saved: {e}");
            }
        }
    }

    /// Sends one request until it is delivered (true), refused for good (false), or shutdown
    /// comes (None).
    async fn deliver(
        &self,
        client: &reqwest::Client,
        c: &RemoteWriteConfig,
        token: Option<&str>,
        body: Vec<u8>,
        samples: u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<bool> {
        let mut attempt: u32 = 0;
        loop {
            let mut req = client
                .post(&c.url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(body.clone());
            for (k, v) in &c.headers {
                req = req.header(k, v);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let why = match req.send().await {
                Ok(r) if r.status().is_success() => return Some(true),
                Ok(r)
                    if r.status().is_server_error()
                        || r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    format!("{}", r.status())
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::warn!(url = %self.url, %status, samples, "remote write refused, samples dropped: {}", text.trim());
                    return Some(false);
                }
                Err(e) => e.to_string(),
            };
            attempt = attempt.saturating_add(1);
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let cap = Duration::from_millis(100)
                .saturating_mul(1u32 << attempt.min(16))
                .min(c.max_backoff);
            let wait = cap.mul_f64(fastrand::f64());
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::warn!(url = %self.url, attempt, "remote write failed, retrying: {why}");
            }
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return None,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Writes the remote-write metrics.
    pub fn expose(&self, e: &mut Exposition) {
        let (pending, bytes, dropped) = {
            let q = lock(&self.queue);
            (q.pending(), q.bytes(), q.dropped)
        };
        let url = [("url", self.url.as_str())];
        let rows: [(&str, &str, &str, f64); 8] = [
            (
                "nines_remote_write_samples_sent_total",
                "counter",
                "Samples the receiver accepted.",
                self.stats.sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "nines_remote_write_samples_failed_total",
                "counter",
                "Samples the receiver refused with a 4xx other than 429 (not retried).",
                self.stats.failed.load(Ordering::Relaxed) as f64,
            ),
            (
                "nines_remote_write_samples_dropped_total",
                "counter",
                "Samples dropped unsent because the queue went over queue_max_mib (or could not be written).",
                dropped as f64,
            ),
            (
                "nines_remote_write_requests_total",
                "counter",
                "Requests made, retries included.",
                self.stats.requests.load(Ordering::Relaxed) as f64,
            ),
            (
                "nines_remote_write_retries_total",
                "counter",
                "Requests retried after a 5xx, 429 or network error.",
                self.stats.retries.load(Ordering::Relaxed) as f64,
            ),
            (
                "nines_remote_write_pending_samples",
                "gauge",
                "Samples in the queue not yet accepted.",
                pending as f64,
            ),
            (
                "nines_remote_write_queue_bytes",
                "gauge",
                "Bytes of the queue's segment files.",
                bytes as f64,
            ),
            (
                "nines_remote_write_highest_sent_timestamp_seconds",
                "gauge",
                "Newest sample timestamp the receiver accepted.",
                self.stats.last_sent_ts.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
        ];
        for (name, kind, help, v) in rows {
            e.family(name, kind, help);
            e.sample(name, url, v, None);
        }
    }
}

/// One request from queued records: their series merged, compressed again. Returns the body
/// and the newest timestamp in it.
fn merge(records: Vec<(Vec<u8>, u32)>) -> (Vec<u8>, i64) {
    let mut dec = snap::raw::Decoder::new();
    let mut all = WriteRequest::default();
    let mut n = 0;
    for (payload, _) in &records {
        let Ok(raw) = dec.decompress_vec(payload) else {
            continue;
        };
        let Ok(req) = WriteRequest::decode(raw.as_slice()) else {
            continue;
        };
        n += 1;
        all.merge(req);
    }
    let newest = all
        .timeseries
        .iter()
        .filter_map(|t| t.samples.last().map(|s| s.timestamp))
        .max()
        .unwrap_or(0);
    if n == 1 && records.len() == 1 {
        return (
            records.into_iter().next().map(|r| r.0).unwrap_or_default(),
            newest,
        );
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(&all.encode_to_vec())
        .unwrap_or_default();
    (body, newest)
}

#[cfg(test)]
mod tests;
