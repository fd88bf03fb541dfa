//! A device clock found ahead of the server's: the stamps it made that have not left the device
//! are brought back to when they were made, in server time.
//!
//! The server clamps a stamp too far ahead to its own time plus `MAX_STAMP_SKEW_MS`, that is to
//! the moment the edit arrives. For an edit that arrives once, that is close enough. For one
//! whose reply was lost and that is sent again after the server was restored from a backup, it
//! is not: stamped with the later moment, it outranks what other devices did after it (the
//! simulation, seed 8069: a notebook made on a clock 16 days fast came back after two devices
//! had deleted it). So once the engine has measured the clock ([`Store::set_clock_offset`],
//! before the first push of every process), the fast stamps in the device's records and in its
//! unsent outbox entries move back by what the correction changed. Sent entries keep theirs: a
//! sent entry is never rewritten (L3); the server clamps them as before.

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::store::{Store, Tx};
use outpost_protocol::{Fields, Stamp};
use rusqlite::params;

/// The stamp columns of each table that holds records, with the column naming the record.
const STAMPED: [(&str, &str, &[&str]); 3] = [
    (
        "notes",
        "id",
        &[
            "notebook_stamp",
            "title_stamp",
            "body_stamp",
            "tags_stamp",
            "pinned_stamp",
            "archived_stamp",
            "deleted_stamp",
        ],
    ),
    ("notebooks", "id", &["name_stamp", "deleted_stamp"]),
    ("prefs", "key", &["stamp"]),
];

/// `stamp` moved back by `shift_ms` (the change in the clock's correction, negative for a clock
/// found ahead) when it is beyond `limit_ms`, and never left beyond it. `None`: it stays.
pub(crate) fn brought_back(stamp: Stamp, limit_ms: u64, shift_ms: i64) -> Option<Stamp> {
    (stamp.physical_ms > limit_ms).then(|| Stamp {
        physical_ms: stamp
            .physical_ms
            .saturating_add_signed(shift_ms.min(0))
            .min(limit_ms),
        ..stamp
    })
}

impl Store {
    /// Corrects this device's clock by the server's (server minus device, in ms), just
    /// measured. Kept in memory; a successful sync saves it for the next start
    /// ([`Store::record_sync_success`]).
    ///
    /// A clock found well ahead also stops stamping ahead ([`Hlc::learn_offset_ms`]), and the
    /// stamps it made that have not left the device are brought back to when they were made, in
    /// server time ([`bring_back`]): the server would otherwise stamp them with the moment they
    /// arrive, and one sent again after a server restore would outrank what other devices did
    /// after it (found by the simulation, seed 8069).
    ///
    /// [`Hlc::learn_offset_ms`]: crate::clock::Hlc::learn_offset_ms
    pub fn set_clock_offset(&self, offset_ms: i64) -> Result<()> {
        if !self.take_clock_offset(offset_ms) {
            return Ok(());
        }
        self.write(|tx| {
            let before = tx.clock.offset_ms();
            match tx.clock.learn_offset_ms(offset_ms) {
                Some(limit) => bring_back(tx, limit, offset_ms - before),
                None => Ok(()),
            }
        })
    }
}

/// Brings back every stamp beyond `limit_ms` in the records and the unsent outbox entries (see
/// the module docs). Runs in the transaction that moved the clock back.
pub(crate) fn bring_back(tx: &mut Tx<'_>, limit_ms: u64, shift_ms: i64) -> Result<()> {
    let records = bring_back_records(tx, limit_ms, shift_ms)?;
    let entries = bring_back_unsent(tx, limit_ms, shift_ms)?;
    tracing::warn!(
        records,
        entries,
        shift_ms,
        "this device's clock was ahead of the server's: brought its stamps back"
    );
    Ok(())
}

/// The records' stamps (see [`bring_back`]); returns how many records moved.
fn bring_back_records(tx: &Tx<'_>, limit_ms: u64, shift_ms: i64) -> Result<usize> {
    let beyond = format!("{limit_ms:012x}");
    let mut records = 0usize;
    for (table, key, columns) in STAMPED {
        let select = format!(
            "SELECT {key}, {} FROM {table} WHERE {}",
            columns.join(", "),
            columns
                .iter()
                .map(|c| format!("substr({c}, 1, 12) > ?1"))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let rows: Vec<Vec<String>> = tx
            .tx
            .prepare(&select)
            .and_then(|mut s| {
                s.query_map([&beyond], |r| {
                    (0..=columns.len()).map(|i| r.get(i)).collect()
                })?
                .collect()
            })
            .at(tx.path)?;
        let update = format!(
            "UPDATE {table} SET {} WHERE {key} = ?1",
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ?{}", i + 2))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for mut row in rows {
            for text in row.iter_mut().skip(1) {
                if let Ok(stamp) = text.parse::<Stamp>()
                    && let Some(back) = brought_back(stamp, limit_ms, shift_ms)
                {
                    *text = back.to_string();
                }
            }
            tx.tx
                .prepare_cached(&update)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(&row)))
                .at(tx.path)?;
            records += 1;
        }
    }
    Ok(records)
}

