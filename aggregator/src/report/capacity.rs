//! `nines-aggregator report capacity`: the series whose least-squares forecast reaches a
//! threshold within a horizon, from `GET /api/v1/forecast` over every host, in the same formats
//! as the availability report. Exit status: 0 (met) when every series has a forecast and none
//! reaches it, 1 (missed) when one does, 3 (unknown) when none does but there is no series or
//! one has too little data to say, 2 on error.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{FetchError, api_url, get_body, http_client, read_token};
use super::{EXIT_MET, EXIT_MISSED, EXIT_UNKNOWN, Format, ReportError};
use crate::http::status::page::esc;

/// `report capacity` as given on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL of the aggregator's API.
    pub url: String,
    /// File holding the bearer token.
    pub token_file: PathBuf,
    /// PEM CA certificates to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Metric name.
    pub name: String,
    /// `k=v` label filters.
    pub labels: Vec<String>,
    /// The level that matters.
    pub threshold: f64,
    /// How far back the line is fitted.
    pub window: Duration,
    /// How far ahead it looks.
    pub horizon: Duration,
    /// Output format.
    pub format: Format,
    /// Limit for the request.
    pub timeout: Duration,
}

/// One series that reaches the threshold within the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// Host.
    pub host: String,
    /// Series labels, `k=v` joined by commas.
    pub labels: String,
    /// Newest value.
    pub latest: f64,
    /// Change per day.
    pub slope_per_day: f64,
    /// Fit quality.
    pub r2: f64,
    /// When the line reaches the threshold (RFC 3339).
    pub reached_at: String,
}

/// One series without a forecast: too few points, or too short a span of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unknown {
    /// Host.
    pub host: String,
    /// Series labels, `k=v` joined by commas.
    pub labels: String,
    /// What the aggregator said it lacked.
    pub why: String,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Metric.
    pub name: String,
    /// Threshold.
    pub threshold: f64,
    /// Window fitted (humantime).
    pub window: String,
    /// Horizon (humantime).
    pub horizon: String,
    /// Series looked at.
    pub series: usize,
    /// Those that reach the threshold within the horizon, soonest first.
    pub crossing: Vec<Crossing>,
    /// Those without a forecast.
    pub unknown: Vec<Unknown>,
}

impl Capacity {
    /// Met, missed or unknown, as an exit status.
    pub fn exit_code(&self) -> u8 {
        if !self.crossing.is_empty() {
            EXIT_MISSED
        } else if self.series == 0 || !self.unknown.is_empty() {
            EXIT_UNKNOWN
        } else {
            EXIT_MET
        }
    }
}

