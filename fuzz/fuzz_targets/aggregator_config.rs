//! The aggregator's configuration parser and the alert rules parser on arbitrary text.
//!
//! Beyond "does not panic": every refusal names the file; an accepted rules file can describe
//! each rule's condition; and every schedule an accepted file defines (a service's scheduled
//! hours, a mute window) can be laid out over a week, as sorted, disjoint intervals inside it.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nines_aggregator::alerts::Rules;
use nines_aggregator::availability::{Interval, Schedule};
use nines_aggregator::config::Config;

const CONFIG: &str = "/etc/nines/aggregator.toml";
const RULES: &str = "/etc/nines/alerts.toml";

/// 2026-03-23T00:00:00Z, a week with a daylight saving change in most of Europe.
const WEEK_START_MS: i64 = 1_774_224_000_000;
const WEEK_MS: i64 = 7 * 86_400_000;

fuzz_target!(|text: &str| {
    match Config::parse(text, Path::new(CONFIG)) {
        Ok(config) => {
            for s in &config.services {
                let schedule = s
                    .schedule
                    .to_schedule()
                    .expect("an accepted service has a valid schedule");
                lay_out(&schedule);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(CONFIG), "error without the file: {msg}");
        }
    }
    match Rules::parse(text, Path::new(RULES)) {
        Ok(rules) => {
            for rule in &rules.rules {
                assert!(!rule.condition().is_empty());
            }
            for mute in &rules.mutes {
                lay_out(&mute.schedule);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(RULES), "error without the file: {msg}");
        }
    }
});

fn lay_out(schedule: &Schedule) {
    let week = Interval {
        start: WEEK_START_MS,
        end: WEEK_START_MS + WEEK_MS,
    };
    let parts = schedule.scheduled(week);
    for p in &parts {
        assert!(!p.is_empty(), "empty interval {p:?}");
        assert!(
            week.start <= p.start && p.end <= week.end,
            "{p:?} outside {week:?}"
        );
    }
    for w in parts.windows(2) {
        assert!(w[0].end < w[1].start, "not sorted and merged: {parts:?}");
    }
}
