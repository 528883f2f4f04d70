//! Nagios plugin output: the status text and the performance data after `|`.
//!
//! The plugin API (Nagios Plugin Development Guidelines, "Plugin Output" and "Performance
//! data"): the first line is `TEXT | PERFDATA`; later lines are long text, and everything after
//! the first `|` among them is more performance data. Each entry is
//! `'label'=value[UOM];[warn];[crit];[min];[max]`, entries separated by spaces, a label with
//! spaces in single quotes (a quote inside written `''`).

/// Entries taken from one run at most: a plugin that prints thousands cannot grow the series
/// count without bound.
pub const MAX_ENTRIES: usize = 100;

/// A plugin's stdout, split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginOutput {
    /// The first line's text, without its performance data, trimmed.
    pub summary: String,
    /// Every performance data entry that has a numeric value.
    pub perfdata: Vec<PerfData>,
}

/// One performance data entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfData {
    /// The label, unquoted.
    pub label: String,
    /// The value, in `uom`: not converted (`ms` stays milliseconds).
    pub value: f64,
    /// The unit of measure as the plugin wrote it (`s`, `ms`, `%`, `B`, `KB`, `c`, ...), empty
    /// when none.
    pub uom: String,
    /// Warning range, as written (a Nagios range such as `10`, `10:`, `@5:10`).
    pub warn: Option<String>,
    /// Critical range, as written.
    pub crit: Option<String>,
    /// Minimum possible value.
    pub min: Option<f64>,
    /// Maximum possible value.
    pub max: Option<f64>,
}

/// Splits a plugin's stdout into its summary and performance data.
pub fn parse_output(stdout: &str) -> PluginOutput {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    let (summary, mut perf_text) = match first.split_once('|') {
        Some((text, perf)) => (text.trim(), perf.to_owned()),
        None => (first.trim(), String::new()),
    };
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push(' ');
            perf_text.push_str(line);
        } else if let Some((_, perf)) = line.split_once('|') {
            in_perf = true;
            perf_text.push(' ');
            perf_text.push_str(perf);
        }
    }
    PluginOutput {
        summary: summary.to_owned(),
        perfdata: parse_perfdata(&perf_text),
    }
}

/// Parses performance data entries. Malformed entries and entries without a numeric value
/// (`U`, empty) are skipped; the others are kept, at most [`MAX_ENTRIES`].
pub fn parse_perfdata(text: &str) -> Vec<PerfData> {
    let mut out = Vec::new();
    let mut rest = text;
    while out.len() < MAX_ENTRIES {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (label, after) = match take_label(rest) {
            Some(x) => x,
            None => {
                // Not an entry: skip to the next whitespace-separated token.
                rest = rest.find(char::is_whitespace).map_or("", |i| &rest[i..]);
                continue;
            }
        };
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (fields, tail) = after.split_at(end);
        rest = tail;
        if let Some(entry) = parse_fields(label, fields) {
            out.push(entry);
        }
    }
    out
}

/// The label at the start of `s` and what follows its `=`.
fn take_label(s: &str) -> Option<(String, &str)> {
    if let Some(quoted) = s.strip_prefix('\'') {
        let mut label = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\'' {
                label.push(c);
                continue;
            }
            if quoted[i + 1..].starts_with('\'') {
                label.push('\'');
                chars.next();
                continue;
            }
            let after = quoted[i + 1..].strip_prefix('=')?;
            return (!label.is_empty()).then_some((label, after));
        }
        None
    } else {
        let eq = s.find('=')?;
        let label = &s[..eq];
        if label.is_empty() || label.contains(char::is_whitespace) {
            return None;
        }
        Some((label.to_owned(), &s[eq + 1..]))
    }
}

/// `value[UOM];warn;crit;min;max` with any trailing fields missing or empty.
fn parse_fields(label: String, fields: &str) -> Option<PerfData> {
    let mut parts = fields.split(';');
    let value_uom = parts.next().unwrap_or("");
    let split = value_uom
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(value_uom.len());
    // An exponent marker is only a number's when digits follow; `5e` is not, but `5eB` is not a
    // unit either, so a unit never starts with `e`: plugins use s, ms, us, %, B, KB, MB, GB, TB,
    // c, and none of them begin with it.
    let (number, uom) = value_uom.split_at(split);
    let value = parse_number(number)?;
    let mut opt = || parts.next().map(str::trim).filter(|s| !s.is_empty());
    let warn = opt().map(str::to_owned);
    let crit = opt().map(str::to_owned);
    let min = opt().and_then(parse_number);
    let max = opt().and_then(parse_number);
    Some(PerfData {
        label,
        value,
        uom: uom.to_owned(),
        warn,
        crit,
        min,
        max,
    })
}

