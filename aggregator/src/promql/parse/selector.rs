//! Selectors (`name{label op "value", ...}`) and the [`Limits`] on their matchers, counted
//! as they are parsed so that a query over the limits is refused before its regexes compile.

use super::Parser;
use super::ast::{MatchOp, Matcher, Selector};

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

impl Parser<'_> {
    /// Counts a matcher against the limits before it is compiled.
    pub(super) fn count(&mut self, op: MatchOp, value: &str) -> Result<(), String> {
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

    pub(super) fn new_selector(&mut self, matchers: Vec<Matcher>) -> Selector {
        self.selectors += 1;
        Selector {
            matchers,
            id: self.selectors - 1,
        }
    }

    pub(super) fn selector(&mut self, name: Option<String>) -> Result<Selector, String> {
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
}
