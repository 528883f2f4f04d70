//! Down time from samples: a host is down across any gap of more than three sampling
//! intervals between consecutive **sample timestamps**, so data an agent spooled during a
//! network cut and delivered late still counts as up; a process is down from a
//! `process_up = 0` sample until the next sample that says it runs.

use super::interval::{Interval, normalize};

/// Gaps longer than this many intervals are down time.
pub const DOWN_AFTER_INTERVALS: i64 = 3;

/// A host's silences within a judged range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Silence {
    /// Gaps after which nothing said why: down time.
    pub down: Vec<Interval>,
    /// Gaps that follow the agent's goodbye (a clean stop): not monitored.
    pub stopped: Vec<Interval>,
}

/// Where a host was down within `range`, from its sample timestamps: [`host_silence`] without
/// goodbyes.
pub fn host_down(
    timestamps: &[i64],
    interval_ms: i64,
    range: Interval,
    known_since: i64,
    now: i64,
) -> Vec<Interval> {
    host_silence(timestamps, &[], interval_ms, range, known_since, now).down
}

/// Where a host was silent within `range`, from its sample timestamps (sorted, any span;
/// include those up to three intervals before `range` so a gap across its start is seen, and
/// up to three intervals after it so one across its end is): any gap of more than three
/// intervals. A gap that follows one of `goodbyes` (sorted timestamps of the agent's
/// `agent_stopping` sample) is a clean stop; any other is down time. Time before
/// `known_since` (the host's first contact) is not judged. A gap across the end of `range` is
/// judged by the next sample after it, or, when there is none yet, against `now`: a host whose
/// last sample is older than three intervals at `now` is silent from that sample on.
pub fn host_silence(
    timestamps: &[i64],
    goodbyes: &[i64],
    interval_ms: i64,
    range: Interval,
    known_since: i64,
    now: i64,
) -> Silence {
    let limit = DOWN_AFTER_INTERVALS * interval_ms.max(1);
    let judged = Interval::new(range.start.max(known_since), range.end.min(now));
    let mut out = Silence::default();
    if judged.is_empty() {
        return out;
    }
    let mut gap = |from: i64, to: i64, last: Option<i64>| {
        let i = Interval::new(from, to).intersect(&judged);
        if last.is_some_and(|l| goodbyes.binary_search(&l).is_ok()) {
            out.stopped.push(i);
        } else {
            out.down.push(i);
        }
    };
    let mut prev = judged.start;
    let mut last = None;
    let mut next = None;
    for &t in timestamps {
        if t > judged.end {
            next = Some(t);
            break;
        }
        if t - prev > limit {
            gap(prev, t, last);
        }
        prev = prev.max(t);
        last = Some(t);
    }
    if next.unwrap_or(now) - prev > limit {
        gap(prev, judged.end, last);
    }
    out.down = normalize(out.down);
    out.stopped = normalize(out.stopped);
    out
}

