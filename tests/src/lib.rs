//! Helpers for end-to-end tests: find the real binaries, run them as child processes that die
//! with the test, and poll the HTTP API.

pub mod blackhole;
pub mod check;
pub mod cluster;
pub mod demo;
pub mod load;
pub mod privileged;
pub mod prometheus;
pub mod wire;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// An HTTP client for the API. reqwest is built without a default TLS provider (the workspace
/// uses rustls with ring only), so the ring provider is installed first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Path of a workspace binary built next to this test (`cargo test --workspace` builds them).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .unwrap_or_else(|| PathBuf::from(name));
    assert!(
        path.exists(),
        "{} not found: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// A child process that is killed when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    /// Starts `cmd` in a process group of its own, so that dropping it also kills whatever
    /// it started.
    pub fn spawn(cmd: &mut Command) -> Self {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        Self(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")))
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Calls `f` every 200 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `url` with a bearer token; the JSON body on 200, else `None`.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> Option<serde_json::Value> {
    let resp = client.get(url).bearer_auth(token).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// GET `url` with a bearer token; the body text on 200, else `None`.
pub async fn get_text(client: &reqwest::Client, url: &str, token: &str) -> Option<String> {
    let resp = client.get(url).bearer_auth(token).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}
