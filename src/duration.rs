//! Flink's `TimeUtils.parseDuration`: an integer, optional blanks, an optional unit;
//! no unit means milliseconds. Units are case-insensitive.

use std::time::Duration;

const NANOS_PER: &[(&[&str], u128)] = &[
    (&["d", "day", "days"], 86_400_000_000_000),
    (&["h", "hour", "hours"], 3_600_000_000_000),
    (&["min", "m", "minute", "minutes"], 60_000_000_000),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000_000),
    (&["", "ms", "milli", "millis", "millisecond", "milliseconds"], 1_000_000),
    (&["µs", "micro", "micros", "microsecond", "microseconds"], 1_000),
    (&["ns", "nano", "nanos", "nanosecond", "nanoseconds"], 1),
];

/// What is wrong with a duration. Displayed as the rest of a sentence about the value
/// ("`15 fortnights` has an unknown unit `fortnights`").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The value is empty or only blanks.
    #[error("is empty")]
    Empty,
    /// The value does not start with a digit (a sign counts as not a digit).
    #[error("does not start with a number")]
    NoNumber,
    /// The number has a decimal point or comma.
    #[error("is not a whole number (Flink durations take no fractions; use a smaller unit)")]
    Fraction,
    /// The text after the number is not a unit Flink knows; the value is that text.
    #[error("has an unknown unit `{0}`")]
    UnknownUnit(String),
    /// The duration does not fit in a Java `long` of nanoseconds.
    #[error("is too large (numeric overflow)")]
    TooLarge,
}

/// Parses a Flink duration; the error says what is wrong in words a person can act on.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits = trimmed.len() - trimmed.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err(DurationError::NoNumber);
    }
    let number: u128 = trimmed[..digits].parse().map_err(|_| DurationError::TooLarge)?;
    if trimmed[digits..].starts_with(['.', ',']) {
        return Err(DurationError::Fraction);
    }
    let unit = trimmed[digits..].trim().to_lowercase();
    let per = NANOS_PER
        .iter()
        .find(|(labels, _)| labels.contains(&unit.as_str()))
        .map(|(_, n)| *n)
        .ok_or_else(|| DurationError::UnknownUnit(trimmed[digits..].trim().to_string()))?;
    let nanos = number
        .checked_mul(per)
        .filter(|n| *n <= i64::MAX as u128)
        .ok_or(DurationError::TooLarge)?;
    let secs = (nanos / 1_000_000_000) as u64;
    let sub = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_spellings() {
        assert_eq!(parse("15 s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("1 MIN"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("500"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2 µs"), Ok(Duration::from_micros(2)));
        assert_eq!(parse(" 3 days "), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse("fifteen"), Err(DurationError::NoNumber));
        assert_eq!(parse("-5 s"), Err(DurationError::NoNumber));
        assert_eq!(
            parse("5 fortnights"),
            Err(DurationError::UnknownUnit("fortnights".into()))
        );
        assert_eq!(parse("99999999999999999999999 d"), Err(DurationError::TooLarge));
        assert_eq!(parse("1.5 s"), Err(DurationError::Fraction));
        assert_eq!(parse("  "), Err(DurationError::Empty));
    }
}
