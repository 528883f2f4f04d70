//! The simulated agents: connect over mTLS, say Hello, send one batch per tick and read acks.

use super::*;

/// An agent's connection after `Welcome`.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) host: HostId,
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    pub(crate) next_seq: u64,
}

pub(crate) async fn connect_all(
    pki_dir: &PkiDir,
    hosts: &[HostId],
    addr: SocketAddr,
    args: &Args,
) -> Result<Vec<Conn>, BenchIngestError> {
    let ca = std::fs::read(pki_dir.ca_cert()).map_err(io(&pki_dir.ca_cert()))?;
    let sem = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let (cert_path, key_path) = (pki_dir.agent_cert(host), pki_dir.agent_key(host));
        let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read(&key_path).map_err(io(&key_path))?;
        let config = Arc::new(nines_common::tls::client_config(&ca, &cert, &key)?);
        let (host, sem) = (host.clone(), sem.clone());
        let interval_ms = u32::try_from(args.batch_interval.as_millis()).unwrap_or(u32::MAX);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = connect(config, addr, &host, interval_ms).await;
            (i, host, r)
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..hosts.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, host, r) =
            joined.map_err(|e| BenchIngestError::Invalid(format!("connect: {e}")))?;
        match r {
            Ok(c) => conns[i] = Some(c),
            Err(message) => return Err(BenchIngestError::Connect { host, message }),
        }
    }
    Ok(conns.into_iter().flatten().collect())
}

pub(crate) async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &HostId,
    interval_ms: u32,
) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (r, w) = tokio::io::split(tls);
    let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_BYTES);
    let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_BYTES);
    writer
        .write(&Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            agent_version: format!("bench-ingest/{}", env!("CARGO_PKG_VERSION")),
            host_id: host.to_string(),
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            os: "simulated".into(),
            arch: std::env::consts::ARCH.into(),
            kernel: "simulated".into(),
            interval_ms,
        }))
        .await
        .map_err(|e| format!("Hello: {e}"))?;
    match reader.read().await {
        Ok(Some(Message::Welcome(w))) => Ok(Conn {
            host: host.clone(),
            reader,
            writer,
            next_seq: w.resume_from_seq.max(1),
        }),
        Ok(Some(Message::Error(e))) => Err(format!("refused: {}: {}", e.code, e.message)),
        Ok(Some(other)) => Err(format!("expected Welcome, got {other:?}")),
        Ok(None) => Err("closed before Welcome".into()),
        Err(e) => Err(format!("waiting for Welcome: {e}")),
    }
}

/// When every agent sends and when the measurement window is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) t0: Instant,
    pub(crate) base_ts_ms: i64,
    pub(crate) measure_from: Instant,
    pub(crate) measure_until: Instant,
    pub(crate) interval: Duration,
    pub(crate) window: usize,
}

pub(crate) fn quantised_now_ms(interval: Duration) -> i64 {
    let step = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let now = nines_common::model::now_ms();
    (now / step + 1) * step
}

/// What one agent saw.
#[derive(Debug, Default)]
pub(crate) struct AgentStats {
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) skipped: u64,
    pub(crate) samples_acked: u64,
    pub(crate) window_samples_acked: u64,
    pub(crate) window_batches_acked: u64,
    /// Ack latency of batches sent inside the window, microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// How late each send inside the window started after its tick, microseconds: the
    /// bench client's own delay, which must stay small for the latencies to mean anything.
    pub(crate) lags_us: Vec<u32>,
    pub(crate) error: Option<String>,
}

impl AgentStats {
    pub(crate) fn merge(&mut self, o: AgentStats) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.skipped += o.skipped;
        self.samples_acked += o.samples_acked;
        self.window_samples_acked += o.window_samples_acked;
        self.window_batches_acked += o.window_batches_acked;
        self.latencies_us.extend(o.latencies_us);
        self.lags_us.extend(o.lags_us);
    }
}

pub(crate) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A batch in flight.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) sent: Instant,
    pub(crate) points: u64,
}

