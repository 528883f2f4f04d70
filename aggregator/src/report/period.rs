//! The report period: `last-month`, `last-week`, `YYYY-MM` or `FROM..TO`, resolved against a
//! clock the caller passes in, always in UTC.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A resolved report period: `[from, to)` and how to name it in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Start, inclusive.
    pub from: Timestamp,
    /// End, exclusive.
    pub to: Timestamp,
    /// `2026-11`, `2026-W47`, or `FROM..TO` as given.
    pub label: String,
}

/// Why a `--period` could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--period {given:?}: {why}; use last-month, last-week, YYYY-MM or FROM..TO \
     (RFC 3339 or YYYY-MM-DD, e.g. 2026-11-01..2026-11-30)"
)]
pub struct PeriodError {
    /// The argument as given.
    pub given: String,
    /// What was wrong with it.
    pub why: String,
}

fn utc_midnight(d: Date) -> Result<Timestamp, String> {
    d.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("{d}: {e}"))
}

fn month(year: i16, month: i8) -> Result<(Timestamp, Timestamp), String> {
    let first = Date::new(year, month, 1).map_err(|e| e.to_string())?;
    let next = first
        .checked_add(1.month())
        .map_err(|e| format!("{first}: {e}"))?;
    Ok((utc_midnight(first)?, utc_midnight(next)?))
}

/// One end of `FROM..TO`: an RFC 3339 instant, or a date meaning midnight UTC at its start
/// (`FROM`) or at its end (`TO`, so `2026-11-01..2026-11-30` covers all of November).
fn endpoint(s: &str, is_end: bool) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let d: Date = s
        .parse()
        .map_err(|_| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    let d = if is_end {
        d.tomorrow().map_err(|e| format!("{s}: {e}"))?
    } else {
        d
    };
    utc_midnight(d)
}

fn parse_month(s: &str) -> Option<(i16, i8)> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !(y.chars().chain(m.chars())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((y.parse().ok()?, m.parse().ok()?))
}

