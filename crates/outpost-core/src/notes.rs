//! Notes: create, partial update, Trash (soft delete and restore), purge, get, list and search.
//! Every change stamps each field it touches and queues exactly those fields in the outbox, in
//! the same transaction (L1).

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::model::{
    ListQuery, Note, NoteDraft, NotePage, NotePatch, NoteSummary, NoteView, SearchHit, SnippetPart,
    SyncState,
};
use crate::store::{Store, Tx};
use outpost_protocol::mutation::names;
use outpost_protocol::{
    Entity, FieldChange, Fields, MAX_BODY_BYTES, MAX_TITLE_BYTES, NoteId, NotebookId,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value as JsonValue;
use std::path::Path;

pub use outpost_protocol::fields::{MAX_TAG_CHARS, MAX_TAGS};
/// Characters of body text shown in a list.
const PREVIEW_CHARS: usize = 160;

/// The note fields that sync (`outpost_protocol::fields::NOTE`, in its order), each with its
/// column and stamp column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Notebook,
    Title,
    Body,
    Tags,
    Pinned,
    Archived,
    Deleted,
}

impl Field {
    const ALL: [Field; 7] = [
        Field::Notebook,
        Field::Title,
        Field::Body,
        Field::Tags,
        Field::Pinned,
        Field::Archived,
        Field::Deleted,
    ];

    /// The name on the wire and the column name (the variants are in the order of
    /// `outpost_protocol::fields::NOTE`).
    fn name(self) -> &'static str {
        outpost_protocol::fields::NOTE[self as usize].name
    }

    fn stamp_column(self) -> &'static str {
        match self {
            Field::Notebook => "notebook_stamp",
            Field::Title => "title_stamp",
            Field::Body => "body_stamp",
            Field::Tags => "tags_stamp",
            Field::Pinned => "pinned_stamp",
            Field::Archived => "archived_stamp",
            Field::Deleted => "deleted_stamp",
        }
    }
}

/// One field's new value, as JSON for the outbox and as SQL for the row.
pub(crate) struct Edit {
    field: Field,
    json: JsonValue,
    sql: SqlValue,
}

impl Edit {
    pub(crate) fn text(field: Field, s: String) -> Edit {
        Edit {
            field,
            json: JsonValue::String(s.clone()),
            sql: SqlValue::Text(s),
        }
    }

    fn flag(field: Field, b: bool) -> Edit {
        Edit {
            field,
            json: JsonValue::Bool(b),
            sql: SqlValue::Integer(i64::from(b)),
        }
    }

    fn notebook(id: Option<NotebookId>) -> Edit {
        Edit {
            field: Field::Notebook,
            json: id.map_or(JsonValue::Null, |i| JsonValue::String(i.to_string())),
            sql: id.map_or(SqlValue::Null, |i| SqlValue::Text(i.to_string())),
        }
    }

    fn tags(tags: Vec<String>) -> Edit {
        let json = JsonValue::from(tags);
        Edit {
            field: Field::Tags,
            sql: SqlValue::Text(json.to_string()),
            json,
        }
    }
}

fn check_title(title: &str) -> Result<()> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(Error::TooLarge {
            field: "title",
            size: title.len(),
            limit: MAX_TITLE_BYTES,
        });
    }
    Ok(())
}

fn check_body(body: &str) -> Result<()> {
    check_body_len(body.len())
}

