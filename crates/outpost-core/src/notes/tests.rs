use super::*;
use crate::store::test_support::temp_store;
use crate::{Change, MutationId};

fn draft(title: &str, body: &str) -> NoteDraft {
    NoteDraft {
        title: title.into(),
        body: body.into(),
        ..Default::default()
    }
}

#[test]
fn a_new_note_is_pending_with_one_outbox_entry_carrying_every_field() {
    let (_dir, store) = temp_store();
    let note = store
        .create_note(NoteDraft {
            title: "Pump 4".into(),
            body: "Seal leaking".into(),
            tags: vec![" field ".into(), "#Field".into(), "pumps".into(), "".into()],
            pinned: true,
            ..Default::default()
        })
        .expect("create");
    assert_eq!(note.sync_state, SyncState::Pending);
    assert_eq!(
        note.tags,
        vec!["field", "pumps"],
        "tags trimmed and de-duplicated"
    );
    assert_eq!(store.get_note(note.id).expect("get"), note);

    let outbox = store.outbox_for(&note.id.to_string()).expect("outbox");
    assert_eq!(outbox.len(), 1);
    let entry = &outbox[0];
    assert_eq!(entry.name, "note.put");
    assert_eq!(entry.base_version, None);
    let fields: Vec<&str> = entry.fields.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "archived",
            "body",
            "deleted",
            "notebook_id",
            "pinned",
            "tags",
            "title"
        ]
    );
    assert_eq!(entry.fields["body"].value, "Seal leaking");
    assert_eq!(entry.mutation_id.as_uuid().get_version_num(), 7);
}

#[test]
fn an_update_changes_only_the_given_fields_and_coalesces_while_unsent() {
    let (_dir, store) = temp_store();
    let note = store.create_note(draft("Draft", "one")).expect("create");
    let before = store.outbox(10).expect("outbox")[0].clone();

    let updated = store
        .update_note(
            note.id,
            NotePatch {
                body: Some("one two".into()),
                ..Default::default()
            },
        )
        .expect("update");
    assert_eq!(
        (updated.title.as_str(), updated.body.as_str()),
        ("Draft", "one two")
    );

    let after = store.outbox(10).expect("outbox");
    assert_eq!(after.len(), 1, "unsent entry absorbs the edit");
    assert_eq!(
        after[0].mutation_id, before.mutation_id,
        "same idempotency key"
    );
    assert_eq!(after[0].mutation_number, before.mutation_number);
    assert_eq!(after[0].fields["body"].value, "one two");
    assert!(after[0].fields["body"].stamp > before.fields["body"].stamp);
    assert_eq!(
        after[0].fields["title"], before.fields["title"],
        "title untouched"
    );
}

#[test]
fn a_patch_that_changes_nothing_writes_nothing() {
    let (_dir, store) = temp_store();
    let note = store.create_note(draft("Same", "text")).expect("create");
    store.take_batch(10, usize::MAX).expect("send");
    let mut rx = store.subscribe();
    let again = store
        .update_note(
            note.id,
            NotePatch {
                title: Some("Same".into()),
                body: Some("text".into()),
                ..Default::default()
            },
        )
        .expect("update");
    assert_eq!(again.updated_ms, note.updated_ms);
    assert_eq!(store.outbox(10).expect("outbox").len(), 1, "no new entry");
    assert!(rx.try_recv().is_err(), "no change announced");
}

