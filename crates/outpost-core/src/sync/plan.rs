//! What applying one server record of a note does to this device, decided without SQLite:
//! [`plan_note`] takes what the device holds (the note, its outbox entries, whether it is in
//! conflict) and the record, and returns a [`NotePlan`]; `apply.rs` runs it.
//!
//! Rules (DESIGN.md "Conflicts"): small fields merge last-writer-wins by stamp; the body merges
//! three-way against the base copy; a clean merge becomes a local change, overlapping edits
//! open a conflict keeping both texts; an edit wins over a delete, also over a delete for good.
//! Reconciling with a server that may have lost commits, what is newer here is kept and sent
//! again.

use super::apply::{Local, takes_theirs};
use super::merge::{Merge, merge3};
use crate::error::Result;
use crate::model::OutboxEntry;
use outpost_protocol::api::{Outcome, Record};
use outpost_protocol::fields;
use outpost_protocol::mutation::names;
use outpost_protocol::{ClientId, Entity, FieldChange, Fields, Stamp};
use serde_json::Value;
use std::collections::BTreeSet;

/// One outbox entry of the note, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PendingEntry {
    pub(crate) seq: i64,
    pub(crate) name: String,
    pub(crate) fields: Fields,
    pub(crate) sent: bool,
}

/// What [`plan_note`] decides from.
pub(super) struct NoteInput<'a> {
    pub(super) rec: &'a Record,
    /// This device: a body stamped by it is its own last push coming back.
    pub(super) me: ClientId,
    /// Reconciling with a server that may have lost commits (after a restore).
    pub(super) reconcile: bool,
    pub(super) pending: &'a [PendingEntry],
    pub(super) local: Option<&'a Local>,
    /// A conflict row is open for the note (the user is choosing).
    pub(super) in_conflict: bool,
    /// An earlier record of the same batch opened a conflict for the note.
    pub(super) conflict_noted: bool,
}

/// What the planner asks of the device while it decides: fresh stamps (for a merge, for an edit
/// that brings a note back from the Trash) and the body the last merge was made against.
pub(super) trait NoteContext {
    fn fresh_stamp(&mut self) -> Stamp;
    fn base_body(&mut self, id: &str) -> Result<String>;
}

/// A change to the note's unsent outbox entries; each builds on the record's version.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum EntryChange {
    /// Rewrite unsent entry `seq` with these fields; none left: remove it.
    Rewrite { seq: i64, fields: Fields },
    /// Queue a new put with these fields.
    Enqueue { fields: Fields },
}

/// A conflict to open: the three texts of the merge view.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ConflictRow {
    pub(super) base: String,
    pub(super) mine: String,
    pub(super) theirs: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum NotePlan {
    /// Deleted for good here and still queued to go: the record changes nothing.
    Skip,
    /// New to this device: write the server's record (and note it came back if this device had
    /// deleted it for good).
    Insert,
    /// Deleted for good on the server: remove the note and its conflict (`had_local`), forget
    /// its base.
    Remove { had_local: bool },
    /// Deleted for good elsewhere, edited here: the edit wins. The whole note goes up again on
    /// the tombstone's version, and the server revives it.
    Revive { fields: Fields, entry: EntryChange },
    /// Both sides hold the note: merge.
    Merge(MergePlan),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct MergePlan {
    /// The note as it will be here.
    pub(super) fields: Fields,
    /// The server version it will be recorded at.
    pub(super) version: Option<i64>,
    /// Something the user sees changed (the note's `updated_ms` moves).
    pub(super) changed: bool,
    /// The row needs writing (also for a stamp or version only).
    pub(super) write_row: bool,
    /// An open conflict's "theirs" replaced by the record's newer body.
    pub(super) refresh_conflict: Option<String>,
    pub(super) conflict: Option<ConflictRow>,
    /// The body merged cleanly with an edit here.
    pub(super) merged: bool,
    /// An edit here brought the note back from the Trash another device moved it to.
    pub(super) restored: bool,
    pub(super) entries: Vec<EntryChange>,
    /// Reconciling: what is newer here than on the server (it lost it), to send again.
    pub(super) resend: Fields,
}

/// A notebook as applying one server record leaves it here: each field by last-writer-wins
/// (the server's value as it is where nothing is edited here), and, reconciling, what the server
/// lost and is sent again.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct NotebookPlan {
    pub(super) name: FieldChange,
    pub(super) deleted: FieldChange,
    pub(super) resend: Fields,
}

