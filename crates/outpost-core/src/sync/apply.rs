//! The store's side of a sync cycle: applying the server's replies to a push and the records of
//! a pull page, each in one transaction (a page and its cursor commit together).
//!
//! Rules (DESIGN.md "Conflicts"): small fields merge last-writer-wins by stamp; the body merges
//! three-way against the base copy; a clean merge becomes a local change (pending entries are
//! rebased on the new version), overlapping edits open a conflict keeping both texts; an edit
//! wins over a delete. When this runs, pending entries of a note are never `sent` ones: the
//! cycle pushes (and gets every reply) before it pulls, so rewriting them keeps L3.

use super::plan::{
    EntryChange, MergePlan, NoteContext, NoteInput, NotePlan, PendingEntry, first_reply, plan_note,
    plan_notebook, requeue_after_conflict,
};
use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::meta;
use crate::model::OutboxEntry;
use crate::store::{Store, Tx};
use outpost_protocol::api::{Cursor, MutationResult, Outcome, Record};
use outpost_protocol::fields;
use outpost_protocol::mutation::names;
use outpost_protocol::{ClientId, Entity, FieldChange, Fields, MutationId, NoteId, Stamp};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::meta::{CURSOR, CURSOR_CHAIN};

/// A note's outbox entries, read for every record a pull applies.
pub(crate) const PENDING_SQL: &str =
    "SELECT seq, name, fields, sent FROM outbox WHERE entity_id = ?1 ORDER BY seq";

/// What applying a batch of server data did, for the status and the UI.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// Notes changed locally by server data.
    pub changed: Vec<NoteId>,
    /// Bodies merged cleanly with local edits (the merge is queued as a new change).
    pub merged: Vec<NoteId>,
    /// Notes now in conflict.
    pub conflicts: Vec<NoteId>,
    /// Notes deleted elsewhere that a local edit brought back.
    pub restored: Vec<NoteId>,
    /// Notes this device deleted for good that the server holds again (another device's edit
    /// won over the delete, or the server was restored from a backup older than it).
    pub returned: Vec<NoteId>,
    /// Mutations the server refused: now dead letters.
    pub rejected: usize,
    /// Mutations the server had handled before (`duplicate`): sent again because the reply to
    /// the first send never arrived (a cut connection, a crash).
    pub duplicates: Vec<MutationId>,
    /// The largest clock skew the server reported, in ms.
    pub skew_ms: Option<u64>,
}

/// What holds for a whole pull page, read once before it is applied: a device far behind (a
/// first sync, above all) has nothing waiting and nothing to confirm, and skips those lookups
/// for each of its records.
#[derive(Clone, Copy, Debug)]
pub(super) struct PageFacts {
    outbox_empty: bool,
    none_unconfirmed: bool,
    none_purged_here: bool,
}

impl PageFacts {
    /// Nothing known: every lookup is made.
    const UNKNOWN: PageFacts = PageFacts {
        outbox_empty: false,
        none_unconfirmed: false,
        none_purged_here: false,
    };
}

impl Tx<'_> {
    fn page_facts(&self) -> Result<PageFacts> {
        let empty = |table: &str| -> Result<bool> {
            self.tx
                .prepare_cached(&format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"))
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .at(self.path)
        };
        Ok(PageFacts {
            outbox_empty: empty("outbox")?,
            none_unconfirmed: empty("unconfirmed")?,
            none_purged_here: empty("purged_here")?,
        })
    }
}

/// A local note with the stamp of each field.
pub(super) struct Local {
    pub(super) fields: Fields,
    pub(super) server_version: Option<i64>,
}

pub(super) fn parse_stamp(s: &str) -> Stamp {
    // Rows written before a field was ever stamped carry a placeholder: the oldest stamp.
    s.parse().unwrap_or(Stamp::ZERO)
}

/// Whether the server's value of a field replaces this device's, by their stamps.
///
/// A field with no local edit waiting (`contested` false) takes the server's value and stamp as
/// they are: the server has already decided it (last writer wins), and its stamp can be lower
/// than the one this device sent, because the server pulls a stamp from a fast clock back
/// (clamping). Comparing stamps there would keep a value the server has replaced, and this device
/// would never converge. A field with a pending edit is compared, since that edit has not reached
/// the server yet; so is every field of a record older than the version this device has (the
/// first reply of a duplicate, replayed late).
pub(super) fn takes_theirs(theirs: Stamp, mine: Stamp, contested: bool) -> bool {
    if contested {
        theirs > mine
    } else {
        theirs != mine
    }
}

/// The value a note without field `name` counts as (see `outpost_protocol::fields`).
fn default_value(name: &str) -> Value {
    fields::spec(Entity::Note, name).map_or(Value::Null, fields::FieldSpec::default_value)
}

/// The columns [`note_fields`] reads, in its order.
pub(super) const NOTE_FIELD_COLUMNS: &str = "notebook_id, title, body, tags, pinned, archived, \
     deleted, notebook_stamp, title_stamp, body_stamp, tags_stamp, pinned_stamp, archived_stamp, \
     deleted_stamp";

/// A note's fields with their stamps, from a row that starts with [`NOTE_FIELD_COLUMNS`].
pub(super) fn note_fields(r: &rusqlite::Row<'_>) -> rusqlite::Result<Fields> {
    let values = [
        r.get::<_, Option<String>>(0)?
            .map_or(Value::Null, Value::String),
        Value::String(r.get(1)?),
        Value::String(r.get(2)?),
        // A damaged cell is an error naming the note (as reading the note is), never `[]`:
        // an empty list would be written back and sent, and would win.
        Value::from(crate::notes::tags_at(r, 3)?),
        Value::Bool(r.get(4)?),
        Value::Bool(r.get(5)?),
        Value::Bool(r.get(6)?),
    ];
    let mut out = Fields::new();
    for (i, (spec, value)) in fields::NOTE.iter().zip(values).enumerate() {
        let stamp: String = r.get(7 + i)?;
        out.insert(
            spec.name.to_owned(),
            FieldChange {
                value,
                stamp: parse_stamp(&stamp),
            },
        );
    }
    Ok(out)
}

/// Names the note in an error reading one of its cells: the sync log must say which note is
/// damaged.
pub(super) fn of_note(id: &str, e: rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::FromSqlConversionFailure(i, t, what) => {
            rusqlite::Error::FromSqlConversionFailure(i, t, format!("note {id}: {what}").into())
        }
        other => other,
    }
}

/// A note's fields and server version by id, read for every record a pull applies.
pub(crate) fn load_note_sql() -> String {
    format!("SELECT {NOTE_FIELD_COLUMNS}, server_version FROM notes WHERE id = ?1")
}

