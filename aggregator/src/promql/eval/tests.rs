//! Known answers for the evaluator, on hand-made series.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::promql::parse::parse;

fn labels(name: &str, host: &str) -> Labels {
    vec![
        ("__name__".into(), name.into()),
        ("host".into(), host.into()),
    ]
}

fn data() -> Vec<Vec<SeriesData>> {
    let a = SeriesData {
        labels: labels("m", "a"),
        points: vec![(0, 1.0), (10_000, 2.0), (20_000, 3.0)],
    };
    let b = SeriesData {
        labels: labels("m", "b"),
        points: vec![(0, 10.0), (10_000, 20.0)],
    };
    vec![vec![a, b]]
}

fn vector(q: &str, t: i64) -> Vec<(String, f64)> {
    let e = parse(q).unwrap();
    match eval(&e, t, &data()).unwrap() {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|s| {
                    let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    (l.join(","), s.value)
                })
                .collect();
            out.sort_by(|x, y| x.0.cmp(&y.0));
            out
        }
        Value::Scalar(s) => vec![(String::new(), s)],
    }
}

#[test]
fn instant_selection_takes_the_newest_sample_within_five_minutes() {
    assert_eq!(
        vector("m", 15_000),
        vec![
            ("__name__=m,host=a".into(), 2.0),
            ("__name__=m,host=b".into(), 20.0)
        ]
    );
    // b's last sample is more than 5 min before t: gone.
    assert_eq!(
        vector("m", 310_001),
        vec![("__name__=m,host=a".into(), 3.0)]
    );
}

#[test]
fn functions_aggregations_and_operators() {
    assert_eq!(
        vector("max_over_time(m[15s])", 20_000),
        vec![("host=a".into(), 3.0), ("host=b".into(), 20.0)]
    );
    assert_eq!(
        // (Selection by matchers is the loader's work: here both series are loaded.)
        vector("avg_over_time(m[1m])", 20_000),
        vec![("host=a".into(), 2.0), ("host=b".into(), 15.0)]
    );
    assert_eq!(vector("sum(m)", 10_000), vec![(String::new(), 22.0)]);
    assert_eq!(vector("count by (host) (m)", 10_000).len(), 2);
    assert_eq!(
        vector("m > 5", 10_000),
        vec![("__name__=m,host=b".into(), 20.0)]
    );
    assert_eq!(
        vector("5 < m", 10_000),
        vec![("__name__=m,host=b".into(), 20.0)]
    );
    assert_eq!(
        vector("m > bool 5", 10_000),
        vec![("host=a".into(), 0.0), ("host=b".into(), 1.0)]
    );
    assert_eq!(
        vector("m * 2 - 1", 10_000),
        vec![("host=a".into(), 3.0), ("host=b".into(), 39.0)]
    );
    // a rises 1 per 10 s: in 100 s from t=20 s it is at 13.
    let p = vector("predict_linear(m{host=\"a\"}[1m], 100)", 20_000);
    assert!((p[0].1 - 13.0).abs() < 1e-9, "{p:?}");
    assert_eq!(vector("2 ^ 3 ^ 2", 0), vec![(String::new(), 512.0)]);
}

#[test]
fn rate_adds_back_counter_resets_and_extrapolates_as_prometheus() {
    // 10, 20, reset, 5, 15 at 10 s steps, in a 45 s window ending 5 s after the last.
    let w = [
        (10_000, 10.0),
        (20_000, 20.0),
        (30_000, 5.0),
        (40_000, 15.0),
    ];
    // Counter: 5 plus the 20 lost at the reset, stretched from 30 s sampled to 45 s.
    assert_eq!(extrapolated_delta(&w, 0, 45_000, true), Some(37.5));
    // Gauge (delta): no resets; 5 stretched likewise.
    assert_eq!(extrapolated_delta(&w, 0, 45_000, false), Some(7.5));
    // A counter starting near zero is extrapolated back only to where it was zero.
    let low = [(10_000, 1.0), (20_000, 11.0)];
    assert_eq!(extrapolated_delta(&low, 0, 20_000, true), Some(11.0));
    assert_eq!(extrapolated_delta(&w[..1], 0, 45_000, true), None);
    // irate: the last two samples, a reset counting from zero; idelta: their difference.
    assert_eq!(instant_delta(&w, true), Some(1.0));
    assert_eq!(instant_delta(&w[..3], true), Some(0.5));
    assert_eq!(instant_delta(&w[..3], false), Some(-15.0));
}

#[test]
fn elementwise_functions_apply_to_each_value_and_drop_the_name() {
    assert_eq!(
        vector("sqrt(m * 4)", 15_000),
        vec![
            ("host=a".into(), 8f64.sqrt()),
            ("host=b".into(), 80f64.sqrt())
        ]
    );
    assert_eq!(
        vector("abs(-m)", 15_000),
        vec![("host=a".into(), 2.0), ("host=b".into(), 20.0)]
    );
    assert_eq!(
        vector("log10(m)", 15_000),
        vec![
            ("host=a".into(), 2f64.log10()),
            ("host=b".into(), 20f64.log10())
        ]
    );
    // last_over_time alone keeps the metric name.
    assert_eq!(
        vector("last_over_time(m[1m])", 20_000),
        vec![
            ("__name__=m,host=a".into(), 3.0),
            ("__name__=m,host=b".into(), 20.0)
        ]
    );
}