pub(super) fn plan_notebook(
    rec: &Record,
    local: Option<&Local>,
    pending_fields: &BTreeSet<String>,
    reconcile: bool,
) -> NotebookPlan {
    let stale = local
        .and_then(|l| l.server_version)
        .is_some_and(|v| rec.version.0 < v);
    let field = |name: &str, normal: fn(&Value) -> Value| {
        let mine = local
            .and_then(|l| l.fields.get(name))
            .cloned()
            .unwrap_or(FieldChange {
                value: normal(&Value::Null),
                stamp: Stamp::ZERO,
            });
        match rec.fields.get(name) {
            Some(theirs)
                if takes_theirs(
                    theirs.stamp,
                    mine.stamp,
                    reconcile || stale || pending_fields.contains(name),
                ) =>
            {
                FieldChange {
                    value: normal(&theirs.value),
                    stamp: theirs.stamp,
                }
            }
            _ => mine,
        }
    };
    let name = field("name", |v| {
        Value::String(v.as_str().unwrap_or_default().to_owned())
    });
    let mut deleted = field("deleted", |v| Value::Bool(v.as_bool().unwrap_or(false)));
    if rec.purged {
        deleted.value = Value::Bool(true);
    }
    let mut resend = Fields::new();
    if reconcile && !rec.purged {
        for (key, mine) in [("name", &name), ("deleted", &deleted)] {
            let theirs = rec.fields.get(key).map_or(Stamp::ZERO, |c| c.stamp);
            if !pending_fields.contains(key) && mine.stamp > theirs {
                resend.insert(key.to_owned(), mine.clone());
            }
        }
    }
    NotebookPlan {
        name,
        deleted,
        resend,
    }
}

/// A record whose fields all merge last-writer-wins (an attachment) as applying one server
/// record leaves it here: each field the newer of the two, the server's value where nothing is
/// edited here; and, reconciling, what the server lost, to send again.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LwwPlan {
    pub(super) fields: Fields,
    pub(super) resend: Fields,
}

/// Decides [`LwwPlan`] for a record of `entity` from the server's `rec` and the device's
/// `local` fields (with the server version they are of).
pub(super) fn plan_lww(
    entity: Entity,
    rec: &Record,
    local: Option<(&Fields, Option<i64>)>,
    pending_fields: &BTreeSet<String>,
    reconcile: bool,
) -> LwwPlan {
    let stale = local
        .and_then(|(_, v)| v)
        .is_some_and(|v| rec.version.0 < v);
    let mut fields = Fields::new();
    let mut resend = Fields::new();
    for spec in fields::of(entity) {
        let mine = local.and_then(|(f, _)| f.get(spec.name)).cloned();
        let theirs = rec.fields.get(spec.name);
        let contested = reconcile || stale || pending_fields.contains(spec.name);
        let chosen = match (mine, theirs) {
            (Some(mine), Some(theirs)) if takes_theirs(theirs.stamp, mine.stamp, contested) => {
                theirs.clone()
            }
            (Some(mine), _) => mine,
            (None, Some(theirs)) => theirs.clone(),
            (None, None) => continue,
        };
        if reconcile && !rec.purged && !pending_fields.contains(spec.name) {
            let theirs_stamp = theirs.map_or(Stamp::ZERO, |c| c.stamp);
            if chosen.stamp > theirs_stamp {
                resend.insert(spec.name.to_owned(), chosen.clone());
            }
        }
        fields.insert(spec.name.to_owned(), chosen);
    }
    LwwPlan { fields, resend }
}

/// The reply that counts for a pushed mutation: for a duplicate, the reply of its first send,
/// which this device never got (a conflict to merge or a refusal to show: taking it as a plain
/// acknowledgement would drop that edit without a word). `None`: a duplicate whose first reply
/// the server no longer keeps; it was handled, and the next pull brings the record.
pub(super) fn first_reply(outcome: &Outcome) -> Option<&Outcome> {
    match outcome {
        Outcome::Duplicate { first } => first.as_deref(),
        other => Some(other),
    }
}

/// What of an edit that met a conflict is queued again (the merge with `current` rebases it):
/// - nothing of an edit of a note deleted for good on the server that this device no longer
///   holds either: the user deleted it here too, and sending it again would meet the same
///   tombstone for ever (found by the simulation, seed 5016);
/// - of a note edit, only the fields not edited here since: a later edit (a newer stamp) is
///   already queued or applied, and sending the older text after it would undo it (seed 1039:
///   an edit and its undo went up together, the edit conflicted, was queued behind the undo,
///   and won).
pub(super) fn requeue_after_conflict(
    entry: &OutboxEntry,
    current: &Record,
    local: Option<&Local>,
) -> Fields {
    let note_put = entry.entity == Entity::Note && entry.name == names::NOTE_PUT;
    if current.purged && entry.entity == Entity::Note && local.is_none() {
        tracing::info!(note = %entry.entity_id, "an edit of a note deleted for good here and on the server: dropped");
        return Fields::new();
    }
    match local {
        Some(local) if note_put => entry
            .fields
            .iter()
            .filter(|(name, change)| {
                local
                    .fields
                    .get(*name)
                    .is_none_or(|l| l.stamp <= change.stamp)
            })
            .map(|(name, change)| (name.clone(), change.clone()))
            .collect(),
        _ => entry.fields.clone(),
    }
}

