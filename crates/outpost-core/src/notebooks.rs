//! Notebooks: create, rename, delete (its notes stay, unfiled), list with note counts.

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::model::Notebook;
use crate::store::{Store, Tx};
use outpost_protocol::mutation::names;
use outpost_protocol::{Entity, FieldChange, Fields, NotebookId, Stamp};
use rusqlite::{OptionalExtension, params};
use serde_json::Value as JsonValue;

pub use outpost_protocol::fields::MAX_NOTEBOOK_NAME_CHARS;

fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid("a notebook needs a name".into()));
    }
    if name.chars().count() > MAX_NOTEBOOK_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "a notebook name has at most {MAX_NOTEBOOK_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

const NOTEBOOK_SQL: &str = "SELECT b.id, b.name, b.created_ms, b.updated_ms,
        (SELECT count(*) FROM notes n WHERE n.notebook_id = b.id AND n.deleted = 0)
     FROM notebooks b WHERE b.deleted = 0";

fn notebook_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notebook> {
    let id: String = r.get(0)?;
    Ok(Notebook {
        id: id.parse().map_err(|e: outpost_protocol::IdError| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        name: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
        note_count: r.get(4)?,
    })
}

impl Tx<'_> {
    fn name_taken(&self, name: &str, except: Option<NotebookId>) -> Result<bool> {
        self.tx
            .prepare_cached(
                "SELECT 1 FROM notebooks WHERE deleted = 0 AND name = ?1 COLLATE NOCASE
                 AND id IS NOT ?2 LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![name, except.map(|i| i.to_string())], |_| Ok(()))
                    .optional()
            })
            .map(|found| found.is_some())
            .at(self.path)
    }

    fn queue_notebook(&mut self, id: NotebookId, fields: Fields, stamp: Stamp) -> Result<()> {
        let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
        let version: Option<i64> = self
            .tx
            .prepare_cached("SELECT server_version FROM notebooks WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)))
            .at(self.path)?;
        self.enqueue(
            Entity::Notebook,
            &id.to_string(),
            names::NOTEBOOK_PUT,
            fields,
            version,
            now_ms,
        )?;
        self.change.notebooks.push(id);
        Ok(())
    }

    fn load_notebook(&self, id: NotebookId) -> Result<Notebook> {
        self.tx
            .prepare_cached(&format!("{NOTEBOOK_SQL} AND b.id = ?1"))
            .and_then(|mut s| s.query_row([id.to_string()], notebook_from_row).optional())
            .at(self.path)?
            .ok_or_else(|| Error::not_found("notebook", id))
    }
}

fn field(value: JsonValue, stamp: Stamp) -> FieldChange {
    FieldChange { value, stamp }
}

