//! Sync bookkeeping kept in the store: last success, the recent errors, the clock correction,
//! and the re-download ("reset required") that keeps the outbox.

use rusqlite::params;
use serde::Serialize;

use crate::error::Result;
use crate::meta;
use crate::store::{SqlContext, Store};

const LAST_SUCCESS: &str = "last_success_ms";
const LAST_ERROR: &str = "last_error";
const RESET: &str = "reset_in_progress";

/// How many distinct errors the log keeps (a repeat of the last one only counts up).
pub const SYNC_ERRORS_KEPT: i64 = 50;

/// A sync failure as the diagnostics screen lists it: the same failure cycle after cycle (the
/// server down all night) is one entry, with how often and from when to when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SyncErrorEntry {
    pub message: String,
    pub count: i64,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Store {
    /// A cycle finished: saves when, and the clock correction it measured (so that the next
    /// start stamps in server time and `outpost status` can show the skew).
    pub fn record_sync_success(&self, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            meta::set(&tx.tx, tx.path, LAST_SUCCESS, &now_ms.to_string())?;
            let offset = tx.clock_offset_ms().to_string();
            meta::set(&tx.tx, tx.path, meta::CLOCK_OFFSET, &offset)?;
            tx.tx
                .execute("DELETE FROM sync_meta WHERE key = ?1", [LAST_ERROR])
                .at(tx.path)?;
            Ok(())
        })
    }

    /// A cycle failed at `at_ms` (device time): the last error, and an entry in the error log.
    /// The same failure as the cycle before counts up the newest entry; after a success (which
    /// clears the last error) it starts a new one, so an entry's span never hides a good sync.
    pub fn record_sync_error(&self, message: &str, at_ms: i64) -> Result<()> {
        self.write(|tx| {
            let previous = meta::get(&tx.tx, tx.path, LAST_ERROR)?;
            meta::set(&tx.tx, tx.path, LAST_ERROR, message)?;
            let repeated = previous.as_deref() == Some(message)
                && tx
                    .tx
                    .execute(
                        "UPDATE sync_errors SET last_ms = ?2, count = count + 1
                          WHERE seq = (SELECT max(seq) FROM sync_errors) AND message = ?1",
                        params![message, at_ms],
                    )
                    .at(tx.path)?
                    > 0;
            if !repeated {
                tx.tx
                    .execute(
                        "INSERT INTO sync_errors (first_ms, last_ms, message) VALUES (?2, ?2, ?1)",
                        params![message, at_ms],
                    )
                    .at(tx.path)?;
                tx.tx
                    .execute(
                        "DELETE FROM sync_errors WHERE seq <= (SELECT max(seq) FROM sync_errors) - ?1",
                        [SYNC_ERRORS_KEPT],
                    )
                    .at(tx.path)?;
            }
            Ok(())
        })
    }

    /// The most recent sync errors, newest first.
    pub fn recent_sync_errors(&self, limit: u32) -> Result<Vec<SyncErrorEntry>> {
        self.read(|conn, path| {
            conn.prepare_cached(
                "SELECT message, count, first_ms, last_ms FROM sync_errors
                  ORDER BY seq DESC LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([limit], |r| {
                    Ok(SyncErrorEntry {
                        message: r.get(0)?,
                        count: r.get(1)?,
                        first_ms: r.get(2)?,
                        last_ms: r.get(3)?,
                    })
                })?
                .collect()
            })
            .at(path)
        })
    }

    pub fn last_sync_success(&self) -> Result<Option<i64>> {
        Ok(self
            .read(|c, p| meta::get(c, p, LAST_SUCCESS))?
            .and_then(|v| v.parse().ok()))
    }

    pub fn last_sync_error(&self) -> Result<Option<String>> {
        self.read(|c, p| meta::get(c, p, LAST_ERROR))
    }

    /// Entries the next push would send (not dead letters, not held behind one).
    pub fn sendable_count(&self) -> Result<i64> {
        self.read(|conn, path| {
            conn.query_row(
                "SELECT count(*) FROM outbox o WHERE state = 'queued'
                   AND NOT EXISTS (SELECT 1 FROM outbox f WHERE f.entity_id = o.entity_id
                                   AND f.state = 'failed' AND f.seq < o.seq)",
                [],
                |r| r.get(0),
            )
            .at(path)
        })
    }

    /// Starts a full re-download: the cursor goes back to 0 and every base copy is marked
    /// unconfirmed (version -1, content kept for merges). Survives a crash: the flag makes the
    /// next cycle start over.
    pub fn begin_reset(&self) -> Result<()> {
        self.write(|tx| {
            tx.tx
                .execute_batch("UPDATE note_base SET version = -1")
                .at(tx.path)?;
            meta::set(&tx.tx, tx.path, super::apply::CURSOR, "0")?;
            meta::set(&tx.tx, tx.path, RESET, "1")
        })
    }

    pub fn reset_in_progress(&self) -> Result<bool> {
        Ok(self.read(|c, p| meta::get(c, p, RESET))?.as_deref() == Some("1"))
    }

    /// Ends a re-download: notes the server no longer has (their base was not confirmed) and
    /// that have nothing waiting to be sent are removed; everything in the outbox stays.
    pub fn finish_reset(&self) -> Result<usize> {
        self.write(|tx| {
            let removed = tx
                .tx
                .execute(
                    "DELETE FROM notes WHERE id IN (SELECT note_id FROM note_base WHERE version = -1)
                       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = notes.id)",
                    [],
                )
                .at(tx.path)?;
            tx.tx
                .execute_batch(
                    "DELETE FROM note_base WHERE version = -1
                       AND note_id NOT IN (SELECT id FROM notes);
                     DELETE FROM sync_meta WHERE key = 'reset_in_progress';",
                )
                .at(tx.path)?;
            tx.change.outbox = true;
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{SYNC_ERRORS_KEPT, SyncErrorEntry};
    use crate::clock::{SystemClock, WallClock};
    use crate::{NoteDraft, Store};

    const DAY_MS: i64 = 24 * 3600 * 1000;

    #[test]
    fn a_night_of_the_same_error_is_one_entry_and_the_log_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .record_sync_error("the server answered 500", 1_000)
                .expect("record");
            for at in [2_000, 3_000, 4_000] {
                store
                    .record_sync_error("offline: cannot reach the server", at)
                    .expect("record");
            }
            store.record_sync_success(5_000).expect("success");
        }
        let store = Store::open(dir.path()).expect("reopen");
        // A success clears the status bar's error, not the log.
        assert_eq!(store.last_sync_error().expect("last"), None);
        assert_eq!(
            store.recent_sync_errors(10).expect("log"),
            vec![
                SyncErrorEntry {
                    message: "offline: cannot reach the server".into(),
                    count: 3,
                    first_ms: 2_000,
                    last_ms: 4_000,
                },
                SyncErrorEntry {
                    message: "the server answered 500".into(),
                    count: 1,
                    first_ms: 1_000,
                    last_ms: 1_000,
                },
            ]
        );
    }

    #[test]
    fn the_same_error_after_a_good_sync_is_a_new_entry() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        store.record_sync_error("offline", 1_000).expect("night");
        store.record_sync_error("offline", 2_000).expect("night");
        store.record_sync_success(3_000).expect("morning");
        store.record_sync_error("offline", 9_000).expect("evening");
        let log = store.recent_sync_errors(10).expect("log");
        let spans: Vec<_> = log
            .iter()
            .map(|e| (e.count, e.first_ms, e.last_ms))
            .collect();
        assert_eq!(spans, vec![(1, 9_000, 9_000), (2, 1_000, 2_000)]);
    }

    #[test]
    fn the_error_log_keeps_the_latest_distinct_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        for i in 0..SYNC_ERRORS_KEPT + 20 {
            store
                .record_sync_error(&format!("error {i}"), i)
                .expect("record");
        }
        let log = store.recent_sync_errors(1_000).expect("log");
        assert_eq!(log.len() as i64, SYNC_ERRORS_KEPT);
        assert_eq!(log[0].message, format!("error {}", SYNC_ERRORS_KEPT + 19));
        assert_eq!(log[log.len() - 1].message, "error 20");
        assert_eq!(store.recent_sync_errors(3).expect("log").len(), 3);
    }

    #[test]
    fn the_clock_correction_of_the_last_successful_sync_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = Store::open(dir.path()).expect("open");
            store.set_clock_offset(DAY_MS);
            store.record_sync_success(1).expect("success");
            // Measured after the last success: not kept.
            store.set_clock_offset(5 * DAY_MS);
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.clock_offset_ms(), DAY_MS);
        // An edit made offline after the restart is stamped in corrected time.
        let before = SystemClock.now_ms();
        let note = store.create_note(NoteDraft::default()).expect("note");
        let entry = &store.outbox_for(&note.id.to_string()).expect("outbox")[0];
        let stamp = entry.fields.values().next().expect("a field").stamp;
        assert!(
            stamp.physical_ms >= before + DAY_MS as u64,
            "{stamp} is not in corrected time"
        );
    }
}
