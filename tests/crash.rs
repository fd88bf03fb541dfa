//! kill -9 in the middle of a burst of writes: after a restart every note has exactly its outbox
//! entry, with the same content, and nothing is half-written (invariant L1).

use outpost_core::{ListQuery, NoteView, Store};
use outpost_e2e::bin;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until the writer has committed at least `n` notes (read through a plain SQLite
/// connection, as WAL allows while the writer runs).
fn wait_for_notes(db: &std::path::Path, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = rusqlite_count(db);
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the writer made only {count} notes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rusqlite_count(db: &std::path::Path) -> i64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn kill_9_during_a_burst_of_writes_loses_nothing_committed_and_splits_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("outpost.db");
    let mut expected_at_least = 0;
    for round in 0..4 {
        let mut child = Command::new(bin("outpost"))
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "seed",
                "1000000",
                "--body-bytes",
                "2048",
                "--edit-every",
                "3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn writer");
        // Kill at a different point each round, always mid-burst.
        wait_for_notes(&db, expected_at_least + 50 + round * 97);
        child.kill().expect("kill -9");
        let status = child.wait().expect("reap");
        assert!(!status.success(), "the writer was killed, not finished");

        let store = Store::open(dir.path()).expect("reopen after kill -9");
        let integrity: String = rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .expect("integrity check");
        assert_eq!(integrity, "ok");

        let notes = store
            .list_notes(&ListQuery {
                view: NoteView::Active,
                limit: 1000,
                ..Default::default()
            })
            .expect("list");
        let mut all = notes.items;
        let mut query = ListQuery {
            limit: 1000,
            after: notes.next,
            ..Default::default()
        };
        while query.after.is_some() {
            let page = store.list_notes(&query).expect("page");
            all.extend(page.items);
            query.after = page.next;
        }
        let outbox = store.outbox(1_000_000).expect("outbox");
        let mut by_note: HashMap<String, Vec<&outpost_core::OutboxEntry>> = HashMap::new();
        for entry in &outbox {
            by_note
                .entry(entry.entity_id.clone())
                .or_default()
                .push(entry);
        }
        assert_eq!(outbox.len(), all.len(), "round {round}: one entry per note");
        for summary in &all {
            let entries = &by_note[&summary.id.to_string()];
            assert_eq!(
                entries.len(),
                1,
                "note {} has {} entries",
                summary.id,
                entries.len()
            );
            let note = store.get_note(summary.id).expect("note");
            let fields = &entries[0].fields;
            assert_eq!(
                fields["title"].value,
                note.title.as_str(),
                "outbox matches the note"
            );
            assert_eq!(
                fields["body"].value,
                note.body.as_str(),
                "outbox matches the note"
            );
        }
        let numbers: Vec<i64> = outbox.iter().map(|e| e.mutation_number).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "numbers increase in send order"
        );
        assert!(
            all.len() as i64 >= expected_at_least,
            "committed notes never disappear"
        );
        expected_at_least = all.len() as i64;
        drop(store);
    }
}
