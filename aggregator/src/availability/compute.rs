//! The availability arithmetic: scheduled minutes, weighted downtime, error budget, MTTR and
//! MTBF of one service, and the totals of several.

use serde::Serialize;

use super::interval::{self, Interval};

/// Time in which some users could not do some of their work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outage {
    /// When.
    pub interval: Interval,
    /// Fraction of users affected, 0 to 1.
    pub share: f64,
    /// Fraction of their work lost, 0 to 1.
    pub impact: f64,
}

impl Outage {
    /// A full outage: every user, all of their work.
    pub fn full(interval: Interval) -> Self {
        Self {
            interval,
            share: 1.0,
            impact: 1.0,
        }
    }

    fn weight(&self) -> f64 {
        (self.share * self.impact).clamp(0.0, 1.0)
    }

    /// Weighted minutes this outage costs within `scheduled` (a normalized set).
    pub fn lost_minutes(&self, scheduled: &[Interval]) -> f64 {
        interval::minutes(&interval::intersect(&[self.interval], scheduled)) * self.weight()
    }
}

/// One service over one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scheduled minutes, maintenance excluded when the service says so.
    pub scheduled_minutes: f64,
    /// Σ outage minutes within scheduled time × share × impact; overlapping outages never
    /// count a minute more than once.
    pub downtime_minutes: f64,
    /// 100 × (scheduled − downtime) / scheduled; 100 when nothing was scheduled.
    pub availability_percent: f64,
    /// The target.
    pub target_percent: f64,
    /// Whether availability reaches the target.
    pub met: bool,
    /// Downtime the target allows in this period, minutes.
    pub error_budget_minutes: f64,
    /// Budget minus downtime; negative when the target is missed.
    pub error_budget_minutes_left: f64,
    /// Outages that cost scheduled time.
    pub incident_count: usize,
    /// Mean minutes from the start of such an outage to its end.
    pub mttr_minutes: Option<f64>,
    /// Mean scheduled minutes up between failures: (scheduled − minutes down) / incidents.
    pub mtbf_minutes: Option<f64>,
}

/// What a period says of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Availability reached the target.
    Met,
    /// It did not.
    Missed,
    /// Nothing to judge: no monitored scheduled time in the period.
    Unknown,
}

impl Summary {
    /// Met or missed; unknown when no scheduled minute of the period was monitored.
    pub fn verdict(&self) -> Verdict {
        if self.scheduled_minutes <= 0.0 {
            Verdict::Unknown
        } else if self.met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }
}

/// Availability of one service with scheduled set `scheduled` (normalized) and `outages`.
pub fn summarize(scheduled: &[Interval], outages: &[Outage], target_percent: f64) -> Summary {
    let scheduled_minutes = interval::minutes(scheduled);
    let downtime_minutes = weighted_downtime(scheduled, outages).min(scheduled_minutes);
    // Clamped: 100 × s / s can come out a rounding step above 100.
    let availability_percent = if scheduled_minutes > 0.0 {
        (100.0 * (scheduled_minutes - downtime_minutes) / scheduled_minutes).clamp(0.0, 100.0)
    } else {
        100.0
    };
    let error_budget_minutes = scheduled_minutes * (100.0 - target_percent) / 100.0;
    let counted: Vec<&Outage> = outages
        .iter()
        .filter(|o| o.weight() > 0.0 && o.lost_minutes(scheduled) > 0.0)
        .collect();
    let incident_count = counted.len();
    let down_minutes = interval::minutes(&interval::intersect(
        &interval::normalize(counted.iter().map(|o| o.interval).collect()),
        scheduled,
    ));
    let (mttr_minutes, mtbf_minutes) = if incident_count == 0 {
        (None, None)
    } else {
        let n = incident_count as f64;
        (
            Some(counted.iter().map(|o| o.interval.minutes()).sum::<f64>() / n),
            Some((scheduled_minutes - down_minutes) / n),
        )
    };
    Summary {
        scheduled_minutes,
        downtime_minutes,
        availability_percent,
        target_percent,
        // A rounding residue must not turn an exact hit into a miss.
        met: availability_percent + 1e-9 >= target_percent,
        error_budget_minutes,
        error_budget_minutes_left: error_budget_minutes - downtime_minutes,
        incident_count,
        mttr_minutes,
        mtbf_minutes,
    }
}