impl Store {
    pub fn create_notebook(&self, name: &str) -> Result<Notebook> {
        let name = clean_name(name)?;
        let id = NotebookId::new();
        self.write(|tx| {
            if tx.name_taken(&name, None)? {
                return Err(Error::Invalid(format!("a notebook named {name:?} exists")));
            }
            let stamp = tx.stamp();
            let s = stamp.to_string();
            let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
            tx.tx
                .prepare_cached(
                    "INSERT INTO notebooks (id, name, name_stamp, deleted_stamp, created_ms,
                         updated_ms)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?4)",
                )
                .and_then(|mut st| st.execute(params![id.to_string(), name, s, now_ms]))
                .at(tx.path)?;
            let fields = Fields::from([
                (
                    "name".to_owned(),
                    field(JsonValue::String(name.clone()), stamp),
                ),
                ("deleted".to_owned(), field(JsonValue::Bool(false), stamp)),
            ]);
            tx.queue_notebook(id, fields, stamp)?;
            tx.load_notebook(id)
        })
    }

    pub fn rename_notebook(&self, id: NotebookId, name: &str) -> Result<Notebook> {
        let name = clean_name(name)?;
        self.write(|tx| {
            let current = tx.load_notebook(id)?;
            if current.name == name {
                return Ok(current);
            }
            if tx.name_taken(&name, Some(id))? {
                return Err(Error::Invalid(format!("a notebook named {name:?} exists")));
            }
            let stamp = tx.stamp();
            let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
            tx.tx
                .prepare_cached(
                    "UPDATE notebooks SET name = ?2, name_stamp = ?3, updated_ms = ?4
                     WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![id.to_string(), name, stamp.to_string(), now_ms])
                })
                .at(tx.path)?;
            let fields = Fields::from([("name".to_owned(), field(JsonValue::String(name), stamp))]);
            tx.queue_notebook(id, fields, stamp)?;
            tx.load_notebook(id)
        })
    }

    /// Deletes a notebook. Its notes are kept and become unfiled (each a synced change), so
    /// deleting a notebook never deletes anyone's text.
    pub fn delete_notebook(&self, id: NotebookId) -> Result<()> {
        let notes: Vec<outpost_protocol::NoteId> = self.read(|conn, path| {
            conn.prepare_cached("SELECT id FROM notes WHERE notebook_id = ?1")
                .and_then(|mut s| {
                    s.query_map([id.to_string()], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .at(path)?
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|e: outpost_protocol::IdError| Error::Data(e.to_string()))
                })
                .collect()
        })?;
        self.write(|tx| {
            tx.load_notebook(id)?;
            let stamp = tx.stamp();
            let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
            tx.tx
                .prepare_cached(
                    "UPDATE notebooks SET deleted = 1, deleted_stamp = ?2, updated_ms = ?3
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id.to_string(), stamp.to_string(), now_ms]))
                .at(tx.path)?;
            let fields =
                Fields::from([("deleted".to_owned(), field(JsonValue::Bool(true), stamp))]);
            tx.queue_notebook(id, fields, stamp)?;
            Ok(())
        })?;
        // Each note moves in its own transaction through the normal write path; a crash half-way
        // leaves some notes pointing at a deleted notebook, which lists show as unfiled anyway.
        for note in notes {
            self.update_note(
                note,
                crate::NotePatch {
                    notebook_id: Some(None),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    pub fn list_notebooks(&self) -> Result<Vec<Notebook>> {
        self.read(|conn, path| {
            conn.prepare_cached(&format!("{NOTEBOOK_SQL} ORDER BY b.name COLLATE NOCASE"))
                .and_then(|mut s| {
                    s.query_map([], notebook_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .at(path)
        })
    }

    /// Finds a live notebook by exact id or by name (case-insensitive).
    pub fn find_notebook(&self, id_or_name: &str) -> Result<Notebook> {
        let key = id_or_name.trim();
        self.read(|conn, path| {
            conn.prepare_cached(&format!(
                "{NOTEBOOK_SQL} AND (b.id = ?1 OR b.name = ?1 COLLATE NOCASE) LIMIT 1"
            ))
            .and_then(|mut s| s.query_row([key], notebook_from_row).optional())
            .at(path)?
            .ok_or_else(|| Error::not_found("notebook", key))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::temp_store;
    use crate::{Error, ListQuery, NoteDraft};

    #[test]
    fn deleting_a_notebook_keeps_its_notes_unfiled() {
        let (_dir, store) = temp_store();
        let nb = store.create_notebook("Site visits").expect("create");
        let note = store
            .create_note(NoteDraft {
                notebook_id: Some(nb.id),
                title: "Pump 4".into(),
                ..Default::default()
            })
            .expect("note");
        assert_eq!(store.list_notebooks().expect("list")[0].note_count, 1);
        store.delete_notebook(nb.id).expect("delete");
        assert!(store.list_notebooks().expect("list").is_empty());
        let kept = store.get_note(note.id).expect("note survives");
        assert_eq!(kept.notebook_id, None);
        assert!(!kept.deleted);
        assert_eq!(
            store
                .list_notes(&ListQuery::default())
                .expect("list")
                .items
                .len(),
            1
        );
        // The notebook's deletion is queued, and the note's move coalesced into its entry.
        assert_eq!(
            store.outbox_for(&nb.id.to_string()).expect("outbox").len(),
            1
        );
        assert_eq!(
            store
                .outbox_for(&note.id.to_string())
                .expect("outbox")
                .len(),
            1
        );
    }

    #[test]
    fn names_are_unique_ignoring_case_and_trimmed() {
        let (_dir, store) = temp_store();
        store.create_notebook("  Work ").expect("create");
        let err = store.create_notebook("work").expect_err("duplicate");
        assert_eq!(err.code(), "invalid_input");
        assert!(store.find_notebook("WORK").is_ok());
        assert!(matches!(
            store.create_notebook("   "),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn a_note_cannot_go_into_a_missing_notebook() {
        let (_dir, store) = temp_store();
        let err = store
            .create_note(NoteDraft {
                notebook_id: Some(outpost_protocol::NotebookId::new()),
                ..Default::default()
            })
            .expect_err("refused");
        assert_eq!(err.code(), "not_found");
        assert!(
            store.outbox(10).expect("outbox").is_empty(),
            "nothing queued"
        );
    }
}
