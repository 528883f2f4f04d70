//! Debian's Prometheus 2.42 and promtool as peers: a `prometheus` on 127.0.0.1 with a temporary
//! storage directory and the remote-write receiver on, stopped by its PID when dropped.
//! `.ci/run` installs the package; a missing binary fails the test with that instruction.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Proc;
use crate::cluster::log_tail;

/// Path of a binary from Debian's `prometheus` package; panics with the fix if it is missing.
pub fn peer_bin(name: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} not found: these tests need Debian's prometheus 2.42 and promtool \
         (`apt-get install -y prometheus`; .ci/run installs it)"
    );
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log (stderr).
    pub log: PathBuf,
    proc: Option<Proc>,
}

impl Prometheus {
    /// Starts Prometheus on `addr` with its data under `dir`, remote-write receiver on, and
    /// waits until `/-/ready` answers (at most 60 s).
    pub async fn start(dir: &Path, addr: SocketAddr, client: &reqwest::Client) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n")
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let log = dir.join("prometheus.log");
        let err = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let proc = Proc::spawn(
            Command::new(peer_bin("prometheus"))
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--web.enable-remote-write-receiver")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err),
        );
        let me = Self {
            url: format!("http://{addr}"),
            addr,
            log,
            proc: Some(proc),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/-/ready", me.url)).send().await
                && r.status().is_success()
            {
                return me;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s:\n{}",
                log_tail(&me.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET `path` (with query) on its API; the JSON body, whatever the status.
    pub async fn get(&self, client: &reqwest::Client, path: &str) -> (u16, serde_json::Value) {
        let r = client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.terminate(Duration::from_secs(15));
        }
    }
}

/// Runs promtool with `args` (at most 60 s); its output.
pub fn promtool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(peer_bin("promtool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.unwrap_or_default());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // Read the output on another thread, so a large answer cannot fill the pipe and stall it.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap_or_else(|e| panic!("promtool: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("promtool {args:?} did not finish within 60 s");
        }
    }
}
