//! Name globs: `*` matches any run of characters (`/` included), `?` exactly one character,
//! every other character itself; the whole name must match.

/// Whether `text` matches `pattern` as a whole.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    wildmatch::WildMatch::new(pattern).matches(text)
}

/// Whether `name` matches one of `include` and none of `exclude`.
pub fn selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    include.iter().any(|g| glob_match(g, name)) && !exclude.iter().any(|g| glob_match(g, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "sda"));
        assert!(glob_match("loop*", "loop0"));
        assert!(!glob_match("loop*", "xloop0"));
        assert!(glob_match("sd?", "sda"));
        assert!(!glob_match("sd?", "sda1"));
        assert!(glob_match("nvme*n?", "nvme10n1"));
        assert!(glob_match("*p*1", "nvme0n1p1"));
        assert!(!glob_match("*p*1", "nvme0n1p2"));
        assert!(glob_match("/run/*", "/run/user/1000"));
        assert!(glob_match("lo", "lo"));
        assert!(!glob_match("lo", "lo0"));
        assert!(glob_match("caf?", "café"));
        assert!(!glob_match("caf??", "café"));
        assert!(glob_match("*é", "café"));
        assert!(glob_match("a**b", "ab"));
        assert!(glob_match("shop_order?_total", "shop_orders_total"));
        assert!(!glob_match("shop", "shop_orders"));
    }

    #[test]
    fn excludes_win_over_includes() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(selected("sda", &s(&["*"]), &s(&["loop*"])));
        assert!(!selected("loop0", &s(&["*"]), &s(&["loop*"])));
        assert!(!selected("sda", &s(&["nvme*"]), &s(&[])));
    }
}