/// Resolves `--period` at `now`.
pub fn parse(given: &str, now: Timestamp) -> Result<Period, PeriodError> {
    let err = |why: String| PeriodError {
        given: given.to_owned(),
        why,
    };
    let today = now.to_zoned(TimeZone::UTC).date();
    let (from, to, label) = match given {
        "last-month" => {
            let prev = today
                .first_of_month()
                .checked_sub(1.month())
                .map_err(|e| err(e.to_string()))?;
            let (f, t) = month(prev.year(), prev.month()).map_err(err)?;
            (f, t, format!("{:04}-{:02}", prev.year(), prev.month()))
        }
        "last-week" => {
            // ISO weeks run Monday to Sunday.
            let monday = today
                .checked_sub(i64::from(today.weekday().to_monday_zero_offset()).days())
                .and_then(|d| d.checked_sub(7.days()))
                .map_err(|e| err(e.to_string()))?;
            let sunday_next = monday
                .checked_add(7.days())
                .map_err(|e| err(e.to_string()))?;
            let week = monday.iso_week_date();
            (
                utc_midnight(monday).map_err(err)?,
                utc_midnight(sunday_next).map_err(err)?,
                format!("{:04}-W{:02}", week.year(), week.week()),
            )
        }
        _ => {
            if let Some((a, b)) = given.split_once("..") {
                let from = endpoint(a.trim(), false).map_err(err)?;
                let to = endpoint(b.trim(), true).map_err(err)?;
                (from, to, given.to_owned())
            } else if let Some((y, m)) = parse_month(given) {
                let (f, t) = month(y, m).map_err(err)?;
                (f, t, given.to_owned())
            } else {
                return Err(err("not a period".into()));
            }
        }
    };
    if from >= to {
        return Err(err("the start is not before the end".into()));
    }
    if from > now {
        return Err(err("the period starts in the future".into()));
    }
    Ok(Period { from, to, label })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn span(p: &Period) -> (String, String, &str) {
        (p.from.to_string(), p.to.to_string(), p.label.as_str())
    }

    #[test]
    fn last_month_is_the_previous_calendar_month_in_utc() {
        // 00:30 on 1 December in Berlin is still 30 November in UTC.
        let p = parse("last-month", at("2026-11-30T23:30:00Z")).unwrap();
        assert_eq!(
            span(&p),
            (
                "2026-10-01T00:00:00Z".into(),
                "2026-11-01T00:00:00Z".into(),
                "2026-10"
            )
        );
        let p = parse("last-month", at("2027-01-01T06:00:00Z")).unwrap();
        assert_eq!(
            span(&p),
            (
                "2026-12-01T00:00:00Z".into(),
                "2027-01-01T00:00:00Z".into(),
                "2026-12"
            )
        );
        let p = parse("last-month", at("2028-03-15T00:00:00Z")).unwrap();
        assert_eq!(
            p.to.as_second() - p.from.as_second(),
            29 * 86_400,
            "leap February"
        );
    }

    #[test]
    fn last_week_is_the_previous_iso_week_monday_to_sunday() {
        // Wednesday 2026-11-25: the week before runs Monday 16 to Sunday 22 November.
        let p = parse("last-week", at("2026-11-25T12:00:00Z")).unwrap();
        assert_eq!(
            span(&p),
            (
                "2026-11-16T00:00:00Z".into(),
                "2026-11-23T00:00:00Z".into(),
                "2026-W47"
            )
        );
        // On a Monday, last week is the one that just ended.
        let p = parse("last-week", at("2026-11-23T06:00:00Z")).unwrap();
        assert_eq!(p.from, at("2026-11-16T00:00:00Z"));
        // On a Sunday, it is not the week still running.
        let p = parse("last-week", at("2026-11-22T23:59:59Z")).unwrap();
        assert_eq!(p.from, at("2026-11-09T00:00:00Z"));
        // Across a year: ISO week 53 of 2026 starts on 28 December.
        let p = parse("last-week", at("2027-01-05T00:00:00Z")).unwrap();
        assert_eq!(span(&p).2, "2026-W53");
        assert_eq!(p.from, at("2026-12-28T00:00:00Z"));
    }

    #[test]
    fn a_named_month_and_explicit_ranges() {
        let now = at("2026-12-10T00:00:00Z");
        let p = parse("2026-02", now).unwrap();
        assert_eq!(
            span(&p),
            (
                "2026-02-01T00:00:00Z".into(),
                "2026-03-01T00:00:00Z".into(),
                "2026-02"
            )
        );
        // A date as TO includes that day.
        let p = parse("2026-11-01..2026-11-30", now).unwrap();
        assert_eq!(p.from, at("2026-11-01T00:00:00Z"));
        assert_eq!(p.to, at("2026-12-01T00:00:00Z"));
        // RFC 3339 instants are taken as they are, offsets included.
        let p = parse("2026-11-01T00:00:00+01:00..2026-11-08T00:00:00Z", now).unwrap();
        assert_eq!(p.from, at("2026-10-31T23:00:00Z"));
        assert_eq!(p.to, at("2026-11-08T00:00:00Z"));
        assert_eq!(p.label, "2026-11-01T00:00:00+01:00..2026-11-08T00:00:00Z");
    }

    #[test]
    fn bad_periods_say_what_was_wrong() {
        let now = at("2026-12-10T00:00:00Z");
        for (given, why) in [
            ("yesterday", "not a period"),
            ("2026-13", "month"),
            ("2026-1", "not a period"),
            ("2026-11-30..2026-11-01", "not before"),
            ("2026-11-01..soon", "neither RFC 3339"),
            ("2027-01", "future"),
            ("", "not a period"),
        ] {
            let e = parse(given, now).unwrap_err();
            assert!(e.why.contains(why), "{given:?}: {e}");
            assert!(e.to_string().contains("last-month"), "{e}");
        }
    }
}
