//! Least-squares lines: the disk-full forecast of the alert rules, and the forecast and capacity
//! answers of the API.

use serde::Serialize;

/// A fitted line `y = slope × x + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fit {
    /// Change of y per unit of x.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Pearson's correlation coefficient (0 when x or y does not vary).
    pub r: f64,
    /// r², the share of y's variance the line explains.
    pub r2: f64,
    /// Points fitted.
    pub n: usize,
    /// Standard deviation of the residuals, `sqrt(SSE / (n - 2))` (0 with two points).
    pub residual_sd: f64,
    /// Mean of the fitted x values.
    pub mean_x: f64,
    /// Sum of squared deviations of x from its mean.
    pub sxx: f64,
}

/// Student's t for a two-sided 95 % interval, by degrees of freedom 1 to 30; beyond, the
/// approximation `1.96 + 2.4 / df` (within 0.01 of the table from 30 on).
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

fn t95(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T95[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

impl Fit {
    /// y at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }

    /// Where the line is at `y`, from `after` on: `after` itself if it is at `y` there, the
    /// crossing if it is heading there, `None` if it is flat or moving away.
    pub fn crosses(&self, y: f64, after: f64) -> Option<f64> {
        let now = self.at(after);
        if now == y {
            return Some(after);
        }
        if self.slope == 0.0 || !self.slope.is_finite() {
            return None;
        }
        let heading = (self.slope > 0.0 && now < y) || (self.slope < 0.0 && now > y);
        heading.then(|| (y - self.intercept) / self.slope)
    }

    /// Half the width of the 95 % prediction interval for one new observation at `x`: the
    /// line's value at `x` ± this, assuming residuals that are independent and normal (a rough
    /// guide for metrics, whose residuals are neither, but it widens as it should with few
    /// points, scattered points and distance from the data). Infinite with two points.
    pub fn interval(&self, x: f64) -> f64 {
        if self.n < 3 {
            return f64::INFINITY;
        }
        let n = self.n as f64;
        let dx = x - self.mean_x;
        t95(self.n.saturating_sub(2))
            * self.residual_sd
            * (1.0 + 1.0 / n + dx * dx / self.sxx).sqrt()
    }

    /// The smallest x ≥ `after` where the line reaches `y`, if it is heading there.
    pub fn reaches(&self, y: f64, after: f64) -> Option<f64> {
        if self.at(after) >= y && self.slope >= 0.0 {
            return Some(after);
        }
        if self.slope <= 0.0 {
            return None;
        }
        let x = (y - self.intercept) / self.slope;
        (x >= after).then_some(x)
    }
}

/// Fits a line through `(x, y)` points by ordinary least squares. `None` with fewer than two
/// points or when every x is the same. Sums are taken about the means, so timestamps in ms do
/// not lose precision.
pub fn least_squares(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let (dx, dy) = (x - mx, y - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx == 0.0 || !sxx.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r = if syy == 0.0 {
        0.0
    } else {
        (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
    };
    // SSE = syy - sxy² / sxx, never negative but for rounding.
    let sse = (syy - slope * sxy).max(0.0);
    let residual_sd = if n > 2 {
        (sse / (nf - 2.0)).sqrt()
    } else {
        0.0
    };
    Some(Fit {
        slope,
        intercept,
        r,
        r2: r * r,
        n,
        residual_sd,
        mean_x: mx,
        sxx,
    })
}

/// Least points a forecast needs.
pub const MIN_POINTS: usize = 30;

/// Why a series has too little data for a forecast: fewer than [`MIN_POINTS`] points, or
/// points covering less than half the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insufficient {
    /// Points there are.
    pub points: usize,
    /// Milliseconds from the first to the last.
    pub covered_ms: i64,
    /// Milliseconds they must cover: half the window.
    pub needed_ms: i64,
}

impl std::fmt::Display for Insufficient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} points over {} s; a forecast needs at least {MIN_POINTS} points over {} s (half the window)",
            self.points,
            self.covered_ms / 1000,
            self.needed_ms / 1000
        )
    }
}

/// Whether points at times `ts` (ms, sorted) are evidence enough for a line over a window of
/// `window_ms`.
pub fn evidence(ts: &[i64], window_ms: i64) -> Result<(), Insufficient> {
    let covered_ms = match (ts.first(), ts.last()) {
        (Some(a), Some(b)) => b.saturating_sub(*a),
        _ => 0,
    };
    let needed_ms = window_ms / 2;
    if ts.len() >= MIN_POINTS && covered_ms >= needed_ms {
        Ok(())
    } else {
        Err(Insufficient {
            points: ts.len(),
            covered_ms,
            needed_ms,
        })
    }
}

