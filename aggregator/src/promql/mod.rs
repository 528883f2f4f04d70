//! The PromQL subset nines answers (docs/api.md, "Prometheus-compatible API"): selectors with
//! `=`, `!=`, `=~`, `!~`; `sum|avg|min|max|count [by (...)]`; `avg_over_time`,
//! `min_over_time`, `max_over_time`, `predict_linear`; arithmetic and comparisons with scalars.

pub mod eval;
pub mod parse;
pub mod regex;

pub use eval::{Data, LOOKBACK_MS, Labels, Sample, SeriesData, Value, eval};
pub use parse::{
    Expr, Limits, MatchOp, Matcher, Selector, Type, parse, parse_duration, parse_limited,
};