#[test]
fn an_entry_ever_sent_is_never_rewritten_and_leaves_only_when_acknowledged() {
    let (_dir, store) = temp_store();
    let note = store.create_note(draft("A", "first")).expect("create");
    let sent = store.take_batch(10, usize::MAX).expect("batch");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].sent);

    store
        .update_note(
            note.id,
            NotePatch {
                body: Some("second".into()),
                ..Default::default()
            },
        )
        .expect("update");
    let outbox = store.outbox(10).expect("outbox");
    assert_eq!(outbox.len(), 2, "a sent entry is never coalesced into");
    assert_eq!(
        outbox[0].fields, sent[0].fields,
        "the sent entry is unchanged (L3)"
    );
    assert_eq!(outbox[0].mutation_id, sent[0].mutation_id);
    assert!(outbox[1].mutation_number > outbox[0].mutation_number);

    // Sending again without an acknowledgement keeps the entry (L2) and its id (L3).
    let retry = store.take_batch(1, usize::MAX).expect("retry");
    assert_eq!(retry[0].mutation_id, sent[0].mutation_id);
    assert_eq!(retry[0].attempts, 2);
    assert_eq!(
        store.get_note(note.id).expect("get").sync_state,
        SyncState::Pending
    );

    assert_eq!(store.acknowledge(&[sent[0].mutation_id]).expect("ack"), 1);
    assert_eq!(
        store
            .acknowledge(&[sent[0].mutation_id])
            .expect("ack twice"),
        0
    );
    assert_eq!(store.outbox(10).expect("outbox").len(), 1);
    let rest = store.take_batch(10, usize::MAX).expect("batch");
    store.acknowledge(&[rest[0].mutation_id]).expect("ack");
    assert_eq!(
        store.get_note(note.id).expect("get").sync_state,
        SyncState::Synced
    );
}

#[test]
fn a_dead_letter_holds_back_only_later_changes_of_its_own_note() {
    let (_dir, store) = temp_store();
    let poisoned = store.create_note(draft("Poison", "x")).expect("create");
    let healthy = store.create_note(draft("Fine", "y")).expect("create");
    let first = store.take_batch(1, usize::MAX).expect("batch");
    store
        .mark_failed(first[0].mutation_id, "body rejected: too large")
        .expect("fail");
    store
        .update_note(
            poisoned.id,
            NotePatch {
                title: Some("Poison 2".into()),
                ..Default::default()
            },
        )
        .expect("later edit");

    let state = store.get_note(poisoned.id).expect("get");
    assert_eq!(state.sync_state, SyncState::Failed);
    let batch = store.take_batch(10, usize::MAX).expect("batch");
    let ids: Vec<String> = batch.iter().map(|e| e.entity_id.clone()).collect();
    assert_eq!(
        ids,
        vec![healthy.id.to_string()],
        "the rest of the queue goes on"
    );
    let status = store.local_status().expect("status");
    assert_eq!((status.pending, status.failed), (2, 1));
}

/// The engine takes the next batch while one is in flight: it goes on after that batch, and
/// stops before a later change of a note still in flight (whose base the replies set), so the
/// queue still leaves in order and nothing is taken twice.
#[test]
fn a_batch_taken_behind_one_in_flight_stops_at_a_note_still_in_flight() {
    let (_dir, store) = temp_store();
    let a = store.create_note(draft("A", "1")).expect("a");
    let b = store.create_note(draft("B", "1")).expect("b");
    let in_flight = store.take_batch(1, usize::MAX).expect("batch");
    assert_eq!(in_flight[0].entity_id, a.id.to_string());
    let edit = NotePatch {
        body: Some("2".into()),
        ..Default::default()
    };
    store.update_note(a.id, edit).expect("edit a");
    let c = store.create_note(draft("C", "1")).expect("c");
    let ids = |batch: &[crate::OutboxEntry]| -> Vec<String> {
        batch.iter().map(|e| e.entity_id.clone()).collect()
    };

    let next = store
        .take_batch_behind(10, usize::MAX, &in_flight)
        .expect("behind");
    assert_eq!(ids(&next), [b.id.to_string()], "stops before A's edit");
    // A's replies applied, B now in flight: A's edit and C follow.
    let last = store
        .take_batch_behind(10, usize::MAX, &next)
        .expect("behind");
    assert_eq!(ids(&last), [a.id.to_string(), c.id.to_string()]);
    let none = store
        .take_batch_behind(10, usize::MAX, &last)
        .expect("behind");
    assert!(none.is_empty(), "nothing is taken twice: {none:?}");
}