/// Decides what applying `input.rec` does (see the module docs).
pub(super) fn plan_note(input: &NoteInput<'_>, cx: &mut dyn NoteContext) -> Result<NotePlan> {
    let pending = input.pending;
    let pending_put = pending.iter().any(|e| e.name == names::NOTE_PUT);
    let pending_purge = pending.iter().any(|e| e.name == names::NOTE_PURGE);
    if input.rec.purged {
        return Ok(match input.local {
            Some(local) if pending_put => revive(local, pending),
            local => NotePlan::Remove {
                had_local: local.is_some(),
            },
        });
    }
    match input.local {
        None if pending_purge => Ok(NotePlan::Skip),
        None => Ok(NotePlan::Insert),
        Some(local) => merge(input, local, cx).map(NotePlan::Merge),
    }
}

fn newest_unsent_put(pending: &[PendingEntry]) -> Option<&PendingEntry> {
    pending
        .iter()
        .rev()
        .find(|e| e.name == names::NOTE_PUT && !e.sent)
}

fn is_true(fields: &Fields, name: &str) -> bool {
    fields
        .get(name)
        .is_some_and(|d| d.value == Value::Bool(true))
}

fn revive(local: &Local, pending: &[PendingEntry]) -> NotePlan {
    let mut all = local.fields.clone();
    if let Some(d) = all.get_mut("deleted") {
        d.value = Value::Bool(false);
    }
    let entry = match newest_unsent_put(pending) {
        Some(e) => EntryChange::Rewrite {
            seq: e.seq,
            fields: all.clone(),
        },
        None => EntryChange::Enqueue {
            fields: all.clone(),
        },
    };
    NotePlan::Revive { fields: all, entry }
}

