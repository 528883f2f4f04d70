//! The status pages as HTML strings, from plain data: pure functions, so the overview's render
//! time can be measured on its own (`nines-bench status`).

use std::fmt::Write;

use super::health::Reason;

/// Red, amber, green, grey: with an icon and a word as well as a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Light {
    /// Fine. (Declared in order of worse: `max()` is the worst.)
    Green,
    /// No data, or in maintenance.
    Grey,
    /// Warning alerts.
    Amber,
    /// Critical alerts, or down.
    Red,
}

impl Light {
    /// The CSS class that colours it.
    pub fn class(self) -> &'static str {
        match self {
            Self::Green => "g",
            Self::Grey => "n",
            Self::Amber => "a",
            Self::Red => "r",
        }
    }
    fn icon(self) -> &'static str {
        match self {
            Self::Green => "✔",
            Self::Grey => "●",
            Self::Amber => "▲",
            Self::Red => "✖",
        }
    }
}

/// One tile: a service or a host.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Its name.
    pub name: String,
    /// Where it links.
    pub href: String,
    /// Its light.
    pub light: Light,
    /// Why, in a few words ("ok", "2 warnings", "down 12 min", "maintenance").
    pub why: String,
    /// This month's availability and target, for services.
    pub month: Option<(f64, f64)>,
}

/// An active alert, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Rule.
    pub name: String,
    /// Host.
    pub host: String,
    /// Critical or warning.
    pub critical: bool,
    /// Since (ms).
    pub since_ms: i64,
    /// Summary.
    pub summary: String,
    /// Why it notifies nobody, if it does not.
    pub muted: Option<String>,
}

/// An open incident, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    /// Service.
    pub service: String,
    /// Title.
    pub title: String,
    /// Start (ms).
    pub start_ms: i64,
    /// End (ms), `None` while it lasts.
    pub end_ms: Option<i64>,
    /// Root cause, once known.
    pub root_cause: Option<String>,
    /// Weighted minutes lost.
    pub lost_minutes: f64,
}

/// What the overview shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Overview {
    /// Services.
    pub services: Vec<Tile>,
    /// Hosts.
    pub hosts: Vec<Tile>,
    /// Pending and firing alerts.
    pub alerts: Vec<AlertRow>,
    /// Open incidents.
    pub incidents: Vec<IncidentRow>,
    /// When it was drawn (ms).
    pub now_ms: i64,
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a path segment.
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `2026-11-22 10:20 UTC`.
/// A stored time outside the years 1970 to 9999 shows as "never" before 1970 and
/// "after 9999" beyond, instead of failing the page.
pub fn short_time(ms: i64) -> String {
    match crate::util::time::rfc3339_s(ms.max(0)) {
        Some(s) => format!(
            "{} {} UTC",
            s.get(..10).unwrap_or_default(),
            s.get(11..16).unwrap_or_default()
        ),
        None => "after 9999".into(),
    }
}

/// `3 h 12 min`.
pub fn duration(ms: i64) -> String {
    let m = ms.max(0) / 60_000;
    match m {
        0 => "< 1 min".into(),
        1..=59 => format!("{m} min"),
        60..=2879 => format!("{} h {} min", m / 60, m % 60),
        _ => format!("{} d {} h", m / 1440, (m % 1440) / 60),
    }
}

