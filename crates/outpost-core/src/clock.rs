//! The device's hybrid logical clock (HLC).
//!
//! Stamps order field edits for last-writer-wins; they never decide whether a change is new
//! (the server's sequence does). The clock is monotonic across restarts (the store persists the
//! last stamp), advances past every stamp it receives so that a causally later edit always wins,
//! and refuses to be dragged more than [`MAX_FORWARD_DRIFT_MS`] ahead of wall time by a remote
//! stamp, so one device with a wrong clock cannot make every other device's edits lose.

use outpost_protocol::{ClientId, MAX_PHYSICAL_MS, Stamp};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How far ahead of this device's (corrected) wall time a received stamp may pull the clock.
/// The server clamps stamps further ahead than this, so in normal operation it never binds.
pub const MAX_FORWARD_DRIFT_MS: u64 = 60_000;

/// Where the clock reads physical time. Tests inject a skewed or frozen one.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// What observing a remote stamp did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The clock is now past the remote stamp.
    Advanced,
    /// The remote stamp was further ahead than [`MAX_FORWARD_DRIFT_MS`]; the clock moved only to
    /// the limit. `skew_ms` is how far ahead of our wall time the stamp was.
    Clamped { skew_ms: u64 },
}

pub struct Hlc {
    node: ClientId,
    last: Stamp,
    wall: Arc<dyn WallClock>,
    /// Correction added to the wall clock, learnt from the server's time (milliseconds).
    offset_ms: i64,
}

impl std::fmt::Debug for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hlc")
            .field("node", &self.node)
            .field("last", &self.last)
            .field("offset_ms", &self.offset_ms)
            .finish()
    }
}

impl Hlc {
    /// A clock for `node` that continues after `last` (the last stamp it issued, if any).
    pub fn new(node: ClientId, wall: Arc<dyn WallClock>, last: Option<Stamp>) -> Self {
        let last = last.map(|s| Stamp { node, ..s }).unwrap_or(Stamp {
            node,
            ..Stamp::ZERO
        });
        Self {
            node,
            last,
            wall,
            offset_ms: 0,
        }
    }

    pub fn node(&self) -> ClientId {
        self.node
    }

    /// The last stamp issued or observed (with this node's id): what the store persists.
    pub fn last(&self) -> Stamp {
        self.last
    }

