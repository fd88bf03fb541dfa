//! Moments as people read them, from the Unix milliseconds the store keeps, always in UTC: the
//! one place the app and the CLI turn a time into text.

use time::OffsetDateTime;
use time::macros::format_description;

fn utc(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `2024-05-01T12:00:00.123Z`: exported front matter, read by other programs.
pub fn rfc3339(ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    utc(ms)
        .and_then(|t| t.format(format).ok())
        // Beyond year 9999 (a damaged cell): the number itself says more than a made-up date.
        .unwrap_or_else(|| ms.to_string())
}

/// `2024-05-01 12:00`: to the minute, for people reading a list.
pub fn to_the_minute(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]");
    utc(ms)
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_the_same_everywhere_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(to_the_minute(0), "1970-01-01 00:00");
        assert_eq!(to_the_minute(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(to_the_minute(1_795_435_200_000), "2026-11-23 12:00");
        assert_eq!(to_the_minute(i64::MAX), i64::MAX.to_string());
    }
}