/// The unsent outbox entries' stamps (see [`bring_back`]); returns how many entries moved.
fn bring_back_unsent(tx: &Tx<'_>, limit_ms: u64, shift_ms: i64) -> Result<usize> {
    let unsent: Vec<(i64, String)> = tx
        .tx
        .prepare("SELECT seq, fields FROM outbox WHERE sent = 0")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .at(tx.path)?;
    let mut entries = 0usize;
    for (seq, json) in unsent {
        let mut fields: Fields = serde_json::from_str(&json)
            .map_err(|e| Error::Data(format!("outbox entry {seq}: {e}")))?;
        let mut moved = false;
        for change in fields.values_mut() {
            if let Some(back) = brought_back(change.stamp, limit_ms, shift_ms) {
                change.stamp = back;
                moved = true;
            }
        }
        if moved {
            let json = serde_json::to_string(&fields)
                .map_err(|e| Error::Data(format!("outbox entry {seq}: {e}")))?;
            tx.tx
                .prepare_cached("UPDATE outbox SET fields = ?1 WHERE seq = ?2")
                .and_then(|mut s| s.execute(params![json, seq]))
                .at(tx.path)?;
            entries += 1;
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{MAX_FORWARD_DRIFT_MS, WallClock};
    use crate::model::{NoteDraft, NotePatch};
    use crate::store::{Store, StoreOptions};
    use outpost_protocol::ClientId;
    use std::sync::Arc;

    const DAY_MS: u64 = 24 * 3600 * 1000;
    const NOW: u64 = 1_800_000_000_000;

    struct Stopped(u64);
    impl WallClock for Stopped {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    fn stamps(store: &Store, sql: &str) -> Vec<Stamp> {
        store
            .read(|conn, _| {
                let mut s = conn.prepare(sql).expect("sql");
                let columns = s.column_count();
                let row: Vec<String> = s
                    .query_row([], |r| (0..columns).map(|i| r.get(i)).collect())
                    .expect("row");
                Ok(row.iter().map(|t| t.parse().expect("stamp")).collect())
            })
            .expect("read")
    }

    #[test]
    fn what_a_fast_clock_wrote_offline_is_brought_back_before_it_leaves_except_what_left() {
        // Restarted with the clock 16 days fast, offline: a notebook, a note, a preference.
        let dir = tempfile::tempdir().expect("dir");
        let options = StoreOptions {
            wall_clock: Arc::new(Stopped(NOW + 16 * DAY_MS)),
            ..Default::default()
        };
        let store = Store::open_with(dir.path(), options).expect("store");
        store.create_notebook("Pump room").expect("notebook");
        let note = store
            .create_note(NoteDraft {
                title: "Seal".into(),
                ..Default::default()
            })
            .expect("note");
        store
            .set_pref("editor.font_size", serde_json::json!(14))
            .expect("pref");
        // The notebook's entry went out; its reply is not in yet.
        let sent = store.take_batch(1, 1 << 20).expect("batch");
        assert_eq!(sent.len(), 1);
        let sent_stamp = sent[0].fields["name"].stamp;
        assert_eq!(sent_stamp.physical_ms, NOW + 16 * DAY_MS);

        // Back online, the engine measures the clock before sending.
        assert!(!store.clock_checked());
        store
            .set_clock_offset(-(16 * DAY_MS as i64))
            .expect("offset");
        assert!(store.clock_checked());

        let when_made = NOW;
        for stamp in stamps(&store, "SELECT name_stamp FROM notebooks")
            .into_iter()
            .chain(stamps(&store, "SELECT title_stamp, body_stamp FROM notes"))
            .chain(stamps(&store, "SELECT stamp FROM prefs"))
        {
            assert_eq!(stamp.physical_ms, when_made, "records: {stamp}");
        }
        let outbox = store.outbox(10).expect("outbox");
        for entry in &outbox {
            for change in entry.fields.values() {
                if entry.sent {
                    assert_eq!(
                        change.stamp, sent_stamp,
                        "a sent entry is not rewritten (L3)"
                    );
                } else {
                    assert_eq!(change.stamp.physical_ms, when_made, "unsent entries");
                }
            }
        }

        // The next edit is stamped in server time, after what was brought back.
        store
            .update_note(
                note.id,
                NotePatch {
                    title: Some("Seal replaced".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        let next = stamps(&store, "SELECT title_stamp FROM notes")[0];
        assert!(next.physical_ms <= NOW + MAX_FORWARD_DRIFT_MS, "{next}");
        assert!(next.physical_ms > when_made);

        // Measured again (round-trip noise): nothing moves again.
        store
            .set_clock_offset(-(16 * DAY_MS as i64) - 1_500)
            .expect("offset");
        assert_eq!(stamps(&store, "SELECT title_stamp FROM notes")[0], next);
    }

    #[test]
    fn only_stamps_beyond_the_limit_move_and_never_stay_beyond_it() {
        let at = |ms: u64, counter: u32| Stamp {
            physical_ms: ms,
            counter,
            node: ClientId::from_uuid(uuid::Uuid::from_u128(9)),
        };
        let limit = 1_000_000;
        assert_eq!(brought_back(at(limit, 3), limit, -500_000), None);
        assert_eq!(
            brought_back(at(limit + 700_000, 3), limit, -500_000),
            Some(at(limit, 3)),
            "moved back, then held at the limit, counter kept"
        );
        assert_eq!(
            brought_back(at(limit + 100, 3), limit, -500_000),
            Some(at(limit + 100 - 500_000, 3)),
            "moved back by the correction"
        );
        assert_eq!(
            brought_back(at(limit + 100, 0), limit, 5_000),
            Some(at(limit, 0)),
            "a correction forward only holds it at the limit"
        );
    }
}
