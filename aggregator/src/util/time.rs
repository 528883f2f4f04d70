//! Times as nines writes and reads them: i64 milliseconds since the Unix epoch, bounded to the
//! years 1970 to 9999, formatted as RFC 3339 by checked functions that never panic, and read
//! from parameters as milliseconds, RFC 3339 or `now`-relative (`now-6h`). Below every layer
//! that shows or takes a time (HTTP, status page, notifications, availability records).

/// The first instant a time parameter may name: 1970-01-01T00:00:00.000Z.
pub const MIN_MS: i64 = 0;
/// The last instant a time parameter may name: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Whether `ms` lies in the years 1970 to 9999.
pub fn in_range(ms: i64) -> bool {
    (MIN_MS..=MAX_MS).contains(&ms)
}

/// The UTC calendar fields of `ms`: (year, month, day, hour, minute, second, millisecond).
/// Integer arithmetic only (H. Hinnant's `civil_from_days`), so it cannot fail inside the
/// range; jiff's `Timestamp` stops a day short of 9999-12-31, which is why it is not used.
struct Civil(i64, i64, i64, i64, i64, i64, i64);

fn civil(ms: i64) -> Option<Civil> {
    if !in_range(ms) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(Civil(
        year,
        month,
        day,
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    ))
}

/// `2026-11-22T10:00:00.000Z`, or `None` outside the years 1970 to 9999.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let Civil(y, mo, d, h, mi, s, milli) = civil(ms)?;
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z"
    ))
}

/// `2026-11-22T10:00:00Z`, or `None` outside the years 1970 to 9999.
pub fn rfc3339_s(ms: i64) -> Option<String> {
    let Civil(y, mo, d, h, mi, s, _) = civil(ms)?;
    Some(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"))
}

/// [`rfc3339_ms`] where a text must be written whatever the value (a log line, a
/// notification): outside the range, the raw value as `<ms> ms (out of range)`.
pub fn rfc3339_or_raw(ms: i64) -> String {
    rfc3339_ms(ms).unwrap_or_else(|| format!("{ms} ms (out of range)"))
}

/// Why a time or duration parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not a number, RFC 3339 nor `now`-relative.
    #[error(
        "{name}={value:?}: use milliseconds since the epoch, RFC 3339 (2026-11-22T10:00:00Z) or a time relative to now (now, now-6h, now-30m, now+1h; units ms, s, m, h, d, w), in the years 1970 to 9999"
    )]
    Malformed {
        /// The parameter.
        name: String,
        /// What was given.
        value: String,
    },
    /// A time before 1970 or after 9999.
    #[error("{name}={value:?}: outside the years 1970 to 9999")]
    OutOfRange {
        /// The parameter.
        name: String,
        /// What was given.
        value: String,
    },
    /// Not a duration, zero, or longer than the range of times.
    #[error("{name}={value:?}: use a duration such as 30s, 5m or 1h, at most 8000 years")]
    Duration {
        /// The parameter.
        name: String,
        /// What was given.
        value: String,
    },
}

tokio::task_local! {
    /// The instant a request's `now` means, set once per HTTP request so that `from=now-1h`
    /// and `to=now` name the same `now`.
    static REQUEST_NOW: i64;
}

/// Runs `f` with `now` (ms) as the `now` of every time parameter it parses.
pub async fn with_now<F: std::future::Future>(now: i64, f: F) -> F::Output {
    REQUEST_NOW.scope(now, f).await
}