/// Whether values of the metric `name` are a share in `[0, 1]` (docs/metrics.md: names ending
/// in `_ratio`), so that a forecast of it is clamped to that range.
pub fn is_ratio(name: &str) -> bool {
    name.ends_with("_ratio")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_line_is_found_with_r2_of_one() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 3.0 * i as f64 - 7.0)).collect();
        let f = least_squares(&pts).unwrap();
        assert!((f.slope - 3.0).abs() < 1e-12);
        assert!((f.intercept + 7.0).abs() < 1e-9);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert!((f.reaches(293.0, 0.0).unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn known_answers_for_scattered_points_and_real_timestamps() {
        // Pairs swapped around y = x: sums about the means give sxx = syy = 5, sxy = 3.
        let pts = [(1.0, 2.0), (2.0, 1.0), (3.0, 4.0), (4.0, 3.0)];
        let f = least_squares(&pts).unwrap();
        assert!((f.slope - 0.6).abs() < 1e-12, "{f:?}");
        assert!((f.intercept - 1.0).abs() < 1e-12, "{f:?}");
        // r = sxy / sqrt(sxx syy) = 3 / sqrt(5 × 5) = 0.6.
        assert!((f.r - 0.6).abs() < 1e-12 && (f.r2 - 0.36).abs() < 1e-12);

        // A disk filling 1 % per hour, timestamps in ms since the epoch.
        let t0 = 1_790_000_000_000.0;
        let h = 3_600_000.0;
        let pts: Vec<(f64, f64)> = (0..24)
            .map(|i| (t0 + i as f64 * h, 0.5 + 0.01 * i as f64))
            .collect();
        let f = least_squares(&pts).unwrap();
        assert!((f.slope * h - 0.01).abs() < 1e-9);
        let full = f.reaches(1.0, t0).unwrap();
        assert!(((full - t0) / h - 50.0).abs() < 1e-6, "{}", (full - t0) / h);
    }

    #[test]
    fn a_driver_uncorrelated_with_the_kpi_explains_nothing() {
        // Driver 1..4, KPI up then down: sxy = 0, so slope 0 and r = 0.
        let f = least_squares(&[(1.0, 1.0), (2.0, 2.0), (3.0, 2.0), (4.0, 1.0)]).unwrap();
        assert_eq!((f.slope, f.r, f.r2), (0.0, 0.0, 0.0));
        assert!((f.intercept - 1.5).abs() < 1e-12);
    }

    #[test]
    fn crossings_either_way() {
        // Free space falling 10 per unit from 100: reaches 20 at x = 8.
        let falling = least_squares(&[(0.0, 100.0), (1.0, 90.0), (2.0, 80.0)]).unwrap();
        assert!((falling.crosses(20.0, 2.0).unwrap() - 8.0).abs() < 1e-9);
        assert_eq!(falling.crosses(200.0, 2.0), None, "moving away");
        let rising = least_squares(&[(0.0, 0.5), (1.0, 0.6)]).unwrap();
        assert!((rising.crosses(0.9, 1.0).unwrap() - 4.0).abs() < 1e-9);
        let flat = least_squares(&[(0.0, 0.5), (1.0, 0.5)]).unwrap();
        assert_eq!(flat.crosses(0.9, 1.0), None);
    }

    #[test]
    fn flat_falling_and_degenerate_inputs() {
        assert!(least_squares(&[(1.0, 1.0)]).is_none());
        assert!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
        let flat = least_squares(&[(0.0, 0.3), (1.0, 0.3), (2.0, 0.3)]).unwrap();
        assert_eq!((flat.slope, flat.r2), (0.0, 0.0));
        assert_eq!(flat.reaches(1.0, 0.0), None);
        let falling = least_squares(&[(0.0, 0.9), (1.0, 0.8)]).unwrap();
        assert_eq!(falling.reaches(1.0, 0.0), None);
        let already = least_squares(&[(0.0, 1.0), (1.0, 1.1)]).unwrap();
        assert_eq!(already.reaches(1.0, 1.0), Some(1.0));
    }

    #[test]
    fn the_prediction_interval_widens_with_scatter_distance_and_few_points() {
        let exact: Vec<(f64, f64)> = (0..40).map(|i| (i as f64, 2.0 * i as f64)).collect();
        let f = least_squares(&exact).unwrap();
        assert!(f.residual_sd < 1e-9 && f.interval(100.0) < 1e-6);
        // y = x ± 1 alternating: residual sd about 1.
        let noisy: Vec<(f64, f64)> = (0..40)
            .map(|i| (i as f64, i as f64 + if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let f = least_squares(&noisy).unwrap();
        assert!((f.residual_sd - 1.0).abs() < 0.05, "{}", f.residual_sd);
        let near = f.interval(f.mean_x);
        assert!((near - 2.02 * 1.01).abs() < 0.1, "{near}");
        assert!(f.interval(1000.0) > 5.0 * near, "far from the data");
        let few = least_squares(&noisy[..4]).unwrap();
        assert!(few.interval(few.mean_x) > 2.0 * near, "four points");
        assert_eq!(
            least_squares(&noisy[..2]).unwrap().interval(0.0),
            f64::INFINITY
        );
    }

    #[test]
    fn a_forecast_needs_thirty_points_over_half_its_window() {
        let every_10s: Vec<i64> = (0..25).map(|i| i * 10_000).collect();
        // Three minutes of 10 s samples against a 1 h window: the finding.
        let e = evidence(&every_10s, 3_600_000).unwrap_err();
        assert_eq!(
            (e.points, e.covered_ms, e.needed_ms),
            (25, 240_000, 1_800_000)
        );
        assert!(e.to_string().contains("25 points over 240 s"), "{e}");
        let half_hour: Vec<i64> = (0..=180).map(|i| i * 10_000).collect();
        assert!(evidence(&half_hour, 3_600_000).is_ok());
        let dense_but_short: Vec<i64> = (0..1000).map(|i| i * 100).collect();
        assert!(evidence(&dense_but_short, 3_600_000).is_err());
        assert!(evidence(&[], 3_600_000).is_err());
        assert!(is_ratio("memory_used_ratio") && !is_ratio("memory_used_bytes"));
    }
}
