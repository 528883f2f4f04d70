//! `nines-bench store` at a tiny scale, on real store files.

use std::process::Command;

#[test]
fn bench_store_reports_every_figure_on_real_store_files() {
    let out = Command::new(super::BIN)
        .args([
            "store",
            "--series",
            "1",
            "--mix-points",
            "500",
            "--hosts",
            "2",
            "--series-per-host",
            "3",
            "--ticks",
            "12",
            "--query-runs",
            "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Six kinds × one series × 500 points, all accounted for on disk.
    assert!(
        text.contains("host-metric mix at 15 s, settled: 3000 samples"),
        "{text}"
    );
    let per_sample = |line: &str| -> f64 {
        let line = text.lines().find(|l| l.contains(line)).unwrap();
        let before = line.split(" bytes/sample").next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(per_sample("table chunks") > 0.0);
    assert!(text.contains("6 active series, 12 points each"), "{text}");
    assert!(
        text.contains("restart: open with 72 points of open heads replayed"),
        "{text}"
    );
    assert!(text.contains("at a 1 h step, 721 buckets"), "{text}");
    // Zero of anything is refused before work starts.
    let out = Command::new(super::BIN)
        .args(["store", "--ticks", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
