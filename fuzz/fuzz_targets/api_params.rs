//! The HTTP API's parameter parsers on arbitrary text: time and duration parameters (nines'
//! own API and the Prometheus-compatible one), the RFC 3339 formatter on arbitrary integers,
//! and the PromQL parser within small query limits, its expression then evaluated over one
//! series with extreme timestamps.
//!
//! Properties, beyond "does not panic":
//! - an accepted time lies in the years 1970 to 9999, formats, and parses back to itself;
//! - the formatter answers exactly for times in that range, on any integer;
//! - an accepted duration or step lies in 1 ms to the span of representable times, so adding
//!   it to an accepted time cannot overflow;
//! - an accepted query holds no more matchers and regex bytes than its limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nines_aggregator::http::prom::api::{parse_step, parse_time};
use nines_aggregator::promql::{self, Limits, MatchOp, SeriesData};
use nines_aggregator::util::time;

const LIMITS: Limits = Limits {
    max_matchers: 8,
    max_regex_bytes: 64,
};

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.get(..8) {
        let ms = i64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        let formatted = time::rfc3339_ms(ms);
        assert_eq!(formatted.is_some(), time::in_range(ms), "{ms}");
        assert_eq!(time::rfc3339_s(ms).is_some(), time::in_range(ms), "{ms}");
        if let Some(f) = formatted {
            assert_eq!(time::parse_ms("t", &f), Ok(ms), "{f}");
        }
        let _ = time::rfc3339_or_raw(ms);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut times = Vec::new();
    if let Ok(ms) = time::parse_ms("t", text) {
        assert!(time::in_range(ms), "{text:?} -> {ms}");
        let f = time::rfc3339_ms(ms).expect("an accepted time formats");
        assert_eq!(time::parse_ms("t", &f), Ok(ms));
        times.push(ms);
    }
    if let Ok(ms) = parse_time("time", text) {
        assert!(time::in_range(ms), "{text:?} -> {ms}");
        times.push(ms);
    }
    for d in [
        time::parse_duration_ms("d", text).ok(),
        parse_step("step", text).ok(),
    ]
    .into_iter()
    .flatten()
    {
        assert!((1..=time::MAX_MS).contains(&d), "{text:?} -> {d}");
        for t in &times {
            assert!(t.checked_add(d).is_some() && t.checked_sub(d).is_some());
        }
    }
    if let Some(d) = promql::parse_duration(text) {
        assert!(d >= 0, "{text:?} -> {d}");
    }
    let Ok(expr) = promql::parse_limited(text, LIMITS) else {
        return;
    };
    let mut sels = Vec::new();
    expr.selectors(&mut sels);
    let matchers: Vec<_> = sels.iter().flat_map(|(s, _)| &s.matchers).collect();
    assert!(matchers.len() <= LIMITS.max_matchers, "{text:?}");
    let regex: usize = matchers
        .iter()
        .filter(|m| matches!(m.op, MatchOp::Re | MatchOp::NotRe))
        .map(|m| m.value.len())
        .sum();
    assert!(regex <= LIMITS.max_regex_bytes, "{text:?}");
    // Every selector sees one series whose points sit at the ends of the time range.
    let series = SeriesData {
        labels: vec![("__name__".into(), "m".into()), ("host".into(), "h".into())],
        points: vec![(time::MIN_MS, f64::MIN), (1, f64::NAN), (time::MAX_MS, f64::MAX)],
    };
    let loaded = vec![vec![series]; sels.len()];
    for t in [time::MIN_MS, time::MAX_MS] {
        let _ = promql::eval(&expr, t, &loaded);
    }
});
