//! Evaluates a parsed expression at one instant over series already loaded, with Prometheus
//! 2.x semantics: an instant selector takes each series' newest sample in `[t - 5m, t]`, a
//! range selector the samples in `[t - range, t]`; functions, aggregations and arithmetic drop
//! the metric name; a comparison without `bool` filters and keeps the vector's value.

use std::collections::BTreeMap;

use super::parse::{AggOp, BinOp, Expr, Func};

/// How far back an instant selector looks for a sample, ms (Prometheus' default).
pub const LOOKBACK_MS: i64 = 300_000;

/// Label pairs sorted by name, `__name__` and `host` included.
pub type Labels = Vec<(String, String)>;

/// A series as loaded for one selector.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// Its labels.
    pub labels: Labels,
    /// `(ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
}

/// The value of an expression at one instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// An instant vector.
    Vector(Vec<Sample>),
}

/// Loaded data, by selector id.
pub type Data = [Vec<SeriesData>];

fn drop_name(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .cloned()
        .collect()
}

fn window(points: &[(i64, f64)], from: i64, to: i64) -> &[(i64, f64)] {
    let lo = points.partition_point(|p| p.0 < from);
    let hi = points.partition_point(|p| p.0 <= to);
    &points[lo..hi.max(lo)]
}

fn no_duplicates(v: Vec<Sample>) -> Result<Vec<Sample>, String> {
    let mut seen = std::collections::HashSet::new();
    for s in &v {
        if !seen.insert(&s.labels) {
            return Err("vector cannot contain metrics with the same labelset".into());
        }
    }
    Ok(v)
}

/// Evaluates `expr` at `t` (ms).
pub fn eval(expr: &Expr, t: i64, data: &Data) -> Result<Value, String> {
    match expr {
        Expr::Number(n) => Ok(Value::Scalar(*n)),
        Expr::Vector(sel) => {
            let series = data.get(sel.id).map(Vec::as_slice).unwrap_or_default();
            Ok(Value::Vector(
                series
                    .iter()
                    .filter_map(|s| {
                        window(&s.points, t - LOOKBACK_MS, t)
                            .last()
                            .map(|&(_, value)| Sample {
                                labels: s.labels.clone(),
                                value,
                            })
                    })
                    .collect(),
            ))
        }
        Expr::Matrix(..) => Err("a range vector cannot be evaluated on its own".into()),
        Expr::Neg(e) => Ok(match eval(e, t, data)? {
            Value::Scalar(n) => Value::Scalar(-n),
            Value::Vector(v) => Value::Vector(no_duplicates(
                v.into_iter()
                    .map(|s| Sample {
                        labels: drop_name(&s.labels),
                        value: -s.value,
                    })
                    .collect(),
            )?),
        }),
        Expr::Call(func, args) => call(*func, args, t, data),
        Expr::Agg(op, by, e) => {
            let Value::Vector(v) = eval(e, t, data)? else {
                return Err("aggregation over a scalar".into());
            };
            Ok(Value::Vector(aggregate(*op, by, v)))
        }
        Expr::Binary(op, boolean, l, r) => {
            let (lv, rv) = (eval(l, t, data)?, eval(r, t, data)?);
            match (lv, rv) {
                (Value::Scalar(a), Value::Scalar(b)) => Ok(Value::Scalar(scalar_op(*op, a, b))),
                (Value::Vector(v), Value::Scalar(s)) => {
                    vector_scalar(*op, *boolean, v, s, false).map(Value::Vector)
                }
                (Value::Scalar(s), Value::Vector(v)) => {
                    vector_scalar(*op, *boolean, v, s, true).map(Value::Vector)
                }
                (Value::Vector(_), Value::Vector(_)) => {
                    Err("operations between two instant vectors are not supported".into())
                }
            }
        }
    }
}

fn arith(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(u8::from(a == b)),
        BinOp::Ne => f64::from(u8::from(a != b)),
        BinOp::Gt => f64::from(u8::from(a > b)),
        BinOp::Lt => f64::from(u8::from(a < b)),
        BinOp::Ge => f64::from(u8::from(a >= b)),
        BinOp::Le => f64::from(u8::from(a <= b)),
    }
}

fn scalar_op(op: BinOp, a: f64, b: f64) -> f64 {
    arith(op, a, b)
}

/// `v op s`, or `s op v` when `swapped`.
fn vector_scalar(
    op: BinOp,
    boolean: bool,
    v: Vec<Sample>,
    s: f64,
    swapped: bool,
) -> Result<Vec<Sample>, String> {
    let mut out = Vec::with_capacity(v.len());
    for x in v {
        let (a, b) = if swapped { (s, x.value) } else { (x.value, s) };
        let r = arith(op, a, b);
        if op.is_comparison() {
            if boolean {
                out.push(Sample {
                    labels: drop_name(&x.labels),
                    value: r,
                });
            } else if r == 1.0 {
                // The vector's own value is kept, on whichever side it stood.
                out.push(x);
            }
        } else {
            out.push(Sample {
                labels: drop_name(&x.labels),
                value: r,
            });
        }
    }
    no_duplicates(out)
}