#[test]
fn sync_state_is_a_column_sql_can_select() {
    let (_dir, store) = temp_store();
    let a = store.create_note(draft("A", "")).expect("a");
    store.create_note(draft("B", "")).expect("b");
    let batch = store.take_batch(1, usize::MAX).expect("batch");
    store.acknowledge(&[batch[0].mutation_id]).expect("ack");
    let rows: Vec<(String, String)> = store
        .read(|conn, path| {
            conn.prepare("SELECT title, sync_state FROM note_state ORDER BY title")
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .at(path)
        })
        .expect("query");
    assert_eq!(
        rows,
        vec![
            ("A".into(), "synced".into()),
            ("B".into(), "pending".into())
        ]
    );
    assert_eq!(
        store.get_note(a.id).expect("a").sync_state,
        SyncState::Synced
    );
}

#[test]
fn trash_restore_and_purge() {
    let (_dir, store) = temp_store();
    let note = store.create_note(draft("Old", "")).expect("create");
    let err = store.purge_note(note.id).expect_err("not in trash");
    assert_eq!(err.code(), "invalid_input");

    assert!(store.trash_note(note.id).expect("trash").deleted);
    let trash = NoteView::Trash;
    let list = |view| {
        store
            .list_notes(&ListQuery {
                view,
                ..Default::default()
            })
            .expect("list")
            .items
            .len()
    };
    assert_eq!((list(NoteView::Active), list(trash)), (0, 1));
    assert!(!store.restore_note(note.id).expect("restore").deleted);
    assert_eq!((list(NoteView::Active), list(trash)), (1, 0));

    store.trash_note(note.id).expect("trash");
    store.take_batch(10, usize::MAX).expect("sent");
    store.purge_note(note.id).expect("purge");
    assert_eq!(
        store.get_note(note.id).expect_err("gone").code(),
        "not_found"
    );
    let outbox = store.outbox_for(&note.id.to_string()).expect("outbox");
    assert_eq!(outbox.last().map(|e| e.name.as_str()), Some("note.purge"));
    assert_eq!(store.empty_trash().expect("empty"), 0);
}

