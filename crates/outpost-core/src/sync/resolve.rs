//! What the user does about sync problems: conflicts (keep mine, keep theirs, or edited text)
//! and dead letters (retry, or discard and go back to the server's version).

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::store::Store;
use outpost_protocol::mutation::names;
use outpost_protocol::{Entity, FieldChange, Fields, MutationId, NoteId};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

/// An open conflict: both sides of a body edit, and their common ancestor.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Conflict {
    pub note_id: NoteId,
    pub title: String,
    pub base: String,
    pub mine: String,
    pub theirs: String,
    pub theirs_version: i64,
    pub created_ms: i64,
}

/// How to resolve a conflict. As JSON: `{"kind": "mine"}`, `{"kind": "theirs"}` or
/// `{"kind": "text", "text": "…"}` (the merge view's edited result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum Resolution {
    Mine,
    Theirs,
    Text(String),
}

impl Store {
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.read(|conn, path| {
            conn.prepare_cached(
                "SELECT c.note_id, coalesce(n.title, ''), c.base_body, c.mine_body, c.theirs_body,
                        c.theirs_version, c.created_ms
                 FROM conflicts c LEFT JOIN notes n ON n.id = c.note_id ORDER BY c.created_ms",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    let id: String = r.get(0)?;
                    Ok((
                        id,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .at(path)?
            .into_iter()
            .map(
                |(id, title, base, mine, theirs, theirs_version, created_ms)| {
                    Ok(Conflict {
                        note_id: id
                            .parse()
                            .map_err(|e: outpost_protocol::IdError| Error::Data(e.to_string()))?,
                        title,
                        base,
                        mine,
                        theirs,
                        theirs_version,
                        created_ms,
                    })
                },
            )
            .collect()
        })
    }

    /// Closes a conflict with the chosen text, queued as an edit on the server's version, so
    /// it wins there.
    pub fn resolve_conflict(&self, id: NoteId, resolution: Resolution) -> Result<crate::Note> {
        crate::notes::check_body_len(match &resolution {
            Resolution::Text(t) => t.len(),
            _ => 0,
        })?;
        self.write(|tx| {
            let key = id.to_string();
            let row: Option<(String, String, i64)> = tx
                .tx
                .prepare_cached("SELECT mine_body, theirs_body, theirs_version FROM conflicts WHERE note_id = ?1")
                .and_then(|mut s| s.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional())
                .at(tx.path)?;
            let (mine, theirs, version) = row.ok_or_else(|| Error::not_found("conflict", id))?;
            let text = match resolution {
                Resolution::Mine => mine,
                Resolution::Theirs => theirs,
                Resolution::Text(t) => t,
            };
            let stamp = tx.stamp();
            let now = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
            tx.tx
                .prepare_cached(
                    "UPDATE notes SET body = ?2, preview = ?3, body_stamp = ?4, updated_ms = ?5 WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![key, text, crate::notes::preview(&text), stamp.to_string(), now])
                })
                .at(tx.path)?;
            tx.tx
                .prepare_cached("DELETE FROM conflicts WHERE note_id = ?1")
                .and_then(|mut s| s.execute([&key]))
                .at(tx.path)?;
            // Queued even when it is the server's own text: the server then takes this
            // stamp (the newer) and every replica, this one included, pulls the same record.
            // Unsent, the body here would keep a stamp the server never saw (found by the
            // simulation: the sync doctor reported the note as different for good).
            let fields = Fields::from([("body".to_owned(), FieldChange { value: Value::String(text), stamp })]);
            tx.requeue(Entity::Note, &key, names::NOTE_PUT, fields, Some(version), now)?;
            tx.change.notes.push(id);
            Ok(())
        })?;
        self.get_note(id)
    }

    /// Dead letters: changes the server refused, with its reason.
    pub fn dead_letters(&self) -> Result<Vec<crate::OutboxEntry>> {
        Ok(self
            .outbox(u32::MAX)?
            .into_iter()
            .filter(|e| e.state == "failed")
            .collect())
    }

    /// Sends a dead letter's change again, as a new mutation (the old id was answered). Fields
    /// the user edited since (the usual fix: open the note, correct it, retry) are left out, as
    /// the newer edit is already queued or sent; if nothing is left, the dead letter is simply
    /// closed.
    pub fn retry_dead_letter(&self, mutation_id: MutationId) -> Result<()> {
        let entry = self.dead_letter(mutation_id)?;
        self.write(|tx| {
            tx.close_dead_letter(&entry)?;
            let mut fields = entry.fields.clone();
            if entry.entity == Entity::Note
                && entry.name == names::NOTE_PUT
                && let Some(current) = tx.load_local(&entry.entity_id)?
            {
                fields.retain(|name, change| {
                    current
                        .fields
                        .get(name)
                        .is_none_or(|now| now.stamp <= change.stamp)
                });
            }
            if !fields.is_empty() {
                tx.requeue_entry(&entry, fields)?;
            }
            Ok(())
        })
    }

    /// Drops a dead letter; the note's fields it carried go back to the server's version.
    pub fn discard_dead_letter(&self, mutation_id: MutationId) -> Result<()> {
        let entry = self.dead_letter(mutation_id)?;
        self.write(|tx| {
            tx.close_dead_letter(&entry)?;
            if entry.entity == Entity::Note {
                tx.revert_to_base(&entry.entity_id, &entry.fields)?;
            }
            Ok(())
        })
    }

    fn dead_letter(&self, mutation_id: MutationId) -> Result<crate::OutboxEntry> {
        self.dead_letters()?
            .into_iter()
            .find(|e| e.mutation_id == mutation_id)
            .ok_or_else(|| Error::not_found("dead letter", mutation_id))
    }

    /// Finds a dead letter by its mutation id, or the unique one of a note id (prefix/suffix).
    pub fn resolve_dead_letter(&self, part: &str) -> Result<MutationId> {
        let part = part.trim().to_ascii_lowercase();
        let matches: Vec<MutationId> = self
            .dead_letters()?
            .into_iter()
            .filter(|e| {
                let m = e.mutation_id.to_string();
                m == part
                    || e.entity_id == part
                    || e.entity_id.ends_with(&part)
                    || m.ends_with(&part)
            })
            .map(|e| e.mutation_id)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::not_found("dead letter", part)),
            _ => Err(Error::Invalid(format!(
                "{part:?} matches several dead letters; give the mutation id"
            ))),
        }
    }
}

