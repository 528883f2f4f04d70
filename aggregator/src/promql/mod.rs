//! The PromQL subset nines answers (docs/api.md, "Prometheus-compatible API"): selectors with
//! `=`, `!=`, `=~`, `!~`; `sum|avg|min|max|count [by (...)]`; the range-vector functions
//! `rate`, `irate`, `increase`, `delta`, `idelta`, `deriv`, `resets`, `changes`,
//! `avg|min|max|sum|count|last|present_over_time` and `predict_linear`; `abs`, `ceil`,
//! `floor`, `sqrt`, `exp`, `ln`, `log2`, `log10`; arithmetic and comparisons with scalars.

pub mod eval;
pub mod parse;
pub mod regex;

pub use eval::{Data, LOOKBACK_MS, Labels, Sample, SeriesData, Value, eval};
pub use parse::{
    Expr, Limits, MatchOp, Matcher, Selector, Type, parse, parse_duration, parse_limited,
};
