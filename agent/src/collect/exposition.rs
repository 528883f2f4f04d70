//! One line of the Prometheus text exposition format, as the textfile directory and the push
//! socket take it: `name{label="value",...} value [timestamp]`, and a bounded set of series.

use std::collections::HashSet;

use nines_common::SeriesKey;

/// Parses one line. Blank lines and comments (`# HELP`, `# TYPE`, any `#`) are `Ok(None)`.
/// The timestamp, if any, is checked and ignored: samples carry the tick's time. A name or
/// label outside nines' naming rules (no `:` in names) is an error.
pub fn parse_line(line: &str) -> Result<Option<(SeriesKey, f64)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value after the name")?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = parse_labels(body, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value).ok_or_else(|| format!("value {value:?} is not a number"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("timestamp {ts:?} is not an integer"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".to_owned());
    }
    let key = SeriesKey::from_parts(name.to_owned(), labels);
    key.validate().map_err(|e| e.to_string())?;
    Ok(Some((key, value)))
}

/// Reads `label="value",...}` and returns what follows the `}`.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label without '='")?;
        let name = s[..eq].trim();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".to_owned()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("an unterminated label value".to_owned()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not separated by ','".to_owned());
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

/// Series admitted so far, at most a fixed number: a series already in is always taken, a new
/// one only while there is room.
#[derive(Debug)]
pub struct Bounded {
    max: usize,
    seen: HashSet<SeriesKey>,
}

impl Bounded {
    /// An empty set of at most `max` series.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: HashSet::new(),
        }
    }

    /// Whether `key` is (now) in the set.
    pub fn admit(&mut self, key: &SeriesKey) -> bool {
        if self.seen.contains(key) {
            return true;
        }
        if self.seen.len() >= self.max {
            return false;
        }
        self.seen.insert(key.clone());
        true
    }

    /// Series in the set.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Forgets one series.
    pub fn remove(&mut self, key: &SeriesKey) {
        self.seen.remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_exposition_format() {
        let (k, v) = parse_line("orders_total 1027").unwrap().unwrap();
        assert_eq!(
            (k.name.as_str(), k.labels.len(), v),
            ("orders_total", 0, 1027.0)
        );
        let (k, v) =
            parse_line(r#"http_requests_total{method="post",code="200",} 1027 1395066363000"#)
                .unwrap()
                .unwrap();
        assert_eq!(v, 1027.0);
        assert_eq!(k.label("code"), Some("200"));
        assert_eq!(k.label("method"), Some("post"));
        let (k, _) =
            parse_line(r#"m{path="C:\\DIR\\FILE.TXT",error="Cannot find \"x\"\n"} -3.5e-2"#)
                .unwrap()
                .unwrap();
        assert_eq!(k.label("path"), Some(r"C:\DIR\FILE.TXT"));
        assert_eq!(k.label("error"), Some("Cannot find \"x\"\n"));
        assert!(parse_line("m +Inf").unwrap().unwrap().1.is_infinite());
        assert!(parse_line("m NaN").unwrap().unwrap().1.is_nan());
        for skip in ["", "   ", "# HELP m help", "# TYPE m counter", "#comment"] {
            assert_eq!(parse_line(skip).unwrap(), None, "{skip:?}");
        }
        for bad in [
            "m",
            "m{a=\"b\"}",
            "m abc",
            "m{a=b} 1",
            "m{a=\"b} 1",
            "m{a=\"1\" b=\"2\"} 1",
            "m 1 2 3",
            "m 1 soon",
            "ns:m 1",
            "m{a=\"1\",a=\"2\"} 1",
            "1m 1",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_bound_admits_known_series_and_refuses_new_ones() {
        let mut b = Bounded::new(2);
        let k = |n: &str| SeriesKey::new(n, &[]);
        assert!(b.admit(&k("a")));
        assert!(b.admit(&k("b")));
        assert!(!b.admit(&k("c")));
        assert!(b.admit(&k("a")));
        b.remove(&k("a"));
        assert!(b.admit(&k("c")));
        assert_eq!(b.len(), 2);
    }
}
