//! A regex subset for command lines, so that the agent needs no regex engine: literal
//! characters, `.`, bracket classes (`[a-z_]`, `[^/]`), `\d \w \s \D \W \S`, escaped
//! punctuation (`\.`), the quantifiers `*`, `+` and `?`, and the anchors `^` (at the start)
//! and `$` (at the end). No groups, alternation or counted repetition. Matching is on bytes,
//! case-sensitive, and unanchored unless `^` or `$` say otherwise, as `pgrep -f`.
//!
//! A pattern is a sequence of items, each a byte set with a quantifier; matching runs it as an
//! NFA whose states are bits of a `u128`, one byte at a time: linear in the text whatever the
//! pattern, with no backtracking, and the text can be fed a chunk at a time.

/// Items in a pattern, at most (`+` counts twice): one state bit each, plus one for the match.
const MAX_ITEMS: usize = 127;

/// What in a pattern is outside the subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// `$` before the end.
    #[error("`$` is supported at the end only")]
    DollarNotAtEnd,
    /// `^` after the start.
    #[error("`^` is supported at the start only")]
    CaretNotAtStart,
    /// `(`, `)` or `|`.
    #[error("groups and alternation (`(`, `)`, `|`) are not supported: this is a regex subset")]
    Group,
    /// `{` or `}`.
    #[error("counted repetition (`{{n,m}}`) is not supported; escape a literal brace as `\\{{`")]
    CountedRepetition,
    /// A quantifier after nothing, or after another quantifier.
    #[error("`{what}` at byte {at} repeats nothing")]
    RepeatsNothing {
        /// The quantifier.
        what: char,
        /// Where, counted from 1 after a leading `^`.
        at: usize,
    },
    /// A `\` with nothing after it.
    #[error("trailing backslash")]
    TrailingBackslash,
    /// An escape other than `\d \w \s \D \W \S \n \t` and escaped punctuation.
    #[error("unsupported escape \\{}", .0.escape_default())]
    UnsupportedEscape(char),
    /// More items than the matcher has states for.
    #[error("too long: {0} items, at most {max}", max = MAX_ITEMS)]
    TooLong(usize),
    /// A `[` without its `]`.
    #[error("unclosed `[`")]
    UnclosedClass,
    /// A byte outside ASCII in a class.
    #[error("only ASCII characters are supported in `[...]`")]
    NonAsciiClass,
    /// A range whose end is before its start, or not ASCII.
    #[error("bad range {lo}-{hi} in `[...]`")]
    BadRange {
        /// Its start.
        lo: char,
        /// Its end.
        hi: char,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rep {
    One,
    Opt,
    Star,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    /// For each byte, the items whose set contains it.
    accepts: Box<[u128; 256]>,
    /// Items that may match nothing (`?`, `*`).
    optional: u128,
    /// Items that stay in their state after matching (`*`).
    star: u128,
    /// The state reached before any byte: the first item, and those after optional ones.
    init: u128,
    /// The bit of the final state.
    accept: u128,
    /// `^`: a match starts at the beginning only.
    start: bool,
    /// `$`: a match ends at the end only.
    end: bool,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

type Set = [bool; 256];

fn class(pred: impl Fn(u8) -> bool) -> Set {
    std::array::from_fn(|b| pred(b as u8))
}

fn digit(b: u8) -> bool {
    b.is_ascii_digit()
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn space(b: u8) -> bool {
    // Like regex's `\s` on ASCII: space, \t, \n, \v, \f, \r.
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The set of an escape `\c` (after the backslash), or why it is not supported.
fn escape(c: u8) -> Result<Set, PatternError> {
    Ok(match c {
        b'd' => class(digit),
        b'D' => class(|b| !digit(b)),
        b'w' => class(word),
        b'W' => class(|b| !word(b)),
        b's' => class(space),
        b'S' => class(|b| !space(b)),
        b'n' => class(|b| b == b'\n'),
        b't' => class(|b| b == b'\t'),
        c if c.is_ascii_punctuation() => class(|b| b == c),
        c => {
            return Err(PatternError::UnsupportedEscape(char::from(c)));
        }
    })
}

impl Pattern {
    /// Compiles `source`, or says what in it is outside the subset.
    pub fn new(source: &str) -> Result<Self, PatternError> {
        let mut bytes = source.as_bytes();
        let start = bytes.first() == Some(&b'^');
        if start {
            bytes = &bytes[1..];
        }
        let mut items: Vec<(Set, Rep)> = Vec::new();
        let mut i = 0;
        let mut end = false;
        while i < bytes.len() {
            let c = bytes[i];
            i += 1;
            let set = match c {
                b'$' if i == bytes.len() => {
                    end = true;
                    break;
                }
                b'$' => return Err(PatternError::DollarNotAtEnd),
                b'^' => return Err(PatternError::CaretNotAtStart),
                b'(' | b')' | b'|' => {
                    return Err(PatternError::Group);
                }
                b'{' | b'}' => {
                    return Err(PatternError::CountedRepetition);
                }
                b'*' | b'+' | b'?' => {
                    let Some(last) = items.last_mut().filter(|(_, rep)| *rep == Rep::One) else {
                        return Err(PatternError::RepeatsNothing {
                            what: char::from(c),
                            at: i,
                        });
                    };
                    match c {
                        b'*' => last.1 = Rep::Star,
                        b'?' => last.1 = Rep::Opt,
                        _ => {
                            let set = last.0;
                            items.push((set, Rep::Star));
                        }
                    }
                    continue;
                }
                b'.' => [true; 256],
                b'[' => {
                    let (set, used) = parse_class(&bytes[i..])?;
                    i += used;
                    set
                }
                b'\\' => {
                    let Some(&e) = bytes.get(i) else {
                        return Err(PatternError::TrailingBackslash);
                    };
                    i += 1;
                    escape(e)?
                }
                c => class(|b| b == c),
            };
            items.push((set, Rep::One));
        }
        if items.len() > MAX_ITEMS {
            return Err(PatternError::TooLong(items.len()));
        }
        let mut accepts = Box::new([0u128; 256]);
        let (mut optional, mut star) = (0u128, 0u128);
        for (n, (set, rep)) in items.iter().enumerate() {
            let bit = 1u128 << n;
            for (b, member) in set.iter().enumerate() {
                if *member {
                    accepts[b] |= bit;
                }
            }
            if *rep != Rep::One {
                optional |= bit;
            }
            if *rep == Rep::Star {
                star |= bit;
            }
        }
        let mut pattern = Self {
            source: source.to_owned(),
            accepts,
            optional,
            star,
            init: 0,
            accept: 1u128 << items.len(),
            start,
            end,
        };
        pattern.init = pattern.closure(1);
        Ok(pattern)
    }

    /// `states` and every state reachable from them without consuming a byte.
    fn closure(&self, mut states: u128) -> u128 {
        loop {
            let more = ((states & self.optional) << 1) & !states;
            if more == 0 {
                return states;
            }
            states |= more;
        }
    }

    /// A search at the beginning of a text.
    pub fn search(&self) -> Search {
        Search {
            states: self.init,
            matched: !self.end && self.init & self.accept != 0,
        }
    }

    /// Advances `search` over `text`, the next bytes of the text.
    pub fn feed(&self, search: &mut Search, text: &[u8]) {
        for &b in text {
            if self.done(search) {
                return;
            }
            self.step(search, b);
        }
    }

    /// Advances `search` over one byte.
    pub fn step(&self, search: &mut Search, b: u8) {
        let states = if self.start {
            search.states
        } else {
            search.states | self.init
        };
        let moved = states & self.accepts[usize::from(b)];
        search.states = self.closure((moved & self.star) | ((moved & !self.star) << 1));
        if !self.end && search.states & self.accept != 0 {
            search.matched = true;
        }
    }

    /// Whether more text cannot change the outcome: matched already (without `$`), or
    /// anchored at the start and no longer matching.
    pub fn done(&self, search: &Search) -> bool {
        (search.matched && !self.end) || (self.start && search.states == 0)
    }

    /// Whether the text fed to `search` matched.
    pub fn finish(&self, search: &Search) -> bool {
        if self.end {
            let states = if self.start {
                search.states
            } else {
                search.states | self.init
            };
            states & self.accept != 0
        } else {
            search.matched
        }
    }

    /// Whether `text` matches.
    pub fn is_match(&self, text: &[u8]) -> bool {
        let mut search = self.search();
        self.feed(&mut search, text);
        self.finish(&search)
    }
}

/// The state of a search through a text fed in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    states: u128,
    matched: bool,
}

/// A bracket class after its `[`: the set, and the bytes used up to and including `]`.
fn parse_class(bytes: &[u8]) -> Result<(Set, usize), PatternError> {
    let mut set = [false; 256];
    let mut i = 0;
    let negate = bytes.first() == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = bytes.get(i) else {
            return Err(PatternError::UnclosedClass);
        };
        i += 1;
        if c == b']' && !first {
            break;
        }
        first = false;
        if !c.is_ascii() {
            return Err(PatternError::NonAsciiClass);
        }
        let lo = if c == b'\\' {
            let Some(&e) = bytes.get(i) else {
                return Err(PatternError::UnclosedClass);
            };
            i += 1;
            let escaped = escape(e)?;
            if !e.is_ascii_punctuation() {
                // \d, \w, ... inside a class: no range from them.
                for (s, e) in set.iter_mut().zip(escaped) {
                    *s |= e;
                }
                continue;
            }
            e
        } else {
            c
        };
        // A range `a-z`, unless the `-` is last (`[a-]`).
        if bytes.get(i) == Some(&b'-') && bytes.get(i + 1).is_some_and(|&n| n != b']') {
            let hi = bytes[i + 1];
            i += 2;
            if !hi.is_ascii() || hi < lo {
                return Err(PatternError::BadRange {
                    lo: char::from(lo),
                    hi: char::from(hi),
                });
            }
            for b in lo..=hi {
                set[usize::from(b)] = true;
            }
        } else {
            set[usize::from(lo)] = true;
        }
    }
    if negate {
        for s in &mut set {
            *s = !*s;
        }
    }
    Ok((set, i))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).unwrap().is_match(text.as_bytes())
    }

    #[test]
    fn matches_like_a_regex() {
        assert!(m("nginx", "/usr/sbin/nginx -g daemon off;"));
        assert!(!m("nginx", "/usr/sbin/apache2"));
        assert!(m("^/usr/sbin/nginx", "/usr/sbin/nginx -g"));
        assert!(!m("^nginx", "/usr/sbin/nginx -g"));
        assert!(m("off;$", "/usr/sbin/nginx -g daemon off;"));
        assert!(!m("daemon$", "/usr/sbin/nginx -g daemon off;"));
        assert!(m("^a.c$", "abc"));
        assert!(!m("^a.c$", "abbc"));
        assert!(m(
            "java .*-jar /opt/app/billing\\.jar",
            "java -Xmx2g -jar /opt/app/billing.jar"
        ));
        assert!(!m("billing\\.jar", "java -jar /opt/app/billingXjar"));
        assert!(m("^ab*c$", "ac"));
        assert!(m("^ab*c$", "abbbc"));
        assert!(!m("^ab+c$", "ac"));
        assert!(m("^ab+c$", "abc"));
        assert!(m("^ab?c$", "ac"));
        assert!(!m("^ab?c$", "abbc"));
        assert!(m("worker-[0-9]+$", "celery worker-12"));
        assert!(!m("worker-[0-9]+$", "celery worker-x"));
        assert!(m("^[^ ]*python3? ", "/usr/bin/python3 app.py"));
        assert!(m("\\d\\d:\\d\\d", "at 12:30"));
        assert!(m("\\s--port\\s\\d+", "app --port 8080"));
        assert!(m("[]x]", "a]b"));
        assert!(m("[a-]", "-"));
        assert!(m("[\\w.]+@", "me.you@host"));
        assert!(m("", "anything"));
        assert!(m("^$", ""));
        assert!(!m("^$", "x"));
        // Matching restarts at every position.
        assert!(m("aab", "aaab"));
        assert!(m("a.*b.*c", "xxaxxbxxc"));
        assert!(!m("a.*b.*c", "xxaxxcxxb"));
        // Bytes, not characters: a literal non-ASCII string still matches.
        assert!(m("café", "le café noir"));
    }

    #[test]
    fn takes_text_in_pieces() {
        let p = Pattern::new("main-class org\\.example\\.Main$").unwrap();
        let text = b"java -cp /a.jar main-class org.example.Main";
        for split in 0..text.len() {
            let mut s = p.search();
            p.feed(&mut s, &text[..split]);
            p.feed(&mut s, &text[split..]);
            assert!(p.finish(&s), "split at {split}");
        }
        let anchored = Pattern::new("^java").unwrap();
        let mut s = anchored.search();
        anchored.feed(&mut s, b"python");
        assert!(
            anchored.done(&s),
            "an anchored search that failed stops early"
        );
        assert!(!anchored.finish(&s));
    }

    #[test]
    fn is_linear_on_pathological_patterns() {
        // Exponential for a backtracking matcher.
        let p = Pattern::new("^a*a*a*a*a*a*a*a*a*a*a*a*b$").unwrap();
        let text = vec![b'a'; 200_000];
        let started = std::time::Instant::now();
        assert!(!p.is_match(&text));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        for (pattern, why) in [
            ("(a|b)", "groups and alternation"),
            ("a|b", "groups and alternation"),
            ("a{2}", "counted repetition"),
            ("*a", "repeats nothing"),
            ("a**", "repeats nothing"),
            ("a+?", "repeats nothing"),
            ("a$b", "at the end only"),
            ("a^", "at the start only"),
            ("[abc", "unclosed"),
            ("[z-a]", "bad range"),
            ("[é]", "only ASCII"),
            ("\\q", "unsupported escape"),
            ("a\\", "trailing backslash"),
        ] {
            let err = Pattern::new(pattern).unwrap_err().to_string();
            assert!(err.contains(why), "{pattern}: {err}");
        }
        let long = "a".repeat(MAX_ITEMS + 1);
        let err = Pattern::new(&long).unwrap_err();
        assert_eq!(err, PatternError::TooLong(MAX_ITEMS + 1));
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(Pattern::new(&"a".repeat(MAX_ITEMS)).is_ok());
        assert!(
            Pattern::new(&"a".repeat(MAX_ITEMS))
                .unwrap()
                .is_match("a".repeat(MAX_ITEMS).as_bytes())
        );
    }
}
