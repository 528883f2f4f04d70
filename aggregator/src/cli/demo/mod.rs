//! `nines-aggregator demo`: an aggregator on 127.0.0.1 with a generated CA and certificates,
//! plus a local `nines-agent` child streaming this machine's samples every second over mTLS,
//! and something to watch fail: a tiny `nines-demo-shop` process the demo runs (and restarts a
//! minute after it stops), a service made of it, an alert rule whose notifications are
//! appended to a file, and a weekly maintenance window. State lives in one directory and is
//! reused on the next run.

mod shop;
#[allow(unused_imports)]
use shop::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

use nines_common::HostId;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::http::token_hash;
use crate::pki::{self, PkiDir};
use crate::server::Server;

/// Options of `nines-aggregator demo`: an aggregator and a local agent on 127.0.0.1 with
/// generated certificates.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// State directory (certificates, configs, database); reused on the next run.
    #[arg(long, default_value = "nines-demo")]
    pub dir: PathBuf,
    /// Ingest (mTLS) address.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub ingest_listen: SocketAddr,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:7480")]
    pub api_listen: SocketAddr,
    /// The nines-agent binary. Default: next to this one, else on PATH.
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
}

/// `nines-aggregator demo`.
pub fn main(opts: DemoOptions) -> std::process::ExitCode {
    super::init_logging(false);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        match run(opts, super::shutdown_on_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => super::fail("demo", e),
        }
    })
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
    /// No randomness for the token.
    #[error(transparent)]
    Random(#[from] crate::util::random::RandomError),
    /// The generated configuration was refused (a bug).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The aggregator could not start.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// The demo's shop process could not be started.
    #[error("cannot start the demo shop ({bin}): {source}")]
    Shop {
        /// The binary tried.
        bin: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
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

/// The demo's API token, kept in `token_file` (mode 0600) so that every run uses the same one.
fn demo_token(token_file: &Path) -> Result<String, DemoError> {
    if let Ok(text) = std::fs::read_to_string(token_file) {
        let t = text.trim();
        if !t.is_empty() {
            return Ok(t.to_owned());
        }
    }
    let token = crate::util::random::api_token()?;
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

/// The watched process's name, as `ps` shows it (15 bytes: the kernel keeps no more).
pub const SHOP: &str = "nines-demo-shop";
/// The service made of it.
pub const SHOP_SERVICE: &str = "demo-shop";
/// The alert rule that fires when it is down.
pub const SHOP_ALERT: &str = "DemoShopDown";
/// How long after it stops the demo starts the shop again.
pub const SHOP_RESTART: Duration = Duration::from_secs(60);

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `POST /api/v1/maintenance` for a weekly window.
#[derive(Debug, Serialize)]
struct WeeklyMaintenance<'a> {
    services: Vec<&'a str>,
    title: String,
    kind: &'a str,
    time_zone: &'a str,
    days: Vec<&'a str>,
    start: &'a str,
    end: &'a str,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Plans the demo's weekly maintenance window through the API, once: an hour at 03:00 UTC on
/// the weekday three days after the first run, so that it does not cover the walk-through.
async fn plan_maintenance(api_url: &str, token: &str) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{api_url}/api/v1/maintenance");
    let list: serde_json::Value = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let existing = list["maintenance"].as_array().and_then(|l| {
        l.iter().find_map(|m| {
            let t = m["title"].as_str()?;
            t.starts_with("weekly demo maintenance")
                .then(|| t.to_owned())
        })
    });
    if let Some(t) = existing {
        return Ok(t);
    }
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset();
    let day = DAYS[(today as usize + 3) % 7];
    let body = WeeklyMaintenance {
        services: vec![SHOP_SERVICE],
        title: format!("weekly demo maintenance ({day} 03:00-04:00 UTC)"),
        kind: "weekly",
        time_zone: "UTC",
        days: vec![day],
        start: "03:00",
        end: "04:00",
    };
    client
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    Ok(body.title)
}

fn alerts_file(host: &HostId, notifications: &Path, runbook: &Path) -> String {
    // The notifier appends each notification (Alertmanager's JSON, one line) to the file.
    let argv = [
        "sh",
        "-c",
        "cat >> \"$1\" && echo >> \"$1\"",
        "sh",
        &notifications.display().to_string(),
    ]
    .map(toml_str)
    .join(", ");
    format!(
        "# Written by `nines-aggregator demo`: faster than the defaults (evaluation_interval 15s,\n\
         # group_wait 30s, group_interval 5m), so the walk-through takes a minute, not ten.\n\
         evaluation_interval = \"2s\"\n\n\
         [grouping]\ngroup_wait = \"2s\"\ngroup_interval = \"10s\"\nrepeat_interval = \"1h\"\n\n\
         [[notifiers]]\nname = \"demo-file\"\ncommand = {{ argv = [{argv}] }}\n\n\
         # IF the shop does not run for 10 s, DO tell demo-file, SO THAT its customers can order again.\n\
         [[rules]]\nname = \"{SHOP_ALERT}\"\nkind = \"process_down\"\nprocess = \"{SHOP}\"\n\
         hosts = {host}\nfor = \"10s\"\nseverity = \"critical\"\nnotify = [\"demo-file\"]\n\
         summary = \"{SHOP} is not running on {{{{host}}}}: customers of the demo shop cannot order\"\n\
         runbook = {runbook}\n",
        host = toml_str(host.as_str()),
        runbook = toml_str(&runbook.display().to_string()),
    )
}

const RUNBOOK: &str = "# Runbook: DemoShopDown\n\n\
The demo's `nines-demo-shop` process is not running, so the service `demo-shop` is down.\n\n\
1. See what stopped it: `ps -p $(cat shop.pid)` in the demo directory.\n\
2. The demo starts it again 60 s after it stopped. A real service would be restarted here\n   \
(`systemctl restart shop`), and the incident annotated with its root cause:\n   \
`PATCH /api/v1/incidents/{id}` with `{\"root_cause\": \"...\"}`.\n";

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
         [store]\npath = \"nines.redb\"\n\n\
         [alerts]\nrules = \"alerts.toml\"\n\n\
         # The demo's shop: available while its process runs on this host.\n\
         [[services]]\nname = \"{SHOP_SERVICE}\"\ntarget_percent = 99.9\nmembers = [{member}]\n\
         processes = [\"{SHOP}\"]\n",
        ingest = opts.ingest_listen,
        api = opts.api_listen,
        hash = token_hash(&token),
        member = toml_str(host.as_str()),
    );
    let notifications = dir.join("notifications.jsonl");
    let runbook = dir.join("RUNBOOK.md");
    std::fs::write(&runbook, RUNBOOK).map_err(io(&runbook))?;
    let rules = dir.join("alerts.toml");
    std::fs::write(&rules, alerts_file(&host, &notifications, &runbook)).map_err(io(&rules))?;
    let mut shop = Shop::new(&dir)?;
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
         [collect.process]\nwatch = [\"nines-aggregator\", \"nines-agent\", \
         {{ name = \"{SHOP}\", pidfile = {pidfile} }}]\n",
        ingest = server.ingest_addr,
        pidfile = toml_str(&shop.pidfile.display().to_string()),
    );
    std::fs::write(&agent_config, text).map_err(io(&agent_config))?;
    let env_text = format!("NINES_URL={api_url}\nNINES_TOKEN={token}\n");
    write_private(&env_file, &env_text)?;

    let shop_pid = shop.start().await?;
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
    let maintenance = match plan_maintenance(&api_url, &token).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("could not plan the demo's maintenance window: {e}");
            "none".to_owned()
        }
    };
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "nines-aggregator".into());
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();

    println!();
    println!(
        "nines demo is running: aggregator + local agent for host {host}, mTLS on {}",
        server.ingest_addr
    );
    println!();
    println!("  API:     {api_url}");
    println!("  status:  {api_url}/status (log in with the token)");
    println!("  token:   {token}");
    println!("  env:     {} (NINES_URL, NINES_TOKEN)", env_file.display());
    println!(
        "  watched: service {SHOP_SERVICE} = process {SHOP} (pid {shop_pid}, in {}) on {host}",
        shop.pidfile.display()
    );
    println!(
        "  alert:   {SHOP_ALERT}, notifications appended to {}",
        notifications.display()
    );
    println!("  maintenance: {maintenance}");
    println!();
    println!("Try:");
    println!("  curl -s -H 'Authorization: Bearer {token}' {api_url}/api/v1/hosts");
    println!(
        "  curl -s -H 'Authorization: Bearer {token}' '{api_url}/api/v1/query?host={host}&name=cpu_usage_ratio&label=cpu=total'"
    );
    println!();
    println!(
        "Watch an outage (faster than production: samples every 1 s, alerts evaluated every 2 s,"
    );
    println!("firing after 10 s and sent after 2 s; the defaults are 15 s, and 30 s to send):");
    println!("  stop the shop:   kill $(cat {})", shop.pidfile.display());
    println!(
        "  within a minute: {SHOP_SERVICE} is red on the status page, an incident is open, {SHOP_ALERT} fires"
    );
    println!(
        "  incidents:       curl -s -H 'Authorization: Bearer {token}' {api_url}/api/v1/incidents"
    );
    println!(
        "  alerts:          curl -s -H 'Authorization: Bearer {token}' {api_url}/api/v1/alerts"
    );
    println!("  notifications:   cat {}", notifications.display());
    println!(
        "  minutes lost:    {exe} report availability --url {api_url} --token-file {} --period {today}..{today}",
        dir.join("api-token").display()
    );
    println!(
        "  recovery:        the demo starts the shop again {} s after it stopped; the alert resolves",
        SHOP_RESTART.as_secs()
    );
    println!("                   and the incident closes.");
    println!();
    println!("Press Ctrl-C to stop.");

    enum Event {
        Stop,
        ShopExited(String),
        ShopDue,
    }
    loop {
        let restart_at = shop.restart_at;
        let event = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => Event::Stop,
            status = agent.wait() => {
                eprintln!("nines-agent exited unexpectedly ({status:?}); stopping the demo");
                Event::Stop
            }
            status = exited(&mut shop.child) => {
                Event::ShopExited(status.map_or_else(|e| e.to_string(), |s| s.to_string()))
            }
            _ = due(restart_at) => Event::ShopDue,
        };
        match event {
            Event::Stop => break,
            Event::ShopExited(_) if *shutdown.borrow() => break,
            Event::ShopExited(how) => {
                shop.child = None;
                shop.restart_at = Some(Instant::now() + SHOP_RESTART);
                println!(
                    "{SHOP} stopped ({how}); the demo starts it again in {} s",
                    SHOP_RESTART.as_secs()
                );
            }
            Event::ShopDue => {
                let pid = shop.start().await?;
                println!("{SHOP} started again (pid {pid})");
            }
        }
    }
    shop.stop().await;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_file_parses_and_its_notifier_appends_one_line_per_notification() {
        let dir = tempfile::tempdir().unwrap();
        // A path a shell or TOML could trip on.
        let sub = dir.path().join("a \"b\" $c");
        std::fs::create_dir(&sub).unwrap();
        let file = sub.join("notifications.jsonl");
        let host = HostId::new("web-1").unwrap();
        let text = alerts_file(&host, &file, &sub.join("RUNBOOK.md"));
        let rules = crate::alerts::Rules::parse(&text, &sub.join("alerts.toml"))
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let rule = rules.rules.iter().find(|r| r.name == SHOP_ALERT).unwrap();
        assert_eq!(rule.notify, vec!["demo-file".to_owned()]);
        assert!(rule.summary.contains(SHOP));
        let argv = &rules.notifiers["demo-file"].command.as_ref().unwrap().argv;
        for body in ["{\"status\":\"firing\"}", "{\"status\":\"resolved\"}"] {
            use std::io::Write;
            let mut child = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        }
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "{\"status\":\"firing\"}\n{\"status\":\"resolved\"}\n"
        );
    }
}
