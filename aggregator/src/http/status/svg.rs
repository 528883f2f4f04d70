//! Line charts as inline SVG, drawn on the server: no script, no fonts to load.

use std::fmt::Write;

/// A horizontal line drawn across a chart: an alert rule's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The rule's name.
    pub label: String,
    /// Where.
    pub value: f64,
    /// `warning` (amber) or `critical` (red).
    pub critical: bool,
}

/// How values read on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 0 to 1, shown as percent; the axis is fixed at 0-100 %.
    Ratio,
    /// Bytes per second.
    BytesPerSecond,
    /// 1 or 0 (up or down).
    UpDown,
}

/// `v` as the unit reads.
pub fn format(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ratio => format!("{:.0} %", v * 100.0),
        Unit::UpDown => if v >= 0.5 { "up" } else { "down" }.to_owned(),
        Unit::BytesPerSecond => {
            let units = ["B/s", "KB/s", "MB/s", "GB/s", "TB/s"];
            let mut x = v;
            let mut i = 0;
            while x >= 1000.0 && i + 1 < units.len() {
                x /= 1000.0;
                i += 1;
            }
            format!("{x:.1} {}", units[i])
        }
    }
}

const COLOURS: [&str; 6] = [
    "#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d",
];
const W: f64 = 600.0;
const H: f64 = 150.0;
const LEFT: f64 = 52.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

fn esc(s: &str) -> String {
    super::page::esc(s)
}

/// One chart: `series` as polylines over `[from, to]` (ms), with `thresholds` dashed. Points
/// are `(ms, value)`; NaN values break the line.
pub fn chart(
    title: &str,
    unit: Unit,
    series: &[(String, Vec<(i64, f64)>)],
    (from, to): (i64, i64),
    thresholds: &[Threshold],
) -> String {
    let span = (to - from).max(1) as f64;
    let max = match unit {
        Unit::Ratio | Unit::UpDown => 1.0,
        Unit::BytesPerSecond => {
            let m = series
                .iter()
                .flat_map(|s| s.1.iter().map(|p| p.1))
                .chain(thresholds.iter().map(|t| t.value))
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            if m > 0.0 { m * 1.1 } else { 1.0 }
        }
    };
    let plot_h = H - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - from) as f64 / span * (W - LEFT - 4.0);
    let y = |v: f64| TOP + plot_h - (v / max).clamp(0.0, 1.05) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=chart><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" role=img aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    // Frame, grid at half, axis labels.
    let _ = write!(
        s,
        "<path class=axis d=\"M{LEFT} {TOP}V{b}H{r}\"/><path class=grid d=\"M{LEFT} {m}H{r}\"/>",
        b = TOP + plot_h,
        r = W - 4.0,
        m = TOP + plot_h / 2.0
    );
    for (v, yy) in [
        (max, TOP + 8.0),
        (max / 2.0, TOP + plot_h / 2.0 + 3.0),
        (0.0, TOP + plot_h),
    ] {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{yy}\" class=yl>{}</text>",
            LEFT - 4.0,
            esc(&format(v, unit))
        );
    }
    let _ = write!(
        s,
        "<text x=\"{LEFT}\" y=\"{H}\" class=xl>{}</text><text x=\"{}\" y=\"{H}\" class=\"xl end\">{}</text>",
        esc(&super::page::short_time(from)),
        W - 4.0,
        esc(&super::page::short_time(to))
    );
    for t in thresholds {
        let _ = write!(
            s,
            "<path class=\"th {}\" d=\"M{LEFT} {yy:.1}H{r}\"/><text x=\"{r}\" y=\"{ty:.1}\" class=\"tl end\">{}</text>",
            if t.critical { "crit" } else { "warn" },
            esc(&format!("{} {}", t.label, format(t.value, unit))),
            yy = y(t.value),
            ty = y(t.value) - 2.0,
            r = W - 4.0,
        );
    }
    for (i, (_, pts)) in series.iter().enumerate() {
        let mut d = String::new();
        let mut pen_up = true;
        for &(t, v) in pts {
            if !v.is_finite() {
                pen_up = true;
                continue;
            }
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if pen_up { "M" } else { "L" },
                x(t),
                y(v)
            );
            pen_up = false;
        }
        if !d.is_empty() {
            let _ = write!(
                s,
                "<path class=line stroke=\"{}\" d=\"{d}\"/>",
                COLOURS[i % COLOURS.len()]
            );
        }
    }
    s.push_str("</svg>");
    if series.len() > 1 || series.first().is_some_and(|f| !f.0.is_empty()) {
        s.push_str("<ul class=legend>");
        for (i, (label, pts)) in series.iter().enumerate() {
            let last = pts.iter().rev().find(|p| p.1.is_finite()).map(|p| p.1);
            let _ = write!(
                s,
                "<li><i style=\"background:{}\"></i>{} {}</li>",
                COLOURS[i % COLOURS.len()],
                esc(label),
                last.map(|v| format(v, unit)).unwrap_or_default()
            );
        }
        s.push_str("</ul>");
    }
    if series.iter().all(|s| s.1.is_empty()) {
        s.push_str("<p class=muted>no data in this range</p>");
    }
    s.push_str("</figure>");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn points_land_inside_the_frame_and_thresholds_are_drawn() {
        let pts: Vec<(i64, f64)> = (0..=10).map(|i| (i * 1000, i as f64 / 10.0)).collect();
        let t = Threshold {
            label: "HighCpu".into(),
            value: 0.9,
            critical: false,
        };
        let svg = chart("CPU", Unit::Ratio, &[("".into(), pts)], (0, 10_000), &[t]);
        assert!(svg.contains("d=\"M52.0 130.0L106.4 117.8"), "{svg}");
        assert!(svg.contains("class=\"th warn\""));
        assert!(svg.contains("HighCpu 90 %"));
        assert_eq!(svg.matches("class=line").count(), 1);
        // A gap (NaN) starts a new stroke.
        let gap = vec![(0, 0.1), (1000, f64::NAN), (2000, 0.3)];
        let svg = chart("x", Unit::Ratio, &[("a".into(), gap)], (0, 2000), &[]);
        let line = svg.split("class=line").nth(1).unwrap();
        let d = line
            .split("d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
    }

    #[test]
    fn units_read_as_people_read_them() {
        assert_eq!(format(0.934, Unit::Ratio), "93 %");
        assert_eq!(format(1_250_000.0, Unit::BytesPerSecond), "1.2 MB/s");
        assert_eq!(format(0.0, Unit::UpDown), "down");
    }
}
