use super::*;
use outpost_protocol::{ClientId, MAX_BODY_BYTES, MutationId, NoteId};
use serde_json::json;

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

fn stamp(ms: u64) -> Stamp {
    Stamp {
        physical_ms: ms,
        counter: 0,
        node: ClientId::from_uuid(uuid::Uuid::from_u128(1)),
    }
}

fn fields(pairs: &[(&str, Value, u64)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v, ms)| {
            (
                (*k).to_owned(),
                FieldChange {
                    value: v.clone(),
                    stamp: stamp(*ms),
                },
            )
        })
        .collect()
}

fn put(number: i64, note: &str, f: Fields, base: Option<i64>) -> Mutation {
    Mutation::put(Entity::Note, note, number)
        .with_fields(f)
        .base(base)
        .build()
}

fn key(note: &str) -> Key {
    (Entity::Note, note.to_owned())
}

fn record(version: i64, body_version: i64, f: Fields) -> StoredRecord {
    StoredRecord {
        version: Version(version),
        body_version: Version(body_version),
        cursor: Cursor(version),
        purged: false,
        fields: f,
    }
}

fn loaded_with(note: &str, r: StoredRecord) -> Loaded {
    Loaded {
        last_number: MutationNumber(0),
        account_cursor: Cursor(10),
        records: HashMap::from([(key(note), r)]),
        results: HashMap::new(),
        chain: String::new(),
    }
}

#[test]
fn each_commit_extends_the_chain_and_the_same_history_gives_the_same_chain() {
    let (a, b) = (NoteId::new().to_string(), NoteId::new().to_string());
    let batch = vec![
        put(1, &a, fields(&[("title", json!("A"), NOW)]), None),
        put(2, &b, fields(&[("title", json!("B"), NOW)]), None),
    ];
    let plan = plan_push(batch.clone(), Loaded::default(), NOW);
    assert_eq!(plan.commits.len(), 2);
    assert_eq!(plan.commits[0].0, Cursor(1));
    assert_eq!(plan.commits[1].0, Cursor(2));
    assert_ne!(plan.commits[0].1, plan.commits[1].1);
    assert!(plan.commits.iter().all(|(_, c)| c.len() == 32));
    // The same mutations again on the same history (a restore, then a device re-sending what it
    // never got a reply for): the same chain, the history the device knew.
    assert_eq!(
        plan_push(batch.clone(), Loaded::default(), NOW).commits,
        plan.commits
    );
    // Other commits at the same cursors (a restored server that moved on): another chain.
    let other = vec![put(1, &b, fields(&[("title", json!("C"), NOW)]), None)];
    let rewound = plan_push(other, Loaded::default(), NOW);
    assert_eq!(rewound.commits[0].0, Cursor(1));
    assert_ne!(rewound.commits[0].1, plan.commits[0].1);
    // A duplicate commits nothing and leaves the chain where it was.
    let again = Loaded {
        last_number: MutationNumber(2),
        account_cursor: Cursor(2),
        chain: plan.commits[1].1.clone(),
        ..Loaded::default()
    };
    assert!(plan_push(batch, again, NOW).commits.is_empty());
}

#[test]
fn new_notes_get_consecutive_cursors_and_one_write_each() {
    let a = NoteId::new().to_string();
    let batch = vec![
        put(1, &a, fields(&[("title", json!("one"), NOW)]), None),
        put(2, &a, fields(&[("body", json!("text"), NOW + 1)]), Some(1)),
    ];
    let plan = plan_push(batch, Loaded::default(), NOW);
    let outcomes: Vec<&Outcome> = plan.results.iter().map(|r| &r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            &Outcome::Applied {
                version: Version(1),
                cursor: Cursor(1),
                clamped_skew_ms: None
            },
            &Outcome::Applied {
                version: Version(2),
                cursor: Cursor(2),
                clamped_skew_ms: None
            },
        ]
    );
    assert_eq!(plan.writes.len(), 1, "the final state of the note, once");
    assert_eq!(plan.writes[0].1.cursor, Cursor(2));
    assert_eq!(plan.writes[0].1.fields.len(), 2);
    assert_eq!(
        (plan.last_number, plan.account_cursor),
        (MutationNumber(2), Cursor(2))
    );
}

