//! Where a window of logs starts, as `docker logs --since` takes it, so an
//! operator's habit carries over: a time (RFC 3339, or Unix seconds) or a
//! duration before now (`10m`, `1h30m`, as compose writes durations).
//! Pure: "before now" is turned into a time with the clock handed in, once
//! per run, so every node's log starts at the same moment.

use std::time::{Duration, SystemTime};

use super::duration::parse_duration;

/// The start of a log window, as the operator wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before the run started.
    Ago(Duration),
    /// This moment, in Unix seconds.
    At(i64),
}

impl Since {
    /// The window's start in Unix seconds, `now` being the run's clock.
    /// A start before 1970 is 1970: nothing was logged earlier.
    pub fn unix_seconds(self, now: SystemTime) -> i64 {
        match self {
            Since::At(seconds) => seconds.max(0),
            Since::Ago(ago) => {
                let now = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let ago = ago.as_secs();
                i64::try_from(now.saturating_sub(ago)).unwrap_or(i64::MAX)
            }
        }
    }
}

/// Read `text` as `docker logs --since` reads it: a duration first (Go's
/// order: `10m` is never a time), then an RFC 3339 time, then Unix seconds
/// (a fraction is dropped: the engine takes whole seconds).
pub fn parse_since(text: &str) -> Result<Since, String> {
    let text = text.trim();
    if let Ok(ago) = parse_duration(text) {
        return Ok(Since::Ago(ago));
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, rfc3339) {
        return Ok(Since::At(at.unix_timestamp()));
    }
    let whole = text.split_once('.').map_or(text, |(whole, _)| whole);
    let fraction_is_digits = text
        .split_once('.')
        .is_none_or(|(_, f)| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    match whole.parse::<i64>() {
        Ok(seconds) if seconds >= 0 && fraction_is_digits => Ok(Since::At(seconds)),
        _ => Err(format!(
            "{text:?} is neither a time (RFC 3339 like 2025-05-01T10:00:00Z, or Unix seconds) \
             nor a duration before now (like 10m, 1h30m or 45s)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_times_and_unix_seconds_are_read() {
        assert_eq!(parse_since("10m"), Ok(Since::Ago(Duration::from_secs(600))));
        assert_eq!(
            parse_since("1h30m"),
            Ok(Since::Ago(Duration::from_secs(5400)))
        );
        assert_eq!(
            parse_since("2025-05-01T10:00:00Z"),
            Ok(Since::At(1_746_093_600))
        );
        assert_eq!(
            parse_since("2025-05-01T12:00:00+02:00"),
            Ok(Since::At(1_746_093_600))
        );
        assert_eq!(parse_since("1746093600"), Ok(Since::At(1_746_093_600)));
        assert_eq!(parse_since("1746093600.5"), Ok(Since::At(1_746_093_600)));
    }

    #[test]
    fn other_texts_are_refused_saying_what_is_taken() {
        for text in ["", "yesterday", "10d", "-5", "2025-05-01", "12.", "1.x"] {
            let error = parse_since(text).expect_err(text);
            assert!(
                error.contains("RFC 3339") && error.contains("10m"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_duration_counts_back_from_the_clock_handed_in() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            Since::Ago(Duration::from_secs(600)).unix_seconds(now),
            999_400
        );
        // Further back than 1970 is 1970.
        assert_eq!(
            Since::Ago(Duration::from_secs(2_000_000)).unix_seconds(now),
            0
        );
        assert_eq!(Since::At(42).unix_seconds(now), 42);
    }
}