/// The current request's `now` (see [`with_now`]), else the system clock, ms since the epoch.
pub fn now_ms() -> i64 {
    REQUEST_NOW.try_with(|n| *n).unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// A time parameter: integer milliseconds since the epoch, RFC 3339, or relative to now
/// ([`parse_relative`]), in the years 1970 to 9999.
pub fn parse_ms(name: &str, v: &str) -> Result<i64, TimeError> {
    parse_ms_at(name, v, now_ms())
}

/// [`parse_ms`] with `now` given.
pub fn parse_ms_at(name: &str, v: &str, now: i64) -> Result<i64, TimeError> {
    let ms = if let Ok(ms) = v.parse::<i64>() {
        Some(ms)
    } else if let Some(rel) = parse_relative(v, now) {
        rel
    } else if let Ok(ts) = v.parse::<jiff::Timestamp>() {
        Some(ts.as_millisecond())
    } else {
        humantime::parse_rfc3339_weak(v)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    match ms {
        None => Err(TimeError::Malformed {
            name: name.to_owned(),
            value: v.to_owned(),
        }),
        Some(ms) => checked(name, v, ms),
    }
}

/// Grafana's relative times: `now`, then any number of `+N<unit>` or `-N<unit>` terms with
/// units `ms`, `s`, `m`, `h`, `d` (24 h) and `w` (7 d): `now-6h`, `now-1d-12h`, `now+30m`.
/// A space counts as `+`, as an unencoded `+` arrives in a query string. `None` if `v` does
/// not start with `now`; `Some(None)` if it does but is not well formed; `Some(Some(i64::MAX))`
/// for an offset no `i64` holds, which the range check then refuses.
pub fn parse_relative(v: &str, now: i64) -> Option<Option<i64>> {
    let rest = v.strip_prefix("now")?;
    let mut t = now;
    let mut rest = rest.as_bytes();
    while let Some((&sign, after)) = rest.split_first() {
        let negative = match sign {
            b'-' => true,
            b'+' | b' ' => false,
            _ => return Some(None),
        };
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, after) = after.split_at(digits);
        let letters = after.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, after) = after.split_at(letters);
        rest = after;
        let Some(n) = std::str::from_utf8(number)
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            return Some(None);
        };
        let unit_ms: i64 = match unit {
            b"ms" => 1,
            b"s" => 1000,
            b"m" => 60_000,
            b"h" => 3_600_000,
            b"d" => 86_400_000,
            b"w" => 7 * 86_400_000,
            _ => return Some(None),
        };
        let offset = n.saturating_mul(unit_ms);
        t = if negative {
            t.saturating_sub(offset)
        } else {
            t.saturating_add(offset)
        };
    }
    Some(Some(t))
}

/// `ms` if it lies in the years 1970 to 9999, else [`TimeError::OutOfRange`] naming `name`.
pub fn checked(name: &str, v: &str, ms: i64) -> Result<i64, TimeError> {
    if in_range(ms) {
        Ok(ms)
    } else {
        Err(TimeError::OutOfRange {
            name: name.to_owned(),
            value: v.to_owned(),
        })
    }
}

