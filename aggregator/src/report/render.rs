//! The text, Markdown, CSV and JSON renderings of a report (HTML is in `html.rs`).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::{Availability, Period, ServiceAvailability, Verdict};

/// Widest line of the text format.
pub const TEXT_WIDTH: usize = 80;
/// Incidents listed in the text format; the rest are counted.
const TEXT_INCIDENTS: usize = 10;

/// Control characters (a newline in a title) would break a table row.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` on one line in at most `width` characters, `...` marking a cut.
pub(crate) fn fit(s: &str, width: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= width {
        return s;
    }
    let mut out: String = s.chars().take(width.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// A percentage cut, not rounded, to `decimals`: 99.89996 must not read as a met 99.9000.
pub(crate) fn percent(v: f64, decimals: usize) -> String {
    let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(4));
    // The small term absorbs binary noise such as 99.9 * 1e4 = 998999.9999999.
    format!("{:.*}", decimals, (v * scale + 1e-6).floor() / scale)
}

/// [`percent`], or `n/a` when there was nothing to judge.
pub(crate) fn percent_or(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| percent(v, decimals))
}

/// A weight such as share × impact to at most three decimals: `0.02`, not
/// `0.020000000000000004`.
pub(crate) fn weight(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// `2026-11-04 02:00` from the API's RFC 3339; the input as is when it does not parse.
pub(crate) fn short_time(rfc3339: &str) -> String {
    rfc3339
        .parse::<Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| one_line(rfc3339))
}

pub(crate) fn verdict(r: &Availability) -> String {
    match r.verdict() {
        Verdict::Met => "every target met".to_owned(),
        Verdict::Missed => format!("TARGET MISSED: {}", r.missed().join(", ")),
        Verdict::Unknown if r.services.is_empty() => "UNKNOWN: no service to judge".to_owned(),
        Verdict::Unknown => format!(
            "UNKNOWN: not monitored in the period: {}",
            r.unknown().join(", ")
        ),
    }
}

/// The "met" cell of a service.
pub(crate) fn met_cell<'a>(s: &ServiceAvailability, yes: &'a str, no: &'a str) -> &'a str {
    match s.verdict() {
        Verdict::Met => yes,
        Verdict::Missed => no,
        Verdict::Unknown => "n/a",
    }
}

/// One table, every line at most [`TEXT_WIDTH`] columns: the body of a cron mail.
pub fn text(r: &Availability, p: &Period) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&fit(&s, TEXT_WIDTH));
        out.push('\n');
    };
    line(format!("nines availability {}", p.label));
    line(format!(
        "{} to {} UTC",
        short_time(&r.from),
        short_time(&r.to)
    ));
    // On a line of its own, so a long period label cannot push it out of view.
    line(verdict(r));
    line(String::new());
    line(format!(
        "{:<22} {:>8} {:>7} {:>9} {:>9} {:>4} {:>5}",
        "service", "avail %", "target", "down min", "budget", "inc", "met"
    ));
    line(format!(
        "{:<22} {:>8} {:>7} {:>9} {:>9} {:>4} {:>5}",
        "-".repeat(22),
        "-".repeat(8),
        "-".repeat(7),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(4),
        "-".repeat(5)
    ));
    for s in &r.services {
        line(format!(
            "{:<22} {:>8} {:>7} {:>9.1} {:>9.1} {:>4} {:>5}",
            fit(&s.service, 22),
            percent_or(s.availability_percent, 4),
            s.target_percent,
            s.downtime_minutes,
            s.error_budget_minutes_left,
            s.incident_count,
            met_cell(s, "yes", "NO")
        ));
    }
    line(String::new());
    line(format!(
        "total: {} % minute-weighted, {} % serial",
        percent_or(r.total.weighted_percent, 4),
        percent_or(r.total.serial_percent, 4)
    ));
    for s in r.services.iter().filter(|s| s.not_monitored_minutes > 0.0) {
        line(format!(
            "{}: {:.0} scheduled min not monitored ({})",
            s.service,
            s.not_monitored_minutes,
            s.monitored_since.as_deref().map_or_else(
                || "not monitored yet".to_owned(),
                |t| format!("monitored since {}", short_time(t))
            )
        ));
    }
    let maint: Vec<String> = r
        .services
        .iter()
        .filter(|s| s.maintenance_minutes > 0.0)
        .map(|s| format!("{} {:.0} min", s.service, s.maintenance_minutes))
        .collect();
    if !maint.is_empty() {
        line(format!("maintenance: {}", maint.join(", ")));
    }
    let incidents = r.incidents_by_loss();
    if !incidents.is_empty() {
        line(String::new());
        line("incidents by minutes lost (* = no root cause yet):".to_owned());
        for i in incidents.iter().take(TEXT_INCIDENTS) {
            line(format!(
                "{:>8.1} {} {} {} {}",
                i.lost_minutes,
                if i.without_root_cause() { '*' } else { ' ' },
                short_time(&i.start),
                fit(&i.service, 14),
                one_line(&i.title)
            ));
        }
        if incidents.len() > TEXT_INCIDENTS {
            line(format!("... and {} more", incidents.len() - TEXT_INCIDENTS));
        }
    }
    out
}

