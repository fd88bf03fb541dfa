//! The doctor's repair, the executor: runs in SQL what `compare` decided, record by record in
//! one write transaction, skipping whatever changed on this device since the check.

use super::Repair;
use super::compare;
use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::store::{Store, Tx};
use crate::sync::verify;
use outpost_protocol::api::Record;
use outpost_protocol::digest::Key;
use outpost_protocol::mutation::names;
use outpost_protocol::{Entity, Fields, NoteId};

impl Store {
    /// Rewrites records from the server's current copies (see [`repair`]), in one transaction.
    pub fn repair_from_server(&self, records: &[Record]) -> Result<Repair> {
        self.write(|tx| {
            let mut done = Repair::default();
            for rec in records {
                if !tx.pending(&rec.id)?.is_empty() || tx.has_conflict(&rec.id)? {
                    done.skipped += 1;
                    continue;
                }
                for change in rec.fields.values() {
                    tx.observe(&change.stamp);
                }
                match rec.entity {
                    Entity::Note => tx.repair_note(rec, &mut done)?,
                    Entity::Notebook => {
                        let before = tx.notebook_fields(&rec.id)?;
                        tx.apply_notebook(rec, false)?;
                        tx.requeue_newer(Entity::Notebook, rec, before, &mut done)?;
                    }
                    Entity::Pref => {
                        let before = tx.pref_fields(&rec.id)?;
                        tx.apply_pref(rec, false)?;
                        tx.requeue_newer(Entity::Pref, rec, before, &mut done)?;
                    }
                    Entity::Attachment => {
                        let before = tx.attachment_fields(&rec.id)?.map(|(f, _)| f);
                        tx.apply_attachment(rec, false)?;
                        tx.requeue_newer(Entity::Attachment, rec, before, &mut done)?;
                    }
                }
            }
            Ok(done)
        })
    }

    /// Queues again, whole, records only this device has (see [`repair`]), in one transaction.
    pub fn requeue_for_server(&self, keys: &[Key]) -> Result<Repair> {
        self.write(|tx| {
            let mut done = Repair::default();
            for key in keys {
                if !tx.pending(&key.id)?.is_empty() || tx.has_conflict(&key.id)? {
                    done.skipped += 1;
                    continue;
                }
                if tx.requeue_whole(key)? {
                    done.requeued += 1;
                } else {
                    done.skipped += 1;
                }
            }
            Ok(done)
        })
    }
}

impl Tx<'_> {
    /// Queues a record this device holds, whole, as new to a server that does not know it (no
    /// base version). False if the device does not hold it either.
    pub(in crate::sync) fn requeue_whole(&mut self, key: &Key) -> Result<bool> {
        let (name, fields) = match key.entity {
            Entity::Note => (names::NOTE_PUT, self.load_local(&key.id)?.map(|l| l.fields)),
            Entity::Notebook => (names::NOTEBOOK_PUT, self.notebook_fields(&key.id)?),
            Entity::Pref => (names::PREF_PUT, self.pref_fields(&key.id)?),
            Entity::Attachment => (
                names::ATTACHMENT_PUT,
                self.attachment_fields(&key.id)?.map(|(f, _)| f),
            ),
        };
        let Some(fields) = fields.and_then(compare::written) else {
            return Ok(false);
        };
        let now = now_ms(self);
        self.forget_server_version(key)?;
        self.enqueue(key.entity, &key.id, name, fields, None, now)?;
        if let (Entity::Note, Ok(note)) = (key.entity, key.id.parse::<NoteId>()) {
            self.change.notes.push(note);
        }
        Ok(true)
    }
}