impl Tx<'_> {
    pub(super) fn load_local(&self, id: &str) -> Result<Option<Local>> {
        self.tx
            .prepare_cached(&load_note_sql())
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(Local {
                        fields: note_fields(r)?,
                        server_version: r.get(14)?,
                    })
                })
                .optional()
            })
            .map_err(|e| of_note(id, e))
            .at(self.path)
    }

    pub(super) fn write_local(
        &mut self,
        id: &str,
        fields: &Fields,
        version: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let value = |f: &str| {
            fields
                .get(f)
                .map_or_else(|| default_value(f), |c| c.value.clone())
        };
        let stamp = |f: &str| fields.get(f).map_or(Stamp::ZERO, |c| c.stamp).to_string();
        let text = |f: &str| value(f).as_str().unwrap_or_default().to_owned();
        let flag = |f: &str| value(f).as_bool().unwrap_or(false);
        let body = text("body");
        self.tx
            .prepare_cached(
                "INSERT INTO notes (id, notebook_id, title, body, preview, tags, pinned, archived,
                     deleted, created_ms, updated_ms, notebook_stamp, title_stamp, body_stamp,
                     tags_stamp, pinned_stamp, archived_stamp, deleted_stamp, server_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16, ?17, ?18)
                 ON CONFLICT (id) DO UPDATE SET notebook_id = excluded.notebook_id,
                     title = excluded.title, body = excluded.body, preview = excluded.preview,
                     tags = excluded.tags, pinned = excluded.pinned,
                     archived = excluded.archived, deleted = excluded.deleted,
                     updated_ms = excluded.updated_ms, notebook_stamp = excluded.notebook_stamp,
                     title_stamp = excluded.title_stamp, body_stamp = excluded.body_stamp,
                     tags_stamp = excluded.tags_stamp, pinned_stamp = excluded.pinned_stamp,
                     archived_stamp = excluded.archived_stamp,
                     deleted_stamp = excluded.deleted_stamp,
                     server_version = excluded.server_version",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    value("notebook_id").as_str(),
                    text("title"),
                    body,
                    crate::notes::preview(&body),
                    value("tags").to_string(),
                    flag("pinned"),
                    flag("archived"),
                    flag("deleted"),
                    now_ms,
                    stamp("notebook_id"),
                    stamp("title"),
                    stamp("body"),
                    stamp("tags"),
                    stamp("pinned"),
                    stamp("archived"),
                    stamp("deleted"),
                    version,
                ])
            })
            .at(self.path)?;
        Ok(())
    }

    fn load_base_body(&self, id: &str) -> Result<Option<String>> {
        self.tx
            .prepare_cached("SELECT body FROM note_base WHERE note_id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .at(self.path)
    }

    pub(super) fn write_base(&self, id: &str, version: i64, fields: &Fields) -> Result<()> {
        let value = |f: &str| {
            fields
                .get(f)
                .map_or_else(|| default_value(f), |c| c.value.clone())
        };
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO note_base (note_id, version, notebook_id, title, body,
                     tags, pinned, archived, deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    version,
                    value("notebook_id").as_str(),
                    value("title").as_str().unwrap_or_default(),
                    value("body").as_str().unwrap_or_default(),
                    value("tags").to_string(),
                    value("pinned").as_bool().unwrap_or(false),
                    value("archived").as_bool().unwrap_or(false),
                    value("deleted").as_bool().unwrap_or(false),
                ])
            })
            .at(self.path)?;
        Ok(())
    }

    /// The outbox entries of an entity, oldest first.
    pub(super) fn pending(&self, id: &str) -> Result<Vec<PendingEntry>> {
        self.tx
            .prepare_cached(PENDING_SQL)
            .and_then(|mut s| {
                s.query_map([id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<Vec<(i64, String, String, bool)>>>()
            })
            .at(self.path)?
            .into_iter()
            .map(|(seq, name, fields, sent)| {
                let fields = serde_json::from_str(&fields)
                    .map_err(|e| Error::Data(format!("outbox entry {seq}: {e}")))?;
                Ok(PendingEntry {
                    seq,
                    name,
                    fields,
                    sent,
                })
            })
            .collect()
    }

    /// The fields of an entity that have a local edit in the outbox.
    fn pending_fields(&self, id: &str) -> Result<std::collections::BTreeSet<String>> {
        Ok(self
            .pending(id)?
            .into_iter()
            .flat_map(|e| e.fields.into_keys())
            .collect())
    }

    fn rewrite_entry(&self, seq: i64, fields: &Fields, base_version: Option<i64>) -> Result<()> {
        if fields.is_empty() {
            self.tx
                .prepare_cached("DELETE FROM outbox WHERE seq = ?1 AND sent = 0")
                .and_then(|mut s| s.execute([seq]))
                .at(self.path)?;
            return Ok(());
        }
        let json = serde_json::to_string(fields).map_err(|e| Error::Data(e.to_string()))?;
        self.tx
            .prepare_cached(
                "UPDATE outbox SET fields = ?2, base_version = ?3 WHERE seq = ?1 AND sent = 0",
            )
            .and_then(|mut s| s.execute(params![seq, json, base_version]))
            .at(self.path)?;
        Ok(())
    }

    fn open_conflict(
        &self,
        id: &str,
        base: &str,
        mine: &str,
        theirs: &str,
        version: i64,
        now_ms: i64,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO conflicts (note_id, base_body, mine_body, theirs_body,
                     theirs_version, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| s.execute(params![id, base, mine, theirs, version, now_ms]))
            .at(self.path)?;
        Ok(())
    }

    fn now_ms(&mut self) -> i64 {
        let s = self.stamp();
        i64::try_from(s.physical_ms).unwrap_or(i64::MAX)
    }

    /// Applies one server record of a note to the local copy: decided by
    /// [`super::plan::plan_note`], run here.
    fn apply_note(
        &mut self,
        rec: &Record,
        me: ClientId,
        reconcile: bool,
        facts: PageFacts,
        out: &mut Applied,
    ) -> Result<()> {
        let Ok(note_id) = rec.id.parse::<NoteId>() else {
            tracing::warn!(id = %rec.id, "skipping a note record with a bad id");
            return Ok(());
        };
        let id = rec.id.as_str();
        let pending = if facts.outbox_empty {
            Vec::new()
        } else {
            self.pending(id)?
        };
        let local = self.load_local(id)?;
        let now = self.now_ms();
        let in_conflict = !rec.purged && local.is_some() && self.has_conflict(id)?;
        let input = NoteInput {
            rec,
            me,
            reconcile,
            pending: &pending,
            local: local.as_ref(),
            in_conflict,
            conflict_noted: out.conflicts.contains(&note_id),
        };
        let version = Some(rec.version.0);
        match plan_note(&input, self)? {
            NotePlan::Skip => {}
            NotePlan::Insert => {
                self.write_local(id, &rec.fields, version, now)?;
                // The note is its own base until it is edited here (schema V10).
                if !pending.is_empty() {
                    self.write_base(id, rec.version.0, &rec.fields)?;
                }
                out.changed.push(note_id);
                self.change.notes.push(note_id);
                let returned = !facts.none_purged_here
                    && self
                        .tx
                        .prepare_cached("DELETE FROM purged_here WHERE id = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .at(self.path)?
                        > 0;
                if returned {
                    out.returned.push(note_id);
                }
            }
            NotePlan::Remove { had_local } => {
                if had_local {
                    for sql in [
                        "DELETE FROM notes WHERE id = ?1",
                        "DELETE FROM conflicts WHERE note_id = ?1",
                    ] {
                        self.tx
                            .prepare_cached(sql)
                            .and_then(|mut s| s.execute([id]))
                            .at(self.path)?;
                    }
                    out.changed.push(note_id);
                }
                self.forget_base(id)?;
                self.change.notes.push(note_id);
            }
            NotePlan::Revive { fields, entry } => {
                self.change_entry(id, entry, rec, now)?;
                self.write_local(id, &fields, None, now)?;
                out.restored.push(note_id);
                self.forget_base(id)?;
                self.change.notes.push(note_id);
            }
            NotePlan::Merge(plan) => self.run_merge(rec, note_id, plan, reconcile, now, out)?,
        }
        Ok(())
    }

    fn run_merge(
        &mut self,
        rec: &Record,
        note_id: NoteId,
        plan: MergePlan,
        reconcile: bool,
        now: i64,
        out: &mut Applied,
    ) -> Result<()> {
        let id = rec.id.as_str();
        if let Some(theirs) = &plan.refresh_conflict {
            self.tx
                .prepare_cached(
                    "UPDATE conflicts SET theirs_body = ?2, theirs_version = ?3 WHERE note_id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, theirs, rec.version.0]))
                .at(self.path)?;
        }
        if let Some(c) = &plan.conflict {
            self.open_conflict(id, &c.base, &c.mine, &c.theirs, rec.version.0, now)?;
            out.conflicts.push(note_id);
        }
        if plan.merged {
            out.merged.push(note_id);
        }
        for entry in plan.entries {
            self.change_entry(id, entry, rec, now)?;
        }
        if plan.restored {
            out.restored.push(note_id);
        }
        // Pending entries now build on this version (their edits are merged into it).
        self.tx
            .prepare_cached(
                "UPDATE outbox SET base_version = ?2
                 WHERE entity_id = ?1 AND sent = 0 AND name = 'note.put'",
            )
            .and_then(|mut s| s.execute(params![id, rec.version.0]))
            .at(self.path)?;
        if plan.write_row {
            let updated = if plan.changed {
                now
            } else {
                self.updated_ms(id)?
            };
            self.write_local(id, &plan.fields, plan.version, updated)?;
            self.change.notes.push(note_id);
        }
        if plan.changed {
            out.changed.push(note_id);
        }
        if reconcile {
            self.resend_lost(Entity::Note, id, names::NOTE_PUT, plan.resend, rec, now)?;
        }
        // The server's record is the base of what still waits to go; with nothing waiting the
        // note holds what the server does and is its own base (schema V10).
        if self.has_entries(id)? {
            self.write_base(id, rec.version.0, &rec.fields)?;
        } else {
            self.forget_base(id)?;
        }
        Ok(())
    }

    /// Whether any outbox entry (waiting, in flight or refused) names this entity.
    fn has_entries(&self, id: &str) -> Result<bool> {
        self.tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM outbox WHERE entity_id = ?1)")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .at(self.path)
    }

    fn change_entry(&mut self, id: &str, entry: EntryChange, rec: &Record, now: i64) -> Result<()> {
        match entry {
            EntryChange::Rewrite { seq, fields } => {
                self.rewrite_entry(seq, &fields, Some(rec.version.0))
            }
            EntryChange::Enqueue { fields } => self.enqueue(
                Entity::Note,
                id,
                names::NOTE_PUT,
                fields,
                Some(rec.version.0),
                now,
            ),
        }
    }

    fn forget_base(&self, id: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM note_base WHERE note_id = ?1")
            .and_then(|mut s| s.execute([id]))
            .at(self.path)?;
        Ok(())
    }

    /// Queues again what a reconcile found newer here than on the server: the server lost it.
    fn resend_lost(
        &mut self,
        entity: Entity,
        id: &str,
        name: &str,
        lost: Fields,
        rec: &Record,
        now: i64,
    ) -> Result<()> {
        if lost.is_empty() {
            return Ok(());
        }
        tracing::info!(entity = entity.as_str(), %id, fields = lost.len(), "sending again what the server lost");
        self.enqueue(entity, id, name, lost, Some(rec.version.0), now)
    }

    fn updated_ms(&self, id: &str) -> Result<i64> {
        self.tx
            .prepare_cached("SELECT updated_ms FROM notes WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .at(self.path)
    }

    /// A local notebook with the stamp of each field.
    pub(super) fn load_local_notebook(&self, id: &str) -> Result<Option<Local>> {
        self.tx
            .prepare_cached(
                "SELECT name, name_stamp, deleted, deleted_stamp, server_version
                 FROM notebooks WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(Local {
                        fields: super::verify::notebook_fields(
                            r.get(0)?,
                            &r.get::<_, String>(1)?,
                            r.get(2)?,
                            &r.get::<_, String>(3)?,
                        ),
                        server_version: r.get(4)?,
                    })
                })
                .optional()
            })
            .at(self.path)
    }

    /// Applies one server record of a notebook: decided by [`super::plan::plan_notebook`].
    pub(super) fn apply_notebook(&mut self, rec: &Record, reconcile: bool) -> Result<()> {
        let Ok(nb) = rec.id.parse::<outpost_protocol::NotebookId>() else {
            tracing::warn!(id = %rec.id, "skipping a notebook record with a bad id");
            return Ok(());
        };
        let now = self.now_ms();
        let pending = self.pending_fields(&rec.id)?;
        let local = self.load_local_notebook(&rec.id)?;
        let plan = plan_notebook(rec, local.as_ref(), &pending, reconcile);
        self.tx
            .prepare_cached(
                "INSERT INTO notebooks (id, name, name_stamp, deleted, deleted_stamp, created_ms,
                     updated_ms, server_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                     name_stamp = excluded.name_stamp, deleted = excluded.deleted,
                     deleted_stamp = excluded.deleted_stamp, updated_ms = excluded.updated_ms,
                     server_version = excluded.server_version",
            )
            .and_then(|mut s| {
                s.execute(params![
                    rec.id,
                    plan.name.value.as_str().unwrap_or_default(),
                    plan.name.stamp.to_string(),
                    plan.deleted.value.as_bool().unwrap_or(false),
                    plan.deleted.stamp.to_string(),
                    now,
                    rec.version.0
                ])
            })
            .at(self.path)?;
        self.change.notebooks.push(nb);
        if reconcile {
            self.resend_lost(
                Entity::Notebook,
                &rec.id,
                names::NOTEBOOK_PUT,
                plan.resend,
                rec,
                now,
            )?;
        }
        Ok(())
    }

    pub(super) fn apply_pref(&mut self, rec: &Record, reconcile: bool) -> Result<()> {
        let Some(change) = rec.fields.get("value") else {
            return Ok(());
        };
        if !crate::prefs::is_synced_key(&rec.id) {
            return Ok(());
        }
        let now = self.now_ms();
        let pending = self.pending_fields(&rec.id)?.contains("value");
        let current: Option<String> = self
            .tx
            .prepare_cached("SELECT stamp FROM prefs WHERE key = ?1")
            .and_then(|mut s| s.query_row([&rec.id], |r| r.get(0)).optional())
            .at(self.path)?;
        if let Some(mine) = current.map(|s| parse_stamp(&s))
            && !takes_theirs(change.stamp, mine, reconcile || pending)
        {
            if reconcile && !pending && mine > change.stamp {
                let lost = self.pref_fields(&rec.id)?.unwrap_or_default();
                self.resend_lost(Entity::Pref, &rec.id, names::PREF_PUT, lost, rec, now)?;
            }
            return Ok(());
        }
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO prefs (key, value, stamp, updated_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![rec.id, change.value.to_string(), change.stamp.to_string(), now]))
            .at(self.path)?;
        self.change.prefs.push(rec.id.clone());
        Ok(())
    }

    fn apply_record(
        &mut self,
        rec: &Record,
        me: ClientId,
        reconcile: bool,
        facts: PageFacts,
        out: &mut Applied,
    ) -> Result<()> {
        for change in rec.fields.values() {
            if let crate::clock::Observed::Clamped { skew_ms } = self.observe(&change.stamp) {
                out.skew_ms = Some(out.skew_ms.unwrap_or(0).max(skew_ms));
            }
        }
        // The server holds this record at or after the commit this device was told of.
        if !facts.none_unconfirmed {
            self.tx
                .prepare_cached(
                    "DELETE FROM unconfirmed WHERE entity = ?1 AND id = ?2 AND cursor <= ?3",
                )
                .and_then(|mut s| s.execute(params![rec.entity.as_str(), rec.id, rec.cursor.0]))
                .at(self.path)?;
        }
        if reconcile {
            self.tx
                .prepare_cached("INSERT OR IGNORE INTO reconcile_seen (entity, id) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![rec.entity.as_str(), rec.id]))
                .at(self.path)?;
        }
        match rec.entity {
            Entity::Note => self.apply_note(rec, me, reconcile, facts, out),
            Entity::Notebook => self.apply_notebook(rec, reconcile),
            Entity::Pref => self.apply_pref(rec, reconcile),
            Entity::Attachment => self.apply_attachment(rec, reconcile),
        }
    }

    /// Applies one server record of an attachment: decided by [`super::plan::plan_lww`]. A
    /// blob this device does not have becomes known (its download asked for when the user
    /// wants every attachment here).
    pub(super) fn apply_attachment(&mut self, rec: &Record, reconcile: bool) -> Result<()> {
        if rec.id.parse::<outpost_protocol::AttachmentId>().is_err() {
            tracing::warn!(id = %rec.id, "skipping an attachment record with a bad id");
            return Ok(());
        }
        let now = self.now_ms();
        let pending = self.pending_fields(&rec.id)?;
        let local = self.attachment_fields(&rec.id)?;
        if rec.purged {
            // No device deletes an attachment for good (removing one is `deleted`); a
            // tombstone still removes the row here, unless an edit here waits to go.
            if pending.is_empty() {
                self.tx
                    .prepare_cached("DELETE FROM attachments WHERE id = ?1")
                    .and_then(|mut s| s.execute([&rec.id]))
                    .at(self.path)?;
            }
            return Ok(());
        }
        let plan = super::plan::plan_lww(
            Entity::Attachment,
            rec,
            local.as_ref().map(|(f, v)| (f, *v)),
            &pending,
            reconcile,
        );
        self.write_attachment(&rec.id, &plan.fields, Some(rec.version.0), true)?;
        let sha = plan
            .fields
            .get("sha256")
            .and_then(|c| c.value.as_str())
            .and_then(|s| outpost_protocol::blobs::BlobHash::parse(s).ok());
        if let Some(sha) = sha {
            let size = plan
                .fields
                .get("size")
                .and_then(|c| c.value.as_i64())
                .unwrap_or(0);
            let removed = plan.fields.get("deleted").is_some_and(|c| c.value == true);
            let fetch = !removed && self.download_all_attachments()?;
            self.know_blob(sha.as_str(), size, fetch)?;
        }
        if let Ok(note) = plan
            .fields
            .get("note_id")
            .and_then(|c| c.value.as_str())
            .unwrap_or_default()
            .parse()
        {
            self.change.notes.push(note);
        }
        if reconcile {
            self.resend_lost(
                Entity::Attachment,
                &rec.id,
                names::ATTACHMENT_PUT,
                plan.resend,
                rec,
                now,
            )?;
        }
        Ok(())
    }

    fn download_all_attachments(&self) -> Result<bool> {
        let value: Option<String> = self
            .tx
            .prepare_cached("SELECT value FROM prefs WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([crate::prefs::DOWNLOAD_ALL_ATTACHMENTS], |r| r.get(0))
                    .optional()
            })
            .at(self.path)?;
        Ok(value.as_deref() == Some("true"))
    }
}