pub(crate) fn check_body_len(len: usize) -> Result<()> {
    if len > MAX_BODY_BYTES {
        return Err(Error::TooLarge {
            field: "body",
            size: len,
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Trims, drops empties and duplicates (case-insensitively), keeps the user's order.
fn normalize_tags(tags: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().trim_start_matches('#').trim().to_owned();
        if tag.is_empty() || out.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            continue;
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(Error::Invalid(format!(
                "tag {:?}… is longer than {MAX_TAG_CHARS} characters",
                tag.chars().take(20).collect::<String>()
            )));
        }
        out.push(tag);
    }
    if out.len() > MAX_TAGS {
        return Err(Error::Invalid(format!(
            "a note can have at most {MAX_TAGS} tags, got {}",
            out.len()
        )));
    }
    Ok(out)
}

pub(crate) fn preview(body: &str) -> String {
    let mut out = String::with_capacity(PREVIEW_CHARS + 8);
    let mut count = 0;
    for word in body.split_whitespace() {
        let word = word.trim_start_matches(['#', '>', '*', '-']);
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= PREVIEW_CHARS {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

const NOTE_COLUMNS: &str = "id, notebook_id, title, body, tags, pinned, archived, deleted,
    created_ms, updated_ms, server_version, sync_state";
const SUMMARY_COLUMNS: &str = "id, notebook_id, title, preview, tags, pinned, archived, deleted,
    created_ms, updated_ms, sync_state";

fn conversion(i: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, msg.into())
}

fn note_id_at(row: &Row<'_>, i: usize) -> rusqlite::Result<NoteId> {
    let s: String = row.get(i)?;
    s.parse()
        .map_err(|e: outpost_protocol::IdError| conversion(i, e.to_string()))
}

fn notebook_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<NotebookId>> {
    let s: Option<String> = row.get(i)?;
    s.map(|s| {
        s.parse()
            .map_err(|e: outpost_protocol::IdError| conversion(i, e.to_string()))
    })
    .transpose()
}

pub(crate) fn tags_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    let s: String = row.get(i)?;
    serde_json::from_str(&s)
        .map_err(|e| conversion(i, format!("the tags cell holds no list of tags: {e}")))
}

fn state_at(row: &Row<'_>, i: usize) -> rusqlite::Result<SyncState> {
    let s: String = row.get(i)?;
    SyncState::parse(&s).ok_or_else(|| conversion(i, format!("unknown sync state {s:?}")))
}

fn note_from_row(row: &Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: note_id_at(row, 0)?,
        notebook_id: notebook_at(row, 1)?,
        title: row.get(2)?,
        body: row.get(3)?,
        tags: tags_at(row, 4)?,
        pinned: row.get(5)?,
        archived: row.get(6)?,
        deleted: row.get(7)?,
        created_ms: row.get(8)?,
        updated_ms: row.get(9)?,
        server_version: row.get(10)?,
        sync_state: state_at(row, 11)?,
    })
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<NoteSummary> {
    Ok(NoteSummary {
        id: note_id_at(row, 0)?,
        notebook_id: notebook_at(row, 1)?,
        title: row.get(2)?,
        preview: row.get(3)?,
        tags: tags_at(row, 4)?,
        pinned: row.get(5)?,
        archived: row.get(6)?,
        deleted: row.get(7)?,
        created_ms: row.get(8)?,
        updated_ms: row.get(9)?,
        sync_state: state_at(row, 10)?,
    })
}

pub(crate) fn load_note(conn: &Connection, path: &Path, id: NoteId) -> Result<Note> {
    let sql = format!("SELECT {NOTE_COLUMNS} FROM note_state WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id.to_string()], note_from_row).optional())
        .at(path)?
        .ok_or_else(|| Error::not_found("note", id))
}

/// Runs the checks [`Store::import_notes`] runs on each draft, so that a caller importing many
/// files can set one bad file aside instead of failing the whole batch.
pub(crate) fn check_draft(draft: &NoteDraft) -> Result<()> {
    check_title(&draft.title)?;
    check_body(&draft.body)?;
    normalize_tags(draft.tags.clone()).map(drop)
}

/// A draft whose title, body and tags passed the checks.
struct CheckedDraft {
    draft: NoteDraft,
    tags: Vec<String>,
}

impl CheckedDraft {
    fn new(mut draft: NoteDraft) -> Result<Self> {
        check_title(&draft.title)?;
        check_body(&draft.body)?;
        let tags = normalize_tags(std::mem::take(&mut draft.tags))?;
        Ok(CheckedDraft { draft, tags })
    }
}

impl Tx<'_> {
    /// Inserts a new note and queues every field of it.
    fn insert_note(&mut self, checked: CheckedDraft) -> Result<NoteId> {
        let CheckedDraft { draft, tags } = checked;
        let id = NoteId::new();
        self.check_notebook(draft.notebook_id)?;
        let stamp = self.stamp();
        let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
        let s = stamp.to_string();
        let tags_json = JsonValue::from(tags);
        self.tx
            .prepare_cached(
                "INSERT INTO notes (id, notebook_id, title, body, preview, tags, pinned,
                     created_ms, updated_ms, notebook_stamp, title_stamp, body_stamp,
                     tags_stamp, pinned_stamp, archived_stamp, deleted_stamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?9, ?9, ?9, ?9, ?9, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    id.to_string(),
                    draft.notebook_id.map(|n| n.to_string()),
                    draft.title,
                    draft.body,
                    preview(&draft.body),
                    tags_json.to_string(),
                    draft.pinned,
                    now_ms,
                    s,
                ])
            })
            .at(self.path)?;
        let mut fields = Fields::new();
        let mut put = |f: Field, value: JsonValue| {
            fields.insert(f.name().to_owned(), FieldChange { value, stamp });
        };
        put(
            Field::Notebook,
            draft
                .notebook_id
                .map_or(JsonValue::Null, |n| JsonValue::String(n.to_string())),
        );
        put(Field::Title, JsonValue::String(draft.title));
        put(Field::Body, JsonValue::String(draft.body));
        put(Field::Tags, tags_json);
        put(Field::Pinned, JsonValue::Bool(draft.pinned));
        put(Field::Archived, JsonValue::Bool(false));
        put(Field::Deleted, JsonValue::Bool(false));
        debug_assert_eq!(fields.len(), Field::ALL.len());
        self.enqueue(
            Entity::Note,
            &id.to_string(),
            names::NOTE_PUT,
            fields,
            None,
            now_ms,
        )?;
        self.change.notes.push(id);
        Ok(id)
    }

    fn check_notebook(&self, id: Option<NotebookId>) -> Result<()> {
        let Some(id) = id else { return Ok(()) };
        let live: Option<bool> = self
            .tx
            .prepare_cached("SELECT deleted = 0 FROM notebooks WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
            .at(self.path)?;
        match live {
            Some(true) => Ok(()),
            _ => Err(Error::not_found("notebook", id)),
        }
    }

    /// Writes `edits` to the note row with one fresh stamp and queues them. Edits that do not
    /// change the stored value are dropped first, so a no-op save queues nothing.
    pub(crate) fn apply_edits(&mut self, note: &Note, edits: Vec<Edit>) -> Result<bool> {
        let current = |f: Field| -> JsonValue {
            match f {
                Field::Notebook => note
                    .notebook_id
                    .map_or(JsonValue::Null, |i| JsonValue::String(i.to_string())),
                Field::Title => JsonValue::String(note.title.clone()),
                Field::Body => JsonValue::String(note.body.clone()),
                Field::Tags => JsonValue::from(note.tags.clone()),
                Field::Pinned => JsonValue::Bool(note.pinned),
                Field::Archived => JsonValue::Bool(note.archived),
                Field::Deleted => JsonValue::Bool(note.deleted),
            }
        };
        let edits: Vec<Edit> = edits
            .into_iter()
            .filter(|e| match e.field {
                // Comparing a 10 MB body through JSON would copy it twice; compare the text.
                Field::Body => e.json.as_str() != Some(note.body.as_str()),
                f => e.json != current(f),
            })
            .collect();
        if edits.is_empty() {
            return Ok(false);
        }
        let stamp = self.stamp();
        let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
        let stamp_text = stamp.to_string();

        let mut sets = Vec::with_capacity(edits.len() * 2 + 2);
        let mut values: Vec<SqlValue> = Vec::with_capacity(edits.len() * 2 + 3);
        for e in &edits {
            sets.push(format!("{} = ?", e.field.name()));
            values.push(e.sql.clone());
            sets.push(format!("{} = ?", e.field.stamp_column()));
            values.push(SqlValue::Text(stamp_text.clone()));
            if e.field == Field::Body {
                sets.push("preview = ?".into());
                values.push(SqlValue::Text(preview(e.json.as_str().unwrap_or_default())));
            }
        }
        sets.push("updated_ms = ?".into());
        values.push(SqlValue::Integer(now_ms));
        values.push(SqlValue::Text(note.id.to_string()));
        let sql = format!("UPDATE notes SET {} WHERE id = ?", sets.join(", "));
        self.tx
            .prepare_cached(&sql)
            .and_then(|mut s| s.execute(params_from_iter(values)))
            .at(self.path)?;

        let fields: Fields = edits
            .into_iter()
            .map(|e| {
                (
                    e.field.name().to_owned(),
                    FieldChange {
                        value: e.json,
                        stamp,
                    },
                )
            })
            .collect();
        let id = note.id.to_string();
        self.enqueue(
            Entity::Note,
            &id,
            names::NOTE_PUT,
            fields,
            note.server_version,
            now_ms,
        )?;
        self.change.notes.push(note.id);
        Ok(true)
    }
}

