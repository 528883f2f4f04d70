//! The syntax tree of the PromQL subset: expressions, selectors and their matchers,
//! operators, and the type of each expression.

use regex::Regex;

use crate::promql::regex::anchored;

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`, anchored.
    Re,
    /// `!~`, anchored.
    NotRe,
}

/// One `name op "value"` of a selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label (`__name__` for the metric name).
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// A matcher; a regex one is anchored at both ends, as in Prometheus.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => Some(anchored(value)?),
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            re,
        })
    }

    /// Whether a label value (empty when the label is absent) passes.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::NotRe, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// `sum`, `avg`, `min`, `max`, `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// Sum of the group.
    Sum,
    /// Mean of the group.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Number of elements.
    Count,
}

/// The range-vector functions of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `avg_over_time(v[d])`
    AvgOverTime,
    /// `min_over_time(v[d])`
    MinOverTime,
    /// `max_over_time(v[d])`
    MaxOverTime,
    /// `predict_linear(v[d], seconds)`
    PredictLinear,
    /// `sum_over_time(v[d])`
    SumOverTime,
    /// `count_over_time(v[d])`
    CountOverTime,
    /// `last_over_time(v[d])`
    LastOverTime,
    /// `present_over_time(v[d])`
    PresentOverTime,
    /// `rate(v[d])`: per-second increase of a counter, extrapolated to the range
    Rate,
    /// `increase(v[d])`: the increase of a counter, extrapolated to the range
    Increase,
    /// `delta(v[d])`: first to last of a gauge, extrapolated to the range
    Delta,
    /// `irate(v[d])`: per-second rate between the last two samples
    Irate,
    /// `idelta(v[d])`: difference of the last two samples
    Idelta,
    /// `deriv(v[d])`: per-second slope of a least-squares line
    Deriv,
    /// `resets(v[d])`: how often a counter went down
    Resets,
    /// `changes(v[d])`: how often the value changed
    Changes,
    /// `abs(v)`
    Abs,
    /// `ceil(v)`
    Ceil,
    /// `floor(v)`
    Floor,
    /// `sqrt(v)`
    Sqrt,
    /// `exp(v)`
    Exp,
    /// `ln(v)`
    Ln,
    /// `log2(v)`
    Log2,
    /// `log10(v)`
    Log10,
}

impl Func {
    /// The function of each element's value, for the functions of one instant vector.
    pub fn elementwise(self) -> Option<fn(f64) -> f64> {
        Some(match self {
            Func::Abs => f64::abs,
            Func::Ceil => f64::ceil,
            Func::Floor => f64::floor,
            Func::Sqrt => f64::sqrt,
            Func::Exp => f64::exp,
            Func::Ln => f64::ln,
            Func::Log2 => f64::log2,
            Func::Log10 => f64::log10,
            _ => return None,
        })
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
}

impl BinOp {
    /// Whether it compares (and so filters, unless `bool`).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Lt | Self::Ge | Self::Le
        )
    }
}

/// A selector: matchers, and the index of its data in the evaluation.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Every matcher, the metric name as a `__name__` matcher.
    pub matchers: Vec<Matcher>,
    /// Numbered in parse order.
    pub id: usize,
}

/// An expression of the subset.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A number literal.
    Number(f64),
    /// An instant vector selector.
    Vector(Selector),
    /// A range vector selector and its range, ms.
    Matrix(Selector, i64),
    /// A function call.
    Call(Func, Vec<Expr>),
    /// An aggregation, grouped by the labels given (none: one group).
    Agg(AggOp, Vec<String>, Box<Expr>),
    /// A binary operation; `bool` turns a comparison into 0 or 1.
    Binary(BinOp, bool, Box<Expr>, Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
}

/// What an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A number.
    Scalar,
    /// An instant vector.
    Vector,
    /// A range vector.
    Matrix,
}

impl Type {
    pub(super) fn name(self) -> &'static str {
        match self {
            Type::Scalar => "scalar",
            Type::Vector => "instant vector",
            Type::Matrix => "range vector",
        }
    }
}

impl Expr {
    /// Its type (the expression has been checked by the parser).
    pub fn ty(&self) -> Type {
        match self {
            Expr::Number(_) => Type::Scalar,
            Expr::Vector(_) | Expr::Call(..) | Expr::Agg(..) => Type::Vector,
            Expr::Matrix(..) => Type::Matrix,
            Expr::Binary(_, _, l, r) => {
                if l.ty() == Type::Scalar && r.ty() == Type::Scalar {
                    Type::Scalar
                } else {
                    Type::Vector
                }
            }
            Expr::Neg(e) => e.ty(),
        }
    }

    /// Every selector, with the widest time before the evaluation time it reads, ms.
    pub fn selectors<'a>(&'a self, out: &mut Vec<(&'a Selector, i64)>) {
        match self {
            Expr::Number(_) => {}
            Expr::Vector(s) => out.push((s, 0)),
            Expr::Matrix(s, range) => out.push((s, *range)),
            Expr::Call(_, args) => args.iter().for_each(|a| a.selectors(out)),
            Expr::Agg(_, _, e) | Expr::Neg(e) => e.selectors(out),
            Expr::Binary(_, _, l, r) => {
                l.selectors(out);
                r.selectors(out);
            }
        }
    }
}
