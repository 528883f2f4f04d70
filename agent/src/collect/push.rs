//! Business metrics pushed by local applications: a Unix socket taking `name{labels} value`
//! lines, the latest value of each series sampled at every tick; bounded in series count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nines_common::SeriesKey;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::exposition::{Bounded, parse_line};
use super::{CollectError, Collector, Out, Tick};

/// Longest line taken; a connection that sends a longer one is closed.
const MAX_LINE: usize = 4096;
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// A connection silent this long is closed.
const IDLE: Duration = Duration::from_secs(60);

fn default_max_series() -> usize {
    1000
}

fn default_stale_after() -> Duration {
    Duration::from_secs(300)
}

/// `[collect.push]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Whether to open the socket. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// The socket's path. Default `push.sock` in the agent's state directory.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Series kept, at most; lines for new series beyond are refused and counted. Default 1000.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// A series not pushed for this long is forgotten (and frees its place). Default 5 min.
    #[serde(default = "default_stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            socket: None,
            max_series: default_max_series(),
            stale_after: default_stale_after(),
        }
    }
}

#[derive(Debug)]
struct Store {
    max_series: usize,
    admitted: Bounded,
    latest: HashMap<SeriesKey, (f64, Instant)>,
    refused_total: u64,
    errors_total: u64,
    refusing: bool,
}

impl Store {
    fn take(&mut self, line: &str) {
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((key, value))) => {
                if self.admitted.admit(&key) {
                    self.latest.insert(key, (value, Instant::now()));
                } else {
                    self.refused_total += 1;
                    if !self.refusing {
                        self.refusing = true;
                        tracing::warn!(
                            "push socket: more than max_series = {} series; {key} refused \
                             (counted in agent_push_refused_series_total; logged again once \
                             stale series have made room)",
                            self.max_series
                        );
                    }
                }
            }
            Err(e) => {
                if self.errors_total == 0 {
                    tracing::warn!(
                        "push socket: bad line {:?}: {e} (first one logged; all counted in \
                         agent_push_errors_total)",
                        line.chars().take(120).collect::<String>()
                    );
                }
                self.errors_total += 1;
            }
        }
    }
}

/// The push socket and its collector. Dropping it stops serving and removes the socket.
#[derive(Debug)]
pub struct Push {
    path: PathBuf,
    stale_after: Duration,
    store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

impl Push {
    /// Binds the socket (mode 0660, replacing a stale socket file) and serves it on the current
    /// tokio runtime.
    pub fn bind(config: &PushConfig, state_dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let path = config
            .socket
            .clone()
            .unwrap_or_else(|| state_dir.join("push.sock"));
        // A socket left by an agent that died: nobody serves it. Anything else is not ours.
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.file_type().is_socket()
        {
            std::fs::remove_file(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let listener = UnixListener::bind(&path).map_err(named)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(named)?;
        let store = Arc::new(Mutex::new(Store {
            max_series: config.max_series,
            admitted: Bounded::new(config.max_series),
            latest: HashMap::new(),
            refused_total: 0,
            errors_total: 0,
            refusing: false,
        }));
        let task = tokio::spawn(serve(listener, store.clone()));
        Ok(Self {
            path,
            stale_after: config.stale_after,
            store,
            task,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Push {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(listener: UnixListener, store: Arc<Mutex<Store>>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let store = store.clone();
                tokio::spawn(async move {
                    connection(stream, &store).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("push socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Takes every complete line of one connection until it closes, goes idle or sends a line
/// longer than [`MAX_LINE`].
async fn connection(mut stream: UnixStream, store: &Mutex<Store>) {
    let mut pending = Vec::with_capacity(1024);
    let mut buf = [0u8; 8192];
    loop {
        let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        if n == 0 {
            // A last line without its newline still counts.
            if !pending.is_empty() {
                let mut store = nines_common::util::sync::lock(store);
                store.take(&String::from_utf8_lossy(&pending));
            }
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        let Some(last) = pending.iter().rposition(|&b| b == b'\n') else {
            if pending.len() > MAX_LINE {
                let mut store = nines_common::util::sync::lock(store);
                store.errors_total += 1;
                return;
            }
            continue;
        };
        {
            let text = String::from_utf8_lossy(&pending[..last]);
            let mut store = nines_common::util::sync::lock(store);
            for line in text.lines() {
                if line.len() > MAX_LINE {
                    store.errors_total += 1;
                } else {
                    store.take(line);
                }
            }
        }
        pending.drain(..=last);
    }
}

impl Collector for Push {
    fn name(&self) -> &'static str {
        "push"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let mut store = nines_common::util::sync::lock(&self.store);
        let Store {
            admitted, latest, ..
        } = &mut *store;
        let stale_after = self.stale_after;
        latest.retain(|key, (_, at)| {
            let fresh = tick.now.saturating_duration_since(*at) < stale_after;
            if !fresh {
                admitted.remove(key);
            }
            fresh
        });
        if store.latest.len() < store.max_series {
            store.refusing = false;
        }
        for (key, (value, _)) in &store.latest {
            let labels: Vec<(&str, &str)> = key
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            out.push(&key.name, &labels, *value);
        }
        out.push("agent_push_series", &[], store.latest.len() as f64);
        out.push(
            "agent_push_refused_series_total",
            &[],
            store.refused_total as f64,
        );
        out.push("agent_push_errors_total", &[], store.errors_total as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