impl Store {
    /// Creates a note; its outbox entry carries every field.
    pub fn create_note(&self, draft: NoteDraft) -> Result<Note> {
        let draft = CheckedDraft::new(draft)?;
        self.write(|tx| {
            let id = tx.insert_note(draft)?;
            load_note(&tx.tx, tx.path, id)
        })
    }

    /// Creates many notes in one transaction (an import): all or none, each with its outbox
    /// entry. Every draft is checked before anything is written. Import in batches of a few
    /// thousand: a batch holds the writer for its whole length.
    pub fn import_notes(&self, drafts: Vec<NoteDraft>) -> Result<Vec<NoteId>> {
        let drafts = drafts
            .into_iter()
            .map(CheckedDraft::new)
            .collect::<Result<Vec<_>>>()?;
        self.write(|tx| {
            drafts
                .into_iter()
                .map(|draft| tx.insert_note(draft))
                .collect()
        })
    }

    /// Changes only the fields given; a patch that changes nothing writes nothing.
    pub fn update_note(&self, id: NoteId, patch: NotePatch) -> Result<Note> {
        let mut edits = Vec::new();
        if let Some(title) = patch.title {
            check_title(&title)?;
            edits.push(Edit::text(Field::Title, title));
        }
        if let Some(body) = patch.body {
            check_body(&body)?;
            edits.push(Edit::text(Field::Body, body));
        }
        if let Some(tags) = patch.tags {
            edits.push(Edit::tags(normalize_tags(tags)?));
        }
        if let Some(pinned) = patch.pinned {
            edits.push(Edit::flag(Field::Pinned, pinned));
        }
        if let Some(archived) = patch.archived {
            edits.push(Edit::flag(Field::Archived, archived));
        }
        let notebook = patch.notebook_id;
        self.write(|tx| {
            let note = load_note(&tx.tx, tx.path, id)?;
            if let Some(nb) = notebook {
                tx.check_notebook(nb)?;
                edits.push(Edit::notebook(nb));
            }
            tx.apply_edits(&note, edits)?;
            load_note(&tx.tx, tx.path, id)
        })
    }

