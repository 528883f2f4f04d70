//! Revoked agent certificates: a text file (`revoked.txt` beside the CA unless `[ingest]
//! revoked` names another) of `host NAME` and `serial HEX` lines, written by `nines-aggregator
//! ca revoke`. The aggregator reads it at start and whenever it changes: a revoked agent is
//! disconnected at once and refused on reconnect, across restarts.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

/// A line of the list that is neither `host NAME` nor `serial HEX`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text:?}: expected `host NAME` or `serial HEX`")]
pub struct BadLine {
    /// Its number, from 1.
    pub line: usize,
    /// Its text, comment removed.
    pub text: String,
}

/// Why the revocation file cannot be used; the list in force stays.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// It exists but cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{}: {source}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line.
        source: BadLine,
    },
}

/// What is revoked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct List {
    /// Host ids.
    pub hosts: HashSet<String>,
    /// Certificate serial numbers, lower-case hex without leading zeros.
    pub serials: HashSet<String>,
}

/// Lower-case hex without leading zeros (`00A1` and `a1` are the same serial).
pub fn normalize_serial(s: &str) -> String {
    let t = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    let t = t.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_owned()
    }
}

impl List {
    /// Parses the file's text; a bad line is an error naming it.
    pub fn parse(text: &str) -> Result<Self, BadLine> {
        let mut l = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.split_once(char::is_whitespace) {
                Some(("host", h)) => {
                    l.hosts.insert(h.trim().to_owned());
                }
                Some(("serial", s)) if s.trim().chars().all(|c| c.is_ascii_hexdigit()) => {
                    l.serials.insert(normalize_serial(s));
                }
                _ => {
                    return Err(BadLine {
                        line: n + 1,
                        text: line.to_owned(),
                    });
                }
            }
        }
        Ok(l)
    }

    /// Whether a certificate for `host` with `serial` is revoked.
    pub fn revoked(&self, host: &str, serial: &str) -> bool {
        self.hosts.contains(host) || self.serials.contains(&normalize_serial(serial))
    }
}

/// The serial number of a DER certificate, as lower-case hex.
pub fn serial_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(normalize_serial(
        &cert.tbs_certificate.raw_serial_as_string().replace(':', ""),
    ))
}

/// Appends `host NAME` or `serial HEX` (with the date) to the file, creating it 0644.
pub fn append(path: &Path, kind: &str, value: &str, now: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{kind} {value} # revoked {now}")?;
    f.sync_all()
}

/// The list in force, and what the file looked like when it was read.
#[derive(Debug)]
pub struct Revocations {
    path: PathBuf,
    state: RwLock<(List, Option<(SystemTime, u64)>)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Revocations {
    /// Reads `path` (a missing file is an empty list; an unreadable or bad one is an error).
    pub fn open(path: &Path) -> Result<Self, RevokeError> {
        let r = Self {
            path: path.to_owned(),
            state: RwLock::new((List::default(), None)),
        };
        r.reload()?;
        Ok(r)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if it changed since the last read. Returns the new list when it did;
    /// a bad file keeps the list in force and is an error.
    pub fn reload(&self) -> Result<Option<List>, RevokeError> {
        let now = stamp(&self.path);
        if now.is_some() && now == crate::util::sync::read(&self.state).1 {
            return Ok(None);
        }
        let list = match std::fs::read_to_string(&self.path) {
            Ok(text) => List::parse(&text).map_err(|source| RevokeError::Line {
                path: self.path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => List::default(),
            Err(source) => {
                return Err(RevokeError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut g = crate::util::sync::write(&self.state);
        let changed = g.0 != list;
        *g = (list.clone(), now);
        Ok(changed.then_some(list))
    }

    /// Whether a certificate is revoked.
    pub fn revoked(&self, host: &str, serial: &str) -> bool {
        crate::util::sync::read(&self.state).0.revoked(host, serial)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hosts_or_serials_and_a_bad_line_is_named() {
        let l = List::parse("# revoked\nhost web-1 # stolen\nserial 00A1b2\n\n").unwrap();
        assert!(l.revoked("web-1", "ff"));
        assert!(l.revoked("web-2", "a1B2"));
        assert!(!l.revoked("web-2", "a1b3"));
        let e = List::parse("host web-1\nserial xyz\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("line 2: \"serial xyz\""), "{e}");
        assert_eq!(normalize_serial("0x000"), "0");
    }
}