const STYLE: &str = "*{box-sizing:border-box}body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#111;background:#f6f7f9}\
header{background:#111;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:baseline;flex-wrap:wrap}\
header a{color:#fff}main{padding:1em;max-width:1100px;margin:auto}h2{font-size:1.05em;margin:1.2em 0 .5em}\
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.4em}\
.tiles a{display:block;padding:.45em .6em;border-radius:6px;text-decoration:none;color:#111;border:1px solid #0002;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\
.tiles small{display:block;color:#333}.g{background:#bbf7d0}.a{background:#fde68a}.r{background:#fecaca}.n{background:#e5e7eb}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:.35em .5em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
.muted{color:#666}.chart{margin:0 0 1em;background:#fff;padding:.5em;border-radius:6px}.chart svg{width:100%;height:auto}\
figcaption{font-weight:600}.axis{stroke:#999;fill:none}.grid{stroke:#eee}.line{fill:none;stroke-width:1.6}\
.th{stroke-dasharray:5 4;stroke-width:1.2}.warn{stroke:#d97706}.crit{stroke:#dc2626}text{font-size:10px;fill:#555}\
.yl{text-anchor:end}.end{text-anchor:end}.legend{list-style:none;padding:0;margin:.2em 0;display:flex;flex-wrap:wrap;gap:.2em 1em;font-size:.85em}\
.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em;border-radius:2px}nav a{margin-right:.8em}\
.health{list-style:none;padding:0;margin:.4em 0}.health li{padding:.2em .5em;margin:.15em 0;border-radius:4px}\
.bar{display:flex;height:22px;gap:1px}.bar span{flex:1}@media(max-width:600px){main{padding:.5em}td,th{padding:.3em}}";

/// The overview's only script: it refreshes the live part every 10 s. The
/// `Content-Security-Policy` every response carries allows exactly this text, by its hash.
pub const LIVE_SCRIPT: &str = "setInterval(async()=>{try{const r=await fetch('/status/live',{credentials:'same-origin'});\
if(r.ok){document.getElementById('live').innerHTML=await r.text()}}catch(e){}},10000)";

/// The page around a body.
pub fn layout(title: &str, body: &str, live: bool) -> String {
    let script = if live {
        format!("<script>{LIVE_SCRIPT}</script>")
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width,initial-scale=1\"><title>{} · nines</title>\
<style>{STYLE}</style></head><body><header><strong><a href=/status>nines</a></strong><span>{}</span></header>\
<main>{body}</main>{script}</body></html>",
        esc(title),
        esc(title)
    )
}

fn tiles(out: &mut String, tiles: &[Tile]) {
    out.push_str("<div class=tiles>");
    for t in tiles {
        let _ = write!(
            out,
            "<a class={} href=\"{}\">{} {}<small>{}",
            t.light.class(),
            esc(&t.href),
            t.light.icon(),
            esc(&t.name),
            esc(&t.why)
        );
        if let Some((pct, target)) = t.month {
            let _ = write!(out, " · {pct:.3} % / {target} %");
        }
        out.push_str("</small></a>");
    }
    out.push_str("</div>");
}

/// The part of the overview that updates itself.
pub fn overview_live(o: &Overview) -> String {
    let mut s = String::new();
    let worst = o
        .services
        .iter()
        .chain(&o.hosts)
        .map(|t| t.light)
        .max()
        .unwrap_or(Light::Grey);
    let (count_r, count_a) = o.hosts.iter().chain(&o.services).fold((0, 0), |(r, a), t| {
        (
            r + usize::from(t.light == Light::Red),
            a + usize::from(t.light == Light::Amber),
        )
    });
    let _ = write!(
        s,
        "<p class={} data-updated={}><strong>{} {}</strong> · updated {}</p>",
        worst.class(),
        o.now_ms,
        worst.icon(),
        match worst {
            Light::Green => "everything is green".to_owned(),
            Light::Grey => "no data yet".to_owned(),
            _ => format!("{count_r} red, {count_a} amber"),
        },
        esc(&short_time(o.now_ms))
    );
    if !o.services.is_empty() {
        s.push_str("<h2>Services (this month against target)</h2>");
        tiles(&mut s, &o.services);
    }
    let _ = write!(s, "<h2>Hosts ({})</h2>", o.hosts.len());
    tiles(&mut s, &o.hosts);
    s.push_str("<h2>Active alerts</h2>");
    if o.alerts.is_empty() {
        s.push_str("<p class=muted>none</p>");
    } else {
        s.push_str("<table><tr><th>alert</th><th>host</th><th>since</th><th>summary</th></tr>");
        for a in &o.alerts {
            let light = if a.critical { Light::Red } else { Light::Amber };
            let _ = write!(
                s,
                "<tr class={}><td>{} {}</td><td><a href=\"/status/host/{}\">{}</a></td><td>{}</td><td>{}{}</td></tr>",
                light.class(),
                light.icon(),
                esc(&a.name),
                seg(&a.host),
                esc(&a.host),
                esc(&duration(o.now_ms - a.since_ms)),
                esc(&a.summary),
                a.muted
                    .as_ref()
                    .map(|m| format!(" <span class=muted>(muted: {})</span>", esc(m)))
                    .unwrap_or_default()
            );
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Open incidents</h2>");
    incidents(&mut s, &o.incidents, o.now_ms, true);
    s
}

fn incidents(s: &mut String, list: &[IncidentRow], now: i64, open_only: bool) {
    let list: Vec<&IncidentRow> = list
        .iter()
        .filter(|i| !open_only || i.end_ms.is_none())
        .collect();
    if list.is_empty() {
        s.push_str("<p class=muted>none</p>");
        return;
    }
    s.push_str("<table><tr><th>service</th><th>what</th><th>start</th><th>lasted</th><th>minutes lost</th><th>root cause</th></tr>");
    for i in list {
        let _ = write!(
            s,
            "<tr><td><a href=\"/status/service/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}{}</td><td>{:.1}</td><td>{}</td></tr>",
            seg(&i.service),
            esc(&i.service),
            esc(&i.title),
            esc(&short_time(i.start_ms)),
            esc(&duration(i.end_ms.unwrap_or(now) - i.start_ms)),
            if i.end_ms.is_none() { " (ongoing)" } else { "" },
            i.lost_minutes,
            match &i.root_cause {
                Some(r) => esc(r),
                None => "<strong>not found yet</strong>".into(),
            }
        );
    }
    s.push_str("</table>");
}

/// The overview page.
pub fn overview(o: &Overview) -> String {
    layout(
        "Status",
        &format!("<div id=live>{}</div>", overview_live(o)),
        true,
    )
}

/// What a host page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPage {
    /// The host's tile.
    pub tile: Tile,
    /// Agent, OS, kernel, interval.
    pub facts: Vec<(String, String)>,
    /// The range shown: `1h`, `24h`, `7d` or `30d`.
    pub range: String,
    /// Its charts, already drawn.
    pub charts: Vec<String>,
    /// Why it has its light, worst first (health::host_status).
    pub reasons: Vec<Reason>,
    /// Alerts on it.
    pub alerts: Vec<AlertRow>,
    /// Now (ms).
    pub now_ms: i64,
}

/// The reasons behind a light, each in its own colour: what the tile's light is the worst of.
fn health(s: &mut String, reasons: &[Reason]) {
    s.push_str("<ul class=health>");
    if reasons.is_empty() {
        let _ = write!(s, "<li class=g>{} ok</li>", Light::Green.icon());
    }
    for r in reasons {
        let _ = write!(
            s,
            "<li class={}>{} {}</li>",
            r.light.class(),
            r.light.icon(),
            esc(&r.text)
        );
    }
    s.push_str("</ul>");
}

/// The host page.
pub fn host(p: &HostPage) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<section class=now><p class={}><strong>{} {}</strong> · {}</p>",
        p.tile.light.class(),
        p.tile.light.icon(),
        esc(&p.tile.name),
        esc(&p.tile.why)
    );
    health(&mut s, &p.reasons);
    if !p.alerts.is_empty() {
        s.push_str("<h2>Alerts</h2><table>");
        for a in &p.alerts {
            let light = if a.critical { Light::Red } else { Light::Amber };
            let _ = write!(
                s,
                "<tr class={}><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                light.class(),
                light.icon(),
                esc(&a.name),
                esc(&duration(p.now_ms - a.since_ms)),
                esc(&a.summary)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</section><nav>");
    for r in ["1h", "24h", "7d", "30d"] {
        if r == p.range {
            let _ = write!(s, "<strong>{r}</strong> ");
        } else {
            let _ = write!(
                s,
                "<a href=\"/status/host/{}?range={r}\">{r}</a>",
                seg(&p.tile.name)
            );
        }
    }
    s.push_str("</nav><table>");
    for (k, v) in &p.facts {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s.push_str("</table><h2>Charts</h2>");
    for c in &p.charts {
        s.push_str(c);
    }
    layout(&p.tile.name, &s, false)
}

/// What a service page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePage {
    /// The service's tile.
    pub tile: Tile,
    /// Why it has its light, worst first (health::service_status).
    pub reasons: Vec<Reason>,
    /// Target percent.
    pub target: f64,
    /// This month: availability percent (`None`: not monitored), error budget minutes left.
    pub month: (Option<f64>, f64),
    /// Availability per day, oldest first: (day start ms, percent; `None` if nothing was
    /// scheduled).
    pub days: Vec<(i64, Option<f64>)>,
    /// Incidents of the last 30 days, newest first.
    pub incidents: Vec<IncidentRow>,
    /// Now (ms).
    pub now_ms: i64,
}

/// The service page.
pub fn service(p: &ServicePage) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<section class=now><p class={}><strong>{} {}</strong> · {}</p>",
        p.tile.light.class(),
        p.tile.light.icon(),
        esc(&p.tile.name),
        esc(&p.tile.why),
    );
    health(&mut s, &p.reasons);
    let _ = write!(
        s,
        "</section><table><tr><th>this month</th><td>{} (target {} %)</td></tr>\
<tr><th>error budget left</th><td>{} min</td></tr></table>",
        p.month
            .0
            .map_or_else(|| "not monitored".to_owned(), |v| format!("{v:.3} %")),
        p.target,
        if p.month.1 < 0.0 {
            format!("{:.1} (overspent)", p.month.1)
        } else {
            format!("{:.1}", p.month.1)
        }
    );
    s.push_str("<h2>Availability per day, last 30 days</h2><div class=bar>");
    for (day, pct) in &p.days {
        let (class, label) = match pct {
            None => ("n", "nothing scheduled".to_owned()),
            Some(v) if *v >= p.target => ("g", format!("{v:.3} %")),
            Some(v) if *v >= p.target - (100.0 - p.target) => ("a", format!("{v:.3} %")),
            Some(v) => ("r", format!("{v:.3} %")),
        };
        let _ = write!(
            s,
            "<span class={class} title=\"{}: {}\"></span>",
            esc(&short_time(*day)[..10]),
            esc(&label)
        );
    }
    s.push_str("</div><h2>Incidents, last 30 days</h2>");
    incidents(&mut s, &p.incidents, p.now_ms, false);
    layout(&p.tile.name, &s, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_tiles_say_their_state_in_words() {
        let o = Overview {
            hosts: vec![Tile {
                name: "<web>".into(),
                href: "/status/host/%3Cweb%3E".into(),
                light: Light::Red,
                why: "down 5 min".into(),
                month: None,
            }],
            now_ms: 1,
            ..Overview::default()
        };
        let html = overview(&o);
        assert!(html.contains("&lt;web&gt;") && !html.contains("<web>"));
        assert!(html.contains("class=r") && html.contains("✖") && html.contains("down 5 min"));
        assert!(html.contains("1 red, 0 amber"));
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(duration(3 * 3_600_000 + 12 * 60_000), "3 h 12 min");
    }
}
