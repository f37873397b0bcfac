//! Times for people: parsing `--now`, and "1 h 12 min ago (2026-12-06T04:20:00Z)".

use keyward::clock::format_rfc3339;

/// `--now`: Unix seconds (`1767225600`) or RFC 3339 (`2026-12-06T04:20:00Z`, an offset such as
/// `+02:00` instead of `Z`, fractional seconds ignored).
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(unix) = text.parse::<i64>() {
        return Ok(unix);
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!("invalid time {text:?}: use Unix seconds (1767225600) or RFC 3339 (2026-12-06T04:20:00Z)")
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to Unix seconds; `None` when not that form.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    if bytes.len() < 20 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = text.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if digits == 0 {
            return None;
        }
        rest = fraction.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let (oh, om) = (rest.get(1..3)?.parse::<i64>().ok()?, rest.get(4..6)?.parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's days-from-civil), for years 0000..=9999.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A span for people: `45 s`, `3 min 20 s`, `1 h 12 min`, `2 d 3 h`, `400 d`.
pub(crate) fn span(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) if s == 0 => format!("{m} min"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, 0) => format!("{h} h"),
        (0, _, _) => format!("{h} h {m} min"),
        _ if h == 0 || d >= 30 => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// `at` relative to `now` for people: "1 h 12 min ago (2026-12-06T04:20:00Z)" or
/// "in 5 min (…)".
pub(crate) fn relative(at: i64, now: i64) -> String {
    let stamp = format_rfc3339(at);
    let diff = i128::from(at) - i128::from(now);
    let magnitude = u64::try_from(diff.unsigned_abs()).unwrap_or(u64::MAX);
    match diff {
        0 => format!("now ({stamp})"),
        d if d < 0 => format!("{} ago ({stamp})", span(magnitude)),
        _ => format!("in {} ({stamp})", span(magnitude)),
    }
}

/// A NumericDate claim in whole seconds, as the verifier reads it: integers as they are,
/// fractions rounded (`exp` down, `nbf` and `iat` up); `None` when absent or not a number in range.
pub(crate) fn numeric_date(claims: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    if let Some(whole) = value.as_i64() {
        return Some(whole);
    }
    let seconds = value.as_f64().filter(|f| f.is_finite() && f.abs() < 9.0e15)?;
    // Finite and bounded above, so the conversion is exact.
    Some(if name == "exp" { seconds.floor() } else { seconds.ceil() } as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(parse_time("1767225600"), Ok(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Ok(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T02:00:00+02:00"), Ok(1_767_225_600));
        assert_eq!(parse_time("2025-12-31T19:00:00.250-05:00"), Ok(1_767_225_600));
        assert_eq!(parse_time("2024-02-29T12:34:56Z"), Ok(1_709_210_096));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Ok(-1));
        for bad in
            ["", "2026-02-30T00:00:00Z", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "soon"]
        {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        // Round trip with the library's formatter.
        for t in [0, 951_782_400, 1_767_225_600, 4_102_444_799] {
            assert_eq!(parse_time(&format_rfc3339(t)), Ok(t));
        }
    }

    #[test]
    fn spans_read_like_people_write() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(200), "3 min 20 s");
        assert_eq!(span(4_320), "1 h 12 min");
        assert_eq!(span(7_200), "2 h");
        assert_eq!(span(183_600), "2 d 3 h");
        assert_eq!(span(400 * 86_400 + 5), "400 d");
        assert_eq!(relative(1_767_225_600 - 4_320, 1_767_225_600), "1 h 12 min ago (2025-12-31T22:48:00Z)");
        assert_eq!(relative(1_767_225_660, 1_767_225_600), "in 1 min (2026-01-01T00:01:00Z)");
    }
}