/// One simulated agent: one batch per tick while the window has room, acks read as they come,
/// then a drain of the last acks and a TLS close.
pub(crate) async fn agent(
    mut conn: Conn,
    mut plan: SeriesPlan,
    s: Schedule,
    offset: Duration,
    live: Arc<Live>,
) -> AgentStats {
    let mut st = AgentStats::default();
    let first_tick = s.t0 + offset;
    let mut ticker = tokio::time::interval_at(first_tick, s.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let interval_ms = i64::try_from(s.interval.as_millis()).unwrap_or(i64::MAX);
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(s.window);
    let mut sending = true;
    let drain_deadline = s.measure_until + DRAIN_LIMIT;
    let in_window = |t: Instant| t >= s.measure_from && t < s.measure_until;
    loop {
        if !sending && pending.is_empty() {
            break;
        }
        tokio::select! {
            msg = conn.reader.read() => {
                let now = Instant::now();
                match msg {
                    Ok(Some(Message::Ack(ack))) => {
                        while pending.front().is_some_and(|p| p.seq <= ack.through_seq) {
                            let Some(p) = pending.pop_front() else { break };
                            st.acked += 1;
                            st.samples_acked += p.points;
                            live.acked.fetch_add(p.points, Ordering::Relaxed);
                            live.unacked.fetch_sub(p.points, Ordering::Relaxed);
                            if in_window(p.sent) {
                                st.latencies_us.push(micros(now - p.sent));
                            }
                            if in_window(now) {
                                st.window_batches_acked += 1;
                                st.window_samples_acked += p.points;
                            }
                        }
                    }
                    Ok(Some(Message::Error(e))) => {
                        st.error = Some(format!("{}: aggregator sent {}: {}", conn.host, e.code, e.message));
                        break;
                    }
                    Ok(Some(other)) => {
                        st.error = Some(format!("{}: unexpected {other:?}", conn.host));
                        break;
                    }
                    Ok(None) => {
                        st.error = Some(format!("{}: connection closed with {} batches unacked", conn.host, pending.len()));
                        break;
                    }
                    Err(e) => {
                        st.error = Some(format!("{}: {e}", conn.host));
                        break;
                    }
                }
            }
            tick = ticker.tick(), if sending => {
                if tick >= s.measure_until {
                    sending = false;
                    continue;
                }
                if pending.len() >= s.window {
                    st.skipped += 1;
                    continue;
                }
                let k = (tick - first_tick).as_nanos() / s.interval.as_nanos().max(1);
                let ts_ms = s.base_ts_ms + i64::try_from(k).unwrap_or(0) * interval_ms;
                let batch = plan.batch(conn.next_seq, ts_ms);
                let points = batch.points.len() as u64;
                let sent = Instant::now();
                if in_window(sent) {
                    st.lags_us.push(micros(sent - tick));
                }
                if let Err(e) = conn.writer.write(&Message::Batch(batch)).await {
                    st.error = Some(format!("{}: sending batch: {e}", conn.host));
                    break;
                }
                pending.push_back(Pending { seq: conn.next_seq, sent, points });
                live.unacked.fetch_add(points, Ordering::Relaxed);
                st.sent += 1;
                conn.next_seq += 1;
            }
            _ = tokio::time::sleep_until(drain_deadline), if !sending => {
                st.error = Some(format!(
                    "{}: {} batches still unacked {} s after the end",
                    conn.host,
                    pending.len(),
                    DRAIN_LIMIT.as_secs()
                ));
                break;
            }
        }
    }
    let _ = conn.writer.shutdown().await;
    st
}

/// Counters every agent updates, read while the agents run.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Samples acked since the start.
    pub(crate) acked: AtomicU64,
    /// Samples sent and not yet acked.
    pub(crate) unacked: AtomicU64,
}

/// Acked samples per second every 10 s on stderr, so a long run shows it is alive.
pub(crate) async fn progress(s: Schedule, live: Arc<Live>) {
    let step = Duration::from_secs(10);
    let mut ticker = tokio::time::interval_at(s.t0 + step, step);
    let mut last = 0;
    loop {
        let t = ticker.tick().await;
        let now = live.acked.load(Ordering::Relaxed);
        let phase = if t < s.measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        eprintln!(
            "nines-bench ingest: {:>4} s ({phase}): {} samples acked/s, {} unacked",
            (t - s.t0).as_secs(),
            thousands((now - last) as f64 / step.as_secs_f64()),
            thousands(live.unacked.load(Ordering::Relaxed) as f64)
        );
        last = now;
    }
}
