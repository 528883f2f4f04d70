//! The layer rule of docs/design.md ("The map"): a module may import from its own layer and
//! the layers below it, never from one above. The layers of each crate are listed here, top
//! first; every top-level module of the crate must be in the list, so a new module gets a
//! layer when it is added. Test code (files named `tests.rs`, files under a `tests/`
//! directory, and a trailing `#[cfg(test)] mod tests { … }`) may reach anywhere. The same
//! reading holds every source file to 600 lines of code, so a room stays small enough to read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers of the aggregator, the agent and nines-common, top first. `lib` (the crate root:
/// module declarations and re-exports) may be named from every layer.
const CRATES: &[(&str, &[&[&str]])] = &[
    (
        "aggregator",
        &[
            &["main", "cli"],
            &["server"],
            &["config"],
            &["report"],
            &["http"],
            &["ingest", "remote_write"],
            &["alerts"],
            &["availability", "forecast", "promql"],
            &["pki", "store"],
            &["util"],
        ],
    ),
    (
        "agent",
        &[
            &["main", "cli"],
            &["run"],
            &["ship"],
            &["identity"],
            &["error"],
            &["config"],
            &["checks"],
            &["collect", "spool"],
            &["net"],
        ],
    ),
    (
        "common",
        &[
            &["tls", "diag", "cli_docs"],
            &["proto"],
            &["model", "metrics"],
            &["util"],
        ],
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable source directory") {
        let p = e.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file relative to `src/`: `http/status/page.rs` is
/// `[http, status, page]`, `http/mod.rs` is `[http]`, `lib.rs` is `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib") {
        parts.push(stem.to_owned());
    }
    parts
}

fn is_test_file(rel: &Path) -> bool {
    rel.iter().any(|c| c == "tests" || c == "tests.rs")
        || rel.file_name().is_some_and(|f| {
            let f = f.to_string_lossy();
            f.ends_with("_tests.rs") || f == "tests.rs"
        })
}

/// The file without its trailing inline test module: from the `#[cfg(test)]` that opens the
/// attributes of `mod tests {` (others, such as `#[allow(..)]`, may stand between).
fn without_tests(src: &str) -> &str {
    let Some(m) = src.find("\nmod tests {") else {
        return src;
    };
    let mut start = m + 1;
    let mut cfg = None;
    for line in src[..m].lines().rev() {
        let l = line.trim();
        if !l.starts_with("#[") {
            break;
        }
        start -= line.len() + 1;
        if l == "#[cfg(test)]" {
            cfg = Some(start);
        }
    }
    match cfg {
        Some(i) => &src[..i],
        None => src,
    }
}