/// Where a process was reported not running within `range`, from `(timestamp, process_up)`
/// points in time order: from a `0` until the next report that it runs. Still down at the
/// last report, it is down to the end of `range` when that report is at most three intervals
/// (`interval_ms`) before it: the host is still reporting, so the outage lasts. Older, it is
/// down until that report, as far as the data says; a silent host is [`host_down`]'s.
pub fn process_down(points: &[(i64, f64)], interval_ms: i64, range: Interval) -> Vec<Interval> {
    let limit = DOWN_AFTER_INTERVALS * interval_ms.max(1);
    let mut out = Vec::new();
    let mut down_since = None;
    for &(t, v) in points {
        match (v < 0.5, down_since) {
            (true, None) => down_since = Some(t),
            (false, Some(s)) => {
                out.push(Interval::new(s, t));
                down_since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(&(last, _))) = (down_since, points.last()) {
        let end = if range.end - last <= limit {
            range.end
        } else {
            last
        };
        out.push(Interval::new(s, end.max(s)));
    }
    normalize(out.into_iter().map(|i| i.intersect(&range)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn a_gap_of_more_than_three_intervals_is_down_time() {
        // Samples every 10 s from 0 to 1000 s, then from 1600 s to 3600 s.
        let ts: Vec<i64> = (0..=100).chain(160..=360).map(|i| i * 10 * S).collect();
        let range = Interval::new(0, 3600 * S);
        assert_eq!(
            host_down(&ts, 10 * S, range, 0, 3600 * S),
            vec![Interval::new(1000 * S, 1600 * S)]
        );
        // A 30 s gap is exactly three intervals: still up.
        let ts: Vec<i64> = [0, 10, 40, 50].iter().map(|s| s * S).collect();
        assert!(host_down(&ts, 10 * S, Interval::new(0, 50 * S), 0, 50 * S).is_empty());
    }

    #[test]
    fn late_spooled_data_is_not_down_time() {
        // The agent was cut off from 1000 s to 1600 s and sent its spool afterwards: the
        // timestamps have no gap, whenever they arrived.
        let ts: Vec<i64> = (0..=360).map(|i| i * 10 * S).collect();
        assert!(host_down(&ts, 10 * S, Interval::new(0, 3600 * S), 0, 3600 * S).is_empty());
    }

    #[test]
    fn silence_at_the_end_counts_and_time_before_first_contact_does_not() {
        let ts: Vec<i64> = (100..=200).map(|i| i * 10 * S).collect();
        let range = Interval::new(0, 3000 * S);
        assert_eq!(
            host_down(&ts, 10 * S, range, 1000 * S, 3000 * S),
            vec![Interval::new(2000 * S, 3000 * S)]
        );
        // Not yet three intervals since the last sample: up.
        assert!(host_down(&ts, 10 * S, Interval::new(0, 2020 * S), 1000 * S, 2020 * S).is_empty());
    }

    #[test]
    fn a_period_that_ended_is_judged_by_the_sample_after_it_not_by_now() {
        // Samples every 10 s all day; a report of the first hour, asked a day later, must not
        // find the host down between its last sample in the hour and the hour's end.
        let ts: Vec<i64> = (0..=8640).map(|i| i * 10 * S).collect();
        let hour = Interval::new(0, 3600 * S - 5 * S);
        assert!(host_down(&ts, 10 * S, hour, 0, 86_400 * S).is_empty());
        // Silent from 3000 s to 4000 s: down up to the hour's end.
        let ts: Vec<i64> = (0..=300).chain(400..=8640).map(|i| i * 10 * S).collect();
        assert_eq!(
            host_down(&ts, 10 * S, Interval::new(0, 3600 * S), 0, 86_400 * S),
            vec![Interval::new(3000 * S, 3600 * S)]
        );
    }

    #[test]
    fn silence_after_a_goodbye_is_a_stop_not_an_outage() {
        // Ticks every 10 s; the agent stops cleanly at 1005 s (its goodbye) and starts again
        // at 1600 s; it is killed at 2500 s and comes back at 3000 s.
        let mut ts: Vec<i64> = (0..=100).map(|i| i * 10 * S).collect();
        ts.push(1005 * S);
        ts.extend((160..=250).map(|i| i * 10 * S));
        ts.extend((300..=360).map(|i| i * 10 * S));
        let s = host_silence(
            &ts,
            &[1005 * S],
            10 * S,
            Interval::new(0, 3600 * S),
            0,
            3600 * S,
        );
        assert_eq!(s.stopped, vec![Interval::new(1005 * S, 1600 * S)]);
        assert_eq!(s.down, vec![Interval::new(2500 * S, 3000 * S)]);
        // Still stopped at the end of the range: not monitored up to it, not down.
        let s = host_silence(
            &ts[..102],
            &[1005 * S],
            10 * S,
            Interval::new(0, 1500 * S),
            0,
            1500 * S,
        );
        assert_eq!(s.stopped, vec![Interval::new(1005 * S, 1500 * S)]);
        assert!(s.down.is_empty());
    }

    #[test]
    fn a_process_is_down_from_a_zero_until_it_runs_again() {
        let points = [
            (0, 1.0),
            (10 * S, 0.0),
            (20 * S, 0.0),
            (70 * S, 1.0),
            (80 * S, 0.0),
            (90 * S, 0.0),
        ];
        // Still down at the last report, 10 s before the end: down to the end.
        assert_eq!(
            process_down(&points, 10 * S, Interval::new(0, 100 * S)),
            vec![
                Interval::new(10 * S, 70 * S),
                Interval::new(80 * S, 100 * S)
            ]
        );
        // The last report is older than three intervals: down as far as the data says.
        assert_eq!(
            process_down(&points, 10 * S, Interval::new(0, 200 * S)),
            vec![Interval::new(10 * S, 70 * S), Interval::new(80 * S, 90 * S)]
        );
    }
}