    /// Moves a note to the Trash (a soft delete that syncs).
    pub fn trash_note(&self, id: NoteId) -> Result<Note> {
        self.set_deleted(id, true)
    }

    /// Brings a note back from the Trash.
    pub fn restore_note(&self, id: NoteId) -> Result<Note> {
        self.set_deleted(id, false)
    }

    fn set_deleted(&self, id: NoteId, deleted: bool) -> Result<Note> {
        self.write(|tx| {
            let note = load_note(&tx.tx, tx.path, id)?;
            tx.apply_edits(&note, vec![Edit::flag(Field::Deleted, deleted)])?;
            load_note(&tx.tx, tx.path, id)
        })
    }

    /// Deletes a note in the Trash for good. The server keeps a tombstone.
    pub fn purge_note(&self, id: NoteId) -> Result<()> {
        self.write(|tx| {
            let note = load_note(&tx.tx, tx.path, id)?;
            if !note.deleted {
                return Err(Error::Invalid(format!(
                    "note {id} is not in the Trash; move it there before deleting it for good"
                )));
            }
            purge_in(tx, &note)
        })
    }

    /// Deletes every note in the Trash for good; returns how many.
    pub fn empty_trash(&self) -> Result<usize> {
        self.write(|tx| {
            let ids: Vec<String> = tx
                .tx
                .prepare_cached("SELECT id FROM notes WHERE deleted = 1")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .at(tx.path)?;
            for id in &ids {
                let id: NoteId = id
                    .parse()
                    .map_err(|e: outpost_protocol::IdError| Error::Data(e.to_string()))?;
                let note = load_note(&tx.tx, tx.path, id)?;
                purge_in(tx, &note)?;
            }
            Ok(ids.len())
        })
    }

    pub fn get_note(&self, id: NoteId) -> Result<Note> {
        self.read(|conn, path| load_note(conn, path, id))
    }

