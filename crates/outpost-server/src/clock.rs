//! The server's wall clock, read in one place: the moment a push arrives (stamps are clamped
//! against it), tokens are issued and migrations applied.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now; 0 for a clock set before 1970.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// [`now_ms`] as storage keeps times (`i64` columns).
pub fn now_i64() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}
