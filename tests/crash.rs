//! kill -9 of the real `outpost` process: in the middle of a burst of writes (after a restart
//! every note has exactly its outbox entry, with the same content, and nothing is half-written:
//! invariant L1), and in the middle of a sync, stopped at a precise point by the core's test hook
//! (`outpost_core::testhook`): nothing is lost or doubled on the device or the server (L2, L3,
//! a pull page and its cursor commit together), and the next sync converges.

use outpost_core::{ListQuery, NoteView, Store, SyncState, testhook};
use outpost_e2e::device::snapshot;
use outpost_e2e::server::Server;
use outpost_e2e::{bin, outpost_json, outpost_ok};
use outpost_protocol::api::Cursor;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
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
                "--one-by-one",
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

/// Runs `outpost sync` on `dir` with the test hook set to `pause_at` (`point` or `point@n`),
/// waits until the process says it stopped there, and kills it with SIGKILL.
fn sync_killed_at(dir: &Path, pause_at: &str) {
    outpost_e2e::killed_at(dir, &["sync"], pause_at);
}

/// The outbox of a data directory as (mutation id, number, sent), in send order.
fn outbox_of(store: &Store) -> Vec<(String, i64, bool)> {
    store
        .outbox(1_000_000)
        .expect("outbox")
        .into_iter()
        .map(|e| (e.mutation_id.to_string(), e.mutation_number, e.sent))
        .collect()
}

/// What the user sees: 450 notes typed offline; `outpost sync` sends them in batches of 200 (or
/// more, once the link proves fast), taking each batch while the one before is in flight, and
/// is killed just after the server answered the second batch, before the device recorded the
/// answer. After the restart the first batch shows as synced, the other 250 notes as pending
/// (the device does not know yet), and an edit of a note in flight waits behind it as a new
/// change. The next `outpost sync` exits 0: the server recognises the second batch (duplicate,
/// same ids and numbers), applies the rest once, and every device has each of the 450 notes
/// once, with the edit, and nothing left to send.
#[test]
fn kill_9_after_the_server_answered_a_push_loses_and_doubles_nothing() {
    let server = Server::start_on_thread();
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    outpost_ok(
        a.path(),
        &[
            "register",
            "--server",
            &server.url,
            "--email",
            "ann@example.org",
        ],
    );
    outpost_ok(
        b.path(),
        &[
            "login",
            "--server",
            &server.url,
            "--email",
            "ann@example.org",
        ],
    );
    outpost_ok(a.path(), &["seed", "450", "--body-bytes", "200"]);
    let before = outbox_of(&Store::open(a.path()).expect("a"));
    assert_eq!(before.len(), 450);
    assert!(
        before.windows(2).all(|w| w[0].1 < w[1].1),
        "numbers increase"
    );

    sync_killed_at(a.path(), &format!("{}@2", testhook::PUSH_SENT));

    let store = Store::open(a.path()).expect("reopen after kill -9");
    let after = outbox_of(&store);
    assert_eq!(
        after.len(),
        250,
        "only the acknowledged batch left the outbox (L2)"
    );
    let unchanged: Vec<_> = after.iter().map(|(id, n, _)| (id, n)).collect();
    let expected: Vec<_> = before[200..].iter().map(|(id, n, _)| (id, n)).collect();
    assert_eq!(unchanged, expected, "same ids and numbers, in order (L3)");
    // Marked sent: the second batch (200 again, or all 250 left if the first answered fast
    // enough for batches to grow, engine::BatchSize) and what the engine took behind it while
    // it was in flight. Marked sent is never rewritten (L3), sent or not.
    let marked: Vec<String> = after
        .iter()
        .filter(|(_, _, sent)| *sent)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(marked.len(), 250, "the rest was taken to be sent");
    let status = store.local_status().expect("status");
    assert_eq!((status.notes, status.pending), (450, 250));
    let pending_note = store.outbox(1).expect("outbox")[0].entity_id.clone();
    drop(store);

    // The server applied two batches; another device sees exactly those.
    outpost_ok(b.path(), &["sync"]);
    let on_b = outpost_json(b.path(), &["status"])["notes"]
        .as_u64()
        .expect("notes");
    assert!(
        on_b == 400 || on_b == 450,
        "the first two batches, no more: {on_b}"
    );
    let second_batch = usize::try_from(on_b).expect("count") - 200;

    // An edit of a note whose mutation is in flight goes behind it, as a new mutation.
    outpost_ok(
        a.path(),
        &[
            "note",
            "edit",
            &pending_note,
            "--body",
            "edited after the crash",
        ],
    );
    let store = Store::open(a.path()).expect("a");
    let queue = store.outbox_for(&pending_note).expect("outbox");
    assert_eq!(queue.len(), 2, "the sent entry is not rewritten: {queue:?}");
    assert_eq!(queue[0].mutation_id.to_string(), marked[0]);
    assert!(
        queue[1].mutation_number > before[449].1,
        "a new, higher number"
    );
    drop(store);

    let out = outpost_json(a.path(), &["sync"]);
    assert_eq!(out["report"]["pushed"], 251, "{out}");
    let duplicates: BTreeSet<String> = out["report"]["applied"]["duplicates"]
        .as_array()
        .expect("duplicates")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        duplicates,
        marked[..second_batch].iter().cloned().collect(),
        "the server had handled exactly the batch in flight"
    );
    assert_eq!(out["status"]["pending"], 0);

    outpost_ok(b.path(), &["sync"]);
    let a_store = Store::open(a.path()).expect("a");
    let b_store = Store::open(b.path()).expect("b");
    let notes = snapshot(&a_store);
    assert_eq!(notes.len(), 450, "each note once");
    assert_eq!(snapshot(&b_store), notes, "the devices agree");
    let id = a_store.resolve_note_id(&pending_note).expect("id");
    assert_eq!(notes[&id].1, "edited after the crash");
    assert!(a_store.outbox(10).expect("outbox").is_empty());
    assert_eq!(
        a_store.get_note(id).expect("note").sync_state,
        SyncState::Synced
    );
}

