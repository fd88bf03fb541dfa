//! Sync bookkeeping kept in the store: last success, the recent errors, the clock correction,
//! and the re-download ("reset required") that keeps the outbox.

use rusqlite::params;
use serde::Serialize;

use crate::error::Result;
use crate::error::SqlContext;
use crate::meta;
use crate::store::Store;
use outpost_protocol::Entity;
use outpost_protocol::digest::Key;

use crate::meta::{CURSOR, CURSOR_CHAIN, LAST_ERROR, LAST_SUCCESS, RESET, SERVER_HISTORY};

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

    /// Starts a re-download from cursor 0 that reconciles this device with the server: when the
    /// server asked for it (`reset_required`), when its history is not the one this device
    /// synced with (a restored backup, a re-created database, another server on the same
    /// address), or when our cursor is ahead of it. Nothing is removed on the way or at the end:
    /// what only this device holds is sent again (see [`Store::finish_reset`]). `history` is the
    /// server history the re-download is against, when known. Survives a crash: the flag makes
    /// the next cycle start over, and what came already stays counted.
    pub fn begin_reset(&self, history: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.tx
                .execute_batch("DELETE FROM reconcile_seen; DELETE FROM unconfirmed;")
                .at(tx.path)?;
            meta::set(&tx.tx, tx.path, CURSOR, "0")?;
            Store::forget_verified(tx)?;
            tx.tx
                .execute("DELETE FROM sync_meta WHERE key = ?1", [CURSOR_CHAIN])
                .at(tx.path)?;
            if let Some(history) = history {
                meta::set(&tx.tx, tx.path, SERVER_HISTORY, history)?;
            }
            meta::set(&tx.tx, tx.path, RESET, "1")
        })
    }

    pub fn reset_in_progress(&self) -> Result<bool> {
        self.read(reset_flag)
    }

    /// The chain of the server's commits at this device's cursor, if the server gave one.
    pub fn cursor_chain(&self) -> Result<Option<String>> {
        self.read(|c, p| meta::get(c, p, CURSOR_CHAIN))
    }

    /// Ends a re-download. A record the server did not send, that has nothing waiting to be
    /// sent, is one the server lost: it is queued again, whole, as new to the server (L4: a
    /// record leaves a device only when the server says it was purged, or the user deletes it).
    /// Returns what was queued again.
    pub fn finish_reset(&self) -> Result<Resent> {
        self.write(|tx| {
            let mut resent = Resent::default();
            for (entity, table, id_column) in [
                (Entity::Note, "notes", "id"),
                (Entity::Notebook, "notebooks", "id"),
                (Entity::Pref, "prefs", "key"),
                (Entity::Attachment, "attachments", "id"),
            ] {
                // Records the server did not send, with nothing queued and no open conflict.
                let sql = format!(
                    "SELECT {id_column} FROM {table} t
                     WHERE NOT EXISTS (SELECT 1 FROM reconcile_seen s
                                       WHERE s.entity = ?1 AND s.id = t.{id_column})
                       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = t.{id_column})
                       AND NOT EXISTS (SELECT 1 FROM conflicts c WHERE c.note_id = t.{id_column})"
                );
                let ids: Vec<String> = tx
                    .tx
                    .prepare(&sql)
                    .and_then(|mut s| {
                        s.query_map([entity.as_str()], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .at(tx.path)?;
                for id in ids {
                    if entity == Entity::Pref && !crate::prefs::is_synced_key(&id) {
                        continue;
                    }
                    let key = Key { entity, id };
                    if tx.requeue_whole(&key)? {
                        match entity {
                            Entity::Note => resent.notes += 1,
                            Entity::Notebook => resent.notebooks += 1,
                            Entity::Pref => resent.prefs += 1,
                            Entity::Attachment => resent.attachments += 1,
                        }
                    }
                }
            }
            tx.tx
                .execute_batch(
                    "DELETE FROM reconcile_seen;
                     DELETE FROM sync_meta WHERE key = 'reset_in_progress';",
                )
                .at(tx.path)?;
            tx.change.outbox = true;
            Ok(resent)
        })
    }

    /// The server history (its database and epoch, as its replies name it) this device's cursor
    /// belongs to; `None` before the first reply that named one.
    pub fn server_history(&self) -> Result<Option<String>> {
        self.read(|c, p| meta::get(c, p, SERVER_HISTORY))
    }

    /// Remembers the server history a first sync met.
    pub fn set_server_history(&self, history: &str) -> Result<()> {
        self.write(|tx| meta::set(&tx.tx, tx.path, SERVER_HISTORY, history))
    }
}

pub(super) fn reset_flag(conn: &rusqlite::Connection, path: &std::path::Path) -> Result<bool> {
    Ok(meta::get(conn, path, RESET)?.as_deref() == Some("1"))
}

/// What a re-download queued again because the server did not have it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resent {
    pub notes: usize,
    pub notebooks: usize,
    pub prefs: usize,
    pub attachments: usize,
}

impl Resent {
    pub fn total(&self) -> usize {
        self.notes + self.notebooks + self.prefs + self.attachments
    }

    /// For the sync log: "Sent 30 notes again that the server did not have".
    pub fn describe(&self) -> Option<String> {
        let parts: Vec<String> = [
            (self.notes, "note", "notes"),
            (self.notebooks, "notebook", "notebooks"),
            (self.prefs, "setting", "settings"),
            (self.attachments, "attachment", "attachments"),
        ]
        .iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if *n == 1 { one } else { many }))
        .collect();
        (!parts.is_empty()).then(|| {
            format!(
                "Sent {} again that the server did not have (it lost them: restored from a backup, or a new database)",
                parts.join(", ")
            )
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
            store.set_clock_offset(DAY_MS).expect("offset");
            store.record_sync_success(1).expect("success");
            // Measured after the last success: not kept.
            store.set_clock_offset(5 * DAY_MS).expect("offset");
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