/// The code of a file without comments and without its trailing inline test module.
fn code(src: &str) -> String {
    let src = without_tests(src);
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the code names that starts at `crate::` or climbs out of its module with
/// `super::`, as the top-level module it lands in (`lib` for the crate root).
fn targets(code: &str, here: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < code.len() {
        let Some(rest) = code.get(i..) else {
            i += 1; // inside a multi-byte character
            continue;
        };
        let starts = (i == 0 || !ident(bytes[i - 1]))
            && (rest.starts_with("crate::") || rest.starts_with("super::"));
        if !starts {
            i += 1;
            continue;
        }
        // Resolve the leading `crate::` / `super::` chain against this file's module path.
        let mut at: Vec<String> = here.to_vec();
        let mut j = i;
        if code[j..].starts_with("crate::") {
            at.clear();
            j += "crate::".len();
        }
        while code[j..].starts_with("super::") {
            at.pop();
            j += "super::".len();
        }
        if at.is_empty() {
            // At the crate root: the next segment (or each of a `{a, b::c}` group) names the
            // top-level module.
            if code[j..].starts_with('{') {
                // The first segment of each item at the group's own depth.
                let (mut depth, mut item_start) = (0usize, true);
                for (k, c) in code[j..].char_indices() {
                    match c {
                        '{' => {
                            depth += 1;
                            item_start = depth == 1;
                        }
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => item_start = true,
                        c if item_start && ident(c as u8) => {
                            let name: String = code[j + k..]
                                .chars()
                                .take_while(|c| ident(*c as u8))
                                .collect();
                            out.insert(name);
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                let name: String = code[j..].chars().take_while(|c| ident(*c as u8)).collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else if at.len() == 1 && at[0] != here[0] {
            out.insert(at[0].clone());
        }
        i = j.max(i + 1);
    }
    out
}

fn layer_of(layers: &[&[&str]], module: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&module))
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let root = workspace();
    let mut violations = Vec::new();
    let mut unplaced = BTreeSet::new();
    let mut checked = 0;
    for (krate, layers) in CRATES {
        let src = root.join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files
            .iter()
            .filter_map(|f| module_path(f.strip_prefix(&src).ok()?).first().cloned())
            .collect();
        for m in &modules {
            if layer_of(layers, m).is_none() {
                unplaced.insert(format!("{krate}/src/{m}"));
            }
        }
        for f in &files {
            let rel = f.strip_prefix(&src).expect("under src");
            let here = module_path(rel);
            let Some(top) = here.first() else {
                continue; // lib.rs declares the modules
            };
            if is_test_file(rel) {
                continue;
            }
            let Some(mine) = layer_of(layers, top) else {
                continue;
            };
            checked += 1;
            let text = std::fs::read_to_string(f).expect("readable source file");
            for target in targets(&code(&text), &here) {
                if target == "lib" || target == *top || !modules.contains(&target) {
                    continue; // the crate root's own items and re-exports
                }
                match layer_of(layers, &target) {
                    Some(theirs) if theirs < mine => violations.push(format!(
                        "{krate}/src/{} imports `{target}`, a layer above `{top}`",
                        rel.display()
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} source files were checked: is the workspace where this test looks?"
    );
    assert!(
        unplaced.is_empty(),
        "these modules have no layer in tests/tests/layers.rs and docs/design.md: {unplaced:?}"
    );
    assert!(
        violations.is_empty(),
        "imports against the layer rule (docs/design.md, \"The map\"):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_crate_and_super_paths() {
    let here: Vec<String> = ["http", "status", "page"].map(String::from).to_vec();
    let found = targets(
        "use crate::{store::{Store, Writer}, alerts};\nlet x = super::super::super::config::X; crate::util::now();",
        &here,
    );
    let want: BTreeSet<String> = ["store", "alerts", "config", "util"]
        .map(String::from)
        .into();
    assert_eq!(found, want);
    // Staying inside its own module is not an import from another layer.
    assert!(targets("use super::page; super::super::dto::X;", &here).is_empty());
    // Comments and the trailing test module are not code.
    assert!(
        targets(
            &code(
                "// crate::cli::x\nfn a() {}\n#[cfg(test)]\n#[allow(clippy::unwrap_used)]\nmod tests {\n use crate::cli;\n}\n"
            ),
            &here
        )
        .is_empty()
    );
}

/// Longest a source file may be (test code aside) before it is split by concern
/// (docs/design.md, "The map").
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_longer_than_600_lines_of_code() {
    let root = workspace();
    let mut long = Vec::new();
    for dir in [
        "aggregator/src",
        "agent/src",
        "common/src",
        "bench/src",
        "tests/src",
    ] {
        let src = root.join(dir);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let rel = f.strip_prefix(&src).expect("under src");
            if is_test_file(rel) {
                continue;
            }
            let text = std::fs::read_to_string(&f).expect("readable source file");
            let lines = without_tests(&text).lines().count();
            if lines > MAX_LINES {
                long.push(format!("{dir}/{}: {lines} lines", rel.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these by concern (at most {MAX_LINES} lines of code each):\n{}",
        long.join("\n")
    );
}
