//! The PromQL subset's parser: text to [`Expr`], with Prometheus' operator precedence
//! (`^` binds tightest and to the right, then unary minus, `* / %`, `+ -`, comparisons).

use regex::Regex;

use super::regex::anchored;

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
    fn name(self) -> &'static str {
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

/// What one query may hold: matchers, and regex source bytes over all its matchers. Counted
/// while parsing, so a query over the limits is refused before its regexes are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Label matchers over every selector (the metric name counts as one).
    pub max_matchers: usize,
    /// Bytes of regex source over every `=~` and `!~` matcher.
    pub max_regex_bytes: usize,
    /// Matchers already spent by earlier selectors of the same query ([`Limits::remaining`]).
    pub spent_matchers: usize,
    /// Regex bytes already spent likewise.
    pub spent_regex_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_matchers: 64,
            max_regex_bytes: 4096,
            spent_matchers: 0,
            spent_regex_bytes: 0,
        }
    }
}

impl Limits {
    /// `limits` with `matchers` spent: several `match[]` selectors share one query's limits,
    /// and an error still names the query's whole limit.
    pub fn remaining(limits: Limits, matchers: &[Matcher]) -> Limits {
        let regex: usize = matchers
            .iter()
            .filter(|m| matches!(m.op, MatchOp::Re | MatchOp::NotRe))
            .map(|m| m.value.len())
            .sum();
        Limits {
            spent_matchers: limits.spent_matchers + matchers.len(),
            spent_regex_bytes: limits.spent_regex_bytes + regex,
            ..limits
        }
    }
}

/// Parses a PromQL expression of the subset within the default [`Limits`]. The error says
/// where and what.
pub fn parse(text: &str) -> Result<Expr, String> {
    parse_limited(text, Limits::default())
}

