//! Label matchers as Alertmanager writes them: `name=value`, `name!=value`, `name=~regex`,
//! `name!~regex` (regexes anchored at both ends).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value or regex source.
    pub value: String,
    /// `=~` / `!~`.
    pub is_regex: bool,
    /// `=` / `=~` (otherwise negated).
    pub is_equal: bool,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, &self.value, self.is_regex, self.is_equal)
            == (&o.name, &o.value, o.is_regex, o.is_equal)
    }
}

/// A matcher as the silences API carries it (Alertmanager's JSON shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatcherJson {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Regex match.
    #[serde(default)]
    pub is_regex: bool,
    /// Equality (false negates). Default true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// Builds a matcher; a bad regex or label name is an error that says so.
    pub fn new(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Result<Self, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("matcher label name {name:?} is not a label name"));
        }
        let regex = if is_regex {
            Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("matcher {name}: regex {value:?}: {e}"))?,
            )
        } else {
            None
        };
        Ok(Self {
            name: name.to_owned(),
            value: value.to_owned(),
            is_regex,
            is_equal,
            regex,
        })
    }

    /// Parses `name=value`, `name!=value`, `name=~re`, `name!~re`; the value may be quoted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let at = s
            .find(['=', '!'])
            .ok_or_else(|| format!("matcher {s:?}: expected name=value, !=, =~ or !~"))?;
        let (name, rest) = s.split_at(at);
        let (is_equal, is_regex, value) = if let Some(v) = rest.strip_prefix("=~") {
            (true, true, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (false, true, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (false, false, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (true, false, v)
        } else {
            return Err(format!("matcher {s:?}: expected name=value, !=, =~ or !~"));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Self::new(name.trim(), value, is_regex, is_equal)
    }

    /// From the API's JSON.
    pub fn from_json(j: &MatcherJson) -> Result<Self, String> {
        Self::new(&j.name, &j.value, j.is_regex, j.is_equal)
    }

    /// To the API's JSON.
    pub fn to_json(&self) -> MatcherJson {
        MatcherJson {
            name: self.name.clone(),
            value: self.value.clone(),
            is_regex: self.is_regex,
            is_equal: self.is_equal,
        }
    }

    /// Whether a label set matches; a missing label is the empty string.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        let hit = match &self.regex {
            Some(r) => r.is_match(v),
            None => v == self.value,
        };
        hit == self.is_equal
    }
}

/// Whether every matcher matches (an empty list matches everything).
pub fn all_match(ms: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    ms.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_four_operators_and_anchored_regexes() {
        let l: BTreeMap<String, String> = [("host", "db-01"), ("alertname", "DiskFull")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert!(Matcher::parse("host=db-01").unwrap().matches(&l));
        assert!(Matcher::parse("host = \"db-01\"").unwrap().matches(&l));
        assert!(!Matcher::parse("host!=db-01").unwrap().matches(&l));
        assert!(Matcher::parse("host=~db-.*").unwrap().matches(&l));
        assert!(!Matcher::parse("host=~db").unwrap().matches(&l), "anchored");
        assert!(Matcher::parse("host!~web-.*").unwrap().matches(&l));
        assert!(Matcher::parse("missing=").unwrap().matches(&l));
        assert!(Matcher::parse("host=~(").unwrap_err().contains("regex"));
        assert!(Matcher::parse("host").is_err());
    }
}