/// A base copy's fields: notebook, title, body, tags, pinned, archived, deleted.
type BaseRow = (Option<String>, String, String, String, bool, bool, bool);

impl crate::store::Tx<'_> {
    /// Takes a dead letter out of the outbox; its note, if it is one, shows the change.
    fn close_dead_letter(&mut self, entry: &crate::OutboxEntry) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM outbox WHERE mutation_id = ?1")
            .and_then(|mut s| s.execute([entry.mutation_id.to_string()]))
            .at(self.path)?;
        self.change.outbox = true;
        if entry.entity == Entity::Note
            && let Ok(id) = entry.entity_id.parse()
        {
            self.change.notes.push(id);
        }
        Ok(())
    }

    fn revert_to_base(&mut self, id: &str, fields: &Fields) -> Result<()> {
        let base: Option<BaseRow> = self
            .tx
            .prepare_cached(
                "SELECT notebook_id, title, body, tags, pinned, archived, deleted FROM note_base WHERE note_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
                    .optional()
            })
            .at(self.path)?;
        let Some((notebook, title, body, tags, pinned, archived, deleted)) = base else {
            // Never on the server: nothing to go back to; the local note stays as typed.
            return Ok(());
        };
        for name in fields.keys() {
            // Each synced field of a note is stored in the column of the same name.
            let value: rusqlite::types::Value = match name.as_str() {
                "notebook_id" => notebook.clone().into(),
                "title" => title.clone().into(),
                "body" => body.clone().into(),
                "tags" => tags.clone().into(),
                "pinned" => i64::from(pinned).into(),
                "archived" => i64::from(archived).into(),
                "deleted" => i64::from(deleted).into(),
                _ => continue,
            };
            self.tx
                .prepare_cached(&format!("UPDATE notes SET {name} = ?2 WHERE id = ?1"))
                .and_then(|mut s| s.execute(params![id, value]))
                .at(self.path)?;
        }
        if fields.contains_key("body") {
            self.tx
                .prepare_cached("UPDATE notes SET preview = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, crate::notes::preview(&body)]))
                .at(self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{ack_all, temp_store};
    use crate::{NoteDraft, NotePatch, SyncState};

    #[test]
    fn retrying_after_a_fix_sends_only_the_fields_the_user_did_not_fix() {
        let (_dir, store) = temp_store();
        let note = store
            .create_note(NoteDraft {
                title: "Pump 4".into(),
                tags: vec!["valves".into()],
                ..Default::default()
            })
            .expect("create");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        store
            .mark_failed(sent[0].mutation_id, "note.tags: too long")
            .expect("dead letter");
        // The user opens the note from the diagnostics screen and fixes the tags.
        store
            .update_note(
                note.id,
                NotePatch {
                    tags: Some(vec!["valve".into()]),
                    ..Default::default()
                },
            )
            .expect("fix");
        store.retry_dead_letter(sent[0].mutation_id).expect("retry");
        assert!(store.dead_letters().expect("dead").is_empty());
        let queued = store.outbox(10).expect("outbox");
        assert_eq!(
            queued.len(),
            1,
            "the retry joins the queued fix: {queued:?}"
        );
        let fields = &queued[0].fields;
        assert_eq!(
            fields["tags"].value,
            serde_json::json!(["valve"]),
            "the fix wins"
        );
        assert_eq!(
            fields["title"].value, "Pump 4",
            "the unfixed fields are sent again"
        );
        assert_eq!(
            store.get_note(note.id).expect("note").sync_state,
            SyncState::Pending
        );
    }

    #[test]
    fn retrying_when_every_field_was_edited_since_just_closes_the_dead_letter() {
        let (_dir, store) = temp_store();
        let note = store.create_note(NoteDraft::default()).expect("create");
        ack_all(&store);
        let edit = |title: &str| NotePatch {
            title: Some(title.into()),
            ..Default::default()
        };
        store.update_note(note.id, edit("bad")).expect("edit");
        let refused = store.take_batch(10, usize::MAX).expect("batch");
        store
            .mark_failed(refused[0].mutation_id, "refused")
            .expect("dead letter");
        store.update_note(note.id, edit("good")).expect("fix");
        // While a dead letter waits, later changes of the same note wait behind it.
        assert!(store.take_batch(10, usize::MAX).expect("batch").is_empty());
        store
            .retry_dead_letter(refused[0].mutation_id)
            .expect("retry");
        assert!(store.dead_letters().expect("dead").is_empty());
        let left = store.take_batch(10, usize::MAX).expect("batch");
        assert_eq!(left.len(), 1, "only the fix: {left:?}");
        assert_eq!(left[0].fields["title"].value, "good");
    }

    #[test]
    fn discarding_a_dead_letter_puts_its_fields_back_to_the_servers_version() {
        let (_dir, store) = temp_store();
        let note = store
            .create_note(NoteDraft {
                title: "Pump 4".into(),
                body: "seal worn".into(),
                ..Default::default()
            })
            .expect("create");
        // The server applied the creation: that is the base copy now.
        ack_all(&store);
        store
            .update_note(
                note.id,
                NotePatch {
                    title: Some("Pump 4!".into()),
                    body: Some("seal replaced".into()),
                    pinned: Some(true),
                    ..Default::default()
                },
            )
            .expect("edit");
        let edit = store.take_batch(10, usize::MAX).expect("batch");
        store
            .mark_failed(edit[0].mutation_id, "refused")
            .expect("dead letter");
        assert_eq!(
            store.get_note(note.id).expect("note").sync_state,
            SyncState::Failed
        );

        store
            .discard_dead_letter(edit[0].mutation_id)
            .expect("discard");
        let back = store.get_note(note.id).expect("note");
        assert_eq!(
            (back.title.as_str(), back.body.as_str(), back.pinned),
            ("Pump 4", "seal worn", false)
        );
        assert_eq!(back.sync_state, SyncState::Synced);
        assert!(store.dead_letters().expect("list").is_empty());
    }
}