#[test]
fn a_retried_mutation_is_a_duplicate_with_the_first_reply() {
    let a = NoteId::new().to_string();
    let m = put(5, &a, fields(&[("title", json!("x"), NOW)]), None);
    let first = Outcome::Applied {
        version: Version(1),
        cursor: Cursor(3),
        clamped_skew_ms: None,
    };
    let loaded = Loaded {
        last_number: MutationNumber(5),
        account_cursor: Cursor(3),
        results: HashMap::from([(5, (m.id, first.clone()))]),
        ..Loaded::default()
    };
    let plan = plan_push(vec![m], loaded, NOW);
    assert_eq!(
        plan.results[0].outcome,
        Outcome::Duplicate {
            first: Some(Box::new(first))
        }
    );
    assert!(plan.writes.is_empty() && plan.remember.is_empty());
    assert_eq!(plan.account_cursor, Cursor(3), "nothing committed");
}

#[test]
fn a_reused_number_with_another_id_is_rejected_not_dropped() {
    let a = NoteId::new().to_string();
    let loaded = Loaded {
        last_number: MutationNumber(5),
        results: HashMap::from([(5, (MutationId::new(), Outcome::Duplicate { first: None }))]),
        ..Loaded::default()
    };
    let plan = plan_push(
        vec![put(5, &a, fields(&[("title", json!("x"), NOW)]), None)],
        loaded,
        NOW,
    );
    assert!(
        matches!(&plan.results[0].outcome, Outcome::Rejected { code, .. } if code == "number_reused")
    );
}

#[test]
fn rejections_explain_and_still_advance_the_number() {
    let a = NoteId::new().to_string();
    let mut unknown = put(3, &a, fields(&[("title", json!("x"), NOW)]), None);
    unknown.name = "note.explode".into();
    let batch = vec![
        put(1, &a, fields(&[("colour", json!("red"), NOW)]), None),
        put(2, &a, fields(&[("pinned", json!("yes"), NOW)]), None),
        unknown,
        put(4, "not-a-uuid", fields(&[("title", json!("x"), NOW)]), None),
        put(
            5,
            &a,
            fields(&[("body", json!("b".repeat(MAX_BODY_BYTES + 1)), NOW)]),
            None,
        ),
        put(6, &a, Fields::new(), None),
        put(7, &a, fields(&[("title", json!("fine"), NOW)]), None),
    ];
    let plan = plan_push(batch, Loaded::default(), NOW);
    let got: Vec<(String, String)> = plan
        .results
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Rejected { code, message } => (code.clone(), message.clone()),
            other => (other.status().to_owned(), String::new()),
        })
        .collect();
    assert_eq!(
        got[0],
        (
            "invalid_field".into(),
            "note has no field \"colour\"".into()
        )
    );
    assert_eq!(
        got[1],
        (
            "invalid_field".into(),
            "note.pinned must be true or false".into()
        )
    );
    assert_eq!(
        got[2],
        (
            "unknown_mutation".into(),
            "unknown mutation \"note.explode\"".into()
        )
    );
    assert_eq!(got[3].0, "invalid_field");
    assert_eq!(
        got[4],
        (
            "too_large".into(),
            format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES} bytes",
                MAX_BODY_BYTES + 1
            )
        )
    );
    assert_eq!(got[5].0, "invalid_field");
    assert_eq!(
        got[6].0, "applied",
        "a poison mutation never wedges the queue"
    );
    assert_eq!(plan.last_number, MutationNumber(7));
    assert_eq!(plan.remember.len(), 7);
}