/// Σ over elementary segments of (segment ∩ scheduled) × min(1, Σ weights covering it).
fn weighted_downtime(scheduled: &[Interval], outages: &[Outage]) -> f64 {
    let parts: Vec<(Interval, f64)> = outages
        .iter()
        .filter(|o| o.weight() > 0.0)
        .flat_map(|o| {
            interval::intersect(&[o.interval], scheduled)
                .into_iter()
                .map(move |i| (i, o.weight()))
        })
        .collect();
    let mut bounds: Vec<i64> = parts.iter().flat_map(|(i, _)| [i.start, i.end]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|w| {
            let seg = Interval::new(w[0], w[1]);
            let weight: f64 = parts
                .iter()
                .filter(|(i, _)| i.start <= seg.start && i.end >= seg.end)
                .map(|(_, w)| w)
                .sum();
            seg.minutes() * weight.min(1.0)
        })
        // An empty f64 sum is -0.0, which JSON and text would print as "-0.0".
        .sum::<f64>()
        + 0.0
}

/// Several services together: minute-weighted, and as a serial chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Total {
    /// 100 × Σ(scheduled − downtime) / Σ scheduled: each service counts by its scheduled
    /// minutes, not as a plain average of percentages.
    pub weighted_percent: f64,
    /// 100 × Π availability: a chain in which every service is required.
    pub serial_percent: f64,
}