impl NoteContext for Tx<'_> {
    fn fresh_stamp(&mut self) -> Stamp {
        self.stamp()
    }

    fn base_body(&mut self, id: &str) -> Result<String> {
        Ok(self.load_base_body(id)?.unwrap_or_default())
    }
}

impl Store {
    /// How many changes the server acknowledged that a pull which read to its newest cursor
    /// did not bring back: the server lost them (restored from a backup taken before them).
    pub fn lost_acknowledged(&self) -> Result<i64> {
        self.read(|conn, path| {
            conn.query_row("SELECT count(*) FROM unconfirmed", [], |r| r.get(0))
                .at(path)
        })
    }

    /// Applies one pull page and saves its cursor, in one transaction.
    pub fn apply_pull_page(&self, records: &[Record], next_cursor: Cursor) -> Result<Applied> {
        self.apply_pull(records, next_cursor, None)
    }

    /// Applies one pull page and saves its cursor with the server's chain of commits there, in
    /// one transaction. During a re-download (see [`Store::begin_reset`]) it reconciles: every
    /// field by stamp, and what this device holds newer is sent again.
    pub fn apply_pull(
        &self,
        records: &[Record],
        next_cursor: Cursor,
        next_chain: Option<&str>,
    ) -> Result<Applied> {
        let me = self.client_id();
        self.write(|tx| {
            let mut out = Applied::default();
            let reconcile = super::state::reset_flag(&tx.tx, tx.path)?;
            let facts = tx.page_facts()?;
            for rec in records {
                tx.apply_record(rec, me, reconcile, facts, &mut out)?;
            }
            meta::set(&tx.tx, tx.path, CURSOR, &next_cursor.0.to_string())?;
            match next_chain {
                Some(chain) => meta::set(&tx.tx, tx.path, CURSOR_CHAIN, chain)?,
                None => {
                    tx.tx
                        .execute("DELETE FROM sync_meta WHERE key = ?1", [CURSOR_CHAIN])
                        .at(tx.path)?;
                }
            }
            crate::testhook::pause_at(crate::testhook::PULL_PAGE_APPLYING);
            Ok(out)
        })
    }

