//! The grammar above tokens: operators by precedence, parentheses and ranges, aggregations
//! and function calls, each checked for the types of its operands.

use super::Parser;
use super::ast::{AggOp, BinOp, Expr, Func, MatchOp, Matcher, Type};
use super::lexer::{is_ident, parse_duration};

impl Parser<'_> {
    pub(super) fn expr(&mut self) -> Result<Expr, String> {
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

    pub(super) fn binary(
        &self,
        op: BinOp,
        boolean: bool,
        l: Expr,
        r: Expr,
    ) -> Result<Expr, String> {
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

    pub(super) fn additive(&mut self) -> Result<Expr, String> {
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

    pub(super) fn multiplicative(&mut self) -> Result<Expr, String> {
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

    pub(super) fn unary(&mut self) -> Result<Expr, String> {
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

    pub(super) fn power(&mut self) -> Result<Expr, String> {
        let base = self.primary()?;
        if self.eat("^") {
            let exp = self.unary()?;
            return self.binary(BinOp::Pow, false, base, exp);
        }
        Ok(base)
    }

    pub(super) fn primary(&mut self) -> Result<Expr, String> {
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
                "sum_over_time" => Func::SumOverTime,
                "count_over_time" => Func::CountOverTime,
                "last_over_time" => Func::LastOverTime,
                "present_over_time" => Func::PresentOverTime,
                "rate" => Func::Rate,
                "increase" => Func::Increase,
                "delta" => Func::Delta,
                "irate" => Func::Irate,
                "idelta" => Func::Idelta,
                "deriv" => Func::Deriv,
                "resets" => Func::Resets,
                "changes" => Func::Changes,
                "abs" => Func::Abs,
                "ceil" => Func::Ceil,
                "floor" => Func::Floor,
                "sqrt" => Func::Sqrt,
                "exp" => Func::Exp,
                "ln" => Func::Ln,
                "log2" => Func::Log2,
                "log10" => Func::Log10,
                other => {
                    return Err(format!(
                        "function {other:?} is not supported by nines' PromQL subset (rate, irate, increase, delta, idelta, deriv, resets, changes, avg|min|max|sum|count|last|present_over_time, predict_linear, abs, ceil, floor, sqrt, exp, ln, log2, log10)"
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

    pub(super) fn range_suffix(&mut self, e: Expr) -> Result<Expr, String> {
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

    pub(super) fn labels(&mut self) -> Result<Vec<String>, String> {
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

    pub(super) fn grouping(&mut self) -> Result<Option<Vec<String>>, String> {
        if self.keyword("by") {
            return self.labels().map(Some);
        }
        if self.keyword("without") {
            return Err("without() is not supported by nines' PromQL subset; use by()".into());
        }
        Ok(None)
    }

    pub(super) fn aggregation(&mut self, op: AggOp) -> Result<Expr, String> {
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

    pub(super) fn call(&mut self, func: Func) -> Result<Expr, String> {
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
            f if f.elementwise().is_some() => &[Type::Vector],
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
