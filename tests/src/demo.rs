//! The real `nines-aggregator demo` (aggregator and its local agent) on free loopback ports, as
//! README's "Try it on one machine" starts it, for tests that talk to it like a user does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, bin, eventually, get_json};

/// A running demo: its directory, the URL and token from its `demo.env`, and its host.
#[derive(Debug)]
pub struct Demo {
    /// The demo's `--dir`.
    pub dir: PathBuf,
    /// `NINES_URL`.
    pub url: String,
    /// `NINES_TOKEN` (an admin token).
    pub token: String,
    /// The id of the demo agent's host.
    pub host: String,
    /// The demo process (killed when dropped).
    pub proc: Proc,
}

/// `NINES_URL` and `NINES_TOKEN` from the `demo.env` the demo in `dir` wrote, once it has.
pub fn read_env(dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(dir.join("demo.env")).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
    };
    Some((get("NINES_URL=")?, get("NINES_TOKEN=")?))
}

/// The `nines-aggregator demo --dir DIR` command on free loopback ports with the workspace's
/// agent, logging warnings only; a stale `demo.env` in `dir` is removed first, so the one read
/// afterwards is this run's. Its stdout is left to the caller.
pub fn command(dir: &Path) -> Command {
    let _ = std::fs::remove_file(dir.join("demo.env"));
    let mut c = Command::new(bin("nines-aggregator"));
    c.args(["demo", "--dir"])
        .arg(dir)
        .args([
            "--ingest-listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .arg("--agent-bin")
        .arg(bin("nines-agent"))
        .env("NINES_LOG", "warn");
    c
}

impl Demo {
    /// Starts the demo in `dir` and waits (at most 25 s) until its agent's host is up.
    pub async fn start(dir: &Path) -> Self {
        let proc = Proc::spawn(command(dir).stdout(Stdio::null()));
        let (url, token) = eventually(Duration::from_secs(10), || async { read_env(dir) })
            .await
            .unwrap_or_else(|| {
                panic!("the demo wrote no demo.env with NINES_URL and NINES_TOKEN within 10 s")
            });
        let client = crate::http_client();
        let host = eventually(Duration::from_secs(15), || async {
            let hosts = get_json(&client, &format!("{url}/api/v1/hosts"), &token).await?;
            let h = hosts["hosts"].as_array()?.first()?.clone();
            (h["up"] == serde_json::Value::Bool(true))
                .then(|| h["id"].as_str().map(str::to_owned))?
        })
        .await
        .unwrap_or_else(|| panic!("the demo agent's host was not listed and up within 15 s"));
        Self {
            dir: dir.to_owned(),
            url,
            token,
            host,
            proc,
        }
    }
}