    /// Corrects this device's wall time by `offset_ms` (server time minus device time), so a
    /// device whose clock is a day off still stamps in step with the others.
    pub fn set_offset_ms(&mut self, offset_ms: i64) {
        self.offset_ms = offset_ms;
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Takes a correction just measured against the server's clock. A clock found well ahead
    /// (its last stamp more than twice [`MAX_FORWARD_DRIFT_MS`] past the corrected time) also
    /// brings its last stamp back to [`MAX_FORWARD_DRIFT_MS`] past it, and returns that limit:
    /// the store then brings back every stamp beyond it that has not left the device. Kept where
    /// the fast clock left it, every later edit would follow it there, the server would stamp
    /// each with the moment it arrives, and an edit sent again after a server restore would
    /// outrank what others did after it. No stamp this device holds from others is that far
    /// ahead: the server clamps there. The margin keeps round-trip noise from rewinding again.
    pub fn learn_offset_ms(&mut self, offset_ms: i64) -> Option<u64> {
        let ahead = self.found_ahead_by(offset_ms);
        self.offset_ms = offset_ms;
        if !ahead {
            return None;
        }
        let limit = self.wall_ms().saturating_add(MAX_FORWARD_DRIFT_MS);
        self.last = Stamp {
            physical_ms: limit,
            counter: 0,
            node: self.node,
        };
        Some(limit)
    }

    /// Whether [`Hlc::learn_offset_ms`] with `offset_ms` would find this clock ahead.
    pub fn found_ahead_by(&self, offset_ms: i64) -> bool {
        let limit = self.corrected_ms(offset_ms) + MAX_FORWARD_DRIFT_MS;
        self.last.physical_ms > limit + MAX_FORWARD_DRIFT_MS
    }

    fn corrected_ms(&self, offset_ms: i64) -> u64 {
        let raw = self.wall.now_ms();
        raw.saturating_add_signed(offset_ms).min(MAX_PHYSICAL_MS)
    }

    fn wall_ms(&self) -> u64 {
        self.corrected_ms(self.offset_ms)
    }

    /// A new stamp, greater than every stamp this clock issued or observed before.
    pub fn now(&mut self) -> Stamp {
        let wall = self.wall_ms();
        self.last = if wall > self.last.physical_ms {
            Stamp {
                physical_ms: wall,
                counter: 0,
                node: self.node,
            }
        } else {
            self.successor(self.last)
        };
        self.last
    }

    /// Moves the clock past `remote`, so the next local stamp orders after it.
    pub fn observe(&mut self, remote: &Stamp) -> Observed {
        let wall = self.wall_ms();
        let limit = wall.saturating_add(MAX_FORWARD_DRIFT_MS);
        let (target, outcome) = if remote.physical_ms > limit {
            let target = Stamp {
                physical_ms: limit,
                counter: 0,
                node: self.node,
            };
            let skew_ms = remote.physical_ms - wall;
            (target, Observed::Clamped { skew_ms })
        } else {
            let target = Stamp {
                node: self.node,
                ..*remote
            };
            (target, Observed::Advanced)
        };
        if (target.physical_ms, target.counter) > (self.last.physical_ms, self.last.counter) {
            self.last = target;
        }
        outcome
    }

    fn successor(&self, s: Stamp) -> Stamp {
        match s.counter.checked_add(1) {
            Some(counter) => Stamp {
                counter,
                node: self.node,
                ..s
            },
            // 4 billion stamps in one millisecond: borrow the next millisecond.
            None => Stamp {
                physical_ms: s.physical_ms + 1,
                counter: 0,
                node: self.node,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use uuid::Uuid;

    /// A wall clock the test sets by hand.
    struct ManualClock(AtomicU64);
    impl WallClock for ManualClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn clock_at(ms: u64, node: u128) -> (Arc<ManualClock>, Hlc) {
        let wall = Arc::new(ManualClock(AtomicU64::new(ms)));
        let hlc = Hlc::new(
            ClientId::from_uuid(Uuid::from_u128(node)),
            wall.clone(),
            None,
        );
        (wall, hlc)
    }

    const DAY_MS: u64 = 24 * 3600 * 1000;

    #[test]
    fn stamps_strictly_increase_even_when_the_wall_clock_stands_still_or_goes_back() {
        let (wall, mut hlc) = clock_at(10_000_000, 1);
        let mut prev = hlc.now();
        for step in 0..1000u64 {
            // Forward, frozen, then backwards by an hour.
            let ms = match step % 3 {
                0 => 10_000_000 + step,
                1 => 10_000_000 + step - 1,
                _ => 10_000_000 - 3_600_000,
            };
            wall.0.store(ms, Ordering::SeqCst);
            let next = hlc.now();
            assert!(next > prev, "{next} must be after {prev}");
            prev = next;
        }
    }

    #[test]
    fn monotonic_across_a_restart_with_an_earlier_wall_clock() {
        let (_, mut hlc) = clock_at(5_000, 1);
        let before = hlc.now();
        let (wall, _) = clock_at(1_000, 1);
        let mut restarted = Hlc::new(hlc.node(), wall, Some(hlc.last()));
        assert!(restarted.now() > before);
    }

    #[test]
    fn the_next_local_stamp_orders_after_a_received_one() {
        let (_, mut slow) = clock_at(1_000_000, 1);
        let (_, mut fast) = clock_at(1_000_000 + 30_000, 2);
        let remote = fast.now();
        assert_eq!(slow.observe(&remote), Observed::Advanced);
        let local = slow.now();
        assert!(
            local > remote,
            "a causally later edit must win: {local} vs {remote}"
        );
    }

    #[test]
    fn a_stamp_a_day_ahead_cannot_drag_the_clock_a_day_ahead() {
        let (_, mut hlc) = clock_at(10 * DAY_MS, 1);
        let (_, mut future) = clock_at(11 * DAY_MS, 2);
        let remote = future.now();
        let outcome = hlc.observe(&remote);
        assert_eq!(outcome, Observed::Clamped { skew_ms: DAY_MS });
        let next = hlc.now();
        assert!(next.physical_ms <= 10 * DAY_MS + MAX_FORWARD_DRIFT_MS);
        // The bound is only on how far we follow: the clock still moved forward.
        assert!(next.physical_ms >= 10 * DAY_MS + MAX_FORWARD_DRIFT_MS);
    }

    #[test]
    fn an_offset_puts_a_slow_device_in_step_with_server_time() {
        let (_, mut slow) = clock_at(10 * DAY_MS - DAY_MS, 1);
        slow.set_offset_ms(DAY_MS as i64);
        let (_, mut ok) = clock_at(10 * DAY_MS, 2);
        let other = ok.now();
        // With the correction the slow device follows stamps from correct devices...
        assert_eq!(slow.observe(&other), Observed::Advanced);
        // ...and its own new stamps carry real time.
        assert!(slow.now().physical_ms >= 10 * DAY_MS);
    }

    #[test]
    fn counter_overflow_borrows_the_next_millisecond() {
        let (_, mut hlc) = clock_at(7, 1);
        hlc.last = Stamp {
            physical_ms: 7,
            counter: u32::MAX,
            node: hlc.node(),
        };
        let next = hlc.now();
        assert_eq!((next.physical_ms, next.counter), (8, 0));
    }

    #[test]
    fn a_clock_found_fast_comes_back_to_the_servers_time_and_stays_monotonic_from_there() {
        // Restarted 16 days fast, the device stamps an edit 16 days ahead. Then the server
        // says what time it is.
        let (wall, mut hlc) = clock_at(100 * DAY_MS + 16 * DAY_MS, 1);
        let fast = hlc.now();
        let offset = -(16 * DAY_MS as i64);
        assert!(hlc.found_ahead_by(offset));
        assert_eq!(
            hlc.learn_offset_ms(offset),
            Some(100 * DAY_MS + MAX_FORWARD_DRIFT_MS)
        );
        let next = hlc.now();
        assert!(
            next.physical_ms <= 100 * DAY_MS + MAX_FORWARD_DRIFT_MS,
            "the next edit is stamped in server time, not 16 days ahead: {next:?}"
        );
        assert!(next < fast, "the fast stamp is not followed");
        wall.0.fetch_add(1, Ordering::SeqCst);
        assert!(hlc.now() > next, "still monotonic from there");

        // A clock found slow keeps its last stamp and moves on from the corrected time.
        let (_, mut slow) = clock_at(100 * DAY_MS, 2);
        let before = slow.now();
        assert!(!slow.found_ahead_by(DAY_MS as i64));
        assert_eq!(slow.learn_offset_ms(DAY_MS as i64), None);
        let corrected = slow.now();
        assert!(corrected > before);
        assert_eq!(corrected.physical_ms, 101 * DAY_MS);

        // Found ahead again by round-trip noise right after a rewind: no second rewind.
        let (_, mut noisy) = clock_at(101 * DAY_MS, 3);
        noisy.now();
        assert!(noisy.learn_offset_ms(-(DAY_MS as i64)).is_some());
        let after = noisy.now();
        assert_eq!(noisy.learn_offset_ms(-(DAY_MS as i64) - 3_000), None);
        assert!(noisy.now() > after);
    }
}
