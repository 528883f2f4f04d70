//! The aggregator under test: its certificates and configuration, the child process, its CPU
//! and memory from `/proc`, and what it stored, read through its API.

use super::*;

pub(crate) fn host_ids(n: usize) -> Result<Vec<HostId>, BenchIngestError> {
    let width = n.to_string().len();
    (0..n)
        .map(|i| {
            HostId::new(format!("bench-{i:0width$}"))
                .map_err(|e| BenchIngestError::Invalid(e.to_string()))
        })
        .collect()
}

/// A CA, the server certificate and one agent certificate per host (the certificate's common
/// name is the host id, so every simulated agent needs its own).
pub(crate) fn issue_all(dir: &PkiDir, hosts: &[HostId]) -> Result<(), PkiError> {
    pki::init(dir, &["localhost".into(), "127.0.0.1".into()], "localhost")?;
    let per_thread = hosts.len().div_ceil(PKI_THREADS).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = hosts
            .chunks(per_thread)
            .map(|chunk| {
                s.spawn(move || -> Result<(), PkiError> {
                    for host in chunk {
                        pki::issue(dir, host, 2)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(r) => r?,
                Err(_) => return Err(PkiError::Cert("certificate thread panicked".into())),
            }
        }
        Ok(())
    })
}

/// A free port on 127.0.0.1. Another process could take it before the aggregator binds it;
/// the aggregator then fails to start and says so in its log.
pub(crate) fn free_port(path: &Path) -> Result<SocketAddr, BenchIngestError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io(path))
}

pub(crate) fn write_config(
    dir: &Path,
    token: &str,
    agents: usize,
) -> Result<(PathBuf, SocketAddr, SocketAddr), BenchIngestError> {
    let path = dir.join("aggregator.toml");
    let ingest = free_port(&path)?;
    let mut api = free_port(&path)?;
    while api == ingest {
        api = free_port(&path)?;
    }
    let text = format!(
        "# Written by `nines-bench ingest`: every simulated agent connects from 127.0.0.1, so\n\
         # the per-address limit is raised to the number of agents.\n\
         [ingest]\nlisten = \"{ingest}\"\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\
         max_connections = {limit}\nmax_connections_per_address = {limit}\n\n\
         [api]\nlisten = \"{api}\"\n\n[[api.tokens]]\nname = \"bench\"\nrole = \"read\"\nsha256 = \"{hash}\"\n\n\
         [store]\npath = \"nines.redb\"\n",
        hash = nines_aggregator::http::token_hash(token),
        limit = agents.max(1024) + 64,
    );
    std::fs::write(&path, &text).map_err(io(&path))?;
    Config::parse(&text, &path)?;
    Ok((path, ingest, api))
}

/// The aggregator under test, a child process so that its memory and CPU are its own.
#[derive(Debug)]
pub(crate) struct Aggregator {
    pub(crate) child: Child,
    pub(crate) pid: u32,
}

impl Aggregator {
    pub(crate) async fn start(
        args: &Args,
        config: &Path,
        log_path: &Path,
    ) -> Result<Self, BenchIngestError> {
        let bin = match &args.aggregator_bin {
            Some(b) => b.clone(),
            None => {
                crate::sibling("nines-aggregator").map_err(|source| BenchIngestError::Spawn {
                    bin: PathBuf::from("nines-aggregator"),
                    source,
                })?
            }
        };
        let log = std::fs::File::create(log_path).map_err(io(log_path))?;
        let log2 = log.try_clone().map_err(io(log_path))?;
        let child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("NINES_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BenchIngestError::Spawn {
                bin: bin.clone(),
                source,
            })?;
        let pid = child.id().ok_or_else(|| BenchIngestError::NotReady {
            why: "exited at once".into(),
            log: log_path.to_owned(),
        })?;
        Ok(Self { child, pid })
    }

    pub(crate) async fn wait_ready(
        &mut self,
        api: SocketAddr,
        log: &Path,
    ) -> Result<(), BenchIngestError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchIngestError::NotReady {
                    why: format!("it exited ({status})"),
                    log: log.to_owned(),
                });
            }
            if let Ok((200, _)) = http_get(api, "/healthz", "").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchIngestError::NotReady {
                    why: "no answer on /healthz within 30 s".into(),
                    log: log.to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// (VmRSS, VmHWM) in bytes.
    pub(crate) fn memory(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |k| k * 1024)
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }

    /// SIGTERM, then up to 60 s for the last commit; returns how it ended.
    pub(crate) async fn stop(mut self) -> String {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => "clean".into(),
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                "killed after 60 s without exiting".into()
            }
        }
    }
}

/// utime + stime of a process, in seconds.
pub(crate) fn process_cpu_seconds(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// A minimal HTTP/1.1 GET, enough for the aggregator's own API on loopback.
pub(crate) async fn http_get(
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(bad)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

pub(crate) fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Hosts the aggregator knows, and the sum of their series, read through its API.
pub(crate) async fn stored_counts(api: SocketAddr, token: &str, hosts: &[HostId]) -> (u64, u64) {
    let count = |body: &str, key: &str| {
        serde_json::from_str::<Value>(body).ok().and_then(|v| {
            v.get(key)
                .and_then(|a| a.as_array())
                .map(|a| a.len() as u64)
        })
    };
    let known = match http_get(api, "/api/v1/hosts", token).await {
        Ok((200, body)) => count(&body, "hosts").unwrap_or(0),
        _ => 0,
    };
    let mut series = 0;
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for host in hosts {
        let (sem, token, path) = (
            sem.clone(),
            token.to_owned(),
            format!("/api/v1/series?host={host}"),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            match http_get(api, &path, &token).await {
                Ok((200, body)) => count(&body, "series"),
                _ => None,
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        series += r.ok().flatten().unwrap_or(0);
    }
    (known, series)
}

pub(crate) type Reader = FrameReader<ReadHalf<TlsStream<TcpStream>>>;
pub(crate) type Writer = FrameWriter<WriteHalf<TlsStream<TcpStream>>>;
