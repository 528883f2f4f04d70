//! Running one plugin: a subprocess in its own process group, its stdout read (bounded), and
//! the whole group killed when it outlives its timeout.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of stdout (and of stderr) kept; the rest is read and thrown away so that the plugin
/// never blocks on a full pipe.
const MAX_OUTPUT: usize = 64 * 1024;

/// How a plugin run ended.
#[derive(Debug)]
pub enum Ended {
    /// The plugin exited or was killed by a signal not of ours.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its stdout, lossily decoded, at most [`MAX_OUTPUT`] bytes.
        stdout: String,
        /// Its stderr, likewise.
        stderr: String,
    },
    /// It outlived its timeout; its process group was killed.
    TimedOut,
    /// It could not be started.
    Spawn(std::io::Error),
}

/// Kills a process group with SIGKILL when dropped, unless disarmed: a run that times out, or
/// whose task is aborted when the agent stops, leaves no process behind.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (the group is already gone) is the expected case for a finished plugin.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `argv` (no shell) with stdin closed, in a new process group whose id is the plugin's
/// pid. Past `timeout` the whole group gets SIGKILL: SIGTERM first would let a plugin that
/// ignores it, or a grandchild it started, live on.
pub async fn run(argv: &[String], timeout: Duration) -> Ended {
    let Some((program, args)) = argv.split_first() else {
        return Ended::Spawn(std::io::Error::other("empty command"));
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Spawn(e),
    };
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(timeout, async {
        // Output to its end first: a plugin's descendants may hold the pipes after it exits,
        // and they are then waited for, up to the timeout, as Nagios does.
        let (stdout, stderr) = tokio::join!(read_bounded(stdout), read_bounded(stderr));
        let status = child.wait().await;
        (status, stdout, stderr)
    })
    .await;
    match finished {
        Ok((Ok(status), stdout, stderr)) => {
            // The leader is reaped; its pid may be reused, so the group must not be signalled.
            guard.pgid = None;
            Ended::Exited {
                status,
                stdout,
                stderr,
            }
        }
        Ok((Err(e), _, _)) => Ended::Spawn(e),
        Err(_) => {
            guard.kill();
            // The leader is dead or dying: reap it, bounded in case it is stuck in the kernel.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Ended::TimedOut
        }
    }
}

/// Everything from `pipe`, keeping the first [`MAX_OUTPUT`] bytes.
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}