fn md_cell(s: &str) -> String {
    one_line(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn opt_minutes(v: Option<f64>) -> String {
    v.map_or_else(String::new, |m| format!("{m:.1}"))
}

/// Markdown: a summary table and the incident table.
pub fn markdown(r: &Availability, p: &Period) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Availability {}\n", md_cell(&p.label));
    let _ = writeln!(
        o,
        "{} to {} UTC: **{}**.\n",
        short_time(&r.from),
        short_time(&r.to),
        md_cell(&verdict(r))
    );
    o.push_str(
        "| Service | Availability % | Target % | Met | Scheduled min | Downtime min \
         | Budget left min | Maintenance min | Incidents | MTTR min | MTBF min |\n\
         |---|--:|--:|:-:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for s in &r.services {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            md_cell(&s.service),
            percent_or(s.availability_percent, 4),
            s.target_percent,
            met_cell(s, "yes", "**no**"),
            s.scheduled_minutes,
            s.downtime_minutes,
            s.error_budget_minutes_left,
            s.maintenance_minutes,
            s.incident_count,
            opt_minutes(s.mttr_minutes),
            opt_minutes(s.mtbf_minutes),
        );
    }
    let _ = writeln!(
        o,
        "\nTotal: {} % minute-weighted, {} % serial.",
        percent_or(r.total.weighted_percent, 4),
        percent_or(r.total.serial_percent, 4)
    );
    let incidents = r.incidents_by_loss();
    if !incidents.is_empty() {
        o.push_str(
            "\n## Incidents by minutes lost\n\n\
             | Minutes lost | Service | Id | Title | Start | End | Share × impact | Root cause |\n\
             |--:|---|---|---|---|---|--:|---|\n",
        );
        for i in incidents {
            let _ = writeln!(
                o,
                "| {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                i.lost_minutes,
                md_cell(&i.service),
                md_cell(&i.id),
                md_cell(&i.title),
                short_time(&i.start),
                i.end.as_deref().map_or("ongoing".into(), short_time),
                weight(i.share * i.impact),
                match &i.root_cause {
                    _ if i.without_root_cause() => "**none yet**".to_owned(),
                    Some(c) => md_cell(c),
                    None => String::new(),
                }
            );
        }
    }
    o
}

/// The CSV header row.
pub const CSV_HEADER: &[&str] = &[
    "from",
    "to",
    "service",
    "target_percent",
    "availability_percent",
    "met",
    "verdict",
    "not_monitored_minutes",
    "scheduled_minutes",
    "downtime_minutes",
    "error_budget_minutes",
    "error_budget_minutes_left",
    "maintenance_minutes",
    "incident_count",
    "mttr_minutes",
    "mtbf_minutes",
    "incidents_without_root_cause",
];

