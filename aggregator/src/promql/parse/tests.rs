//! The parser against queries Prometheus accepts, and the ones the subset refuses.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn durations_combine_units_largest_first() {
    assert_eq!(parse_duration("5m"), Some(300_000));
    assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration("1500ms"), Some(1500));
    assert_eq!(parse_duration("2d"), Some(172_800_000));
    assert_eq!(parse_duration("30m1h"), None);
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration(""), None);
}

#[test]
fn the_subset_parses_with_prometheus_precedence_and_types() {
    for q in [
        "cpu_usage_ratio",
        "cpu_usage_ratio{cpu=\"total\", host=~'web-.*'}",
        "{__name__=~\"cpu_.*\",host!=\"a\"}",
        "avg by (host) (cpu_usage_ratio)",
        "sum(memory_used_bytes) by (host)",
        "count(process_up == 0)",
        "max_over_time(cpu_usage_ratio[5m])",
        "predict_linear(filesystem_used_ratio{mount=\"/\"}[1h], 4 * 3600) > 0.9",
        "100 * (1 - memory_available_bytes / 1e9)",
        "-cpu_usage_ratio ^ 2",
        "cpu_usage_ratio > bool 0.5",
        "1 + 2 * 3",
    ] {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    assert!(matches!(
        parse("1 + 2 * 3").unwrap(),
        Expr::Binary(BinOp::Add, ..)
    ));
    // Unary minus binds looser than ^: -2^2 is -(2^2).
    assert!(matches!(parse("-x ^ 2").unwrap(), Expr::Neg(_)));
    assert_eq!(parse("1 > bool 2").unwrap().ty(), Type::Scalar);
}

#[test]
fn counter_and_window_functions_take_one_range_vector() {
    for q in [
        "rate(x[5m])",
        "irate(x[1m])",
        "increase(x[1h])",
        "delta(x[5m])",
        "idelta(x[5m])",
        "deriv(x[5m])",
        "resets(x[5m])",
        "changes(x[5m])",
        "sum_over_time(x[5m])",
        "count_over_time(x[5m])",
        "last_over_time(x[5m])",
        "present_over_time(x[5m])",
        "abs(x)",
        "ln(sum(x))",
    ] {
        assert_eq!(parse(q).unwrap().ty(), Type::Vector, "{q}");
    }
    assert!(parse("rate(x)").unwrap_err().contains("range vector"));
    assert!(parse("rate(x[5m], 1)").unwrap_err().contains("argument"));
    assert!(parse("abs(x[5m])").unwrap_err().contains("instant vector"));
}

#[test]
fn what_is_outside_the_subset_is_refused_with_a_reason() {
    for (q, want) in [
        ("holt_winters(x[5m], 0.5, 0.5)", "not supported"),
        ("x[5m]", "range vector"),
        ("a + b", "two instant vectors"),
        ("x offset 5m", "offset"),
        ("{}", "non-empty matcher"),
        ("{a=\"\"}", "non-empty matcher"),
        ("x{a=~\"(\"}", "invalid regular expression"),
        ("1 > 2", "BOOL"),
        ("max_over_time(x)", "range vector"),
        ("sum(x", "expected"),
        ("x and y", "not supported"),
        ("x[5m:1m]", "subqueries"),
    ] {
        let e = parse(q).unwrap_err();
        assert!(e.contains(want), "{q}: {e}");
    }
}

#[test]
fn regex_matchers_are_anchored() {
    let m = Matcher::new("h", MatchOp::Re, "web").unwrap();
    assert!(m.matches("web") && !m.matches("web-1"));
    let m = Matcher::new("h", MatchOp::NotRe, "web-.*").unwrap();
    assert!(m.matches("db-1") && !m.matches("web-1"));
}

#[test]
fn matchers_and_regex_bytes_are_counted_before_compiling() {
    let tight = Limits {
        max_matchers: 3,
        max_regex_bytes: 10,
        ..Limits::default()
    };
    assert!(parse_limited(r#"m{a="1",b=~"x"}"#, tight).is_ok());
    let e = parse_limited(r#"m{a="1",b="2",c="3"}"#, tight).unwrap_err();
    assert!(e.contains("more than 3 label matchers"), "{e}");
    // Over both sides of a binary operation: the limit is per query.
    let e = parse_limited(r#"m{a="1"} + m{b="2"}"#, tight).unwrap_err();
    assert!(e.contains("more than 3"), "{e}");
    let e = parse_limited(r#"m{a=~"abcdef",b!~"ghijk"}"#, tight).unwrap_err();
    assert!(e.contains("longer than 10 bytes"), "{e}");
    // 400 matchers of `\w{200}` (the regex bomb) is refused at the count, before any
    // compilation: quickly.
    let bomb: Vec<String> = (0..400)
        .map(|i| format!(r#"l_{i}=~"\\w{{200}}""#))
        .collect();
    let started = std::time::Instant::now();
    let e = parse(&format!("{{{}}}", bomb.join(","))).unwrap_err();
    assert!(e.contains("size limit") || e.contains("matchers"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let left = Limits::remaining(
        tight,
        &[
            Matcher::new("a", MatchOp::Eq, "1").unwrap(),
            Matcher::new("b", MatchOp::Re, "abcd").unwrap(),
        ],
    );
    assert_eq!((left.spent_matchers, left.spent_regex_bytes), (2, 4));
    // What is left is one matcher, and the error names the query's limit of 3.
    assert!(parse_limited(r#"m"#, left).is_ok());
    let e = parse_limited(r#"m{a="1"}"#, left).unwrap_err();
    assert!(e.contains("more than 3 label matchers"), "{e}");
    let roomy = Limits::remaining(
        Limits {
            max_matchers: 10,
            ..tight
        },
        &[Matcher::new("b", MatchOp::Re, "abcd").unwrap()],
    );
    let e = parse_limited(r#"m{a=~"abcdefg"}"#, roomy).unwrap_err();
    assert!(e.contains("longer than 10 bytes"), "{e}");
}