    /// The cursor of the last page applied.
    pub fn cursor(&self) -> Result<Cursor> {
        let value = self.read(|conn, path| meta::get(conn, path, CURSOR))?;
        Ok(Cursor(value.and_then(|v| v.parse().ok()).unwrap_or(0)))
    }

    /// Handles the server's replies to a pushed batch, in one transaction: acknowledged entries
    /// leave the outbox (L2); a conflict is merged (or opened) and its edit queued again as a
    /// new mutation; a rejection becomes a dead letter.
    pub fn apply_push_results(
        &self,
        sent: &[OutboxEntry],
        results: &[MutationResult],
    ) -> Result<Applied> {
        let me = self.client_id();
        let by_id: std::collections::HashMap<MutationId, &OutboxEntry> =
            sent.iter().map(|e| (e.mutation_id, e)).collect();
        self.write(|tx| {
            let mut out = Applied::default();
            for result in results {
                let Some(&entry) = by_id.get(&result.id) else {
                    tracing::warn!(mutation = %result.id, "a reply for a mutation not sent");
                    continue;
                };
                if matches!(result.outcome, Outcome::Duplicate { .. }) {
                    out.duplicates.push(entry.mutation_id);
                }
                let Some(outcome) = first_reply(&result.outcome) else {
                    // Too old for the server to keep: it was handled, and the next pull brings
                    // the record as it is now.
                    tx.remove_entry(entry)?;
                    continue;
                };
                tracing::debug!(
                    mutation = %entry.mutation_id,
                    entity = %entry.entity_id,
                    outcome = outcome.status(),
                    "push reply"
                );
                match outcome {
                    Outcome::Applied {
                        version,
                        cursor,
                        clamped_skew_ms,
                    } => {
                        if let Some(skew) = clamped_skew_ms {
                            out.skew_ms = Some(out.skew_ms.unwrap_or(0).max(*skew));
                        }
                        tx.remove_entry(entry)?;
                        tx.note_applied(entry, version.0)?;
                        tx.attachment_applied(entry)?;
                        tx.hold_unconfirmed(entry, *cursor)?;
                    }
                    Outcome::Duplicate { .. } => tx.remove_entry(entry)?,
                    Outcome::Conflict { current } => {
                        tx.remove_entry(entry)?;
                        let local = match entry.entity {
                            Entity::Note => tx.load_local(&entry.entity_id)?,
                            _ => None,
                        };
                        let fields = requeue_after_conflict(entry, current, local.as_ref());
                        // Queued again as a new mutation; the merge below rebases it.
                        if !fields.is_empty() {
                            tx.requeue_entry(entry, fields)?;
                        }
                        tx.apply_record(current, me, false, PageFacts::UNKNOWN, &mut out)?;
                    }
                    Outcome::Rejected { code, message } => {
                        tx.fail_entry(entry, code, message)?;
                        out.rejected += 1;
                    }
                }
            }
            tx.change.outbox = true;
            Ok(out)
        })
    }
}