fn merge(input: &NoteInput<'_>, local: &Local, cx: &mut dyn NoteContext) -> Result<MergePlan> {
    let rec = input.rec;
    let pending_fields: BTreeSet<&str> = input
        .pending
        .iter()
        .flat_map(|e| e.fields.keys().map(String::as_str))
        .collect();
    let stale = local.server_version.is_some_and(|v| rec.version.0 < v);
    let mut plan = MergePlan {
        fields: local.fields.clone(),
        // Reconciling, the server's version is the truth even below the one this device knew.
        version: Some(if input.reconcile {
            rec.version.0
        } else {
            rec.version.0.max(local.server_version.unwrap_or(0))
        }),
        changed: false,
        write_row: false,
        refresh_conflict: None,
        conflict: None,
        merged: false,
        restored: false,
        entries: Vec::new(),
        resend: Fields::new(),
    };
    // Reconciling with a server that may have lost commits, every field is compared by its
    // stamp: a newer one here is something the server lost, and is kept and sent again.
    // The body merges three-way, below.
    let small = fields::NOTE
        .iter()
        .filter(|f| f.merge == fields::Merge::LastWriterWins);
    for name in small.map(|f| f.name) {
        if let Some(theirs) = rec.fields.get(name) {
            let mine = plan.fields.get(name);
            let mine_stamp = mine.map_or(Stamp::ZERO, |c| c.stamp);
            let contested = input.reconcile || stale || pending_fields.contains(name);
            if takes_theirs(theirs.stamp, mine_stamp, contested) {
                plan.changed |= mine.map(|c| &c.value) != Some(&theirs.value);
                plan.fields.insert(name.to_owned(), theirs.clone());
            }
        }
    }
    merge_body(input, &pending_fields, stale, &mut plan, cx)?;

    // Edit against delete: deleted elsewhere while edited here, the edit wins.
    let content_edit = ["title", "body", "tags", "notebook_id"]
        .iter()
        .any(|f| pending_fields.contains(f));
    if is_true(&plan.fields, "deleted")
        && !is_true(&local.fields, "deleted")
        && content_edit
        && !pending_fields.contains("deleted")
    {
        let stamp = cx.fresh_stamp();
        plan.fields.insert(
            "deleted".into(),
            FieldChange {
                value: Value::Bool(false),
                stamp,
            },
        );
        plan.restored = true;
    }
    // Our own push coming back is the usual case: the row already holds exactly this, and
    // rewriting it would re-index the body for nothing.
    plan.write_row =
        plan.changed || plan.fields != local.fields || plan.version != local.server_version;
    if input.reconcile {
        let conflicted = input.conflict_noted || plan.conflict.is_some();
        plan.resend = plan
            .fields
            .iter()
            .filter(|(name, mine)| {
                // Queued already, or up to the user in the merge view: not sent from here.
                let handled =
                    pending_fields.contains(name.as_str()) || (conflicted && *name == "body");
                !handled && mine.stamp > rec.fields.get(*name).map_or(Stamp::ZERO, |t| t.stamp)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    Ok(plan)
}

/// The body's part of [`merge`].
fn merge_body(
    input: &NoteInput<'_>,
    pending_fields: &BTreeSet<&str>,
    stale: bool,
    plan: &mut MergePlan,
    cx: &mut dyn NoteContext,
) -> Result<()> {
    let rec = input.rec;
    let Some(theirs) = rec.fields.get("body") else {
        return Ok(());
    };
    if input.in_conflict {
        // The user is choosing between mine and theirs: keep mine on screen, and let a newer
        // "theirs" replace the old one in the merge view.
        plan.refresh_conflict = theirs.value.as_str().map(str::to_owned);
        return Ok(());
    }
    let mine = plan
        .fields
        .get("body")
        .and_then(|c| c.value.as_str())
        .unwrap_or_default()
        .to_owned();
    let theirs_text = theirs.value.as_str().unwrap_or_default();
    // The server's body is our own last push: nothing foreign to merge (unless the server lost
    // what came after it).
    let ours = theirs.stamp.node == input.me && !input.reconcile;
    let mine_stamp = plan.fields.get("body").map_or(Stamp::ZERO, |c| c.stamp);
    // A record the server holds at a lower version than this device knew was rewound.
    let rewound = input.reconcile && stale;
    let conflict = |cx: &mut dyn NoteContext| -> Result<ConflictRow> {
        Ok(ConflictRow {
            base: cx.base_body(&rec.id)?,
            mine: mine.clone(),
            theirs: theirs_text.to_owned(),
        })
    };
    if mine == theirs_text || ours {
        if mine == theirs_text && !pending_fields.contains("body") {
            // The same text: hold the server's stamp for it, which may be this device's own
            // clamped (a clock too far ahead), so that device and server keep the same record.
            plan.fields.insert("body".into(), theirs.clone());
        }
    } else if pending_fields.contains("body") {
        merge_edited_body(input, conflict(cx)?, theirs, plan, cx);
    } else if input.reconcile && mine_stamp > theirs.stamp {
        // Text the server lost: it stays, and is sent again.
    } else if rewound {
        // The server went back to an older history of this note and someone wrote on it
        // since: neither text may be dropped, so the user picks.
        plan.conflict = Some(conflict(cx)?);
    } else {
        plan.fields.insert("body".into(), theirs.clone());
        plan.changed = true;
    }
    Ok(())
}

/// Their body against this device's queued edit of it (`row`: the three texts).
fn merge_edited_body(
    input: &NoteInput<'_>,
    row: ConflictRow,
    theirs: &FieldChange,
    plan: &mut MergePlan,
    cx: &mut dyn NoteContext,
) {
    let (change, new_text) = match merge3(&row.base, &row.mine, &row.theirs) {
        // Their text already holds this device's edit (it came back merged by another device,
        // or both made the same change): take it as it is, stamp included, so that device and
        // server keep the same record.
        Merge::Clean(merged) if merged == row.theirs => (theirs.clone(), false),
        Merge::Clean(merged) => {
            let change = FieldChange {
                value: Value::String(merged),
                stamp: cx.fresh_stamp(),
            };
            (change, true)
        }
        Merge::Conflict => {
            plan.conflict = Some(row);
            // Mine stays on screen and in the conflict row; it is sent once the user resolves,
            // so drop it from the queue now.
            for e in input.pending {
                if e.name == names::NOTE_PUT && !e.sent && e.fields.contains_key("body") {
                    let mut rest = e.fields.clone();
                    rest.remove("body");
                    plan.entries.push(EntryChange::Rewrite {
                        seq: e.seq,
                        fields: rest,
                    });
                }
            }
            return;
        }
    };
    plan.merged = true;
    plan.fields.insert("body".into(), change.clone());
    plan.changed = true;
    match newest_unsent_put(input.pending) {
        // A queued edit sends the merge instead of the text it was made from.
        Some(e) => {
            let mut fields = e.fields.clone();
            fields.insert("body".into(), change);
            plan.entries
                .push(EntryChange::Rewrite { seq: e.seq, fields });
        }
        // The edit is in flight (sent, its reply not in yet) and cannot be rewritten (L3): the
        // merge goes up as an edit of its own, or it would stay on this device only.
        None if new_text => plan.entries.push(EntryChange::Enqueue {
            fields: Fields::from([("body".to_owned(), change)]),
        }),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::Entity;
    use outpost_protocol::api::{Cursor, Version};

    const ME: u128 = 1;
    const THEM: u128 = 2;
    const BASE: &str = "Pump 4\ninlet 2.1 bar\nseal worn\n";
    const EDITED_HERE: &str = "Pump 4\ninlet 2.1 bar\nseal worn\nchecked by Ann\n";
    const EDITED_THERE: &str = "Pump 4 (north)\ninlet 2.1 bar\nseal worn\n";
    const BOTH: &str = "Pump 4 (north)\ninlet 2.1 bar\nseal worn\nchecked by Ann\n";

    fn node(n: u128) -> ClientId {
        ClientId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn at(ms: u64, who: u128) -> Stamp {
        Stamp {
            physical_ms: ms,
            counter: 0,
            node: node(who),
        }
    }

    fn fields(pairs: &[(&str, Value, Stamp)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v, stamp)| {
                (
                    (*k).to_owned(),
                    FieldChange {
                        value: v.clone(),
                        stamp: *stamp,
                    },
                )
            })
            .collect()
    }

    /// A note as both sides last agreed on it, at version 3, every field stamped at 100 by me.
    fn note(body: &str) -> Fields {
        let s = at(100, ME);
        fields(&[
            ("notebook_id", Value::Null, s),
            ("title", "Pump 4".into(), s),
            ("body", body.into(), s),
            ("tags", serde_json::json!([]), s),
            ("pinned", false.into(), s),
            ("archived", false.into(), s),
            ("deleted", false.into(), s),
        ])
    }

    fn with(mut base: Fields, name: &str, value: Value, stamp: Stamp) -> Fields {
        base.insert(name.to_owned(), FieldChange { value, stamp });
        base
    }

    fn record(version: i64, fields: Fields) -> Record {
        Record {
            entity: Entity::Note,
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            version: Version(version),
            cursor: Cursor(version),
            purged: false,
            fields,
        }
    }

    fn tombstone() -> Record {
        Record {
            purged: true,
            fields: Fields::new(),
            ..record(4, Fields::new())
        }
    }

    fn entry(seq: i64, name: &str, sent: bool, fields: Fields) -> PendingEntry {
        PendingEntry {
            seq,
            name: name.into(),
            fields,
            sent,
        }
    }

    fn put(seq: i64, sent: bool, fields: Fields) -> PendingEntry {
        entry(seq, names::NOTE_PUT, sent, fields)
    }

    /// Fresh stamps at 1000, 1001, ... by me; the base body is [`BASE`].
    struct Cx(u64);
    impl NoteContext for Cx {
        fn fresh_stamp(&mut self) -> Stamp {
            self.0 += 1;
            at(999 + self.0, ME)
        }
        fn base_body(&mut self, _id: &str) -> Result<String> {
            Ok(BASE.to_owned())
        }
    }

    struct Case {
        what: &'static str,
        rec: Record,
        local: Option<Fields>,
        pending: Vec<PendingEntry>,
        reconcile: bool,
        in_conflict: bool,
        check: fn(&NotePlan),
    }

    fn case(what: &'static str, rec: Record, local: Option<Fields>, check: fn(&NotePlan)) -> Case {
        Case {
            what,
            rec,
            local,
            pending: Vec::new(),
            reconcile: false,
            in_conflict: false,
            check,
        }
    }

    fn merged(plan: &NotePlan) -> &MergePlan {
        match plan {
            NotePlan::Merge(m) => m,
            other => panic!("not a merge: {other:?}"),
        }
    }

    fn text(plan: &MergePlan, name: &str) -> Value {
        plan.fields[name].value.clone()
    }

    fn cases() -> Vec<Case> {
        vec![
            case(
                "a note new to this device is written as the server has it",
                record(1, note(BASE)),
                None,
                |p| assert_eq!(*p, NotePlan::Insert),
            ),
            Case {
                pending: vec![entry(7, names::NOTE_PURGE, false, Fields::new())],
                ..case(
                    "a note deleted for good here, still queued, is not brought back by an older record",
                    record(3, note(BASE)),
                    None,
                    |p| assert_eq!(*p, NotePlan::Skip),
                )
            },
            case(
                "deleted for good elsewhere, not edited here: removed",
                tombstone(),
                Some(note(BASE)),
                |p| assert_eq!(*p, NotePlan::Remove { had_local: true }),
            ),
            Case {
                pending: vec![put(
                    7,
                    false,
                    with(Fields::new(), "title", "Pump 4b".into(), at(200, ME)),
                )],
                ..case(
                    "deleted for good elsewhere, edited here: the edit wins, the whole note goes up in the queued entry",
                    tombstone(),
                    Some(with(note(BASE), "title", "Pump 4b".into(), at(200, ME))),
                    |p| {
                        let NotePlan::Revive { fields, entry } = p else {
                            panic!("{p:?}")
                        };
                        assert_eq!(fields["deleted"].value, Value::Bool(false));
                        assert_eq!(fields["title"].value, Value::from("Pump 4b"));
                        assert_eq!(
                            *entry,
                            EntryChange::Rewrite {
                                seq: 7,
                                fields: fields.clone()
                            }
                        );
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    true,
                    with(Fields::new(), "title", "Pump 4b".into(), at(200, ME)),
                )],
                ..case(
                    "deleted for good elsewhere while the edit is in flight: the whole note is queued anew (L3)",
                    tombstone(),
                    Some(note(BASE)),
                    |p| {
                        let NotePlan::Revive { fields, entry } = p else {
                            panic!("{p:?}")
                        };
                        assert_eq!(
                            *entry,
                            EntryChange::Enqueue {
                                fields: fields.clone()
                            }
                        );
                    },
                )
            },
            case(
                "seed 1: its own body coming back clamped takes the server's stamp, nothing on screen changes",
                record(4, with(note(BASE), "body", BASE.into(), at(90, ME))),
                Some(with(note(BASE), "body", BASE.into(), at(5_000, ME))),
                |p| {
                    let m = merged(p);
                    assert_eq!(m.fields["body"].stamp, at(90, ME));
                    assert!(!m.changed && m.write_row);
                },
            ),
            case(
                "a field without a local edit takes the server's value, even under a lower stamp",
                record(
                    4,
                    with(note(BASE), "title", "Pump 4 (north)".into(), at(50, THEM)),
                ),
                Some(note(BASE)),
                |p| {
                    let m = merged(p);
                    assert_eq!(text(m, "title"), Value::from("Pump 4 (north)"));
                    assert!(m.changed);
                },
            ),
            Case {
                pending: vec![put(
                    7,
                    false,
                    with(Fields::new(), "title", "Pump 4 (mine)".into(), at(300, ME)),
                )],
                ..case(
                    "a field with a local edit keeps the newer stamp",
                    record(
                        4,
                        with(note(BASE), "title", "Pump 4 (theirs)".into(), at(200, THEM)),
                    ),
                    Some(with(
                        note(BASE),
                        "title",
                        "Pump 4 (mine)".into(),
                        at(300, ME),
                    )),
                    |p| {
                        assert_eq!(text(merged(p), "title"), Value::from("Pump 4 (mine)"));
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    false,
                    with(Fields::new(), "body", EDITED_HERE.into(), at(300, ME)),
                )],
                ..case(
                    "edits of different lines merge; the queued entry sends the merge, freshly stamped",
                    record(
                        4,
                        with(note(BASE), "body", EDITED_THERE.into(), at(200, THEM)),
                    ),
                    Some(with(note(BASE), "body", EDITED_HERE.into(), at(300, ME))),
                    |p| {
                        let m = merged(p);
                        assert_eq!(text(m, "body"), Value::from(BOTH));
                        assert_eq!(m.fields["body"].stamp, at(1000, ME));
                        assert!(m.merged && m.changed && m.conflict.is_none());
                        assert_eq!(
                            m.entries,
                            vec![EntryChange::Rewrite {
                                seq: 7,
                                fields: fields(&[("body", BOTH.into(), at(1000, ME))])
                            }]
                        );
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    true,
                    with(Fields::new(), "body", EDITED_HERE.into(), at(300, ME)),
                )],
                ..case(
                    "a merge made while the edit is in flight is queued as an edit of its own (L3)",
                    record(
                        4,
                        with(note(BASE), "body", EDITED_THERE.into(), at(200, THEM)),
                    ),
                    Some(with(note(BASE), "body", EDITED_HERE.into(), at(300, ME))),
                    |p| {
                        let m = merged(p);
                        assert!(
                            matches!(&m.entries[..], [EntryChange::Enqueue { fields }] if fields.contains_key("body"))
                        );
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    false,
                    with(Fields::new(), "body", EDITED_HERE.into(), at(300, ME)),
                )],
                ..case(
                    "a merge that comes back as their text (another device merged it) keeps their stamp",
                    record(4, with(note(BASE), "body", BOTH.into(), at(250, THEM))),
                    Some(with(note(BASE), "body", EDITED_HERE.into(), at(300, ME))),
                    |p| {
                        let m = merged(p);
                        assert_eq!(
                            m.fields["body"],
                            FieldChange {
                                value: BOTH.into(),
                                stamp: at(250, THEM)
                            }
                        );
                        assert!(m.merged);
                        assert_eq!(
                            m.entries,
                            vec![EntryChange::Rewrite {
                                seq: 7,
                                fields: fields(&[("body", BOTH.into(), at(250, THEM))])
                            }]
                        );
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    false,
                    with(Fields::new(), "body", EDITED_HERE.into(), at(300, ME)),
                )],
                ..case(
                    "the same text here and there with the edit still queued: nothing to merge",
                    record(
                        4,
                        with(note(BASE), "body", EDITED_HERE.into(), at(250, THEM)),
                    ),
                    Some(with(note(BASE), "body", EDITED_HERE.into(), at(300, ME))),
                    |p| {
                        let m = merged(p);
                        assert_eq!(m.fields["body"].stamp, at(300, ME));
                        assert!(m.entries.is_empty() && !m.changed);
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    false,
                    fields(&[
                        (
                            "body",
                            "Pump 4\ninlet 2.4 bar\nseal worn\n".into(),
                            at(300, ME),
                        ),
                        ("title", "Pump 4".into(), at(300, ME)),
                    ]),
                )],
                ..case(
                    "overlapping edits open a conflict with the three texts; the queued body waits for the user",
                    record(
                        4,
                        with(
                            note(BASE),
                            "body",
                            "Pump 4\ninlet 1.9 bar\nseal worn\n".into(),
                            at(200, THEM),
                        ),
                    ),
                    Some(with(
                        note(BASE),
                        "body",
                        "Pump 4\ninlet 2.4 bar\nseal worn\n".into(),
                        at(300, ME),
                    )),
                    |p| {
                        let m = merged(p);
                        assert_eq!(
                            m.conflict,
                            Some(ConflictRow {
                                base: BASE.into(),
                                mine: "Pump 4\ninlet 2.4 bar\nseal worn\n".into(),
                                theirs: "Pump 4\ninlet 1.9 bar\nseal worn\n".into()
                            })
                        );
                        assert_eq!(
                            text(m, "body"),
                            Value::from("Pump 4\ninlet 2.4 bar\nseal worn\n"),
                            "mine stays on screen"
                        );
                        assert_eq!(
                            m.entries,
                            vec![EntryChange::Rewrite {
                                seq: 7,
                                fields: fields(&[("title", "Pump 4".into(), at(300, ME))])
                            }]
                        );
                    },
                )
            },
            Case {
                in_conflict: true,
                ..case(
                    "in conflict, a newer body from the server replaces theirs in the merge view, mine stays",
                    record(
                        5,
                        with(note(BASE), "body", "theirs, again".into(), at(400, THEM)),
                    ),
                    Some(with(note(BASE), "body", "mine".into(), at(300, ME))),
                    |p| {
                        let m = merged(p);
                        assert_eq!(m.refresh_conflict.as_deref(), Some("theirs, again"));
                        assert_eq!(text(m, "body"), Value::from("mine"));
                    },
                )
            },
            Case {
                pending: vec![put(
                    7,
                    false,
                    with(Fields::new(), "title", "Pump 4b".into(), at(300, ME)),
                )],
                ..case(
                    "edit against delete: moved to the Trash elsewhere, edited here, the edit brings it back",
                    record(4, with(note(BASE), "deleted", true.into(), at(200, THEM))),
                    Some(with(note(BASE), "title", "Pump 4b".into(), at(300, ME))),
                    |p| {
                        let m = merged(p);
                        assert!(m.restored);
                        assert_eq!(
                            m.fields["deleted"],
                            FieldChange {
                                value: false.into(),
                                stamp: at(1000, ME)
                            }
                        );
                    },
                )
            },
            Case {
                reconcile: true,
                ..case(
                    "reconciling: what the server lost stays here and is sent again; what it has is taken",
                    record(2, with(note(BASE), "title", "Pump 4".into(), at(100, ME))),
                    Some(with(
                        with(note(BASE), "title", "Pump 4 (lost)".into(), at(300, ME)),
                        "body",
                        EDITED_HERE.into(),
                        at(300, ME),
                    )),
                    |p| {
                        let m = merged(p);
                        assert_eq!(text(m, "title"), Value::from("Pump 4 (lost)"));
                        assert_eq!(text(m, "body"), Value::from(EDITED_HERE));
                        assert_eq!(m.resend.keys().collect::<Vec<_>>(), ["body", "title"]);
                        assert_eq!(m.version, Some(2), "the server's version is the truth");
                    },
                )
            },
        ]
    }

    #[test]
    fn each_case_of_a_note_record_meeting_this_device() {
        for c in cases() {
            let local = c.local.map(|fields| Local {
                fields,
                server_version: Some(3),
            });
            let input = NoteInput {
                rec: &c.rec,
                me: node(ME),
                reconcile: c.reconcile,
                pending: &c.pending,
                local: local.as_ref(),
                in_conflict: c.in_conflict,
                conflict_noted: false,
            };
            let plan = plan_note(&input, &mut Cx(0)).expect("plan");
            eprintln!("case: {}", c.what);
            (c.check)(&plan);
        }
    }

    #[test]
    fn a_rewound_record_with_another_body_opens_a_conflict_rather_than_drop_a_text() {
        // The server went back to version 2 of a note this device knew at 3, and someone wrote
        // on it since: neither text may be dropped.
        let rec = record(
            2,
            with(
                note(BASE),
                "body",
                "written since the restore".into(),
                at(400, THEM),
            ),
        );
        let local = Local {
            fields: with(
                note(BASE),
                "body",
                "what this device had".into(),
                at(90, THEM),
            ),
            server_version: Some(3),
        };
        let input = NoteInput {
            rec: &rec,
            me: node(ME),
            reconcile: true,
            pending: &[],
            local: Some(&local),
            in_conflict: false,
            conflict_noted: false,
        };
        let plan = plan_note(&input, &mut Cx(0)).expect("plan");
        let m = merged(&plan);
        let conflict = m.conflict.as_ref().expect("a conflict");
        assert_eq!(conflict.mine, "what this device had");
        assert_eq!(conflict.theirs, "written since the restore");
        assert!(
            !m.resend.contains_key("body"),
            "the user decides; nothing is sent from here"
        );
    }

    fn notebook(name: &str, stamp: Stamp) -> Fields {
        fields(&[
            ("name", name.into(), stamp),
            ("deleted", false.into(), at(100, ME)),
        ])
    }

    #[test]
    fn each_case_of_a_notebook_record_meeting_this_device() {
        let rec = |version: i64, f: Fields| Record {
            entity: Entity::Notebook,
            ..record(version, f)
        };
        let local = |f: Fields| Local {
            fields: f,
            server_version: Some(3),
        };
        let none = BTreeSet::new();
        let name_queued = BTreeSet::from(["name".to_owned()]);

        // New here: the server's, a name that is not text read as empty.
        let p = plan_notebook(
            &rec(1, notebook("Sites", at(200, THEM))),
            None,
            &none,
            false,
        );
        assert_eq!(p.name.value, Value::from("Sites"));
        let odd = with(
            notebook("", at(200, THEM)),
            "name",
            Value::from(5),
            at(200, THEM),
        );
        let p = plan_notebook(&rec(1, odd), None, &none, false);
        assert_eq!(p.name.value, Value::from(""));

        // No edit here: the server's name even under a lower stamp (it clamped a fast clock).
        let mine = local(notebook("Sites", at(900, ME)));
        let p = plan_notebook(
            &rec(4, notebook("Sites (north)", at(200, THEM))),
            Some(&mine),
            &none,
            false,
        );
        assert_eq!(p.name.value, Value::from("Sites (north)"));

        // A rename queued here with a newer stamp stays.
        let p = plan_notebook(
            &rec(4, notebook("Sites (north)", at(200, THEM))),
            Some(&mine),
            &name_queued,
            false,
        );
        assert_eq!(p.name.value, Value::from("Sites"));
        assert!(p.resend.is_empty(), "queued already");

        // Deleted for good: deleted here too.
        let tomb = Record {
            purged: true,
            fields: Fields::new(),
            ..rec(5, Fields::new())
        };
        assert_eq!(
            plan_notebook(&tomb, Some(&mine), &none, true).deleted.value,
            Value::Bool(true)
        );

        // Reconciling with a server that lost the rename: kept and sent again.
        let p = plan_notebook(
            &rec(2, notebook("Sites", at(100, ME))),
            Some(&local(notebook("Sites (lost)", at(300, ME)))),
            &none,
            true,
        );
        assert_eq!(p.name.value, Value::from("Sites (lost)"));
        assert_eq!(p.resend.keys().collect::<Vec<_>>(), ["name"]);
    }

    fn sent_entry(name: &str, f: Fields) -> OutboxEntry {
        OutboxEntry {
            seq: 7,
            mutation_id: outpost_protocol::MutationId::new(),
            mutation_number: 7,
            name: name.into(),
            schema_version: 1,
            entity: Entity::Note,
            entity_id: record(1, Fields::new()).id,
            fields: f,
            base_version: Some(3),
            created_ms: 0,
            updated_ms: 0,
            attempts: 1,
            last_error: None,
            state: "queued".into(),
            sent: true,
        }
    }

    #[test]
    fn the_reply_that_counts_and_what_a_conflict_sends_again() {
        use outpost_protocol::api::Version;
        let conflict = Outcome::Conflict {
            current: record(4, note(BASE)),
        };
        let applied = Outcome::Applied {
            version: Version(4),
            cursor: Cursor(4),
            clamped_skew_ms: None,
        };
        assert_eq!(first_reply(&applied), Some(&applied));
        // A duplicate whose first reply was a conflict is merged, not dropped.
        let dup = Outcome::Duplicate {
            first: Some(Box::new(conflict.clone())),
        };
        assert_eq!(first_reply(&dup), Some(&conflict));
        assert_eq!(first_reply(&Outcome::Duplicate { first: None }), None);

        let edit = sent_entry(
            names::NOTE_PUT,
            fields(&[
                ("title", "Pump 4 (edit)".into(), at(200, ME)),
                ("body", EDITED_HERE.into(), at(200, ME)),
            ]),
        );
        let current = record(4, note(BASE));
        // Nothing edited since: all of it goes again.
        let here = Local {
            fields: with(note(BASE), "title", "Pump 4 (edit)".into(), at(200, ME)),
            server_version: Some(3),
        };
        assert_eq!(
            requeue_after_conflict(&edit, &current, Some(&here)),
            edit.fields
        );
        // Seed 1039: the body was edited again (undone) since; only the title goes again.
        let undone = Local {
            fields: with(here.fields.clone(), "body", BASE.into(), at(300, ME)),
            server_version: Some(3),
        };
        assert_eq!(
            requeue_after_conflict(&edit, &current, Some(&undone))
                .keys()
                .collect::<Vec<_>>(),
            ["title"]
        );
        // Seed 5016: deleted for good on the server and here: nothing goes again.
        let tomb = Record {
            purged: true,
            fields: Fields::new(),
            ..record(5, Fields::new())
        };
        assert!(requeue_after_conflict(&edit, &tomb, None).is_empty());
        // Deleted for good on the server, still here: the edit goes again (and revives it).
        assert_eq!(
            requeue_after_conflict(&edit, &tomb, Some(&here)),
            edit.fields
        );
    }
}