/// A decimal number; a comma is read as the decimal point (plugins run in a locale that writes
/// one).
fn parse_number(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let v: f64 = s.replace(',', ".").parse().ok()?;
    v.is_finite().then_some(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(text: &str) -> PerfData {
        let mut all = parse_perfdata(text);
        assert_eq!(all.len(), 1, "{text}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn every_field_of_an_entry() {
        let p = one("time=0.002345s;1.000000;2.000000;0.000000;10.000000");
        assert_eq!(p.label, "time");
        assert_eq!(p.value, 0.002345);
        assert_eq!(p.uom, "s");
        assert_eq!(p.warn.as_deref(), Some("1.000000"));
        assert_eq!(p.crit.as_deref(), Some("2.000000"));
        assert_eq!(p.min, Some(0.0));
        assert_eq!(p.max, Some(10.0));
    }

    #[test]
    fn odd_units_are_kept_as_written_and_values_are_not_converted() {
        for (text, value, uom) in [
            ("rta=0.045ms;200;500;0", 0.045, "ms"),
            ("pl=0%;40;80;0", 0.0, "%"),
            ("used=12B", 12.0, "B"),
            ("used=3.5KB", 3.5, "KB"),
            ("used=700MB;;;0;1024", 700.0, "MB"),
            ("/=20GB;30;35;0;40", 20.0, "GB"),
            ("disk=1.5TB", 1.5, "TB"),
            ("packets=123456c", 123_456.0, "c"),
            ("users=4", 4.0, ""),
            ("load1=-0.5", -0.5, ""),
            ("temp=1e3", 1000.0, ""),
            ("lag=1,5s", 1.5, "s"),
            ("t=12us", 12.0, "us"),
        ] {
            let p = one(text);
            assert_eq!((p.value, p.uom.as_str()), (value, uom), "{text}");
        }
    }

    #[test]
    fn missing_and_empty_fields() {
        let p = one("a=1;;;;");
        assert_eq!((p.warn, p.crit, p.min, p.max), (None, None, None, None));
        let p = one("a=1;;5");
        assert_eq!(p.warn, None);
        assert_eq!(p.crit.as_deref(), Some("5"));
        assert_eq!(p.min, None);
        let p = one("a=2KB;@10:20;~:30");
        assert_eq!(p.warn.as_deref(), Some("@10:20"));
        assert_eq!(p.crit.as_deref(), Some("~:30"));
        // No value, `U` (undetermined), no `=`, no label: skipped, the rest still read.
        let all = parse_perfdata("a= b=U;1;2 junk =3 c=7");
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].label, "c");
    }

    #[test]
    fn quoted_labels_with_spaces_and_quotes() {
        let all = parse_perfdata("'free space /var'=10GB;;;0;40 'it''s'=1 plain=2%");
        let labels: Vec<&str> = all.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["free space /var", "it's", "plain"]);
        assert_eq!(all[0].max, Some(40.0));
        // An unterminated quote ends the data without inventing an entry.
        assert!(parse_perfdata("'broken=1").is_empty());
    }

    #[test]
    fn summary_and_perfdata_across_lines() {
        let out = parse_output(
            "DISK OK - free space: / 3326 MB | /=2643MB;5948;5958;0;5968\n\
             / 15272 MB (77%);\n\
             /boot 68 MB (69%);\n\
             | /boot=68MB;88;93;0;98\n\
             /home=69357MB;253404;253409;0;253414\n",
        );
        assert_eq!(out.summary, "DISK OK - free space: / 3326 MB");
        let labels: Vec<&str> = out.perfdata.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home"]);
        let plain = parse_output("OK - no perfdata here\nmore text\n");
        assert_eq!(plain.summary, "OK - no perfdata here");
        assert!(plain.perfdata.is_empty());
        assert_eq!(parse_output("").summary, "");
    }

    #[test]
    fn entries_are_bounded() {
        let text: String = (0..1000).map(|i| format!("l{i}=1 ")).collect();
        assert_eq!(parse_perfdata(&text).len(), MAX_ENTRIES);
    }
}
