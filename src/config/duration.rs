//! Durations as operators write them (`1m30s`, `500ms`, a number of
//! seconds on the command line), read with checked arithmetic and bounded
//! by what the engine can hold, so that no value typed into a file or a
//! flag can overflow a clock later.
//!
//! The bound: the engine keeps a healthcheck's durations as int64
//! nanoseconds (about 292 years) and takes a stop timeout as whole seconds,
//! which bollard sends as an i32; 2^31-1 seconds (about 68 years) fits
//! both, and three times it still fits an `Instant` (kolla waits at most
//! that long for a helper).

use std::time::Duration;

/// The longest duration kolla accepts anywhere: 2147483647 s.
pub const MAX: Duration = Duration::from_secs(i32::MAX as u64);

/// Why a text is not a duration kolla accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is not a duration like 30s, 1m30s or 500ms")]
    Malformed,
    #[error("is not a number of seconds (like 2 or 0.5)")]
    NotSeconds,
    #[error("is longer than the engine accepts (at most 2147483647s, about 68 years)")]
    TooLong,
}

/// Compose durations: `1h2m3s`, `1m30s`, `10s`, `1.5s`, `500ms`, `20us`;
/// at most `MAX`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Malformed);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(DurationError::Malformed)?;
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| DurationError::Malformed)?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            _ => return Err(DurationError::Malformed),
        };
        // Digits and dots only, so never negative or NaN; only too big.
        let part =
            Duration::try_from_secs_f64(number * unit).map_err(|_| DurationError::TooLong)?;
        total = total.checked_add(part).ok_or(DurationError::TooLong)?;
        rest = &rest[unit_len..];
    }
    within_bound(total)
}

/// A number of seconds (`2`, `0.5`): finite, not negative, at most `MAX`.
pub fn parse_seconds(text: &str) -> Result<Duration, DurationError> {
    let number: f64 = text.trim().parse().map_err(|_| DurationError::NotSeconds)?;
    if !number.is_finite() || number < 0.0 {
        return Err(DurationError::NotSeconds);
    }
    let duration = Duration::try_from_secs_f64(number).map_err(|_| DurationError::TooLong)?;
    within_bound(duration)
}

fn within_bound(duration: Duration) -> Result<Duration, DurationError> {
    if duration > MAX {
        Err(DurationError::TooLong)
    } else {
        Ok(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_forms_are_read() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20us"), Ok(Duration::from_micros(20)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_texts_are_refused() {
        for text in [
            "", "soon", "10", "5d", "10x", "s", "1..5s", ".s", "-1s", "1e3s", "inf", "NaN",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::Malformed),
                "{text}"
            );
        }
    }

    #[test]
    fn huge_durations_are_refused_not_panicked_on() {
        for text in [
            "99999999999999999999h",
            "5000000000000000h5000000000000000h",
            "2562047788015216h",
            "2147483648s",
            "596524h",
            "1e309",
        ] {
            let parsed = parse_duration(text);
            assert!(
                matches!(
                    parsed,
                    Err(DurationError::TooLong) | Err(DurationError::Malformed)
                ),
                "{text}: {parsed:?}"
            );
        }
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("5000000000000000h5000000000000000h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(parse_duration("2147483648s"), Err(DurationError::TooLong));
        // Each part fits; their sum does not.
        assert_eq!(parse_duration("2147483647s1s"), Err(DurationError::TooLong));
    }

    #[test]
    fn the_bound_itself_is_accepted() {
        assert_eq!(parse_duration("2147483647s"), Ok(MAX));
        assert_eq!(parse_seconds("2147483647"), Ok(MAX));
    }

    #[test]
    fn seconds_must_be_finite_non_negative_and_bounded() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for text in [
            "NaN", "nan", "inf", "-inf", "infinity", "-1", "-0.5", "two", "",
        ] {
            assert_eq!(
                parse_seconds(text),
                Err(DurationError::NotSeconds),
                "{text}"
            );
        }
        for text in ["1e300", "2147483648", "1e19"] {
            assert_eq!(parse_seconds(text), Err(DurationError::TooLong), "{text}");
        }
    }

    #[test]
    fn the_bound_fits_what_kolla_and_the_engine_do_with_it() {
        // The engine's int64 nanoseconds and its i32 stop timeout.
        assert!(i64::try_from(MAX.as_nanos()).is_ok());
        assert!(i32::try_from(MAX.as_secs()).is_ok());
        // The longest wait kolla derives from a flag: three health
        // timeouts and ten minutes, added to now.
        let longest = MAX * 3 + Duration::from_secs(600);
        assert!(std::time::Instant::now().checked_add(longest).is_some());
        assert!(
            tokio::time::Instant::now()
                .into_std()
                .checked_add(longest)
                .is_some()
        );
        assert!(u64::try_from(MAX.as_millis()).is_ok());
    }
}