fn now_ms(tx: &mut Tx<'_>) -> i64 {
    i64::try_from(tx.stamp().physical_ms).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    pub(in crate::sync) fn has_conflict(&self, id: &str) -> Result<bool> {
        self.tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM conflicts WHERE note_id = ?1)")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .at(self.path)
    }

    pub(in crate::sync) fn notebook_fields(&self, id: &str) -> Result<Option<Fields>> {
        Ok(self.load_local_notebook(id)?.map(|l| l.fields))
    }

    pub(in crate::sync) fn pref_fields(&self, key: &str) -> Result<Option<Fields>> {
        use rusqlite::OptionalExtension;
        self.tx
            .prepare_cached("SELECT value, stamp FROM prefs WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
            })
            .at(self.path)?
            .map(|(value, stamp)| verify::pref_fields(key, &value, &stamp))
            .transpose()
    }

    /// A note from the server's copy ([`compare::repair_note`]); the base becomes the server's
    /// copy, and what this device held newer is queued again.
    fn repair_note(&mut self, rec: &Record, done: &mut Repair) -> Result<()> {
        let Ok(note_id) = rec.id.parse::<NoteId>() else {
            done.skipped += 1;
            return Ok(());
        };
        let now = now_ms(self);
        if rec.purged {
            for sql in [
                "DELETE FROM notes WHERE id = ?1",
                "DELETE FROM note_base WHERE note_id = ?1",
            ] {
                self.tx
                    .prepare_cached(sql)
                    .and_then(|mut s| s.execute([&rec.id]))
                    .at(self.path)?;
            }
            self.change.notes.push(note_id);
            done.removed += 1;
            return Ok(());
        }
        let local = match self.load_local(&rec.id) {
            Ok(local) => local,
            // A damaged cell (what the doctor found): the server's copy replaces the note.
            Err(Error::Data(what)) => {
                tracing::warn!(note = %rec.id, %what, "repairing an unreadable note from the server's copy");
                None
            }
            Err(e) => return Err(e),
        };
        let plan = compare::repair_note(local.as_ref().map(|l| &l.fields), &rec.fields);
        self.write_local(&rec.id, &plan.write, Some(rec.version.0), now)?;
        self.write_base(&rec.id, rec.version.0, &rec.fields)?;
        self.change.notes.push(note_id);
        done.rewritten += 1;
        if !plan.resend.is_empty() {
            self.enqueue(
                Entity::Note,
                &rec.id,
                names::NOTE_PUT,
                plan.resend,
                Some(rec.version.0),
                now,
            )?;
            done.requeued += 1;
        }
        Ok(())
    }

    /// After a last-writer-wins apply: queues the fields this device held newer than the
    /// server's copy, which the apply kept.
    fn requeue_newer(
        &mut self,
        entity: Entity,
        rec: &Record,
        before: Option<Fields>,
        done: &mut Repair,
    ) -> Result<()> {
        done.rewritten += 1;
        let newer = compare::newer_here(before, &rec.fields);
        if newer.is_empty() {
            return Ok(());
        }
        let name = entity.put_name();
        let now = now_ms(self);
        self.enqueue(entity, &rec.id, name, newer, Some(rec.version.0), now)?;
        done.requeued += 1;
        Ok(())
    }

    fn forget_server_version(&self, key: &Key) -> Result<()> {
        let sql = match key.entity {
            Entity::Note => "UPDATE notes SET server_version = NULL WHERE id = ?1",
            Entity::Notebook => "UPDATE notebooks SET server_version = NULL WHERE id = ?1",
            Entity::Attachment => "UPDATE attachments SET server_version = NULL WHERE id = ?1",
            Entity::Pref => return Ok(()),
        };
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([&key.id]))
            .at(self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{ack_all, temp_store};
    use crate::{NoteDraft, NoteId};
    use outpost_protocol::api::{Cursor, Version};
    use outpost_protocol::{FieldChange, Stamp};
    use serde_json::Value;

    /// A note created here and acknowledged at version 1; returns it and its first push.
    fn synced(store: &Store) -> (NoteId, Fields) {
        let note = store
            .create_note(NoteDraft {
                title: "Pump 4".into(),
                body: "Seal leaking".into(),
                ..Default::default()
            })
            .expect("create");
        let sent = ack_all(store);
        (note.id, sent[0].fields.clone())
    }

    fn record(id: NoteId, version: i64, fields: Fields) -> Record {
        Record {
            entity: Entity::Note,
            id: id.to_string(),
            version: Version(version),
            cursor: Cursor(version),
            purged: false,
            fields,
        }
    }

    #[test]
    fn a_repair_takes_the_servers_copy_but_keeps_and_resends_a_newer_local_field() {
        let (_dir, store) = temp_store();
        let (id, mut server) = synced(&store);
        // The server has a newer body (another device); this device has a newer title that
        // never reached its outbox (the damage the doctor exists for).
        let first = server["body"].stamp;
        let later = |ms: u64| Stamp {
            physical_ms: first.physical_ms + ms,
            ..first
        };
        server.insert(
            "body".into(),
            FieldChange {
                value: Value::String("Seal replaced".into()),
                stamp: later(10),
            },
        );
        store
            .write(|tx| {
                tx.tx
                    .execute(
                        "UPDATE notes SET title = 'Pump 4 (renamed)', title_stamp = ?2
                         WHERE id = ?1",
                        rusqlite::params![id.to_string(), later(20).to_string()],
                    )
                    .at(tx.path)?;
                Ok(())
            })
            .expect("damage");

        let done = store
            .repair_from_server(&[record(id, 2, server)])
            .expect("repair");
        assert_eq!((done.rewritten, done.requeued, done.skipped), (1, 1, 0));
        let note = store.get_note(id).expect("note");
        assert_eq!(note.body, "Seal replaced", "the server's newer body");
        assert_eq!(
            note.title, "Pump 4 (renamed)",
            "the newer local title stays"
        );
        let queued = store.outbox_for(&id.to_string()).expect("outbox");
        assert_eq!(queued.len(), 1);
        assert_eq!(
            queued[0].fields.keys().collect::<Vec<_>>(),
            vec!["title"],
            "only the title goes back to the server"
        );
        assert_eq!(queued[0].base_version, Some(2));
    }

    #[test]
    fn a_note_with_a_pending_edit_is_left_alone_and_a_purged_one_removed() {
        let (_dir, store) = temp_store();
        let (kept, fields) = synced(&store);
        let (gone, _) = synced(&store);
        store
            .update_note(
                kept,
                crate::NotePatch {
                    body: Some("typed since the check".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        let purged = Record {
            purged: true,
            fields: Fields::new(),
            ..record(gone, 3, Fields::new())
        };
        let done = store
            .repair_from_server(&[record(kept, 2, fields), purged])
            .expect("repair");
        assert_eq!((done.skipped, done.removed), (1, 1));
        assert_eq!(
            store.get_note(kept).expect("kept").body,
            "typed since the check"
        );
        assert_eq!(
            store.get_note(gone).expect_err("purged").code(),
            "not_found"
        );
    }
}