/// Search finds what the notes hold, as the database was left (read before the app's start-up
/// could bring the index up to date): FTS5's own check of the index against the notes, and
/// one index row per note.
fn search_index_matches_the_notes(dir: &std::path::Path, notes: i64) {
    let db = rusqlite::Connection::open(dir.join("outpost.db")).expect("db");
    db.execute(
        "INSERT INTO notes_fts (notes_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .expect("the search index matches the notes");
    let pending: i64 = db
        .query_row("SELECT count(*) FROM fts_pending", [], |r| r.get(0))
        .expect("pending");
    assert_eq!(pending, 0, "nothing left unindexed");
    let indexed: i64 = db
        .query_row("SELECT count(*) FROM notes_fts_docsize", [], |r| r.get(0))
        .expect("indexed");
    assert_eq!(indexed, notes, "one index entry per note");
}

/// What the user sees: a new laptop signs in to an account of 2,500 notes; `outpost sync` has
/// applied the first page of 1,000 and is killed while applying the second. After the restart
/// the laptop has the first page (and its own note), never half a page; the next `outpost sync`
/// goes on from there (it fetches the 1,501 records after the first page, not everything again)
/// and ends with each note once, the same as the other device.
#[test]
fn kill_9_while_applying_a_pull_page_loses_and_doubles_nothing() {
    let server = Server::start_on_thread();
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    outpost_ok(
        b.path(),
        &[
            "register",
            "--server",
            &server.url,
            "--email",
            "ann@example.org",
        ],
    );
    outpost_ok(b.path(), &["seed", "2500", "--body-bytes", "64"]);
    outpost_ok(b.path(), &["sync"]);
    outpost_ok(
        a.path(),
        &[
            "login",
            "--server",
            &server.url,
            "--email",
            "ann@example.org",
        ],
    );
    outpost_ok(
        a.path(),
        &[
            "note",
            "add",
            "--title",
            "Mine",
            "--body",
            "typed on the laptop",
        ],
    );

    sync_killed_at(a.path(), &format!("{}@2", testhook::PULL_PAGE_APPLYING));
    search_index_matches_the_notes(a.path(), 1001);

    let store = Store::open(a.path()).expect("reopen after kill -9");
    let status = store.local_status().expect("status");
    assert_eq!(
        status.notes, 1001,
        "its own note and the whole first page, no more"
    );
    assert_eq!(
        status.pending, 0,
        "the push before the pull was acknowledged"
    );
    assert_eq!(
        store.cursor().expect("cursor"),
        Cursor(1000),
        "the first page's cursor"
    );
    drop(store);

    let out = outpost_json(a.path(), &["sync"]);
    assert_eq!(
        out["report"]["pulled"], 1501,
        "resumed after the first page: {out}"
    );
    assert_eq!(out["status"]["notes"], 2501);
    assert_eq!(out["status"]["pending"], 0);

    outpost_ok(b.path(), &["sync"]);
    search_index_matches_the_notes(a.path(), 2501);
    let a_store = Store::open(a.path()).expect("a");
    let found = a_store.search_notes("002499", 5).expect("search");
    assert!(
        found.iter().any(|hit| hit.note.title.ends_with("-002499)")),
        "search finds a note of the last page: {found:?}"
    );
    let notes = snapshot(&a_store);
    assert_eq!(notes.len(), 2501, "each note once");
    assert_eq!(
        snapshot(&Store::open(b.path()).expect("b")),
        notes,
        "the devices agree"
    );
}