/// A field quoted as RFC 4180 asks: when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_row(o: &mut String, fields: &[String]) {
    let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    o.push_str(&row.join(","));
    o.push_str("\r\n");
}

fn csv_service(r: &Availability, s: &ServiceAvailability) -> Vec<String> {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |m| m.to_string());
    vec![
        r.from.clone(),
        r.to.clone(),
        s.service.clone(),
        s.target_percent.to_string(),
        opt(s.availability_percent),
        s.met.to_string(),
        verdict_word(s.verdict()).to_owned(),
        s.not_monitored_minutes.to_string(),
        s.scheduled_minutes.to_string(),
        s.downtime_minutes.to_string(),
        s.error_budget_minutes.to_string(),
        s.error_budget_minutes_left.to_string(),
        s.maintenance_minutes.to_string(),
        s.incident_count.to_string(),
        opt(s.mttr_minutes),
        opt(s.mtbf_minutes),
        s.without_root_cause.len().to_string(),
    ]
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Missed => "missed",
        Verdict::Unknown => "unknown",
    }
}

/// CSV (RFC 4180, CRLF line ends): [`CSV_HEADER`], then one row per service, numbers as the
/// API gives them.
pub fn csv(r: &Availability) -> String {
    let mut o = String::new();
    csv_row(
        &mut o,
        &CSV_HEADER
            .iter()
            .map(|h| (*h).to_owned())
            .collect::<Vec<_>>(),
    );
    for s in &r.services {
        csv_row(&mut o, &csv_service(r, s));
    }
    o
}

