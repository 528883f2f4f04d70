//! What one run measured, and how it is printed (text or one JSON object).

use super::*;

/// Everything measured in one run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) pki_seconds: f64,
    pub(crate) connect_seconds: f64,
    pub(crate) batches_sent: u64,
    pub(crate) batches_acked: u64,
    pub(crate) batches_skipped: u64,
    pub(crate) samples_acked_total: u64,
    pub(crate) window_samples_acked: u64,
    pub(crate) window_batches_acked: u64,
    pub(crate) window_seconds: f64,
    /// Samples sent and not yet acked when the window opened and when it closed. Acks in the
    /// window for a backlog left by the warm-up count in samples/s; a backlog that grows means
    /// the aggregator does not keep up with the offered rate.
    pub(crate) backlog_at_start: u64,
    pub(crate) backlog_at_end: u64,
    pub(crate) latency_ms: Percentiles,
    pub(crate) send_lag_ms: Percentiles,
    pub(crate) aggregator_cpu_cores: f64,
    pub(crate) client_cpu_cores: f64,
    pub(crate) aggregator_rss_bytes: u64,
    pub(crate) aggregator_hwm_bytes: u64,
    pub(crate) store_bytes_at_end_of_window: u64,
    pub(crate) store_bytes: u64,
    pub(crate) hosts_stored: u64,
    pub(crate) series_stored: u64,
    pub(crate) aggregator_exit: String,
    pub(crate) agent_failure: Option<(usize, String)>,
}

/// p50, p99 and max of a sample, in milliseconds; `None` without samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Percentiles(pub(crate) Option<(f64, f64, f64)>);

impl Percentiles {
    pub(crate) fn of_micros(mut v: Vec<u32>) -> Self {
        if v.is_empty() {
            return Self(None);
        }
        v.sort_unstable();
        // Nearest rank.
        let rank = |p: f64| {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            f64::from(v[i]) / 1000.0
        };
        Self(Some((rank(0.50), rank(0.99), rank(1.0))))
    }

    pub(crate) fn json(self) -> Value {
        match self.0 {
            Some((p50, p99, max)) => json!({ "p50": p50, "p99": p99, "max": max }),
            None => json!({ "p50": null, "p99": null, "max": null }),
        }
    }

    pub(crate) fn text(self) -> String {
        match self.0 {
            Some((p50, p99, max)) => format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"),
            None => "no batch was acked in the window".into(),
        }
    }
}

impl Report {
    pub(crate) fn samples_per_second(&self) -> f64 {
        self.window_samples_acked as f64 / self.window_seconds
    }

    pub(crate) fn bytes_per_sample(&self) -> Option<f64> {
        (self.samples_acked_total > 0)
            .then(|| self.store_bytes as f64 / self.samples_acked_total as f64)
    }

    pub(crate) fn to_json(&self, args: &Args) -> Value {
        json!({
            "agents": args.agents,
            "series_per_agent": args.series_per_agent,
            "batch_interval_seconds": args.batch_interval.as_secs_f64(),
            "window": args.window,
            "warmup_seconds": args.warmup.as_secs_f64(),
            "duration_seconds": self.window_seconds,
            "offered_samples_per_second":
                (args.agents * args.series_per_agent) as f64 / args.batch_interval.as_secs_f64(),
            "samples_per_second": self.samples_per_second(),
            "batches_per_second": self.window_batches_acked as f64 / self.window_seconds,
            "ack_latency_ms": self.latency_ms.json(),
            "send_lag_ms": self.send_lag_ms.json(),
            "batches_sent": self.batches_sent,
            "batches_acked": self.batches_acked,
            "batches_skipped": self.batches_skipped,
            "samples_acked": self.samples_acked_total,
            "backlog_samples_at_start": self.backlog_at_start,
            "backlog_samples_at_end": self.backlog_at_end,
            "aggregator_cpu_cores": self.aggregator_cpu_cores,
            "client_cpu_cores": self.client_cpu_cores,
            "aggregator_rss_bytes": self.aggregator_rss_bytes,
            "aggregator_peak_rss_bytes": self.aggregator_hwm_bytes,
            "store_bytes": self.store_bytes,
            "store_bytes_at_end_of_window": self.store_bytes_at_end_of_window,
            "bytes_per_sample": self.bytes_per_sample(),
            "hosts_stored": self.hosts_stored,
            "series_stored": self.series_stored,
            "certificates_seconds": self.pki_seconds,
            "connect_seconds": self.connect_seconds,
            "aggregator_exit": self.aggregator_exit,
            "agents_failed": self.agent_failure.as_ref().map_or(0, |f| f.0),
        })
    }

    pub(crate) fn print(&self, args: &Args) {
        let mut out = std::io::stdout().lock();
        if args.json {
            let _ = writeln!(out, "{}", self.to_json(args));
            return;
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let offered =
            (args.agents * args.series_per_agent) as f64 / args.batch_interval.as_secs_f64();
        let lines = [
            format!(
                "nines-bench ingest: {} agents x {} series, one batch per {} each, window {}; \
                 {:.0} s measured after {} warm-up",
                args.agents,
                args.series_per_agent,
                humantime::format_duration(args.batch_interval),
                args.window,
                self.window_seconds,
                humantime::format_duration(args.warmup),
            ),
            format!(
                "  samples acked/s     {:>12}   (offered {}, batches acked/s {:.0})",
                thousands(self.samples_per_second()),
                thousands(offered),
                self.window_batches_acked as f64 / self.window_seconds
            ),
            format!("  ack latency         {}", self.latency_ms.text()),
            format!(
                "  unacked samples     {} when the window opened, {} when it closed",
                thousands(self.backlog_at_start as f64),
                thousands(self.backlog_at_end as f64)
            ),
            format!(
                "  batches             sent {}, acked {}, skipped with a full window {}",
                self.batches_sent, self.batches_acked, self.batches_skipped
            ),
            format!(
                "  aggregator          CPU {:.2} cores, RSS {:.1} MiB at the end of the window, \
                 peak {:.1} MiB, exit: {}",
                self.aggregator_cpu_cores,
                mib(self.aggregator_rss_bytes),
                mib(self.aggregator_hwm_bytes),
                self.aggregator_exit
            ),
            format!(
                "  store               {:.1} MiB for {} samples = {} bytes/sample; {} hosts, {} series",
                mib(self.store_bytes),
                thousands(self.samples_acked_total as f64),
                self.bytes_per_sample()
                    .map_or_else(|| "-".to_owned(), |b| format!("{b:.2}")),
                self.hosts_stored,
                thousands(self.series_stored as f64),
            ),
            format!(
                "  bench client        CPU {:.2} cores, send lag {}",
                self.client_cpu_cores,
                self.send_lag_ms.text()
            ),
            format!(
                "  setup               {} certificates in {:.1} s, {} agents connected in {:.1} s",
                args.agents, self.pki_seconds, args.agents, self.connect_seconds
            ),
        ];
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

pub(crate) fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
