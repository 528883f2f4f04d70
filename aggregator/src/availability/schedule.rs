//! Scheduled time: 24x7, or weekly windows of local time in an IANA time zone, minus holidays.
//! The same weekly windows describe recurring maintenance.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;

use super::interval::{self, Interval, normalize};

/// One weekly window: on each of `days`, from `start` to `end` minutes after local midnight.
/// `end <= start` runs past midnight into the next day; `end = 1440` is midnight.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyWindow {
    /// Days the window opens on.
    pub days: Vec<Weekday>,
    /// Opening, minutes after local midnight (0..1440).
    pub start_minute: u32,
    /// Closing, minutes after local midnight (1..=1440).
    pub end_minute: u32,
}

/// When a service is expected to be available.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The zone the windows and holidays are read in.
    pub time_zone: TimeZone,
    /// Weekly windows; none means 24x7.
    pub weekly: Vec<WeeklyWindow>,
    /// Local dates on which nothing is scheduled.
    pub holidays: Vec<Date>,
}

impl Schedule {
    /// Around the clock, every day, in UTC.
    pub fn always() -> Self {
        Self {
            time_zone: TimeZone::UTC,
            weekly: Vec::new(),
            holidays: Vec::new(),
        }
    }

    /// The scheduled parts of `range`, sorted and merged.
    pub fn scheduled(&self, range: Interval) -> Vec<Interval> {
        if range.is_empty() {
            return Vec::new();
        }
        if self.weekly.is_empty() && self.holidays.is_empty() {
            return vec![range];
        }
        let all_day = [WeeklyWindow {
            days: ALL_DAYS.to_vec(),
            start_minute: 0,
            end_minute: 1440,
        }];
        let windows: &[WeeklyWindow] = if self.weekly.is_empty() {
            &all_day
        } else {
            &self.weekly
        };
        let (Some(first), Some(last)) = (
            local_date(range.start, &self.time_zone),
            local_date(range.end, &self.time_zone),
        ) else {
            return Vec::new();
        };
        // One day of margin on each side for windows that cross midnight.
        let mut day = first.yesterday().unwrap_or(first);
        let mut out = Vec::new();
        while day <= last {
            if !self.holidays.contains(&day) {
                for w in windows.iter().filter(|w| w.days.contains(&day.weekday())) {
                    if let Some(i) = window_on(day, w, &self.time_zone) {
                        let i = i.intersect(&range);
                        if !i.is_empty() {
                            out.push(i);
                        }
                    }
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        normalize(out)
    }
}

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn local_date(ms: i64, tz: &TimeZone) -> Option<Date> {
    Some(
        Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned(tz.clone())
            .date(),
    )
}

/// Local `day` at `minute` after midnight (up to 1440) as ms UTC. A local time that does not
/// exist (the hour skipped when clocks go forward) maps to the instant after the gap; an
/// ambiguous one (clocks going back) to the earlier instant.
fn local_ms(day: Date, minute: u32, tz: &TimeZone) -> Option<i64> {
    let (day, minute) = if minute >= 1440 {
        (day.tomorrow().ok()?, minute - 1440)
    } else {
        (day, minute)
    };
    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
    let ts = tz.to_timestamp(DateTime::from_parts(day, time)).ok()?;
    Some(ts.as_millisecond())
}

fn window_on(day: Date, w: &WeeklyWindow, tz: &TimeZone) -> Option<Interval> {
    let end_minute = if w.end_minute <= w.start_minute {
        w.end_minute + 1440
    } else {
        w.end_minute
    };
    Some(Interval::new(
        local_ms(day, w.start_minute, tz)?,
        local_ms(day, end_minute, tz)?,
    ))
}

/// Looks up an IANA time zone name (`Europe/Berlin`, `UTC`) in the database built into nines.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
    })
}

/// `mon`..`sun` (or the full English name) to a weekday.
pub fn parse_day(s: &str) -> Result<Weekday, String> {
    let d = match s.to_ascii_lowercase().get(..3) {
        Some("mon") => Weekday::Monday,
        Some("tue") => Weekday::Tuesday,
        Some("wed") => Weekday::Wednesday,
        Some("thu") => Weekday::Thursday,
        Some("fri") => Weekday::Friday,
        Some("sat") => Weekday::Saturday,
        Some("sun") => Weekday::Sunday,
        _ => {
            return Err(format!(
                "day {s:?}: use mon, tue, wed, thu, fri, sat or sun"
            ));
        }
    };
    Ok(d)
}

/// `HH:MM` (00:00 to 24:00) to minutes after midnight.
pub fn parse_hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("time {s:?}: use HH:MM from 00:00 to 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    // `h` is checked first: `h * 60` of a large hour would overflow.
    if m >= 60 || h > 24 || h * 60 + m > 1440 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `YYYY-MM-DD` to a date.
pub fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|_| format!("date {s:?}: use YYYY-MM-DD"))
}

