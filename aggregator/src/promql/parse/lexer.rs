//! The parser's tokens: whitespace and `#` comments, punctuation, identifiers and keywords,
//! numbers, quoted strings, and durations; and the error that says where parsing stopped.

use super::Parser;

pub(super) fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

pub(super) fn is_ident(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// Parses a Prometheus duration: one or more `<integer><unit>`, units `y w d h m s ms`,
/// largest first.
pub fn parse_duration(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    let mut last_unit = i64::MAX;
    if b.is_empty() {
        return None;
    }
    while pos < b.len() {
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let n: i64 = s.get(start..pos)?.parse().ok()?;
        let unit = if s[pos..].starts_with("ms") {
            pos += 2;
            1
        } else {
            let u = match b.get(pos)? {
                b'y' => 365 * 86_400_000,
                b'w' => 7 * 86_400_000,
                b'd' => 86_400_000,
                b'h' => 3_600_000,
                b'm' => 60_000,
                b's' => 1000,
                _ => return None,
            };
            pos += 1;
            u
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

impl Parser<'_> {
    pub(super) fn err(&self, what: &str) -> String {
        let near: String = self
            .text
            .get(self.pos..)
            .unwrap_or("")
            .chars()
            .take(12)
            .collect();
        if near.is_empty() {
            format!(
                "parse error at char {}: {what}: unexpected end of input",
                self.pos + 1
            )
        } else {
            format!("parse error at char {}: {what} near {near:?}", self.pos + 1)
        }
    }

    pub(super) fn ws(&mut self) {
        while let Some(c) = self.s.get(self.pos) {
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else if *c == b'#' {
                while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    pub(super) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    pub(super) fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(t.as_bytes()) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, t: &str) -> Result<(), String> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {t:?}")))
        }
    }

    pub(super) fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.pos;
        if !self.s.get(self.pos).copied().is_some_and(is_ident_start) {
            return None;
        }
        while self.s.get(self.pos).copied().is_some_and(is_ident) {
            self.pos += 1;
        }
        Some(self.text[start..self.pos].to_owned())
    }

    /// A keyword (`bool`, `by`) as a whole word.
    pub(super) fn keyword(&mut self, k: &str) -> bool {
        self.ws();
        let save = self.pos;
        match self.ident() {
            Some(w) if w == k => true,
            _ => {
                self.pos = save;
                false
            }
        }
    }

    pub(super) fn peek_word(&mut self) -> Option<String> {
        let save = self.pos;
        let w = self.ident();
        self.pos = save;
        w
    }

    pub(super) fn number(&mut self) -> Option<f64> {
        self.ws();
        let rest = &self.text[self.pos..];
        let lower = rest.to_ascii_lowercase();
        for (word, v) in [("inf", f64::INFINITY), ("nan", f64::NAN)] {
            if lower.starts_with(word)
                && !rest
                    .as_bytes()
                    .get(word.len())
                    .copied()
                    .is_some_and(is_ident)
            {
                self.pos += word.len();
                return Some(v);
            }
        }
        if lower.starts_with("0x") {
            let n = rest[2..].bytes().take_while(u8::is_ascii_hexdigit).count();
            let v = u64::from_str_radix(&rest[2..2 + n], 16).ok()?;
            self.pos += 2 + n;
            return Some(v as f64);
        }
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == 0 || !b[..i].iter().any(u8::is_ascii_digit) {
            return None;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        let v = rest[..i].parse::<f64>().ok()?;
        self.pos += i;
        Some(v)
    }

    pub(super) fn string(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or_else(|| self.err("expected a string"))?;
        if !matches!(q, b'"' | b'\'' | b'`') {
            return Err(self.err("expected a quoted string"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.text[self.pos..].chars().next() else {
                return Err(self.err("unterminated string"));
            };
            self.pos += c.len_utf8();
            if c as u32 == u32::from(q) {
                return Ok(out);
            }
            if c == '\\' && q != b'`' {
                let Some(e) = self.text[self.pos..].chars().next() else {
                    return Err(self.err("unterminated string"));
                };
                self.pos += e.len_utf8();
                let c = match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    // Regex escapes such as \. pass through for the regex engine.
                    other => {
                        out.push('\\');
                        other
                    }
                };
                out.push(c);
            } else {
                out.push(c);
            }
        }
    }
}
