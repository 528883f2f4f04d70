//! The docs are tested: every shell block (```sh, bash, shell, console) of README.md and
//! docs/*.md that talks to the HTTP API runs in bash against a real `nines-aggregator demo`,
//! as a user would paste it. A block passes when it exits 0 and every curl in it got a 2xx
//! (curl runs with `--fail-with-body`). The documented placeholders become the demo's:
//! `http://127.0.0.1:7480` its URL, `$TOKEN` and `$NINES_TOKEN` its token, `web-1` its host; the
//! block runs beside the demo's directory, named `nines-demo` as in README, with the binaries on
//! PATH. A block that cannot run there (it needs root, packages, a second machine, or is only
//! an illustration) carries `<!-- doc-test: skip (reason) -->` on the line before it.

use std::path::{Path, PathBuf};
use std::process::Command;

use nines_tests::demo::Demo;

/// One fenced shell block.
#[derive(Debug)]
struct Block {
    /// `file:line` of its opening fence.
    at: String,
    text: String,
    /// The reason of its skip marker, if it has one.
    skip: Option<String>,
}

const SHELLS: [&str; 4] = ["sh", "bash", "shell", "console"];
const MARKER: &str = "<!-- doc-test: skip";

/// What makes a block one that talks to the HTTP API.
fn talks_to_api(text: &str) -> bool {
    [
        "curl ",
        "wget ",
        "$NINES_URL",
        ":7480",
        "/api/v1/",
        "/healthz",
        "/federate",
        "nines-aggregator report",
    ]
    .iter()
    .any(|s| text.contains(s))
}

fn shell_blocks(root: &Path, file: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(fence) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let lang = fence.trim().to_owned();
        i += 1;
        let mut body = Vec::new();
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push(lines[i]);
            i += 1;
        }
        i += 1;
        if !SHELLS.contains(&lang.as_str()) {
            continue;
        }
        let before = lines[..start].iter().rev().find(|l| !l.trim().is_empty());
        let skip = before
            .and_then(|l| l.trim().strip_prefix(MARKER))
            .map(|rest| {
                rest.trim()
                    .trim_end_matches("-->")
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .to_owned()
            });
        if let Some(reason) = &skip {
            assert!(
                !reason.is_empty(),
                "{file}:{}: a skip marker says why: `<!-- doc-test: skip (reason) -->`",
                start + 1
            );
        }
        blocks.push(Block {
            at: format!("{file}:{}", start + 1),
            text: body.join("\n"),
            skip,
        });
    }
    blocks
}

/// curl as the blocks call it: failing on any status but 2xx (and stopping the block), and
/// counting its calls.
const PRELUDE: &str = r#"set -eo pipefail
curl() {
  echo call >> "$DOC_TEST_CURLS"
  command curl --fail-with-body --show-error "$@" || { echo "doc-test: curl $* failed" >&2; exit 1; }
}
"#;

/// Runs one block (at most 60 s); `Err` with what it printed when it failed.
fn run(block: &Block, demo: &Demo, cwd: &Path, bin_dir: &Path) -> Result<String, String> {
    let body = block
        .text
        .replace("http://127.0.0.1:7480", &demo.url)
        .replace("web-1", &demo.host);
    let script = cwd.join("block.sh");
    std::fs::write(&script, format!("{PRELUDE}{body}\n")).unwrap();
    let curls = cwd.join("curls");
    let _ = std::fs::remove_file(&curls);
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["60", "bash"])
        .arg(&script)
        .current_dir(cwd)
        .env("PATH", path)
        .env("NINES_URL", &demo.url)
        .env("NINES_TOKEN", &demo.token)
        .env("TOKEN", &demo.token)
        .env("DOC_TEST_CURLS", &curls)
        .output()
        .expect("run bash");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("exit {}: {printed}", out.status));
    }
    let calls = std::fs::read_to_string(&curls)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    if block.text.contains("curl ") && calls == 0 {
        return Err(format!("its curl never ran: {printed}"));
    }
    Ok(printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_shell_block_in_the_docs_runs_against_the_demo() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    let blocks: Vec<Block> = files.iter().flat_map(|f| shell_blocks(&root, f)).collect();

    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(&dir.path().join("nines-demo")).await;
    let bin_dir = nines_tests::bin("nines-aggregator")
        .parent()
        .unwrap()
        .to_owned();

    let (mut ran, mut skipped, mut other, mut failed) = (Vec::new(), Vec::new(), 0, Vec::new());
    for block in &blocks {
        if let Some(reason) = &block.skip {
            skipped.push(format!("{} ({reason})", block.at));
        } else if !talks_to_api(&block.text) {
            other += 1;
        } else {
            match run(block, &demo, dir.path(), &bin_dir) {
                Ok(_) => ran.push(block.at.clone()),
                Err(e) => failed.push(format!(
                    "{} failed ({e})\n--- the block:\n{}\n---",
                    block.at, block.text
                )),
            }
        }
    }
    eprintln!(
        "doc shell blocks: {} ran against the demo ({}), {} skipped by marker ({}), {} other \
         (not about the API), {} failed",
        ran.len(),
        ran.join(", "),
        skipped.len(),
        skipped.join(", "),
        other,
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "shell blocks that talk to the API must run as written (or carry \
         `<!-- doc-test: skip (reason) -->` right before them):\n{}",
        failed.join("\n")
    );
    assert!(
        !ran.is_empty(),
        "no API block ran: the parser found {} shell blocks",
        blocks.len()
    );
}