    /// Finds the one note whose id starts or ends with `part` (at least 4 hex digits). UUIDv7
    /// ids start with their creation time, so notes made together share a prefix: lists show
    /// the random last group (12 digits) instead, and this accepts either end.
    pub fn resolve_note_id(&self, part: &str) -> Result<NoteId> {
        let part = part.trim().to_ascii_lowercase();
        if let Ok(id) = part.parse::<NoteId>() {
            return Ok(id);
        }
        if part.len() < 4 || !part.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Error::Invalid(format!(
                "{part:?} is not a note id (give at least 4 hex digits of it)"
            )));
        }
        self.read(|conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM notes WHERE id LIKE ?1 || '%' OR id LIKE '%' || ?1 LIMIT 2",
                )
                .at(path)?;
            let ids = stmt
                .query_map([&part], |r| r.get::<_, String>(0))
                .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
                .at(path)?;
            match ids.as_slice() {
                [one] => one
                    .parse()
                    .map_err(|e: outpost_protocol::IdError| Error::Data(e.to_string())),
                [] => Err(Error::not_found("note", part)),
                _ => Err(Error::Invalid(format!(
                    "{part:?} matches more than one note; give more of the id"
                ))),
            }
        })
    }

    /// One page of notes: pinned first, then most recently changed. A page starts after the
    /// `after` token of the previous one, or `offset` rows in (the window's virtual list jumps
    /// straight to where the scrollbar was dropped; the list index makes that a skip over
    /// index entries, not rows).
    pub fn list_notes(&self, query: &ListQuery) -> Result<NotePage> {
        if query.limit == 0 || query.limit > ListQuery::MAX_LIMIT {
            return Err(Error::Invalid(format!(
                "limit must be 1 to {}, got {}",
                ListQuery::MAX_LIMIT,
                query.limit
            )));
        }
        if query.after.is_some() && query.offset > 0 {
            return Err(Error::Invalid(
                "give either a page token (after) or an offset, not both".into(),
            ));
        }
        let mut sql = format!("SELECT {SUMMARY_COLUMNS}, pinned FROM note_state WHERE ");
        let mut args = list_filter(query, &mut sql);
        if let Some(token) = &query.after {
            let (pinned, updated, id) = parse_page_token(token)?;
            sql.push_str(" AND (pinned, updated_ms, id) < (?, ?, ?)");
            args.extend([
                SqlValue::Integer(pinned),
                SqlValue::Integer(updated),
                SqlValue::Text(id),
            ]);
        }
        sql.push_str(" ORDER BY pinned DESC, updated_ms DESC, id DESC LIMIT ? OFFSET ?");
        // One more than asked tells whether there is a next page.
        args.push(SqlValue::Integer(i64::from(query.limit) + 1));
        args.push(SqlValue::Integer(i64::from(query.offset)));
        self.read(|conn, path| {
            let mut stmt = conn.prepare_cached(&sql).at(path)?;
            let mut items = stmt
                .query_map(params_from_iter(args), summary_from_row)
                .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
                .at(path)?;
            let next = if items.len() > query.limit as usize {
                items.truncate(query.limit as usize);
                items.last().map(|last| {
                    format!("{}:{}:{}", i64::from(last.pinned), last.updated_ms, last.id)
                })
            } else {
                None
            };
            Ok(NotePage { items, next })
        })
    }

    /// How many notes a list holds (its `limit`, `after` and `offset` aside): the length of the
    /// window's scrollable list.
    pub fn count_notes(&self, query: &ListQuery) -> Result<i64> {
        let mut sql = String::from("SELECT count(*) FROM notes WHERE ");
        let args = list_filter(query, &mut sql);
        self.read(|conn, path| {
            conn.prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params_from_iter(args), |r| r.get(0)))
                .at(path)
        })
    }

    /// Full-text search over title and body, best matches first (title hits weigh 4x), with
    /// highlighted snippets. Ordering by FTS5's own `rank` lets the index sort, so snippets and
    /// sync states are computed only for the rows returned (see BENCHMARKS.md).
    /// Words match as prefixes, so it works while the user is still typing. Notes in the Trash
    /// are left out.
    pub fn search_notes(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        let Some(query) = fts_query(text) else {
            return Ok(Vec::new());
        };
        let limit = limit.clamp(1, ListQuery::MAX_LIMIT);
        let sql = format!(
            "SELECT {cols}, highlight(notes_fts, 0, char(57344), char(57345)),
                    snippet(notes_fts, 1, char(57344), char(57345), '…', 24)
             FROM notes_fts JOIN note_state n ON n.seq = notes_fts.rowid
             WHERE notes_fts MATCH ?1 AND notes_fts.rank MATCH 'bm25(4.0, 1.0)'
               AND n.deleted = 0
             ORDER BY notes_fts.rank LIMIT ?2",
            cols = SUMMARY_COLUMNS
                .split(',')
                .map(|c| format!("n.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.read(|conn, path| {
            let mut stmt = conn.prepare_cached(&sql).at(path)?;
            let hits = stmt
                .query_map(params![query, limit], |row| {
                    Ok(SearchHit {
                        note: summary_from_row(row)?,
                        title: split_marks(&row.get::<_, String>(11)?),
                        snippet: split_marks(&row.get::<_, String>(12)?),
                    })
                })
                .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
                .at(path)?;
            Ok(hits)
        })
    }
}

