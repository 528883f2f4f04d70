//! Diagnostics of configuration files: where in a TOML text a key is (line and column), and a
//! problem reported at a place, as `check-config` prints it (`file:line:column: message`).
//! Pure text: the callers read the files.

use std::fmt;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

/// One step of a path into a TOML document: a key of a table or an index into an array
/// (an array of tables, `[[rules]]`, included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A table's key.
    Name(&'a str),
    /// An array's element, from 0.
    Index(usize),
}

/// Where the value at `path` is in `text`: 1-based line and column (in characters). When the
/// path ends early (a key left out, so its default applies), the place of the deepest part that
/// is there: the table that would hold the key. `None` for text that is not TOML or for a path
/// whose first step is not there.
pub fn locate(text: &str, path: &[Key<'_>]) -> Option<(usize, usize)> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
    let mut best: Option<std::ops::Range<usize>> = None;
    for step in path {
        let next = match (step, value.map(|v| v.get_ref())) {
            (Key::Name(name), None) => table.iter().find(|(k, _)| k.get_ref() == name).map(|x| x.1),
            (Key::Name(name), Some(DeValue::Table(t))) => {
                t.iter().find(|(k, _)| k.get_ref() == name).map(|x| x.1)
            }
            (Key::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else {
            break;
        };
        best = Some(next.span());
        if let DeValue::Table(t) = next.get_ref() {
            table = t;
        }
        value = Some(next);
    }
    best.map(|span| line_column(text, span.start))
}

/// The 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Legal but probably not meant: the configuration works, and may never do what it says.
    Warning,
    /// The configuration is refused.
    Error,
}

/// A problem at a place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file.
    pub file: PathBuf,
    /// Line and column, where known.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what to do.
    pub message: String,
}

impl Diagnostic {
    /// An error at `path` in `text`, the contents of `file`.
    pub fn error(file: impl Into<PathBuf>, text: &str, path: &[Key<'_>], message: String) -> Self {
        Self {
            severity: Severity::Error,
            file: file.into(),
            position: locate(text, path),
            message,
        }
    }

    /// A warning at `path` in `text`, the contents of `file`.
    pub fn warning(
        file: impl Into<PathBuf>,
        text: &str,
        path: &[Key<'_>],
        message: String,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, text, path, message)
        }
    }
}

/// `file:line:column: message`, or `file: message` without a position; no severity.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// `3 errors, 1 warning`.
pub fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = "a = 1\n[ingest]\nlisten = \"x\"\n\n[[rules]]\nname = \"a\"\n\n[[rules]]\nname = \"b\"\n  metric = \"cpu\"\n";

    #[test]
    fn keys_are_found_at_their_values() {
        assert_eq!(locate(TEXT, &[Key::Name("a")]), Some((1, 5)));
        assert_eq!(
            locate(TEXT, &[Key::Name("ingest"), Key::Name("listen")]),
            Some((3, 10))
        );
        let metric = [Key::Name("rules"), Key::Index(1), Key::Name("metric")];
        assert_eq!(locate(TEXT, &metric), Some((10, 12)));
        // A key left out: its table.
        let (line, _) = locate(TEXT, &[Key::Name("ingest"), Key::Name("ca")]).unwrap();
        assert!(line == 2 || line == 3, "{line}");
        assert_eq!(locate(TEXT, &[Key::Name("store")]), None);
        assert_eq!(locate("not toml [", &[Key::Name("a")]), None);
    }

    #[test]
    fn diagnostics_print_file_line_and_column() {
        let d = Diagnostic::warning("a.toml", TEXT, &[Key::Name("a")], "hm".into());
        assert_eq!(d.to_string(), "a.toml:1:5: hm");
        let d = Diagnostic::error("a.toml", TEXT, &[Key::Name("zz")], "no".into());
        assert_eq!(d.to_string(), "a.toml: no");
        assert_eq!(summary(3, 1), "3 errors, 1 warning");
        assert_eq!(summary(0, 0), "0 errors, 0 warnings");
    }
}
