//! Compiling the regular expressions of label matchers: bounded in size (so compiling and
//! matching stay cheap whatever a caller writes) and cached by source, so a dashboard that
//! repeats its queries compiles each pattern once.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::{Regex, RegexBuilder};

/// Largest compiled program of one matcher's regex. `\w{200}` (Unicode word characters)
/// exceeds it; any pattern a label needs fits many times over.
pub const SIZE_LIMIT: usize = 1 << 20;
/// Largest lazy DFA cache of one regex.
pub const DFA_SIZE_LIMIT: usize = 2 << 20;
/// Compiled regexes kept, by source.
const CACHE_ENTRIES: usize = 256;

fn cache() -> &'static Mutex<HashMap<String, Regex>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The anchored regex `^(?s:source)$`, from the cache or compiled within the size limits.
pub fn anchored(source: &str) -> Result<Regex, String> {
    if let Ok(c) = cache().lock()
        && let Some(re) = c.get(source)
    {
        return Ok(re.clone());
    }
    let re = RegexBuilder::new(&format!("^(?s:{source})$"))
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression {source:?}: {e}"))?;
    if let Ok(mut c) = cache().lock() {
        // Full: start again rather than track use; a query's own patterns are compiled
        // again at most once.
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(source.to_owned(), re.clone());
    }
    Ok(re)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns_too_large_to_compile_cheaply_are_refused() {
        let e = anchored(r"\w{200}").unwrap_err();
        assert!(e.contains("size limit"), "{e}");
        assert!(anchored("web-[0-9]+|db-.*").unwrap().is_match("web-12"));
        assert!(!anchored("web").unwrap().is_match("web-1"), "anchored");
    }

    #[test]
    fn the_cache_stays_bounded() {
        for i in 0..(3 * CACHE_ENTRIES) {
            anchored(&format!("h{i}")).unwrap();
        }
        assert!(cache().lock().unwrap().len() <= CACHE_ENTRIES);
        assert!(anchored("h1").unwrap().is_match("h1"));
    }
}
