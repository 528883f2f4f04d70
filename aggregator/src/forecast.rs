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
    Some(Fit {
        slope,
        intercept,
        r,
        r2: r * r,
        n,
    })
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
}