/// A duration parameter (`30s`, `5m`, `1h 30m`, `7d`) in milliseconds, from 1 ms to the span
/// of representable times ([`MAX_MS`]), so adding it to a time cannot overflow.
pub fn parse_duration_ms(name: &str, v: &str) -> Result<i64, TimeError> {
    humantime::parse_duration(v)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| (1..=MAX_MS).contains(ms))
        .ok_or_else(|| TimeError::Duration {
            name: name.to_owned(),
            value: v.to_owned(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_whole_range_and_refuses_beyond_it() {
        assert_eq!(rfc3339_ms(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(1_763_805_600_123).unwrap(),
            "2025-11-22T10:00:00.123Z"
        );
        assert_eq!(rfc3339_ms(MAX_MS).unwrap(), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_s(MAX_MS).unwrap(), "9999-12-31T23:59:59Z");
        for ms in [MAX_MS + 1, 253_402_300_800_000, i64::MAX, -1, i64::MIN] {
            assert_eq!(rfc3339_ms(ms), None, "{ms}");
            assert_eq!(rfc3339_s(ms), None, "{ms}");
            assert!(rfc3339_or_raw(ms).contains("out of range"));
        }
    }

    #[test]
    fn agrees_with_humantime_inside_the_range() {
        let spread = (0..2000).map(|i| i * (MAX_MS / 1999) + i * 7_919);
        for ms in [
            1,
            999,
            86_400_000,
            951_782_400_000,
            4_102_444_800_000,
            MAX_MS,
        ]
        .into_iter()
        .chain(spread.filter(|ms| in_range(*ms)))
        {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            assert_eq!(
                rfc3339_ms(ms).unwrap(),
                humantime::format_rfc3339_millis(t).to_string()
            );
        }
    }

    #[test]
    fn time_parameters_are_bounded_to_1970_through_9999() {
        assert_eq!(parse_ms("to", "0"), Ok(0));
        assert_eq!(parse_ms("to", "253402300799999"), Ok(MAX_MS));
        assert_eq!(
            parse_ms("to", "2026-11-22T10:00:00Z"),
            Ok(1_795_341_600_000)
        );
        for v in [
            "253402300800000",
            "9223372036854775807",
            "-1",
            "-9223372036854775808",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(
                matches!(parse_ms("to", v), Err(TimeError::OutOfRange { .. })),
                "{v}"
            );
        }
        for v in ["", "soon", "99999999999999999999", "10000-01-01T00:00:00Z"] {
            assert!(parse_ms("to", v).is_err(), "{v}");
        }
    }

    #[test]
    fn times_relative_to_now_take_grafanas_syntax() {
        let now = 1_795_341_600_000; // 2026-11-22T10:00:00Z
        for (v, want) in [
            ("now", now),
            ("now-6h", now - 6 * 3_600_000),
            ("now-30m", now - 30 * 60_000),
            ("now-7d", now - 7 * 86_400_000),
            ("now+1h", now + 3_600_000),
            ("now 1h", now + 3_600_000),
            ("now-2w", now - 14 * 86_400_000),
            ("now-90s", now - 90_000),
            ("now-250ms", now - 250),
            ("now-1d-12h", now - 36 * 3_600_000),
        ] {
            assert_eq!(parse_ms_at("from", v, now), Ok(want), "{v}");
        }
        for v in [
            "now-", "now-6", "now-6y", "now-h", "nowish", "now/d", "now-1d/d", "now--1h", "now-6H",
            "Now", " now",
        ] {
            let e = parse_ms_at("from", v, now).unwrap_err();
            assert!(matches!(e, TimeError::Malformed { .. }), "{v}: {e:?}");
            assert!(e.to_string().contains("now-6h"), "{e}");
            assert!(e.to_string().contains("RFC 3339"), "{e}");
        }
        // The years 1970 to 9999 bound relative times too.
        for v in [
            "now-60w*",
            "now-3000w",
            "now+500000w",
            "now-99999999999999999w",
        ] {
            assert!(parse_ms_at("from", v, now).is_err(), "{v}");
        }
        assert!(matches!(
            parse_ms_at("from", "now-3000w", now),
            Err(TimeError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_ms_at("from", "now+99999999999999999w", now),
            Err(TimeError::OutOfRange { .. })
        ));
    }

    #[tokio::test]
    async fn a_requests_now_is_one_instant() {
        let got = with_now(1_000_000, async {
            tokio::task::yield_now().await;
            (
                parse_ms("to", "now").unwrap(),
                parse_ms("from", "now-1s").unwrap(),
            )
        })
        .await;
        assert_eq!(got, (1_000_000, 999_000));
        let outside = parse_ms("to", "now").unwrap();
        assert!(outside > 1_700_000_000_000, "{outside}");
    }

    #[test]
    fn durations_are_bounded_so_time_plus_duration_cannot_overflow() {
        assert_eq!(parse_duration_ms("step", "5m"), Ok(300_000));
        for v in ["0s", "", "x", "9000y", "100000000000000000000s"] {
            assert!(parse_duration_ms("step", v).is_err(), "{v}");
        }
        let longest = parse_duration_ms("w", "8000y").unwrap();
        assert!(MAX_MS.checked_add(longest).is_some());
    }
}
