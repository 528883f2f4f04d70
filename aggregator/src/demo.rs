//! `nines-aggregator demo`: an aggregator on 127.0.0.1 with a generated CA and certificates,
//! plus a local `nines-agent` child streaming this machine's samples every second over mTLS.
//! State lives in one directory and is reused on the next run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nines_common::HostId;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::api::token_hash;
use crate::config::Config;
use crate::pki::{self, PkiDir};
use crate::server::Server;

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// State directory.
    pub dir: PathBuf,
    /// Ingest address (port 0 picks a free one).
    pub ingest_listen: SocketAddr,
    /// API address (port 0 picks a free one).
    pub api_listen: SocketAddr,
    /// The agent binary; default: `nines-agent` next to this executable, else on `PATH`.
    pub agent_bin: Option<PathBuf>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// File error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The generated configuration was refused (a bug).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The aggregator could not start.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// The agent could not be started.
    #[error(
        "cannot start {bin}: {source} (build it with `cargo build --release`, or pass --agent-bin)"
    )]
    Agent {
        /// The binary tried.
        bin: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_owned(),
        source,
    }
}

fn demo_host() -> HostId {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    HostId::new(name.trim()).unwrap_or_else(|_| {
        HostId::new("demo-host").unwrap_or_else(|e| unreachable!("constant host id is valid: {e}"))
    })
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The demo's API token, kept in `token_file` (mode 0600) so that every run uses the same one.
fn demo_token(token_file: &Path) -> Result<String, DemoError> {
    if let Ok(text) = std::fs::read_to_string(token_file) {
        let t = text.trim();
        if !t.is_empty() {
            return Ok(t.to_owned());
        }
    }
    let token = random_token();
    write_private(token_file, &format!("{token}\n"))?;
    Ok(token)
}

fn write_private(path: &Path, text: &str) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io(path))
}

fn agent_bin(opt: &Option<PathBuf>) -> PathBuf {
    if let Some(p) = opt {
        return p.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("nines-agent")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nines-agent"))
}

/// Runs the demo until `shutdown` turns true or the agent exits.
pub async fn run(opts: DemoOptions, mut shutdown: watch::Receiver<bool>) -> Result<(), DemoError> {
    let dir = &opts.dir;
    {
        use std::os::unix::fs::DirBuilderExt;
        // It holds the CA key, the store and the agent's spool: nobody else's business.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(io(dir))?;
    }
    let dir = dir.canonicalize().map_err(io(dir))?;
    let pki_dir = PkiDir(dir.join("pki"));
    if !pki_dir.ca_cert().exists() {
        pki::init(
            &pki_dir,
            &["localhost".into(), "127.0.0.1".into()],
            "localhost",
        )?;
        println!(
            "created a CA and server certificate in {}",
            pki_dir.0.display()
        );
    }
    let host = demo_host();
    if !pki_dir.agent_cert(&host).exists() {
        pki::issue(&pki_dir, &host, 30)?;
        println!("issued an agent certificate for host {host}");
    }
    let env_file = dir.join("demo.env");
    let token = demo_token(&dir.join("api-token"))?;

    let agg_config = dir.join("aggregator.toml");
    let text = format!(
        "# Written by `nines-aggregator demo`.\n\
         [ingest]\nlisten = \"{ingest}\"\nca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n\n\
         [api]\nlisten = \"{api}\"\n\n[[api.tokens]]\nname = \"demo\"\nrole = \"admin\"\nsha256 = \"{hash}\"\n\n\
         [store]\npath = \"nines.redb\"\n",
        ingest = opts.ingest_listen,
        api = opts.api_listen,
        hash = token_hash(&token),
    );
    std::fs::write(&agg_config, text).map_err(io(&agg_config))?;
    let config = Config::load(&agg_config)?;
    let server = Server::start(&config).await?;
    let api_url = format!("http://{}", server.api_addr);

    // The agent config is written after binding, so that port 0 works.
    let agent_config = dir.join("agent.toml");
    let text = format!(
        "# Written by `nines-aggregator demo`.\n\
         interval = \"1s\"\nstate_dir = \"agent-state\"\n\n\
         [aggregator]\naddresses = [\"{ingest}\"]\nserver_name = \"localhost\"\n\
         ca = \"pki/ca.pem\"\ncert = \"pki/agents/{host}.pem\"\nkey = \"pki/agents/{host}.key\"\n\n\
         [collect.process]\nwatch = [\"nines-aggregator\", \"nines-agent\", \"sshd\"]\n",
        ingest = server.ingest_addr,
    );
    std::fs::write(&agent_config, text).map_err(io(&agent_config))?;
    let env_text = format!("NINES_URL={api_url}\nNINES_TOKEN={token}\n");
    write_private(&env_file, &env_text)?;

    let bin = agent_bin(&opts.agent_bin);
    let mut agent = Command::new(&bin)
        .arg("run")
        .arg("--config")
        .arg(&agent_config)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DemoError::Agent {
            bin: bin.clone(),
            source,
        })?;

    println!();
    println!(
        "nines demo is running: aggregator + local agent for host {host}, mTLS on {}",
        server.ingest_addr
    );
    println!();
    println!("  API:    {api_url}");
    println!("  token:  {token}");
    println!("  env:    {} (NINES_URL, NINES_TOKEN)", env_file.display());
    println!();
    println!("Try:");
    println!("  curl -s -H 'Authorization: Bearer {token}' {api_url}/api/v1/hosts");
    println!(
        "  curl -s -H 'Authorization: Bearer {token}' '{api_url}/api/v1/query?host={host}&name=cpu_usage_ratio&label=cpu=total'"
    );
    println!();
    println!("Press Ctrl-C to stop.");

    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => {}
        status = agent.wait() => {
            eprintln!("nines-agent exited unexpectedly ({status:?}); stopping the demo");
        }
    }
    stop_agent(&mut agent).await;
    server.stop().await;
    Ok(())
}

async fn stop_agent(agent: &mut Child) {
    if let Ok(Some(_)) = agent.try_wait() {
        return;
    }
    if let Some(pid) = agent
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), agent.wait())
        .await
        .is_err()
    {
        let _ = agent.kill().await;
    }
}