#[test]
fn small_fields_merge_last_writer_wins_per_field() {
    let a = NoteId::new().to_string();
    let current = record(
        4,
        1,
        fields(&[
            ("title", json!("server title"), NOW),
            ("pinned", json!(false), NOW),
        ]),
    );
    let batch = vec![put(
        1,
        &a,
        fields(&[
            ("title", json!("older title"), NOW - 10),
            ("pinned", json!(true), NOW + 10),
        ]),
        Some(2),
    )];
    let plan = plan_push(batch, loaded_with(&a, current), NOW);
    let written = &plan.writes[0].1.fields;
    assert_eq!(
        written["title"].value,
        json!("server title"),
        "the newer title stays"
    );
    assert_eq!(written["pinned"].value, json!(true), "the newer pin wins");
    assert_eq!(plan.writes[0].1.version, Version(5));
    assert_eq!(
        plan.writes[0].1.body_version,
        Version(1),
        "the body did not change"
    );
}

#[test]
fn an_edit_that_loses_every_field_changes_nothing() {
    let a = NoteId::new().to_string();
    let current = record(4, 1, fields(&[("title", json!("newer"), NOW)]));
    let plan = plan_push(
        vec![put(
            1,
            &a,
            fields(&[("title", json!("older"), NOW - 1)]),
            Some(4),
        )],
        loaded_with(&a, current),
        NOW,
    );
    assert_eq!(
        plan.results[0].outcome,
        Outcome::Applied {
            version: Version(4),
            cursor: Cursor(4),
            clamped_skew_ms: None
        }
    );
    assert!(plan.writes.is_empty());
}