/// JSON for scripts: `period`, `met`, then the keys of `GET /api/v1/availability` (`from`,
/// `to`, `services`, `total`), each incident without its history.
pub fn json(r: &Availability, p: &Period) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        period: &'a str,
        met: bool,
        #[serde(flatten)]
        report: &'a Availability,
    }
    let out = Out {
        period: &p.label,
        met: r.met(),
        report: r,
    };
    // Serializing plain structs of strings, numbers and bools cannot fail.
    let mut s = serde_json::to_string_pretty(&out).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::sample;
    use super::*;

    /// An RFC 4180 reader, to prove the output parses back.
    fn parse_csv(s: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
                (false, '\n') => panic!("bare LF outside quotes"),
                (false, c) => field.push(c),
            }
            if !quoted && c == '\r' {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
        }
        assert!(field.is_empty() && row.is_empty(), "last line without CRLF");
        rows
    }

    #[test]
    fn text_fits_80_columns_and_says_what_was_missed() {
        let (mut r, p) = sample::report();
        r.services[0].incidents[0].title = "x".repeat(200);
        let t = text(&r, &p);
        for l in t.lines() {
            assert!(l.chars().count() <= TEXT_WIDTH, "{} columns: {l}", l.len());
        }
        assert!(
            t.starts_with(
                "nines availability 2026-W45\n2026-11-02 00:00 to 2026-11-09 00:00 UTC\n\
                 TARGET MISSED: shop\n"
            ),
            "{t}"
        );
        let shop = t.lines().find(|l| l.starts_with("shop ")).unwrap();
        assert_eq!(
            shop.split_whitespace().collect::<Vec<_>>(),
            ["shop", "99.3928", "99.9", "61.2", "-51.1", "2", "NO"]
        );
        let long = t.lines().find(|l| l.starts_with("a-service")).unwrap();
        assert!(long.contains("...") && long.ends_with("yes"), "{long}");
        assert!(
            t.contains("total: 99.5526 % minute-weighted, 99.3928 % serial"),
            "{t}"
        );
        assert!(t.contains("maintenance: shop 120 min"), "{t}");
        let first = t
            .lines()
            .position(|l| l.contains("* 2026-11-04 02:00 shop"))
            .unwrap();
        let second = t
            .lines()
            .position(|l| l.contains("  2026-11-05 11:20 shop eu slow"))
            .unwrap();
        assert!(first < second, "{t}");
        // A title with a newline stays on its line.
        let (r, p) = sample::report();
        let t = text(&r, &p);
        assert!(t.contains("shop checkout down"), "{t}");
        assert!(!t.lines().any(|l| l.starts_with("line two")), "{t}");
    }

    #[test]
    fn a_percentage_is_cut_never_rounded_up_to_the_target() {
        assert_eq!(percent(99.89996, 4), "99.8999");
        assert_eq!(percent(99.9, 4), "99.9000");
        assert_eq!(percent(100.0, 4), "100.0000");
        assert_eq!(percent(0.0, 2), "0.00");
        assert_eq!(weight(0.1 * 0.2), "0.02");
        assert_eq!(weight(1.0), "1");
        assert_eq!(weight(0.0), "0");
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_service_and_parses_back() {
        let (mut r, _) = sample::report();
        r.services[1].service = "eu, \"west\"\nshop".into();
        let out = csv(&r);
        let rows = parse_csv(&out);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], CSV_HEADER);
        for row in &rows {
            assert_eq!(row.len(), CSV_HEADER.len());
        }
        let col = |name: &str| CSV_HEADER.iter().position(|h| *h == name).unwrap();
        assert_eq!(rows[1][col("service")], "shop");
        assert_eq!(rows[1][col("availability_percent")], "99.392857");
        assert_eq!(rows[1][col("met")], "false");
        assert_eq!(rows[1][col("downtime_minutes")], "61.2");
        assert_eq!(rows[1][col("error_budget_minutes_left")], "-51.12");
        assert_eq!(rows[1][col("incidents_without_root_cause")], "1");
        assert_eq!(rows[1][col("from")], "2026-11-02T00:00:00.000Z");
        assert_eq!(rows[2][col("service")], "eu, \"west\"\nshop");
        assert_eq!(rows[2][col("mttr_minutes")], "");
        assert_eq!(rows[2][col("met")], "true");
    }

    #[test]
    fn json_has_stable_keys_and_round_trips() {
        let (r, p) = sample::report();
        let out = json(&r, &p);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let at = |k: &str| out.find(&format!("\n  \"{k}\": ")).unwrap();
        let keys = ["period", "met", "from", "to", "services", "total"];
        assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{out}");
        assert_eq!(v.as_object().unwrap().len(), keys.len());
        assert_eq!(v["period"], "2026-W45");
        assert_eq!(v["met"], false);
        assert_eq!(v["services"][0]["availability_percent"], 99.392857);
        assert_eq!(v["services"][0]["incidents"][0]["lost_minutes"], 60.0);
        assert!(v["services"][0]["incidents"][0].get("history").is_none());
        assert_eq!(v["services"][1]["mttr_minutes"], serde_json::Value::Null);
        let back: crate::report::Availability = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        // Key order is part of the contract: the same report prints the same bytes.
        assert_eq!(out, json(&r, &p));
    }

    #[test]
    fn markdown_escapes_cells_and_flags_missing_root_causes() {
        let (mut r, p) = sample::report();
        r.services[0].incidents[1].title = "a | b".into();
        let m = markdown(&r, &p);
        assert!(m.starts_with("# Availability 2026-W45\n"), "{m}");
        assert!(m.contains("**TARGET MISSED: shop**"), "{m}");
        assert!(
            m.contains("| shop | 99.3928 | 99.9 | **no** | 10080.0 | 61.2 | -51.1 |"),
            "{m}"
        );
        assert!(m.contains("a \\| b"), "{m}");
        assert!(m.contains("| 2026-11-05 12:20 | 0.02 | disk full |"), "{m}");
        let m1 = m.lines().find(|l| l.contains("| m1 |")).unwrap();
        assert!(m1.ends_with("**none yet** |"), "{m1}");
        // Every table row of the incident table has the header's number of cells.
        let table: Vec<&str> = m
            .lines()
            .skip_while(|l| !l.starts_with("| Minutes"))
            .collect();
        for l in &table {
            assert_eq!(l.replace("\\|", "").matches('|').count(), 9, "{l}");
        }
    }
}