/// A weekly window from its written form.
pub fn parse_window(days: &[String], start: &str, end: &str) -> Result<WeeklyWindow, String> {
    if days.is_empty() {
        return Err("a weekly window needs at least one day".into());
    }
    let w = WeeklyWindow {
        days: days
            .iter()
            .map(|d| parse_day(d))
            .collect::<Result<_, _>>()?,
        start_minute: parse_hhmm(start)?,
        end_minute: parse_hhmm(end)?,
    };
    if w.start_minute >= 1440 {
        return Err(format!("start {start:?}: a window opens before 24:00"));
    }
    if w.start_minute == w.end_minute {
        return Err(format!("window {start}-{end} is empty"));
    }
    Ok(w)
}

/// The scheduled set: `scheduled` minus `maintenance` when `exclude_maintenance` (a service
/// whose maintenance windows do not count as scheduled time).
pub fn effective_schedule(
    scheduled: Vec<Interval>,
    maintenance: &[Interval],
    exclude_maintenance: bool,
) -> Vec<Interval> {
    let scheduled = interval::normalize(scheduled);
    if exclude_maintenance {
        interval::subtract(&scheduled, &interval::normalize(maintenance.to_vec()))
    } else {
        scheduled
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::availability::interval::minutes;

    pub(crate) fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    pub(crate) fn business_hours(tz: &str) -> Schedule {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Schedule {
            time_zone: time_zone(tz).unwrap(),
            weekly: vec![parse_window(&days, "09:00", "17:00").unwrap()],
            holidays: Vec::new(),
        }
    }

    #[test]
    fn a_24x7_week_is_10080_minutes() {
        let week = Interval::new(ms("2026-11-02T00:00:00Z"), ms("2026-11-09T00:00:00Z"));
        assert_eq!(minutes(&Schedule::always().scheduled(week)), 10_080.0);
    }

    #[test]
    fn business_hours_follow_local_time_across_a_daylight_saving_change() {
        // Europe/Berlin leaves summer time on Sunday 2026-10-25: 09:00 local is 07:00 UTC
        // before and 08:00 UTC after.
        let s = business_hours("Europe/Berlin");
        let two_weeks = Interval::new(ms("2026-10-19T00:00:00Z"), ms("2026-11-02T00:00:00Z"));
        let sched = s.scheduled(two_weeks);
        assert_eq!(sched.len(), 10);
        assert_eq!(minutes(&sched), 4_800.0);
        assert_eq!(
            sched[0],
            Interval::new(ms("2026-10-19T07:00:00Z"), ms("2026-10-19T15:00:00Z"))
        );
        assert_eq!(
            sched[5],
            Interval::new(ms("2026-10-26T08:00:00Z"), ms("2026-10-26T16:00:00Z"))
        );
    }

    #[test]
    fn the_day_clocks_go_back_has_25_hours_and_holidays_are_skipped() {
        let sunday = vec!["sun".to_string()];
        let mut s = Schedule {
            time_zone: time_zone("Europe/Berlin").unwrap(),
            weekly: vec![parse_window(&sunday, "00:00", "24:00").unwrap()],
            holidays: Vec::new(),
        };
        let week = Interval::new(ms("2026-10-19T00:00:00Z"), ms("2026-10-26T12:00:00Z"));
        assert_eq!(minutes(&s.scheduled(week)), 1_500.0);
        s.holidays.push(parse_date("2026-10-25").unwrap());
        assert_eq!(minutes(&s.scheduled(week)), 0.0);

        // 24x7 with a holiday: a local day less.
        let s = Schedule {
            time_zone: time_zone("Europe/Berlin").unwrap(),
            weekly: Vec::new(),
            holidays: vec![parse_date("2026-12-25").unwrap()],
        };
        let week = Interval::new(
            ms("2026-12-21T00:00:00+01:00"),
            ms("2026-12-28T00:00:00+01:00"),
        );
        assert_eq!(minutes(&s.scheduled(week)), 10_080.0 - 1_440.0);
    }

    #[test]
    fn overnight_windows_and_bad_input() {
        let days = vec!["fri".to_string()];
        let s = Schedule {
            time_zone: TimeZone::UTC,
            weekly: vec![parse_window(&days, "22:00", "06:00").unwrap()],
            holidays: Vec::new(),
        };
        let week = Interval::new(ms("2026-11-02T00:00:00Z"), ms("2026-11-09T00:00:00Z"));
        assert_eq!(
            s.scheduled(week),
            vec![Interval::new(
                ms("2026-11-06T22:00:00Z"),
                ms("2026-11-07T06:00:00Z")
            )]
        );
        assert!(parse_hhmm("25:00").unwrap_err().contains("HH:MM"));
        // Hours whose minutes overflow u32 are refused, not wrapped round (71582789 h is
        // 00:44 modulo 2^32 minutes) and not a panic.
        assert!(parse_hhmm("71582789:00").is_err());
        assert!(parse_hhmm("99999999:00").is_err());
        assert_eq!(parse_hhmm("24:00"), Ok(1440));
        assert!(parse_day("funday").unwrap_err().contains("mon"));
        assert!(time_zone("Mars/Olympus").unwrap_err().contains("IANA"));
        assert!(parse_date("2026-13-01").is_err());
    }
}