fn labels_of(s: &serde_json::Value) -> String {
    s["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn parse(body: &str, o: &Options) -> Result<Capacity, FetchError> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| FetchError::Body(e.to_string()))?;
    let list = v["series"]
        .as_array()
        .ok_or_else(|| FetchError::Body("no series list".into()))?;
    let mut crossing: Vec<Crossing> = list
        .iter()
        .filter(|s| s["within_horizon"] == true)
        .map(|s| Crossing {
            host: s["host"].as_str().unwrap_or("").to_owned(),
            labels: labels_of(s),
            latest: s["latest"].as_f64().unwrap_or(f64::NAN),
            slope_per_day: s["slope_per_hour"].as_f64().unwrap_or(0.0) * 24.0,
            r2: s["fit"]["r2"].as_f64().unwrap_or(0.0),
            reached_at: s["threshold_reached_at"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    crossing.sort_by(|a, b| a.reached_at.cmp(&b.reached_at));
    let unknown = list
        .iter()
        .filter(|s| s["fit"].is_null())
        .map(|s| Unknown {
            host: s["host"].as_str().unwrap_or("").to_owned(),
            labels: labels_of(s),
            why: s["why"].as_str().unwrap_or("no forecast").to_owned(),
        })
        .collect();
    Ok(Capacity {
        name: o.name.clone(),
        threshold: o.threshold,
        window: humantime::format_duration(o.window).to_string(),
        horizon: humantime::format_duration(o.horizon).to_string(),
        series: list.len(),
        crossing,
        unknown,
    })
}

/// Renders the report.
pub fn render(c: &Capacity, format: Format) -> String {
    let title = format!(
        "nines capacity: {} reaching {} within {} (fitted over {})",
        c.name, c.threshold, c.horizon, c.window
    );
    let verdict = match (c.crossing.len(), c.unknown.len(), c.series) {
        (_, _, 0) => "unknown: no such series".to_owned(),
        (0, 0, n) => format!("none of {n} series"),
        (0, u, n) => {
            format!("unknown: none of {n} series reaches it, but {u} have too little data to say")
        }
        (k, 0, n) => format!("{k} of {n} series"),
        (k, u, n) => format!("{k} of {n} series ({u} with too little data to say)"),
    };
    let unknown_lines: Vec<String> = c
        .unknown
        .iter()
        .map(|u| format!("{} {}: {}", u.host, u.labels, u.why))
        .collect();
    let mut s = String::new();
    match format {
        Format::Text => {
            let _ = writeln!(
                s,
                "nines capacity: {} reaching {}\nwithin {}, fitted over {}: {verdict}\n",
                c.name, c.threshold, c.horizon, c.window
            );
            if !c.crossing.is_empty() {
                s.push_str(
                    "host             labels                latest   per day    r2  reached (UTC)\n",
                );
                for x in &c.crossing {
                    let _ = writeln!(
                        s,
                        "{:<16} {:<20} {:>7.3} {:>+9.4} {:>5.2}  {}",
                        x.host.chars().take(16).collect::<String>(),
                        x.labels.chars().take(20).collect::<String>(),
                        x.latest,
                        x.slope_per_day,
                        x.r2,
                        x.reached_at.get(..16).unwrap_or(&x.reached_at)
                    );
                }
            }
            for l in &unknown_lines {
                let _ = writeln!(s, "no forecast: {l}");
            }
        }
        Format::Markdown => {
            let _ = writeln!(s, "# {title}\n\n{verdict}\n");
            if !c.crossing.is_empty() {
                s.push_str("| host | labels | latest | per day | r² | reached |\n|---|---|---:|---:|---:|---|\n");
                for x in &c.crossing {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:.3} | {:+.4} | {:.2} | {} |",
                        x.host, x.labels, x.latest, x.slope_per_day, x.r2, x.reached_at
                    );
                }
            }
            for l in &unknown_lines {
                let _ = writeln!(s, "- no forecast: {l}");
            }
        }
        Format::Csv => {
            s.push_str("host,labels,latest,slope_per_day,r2,reached_at\r\n");
            let q = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
            for x in &c.crossing {
                let _ = write!(
                    s,
                    "{},{},{},{},{},{}\r\n",
                    q(&x.host),
                    q(&x.labels),
                    x.latest,
                    x.slope_per_day,
                    x.r2,
                    x.reached_at
                );
            }
        }
        Format::Json => {
            s = serde_json::to_string_pretty(c).unwrap_or_default();
            s.push('\n');
        }
        Format::Html => {
            let _ = write!(
                s,
                "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
<title>{t}</title><style>body{{font:15px system-ui,sans-serif;margin:1em}}table{{border-collapse:collapse}}td,th{{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}}</style>\
<h1>{t}</h1><p>{}</p>",
                esc(&verdict),
                t = esc(&title)
            );
            if !c.crossing.is_empty() {
                s.push_str("<table><tr><th>host</th><th>labels</th><th>latest</th><th>per day</th><th>r²</th><th>reached</th></tr>");
                for x in &c.crossing {
                    let _ = write!(
                        s,
                        "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:+.4}</td><td>{:.2}</td><td>{}</td></tr>",
                        esc(&x.host),
                        esc(&x.labels),
                        x.latest,
                        x.slope_per_day,
                        x.r2,
                        esc(&x.reached_at)
                    );
                }
                s.push_str("</table>");
            }
            for l in &unknown_lines {
                let _ = write!(s, "<p>no forecast: {}</p>", esc(l));
            }
            s.push_str("</html>\n");
        }
    }
    s
}

/// Fetches and renders; returns [`Capacity::exit_code`].
pub async fn run(o: &Options, out: &mut impl Write) -> Result<u8, ReportError> {
    let token = read_token(&o.token_file)?;
    let mut query = vec![
        ("name", o.name.clone()),
        ("threshold", o.threshold.to_string()),
        ("window", humantime::format_duration(o.window).to_string()),
        ("horizon", humantime::format_duration(o.horizon).to_string()),
    ];
    for l in &o.labels {
        query.push(("label", l.clone()));
    }
    let url = api_url(&o.url, "/api/v1/forecast", &query)?;
    let client = http_client(&o.url, o.ca.as_deref(), o.timeout)?;
    let body = get_body(&client, url, &token).await?;
    let c = parse(&body, o)?;
    out.write_all(render(&c, o.format).as_bytes())
        .and_then(|()| out.flush())
        .map_err(ReportError::Output)?;
    Ok(c.exit_code())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            url: String::new(),
            token_file: PathBuf::new(),
            ca: None,
            name: "filesystem_used_ratio".into(),
            labels: Vec::new(),
            threshold: 0.9,
            window: Duration::from_secs(7 * 86_400),
            horizon: Duration::from_secs(30 * 86_400),
            format: Format::Text,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn only_series_within_the_horizon_are_listed_soonest_first_in_every_format() {
        let body = serde_json::json!({"series": [
            {"host": "db-2", "labels": {"mount": "/"}, "latest": 0.8, "slope_per_hour": 0.001,
             "fit": {"r2": 0.97}, "threshold_reached_at": "2026-12-10T00:00:00.000Z", "within_horizon": true},
            {"host": "db-1", "labels": {"mount": "/var"}, "latest": 0.85, "slope_per_hour": 0.002,
             "fit": {"r2": 0.99}, "threshold_reached_at": "2026-12-01T00:00:00.000Z", "within_horizon": true},
            {"host": "web-1", "labels": {"mount": "/"}, "latest": 0.3, "slope_per_hour": 0.0,
             "fit": {"r2": 0.0}, "threshold_reached_at": null, "within_horizon": false}
        ]})
        .to_string();
        let c = parse(&body, &opts()).unwrap();
        assert_eq!(c.series, 3);
        let hosts: Vec<&str> = c.crossing.iter().map(|x| x.host.as_str()).collect();
        assert_eq!(hosts, ["db-1", "db-2"]);
        assert!((c.crossing[0].slope_per_day - 0.048).abs() < 1e-12);
        let text = render(&c, Format::Text);
        assert!(text.contains("2 of 3 series"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert!(text.contains("db-1             mount=/var"), "{text}");
        let csv = render(&c, Format::Csv);
        assert_eq!(csv.lines().count(), 3);
        assert!(csv.starts_with("host,labels,latest,slope_per_day,r2,reached_at\r\n\"db-1\""));
        let json: Capacity = serde_json::from_str(&render(&c, Format::Json)).unwrap();
        assert_eq!(json, c);
        assert!(render(&c, Format::Html).contains("<td>mount=/var</td>"));
        assert!(render(&c, Format::Markdown).contains("| db-1 | mount=/var |"));
        assert_eq!(c.exit_code(), EXIT_MISSED);
        let none = Capacity {
            crossing: Vec::new(),
            ..c
        };
        assert!(render(&none, Format::Text).contains("none of 3 series"));
        assert_eq!(none.exit_code(), EXIT_MET);
    }

    #[test]
    fn no_series_or_too_little_data_is_unknown_not_green() {
        // The finding: `--name nosuch_metric` said "none of 0 series" and exited 0.
        let c = parse(r#"{"series": []}"#, &opts()).unwrap();
        assert_eq!(c.exit_code(), EXIT_UNKNOWN);
        assert!(render(&c, Format::Text).contains("unknown: no such series"));
        // One series with three minutes of data: no forecast, and no verdict.
        let body = serde_json::json!({"series": [
            {"host": "vm", "labels": {"mount": "/"}, "status": "insufficient_data", "fit": null,
             "latest": 0.4, "n": 25, "why": "25 points over 240 s; a forecast needs at least 30 points over 1800 s (half the window)"},
            {"host": "db-1", "labels": {"mount": "/"}, "status": "ok", "latest": 0.3, "slope_per_hour": 0.0,
             "fit": {"r2": 0.0}, "threshold_reached_at": null, "within_horizon": false}
        ]})
        .to_string();
        let c = parse(&body, &opts()).unwrap();
        assert_eq!(c.exit_code(), EXIT_UNKNOWN);
        let text = render(&c, Format::Text);
        assert!(
            text.contains("unknown: none of 2 series reaches it, but 1 have too little data"),
            "{text}"
        );
        assert!(
            text.contains("no forecast: vm mount=/: 25 points over 240 s"),
            "{text}"
        );
        assert!(render(&c, Format::Html).contains("<p>no forecast: vm mount=/: 25 points"));
    }
}