#[test]
fn lists_page_in_order_pinned_first_and_filter_by_notebook_and_tag() {
    let (_dir, store) = temp_store();
    let nb = store.create_notebook("Work").expect("notebook");
    let mut ids = Vec::new();
    for i in 0..250 {
        let note = store
            .create_note(NoteDraft {
                title: format!("note {i}"),
                notebook_id: (i % 2 == 0).then_some(nb.id),
                tags: if i % 5 == 0 {
                    vec!["five".into()]
                } else {
                    vec![]
                },
                ..Default::default()
            })
            .expect("create");
        ids.push(note.id);
    }
    store
        .update_note(
            ids[3],
            NotePatch {
                pinned: Some(true),
                ..Default::default()
            },
        )
        .expect("pin");
    let archived = ids[4];
    store
        .update_note(
            archived,
            NotePatch {
                archived: Some(true),
                ..Default::default()
            },
        )
        .expect("archive");

    let mut seen = Vec::new();
    let mut query = ListQuery {
        limit: 100,
        ..Default::default()
    };
    loop {
        let page = store.list_notes(&query).expect("page");
        seen.extend(page.items.iter().map(|n| n.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 249, "every active note exactly once");
    assert_eq!(seen[0], ids[3], "pinned first");
    // Then newest first: the pin touched note 3 (moved to the top), the archive took note 4 out.
    let mut expected: Vec<NoteId> = ids
        .iter()
        .rev()
        .copied()
        .filter(|i| *i != ids[3] && *i != archived)
        .collect();
    expected.insert(0, ids[3]);
    assert_eq!(seen, expected);

    let in_nb = store
        .list_notes(&ListQuery {
            notebook_id: Some(nb.id),
            limit: 1000,
            ..Default::default()
        })
        .expect("notebook");
    assert_eq!(in_nb.items.len(), 124, "125 even notes, one archived");
    let tagged = store
        .list_notes(&ListQuery {
            tag: Some("#FIVE".into()),
            limit: 1000,
            ..Default::default()
        })
        .expect("tag");
    assert_eq!(tagged.items.len(), 50);
    let bad = store.list_notes(&ListQuery {
        after: Some("garbage".into()),
        ..Default::default()
    });
    assert_eq!(bad.expect_err("bad token").code(), "invalid_input");

    // The window's virtual list: a count for the scrollbar, then any window by offset, in the
    // same order as paging by token.
    assert_eq!(
        store.count_notes(&ListQuery::default()).expect("count"),
        249
    );
    let count_nb = ListQuery {
        notebook_id: Some(nb.id),
        ..Default::default()
    };
    assert_eq!(store.count_notes(&count_nb).expect("count"), 124);
    let window = store
        .list_notes(&ListQuery {
            offset: 200,
            limit: 100,
            ..Default::default()
        })
        .expect("window");
    let ids_in_window: Vec<NoteId> = window.items.iter().map(|n| n.id).collect();
    assert_eq!(
        ids_in_window,
        seen[200..],
        "the last 49 notes, in list order"
    );
    assert_eq!(window.next, None);
    let both = store.list_notes(&ListQuery {
        offset: 1,
        after: window.next.or(Some("1:2:3".into())),
        ..Default::default()
    });
    assert_eq!(both.expect_err("after and offset").code(), "invalid_input");
}

#[test]
fn search_finds_prefixes_highlights_hits_and_treats_syntax_as_text() {
    let (_dir, store) = temp_store();
    let pump = store
        .create_note(draft(
            "Pump station",
            "The impeller of pump four is worn. Replace it.",
        ))
        .expect("create");
    store
        .create_note(draft("Groceries", "eggs, milk"))
        .expect("create");
    let gone = store.create_note(draft("Old pump", "")).expect("create");
    store.trash_note(gone.id).expect("trash");

    let hits = store.search_notes("impel", 10).expect("search");
    assert_eq!(hits.len(), 1, "prefix of the last word matches");
    assert_eq!(hits[0].note.id, pump.id);
    let marked: Vec<&str> = hits[0]
        .snippet
        .iter()
        .filter(|p| p.hit)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["impeller"]);

    let hits = store.search_notes("pump", 10).expect("search");
    assert_eq!(hits.len(), 1, "Trash is left out");
    assert!(hits[0].title.iter().any(|p| p.hit && p.text == "Pump"));

    for tricky in [
        "\"",
        "pump\"",
        "NOT",
        "a AND",
        "(",
        "*",
        "pump OR eggs",
        "-",
        "title:x",
    ] {
        store
            .search_notes(tricky, 10)
            .unwrap_or_else(|e| panic!("{tricky:?} must not be a syntax error: {e}"));
    }
    assert!(store.search_notes("   ", 10).expect("blank").is_empty());

    // Edits re-index.
    store
        .update_note(
            pump.id,
            NotePatch {
                body: Some("all fixed".into()),
                ..Default::default()
            },
        )
        .expect("edit");
    assert!(
        store
            .search_notes("impeller", 10)
            .expect("search")
            .is_empty()
    );
    assert_eq!(store.search_notes("fixed", 10).expect("search").len(), 1);
}

#[test]
fn a_ten_mebibyte_body_works_and_one_byte_more_is_refused_with_nothing_written() {
    let (_dir, store) = temp_store();
    let big = "a".repeat(MAX_BODY_BYTES);
    let note = store
        .create_note(draft("Big", &big))
        .expect("10 MiB is fine");
    assert_eq!(
        store.get_note(note.id).expect("get").body.len(),
        MAX_BODY_BYTES
    );

    let status_before = store.local_status().expect("status");
    let too_big = "a".repeat(MAX_BODY_BYTES + 1);
    let err = store
        .create_note(draft("Bigger", &too_big))
        .expect_err("refused");
    assert_eq!(err.code(), "too_large");
    assert_eq!(
        err.to_string(),
        format!(
            "body is {} bytes; the limit is {} bytes",
            MAX_BODY_BYTES + 1,
            MAX_BODY_BYTES
        )
    );
    let err = store
        .update_note(
            note.id,
            NotePatch {
                body: Some(too_big),
                ..Default::default()
            },
        )
        .expect_err("refused");
    assert_eq!(err.code(), "too_large");
    assert_eq!(store.local_status().expect("status"), status_before);
    assert_eq!(
        store.get_note(note.id).expect("get").body.len(),
        MAX_BODY_BYTES
    );
}

#[test]
fn changes_are_announced_after_commit() {
    let (_dir, store) = temp_store();
    let mut rx = store.subscribe();
    let note = store.create_note(draft("Hello", "")).expect("create");
    let change: Change = rx.try_recv().expect("a change");
    assert_eq!(change.notes, vec![note.id]);
    assert!(change.outbox);
    // A failed write announces nothing.
    let _ = store.create_note(draft(&"t".repeat(MAX_TITLE_BYTES + 1), ""));
    assert!(rx.try_recv().is_err());
}

#[test]
fn ids_resolve_from_a_unique_prefix() {
    let (_dir, store) = temp_store();
    let note = store.create_note(draft("x", "")).expect("create");
    let full = note.id.to_string();
    let other = store.create_note(draft("y", "")).expect("create");
    assert_eq!(
        store.resolve_note_id(&full[24..]).expect("last group"),
        note.id
    );
    assert_eq!(
        store
            .resolve_note_id(&full[..8])
            .expect_err("v7 ids made together share a prefix")
            .code(),
        "invalid_input"
    );
    assert_eq!(
        store
            .resolve_note_id(&other.id.to_string()[28..])
            .expect("suffix"),
        other.id
    );
    assert_eq!(store.resolve_note_id(&full).expect("full"), note.id);
    assert_eq!(
        store.resolve_note_id("ab").expect_err("short").code(),
        "invalid_input"
    );
    assert_eq!(
        store.resolve_note_id("ffffffff").expect_err("none").code(),
        "not_found"
    );
}

#[test]
fn mutation_numbers_and_stamps_keep_increasing_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (last_number, last_stamp) = {
        let store = Store::open(dir.path()).expect("open");
        for i in 0..3 {
            store
                .create_note(draft(&format!("n{i}"), ""))
                .expect("create");
        }
        let outbox = store.outbox(10).expect("outbox");
        let batch = store.take_batch(10, usize::MAX).expect("batch");
        let ids: Vec<MutationId> = batch.iter().map(|e| e.mutation_id).collect();
        store
            .acknowledge(&ids)
            .expect("ack all: the outbox is empty now");
        let last = outbox.last().expect("entry");
        (last.mutation_number, last.fields["title"].stamp)
    };
    let store = Store::open(dir.path()).expect("reopen");
    store.create_note(draft("after", "")).expect("create");
    let entry = store.outbox(10).expect("outbox")[0].clone();
    assert!(
        entry.mutation_number > last_number,
        "numbers never repeat, even with an empty outbox"
    );
    assert!(entry.fields["title"].stamp > last_stamp);
}

