//! A test hook: stops the process at a named point of a sync, so that an end-to-end test can
//! kill it there with SIGKILL and prove that nothing is lost or doubled (tests/crash.rs).
//!
//! A crash "somewhere during a sync" is not enough to test L2 and the page-and-cursor
//! transaction: the interesting crashes are at precise points (a pull page applied but not
//! committed; a push answered by the server but not acknowledged here), which a timer cannot hit
//! reliably. So the test sets `OUTPOST_TEST_PAUSE_AT=<point>` (or `<point>@<n>`: the n-th time the
//! point is reached, counted from 1) on the `outpost` process it starts. When the process gets
//! there, it prints `OUTPOST_TEST_PAUSED <point>` on its own line to stderr and sleeps forever,
//! holding whatever it holds (an open transaction included), until it is killed.
//!
//! Unset (always, outside tests), [`pause_at`] costs one read of a `OnceLock` and does nothing.
//! The variable is read once per process.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Inside the transaction of a pull page: records applied, cursor written, not yet committed.
pub const PULL_PAGE_APPLYING: &str = "pull-page-applying";
/// A push answered by the server, before its results are applied (acknowledged) locally.
pub const PUSH_SENT: &str = "push-sent";

/// An attachment's chunk acknowledged by the server and noted here.
pub const BLOB_CHUNK_SENT: &str = "blob-chunk-sent";
/// A piece of a download written to its partial file.
pub const BLOB_PIECE_WRITTEN: &str = "blob-piece-written";

/// The line printed to stderr when the process stops at `point`.
pub fn marker(point: &str) -> String {
    format!("OUTPOST_TEST_PAUSED {point}")
}

struct Pause {
    point: String,
    nth: u32,
}

static PAUSE: OnceLock<Option<Pause>> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

fn from_env() -> Option<Pause> {
    let value = std::env::var("OUTPOST_TEST_PAUSE_AT").ok()?;
    let (point, nth) = match value.split_once('@') {
        Some((point, n)) => (point, n.parse().ok()?),
        None => (value.as_str(), 1),
    };
    Some(Pause {
        point: point.to_owned(),
        nth,
    })
}

/// Stops here forever if the test asked for this point (see the module doc); else returns.
pub fn pause_at(point: &str) {
    let Some(pause) = PAUSE.get_or_init(from_env) else {
        return;
    };
    if pause.point != point || HITS.fetch_add(1, Ordering::SeqCst) + 1 != pause.nth {
        return;
    }
    // A leading newline: the CLI may have left a progress line without one.
    eprintln!("\n{}", marker(point));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
