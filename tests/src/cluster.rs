//! Real `nines-aggregator serve` and `nines-agent run` processes with certificates made by the
//! real `nines-aggregator ca` commands, on fixed loopback ports so that they can be killed and
//! started again; and reading their results back over the HTTP API.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Proc, bin, get_json};

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP address on 127.0.0.1. Another process could take it before it is bound again;
/// that is unlikely on a test machine and shows as a start failure in the log.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A CA and server certificate made by `nines-aggregator ca init`, and agent certificates
/// made by `ca issue`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The PKI directory.
    pub dir: PathBuf,
}

impl Pki {
    /// Creates the CA in `dir` with the server names `localhost` and `127.0.0.1`.
    pub fn init(dir: &Path) -> Self {
        run_ok(
            Command::new(bin("nines-aggregator"))
                .args(["ca", "init", "--dir"])
                .arg(dir)
                .args(["--san", "localhost", "--san", "127.0.0.1"]),
        );
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Issues a certificate whose common name is `host`.
    pub fn issue(&self, host: &str) {
        run_ok(
            Command::new(bin("nines-aggregator"))
                .args(["ca", "issue", "--dir"])
                .arg(&self.dir)
                .args(["--host", host]),
        );
    }

    /// A certificate and key (PEM) for `host` signed by this CA, valid from `from_days` to
    /// `to_days` from now: expired, not yet valid, or old enough to be renewed.
    pub fn leaf(&self, host: &str, from_days: i64, to_days: i64) -> (String, String) {
        self.leaf_secs(host, from_days * 86_400, to_days * 86_400)
    }

    /// [`Pki::leaf`] to the second.
    pub fn leaf_secs(&self, host: &str, from_secs: i64, to_secs: i64) -> (String, String) {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let ca_key = rcgen::KeyPair::from_pem(&read(self.dir.join("ca.key")))
            .unwrap_or_else(|e| panic!("CA key: {e}"));
        let issuer = rcgen::Issuer::from_ca_cert_pem(&read(self.ca()), ca_key)
            .unwrap_or_else(|e| panic!("CA: {e}"));
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
        let mut p = rcgen::CertificateParams::new(vec![host.to_owned()])
            .unwrap_or_else(|e| panic!("params: {e}"));
        p.distinguished_name.push(rcgen::DnType::CommonName, host);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::seconds(from_secs);
        p.not_after = now + time::Duration::seconds(to_secs);
        let cert = p
            .signed_by(&key, &issuer)
            .unwrap_or_else(|e| panic!("sign: {e}"));
        (cert.pem(), key.serialize_pem())
    }

    /// Replaces `host`'s issued certificate and key with [`Pki::leaf`]'s.
    pub fn reissue(&self, host: &str, from_days: i64, to_days: i64) -> String {
        self.reissue_secs(host, from_days * 86_400, to_days * 86_400)
    }

    /// [`Pki::reissue`] to the second.
    pub fn reissue_secs(&self, host: &str, from_secs: i64, to_secs: i64) -> String {
        let (cert, key) = self.leaf_secs(host, from_secs, to_secs);
        let (c, k) = self.agent(host);
        std::fs::write(&c, &cert).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
        std::fs::write(&k, key).unwrap_or_else(|e| panic!("{}: {e}", k.display()));
        cert
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The certificate and key of `host`.
    pub fn agent(&self, host: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.join("agents");
        (d.join(format!("{host}.pem")), d.join(format!("{host}.key")))
    }
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    (Stdio::from(open()), Stdio::from(open()))
}

/// The last `n` lines of a log file, to show when a test fails.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A `nines-aggregator serve` on fixed ports, which survive restarts: agents keep dialing the
/// same address.
#[derive(Debug)]
pub struct Aggregator {
    /// Its configuration file.
    pub config: PathBuf,
    /// The mTLS ingest address.
    pub ingest: SocketAddr,
    /// `http://` URL of the API.
    pub url: String,
    /// An admin API token.
    pub token: String,
    /// stdout and stderr of every run, appended.
    pub log: PathBuf,
    /// The store file.
    pub store: PathBuf,
    proc: Option<Proc>,
    /// How many times it was started.
    pub starts: u32,
    /// Extra arguments to `serve` (e.g. `--log-format json`).
    pub serve_args: Vec<String>,
    /// Descriptor limit (soft and hard) to start it under, through `prlimit`; without it, the
    /// test's own.
    pub nofile: Option<u64>,
}

impl Aggregator {
    /// Writes a configuration in `dir` using the CA in `pki`; does not start it.
    pub fn new(dir: &Path, pki: &Pki) -> Self {
        let out = run_ok(
            Command::new(bin("nines-aggregator"))
                .args(["token", "new", "--name", "test", "--role", "admin"]),
        );
        let token = out
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .unwrap_or_else(|| panic!("no token in {out:?}"))
            .trim()
            .to_owned();
        let entry = &out[out
            .find("[[api.tokens]]")
            .unwrap_or_else(|| panic!("no [[api.tokens]] in {out:?}"))..];
        let ingest = free_addr();
        let mut api = free_addr();
        while api == ingest {
            api = free_addr();
        }
        let store = dir.join("nines.redb");
        let config = dir.join("aggregator.toml");
        let p = |f: &str| pki.dir.join(f).display().to_string();
        let text = format!(
            "[ingest]\nlisten = \"{ingest}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [api]\nlisten = \"{api}\"\n\n{entry}\n[store]\npath = \"{}\"\n",
            p("ca.pem"),
            p("server.pem"),
            p("server.key"),
            store.display(),
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        Self {
            config,
            ingest,
            url: format!("http://{api}"),
            token,
            log: dir.join("aggregator.log"),
            store,
            proc: None,
            starts: 0,
            serve_args: Vec::new(),
            nofile: None,
        }
    }

    /// Before `start`: puts the store file at `path` instead of beside the configuration, with
    /// `extra` lines added to `[store]` (e.g. `chunk_points = 65536`).
    pub fn set_store(&mut self, path: &Path, extra: &str) {
        let text = std::fs::read_to_string(&self.config)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
        let at = text
            .find("[store]\n")
            .unwrap_or_else(|| panic!("no [store] in {text:?}"));
        let text = format!(
            "{}[store]\npath = \"{}\"\n{extra}\n",
            &text[..at],
            path.display()
        );
        std::fs::write(&self.config, text)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
        self.store = path.to_owned();
    }

    /// Starts the process (without waiting for it to listen).
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "aggregator already running");
        let (out, err) = log_file(&self.log);
        let mut command = match self.nofile {
            None => Command::new(bin("nines-aggregator")),
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg(bin("nines-aggregator"));
                c
            }
        };
        self.proc = Some(Proc::spawn(
            command
                .args(["serve", "--config"])
                .arg(&self.config)
                .args(&self.serve_args)
                .env("NINES_LOG", "info")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        ));
        self.starts += 1;
    }

