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

/// Parses a Flink duration; the error says what is wrong in words a person can act on.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("is empty".to_string());
    }
    let digits = trimmed.len() - trimmed.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err("does not start with a number".to_string());
    }
    let number: u128 = trimmed[..digits].parse().map_err(|_| "is too large".to_string())?;
    if trimmed[digits..].starts_with(['.', ',']) {
        return Err("is not a whole number (Flink durations take no fractions; use a smaller unit)".to_string());
    }
    let unit = trimmed[digits..].trim().to_lowercase();
    let per = NANOS_PER
        .iter()
        .find(|(labels, _)| labels.contains(&unit.as_str()))
        .map(|(_, n)| *n)
        .ok_or_else(|| format!("has an unknown unit `{}`", trimmed[digits..].trim()))?;
    let nanos = number
        .checked_mul(per)
        .filter(|n| *n <= i64::MAX as u128)
        .ok_or_else(|| "is too large (numeric overflow)".to_string())?;
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
        assert!(parse("fifteen").is_err());
        assert!(parse("-5 s").is_err());
        assert!(parse("5 fortnights").is_err());
        assert!(parse("99999999999999999999999 d").is_err());
        assert!(parse("1.5 s").is_err());
    }
}
