//! Prometheus text exposition format 0.0.4: `# HELP`, `# TYPE` and sample lines.

use std::fmt::Write;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A float as Prometheus writes it: `NaN`, `+Inf`, `-Inf`, else the shortest exact decimal.
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        if !help.is_empty() {
            let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        }
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line; `labels` in the order given, `ts_ms` appended when given.
    pub fn sample<'a>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
        ts_ms: Option<i64>,
    ) {
        self.out.push_str(name);
        let mut first = true;
        for (k, v) in labels {
            self.out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", escape_value(v));
        }
        if !first {
            self.out.push('}');
        }
        let _ = write!(self.out, " {}", float(value));
        if let Some(ts) = ts_ms {
            let _ = write!(self.out, " {ts}");
        }
        self.out.push('\n');
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values_and_spell_special_floats() {
        let mut e = Exposition::default();
        e.family("x_total", "counter", "Things.\nMore");
        e.sample("x_total", [("a", "q\"b\\c\nd")], f64::INFINITY, Some(5));
        e.sample("x_total", [], 0.5, None);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nMore\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"b\\\\c\\nd\"} +Inf 5\nx_total 0.5\n"
        );
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(-0.25), "-0.25");
        assert_eq!(float(1e21), "1000000000000000000000");
    }
}