impl Tx<'_> {
    /// Holds an applied change as unconfirmed until a pull brings it back: a server restored
    /// from a backup may have lost it together with this reply. (A commit the pull cursor is
    /// past already, the reply of a resend, came back with that pull.)
    fn hold_unconfirmed(&self, entry: &OutboxEntry, cursor: Cursor) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO unconfirmed (entity, id, cursor)
                 SELECT ?1, ?2, ?3 WHERE ?3 > coalesce(
                     (SELECT CAST(value AS INTEGER) FROM sync_meta WHERE key = ?4), 0)
                 ON CONFLICT (entity, id) DO UPDATE
                 SET cursor = max(cursor, excluded.cursor)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    entry.entity.as_str(),
                    entry.entity_id,
                    cursor.0,
                    CURSOR
                ])
            })
            .at(self.path)?;
        Ok(())
    }

    /// A refused mutation becomes a dead letter the user can retry, edit or discard.
    fn fail_entry(&mut self, entry: &OutboxEntry, code: &str, message: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE outbox SET state = 'failed', last_error = ?2 WHERE mutation_id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    entry.mutation_id.to_string(),
                    format!("{message} ({code})")
                ])
            })
            .at(self.path)?;
        if let Ok(id) = entry.entity_id.parse() {
            self.change.notes.push(id);
        }
        Ok(())
    }
}