#[test]
fn an_import_writes_every_note_with_its_outbox_entry_or_nothing() {
    let (_dir, store) = temp_store();
    let too_long = "t".repeat(MAX_TITLE_BYTES + 1);
    let err = store
        .import_notes(vec![
            draft("A", "a"),
            draft(&too_long, "b"),
            draft("C", "c"),
        ])
        .expect_err("one bad draft refuses the batch");
    assert_eq!(err.code(), "too_large");
    assert_eq!(store.local_status().expect("status").notes, 0);

    let ids = store
        .import_notes((0..3).map(|i| draft(&format!("N{i}"), "body")).collect())
        .expect("import");
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert_eq!(
            store.get_note(*id).expect("note").sync_state,
            SyncState::Pending
        );
        assert_eq!(store.outbox_for(&id.to_string()).expect("outbox").len(), 1);
    }
}

/// The search index is written once per transaction (schema V9). After many changes to the same
/// notes in one transaction, and after a write made outside the app (a `sqlite3` session), search
/// finds what each note says now and nothing it said before, and FTS5's own check of the index
/// against the notes passes.
#[test]
fn search_finds_what_notes_say_now_after_many_changes_in_one_transaction() {
    let (dir, store) = temp_store();
    let ids = store
        .import_notes(
            (0..50)
                .map(|i| draft(&format!("Pump {i}"), "seal worn"))
                .collect(),
        )
        .expect("import");
    let count = |store: &Store, word: &str| store.search_notes(word, 100).expect("search").len();
    assert_eq!(
        count(&store, "seal"),
        50,
        "an import of 50 notes is searchable"
    );
    let index_matches_notes = |store: &Store| {
        store
            .write(|tx| {
                tx.tx
                    .execute(
                        "INSERT INTO notes_fts (notes_fts, rank) VALUES ('integrity-check', 1)",
                        [],
                    )
                    .at(tx.path)
            })
            .expect("the index holds exactly what the notes say");
    };
    store
        .write(|tx| {
            for id in &ids[..20] {
                for sql in [
                    "UPDATE notes SET body = 'gasket replaced' WHERE id = ?1",
                    "UPDATE notes SET body = body || ', valve checked' WHERE id = ?1",
                    "UPDATE notes SET pinned = 1 WHERE id = ?1",
                ] {
                    tx.tx.execute(sql, [id.to_string()]).at(tx.path)?;
                }
            }
            // A pull writes a note with an upsert, whose conflict clause overrides the
            // triggers' own.
            tx.tx
                .execute(
                    "INSERT INTO notes (id, title, body, created_ms, updated_ms, notebook_stamp,
                         title_stamp, body_stamp, tags_stamp, pinned_stamp, archived_stamp,
                         deleted_stamp)
                     VALUES (?1, 'Pump 0', 'gasket replaced, valve checked, upserted', 1, 1,
                         's', 's', 's', 's', 's', 's', 's')
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                    [ids[0].to_string()],
                )
                .at(tx.path)?;
            tx.tx
                .execute("DELETE FROM notes WHERE id = ?1", [ids[49].to_string()])
                .at(tx.path)?;
            Ok(())
        })
        .expect("edits");
    assert_eq!(count(&store, "gasket"), 20);
    assert_eq!(count(&store, "valve"), 20);
    assert_eq!(
        count(&store, "seal"),
        29,
        "old words gone, the purged note gone"
    );
    assert_eq!(count(&store, "upserted"), 1);
    index_matches_notes(&store);

    drop(store);
    let conn = Connection::open(crate::db::db_path(dir.path())).expect("sqlite3 session");
    conn.execute(
        "UPDATE notes SET title = 'Compressor' WHERE id = ?1",
        [ids[30].to_string()],
    )
    .expect("edit outside the app");
    drop(conn);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        count(&store, "compressor"),
        1,
        "indexed when the app starts"
    );
    assert_eq!(count(&store, "pump"), 48);
    index_matches_notes(&store);
}

#[test]
fn the_note_fields_are_the_protocols_in_its_order() {
    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    let protocol: Vec<&str> = outpost_protocol::fields::NOTE
        .iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, protocol);
}
