//! Forecasts (a line through a series over time) and capacity (a KPI against a driver).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Labels;

/// A least-squares line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Fit {
    /// Change of y per unit of x.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Pearson's correlation coefficient.
    pub r: f64,
    /// The share of y's variance the line explains.
    pub r2: f64,
    /// Points fitted.
    pub n: usize,
    /// Standard deviation of the residuals.
    pub residual_sd: f64,
}

impl From<&crate::forecast::Fit> for Fit {
    fn from(f: &crate::forecast::Fit) -> Self {
        Self {
            slope: f.slope,
            intercept: f.intercept,
            r: f.r,
            r2: f.r2,
            n: f.n,
            residual_sd: f.residual_sd,
        }
    }
}

/// `GET /api/v1/forecast`: one fitted line per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Forecast {
    /// Start of the fitted window, RFC 3339.
    pub from: Option<String>,
    /// Its end, RFC 3339.
    pub to: Option<String>,
    /// `to` + horizon, RFC 3339.
    pub horizon_at: Option<String>,
    /// The level whose crossing is wanted, if given.
    pub threshold: Option<f64>,
    /// One entry per matching series.
    pub series: Vec<ForecastSeries>,
}

/// The forecast of one series: a line, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ForecastSeries {
    /// Enough evidence: the line and what it predicts.
    Ok {
        /// The host.
        host: String,
        /// The series' labels.
        #[schema(value_type = std::collections::BTreeMap<String, String>)]
        labels: Labels,
        /// The line; x is seconds since `from`.
        fit: Fit,
        /// The slope per hour.
        slope_per_hour: f64,
        /// The newest value.
        latest: Option<f64>,
        /// The line at `horizon_at` (clamped to 0..1 for a `_ratio`).
        predicted: f64,
        /// Lower edge of the 95 % prediction interval there.
        predicted_low: f64,
        /// Upper edge.
        predicted_high: f64,
        /// When the line reaches `threshold`, when the interval supports it, RFC 3339.
        threshold_reached_at: Option<String>,
        /// `threshold_reached_at` is no later than `horizon_at`.
        within_horizon: bool,
    },
    /// Too few points, or too short a stretch of the window: no prediction.
    InsufficientData {
        /// The host.
        host: String,
        /// The series' labels.
        #[schema(value_type = std::collections::BTreeMap<String, String>)]
        labels: Labels,
        /// Points there were.
        n: usize,
        /// Seconds they covered.
        covered_seconds: i64,
        /// Always `null`.
        fit: Option<Fit>,
        /// The newest value.
        latest: Option<f64>,
        /// What a forecast needs.
        why: String,
    },
}

/// `GET /api/v1/capacity`: a KPI regressed on a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Capacity {
    /// The KPI series.
    pub kpi: CapacitySeries,
    /// The driver series.
    pub driver: CapacitySeries,
    /// Start, RFC 3339.
    pub from: Option<String>,
    /// End, RFC 3339.
    pub to: Option<String>,
    /// Bucket width.
    pub step_seconds: i64,
    /// KPI = slope × driver + intercept.
    pub fit: Fit,
    /// The growth assumed, percent.
    pub growth_percent: f64,
    /// The KPI when the driver's mean grows by `growth_percent`.
    pub predicted_kpi_at_mean: f64,
    /// The KPI when the driver's peak grows by `growth_percent`.
    pub predicted_kpi_at_peak: f64,
}

/// One side of a capacity regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CapacitySeries {
    /// As given.
    pub selector: String,
    /// The series' labels.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: Labels,
    /// Mean over the paired buckets.
    pub mean: f64,
    /// Peak over the paired buckets.
    pub peak: f64,
}
