//! Tests that need root (they mount a tmpfs) without being run as root: as a normal user the
//! test re-executes its own binary, filtered to that one test, under `unshare --user
//! --map-root-user --mount`, where it is root of a new user and mount namespace (its mounts
//! are private to it and vanish with it). As root it runs as it is.
//!
//! Only std: `aggregator/tests/store_full.rs` includes this file by path.

use std::process::Command;

/// Set in the re-executed child, so it runs the test body instead of delegating again.
const INSIDE: &str = "NINES_TEST_IN_USERNS";

/// The effective user id, from `/proc/self/status` (as the reading process's user namespace
/// sees it: 0 inside the namespace).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The kernel settings that decide whether a normal user may create a user namespace.
fn userns_settings() -> String {
    [
        "user/max_user_namespaces",
        "kernel/unprivileged_userns_clone",
        "kernel/apparmor_restrict_unprivileged_userns",
    ]
    .iter()
    .filter_map(|key| {
        let value = std::fs::read_to_string(format!("/proc/sys/{key}")).ok()?;
        Some(format!("{} = {}", key.replace('/', "."), value.trim()))
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// Call first in a test that needs root; `test` is its name as libtest knows it (the function's
/// path in the test binary). Returns `true` when the caller is (namespace) root and runs the
/// body itself. Returns `false` after the test has run, and passed, in a namespace child: the
/// caller then returns. Panics with the child's output when it failed, and with the reason
/// when no namespace can be made here.
pub fn run_as_root(test: &str) -> bool {
    if euid() == Some(0) || std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{test} needs root, or a user namespace to be root in, and this user cannot make one: \
             `unshare --user --map-root-user --mount true` failed: {}; the kernel settings: {}. \
             Run the test as root, or allow unprivileged user namespaces (user.max_user_namespaces \
             above 0; kernel.unprivileged_userns_clone = 1 where it exists; \
             kernel.apparmor_restrict_unprivileged_userns = 0 on Ubuntu)",
            String::from_utf8_lossy(&out.stderr).trim(),
            userns_settings()
        ),
        Err(e) => panic!(
            "{test} needs root, or `unshare` (util-linux) to run in a user namespace: \
             running unshare failed: {e}"
        ),
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap_or_else(|e| panic!("run the test binary under unshare: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test} in a user + mount namespace ({}) failed:\n{stdout}\n{stderr}",
        out.status
    );
    // A filter that matched nothing passes too: make sure the test itself ran.
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in the namespace child (wrong test name?):\n{stdout}\n{stderr}"
    );
    eprintln!("{test}: ran as root of a user + mount namespace (unshare)\n{stderr}");
    false
}