#[test]
fn a_body_edited_on_a_stale_base_is_a_conflict_with_the_current_record() {
    let a = NoteId::new().to_string();
    let current = record(6, 5, fields(&[("body", json!("theirs"), NOW)]));
    let stale = put(1, &a, fields(&[("body", json!("mine"), NOW + 5)]), Some(4));
    let plan = plan_push(vec![stale], loaded_with(&a, current.clone()), NOW);
    match &plan.results[0].outcome {
        Outcome::Conflict { current: rec } => {
            assert_eq!(rec.version, Version(6));
            assert_eq!(rec.fields["body"].value, json!("theirs"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(plan.writes.is_empty(), "nothing applied");
    assert_eq!(
        plan.last_number,
        MutationNumber(1),
        "but the mutation is handled"
    );

    // A base that saw the last body change applies, whatever the title did since.
    let fresh = put(2, &a, fields(&[("body", json!("mine"), NOW - 5)]), Some(5));
    let plan = plan_push(vec![fresh], loaded_with(&a, current.clone()), NOW);
    assert_eq!(plan.results[0].outcome.status(), "applied");
    assert_eq!(
        plan.writes[0].1.fields["body"].value,
        json!("mine"),
        "base order, not clocks"
    );
    assert_eq!(plan.writes[0].1.body_version, Version(7));

    // The same text on a stale base is no conflict.
    let same = put(3, &a, fields(&[("body", json!("theirs"), NOW)]), Some(1));
    let plan = plan_push(vec![same], loaded_with(&a, current), NOW);
    assert_eq!(plan.results[0].outcome.status(), "applied");
}

#[test]
fn an_edit_brings_a_trashed_note_back_with_a_stamp_newer_than_the_delete() {
    let a = NoteId::new().to_string();
    let current = record(
        3,
        1,
        fields(&[
            ("body", json!("old"), NOW - 100),
            ("deleted", json!(true), NOW),
        ]),
    );
    let edit = put(
        1,
        &a,
        fields(&[("body", json!("edited offline"), NOW - 50)]),
        Some(1),
    );
    let plan = plan_push(vec![edit], loaded_with(&a, current), NOW);
    let f = &plan.writes[0].1.fields;
    assert_eq!(
        f["deleted"].value,
        json!(false),
        "the edit wins over the delete"
    );
    assert!(
        f["deleted"].stamp > stamp(NOW),
        "every replica takes the restore"
    );
    assert_eq!(f["body"].value, json!("edited offline"));
}

#[test]
fn stamps_far_ahead_are_clamped_and_the_skew_reported() {
    let a = NoteId::new().to_string();
    let plan = plan_push(
        vec![put(
            1,
            &a,
            fields(&[("title", json!("fast clock"), NOW + DAY)]),
            None,
        )],
        Loaded::default(),
        NOW,
    );
    assert_eq!(
        plan.results[0].outcome,
        Outcome::Applied {
            version: Version(1),
            cursor: Cursor(1),
            clamped_skew_ms: Some(DAY)
        }
    );
    assert_eq!(
        plan.writes[0].1.fields["title"].stamp.physical_ms,
        NOW + MAX_STAMP_SKEW_MS
    );
}

#[test]
fn purge_leaves_an_empty_tombstone_and_a_later_blind_edit_gets_it_back_as_a_conflict() {
    let a = NoteId::new().to_string();
    let current = record(2, 1, fields(&[("body", json!("secret"), NOW)]));
    let mut purge = put(1, &a, Fields::new(), Some(2));
    purge.name = names::NOTE_PURGE.into();
    let plan = plan_push(vec![purge], loaded_with(&a, current), NOW);
    let (_, tomb) = &plan.writes[0];
    assert!(tomb.purged && tomb.fields.is_empty(), "no text kept");
    assert_eq!(tomb.version, Version(3));

    let blind = put(2, &a, fields(&[("title", json!("edit"), NOW)]), Some(2));
    let plan2 = plan_push(vec![blind], loaded_with(&a, tomb.clone()), NOW);
    assert!(matches!(&plan2.results[0].outcome, Outcome::Conflict { current } if current.purged));

    let resend = put(
        3,
        &a,
        fields(&[("title", json!("edit"), NOW), ("body", json!("all"), NOW)]),
        Some(3),
    );
    let plan3 = plan_push(vec![resend], loaded_with(&a, tomb.clone()), NOW);
    assert!(
        !plan3.writes[0].1.purged,
        "sent knowing the tombstone: the note comes back"
    );
}

#[test]
fn a_batch_out_of_order_or_too_old_is_refused_whole() {
    let a = NoteId::new().to_string();
    let f = fields(&[("title", json!("x"), NOW)]);
    let batch = vec![put(2, &a, f.clone(), None), put(1, &a, f.clone(), None)];
    assert_eq!(
        check_batch(&batch),
        Err(BatchError::OutOfOrder(MutationNumber(1), MutationNumber(2)))
    );
    let mut old = put(1, &a, f, None);
    old.schema_version = 0;
    assert_eq!(check_batch(&[old]), Err(BatchError::ClientTooOld(0)));
}

#[test]
fn the_same_body_from_another_writer_takes_the_newer_stamp_under_a_new_version() {
    // Found by the simulation (seed 1): a device's merge came out as exactly the server's text;
    // the server kept its stamp and answered "unchanged", so the device kept another stamp for
    // the same text and the sync doctor found the two different for good.
    let a = NoteId::new().to_string();
    let current = record(6, 5, fields(&[("body", json!("same"), NOW)]));
    let newer = put(1, &a, fields(&[("body", json!("same"), NOW + 9)]), Some(5));
    let plan = plan_push(vec![newer], loaded_with(&a, current.clone()), NOW);
    let written = &plan.writes[0].1;
    assert_eq!(written.version, Version(7), "every replica pulls it again");
    assert_eq!(written.body_version, Version(5), "the text did not change");
    assert_eq!(written.fields["body"].stamp, stamp(NOW + 9));

    // An older stamp for the same text: the server's stays, but the sender still gets the
    // record back to take it.
    let older = put(1, &a, fields(&[("body", json!("same"), NOW - 9)]), Some(5));
    let plan = plan_push(vec![older], loaded_with(&a, current.clone()), NOW);
    assert_eq!(plan.writes[0].1.version, Version(7));
    assert_eq!(plan.writes[0].1.fields["body"].stamp, stamp(NOW));

    // The very same field again (a retry's twin): nothing to write.
    let same = put(1, &a, fields(&[("body", json!("same"), NOW)]), Some(5));
    let plan = plan_push(vec![same], loaded_with(&a, current), NOW);
    assert!(plan.writes.is_empty());
}

#[test]
fn the_digest_moves_from_the_stored_record_to_the_written_one_and_not_for_a_conflict() {
    let note = NoteId::new().to_string();
    let stored = record(
        3,
        3,
        fields(&[
            ("title", json!("Pump"), NOW - DAY),
            ("body", json!("a"), NOW - DAY),
        ]),
    );
    // An edit of a stored note: one bucket, count unchanged, the sum moves by new minus old.
    let edit = put(
        1,
        &note,
        fields(&[("title", json!("Pump 4"), NOW)]),
        Some(3),
    );
    let plan = plan_push(vec![edit], loaded_with(&note, stored.clone()), NOW);
    let (_, written) = &plan.writes[0];
    assert_eq!(plan.digest.len(), 1);
    let d = plan.digest[0];
    assert_eq!(d.bucket, digest::bucket(Entity::Note, &note));
    assert_eq!((d.count, d.notes, d.tombstones), (0, 0, 0));
    let old = digest::record_digest(Entity::Note, &note, stored.version, &stored.fields);
    let new = digest::record_digest(Entity::Note, &note, written.version, &written.fields);
    assert_eq!(
        DigestDelta::sum(d.hi, d.lo),
        new.wrapping_sub(old),
        "the halves add up to the wrapped difference"
    );

    // A body edit on an old base conflicts: nothing written, nothing moves.
    let stale = put(2, &note, fields(&[("body", json!("b"), NOW)]), Some(1));
    let plan = plan_push(vec![stale], loaded_with(&note, stored), NOW);
    assert!(plan.writes.is_empty());
    assert!(plan.digest.is_empty());

    // A new note and its purge in one batch: one tombstone, no live record.
    let other = NoteId::new().to_string();
    let create = put(3, &other, fields(&[("title", json!("x"), NOW)]), None);
    let mut purge = put(4, &other, Fields::new(), Some(1));
    purge.name = names::NOTE_PURGE.into();
    let plan = plan_push(vec![create, purge], Loaded::default(), NOW);
    let d = plan.digest[0];
    assert_eq!(
        (d.count, d.notes, d.tombstones, d.hi, d.lo),
        (0, 0, 1, 0, 0)
    );
}

#[test]
fn a_fast_devices_later_edit_wins_over_its_earlier_one_though_both_are_clamped() {
    let note = NoteId::new().to_string();
    let ahead = NOW + 2 * DAY;
    let node = ClientId::from_uuid(uuid::Uuid::from_u128(7));
    let at = |ms: u64, counter: u32| Stamp {
        physical_ms: ms,
        counter,
        node,
    };
    let put_at = |number: i64, title: &str, stamp: Stamp, base: Option<i64>| {
        let mut m = put(number, &note, Fields::new(), base);
        m.fields.insert(
            "title".into(),
            FieldChange {
                value: json!(title),
                stamp,
            },
        );
        m
    };
    // Written a millisecond apart; the earlier one happens to carry the higher counter.
    let first = put_at(1, "Pump", at(ahead, 5), None);
    let second = put_at(2, "Pump 4", at(ahead + 1, 0), Some(1));
    let plan = plan_push(vec![first, second], Loaded::default(), NOW);
    let (_, record) = &plan.writes[0];
    assert_eq!(
        record.fields["title"].value,
        json!("Pump 4"),
        "the later edit"
    );
    assert!(
        record.fields["title"].stamp.physical_ms <= NOW + MAX_STAMP_SKEW_MS,
        "still clamped"
    );
}
