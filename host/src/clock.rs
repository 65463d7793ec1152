//! Times as people and Confluence write them, through the `time` crate.
//!
//! The store keeps milliseconds since the epoch; the CLI, messages and
//! Confluence's answers use calendar times. All conversions are here, so
//! no other module does calendar arithmetic.
//!
//! [`Clock`] is the host's "now" where a check depends on it (Slack's
//! five-minute signature window): the system clock, or a fixed time that
//! tests set so published signature vectors can be checked as written.

use time::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The host's "now" for checks against it; the system clock unless a test
/// fixes it. No configuration sets it: a server always runs on
/// [`Clock::System`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Always this time (ms since the epoch).
    Fixed(i64),
}

impl Clock {
    /// Now, in ms since the epoch.
    pub fn now_ms(self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Fixed(ms) => ms,
        }
    }

    /// Now, in whole seconds since the epoch.
    pub fn now_secs(self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn format(ms: i64, description: &str) -> String {
    let items =
        format_description::parse_borrowed::<2>(description).expect("a valid format description");
    at(ms)
        .to_offset(UtcOffset::UTC)
        .format(&items)
        .unwrap_or_default()
}

/// `2026-01-12 18:07 UTC`: for messages to admins.
pub fn utc_minutes(ms: i64) -> String {
    format(ms, "[year]-[month]-[day] [hour]:[minute] UTC")
}

/// `2026-01-12 18:07:13`: for CLI tables (UTC).
pub fn utc_seconds(ms: i64) -> String {
    format(ms, "[year]-[month]-[day] [hour]:[minute]:[second]")
}

/// A Confluence timestamp in ms: ISO 8601 with an offset as Data Center
/// writes it (`2026-01-12T18:07:13.603+0000`; also `+01:00`, `Z`, no
/// fraction).
pub fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    // Confluence writes offsets without a colon; RFC 3339 wants one.
    // `split_at_checked`: the last five bytes may start inside a character.
    let normalized = match text
        .len()
        .checked_sub(5)
        .and_then(|i| text.split_at_checked(i))
    {
        Some((head, tail))
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{head}{}:{}", &tail[..3], &tail[3..])
        }
        _ => text.replacen(' ', "T", 1),
    };
    let parsed =
        OffsetDateTime::parse(&normalized, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluence_timestamps_in_every_offset_form() {
        let base = 1_768_241_233_603;
        for text in [
            "2026-01-12T18:07:13.603+0000",
            "2026-01-12T18:07:13.603Z",
            "2026-01-12T19:07:13.603+01:00",
            "2026-01-12T19:07:13.603+0100",
            "2026-01-12T13:07:13.603-0500",
        ] {
            assert_eq!(parse_iso8601_ms(text), Some(base), "{text}");
        }
        assert_eq!(parse_iso8601_ms("2026-01-12T18:07:13Z"), Some(base - 603));
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-12"] {
            assert_eq!(parse_iso8601_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn fuzz_regression_multibyte_text_near_the_offset_does_not_panic() {
        // Found by `cargo fuzz run headers`: "\xff\xca" read lossily is two
        // U+FFFD (6 bytes); splitting 5 bytes from the end cut one in half.
        for text in [
            "\u{fffd}\u{fffd}",
            "x\u{e9}1234",
            "2026-01-12T18:07:13\u{e9}0000",
        ] {
            assert_eq!(parse_iso8601_ms(text), None, "{text}");
        }
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc_minutes(1_768_241_233_603), "2026-01-12 18:07 UTC");
        assert_eq!(utc_seconds(1_768_241_233_603), "2026-01-12 18:07:13");
        assert_eq!(utc_seconds(0), "1970-01-01 00:00:00");
    }
}
