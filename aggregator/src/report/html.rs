//! The HTML rendering: one self-contained page (inline CSS, no scripts, nothing fetched) with a
//! bar per service and the incident table, to mail or archive for auditors.

use std::fmt::Write as _;

use super::render::{met_cell, one_line, percent, percent_or, short_time, verdict, weight};
use super::{Availability, Period, Verdict};

/// Text escaped for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
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

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em}
.verdict{font-weight:bold;padding:.3em .6em;border-radius:4px;display:inline-block}
.met{background:#e3f4e3;color:#1d5e1d}.missed{background:#fbe3e3;color:#8a1c1c}.unknown{background:#eee;color:#444}
.svc{margin:1em 0}.svc .name{font-weight:bold}.svc .nums{color:#555;font-size:.9em}
.bar{position:relative;height:1.2em;background:#eee;border-radius:3px;overflow:hidden;margin:.3em 0}
.fill{position:absolute;left:0;top:0;bottom:0}.fill.ok{background:#4a9e4a}.fill.bad{background:#c94040}
.target{position:absolute;top:0;bottom:0;width:2px;background:#222}
.scale{display:flex;justify-content:space-between;color:#777;font-size:.8em}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.flag td{background:#fff4d6}.flag-label{color:#8a5a00;font-weight:bold}
";

/// Where a bar starts: the target sits in the middle of the bar, so a miss and a comfortable
/// margin are both visible at 99.9 % and beyond (a bar from 0 would always look full).
fn scale_floor(target: f64) -> f64 {
    let room = (100.0 - target).max(0.05);
    (100.0 - 2.0 * room).max(0.0)
}

fn position(v: f64, floor: f64) -> f64 {
    ((v - floor) / (100.0 - floor) * 100.0).clamp(0.0, 100.0)
}

/// The page.
pub fn page(r: &Availability, p: &Period) -> String {
    let mut o = String::new();
    let title = format!("Availability {}", one_line(&p.label));
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p>{from} to {to} UTC</p>\n",
        t = esc(&title),
        from = esc(&short_time(&r.from)),
        to = esc(&short_time(&r.to)),
    );
    match r.verdict() {
        Verdict::Met => o.push_str("<p class=\"verdict met\">Every target met</p>\n"),
        Verdict::Missed => {
            let _ = writeln!(
                o,
                "<p class=\"verdict missed\">Target missed: {}</p>",
                esc(&r.missed().join(", "))
            );
        }
        Verdict::Unknown => {
            let _ = writeln!(o, "<p class=\"verdict unknown\">{}</p>", esc(&verdict(r)));
        }
    }
    let _ = writeln!(
        o,
        "<p>Total: {} % minute-weighted, {} % serial.</p>\n<h2>Services</h2>",
        percent_or(r.total.weighted_percent, 4),
        percent_or(r.total.serial_percent, 4)
    );
    for s in &r.services {
        let floor = scale_floor(s.target_percent);
        let _ = writeln!(
            o,
            "<div class=\"svc\">\n<div><span class=\"name\">{name}</span> {avail} % \
             (target {target} %, {met})</div>\n\
             <div class=\"bar\" role=\"img\" aria-label=\"{avail} % against a target of {target} %\">\
             <div class=\"fill {cls}\" style=\"width:{fill:.2}%\"></div>\
             <div class=\"target\" style=\"left:{mark:.2}%\" title=\"target {target} %\"></div></div>\n\
             <div class=\"scale\"><span>{floor} %</span><span>100 %</span></div>\n\
             <div class=\"nums\">{sched:.0} scheduled min, {down:.1} min down, \
             budget {budget:.1} min, {left:.1} min left, {inc} incidents, \
             {maint:.0} min maintenance</div>\n</div>",
            name = esc(&s.service),
            avail = percent_or(s.availability_percent, 4),
            target = s.target_percent,
            met = met_cell(s, "met", "missed"),
            cls = met_cell(s, "ok", "bad"),
            fill = s.availability_percent.map_or(0.0, |a| position(a, floor)),
            mark = position(s.target_percent, floor),
            floor = percent(floor, 2),
            sched = s.scheduled_minutes,
            down = s.downtime_minutes,
            budget = s.error_budget_minutes,
            left = s.error_budget_minutes_left,
            inc = s.incident_count,
            maint = s.maintenance_minutes,
        );
    }
    let incidents = r.incidents_by_loss();
    o.push_str("<h2>Incidents by minutes lost</h2>\n");
    if incidents.is_empty() {
        o.push_str("<p>No incidents in this period.</p>\n");
    } else {
        let flagged = incidents.iter().filter(|i| i.without_root_cause()).count();
        if flagged > 0 {
            let _ = writeln!(
                o,
                "<p><span class=\"flag-label\">{flagged} without a root cause</span> \
                 (highlighted).</p>"
            );
        }
        o.push_str(
            "<table>\n<thead><tr><th>Minutes lost</th><th>Service</th><th>Id</th><th>Title</th>\
             <th>Start</th><th>End</th><th>Share × impact</th><th>Root cause</th></tr></thead>\n<tbody>\n",
        );
        for i in incidents {
            let missing = i.without_root_cause();
            let _ = writeln!(
                o,
                "<tr{cls}><td class=\"n\">{lost:.1}</td><td>{svc}</td><td>{id}</td><td>{title}</td>\
                 <td>{start}</td><td>{end}</td><td class=\"n\">{w}</td><td>{cause}</td></tr>",
                cls = if missing { " class=\"flag\"" } else { "" },
                lost = i.lost_minutes,
                svc = esc(&i.service),
                id = esc(&i.id),
                title = esc(&one_line(&i.title)),
                start = esc(&short_time(&i.start)),
                end = esc(&i.end.as_deref().map_or("ongoing".into(), short_time)),
                w = weight(i.share * i.impact),
                cause = match &i.root_cause {
                    _ if missing => "<span class=\"flag-label\">none yet</span>".to_owned(),
                    Some(c) => esc(c),
                    None => String::new(),
                },
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::sample;
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_escapes_what_users_typed() {
        let (r, p) = sample::report();
        let h = page(&r, &p);
        let lower = h.to_lowercase();
        for external in [
            "<script", "<link", "src=", "href=", "url(", "@import", "http://", "https://",
        ] {
            assert!(!lower.contains(external), "{external} in the page");
        }
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("<style>"));
        assert!(h.trim_end().ends_with("</html>"));
        // The title with quotes, angle brackets and an ampersand is text, not markup.
        assert!(
            h.contains("checkout down, &quot;payment&quot; &lt;provider&gt; &amp; bank"),
            "{h}"
        );
        assert!(!h.contains("<provider>"));
    }

    #[test]
    fn a_bar_per_service_and_flagged_incidents_without_root_cause() {
        let (r, p) = sample::report();
        let h = page(&r, &p);
        assert_eq!(h.matches("class=\"bar\"").count(), 2);
        // shop: 99.392857 on a 99.8-100 scale with its 99.9 target in the middle.
        assert!(
            h.contains("class=\"fill bad\" style=\"width:0.00%\""),
            "{h}"
        );
        assert!(h.contains("class=\"target\" style=\"left:50.00%\""), "{h}");
        assert!(h.contains("<span>99.80 %</span>"), "{h}");
        assert!(
            h.contains("class=\"fill ok\" style=\"width:100.00%\""),
            "{h}"
        );
        assert!(h.contains("Target missed: shop"));
        let rows: Vec<&str> = h.lines().filter(|l| l.starts_with("<tr")).collect();
        assert_eq!(rows.len(), 2, "two incidents, most minutes lost first");
        assert!(
            rows[0].starts_with("<tr class=\"flag\"><td class=\"n\">60.0</td>"),
            "{}",
            rows[0]
        );
        assert!(rows[0].contains("none yet"));
        assert!(
            rows[1].starts_with("<tr><td class=\"n\">1.2</td>"),
            "{}",
            rows[1]
        );
        assert!(
            rows[1].contains("<td class=\"n\">0.02</td><td>disk full</td>"),
            "{}",
            rows[1]
        );
        assert!(h.contains("1 without a root cause"));
    }

    #[test]
    fn the_scale_keeps_the_target_in_the_middle() {
        assert!((scale_floor(99.9) - 99.8).abs() < 1e-9);
        assert!((scale_floor(99.0) - 98.0).abs() < 1e-9);
        assert_eq!(scale_floor(10.0), 0.0);
        assert!((scale_floor(100.0) - 99.9).abs() < 1e-9);
        assert!((position(99.85, 99.8) - 25.0).abs() < 1e-6);
        assert_eq!(position(50.0, 99.8), 0.0);
    }
}