impl Tx<'_> {
    fn remove_entry(&mut self, entry: &OutboxEntry) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM outbox WHERE mutation_id = ?1")
            .and_then(|mut s| s.execute([entry.mutation_id.to_string()]))
            .at(self.path)?;
        if let Ok(id) = entry.entity_id.parse() {
            self.change.notes.push(id);
        }
        Ok(())
    }

    /// After the server took a change of an attachment still in its note (a new one, one sent
    /// again to a server that lost it, one brought back), its blob is checked there again, even
    /// if this device sent it before: a server restored from an older backup, or one that
    /// collected it meanwhile, gets it back. The check is one request when the server has it.
    fn attachment_applied(&mut self, entry: &OutboxEntry) -> Result<()> {
        if entry.entity != Entity::Attachment {
            return Ok(());
        }
        self.tx
            .prepare_cached(
                "UPDATE blobs SET upload = 'waiting', attempts = 0, next_attempt_ms = 0
                 WHERE here = 1 AND upload = 'done' AND sha256 = (
                     SELECT sha256 FROM attachments WHERE id = ?1 AND deleted = 0)",
            )
            .and_then(|mut s| s.execute([&entry.entity_id]))
            .at(self.path)?;
        Ok(())
    }

    /// After the server applied a body edit, its body at `version` is ours: that is the new
    /// base, and unsent edits of the note build on it. (Without a body the server's body may
    /// have changed meanwhile; the next pull settles the base.)
    fn note_applied(&mut self, entry: &OutboxEntry, version: i64) -> Result<()> {
        if entry.entity != Entity::Note || entry.name != names::NOTE_PUT {
            return Ok(());
        }
        let Some(body) = entry.fields.get("body") else {
            return Ok(());
        };
        let id = entry.entity_id.as_str();
        self.tx
            .prepare_cached("UPDATE notes SET server_version = max(coalesce(server_version, 0), ?2) WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, version]))
            .at(self.path)?;
        if !self.has_entries(id)? {
            // Every edit of the note has reached the server: it holds what the server does,
            // and is its own base (schema V10).
            return self.forget_base(id);
        }
        let known: Option<i64> = self
            .tx
            .prepare_cached("SELECT version FROM note_base WHERE note_id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .at(self.path)?;
        if known.is_some_and(|v| v >= version) {
            return Ok(());
        }
        let updated = self
            .tx
            .prepare_cached("UPDATE note_base SET body = ?2, version = ?3 WHERE note_id = ?1")
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    body.value.as_str().unwrap_or_default(),
                    version
                ])
            })
            .at(self.path)?;
        if updated == 0 {
            // The note's first push carries every field: that is the base.
            self.write_base(id, version, &entry.fields)?;
        }
        self.tx
            .prepare_cached(
                "UPDATE outbox SET base_version = ?2
                 WHERE entity_id = ?1 AND sent = 0 AND coalesce(base_version, 0) < ?2",
            )
            .and_then(|mut s| s.execute(params![id, version]))
            .at(self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::OutboxEntry;
    use crate::store::test_support::{ack_all, temp_store};
    use crate::{NoteDraft, NoteId, NotePatch, Store, SyncState};
    use outpost_protocol::api::{Cursor, MutationNumber, MutationResult, Outcome, Record, Version};
    use outpost_protocol::{ClientId, Entity, FieldChange, Fields, Stamp};
    use serde_json::Value;

    fn reply(entry: &OutboxEntry, outcome: Outcome) -> MutationResult {
        MutationResult {
            id: entry.mutation_id,
            number: MutationNumber(entry.mutation_number),
            outcome,
        }
    }

    /// A note created here and acknowledged by the server at version 1.
    fn synced_note(store: &Store, title: &str, body: &str) -> NoteId {
        let note = store
            .create_note(NoteDraft {
                title: title.into(),
                body: body.into(),
                ..Default::default()
            })
            .expect("create");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        let applied = Outcome::Applied {
            version: Version(1),
            cursor: Cursor(1),
            clamped_skew_ms: None,
        };
        store
            .apply_push_results(&sent, &[reply(&sent[0], applied)])
            .expect("ack");
        note.id
    }

    /// The server's record of an entity as another device (or a clamping server) left it.
    fn record_of(
        entity: Entity,
        id: String,
        version: i64,
        fields: Vec<(&str, Value, Stamp)>,
    ) -> Record {
        let fields: Fields = fields
            .into_iter()
            .map(|(name, value, stamp)| (name.to_owned(), FieldChange { value, stamp }))
            .collect();
        Record {
            entity,
            id,
            version: Version(version),
            cursor: Cursor(version),
            purged: false,
            fields,
        }
    }

    fn record(id: NoteId, version: i64, fields: &[(&str, &str, Stamp)]) -> Record {
        let fields = fields
            .iter()
            .map(|(name, value, stamp)| (*name, Value::String((*value).to_owned()), *stamp))
            .collect();
        record_of(Entity::Note, id.to_string(), version, fields)
    }

    /// Found by the simulation (seed 5016): an edit of a note this device then deleted for good,
    /// answered by the server's tombstone, was queued again and again for ever.
    #[test]
    fn an_edit_of_a_note_deleted_for_good_here_and_on_the_server_is_not_sent_again() {
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Valve", "old");
        store
            .update_note(
                id,
                NotePatch {
                    body: Some("new".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        store.trash_note(id).expect("trash");
        store.purge_note(id).expect("purge");
        let mut tombstone = record(id, 3, &[]);
        tombstone.purged = true;
        store
            .apply_push_results(
                &sent,
                &[reply(&sent[0], Outcome::Conflict { current: tombstone })],
            )
            .expect("apply");
        let queue = store.outbox_for(&id.to_string()).expect("outbox");
        assert!(
            queue.iter().all(|e| !e.fields.contains_key("body")),
            "the edit is not queued again: {queue:?}"
        );
        assert_eq!(store.get_note(id).expect_err("gone").code(), "not_found");
    }

    /// Acknowledges everything queued as applied at version 1.
    fn stamp(store: &Store, note: NoteId, field: &str) -> Stamp {
        store
            .read(|c, p| {
                use crate::error::SqlContext;
                c.query_row(
                    &format!("SELECT {field}_stamp FROM notes WHERE id = ?1"),
                    [note.to_string()],
                    |r| r.get::<_, String>(0),
                )
                .at(p)
            })
            .expect("stamp")
            .parse()
            .expect("a stamp")
    }

    fn other_device_at(physical_ms: u64) -> Stamp {
        Stamp {
            physical_ms,
            counter: 0,
            node: ClientId::new(),
        }
    }

    #[test]
    fn a_duplicate_whose_first_reply_was_a_conflict_is_merged_not_dropped() {
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "one\ntwo\nthree\n");
        store
            .update_note(
                id,
                NotePatch {
                    body: Some("one\ntwo\nthree (mine)\n".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        let later = stamp(&store, id, "body").physical_ms + 1;
        // The first send met another device's edit; that reply was lost, the retry says so.
        let theirs = record(
            id,
            2,
            &[("body", "one (theirs)\ntwo\nthree\n", other_device_at(later))],
        );
        let duplicate = Outcome::Duplicate {
            first: Some(Box::new(Outcome::Conflict { current: theirs })),
        };
        let applied = store
            .apply_push_results(&sent, &[reply(&sent[0], duplicate)])
            .expect("apply");
        assert_eq!(applied.duplicates, vec![sent[0].mutation_id]);
        assert_eq!(applied.merged, vec![id]);
        let note = store.get_note(id).expect("note");
        assert_eq!(note.body, "one (theirs)\ntwo\nthree (mine)\n");
        assert_eq!(note.sync_state, SyncState::Pending);
        let queue = store.outbox_for(&id.to_string()).expect("outbox");
        assert_eq!(queue.len(), 1, "the merge is queued once: {queue:?}");
        assert_ne!(
            queue[0].mutation_id, sent[0].mutation_id,
            "as a new mutation"
        );
        assert_eq!(queue[0].base_version, Some(2));
        assert_eq!(
            queue[0].fields["body"].value,
            "one (theirs)\ntwo\nthree (mine)\n"
        );
    }

    #[test]
    fn a_duplicate_whose_first_reply_was_a_refusal_becomes_a_dead_letter() {
        let (_dir, store) = temp_store();
        let note = store
            .create_note(NoteDraft {
                title: "Poisoned".into(),
                ..Default::default()
            })
            .expect("create");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        let duplicate = Outcome::Duplicate {
            first: Some(Box::new(Outcome::Rejected {
                code: "invalid_field".into(),
                message: "note.tags: too long".into(),
            })),
        };
        let applied = store
            .apply_push_results(&sent, &[reply(&sent[0], duplicate)])
            .expect("apply");
        assert_eq!(applied.rejected, 1);
        assert_eq!(applied.duplicates, vec![sent[0].mutation_id]);
        assert_eq!(
            store.get_note(note.id).expect("note").sync_state,
            SyncState::Failed
        );
        let dead = store.dead_letters().expect("dead letters");
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("too long")),
            "the server's reason is kept: {:?}",
            dead[0].last_error
        );
    }

    #[test]
    fn a_field_without_a_local_edit_takes_the_servers_value_even_under_a_lower_stamp() {
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "");
        // The server clamped this device's fast stamp, then another device's edit won over it
        // there with a stamp still below the one this device keeps.
        let below = stamp(&store, id, "title").physical_ms - 1000;
        let theirs = record(id, 2, &[("title", "Pump (other)", other_device_at(below))]);
        store.apply_pull_page(&[theirs], Cursor(2)).expect("pull");
        assert_eq!(store.get_note(id).expect("note").title, "Pump (other)");
        assert_eq!(
            stamp(&store, id, "title").physical_ms,
            below,
            "and its stamp"
        );

        // A pending edit is another matter: it has not reached the server, the stamps decide.
        store
            .update_note(
                id,
                NotePatch {
                    title: Some("Pump (mine)".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        let older = record(
            id,
            3,
            &[("title", "Pump (old)", other_device_at(below + 1))],
        );
        store.apply_pull_page(&[older], Cursor(3)).expect("pull");
        assert_eq!(store.get_note(id).expect("note").title, "Pump (mine)");

        // So is a record older than the version this device has.
        let stale = record(id, 1, &[("archived", "x", other_device_at(below))]);
        let before = stamp(&store, id, "archived");
        store.apply_pull_page(&[stale], Cursor(3)).expect("pull");
        assert_eq!(stamp(&store, id, "archived"), before);
    }

    #[test]
    fn notebooks_and_preferences_without_a_local_edit_take_the_servers_value_too() {
        let (_dir, store) = temp_store();
        let notebook = store.create_notebook("Sites").expect("notebook");
        store
            .set_pref("editor.font_size", Value::from(14))
            .expect("pref");
        ack_all(&store);
        let early = other_device_at(1_000);
        let renamed = record_of(
            Entity::Notebook,
            notebook.id.to_string(),
            2,
            vec![("name", Value::from("Sites (north)"), early)],
        );
        let resized = record_of(
            Entity::Pref,
            "editor.font_size".into(),
            2,
            vec![("value", Value::from(16), early)],
        );
        store
            .apply_pull_page(&[renamed, resized], Cursor(3))
            .expect("pull");
        assert_eq!(
            store
                .find_notebook(&notebook.id.to_string())
                .expect("nb")
                .name,
            "Sites (north)"
        );
        assert_eq!(
            store.get_pref("editor.font_size").expect("pref").value,
            Value::from(16)
        );

        // With a local edit waiting, the later stamp decides.
        store
            .rename_notebook(notebook.id, "Sites (mine)")
            .expect("rename");
        let older = record_of(
            Entity::Notebook,
            notebook.id.to_string(),
            3,
            vec![("name", Value::from("Sites (old)"), other_device_at(2_000))],
        );
        store.apply_pull_page(&[older], Cursor(4)).expect("pull");
        assert_eq!(
            store
                .find_notebook(&notebook.id.to_string())
                .expect("nb")
                .name,
            "Sites (mine)"
        );
    }

    #[test]
    fn a_damaged_tags_or_preference_cell_is_reported_never_replaced_and_sent() {
        use crate::error::SqlContext as _;
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "");
        store
            .set_pref("editor.font_size", Value::from(14))
            .expect("pref");
        ack_all(&store);
        store
            .write(|tx| {
                tx.tx
                    .execute(
                        "UPDATE notes SET tags = 'pump, seal' WHERE id = ?1",
                        [id.to_string()],
                    )
                    .at(tx.path)?;
                tx.tx
                    .execute(
                        "UPDATE prefs SET value = '{14' WHERE key = 'editor.font_size'",
                        [],
                    )
                    .at(tx.path)?;
                Ok(())
            })
            .expect("damage");

        // The sync log says which note and what is wrong with it; the pull stops there.
        let theirs = record(id, 2, &[("title", "Pump (other)", other_device_at(1))]);
        let err = store
            .apply_pull_page(&[theirs], Cursor(2))
            .expect_err("a damaged note");
        assert_eq!(err.code(), "data");
        let said = err.to_string();
        assert!(
            said.contains(&id.to_string()) && said.contains("tags"),
            "{said}"
        );
        // Nothing was written over the cell, and no empty list was queued to win elsewhere.
        let cell: String = store
            .read(|conn, path| {
                conn.query_row(
                    "SELECT tags FROM notes WHERE id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .at(path)
            })
            .expect("cell");
        assert_eq!(cell, "pump, seal");
        assert!(
            store
                .outbox_for(&id.to_string())
                .expect("outbox")
                .is_empty()
        );

        // The preference stops the doctor's check with its name, never summed up as null.
        let err = store
            .full_digest_buckets()
            .expect_err("a damaged preference");
        assert!(err.to_string().contains("editor.font_size"), "{err}");

        // The note the doctor names as differing, and its repair takes the server's copy: the
        // way out the user has (Diagnostics, "Check and repair").
        let servers = record_of(
            Entity::Note,
            id.to_string(),
            2,
            vec![
                ("title", Value::from("Pump"), other_device_at(1)),
                (
                    "tags",
                    serde_json::json!(["pump", "seal"]),
                    other_device_at(1),
                ),
            ],
        );
        let done = store.repair_from_server(&[servers]).expect("repair");
        assert_eq!(done.rewritten, 1);
        assert_eq!(
            store.get_note(id).expect("readable again").tags,
            ["pump", "seal"]
        );
        store.apply_pull_page(&[], Cursor(2)).expect("pulls go on");
    }

    #[test]
    fn our_own_push_coming_back_changes_nothing_on_screen() {
        let (_dir, store) = temp_store();
        let sent = {
            store
                .create_note(NoteDraft {
                    title: "Pump 4".into(),
                    body: "Seal leaking".into(),
                    ..Default::default()
                })
                .expect("create");
            store.take_batch(10, usize::MAX).expect("batch")
        };
        let applied = Outcome::Applied {
            version: Version(1),
            cursor: Cursor(1),
            clamped_skew_ms: None,
        };
        store
            .apply_push_results(&sent, &[reply(&sent[0], applied)])
            .expect("ack");
        let note = store
            .get_note(sent[0].entity_id.parse().expect("id"))
            .expect("note");
        let echo = Record {
            entity: Entity::Note,
            id: note.id.to_string(),
            version: Version(1),
            cursor: Cursor(1),
            purged: false,
            fields: sent[0].fields.clone(),
        };
        let mut changes = store.subscribe();
        store.apply_pull_page(&[echo], Cursor(1)).expect("pull");
        if let Ok(change) = changes.try_recv() {
            assert!(
                change.notes.is_empty(),
                "no note changed, so the list is not refreshed: {change:?}"
            );
        }
        assert_eq!(store.get_note(note.id).expect("note"), note);
    }
    #[test]
    fn its_own_body_coming_back_clamped_takes_the_servers_stamp() {
        // Found by the simulation (seed 1): a device a day fast creates a note; the server
        // clamps the stamps of its fields. When the note comes back in a pull, the small fields
        // took the clamped stamps but the body, the same text, kept the device's: the sync
        // doctor then found device and server different for every note that device created.
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "Seal ok");
        let mine = stamp(&store, id, "body");
        let clamped = Stamp {
            physical_ms: mine.physical_ms - 3_600_000,
            ..mine
        };
        let echo = record(
            id,
            1,
            &[("title", "Pump", clamped), ("body", "Seal ok", clamped)],
        );
        store.apply_pull_page(&[echo], Cursor(1)).expect("pull");
        assert_eq!(stamp(&store, id, "title"), clamped);
        assert_eq!(stamp(&store, id, "body"), clamped, "the body's stamp too");
        assert_eq!(store.get_note(id).expect("note").body, "Seal ok");
    }

    /// A stamp of this device from before its last body edit: what the server holds when an
    /// older edit of ours reached it first.
    fn earlier_own_stamp(store: &Store, id: NoteId) -> Stamp {
        Stamp {
            physical_ms: stamp(store, id, "body").physical_ms - 10,
            counter: 0,
            node: store.client_id(),
        }
    }

    /// A body edit sent and waiting for its reply (a reply lost on the way, say): the batch
    /// that goes up (with any earlier entry whose reply never came).
    fn body_edit_in_flight(store: &Store, id: NoteId, body: &str) -> Vec<OutboxEntry> {
        store
            .update_note(
                id,
                NotePatch {
                    body: Some(body.into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        store.take_batch(10, usize::MAX).expect("batch")
    }

    #[test]
    fn a_merge_that_comes_back_as_their_text_keeps_their_stamp() {
        // Found by the simulation (seed 1): the merged text was exactly the server's, yet the
        // device stamped it anew and sent nothing, so device and server kept different stamps
        // for the same text for good, and the sync doctor reported a difference.
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "one\ntwo\nthree\n");
        body_edit_in_flight(&store, id, "one\ntwo\nthree (mine)\n");
        let later = stamp(&store, id, "body").physical_ms + 1;
        let theirs_stamp = other_device_at(later);
        let theirs = record(
            id,
            3,
            &[("body", "one (theirs)\ntwo\nthree (mine)\n", theirs_stamp)],
        );
        store.apply_pull_page(&[theirs], Cursor(3)).expect("pull");
        assert_eq!(
            store.get_note(id).expect("note").body,
            "one (theirs)\ntwo\nthree (mine)\n"
        );
        assert_eq!(stamp(&store, id, "body"), theirs_stamp);
    }

    #[test]
    fn a_merge_made_while_the_edit_is_in_flight_is_queued_to_be_sent() {
        // Found by the simulation: with the only edit of the body already sent, a merge with a
        // pulled edit was written on this device and queued nowhere (a sent entry is never
        // rewritten): the server and the other devices would never see it.
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "one\ntwo\nthree\n");
        let sent = body_edit_in_flight(&store, id, "one\ntwo\nthree (mine)\n");
        let later = stamp(&store, id, "body").physical_ms + 1;
        let theirs = record(
            id,
            2,
            &[("body", "one (theirs)\ntwo\nthree\n", other_device_at(later))],
        );
        store.apply_pull_page(&[theirs], Cursor(2)).expect("pull");
        let merged = "one (theirs)\ntwo\nthree (mine)\n";
        assert_eq!(store.get_note(id).expect("note").body, merged);
        let queue = store.outbox_for(&id.to_string()).expect("outbox");
        assert_eq!(queue.len(), 2, "the one in flight and the merge: {queue:?}");
        assert_eq!(
            queue[0].mutation_id, sent[0].mutation_id,
            "never rewritten (L3)"
        );
        assert_eq!(queue[0].fields["body"].value, "one\ntwo\nthree (mine)\n");
        assert_eq!(queue[1].fields["body"].value, merged);
        assert_eq!(queue[1].base_version, Some(2));
    }

    #[test]
    fn two_edits_sent_together_that_both_conflict_send_the_later_text_again() {
        // Found by the simulation (seed 2): two body edits of a note went up in one batch and
        // both met a conflict; requeueing the second folded it under the first one's requeue,
        // and the earlier text won. The later edit was lost on the server and on every other
        // device, while this one showed it as synced.
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "one\n");
        body_edit_in_flight(&store, id, "two\n");
        // The batch that goes up holds the first edit again (its reply never came) and the
        // second, as its own entry: a sent entry is never rewritten.
        let sent = body_edit_in_flight(&store, id, "three\n");
        assert_eq!(sent.len(), 2, "{sent:?}");
        // What the server holds: another edit of this device, made before these two.
        let own = earlier_own_stamp(&store, id);
        let current = record(id, 2, &[("body", "zero\n", own)]);
        let conflict = || Outcome::Conflict {
            current: current.clone(),
        };
        store
            .apply_push_results(
                &sent,
                &[reply(&sent[0], conflict()), reply(&sent[1], conflict())],
            )
            .expect("apply");
        assert_eq!(store.get_note(id).expect("note").body, "three\n");
        let queue = store.outbox_for(&id.to_string()).expect("outbox");
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(
            queue[0].fields["body"].value, "three\n",
            "the later edit goes up"
        );
    }

    #[test]
    fn an_edit_and_its_undo_sent_together_end_with_the_undo() {
        // Found by the simulation (seed 1039): a line was added and removed again; both edits
        // went up in one batch. The first met a conflict and was queued again, behind the undo
        // the server had already applied, so the line came back everywhere.
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "one\n");
        body_edit_in_flight(&store, id, "one\ntwo\n");
        let sent = body_edit_in_flight(&store, id, "one\n");
        assert_eq!(sent.len(), 2, "{sent:?}");
        let own = earlier_own_stamp(&store, id);
        let conflict = Outcome::Conflict {
            current: record(id, 2, &[("body", "zero\n", own)]),
        };
        let applied = Outcome::Applied {
            version: Version(3),
            cursor: Cursor(3),
            clamped_skew_ms: None,
        };
        store
            .apply_push_results(
                &sent,
                &[reply(&sent[0], conflict), reply(&sent[1], applied)],
            )
            .expect("apply");
        assert_eq!(store.get_note(id).expect("note").body, "one\n");
        let queue = store.outbox_for(&id.to_string()).expect("outbox");
        assert!(
            queue
                .iter()
                .all(|e| e.fields.get("body").is_none_or(|b| b.value != "one\ntwo\n")),
            "the undone edit is not sent again: {queue:?}"
        );
    }

    /// A server restored from an older copy: it has note one at the version before this
    /// device's last edit, and has never heard of note two. The re-download keeps both as they
    /// are here and sends again what the server lost, and removes nothing.
    #[test]
    fn a_reconcile_keeps_and_sends_again_what_the_server_lost() {
        let (_dir, store) = temp_store();
        let one = synced_note(&store, "Pump", "");
        let before = stamp(&store, one, "title");
        store
            .update_note(
                one,
                NotePatch {
                    title: Some("Pump 3 (seal replaced)".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        ack_all(&store);
        let two = synced_note(&store, "Valve", "closed at 14:00");
        assert_eq!(store.local_status().expect("status").pending, 0);

        store.begin_reset(None).expect("begin");
        let old_copy = record(one, 1, &[("title", "Pump", before)]);
        store
            .apply_pull(&[old_copy], Cursor(1), Some("00ff"))
            .expect("pull");
        let resent = store.finish_reset().expect("finish");

        assert_eq!(resent.notes, 1, "note two, whole: {resent:?}");
        assert_eq!(
            store.get_note(one).expect("one").title,
            "Pump 3 (seal replaced)",
            "the newer title stays"
        );
        assert_eq!(store.get_note(two).expect("two").body, "closed at 14:00");
        let one_queue = store.outbox_for(&one.to_string()).expect("outbox");
        assert!(
            one_queue.iter().any(|e| e.base_version == Some(1)
                && e.fields
                    .get("title")
                    .is_some_and(|t| t.value == "Pump 3 (seal replaced)")),
            "the lost title goes up again on the server's version: {one_queue:?}"
        );
        let two_queue = store.outbox_for(&two.to_string()).expect("outbox");
        assert!(
            two_queue.iter().any(|e| e.base_version.is_none()
                && e.fields
                    .get("body")
                    .is_some_and(|b| b.value == "closed at 14:00")),
            "the note the server lacks goes up as new: {two_queue:?}"
        );
        assert!(!store.reset_in_progress().expect("flag"));
        assert_eq!(
            store.cursor_chain().expect("chain").as_deref(),
            Some("00ff")
        );
    }

    /// What the server says was purged leaves the device during a re-download too.
    #[test]
    fn a_reconcile_still_removes_what_the_server_purged() {
        let (_dir, store) = temp_store();
        let gone = synced_note(&store, "Old checklist", "");
        store.begin_reset(None).expect("begin");
        let mut purged = record(gone, 2, &[]);
        purged.purged = true;
        store.apply_pull(&[purged], Cursor(2), None).expect("pull");
        let resent = store.finish_reset().expect("finish");
        assert_eq!(resent.total(), 0);
        assert!(
            store.get_note(gone).is_err(),
            "purged on the server, gone here"
        );
        assert_eq!(store.local_status().expect("status").pending, 0);
    }

    /// An acknowledged change counts as lost until a pull brings its record back at or after
    /// the cursor it was committed at; the reply of a resend, for a commit the pull cursor is
    /// already past, does not count.
    fn base_body(store: &Store, id: NoteId) -> Option<String> {
        store
            .read(|c, p| {
                use crate::error::SqlContext;
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT body FROM note_base WHERE note_id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .at(p)
            })
            .expect("base")
    }

    /// Schema V10: a synced note is its own base until it is edited here, so a first sync does
    /// not write every body twice; the first local edit keeps the server's text as the base,
    /// and a merge still finds it.
    #[test]
    fn the_base_copy_is_kept_only_while_a_note_has_edits_waiting() {
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "line one\nmiddle\nline two\n");
        assert_eq!(
            base_body(&store, id),
            None,
            "acknowledged with nothing waiting: no copy"
        );

        store
            .update_note(
                id,
                NotePatch {
                    body: Some("line one, checked\nmiddle\nline two\n".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        assert_eq!(
            base_body(&store, id).as_deref(),
            Some("line one\nmiddle\nline two\n"),
            "the first local edit keeps the server's text as the base"
        );

        // Another device changed the other line: the merge against the kept base is clean.
        let theirs = record(
            id,
            2,
            &[(
                "body",
                "line one\nmiddle\nline two, replaced\n",
                other_device_at(1_000),
            )],
        );
        let applied = store.apply_pull_page(&[theirs], Cursor(2)).expect("pull");
        assert_eq!(applied.conflicts, Vec::<NoteId>::new());
        assert_eq!(
            store.get_note(id).expect("note").body,
            "line one, checked\nmiddle\nline two, replaced\n"
        );
        assert_eq!(
            base_body(&store, id).as_deref(),
            Some("line one\nmiddle\nline two, replaced\n"),
            "the merge waits to go: the server's text is its base"
        );

        // The merge reaches the server: nothing waits, the copy goes.
        ack_all(&store);
        assert_eq!(base_body(&store, id), None);
        assert_eq!(store.local_status().expect("status").pending, 0);
    }

    #[test]
    fn an_acknowledged_change_is_unconfirmed_until_a_pull_brings_it_back() {
        let (_dir, store) = temp_store();
        let id = synced_note(&store, "Pump", "");
        assert_eq!(store.lost_acknowledged().expect("count"), 1);
        let own = stamp(&store, id, "title");
        store
            .apply_pull(&[record(id, 1, &[("title", "Pump", own)])], Cursor(1), None)
            .expect("pull");
        assert_eq!(store.lost_acknowledged().expect("count"), 0);

        // A resend answered as a duplicate of a commit this device pulled past long ago.
        store
            .update_note(
                id,
                NotePatch {
                    title: Some("Pump 3".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        store
            .apply_pull_page(&[], Cursor(5))
            .expect("the cursor moves on");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        let old = Outcome::Applied {
            version: Version(2),
            cursor: Cursor(4),
            clamped_skew_ms: None,
        };
        store
            .apply_push_results(&sent, &[reply(&sent[0], old)])
            .expect("ack");
        assert_eq!(store.lost_acknowledged().expect("count"), 0);
    }

    /// Found by the simulation with server restores (seed 8037): a notebook this device knows
    /// only by its deletion (its creation was lost with a restore before it reached the
    /// server, another device's delete got through) has no name. Sending it again whole sent
    /// an empty name, which the server refuses: a failed entry no user could fix. A field
    /// nobody ever wrote (stamp zero) is not sent.
    #[test]
    fn a_notebook_known_only_by_its_deletion_is_sent_again_without_a_name() {
        let (_dir, store) = temp_store();
        let id = outpost_protocol::NotebookId::new();
        let deleted_at: Stamp = "0193496c8a7b-00000001-00000000000000000000000000abcdef"
            .parse()
            .expect("stamp");
        let deletion = record_of(
            Entity::Notebook,
            id.to_string(),
            3,
            vec![("deleted", Value::Bool(true), deleted_at)],
        );
        store
            .apply_pull(&[deletion], Cursor(3), None)
            .expect("pull");

        store.begin_reset(None).expect("begin");
        store.apply_pull(&[], Cursor(1), None).expect("pull");
        let resent = store.finish_reset().expect("finish");
        assert_eq!(resent.notebooks, 1, "{resent:?}");
        let queued = store.outbox_for(&id.to_string()).expect("outbox");
        assert_eq!(queued.len(), 1, "{queued:?}");
        let fields: Vec<&str> = queued[0].fields.keys().map(String::as_str).collect();
        assert_eq!(fields, ["deleted"], "only what was ever written goes up");
    }
}
