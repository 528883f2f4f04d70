//! The demo's shop: a process to watch fail, started again a minute after it stops.

#[allow(unused_imports)]
use super::*;

/// `sleep`, from `PATH` or the usual places.
pub(crate) fn sleep_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("sleep"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("sleep"))
}

/// The demo's shop: `sleep` run through a link named `nines-demo-shop` (so that `ps` shows
/// that name), its pid in `shop.pid`, which the agent's pidfile watch reads on every tick.
pub(crate) struct Shop {
    pub(crate) link: PathBuf,
    pub(crate) pidfile: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) restart_at: Option<Instant>,
}

impl Shop {
    pub(crate) fn new(dir: &Path) -> Result<Self, DemoError> {
        let link = dir.join(SHOP);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(sleep_bin(), &link).map_err(io(&link))?;
        Ok(Self {
            link,
            pidfile: dir.join("shop.pid"),
            child: None,
            restart_at: None,
        })
    }

    pub(crate) async fn start(&mut self) -> Result<u32, DemoError> {
        let spawn = |bin: &Path| {
            Command::new(bin)
                .arg("2147483647")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| DemoError::Shop {
                    bin: bin.to_owned(),
                    source,
                })
        };
        let mut child = spawn(&self.link)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(Some(_)) = child.try_wait() {
            // A multi-call `sleep` (busybox) picks its applet by name and refuses the link's:
            // run it as itself; the pidfile watch does not care about the name.
            child = spawn(&sleep_bin())?;
        }
        let pid = child.id().unwrap_or_default();
        // Written whole, then renamed: the agent never reads half a pid.
        let tmp = self.pidfile.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{pid}\n")).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.pidfile).map_err(io(&self.pidfile))?;
        self.child = Some(child);
        self.restart_at = None;
        Ok(pid)
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// Resolves when the running shop exits; never while none runs.
pub(crate) async fn exited(child: &mut Option<Child>) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

/// Resolves at `at`; never without it.
pub(crate) async fn due(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
