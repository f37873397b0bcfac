//! Durations in the configuration: `500ms`, `30s`, `5m`, `1h`, `1d`, sums such as `1h30m`, or
//! bare integer seconds. No value can overflow: a sum too large is refused.

use std::time::Duration;

/// The longest duration any field accepts before its own bound: 30 days.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// Why a duration did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not a sum of numbers with units.
    Invalid,
    /// A sum too large for a `Duration`.
    TooLarge,
}

/// Parses a sum of numbers with units: `500ms`, `30s`, `5m`, `1h`, `1d`, `1h30m`. The one
/// parser behind the configuration file and the CLI's flags; a sum too large is refused, never
/// wrapped. Bounds and bare numbers are each caller's business.
pub fn parse_duration_units(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() {
            return Err(DurationError::Invalid);
        }
        let value: u64 = number.parse().map_err(|_| DurationError::TooLarge)?;
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u64 = match unit {
            "ms" => 0,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(DurationError::Invalid),
        };
        let part = if scale == 0 {
            Duration::from_millis(value)
        } else {
            Duration::from_secs(value.checked_mul(scale).ok_or(DurationError::TooLarge)?)
        };
        total = total.checked_add(part).ok_or(DurationError::TooLarge)?;
        rest = after;
    }
    Ok(total)
}

/// Parses a duration written with units (`500ms`, `30s`, `5m`, `1h`, `1d`, `1h30m`) or as bare
/// digits (seconds). At most [`MAX_DURATION`].
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let too_large = || format!("duration {text:?} is above the maximum of 30 days");
    let rest = text.trim();
    if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = rest.parse().map_err(|_| too_large())?;
        return seconds(secs).ok_or_else(too_large);
    }
    let total = parse_duration_units(rest).map_err(|e| match e {
        DurationError::Invalid => format!(
            "invalid duration {text:?}: write a number with a unit (500ms, 30s, 5m, 1h, 1h30m) or whole seconds"
        ),
        DurationError::TooLarge => too_large(),
    })?;
    if total > MAX_DURATION {
        return Err(too_large());
    }
    Ok(total)
}

/// Whole seconds as a duration, at most [`MAX_DURATION`].
pub(crate) fn seconds(secs: u64) -> Option<Duration> {
    let value = Duration::from_secs(secs);
    (value <= MAX_DURATION).then_some(value)
}

/// A duration for messages: `500ms`, `30s`, `5m`, `1h30m`.
pub(crate) fn show(d: Duration) -> String {
    let millis = d.subsec_millis();
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{millis}ms");
    }
    let mut out = String::new();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_sums_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30d"), Ok(MAX_DURATION));
    }

    #[test]
    fn refusals_name_the_text() {
        for bad in [
            "",
            "s",
            "5x",
            "-1s",
            "1.5s",
            "1 h",
            "30d1s",
            "99999999999999999999s",
            "18446744073709551615d",
            "18446744073709551615",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn shown_compactly() {
        assert_eq!(show(Duration::from_millis(500)), "500ms");
        assert_eq!(show(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show(Duration::from_secs(60)), "1m");
        assert_eq!(show(Duration::ZERO), "0ms");
    }
}
