//! The configurations `nines-aggregator demo` writes pass both `check-config --strict`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nines_tests::{Proc, bin};

#[test]
fn the_demo_configurations_pass_check_config_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Proc::spawn(nines_tests::demo::command(dir.path()).stdout(Stdio::null()));
    // demo.env is written after both configurations.
    let started = Instant::now();
    while !dir.path().join("demo.env").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the demo wrote no demo.env in 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (program, file) in [
        ("nines-aggregator", "aggregator.toml"),
        ("nines-agent", "agent.toml"),
    ] {
        let out = Command::new(bin(program))
            .args(["check-config", "--strict"])
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{program}: {stdout}{stderr}");
        assert!(stderr.is_empty(), "{program}: {stderr}");
        assert!(stdout.contains(": ok"), "{program}: {stdout}");
    }
    demo.terminate(Duration::from_secs(10));
}