    /// Waits until `/healthz` answers 200; panics with the log if it exits or `limit` passes.
    pub async fn wait_ready(&mut self, client: &reqwest::Client, limit: Duration) {
        let deadline = Instant::now() + limit;
        let url = format!("{}/healthz", self.url);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(p) = &mut self.proc
                && let Ok(Some(status)) = p.0.try_wait()
            {
                panic!(
                    "aggregator exited ({status}) instead of starting:\n{}",
                    log_tail(&self.log, 30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "aggregator not ready within {limit:?}:\n{}",
                log_tail(&self.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts it and waits until it serves.
    pub async fn start_ready(&mut self, client: &reqwest::Client) {
        self.start();
        self.wait_ready(client, Duration::from_secs(30)).await;
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// SIGTERM; panics unless it exits successfully within 15 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let status = p.terminate(Duration::from_secs(15));
            assert!(
                status.is_some_and(|s| s.success()),
                "aggregator did not stop cleanly ({status:?}):\n{}",
                log_tail(&self.log, 30)
            );
        }
    }

    /// Before `start`: adds `lines` to the `[ingest]` section (e.g. `max_series_per_host = 50`).
    pub fn set_ingest(&mut self, lines: &str) {
        let text = std::fs::read_to_string(&self.config)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
        let text = text.replacen("[ingest]\n", &format!("[ingest]\n{lines}\n"), 1);
        std::fs::write(&self.config, text)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
    }

    /// Before `start`: appends `text` (whole sections) to the configuration.
    pub fn add_config(&mut self, text: &str) {
        let mut c = std::fs::read_to_string(&self.config)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
        c.push_str(text);
        std::fs::write(&self.config, c)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
    }

    /// Sends SIGHUP (reload) to the running process.
    pub fn hangup(&self) {
        let Some(p) = self.proc.as_ref() else {
            panic!("aggregator not running");
        };
        let ok = Command::new("kill")
            .args(["-HUP", &p.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP failed");
    }

    /// Whether the process is still running (false after it exited on its own).
    pub fn running(&mut self) -> bool {
        self.proc
            .as_mut()
            .is_some_and(|p| matches!(p.0.try_wait(), Ok(None)))
    }

    /// The points of `host`'s series named `name` with label `label` ("k=v") if given, between
    /// `from_ms` and `to_ms` inclusive, one entry per series. Panics if the query fails.
    pub async fn query(
        &self,
        client: &reqwest::Client,
        host: &str,
        name: &str,
        label: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<Series> {
        let mut url = format!(
            "{}/api/v1/query?host={host}&name={name}&from={from_ms}&to={to_ms}&max_points=1000000",
            self.url
        );
        if let Some(l) = label {
            url.push_str(&format!("&label={l}"));
        }
        let doc = get_json(client, &url, &self.token)
            .await
            .unwrap_or_else(|| panic!("query {url} failed"));
        doc["series"]
            .as_array()
            .unwrap_or_else(|| panic!("no series array in {doc}"))
            .iter()
            .map(|s| Series {
                labels: s["labels"].clone(),
                points: s["points"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64()?)))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// `last_seen_ms` of `host` from `/api/v1/hosts/{host}`, if it is known.
    pub async fn last_seen_ms(&self, client: &reqwest::Client, host: &str) -> Option<i64> {
        let doc = get_json(
            client,
            &format!("{}/api/v1/hosts/{host}", self.url),
            &self.token,
        )
        .await?;
        doc["last_seen_ms"].as_i64()
    }
}

/// One series of a query answer.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its labels, as the API gives them.
    pub labels: Value,
    /// `(timestamp ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// A `nines-agent run` at a 1 s interval with its own certificate and state directory.
#[derive(Debug)]
pub struct Agent {
    /// Host id (its certificate's common name).
    pub host: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its state directory; the spool is in `spool/`.
    pub state_dir: PathBuf,
    /// stderr of every run, appended.
    pub log: PathBuf,
    proc: Option<Proc>,
}

impl Agent {
    /// Issues a certificate for `host` and writes a configuration in `dir/<host>/` that ships
    /// to `address`. `aggregator_extra` is appended to the `[aggregator]` section
    /// (e.g. `ack_timeout = "5s"`).
    pub fn new(
        dir: &Path,
        pki: &Pki,
        host: &str,
        address: SocketAddr,
        aggregator_extra: &str,
    ) -> Self {
        pki.issue(host);
        let home = dir.join(host);
        std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{}: {e}", home.display()));
        let (cert, key) = pki.agent(host);
        let state_dir = home.join("state");
        let config = home.join("agent.toml");
        let text = format!(
            "interval = \"1s\"\nstate_dir = \"{}\"\n\n[aggregator]\naddresses = [\"{address}\"]\n\
             server_name = \"localhost\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{aggregator_extra}\n",
            state_dir.display(),
            pki.ca().display(),
            cert.display(),
            key.display(),
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        Self {
            host: host.to_owned(),
            config,
            state_dir,
            log: home.join("agent.log"),
            proc: None,
        }
    }

    /// Starts the process.
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "agent {} already running", self.host);
        let (out, err) = log_file(&self.log);
        self.proc = Some(Proc::spawn(
            Command::new(bin("nines-agent"))
                .args(["run", "--config"])
                .arg(&self.config)
                .env("NINES_LOG", "info")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        ));
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// Spins (blocking the thread) until `now(pid)` is true or `until` passes, then sends
    /// SIGKILL at once and reaps the process. True if `now` was.
    pub fn kill9_when(&mut self, until: Instant, mut now: impl FnMut(u32) -> bool) -> bool {
        let Some(mut p) = self.proc.take() else {
            return false;
        };
        let pid = p.0.id();
        let mut hit = false;
        while Instant::now() < until {
            if now(pid) {
                hit = true;
                break;
            }
        }
        let _ = p.0.kill();
        let _ = p.0.wait();
        hit
    }

    /// SIGTERM; panics unless it exits successfully within 15 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let status = p.terminate(Duration::from_secs(15));
            assert!(
                status.is_some_and(|s| s.success()),
                "agent {} did not stop cleanly ({status:?}):\n{}",
                self.host,
                log_tail(&self.log, 30)
            );
        }
    }

    /// The exit status if the process has exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc
            .as_mut()
            .and_then(|p| p.0.try_wait().ok().flatten())
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.0.id())
    }

    /// The spool directory.
    pub fn spool(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    /// First sequence number of the oldest spool segment (segment files are named by it).
    pub fn oldest_segment(&self) -> Option<u64> {
        std::fs::read_dir(self.spool())
            .ok()?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse()
                    .ok()
            })
            .min()
    }

    /// Waits for the first spool segment and returns its first sequence number: the first seq
    /// this (new) agent ever used.
    pub async fn first_seq(&self, limit: Duration) -> u64 {
        crate::eventually(limit, || async { self.oldest_segment() })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "agent {} made no spool segment within {limit:?}:\n{}",
                    self.host,
                    log_tail(&self.log, 30)
                )
            })
    }

    /// The spool's ack mark: the highest seq the agent saw acknowledged, as last written.
    pub fn acked_mark(&self) -> Option<u64> {
        std::fs::read_to_string(self.spool().join("acked"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Everything the agent logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `limit` for `text` in the log; panics with the log's tail otherwise.
    pub async fn wait_for_log(&self, text: &str, limit: Duration) {
        crate::eventually(limit, || async {
            self.log_text().contains(text).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("no {text:?} in the log:\n{}", log_tail(&self.log, 30)));
    }
}
