//! Half-open time intervals in milliseconds UTC, and the set operations availability needs.

use serde::{Deserialize, Serialize};

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;

/// `[start, end)`, milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    /// First millisecond inside.
    pub start: i64,
    /// First millisecond after.
    pub end: i64,
}

impl Interval {
    /// `[start, end)`; empty when `end <= start`.
    pub const fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// Length in milliseconds (0 when empty).
    pub fn len_ms(&self) -> i64 {
        (self.end - self.start).max(0)
    }

    /// Length in minutes.
    pub fn minutes(&self) -> f64 {
        self.len_ms() as f64 / MINUTE_MS as f64
    }

    /// Whether it holds no time.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The part inside `other`, possibly empty.
    pub fn intersect(&self, other: &Interval) -> Interval {
        Interval::new(self.start.max(other.start), self.end.min(other.end))
    }
}

/// Sorts, drops empty intervals and merges overlapping or touching ones.
pub fn normalize(mut v: Vec<Interval>) -> Vec<Interval> {
    v.retain(|i| !i.is_empty());
    v.sort();
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for i in v {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

/// Total length in minutes of a normalized set.
pub fn minutes(set: &[Interval]) -> f64 {
    // An empty f64 sum is -0.0; minutes are never negative.
    set.iter().map(Interval::minutes).sum::<f64>() + 0.0
}

/// `a ∩ b` of two normalized sets.
pub fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let x = a[i].intersect(&b[j]);
        if !x.is_empty() {
            out.push(x);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a − b` of two normalized sets.
pub fn subtract(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for x in a {
        let mut cur = x.start;
        for y in b.iter().filter(|y| y.end > x.start && y.start < x.end) {
            if y.start > cur {
                out.push(Interval::new(cur, y.start));
            }
            cur = cur.max(y.end);
        }
        if cur < x.end {
            out.push(Interval::new(cur, x.end));
        }
    }
    out
}

/// Where fewer than `k` of the members are up, given each member's down intervals, within
/// `range`. With `k` equal to the number of members this is the union of their downs.
pub fn fewer_than_k_up(downs: &[Vec<Interval>], k: usize, range: Interval) -> Vec<Interval> {
    let n = downs.len();
    if k == 0 || n == 0 {
        return Vec::new();
    }
    // Sweep over every boundary, counting members down; the pool is down while n - down < k.
    let mut events: Vec<(i64, i32)> = Vec::new();
    for member in downs {
        for d in normalize(member.clone()) {
            let d = d.intersect(&range);
            if !d.is_empty() {
                events.push((d.start, 1));
                events.push((d.end, -1));
            }
        }
    }
    events.sort();
    let mut out = Vec::new();
    let mut down = 0i32;
    let mut since = None;
    for (t, delta) in events {
        down += delta;
        let pool_down = n as i32 - down < k as i32;
        match (pool_down, since) {
            (true, None) => since = Some(t),
            (false, Some(s)) => {
                out.push(Interval::new(s, t));
                since = None;
            }
            _ => {}
        }
    }
    normalize(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(a: i64, b: i64) -> Interval {
        Interval::new(a, b)
    }

    #[test]
    fn set_operations() {
        assert_eq!(
            normalize(vec![iv(5, 7), iv(0, 2), iv(2, 3), iv(6, 9), iv(4, 4)]),
            vec![iv(0, 3), iv(5, 9)]
        );
        assert_eq!(
            intersect(&[iv(0, 10), iv(20, 30)], &[iv(5, 25)]),
            vec![iv(5, 10), iv(20, 25)]
        );
        assert_eq!(
            subtract(&[iv(0, 10), iv(20, 30)], &[iv(5, 22), iv(25, 26)]),
            vec![iv(0, 5), iv(22, 25), iv(26, 30)]
        );
    }

    #[test]
    fn a_pool_is_down_only_when_fewer_than_k_members_are_up() {
        let range = iv(0, 1000);
        let downs = vec![vec![iv(100, 400)], vec![iv(300, 500)], vec![]];
        // 2 of 3: one host down is no outage; two down at once (300..400) is.
        assert_eq!(fewer_than_k_up(&downs, 2, range), vec![iv(300, 400)]);
        // All required: any member down is an outage.
        assert_eq!(fewer_than_k_up(&downs, 3, range), vec![iv(100, 500)]);
        // 1 of 3: never, since the third is always up.
        assert_eq!(fewer_than_k_up(&downs, 1, range), vec![]);
    }
}