fn call(func: Func, args: &[Expr], t: i64, data: &Data) -> Result<Value, String> {
    if let Some(f) = func.elementwise() {
        let Some(arg) = args.first() else {
            return Err("expected an instant vector argument".into());
        };
        let Value::Vector(v) = eval(arg, t, data)? else {
            return Err("expected an instant vector argument".into());
        };
        let out = v
            .into_iter()
            .map(|s| Sample {
                labels: drop_name(&s.labels),
                value: f(s.value),
            })
            .collect();
        return no_duplicates(out).map(Value::Vector);
    }
    let Some(Expr::Matrix(sel, range)) = args.first() else {
        return Err("expected a range vector argument".into());
    };
    let horizon = match (func, args.get(1)) {
        (Func::PredictLinear, Some(e)) => match eval(e, t, data)? {
            Value::Scalar(s) => s,
            Value::Vector(_) => return Err("predict_linear wants a scalar horizon".into()),
        },
        _ => 0.0,
    };
    let series = data.get(sel.id).map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::new();
    for s in series {
        let w = window(&s.points, t - range, t);
        if w.is_empty() {
            continue;
        }
        let value = match func {
            Func::AvgOverTime => avg_over_time(w),
            Func::MinOverTime => w
                .iter()
                .skip(1)
                .fold(w[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m }),
            Func::MaxOverTime => w
                .iter()
                .skip(1)
                .fold(w[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m }),
            Func::PredictLinear => {
                if w.len() < 2 {
                    continue;
                }
                let (slope, intercept) = linear_regression(w, t);
                intercept + slope * horizon
            }
            Func::SumOverTime => w.iter().map(|p| p.1).sum(),
            Func::CountOverTime => w.len() as f64,
            Func::LastOverTime => w[w.len() - 1].1,
            Func::PresentOverTime => 1.0,
            Func::Rate | Func::Increase | Func::Delta => {
                let counter = func != Func::Delta;
                match extrapolated_delta(w, t - range, t, counter) {
                    Some(d) if func == Func::Rate => d / (*range as f64 / 1000.0),
                    Some(d) => d,
                    None => continue,
                }
            }
            Func::Irate | Func::Idelta => match instant_delta(w, func == Func::Irate) {
                Some(v) => v,
                None => continue,
            },
            Func::Deriv => {
                if w.len() < 2 {
                    continue;
                }
                linear_regression(w, w[0].0).0
            }
            Func::Resets => w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64,
            Func::Changes => w
                .windows(2)
                .filter(|p| !(p[1].1 == p[0].1 || (p[1].1.is_nan() && p[0].1.is_nan())))
                .count() as f64,
            // Functions of an instant vector, answered above.
            Func::Abs
            | Func::Ceil
            | Func::Floor
            | Func::Sqrt
            | Func::Exp
            | Func::Ln
            | Func::Log2
            | Func::Log10 => continue,
        };
        out.push(Sample {
            // As in Prometheus, every function drops the metric name but last_over_time.
            labels: if func == Func::LastOverTime {
                s.labels.clone()
            } else {
                drop_name(&s.labels)
            },
            value,
        });
    }
    no_duplicates(out).map(Value::Vector)
}

/// The change over a window `[start, end]`, extrapolated towards its edges as Prometheus'
/// `extrapolatedRate` does: a counter's resets are added back, and the extrapolation stops at
/// the point where a counter would have been zero. `None` with fewer than two samples.
fn extrapolated_delta(w: &[(i64, f64)], start: i64, end: i64, counter: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        let mut prev = 0.0;
        for &(_, v) in w {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (w.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    Some(result * (interval / sampled))
}

/// `irate` (per second, a reset counts from zero) or `idelta` over the last two samples.
fn instant_delta(w: &[(i64, f64)], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let d = if rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    if !rate {
        return Some(d);
    }
    let dt = last.0 - prev.0;
    (dt != 0).then(|| d / (dt as f64 / 1000.0))
}

/// Kahan summation step, as Prometheus does it.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn avg_over_time(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

/// Least squares with x in seconds relative to `t`, as Prometheus' `linearRegression`.
fn linear_regression(w: &[(i64, f64)], t: i64) -> (f64, f64) {
    let init = w[0].1;
    let constant = w.iter().all(|p| p.1 == init);
    if constant {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for &(ts, v) in w {
        n += 1.0;
        let x = (ts - t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

struct Group {
    value: f64,
    count: f64,
}

fn aggregate(op: AggOp, by: &[String], v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
    for s in v {
        let key: Labels = s
            .labels
            .iter()
            .filter(|(k, _)| by.iter().any(|b| b == k))
            .cloned()
            .collect();
        match groups.get_mut(&key) {
            None => {
                groups.insert(
                    key,
                    Group {
                        value: s.value,
                        count: 1.0,
                    },
                );
            }
            Some(g) => {
                g.count += 1.0;
                let x = s.value;
                match op {
                    AggOp::Sum => g.value += x,
                    AggOp::Count => {}
                    AggOp::Min => {
                        if g.value > x || g.value.is_nan() {
                            g.value = x;
                        }
                    }
                    AggOp::Max => {
                        if g.value < x || g.value.is_nan() {
                            g.value = x;
                        }
                    }
                    AggOp::Avg => {
                        if g.value.is_infinite() {
                            if x.is_infinite() && (g.value > 0.0) == (x > 0.0) {
                                continue;
                            }
                            if !x.is_infinite() && !x.is_nan() {
                                continue;
                            }
                        }
                        g.value += x / g.count - g.value / g.count;
                    }
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(labels, g)| Sample {
            labels,
            value: if op == AggOp::Count { g.count } else { g.value },
        })
        .collect()
}

#[cfg(test)]
mod tests;