/// [`parse`] within `limits`.
pub fn parse_limited(text: &str, limits: Limits) -> Result<Expr, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        selectors: 0,
        limits,
        matchers: 0,
        regex_bytes: 0,
    };
    let e = p.expr()?;
    p.ws();
    if p.pos < p.s.len() {
        return Err(p.err("unexpected character"));
    }
    if e.ty() == Type::Matrix {
        return Err(
            "a range vector is only allowed as the argument of a function of this subset".into(),
        );
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    selectors: usize,
    limits: Limits,
    matchers: usize,
    regex_bytes: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// Parses a Prometheus duration: one or more `<integer><unit>`, units `y w d h m s ms`,
/// largest first.
pub fn parse_duration(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    let mut last_unit = i64::MAX;
    if b.is_empty() {
        return None;
    }
    while pos < b.len() {
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let n: i64 = s.get(start..pos)?.parse().ok()?;
        let unit = if s[pos..].starts_with("ms") {
            pos += 2;
            1
        } else {
            let u = match b.get(pos)? {
                b'y' => 365 * 86_400_000,
                b'w' => 7 * 86_400_000,
                b'd' => 86_400_000,
                b'h' => 3_600_000,
                b'm' => 60_000,
                b's' => 1000,
                _ => return None,
            };
            pos += 1;
            u
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let near: String = self
            .text
            .get(self.pos..)
            .unwrap_or("")
            .chars()
            .take(12)
            .collect();
        if near.is_empty() {
            format!(
                "parse error at char {}: {what}: unexpected end of input",
                self.pos + 1
            )
        } else {
            format!("parse error at char {}: {what} near {near:?}", self.pos + 1)
        }
    }

    fn ws(&mut self) {
        while let Some(c) = self.s.get(self.pos) {
            if c.is_ascii_whitespace() {
                self.pos += 1;
            } else if *c == b'#' {
                while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(t.as_bytes()) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &str) -> Result<(), String> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {t:?}")))
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.pos;
        if !self.s.get(self.pos).copied().is_some_and(is_ident_start) {
            return None;
        }
        while self.s.get(self.pos).copied().is_some_and(is_ident) {
            self.pos += 1;
        }
        Some(self.text[start..self.pos].to_owned())
    }

    /// A keyword (`bool`, `by`) as a whole word.
    fn keyword(&mut self, k: &str) -> bool {
        self.ws();
        let save = self.pos;
        match self.ident() {
            Some(w) if w == k => true,
            _ => {
                self.pos = save;
                false
            }
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut lhs = self.additive()?;
        loop {
            let op = if self.eat("==") {
                BinOp::Eq
            } else if self.eat("!=") {
                BinOp::Ne
            } else if self.eat(">=") {
                BinOp::Ge
            } else if self.eat("<=") {
                BinOp::Le
            } else if self.eat(">") {
                BinOp::Gt
            } else if self.eat("<") {
                BinOp::Lt
            } else {
                break;
            };
            let boolean = self.keyword("bool");
            let rhs = self.additive()?;
            lhs = self.binary(op, boolean, lhs, rhs)?;
        }
        if let Some(w) = self.peek_word()
            && ["and", "or", "unless"].contains(&w.as_str())
        {
            return Err(format!(
                "the operator {w:?} is not supported by nines' PromQL subset"
            ));
        }
        Ok(lhs)
    }

    fn peek_word(&mut self) -> Option<String> {
        let save = self.pos;
        let w = self.ident();
        self.pos = save;
        w
    }

    fn binary(&self, op: BinOp, boolean: bool, l: Expr, r: Expr) -> Result<Expr, String> {
        for side in [&l, &r] {
            if side.ty() == Type::Matrix {
                return Err(format!(
                    "binary expression must contain only scalar and instant vector types, not a {}",
                    Type::Matrix.name()
                ));
            }
        }
        let (lt, rt) = (l.ty(), r.ty());
        if lt == Type::Vector && rt == Type::Vector {
            return Err(
                "operations between two instant vectors are not supported by nines' PromQL subset; use a scalar on one side"
                    .into(),
            );
        }
        if op.is_comparison() && lt == Type::Scalar && rt == Type::Scalar && !boolean {
            return Err("comparisons between scalars must use BOOL modifier".into());
        }
        if boolean && !op.is_comparison() {
            return Err("bool modifier can only be used on comparison operators".into());
        }
        Ok(Expr::Binary(op, boolean, Box::new(l), Box::new(r)))
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                BinOp::Add
            } else if self.peek() == Some(b'-') {
                self.pos += 1;
                BinOp::Sub
            } else {
                break;
            };
            let rhs = self.multiplicative()?;
            lhs = self.binary(op, false, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn multiplicative(&mut self) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        loop {
            let op = if self.eat("*") {
                BinOp::Mul
            } else if self.eat("/") {
                BinOp::Div
            } else if self.eat("%") {
                BinOp::Mod
            } else {
                break;
            };
            let rhs = self.unary()?;
            lhs = self.binary(op, false, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            let e = self.unary()?;
            return Ok(match e {
                Expr::Number(n) => Expr::Number(-n),
                e if e.ty() == Type::Matrix => {
                    return Err("unary expression only allowed on expressions of type scalar or instant vector".into());
                }
                e => Expr::Neg(Box::new(e)),
            });
        }
        if self.peek() == Some(b'+') {
            self.pos += 1;
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.primary()?;
        if self.eat("^") {
            let exp = self.unary()?;
            return self.binary(BinOp::Pow, false, base, exp);
        }
        Ok(base)
    }

    fn number(&mut self) -> Option<f64> {
        self.ws();
        let rest = &self.text[self.pos..];
        let lower = rest.to_ascii_lowercase();
        for (word, v) in [("inf", f64::INFINITY), ("nan", f64::NAN)] {
            if lower.starts_with(word)
                && !rest
                    .as_bytes()
                    .get(word.len())
                    .copied()
                    .is_some_and(is_ident)
            {
                self.pos += word.len();
                return Some(v);
            }
        }
        if lower.starts_with("0x") {
            let n = rest[2..].bytes().take_while(u8::is_ascii_hexdigit).count();
            let v = u64::from_str_radix(&rest[2..2 + n], 16).ok()?;
            self.pos += 2 + n;
            return Some(v as f64);
        }
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == 0 || !b[..i].iter().any(u8::is_ascii_digit) {
            return None;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        let v = rest[..i].parse::<f64>().ok()?;
        self.pos += i;
        Some(v)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            None => return Err(self.err("expected an expression")),
            Some(b'(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect(")")?;
                return self.range_suffix(e);
            }
            Some(b'{') => {
                let sel = self.selector(None)?;
                return self.range_suffix(Expr::Vector(sel));
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                return self
                    .number()
                    .map(Expr::Number)
                    .ok_or_else(|| self.err("bad number"));
            }
            Some(b'"' | b'\'' | b'`') => {
                return Err(self.err("string literals are not supported by nines' PromQL subset"));
            }
            _ => {}
        }
        let save = self.pos;
        if let Some(n) = self.number()
            && !self.s.get(self.pos).copied().is_some_and(is_ident)
        {
            return Ok(Expr::Number(n));
        }
        self.pos = save;
        let Some(name) = self.ident() else {
            return Err(self.err("expected an expression"));
        };
        let agg = match name.as_str() {
            "sum" => Some(AggOp::Sum),
            "avg" => Some(AggOp::Avg),
            "min" => Some(AggOp::Min),
            "max" => Some(AggOp::Max),
            "count" => Some(AggOp::Count),
            _ => None,
        };
        if let Some(op) = agg
            && (matches!(self.peek_word().as_deref(), Some("by" | "without"))
                || self.peek() == Some(b'('))
        {
            return self.aggregation(op);
        }
        if self.peek() == Some(b'(') {
            let func = match name.as_str() {
                "avg_over_time" => Func::AvgOverTime,
                "min_over_time" => Func::MinOverTime,
                "max_over_time" => Func::MaxOverTime,
                "predict_linear" => Func::PredictLinear,
                other => {
                    return Err(format!(
                        "function {other:?} is not supported by nines' PromQL subset (avg_over_time, min_over_time, max_over_time, predict_linear)"
                    ));
                }
            };
            return self.call(func);
        }
        if [
            "offset", "by", "without", "bool", "and", "or", "unless", "on", "ignoring",
        ]
        .contains(&name.as_str())
        {
            return Err(self.err(&format!("unexpected keyword {name:?}")));
        }
        let sel = if self.peek() == Some(b'{') {
            self.selector(Some(name))?
        } else {
            self.count(MatchOp::Eq, &name)?;
            let m = Matcher::new("__name__", MatchOp::Eq, &name)?;
            self.new_selector(vec![m])
        };
        let e = self.range_suffix(Expr::Vector(sel))?;
        if self.peek_word().as_deref() == Some("offset") || self.peek() == Some(b'@') {
            return Err("offset and @ modifiers are not supported by nines' PromQL subset".into());
        }
        Ok(e)
    }

    fn new_selector(&mut self, matchers: Vec<Matcher>) -> Selector {
        self.selectors += 1;
        Selector {
            matchers,
            id: self.selectors - 1,
        }
    }

    fn range_suffix(&mut self, e: Expr) -> Result<Expr, String> {
        if self.peek() != Some(b'[') {
            return Ok(e);
        }
        let Expr::Vector(sel) = e else {
            return Err(
                "ranges are only allowed for vector selectors (subqueries are not supported)"
                    .into(),
            );
        };
        self.pos += 1;
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos] != b']' {
            self.pos += 1;
        }
        let text = self.text[start..self.pos].trim();
        if text.contains(':') {
            return Err("subqueries are not supported by nines' PromQL subset".into());
        }
        let range = parse_duration(text)
            .filter(|d| *d > 0)
            .ok_or_else(|| format!("bad duration {text:?} in range selector"))?;
        self.expect("]")?;
        Ok(Expr::Matrix(sel, range))
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or_else(|| self.err("expected a string"))?;
        if !matches!(q, b'"' | b'\'' | b'`') {
            return Err(self.err("expected a quoted string"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.text[self.pos..].chars().next() else {
                return Err(self.err("unterminated string"));
            };
            self.pos += c.len_utf8();
            if c as u32 == u32::from(q) {
                return Ok(out);
            }
            if c == '\\' && q != b'`' {
                let Some(e) = self.text[self.pos..].chars().next() else {
                    return Err(self.err("unterminated string"));
                };
                self.pos += e.len_utf8();
                let c = match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    // Regex escapes such as \. pass through for the regex engine.
                    other => {
                        out.push('\\');
                        other
                    }
                };
                out.push(c);
            } else {
                out.push(c);
            }
        }
    }

    /// Counts a matcher against the limits before it is compiled.
    fn count(&mut self, op: MatchOp, value: &str) -> Result<(), String> {
        self.matchers += 1;
        if self.limits.spent_matchers + self.matchers > self.limits.max_matchers {
            return Err(format!(
                "the query has more than {} label matchers",
                self.limits.max_matchers
            ));
        }
        if matches!(op, MatchOp::Re | MatchOp::NotRe) {
            self.regex_bytes += value.len();
            if self.limits.spent_regex_bytes + self.regex_bytes > self.limits.max_regex_bytes {
                return Err(format!(
                    "the query's regular expressions are longer than {} bytes together",
                    self.limits.max_regex_bytes
                ));
            }
        }
        Ok(())
    }

    fn selector(&mut self, name: Option<String>) -> Result<Selector, String> {
        self.expect("{")?;
        let mut matchers = Vec::new();
        if let Some(n) = &name {
            let n = n.clone();
            self.count(MatchOp::Eq, &n)?;
            matchers.push(Matcher::new("__name__", MatchOp::Eq, &n)?);
        }
        loop {
            if self.eat("}") {
                break;
            }
            let label = self
                .ident()
                .ok_or_else(|| self.err("expected a label name"))?;
            let op = if self.eat("=~") {
                MatchOp::Re
            } else if self.eat("!~") {
                MatchOp::NotRe
            } else if self.eat("!=") {
                MatchOp::Ne
            } else if self.eat("=") {
                MatchOp::Eq
            } else {
                return Err(self.err("expected a label matching operator"));
            };
            let value = self.string()?;
            if label == "__name__" && name.is_some() {
                return Err("metric name must not be set twice".into());
            }
            self.count(op, &value)?;
            matchers.push(Matcher::new(&label, op, &value)?);
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        if !matchers.iter().any(|m| !m.matches("")) {
            return Err("vector selector must contain at least one non-empty matcher".into());
        }
        Ok(self.new_selector(matchers))
    }

    fn labels(&mut self) -> Result<Vec<String>, String> {
        self.expect("(")?;
        let mut out = Vec::new();
        loop {
            if self.eat(")") {
                return Ok(out);
            }
            out.push(
                self.ident()
                    .ok_or_else(|| self.err("expected a label name"))?,
            );
            if !self.eat(",") {
                self.expect(")")?;
                return Ok(out);
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Vec<String>>, String> {
        if self.keyword("by") {
            return self.labels().map(Some);
        }
        if self.keyword("without") {
            return Err("without() is not supported by nines' PromQL subset; use by()".into());
        }
        Ok(None)
    }

    fn aggregation(&mut self, op: AggOp) -> Result<Expr, String> {
        let before = self.grouping()?;
        self.expect("(")?;
        let e = self.expr()?;
        if self.eat(",") {
            return Err("aggregation parameters are not supported".into());
        }
        self.expect(")")?;
        let after = self.grouping()?;
        if before.is_some() && after.is_some() {
            return Err(self.err("grouping given twice"));
        }
        if e.ty() != Type::Vector {
            return Err(format!(
                "expected type instant vector in aggregation, got {}",
                e.ty().name()
            ));
        }
        let by = before.or(after).unwrap_or_default();
        Ok(Expr::Agg(op, by, Box::new(e)))
    }

    fn call(&mut self, func: Func) -> Result<Expr, String> {
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.expr()?);
                if !self.eat(",") {
                    self.expect(")")?;
                    break;
                }
            }
        }
        let want: &[Type] = match func {
            Func::PredictLinear => &[Type::Matrix, Type::Scalar],
            _ => &[Type::Matrix],
        };
        if args.len() != want.len() {
            return Err(format!(
                "expected {} argument(s) in call to {func:?}, got {}",
                want.len(),
                args.len()
            ));
        }
        for (a, t) in args.iter().zip(want) {
            if a.ty() != *t {
                return Err(format!(
                    "expected type {} in call to function, got {}",
                    t.name(),
                    a.ty().name()
                ));
            }
        }
        Ok(Expr::Call(func, args))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
    fn what_is_outside_the_subset_is_refused_with_a_reason() {
        for (q, want) in [
            ("rate(x[5m])", "not supported"),
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
}