/// Appends the WHERE conditions of a list (view, notebook, tag) to `sql`; returns their values.
fn list_filter(query: &ListQuery, sql: &mut String) -> Vec<SqlValue> {
    let mut args = Vec::new();
    sql.push_str(match query.view {
        NoteView::Active => "deleted = 0 AND archived = 0",
        NoteView::Archived => "deleted = 0 AND archived = 1",
        NoteView::Trash => "deleted = 1",
    });
    if let Some(nb) = query.notebook_id {
        sql.push_str(" AND notebook_id = ?");
        args.push(SqlValue::Text(nb.to_string()));
    }
    if let Some(tag) = &query.tag {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ? COLLATE NOCASE)");
        args.push(SqlValue::Text(
            tag.trim().trim_start_matches('#').to_owned(),
        ));
    }
    args
}

fn purge_in(tx: &mut Tx<'_>, note: &Note) -> Result<()> {
    let id = note.id.to_string();
    for sql in [
        "DELETE FROM notes WHERE id = ?1",
        "DELETE FROM note_base WHERE note_id = ?1",
        "DELETE FROM conflicts WHERE note_id = ?1",
    ] {
        tx.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([&id]))
            .at(tx.path)?;
    }
    let stamp = tx.stamp();
    let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
    tx.tx
        .prepare_cached(
            "INSERT INTO purged_here (id, purged_ms) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET purged_ms = excluded.purged_ms",
        )
        .and_then(|mut s| s.execute(rusqlite::params![id, now_ms]))
        .at(tx.path)?;
    let mut fields = Fields::new();
    fields.insert(
        Field::Deleted.name().to_owned(),
        FieldChange {
            value: JsonValue::Bool(true),
            stamp,
        },
    );
    tx.enqueue(
        Entity::Note,
        &id,
        names::NOTE_PURGE,
        fields,
        note.server_version,
        now_ms,
    )?;
    tx.remove_attachments_of(note.id)?;
    tx.change.notes.push(note.id);
    Ok(())
}

fn parse_page_token(token: &str) -> Result<(i64, i64, String)> {
    let bad = || Error::Invalid(format!("{token:?} is not a page token from this list"));
    let mut parts = token.splitn(3, ':');
    let pinned = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let updated = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let id: NoteId = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    Ok((pinned, updated, id.to_string()))
}

/// Turns what the user typed into an FTS5 query: every word must match, the last as a prefix
/// (search as you type). Each word is quoted, so FTS5 operators and stray quotes in the input
/// are plain text, never syntax errors.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let (last, rest) = words.split_last()?;
    let quote = |w: &str| format!("\"{}\"", w.replace('"', "\"\""));
    let mut parts: Vec<String> = rest.iter().map(|w| quote(w)).collect();
    parts.push(format!("{}*", quote(last)));
    Some(parts.join(" "))
}

/// Splits FTS5 highlight output (hits between U+E000 and U+E001) into parts.
fn split_marks(marked: &str) -> Vec<SnippetPart> {
    let mut parts = Vec::new();
    let mut hit = false;
    let mut current = String::new();
    for c in marked.chars() {
        match c {
            '\u{E000}' | '\u{E001}' => {
                if !current.is_empty() {
                    parts.push(SnippetPart {
                        text: std::mem::take(&mut current),
                        hit,
                    });
                }
                hit = c == '\u{E000}';
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        parts.push(SnippetPart { text: current, hit });
    }
    parts
}

#[cfg(test)]
mod tests;
