//! The PromQL subset's parser: text to [`Expr`], with Prometheus' operator precedence
//! (`^` binds tightest and to the right, then unary minus, `* / %`, `+ -`, comparisons).
//!
//! One recursive-descent `Parser` whose methods live by layer: `lexer` (tokens),
//! `grammar` (operators, aggregations, calls), `selector` (selectors and the [`Limits`]
//! counted on them); `ast` holds the tree they build.

mod ast;
mod grammar;
mod lexer;
mod selector;

pub use ast::{AggOp, BinOp, Expr, Func, MatchOp, Matcher, Selector, Type};
pub use lexer::parse_duration;
pub use selector::Limits;

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

/// The state of one parse: the text, the position, and what has been counted against the
/// limits so far.
struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    selectors: usize,
    limits: Limits,
    matchers: usize,
    regex_bytes: usize,
}

#[cfg(test)]
mod tests;