/// Totals over `parts`; parts with nothing to judge ([`Verdict::Unknown`]) do not count.
pub fn total(parts: &[Summary]) -> Total {
    let parts: Vec<&Summary> = parts
        .iter()
        .filter(|s| s.verdict() != Verdict::Unknown)
        .collect();
    let scheduled: f64 = parts.iter().map(|s| s.scheduled_minutes).sum::<f64>() + 0.0;
    let down: f64 = parts.iter().map(|s| s.downtime_minutes).sum::<f64>() + 0.0;
    Total {
        weighted_percent: if scheduled > 0.0 {
            (100.0 * (scheduled - down) / scheduled).clamp(0.0, 100.0)
        } else {
            100.0
        },
        serial_percent: 100.0
            * parts
                .iter()
                .map(|s| s.availability_percent / 100.0)
                .product::<f64>(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::availability::interval::MINUTE_MS;
    use crate::availability::schedule::effective_schedule;
    use crate::availability::schedule::{Schedule, parse_window, time_zone};

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn week() -> Vec<Interval> {
        Schedule::always().scheduled(Interval::new(
            ms("2026-11-02T00:00:00Z"),
            ms("2026-11-09T00:00:00Z"),
        ))
    }

    fn hour_outage(share: f64, impact: f64) -> Outage {
        let start = ms("2026-11-04T10:00:00Z");
        Outage {
            interval: Interval::new(start, start + 60 * MINUTE_MS),
            share,
            impact,
        }
    }

    #[test]
    fn a_24x7_week_with_one_60_minute_full_outage() {
        let s = summarize(&week(), &[hour_outage(1.0, 1.0)], 99.9);
        assert_eq!(s.scheduled_minutes, 10_080.0);
        assert_eq!(s.downtime_minutes, 60.0);
        close(s.availability_percent, 99.404_761_904_761_9);
        assert!(!s.met);
        close(s.error_budget_minutes, 10.08);
        close(s.error_budget_minutes_left, -49.92);
        assert_eq!(s.incident_count, 1);
        assert_eq!(s.mttr_minutes, Some(60.0));
        assert_eq!(s.mtbf_minutes, Some(10_020.0));
    }

    #[test]
    fn the_same_outage_for_a_tenth_of_the_users() {
        let s = summarize(&week(), &[hour_outage(0.1, 1.0)], 99.9);
        close(s.downtime_minutes, 6.0);
        close(s.availability_percent, 99.940_476_190_476_2);
        assert!(s.met);
        close(s.error_budget_minutes_left, 4.08);
    }

    #[test]
    fn the_same_outage_losing_a_fifth_of_the_work() {
        let s = summarize(&week(), &[hour_outage(1.0, 0.2)], 99.9);
        close(s.downtime_minutes, 12.0);
        close(s.availability_percent, 99.880_952_380_952_4);
        assert!(!s.met);
        close(s.error_budget_minutes_left, -1.92);

        // Both: a tenth of the users lose a fifth of their work.
        let s = summarize(&week(), &[hour_outage(0.1, 0.2)], 99.9);
        close(s.downtime_minutes, 1.2);
        close(s.availability_percent, 99.988_095_238_095_2);
    }

    #[test]
    fn overlapping_outages_never_count_a_minute_twice() {
        let a = hour_outage(1.0, 1.0);
        let mut b = a;
        b.interval.start += 30 * MINUTE_MS;
        b.interval.end += 30 * MINUTE_MS;
        let s = summarize(&week(), &[a, b], 99.9);
        assert_eq!(s.downtime_minutes, 90.0);
        assert_eq!(s.incident_count, 2);
    }

    #[test]
    fn business_hours_across_a_daylight_saving_change() {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let schedule = Schedule {
            time_zone: time_zone("Europe/Berlin").unwrap(),
            weekly: vec![parse_window(&days, "09:00", "17:00").unwrap()],
            holidays: Vec::new(),
        };
        let scheduled = schedule.scheduled(Interval::new(
            ms("2026-10-19T00:00:00Z"),
            ms("2026-11-02T00:00:00Z"),
        ));
        // 07:00-08:00 UTC is 09:00-10:00 in summer time (scheduled) but 08:00-09:00 after the
        // clocks go back on 2026-10-25 (before opening).
        let outages = [
            Outage::full(Interval::new(
                ms("2026-10-20T07:00:00Z"),
                ms("2026-10-20T08:00:00Z"),
            )),
            Outage::full(Interval::new(
                ms("2026-10-27T07:00:00Z"),
                ms("2026-10-27T08:00:00Z"),
            )),
        ];
        let s = summarize(&scheduled, &outages, 99.0);
        assert_eq!(s.scheduled_minutes, 4_800.0);
        assert_eq!(s.downtime_minutes, 60.0);
        close(s.availability_percent, 98.75);
        assert_eq!(s.incident_count, 1);
        assert!(!s.met);
    }

    #[test]
    fn a_maintenance_window_is_excluded_when_the_service_says_so() {
        let start = ms("2026-11-04T10:00:00Z");
        let maintenance = [Interval::new(
            start - 30 * MINUTE_MS,
            start + 90 * MINUTE_MS,
        )];
        // The outage happens inside the maintenance window.
        let excluded = effective_schedule(week(), &maintenance, true);
        let s = summarize(&excluded, &[hour_outage(1.0, 1.0)], 99.9);
        assert_eq!(s.scheduled_minutes, 9_960.0);
        assert_eq!(s.downtime_minutes, 0.0);
        assert_eq!(s.availability_percent, 100.0);
        assert_eq!(s.incident_count, 0);

        let included = effective_schedule(week(), &maintenance, false);
        let s = summarize(&included, &[hour_outage(1.0, 1.0)], 99.9);
        assert_eq!(s.scheduled_minutes, 10_080.0);
        assert_eq!(s.downtime_minutes, 60.0);
    }

    #[test]
    fn a_composite_of_services_with_different_scheduled_minutes() {
        let a = summarize(&week(), &[hour_outage(1.0, 1.0)], 99.0);
        let business = Schedule {
            time_zone: TimeZone::UTC,
            weekly: vec![
                parse_window(
                    &["mon", "tue", "wed", "thu", "fri"].map(String::from),
                    "09:00",
                    "17:00",
                )
                .unwrap(),
            ],
            holidays: Vec::new(),
        }
        .scheduled(Interval::new(
            ms("2026-11-02T00:00:00Z"),
            ms("2026-11-09T00:00:00Z"),
        ));
        let start = ms("2026-11-03T09:00:00Z");
        let b = summarize(
            &business,
            &[Outage::full(Interval::new(start, start + 24 * MINUTE_MS))],
            99.0,
        );
        assert_eq!(b.scheduled_minutes, 2_400.0);
        close(b.availability_percent, 99.0);
        assert!(b.met);
        let t = total(&[a, b]);
        // (10080 + 2400 - 60 - 24) / (10080 + 2400); a plain average would say 99.202.
        close(t.weighted_percent, 99.326_923_076_923_08);
        close(t.serial_percent, 98.410_714_285_714_29);
    }

    use jiff::tz::TimeZone;

    #[test]
    fn no_outage_is_zero_downtime_not_negative_zero() {
        // An empty f64 sum is -0.0: "downtime_minutes": -0.0 in JSON, "-0.0" in a report.
        let s = summarize(&week(), &[], 99.9);
        assert!(s.downtime_minutes == 0.0 && s.downtime_minutes.is_sign_positive());
        assert_eq!(format!("{:.1}", s.downtime_minutes), "0.0");
        assert_eq!(serde_json::to_string(&s.downtime_minutes).unwrap(), "0.0");
        let none = summarize(&[], &[], 99.9);
        assert!(
            none.scheduled_minutes.is_sign_positive() && none.downtime_minutes.is_sign_positive()
        );
    }
}
