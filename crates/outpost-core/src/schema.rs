//! The local database schema: versioned migrations, run at start-up (also with a non-empty
//! outbox). A migration is append-only history: never edit one that has shipped; add the next.
//! Pragmas are not here: they belong to the connection (see `db::open_connection`).

use rusqlite_migration::{M, Migrations};

/// Version 1: notes with per-field stamps, the base copy, notebooks, preferences, the outbox,
/// conflicts and sync metadata.
const V1: &str = r#"
CREATE TABLE notebooks (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    name_stamp     TEXT NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    deleted_stamp  TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    server_version INTEGER
) STRICT;

-- `seq` is the rowid alias: stable across VACUUM, so the full-text index can point at it.
CREATE TABLE notes (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    notebook_id     TEXT,
    title           TEXT NOT NULL DEFAULT '',
    body            TEXT NOT NULL DEFAULT '',
    preview         TEXT NOT NULL DEFAULT '',
    tags            TEXT NOT NULL DEFAULT '[]',
    pinned          INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
    archived        INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    deleted         INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    notebook_stamp  TEXT NOT NULL,
    title_stamp     TEXT NOT NULL,
    body_stamp      TEXT NOT NULL,
    tags_stamp      TEXT NOT NULL,
    pinned_stamp    TEXT NOT NULL,
    archived_stamp  TEXT NOT NULL,
    deleted_stamp   TEXT NOT NULL,
    server_version  INTEGER
) STRICT;

CREATE INDEX notes_list ON notes (deleted, archived, pinned DESC, updated_ms DESC, id DESC);
CREATE INDEX notes_by_notebook
    ON notes (notebook_id, deleted, archived, pinned DESC, updated_ms DESC, id DESC);

-- The last version of each note the server acknowledged: the common ancestor of merges.
CREATE TABLE note_base (
    note_id     TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    notebook_id TEXT,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    tags        TEXT NOT NULL,
    pinned      INTEGER NOT NULL,
    archived    INTEGER NOT NULL,
    deleted     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE prefs (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    stamp      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- One row per mutation waiting for the server. `seq` is the send order. An entry leaves only
-- when the server acknowledged it (L2); `mutation_id` never changes (L3); an entry with
-- `sent = 1` is never rewritten.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    mutation_id     TEXT NOT NULL UNIQUE,
    mutation_number INTEGER NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    entity          TEXT NOT NULL CHECK (entity IN ('note', 'notebook', 'pref')),
    entity_id       TEXT NOT NULL,
    fields          TEXT NOT NULL,
    base_version    INTEGER,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'failed')),
    sent            INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1))
);
CREATE INDEX outbox_by_entity ON outbox (entity_id, state);

CREATE TABLE conflicts (
    note_id       TEXT PRIMARY KEY,
    base_body     TEXT NOT NULL,
    mine_body     TEXT NOT NULL,
    theirs_body   TEXT NOT NULL,
    theirs_version INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE sync_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- The sync state of a note is derived, never stored: conflict, else failed, else pending,
-- else synced.
CREATE VIEW note_state AS
SELECT n.*,
       CASE
         WHEN EXISTS (SELECT 1 FROM conflicts c WHERE c.note_id = n.id) THEN 'conflict'
         WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = n.id AND o.state = 'failed')
           THEN 'failed'
         WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = n.id) THEN 'pending'
         ELSE 'synced'
       END AS sync_state
FROM notes n;
"#;

/// Version 2: full-text search over title and body (FTS5, external content on `notes`).
const V2: &str = r#"
CREATE VIRTUAL TABLE notes_fts USING fts5(
    title, body,
    content = 'notes', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
END;
CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, body)
    VALUES ('delete', old.seq, old.title, old.body);
END;
-- Only title and body edits touch the index: pinning a 10 MB note must not re-index it.
CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, body ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, body)
    VALUES ('delete', old.seq, old.title, old.body);
    INSERT INTO notes_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
END;
INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');
"#;

/// Version 3: the outbox by state and age. The status (pending and failed counts, the oldest
/// waiting entry) is read after every queued edit; without it each read scanned the whole outbox,
/// bodies included, while holding the reader (40 ms with 100,000 entries waiting).
const V3: &str = r#"
CREATE INDEX outbox_by_state ON outbox (state, created_ms);
"#;

/// Version 4: the recent sync errors, for the diagnostics screen ("what went wrong overnight"),
/// a failure repeated cycle after cycle kept as one row with its count and time span.
const V4: &str = r#"
CREATE TABLE sync_errors (
    seq      INTEGER PRIMARY KEY,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    count    INTEGER NOT NULL DEFAULT 1,
    message  TEXT NOT NULL
) STRICT;
"#;

/// Version 5: the outbox by state in send order. V3's `(state, created_ms)` made SQLite, on a
/// database never analysed (as every user's is), read the whole queue and sort it by `seq` for
/// each batch it took: a 100,000-note offline backlog pushed in quadratic time (540 µs a note at
/// 100,000, 148 at 10,000). In `seq` order the batch is the index's first rows, and the status's
/// oldest waiting entry is the first one of each state.
const V5: &str = r#"
DROP INDEX outbox_by_state;
CREATE INDEX outbox_by_state ON outbox (state, seq);
"#;

/// Version 6: what a re-download from a server has confirmed so far. When it ends, a record
/// this device holds that the server did not send is one the server lost (a restored backup, a
/// re-created database): it is sent again, never removed (L4). Kept in a table, not memory, so a
/// re-download cut short by a crash or the network resumes without forgetting what came.
///
/// And the changes the server acknowledged that no pull has brought back yet, by the cursor it
/// committed each at: one still missing when a pull has read past it (or a pull that ends
/// before it) is one the server lost, with the push's reply, to a restore (see `sync::apply`).
const V6: &str = r#"
CREATE TABLE reconcile_seen (
    entity TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (entity, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE unconfirmed (
    entity TEXT NOT NULL,
    id     TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    PRIMARY KEY (entity, id)
) STRICT, WITHOUT ROWID;
"#;

/// Version 7: the device's running digest of what it holds (see `sync::digest`), so "Up to date"
/// is checked against the server's sums without hashing every note each time. Triggers mark a
/// record whose digest may have changed; the next check hashes only those and moves each
/// bucket's count and sum by the difference. Plain SQL triggers, so a change made by any tool
/// (the sqlite3 shell, a test that damages a database) is noticed too. Every record starts
/// marked: the first check sums up a database upgraded from V6.
const V7: &str = r#"
CREATE TABLE digest_records (
    entity TEXT NOT NULL,
    id     TEXT NOT NULL,
    digest INTEGER NOT NULL,
    PRIMARY KEY (entity, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE digest_buckets (
    bucket INTEGER PRIMARY KEY,
    count  INTEGER NOT NULL DEFAULT 0,
    sum    INTEGER NOT NULL DEFAULT 0
) STRICT;
WITH RECURSIVE n(b) AS (SELECT 0 UNION ALL SELECT b + 1 FROM n WHERE b < 255)
INSERT INTO digest_buckets (bucket) SELECT b FROM n;
CREATE TABLE digest_dirty (
    entity TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (entity, id)
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO digest_dirty (entity, id)
    SELECT 'note', id FROM notes
    UNION ALL SELECT 'notebook', id FROM notebooks
    UNION ALL SELECT 'pref', key FROM prefs;

CREATE TRIGGER notes_digest_insert AFTER INSERT ON notes BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'note', new.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'note' AND id = new.id);
END;
-- Only the columns a digest covers: the preview or updated_ms alone change nothing.
CREATE TRIGGER notes_digest_update AFTER UPDATE OF id, notebook_id, title, body, tags, pinned,
    archived, deleted, notebook_stamp, title_stamp, body_stamp, tags_stamp, pinned_stamp,
    archived_stamp, deleted_stamp, server_version ON notes BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'note', old.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'note' AND id = old.id);
    INSERT INTO digest_dirty (entity, id) SELECT 'note', new.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'note' AND id = new.id);
END;
CREATE TRIGGER notes_digest_delete AFTER DELETE ON notes BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'note', old.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'note' AND id = old.id);
END;
CREATE TRIGGER notebooks_digest_insert AFTER INSERT ON notebooks BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'notebook', new.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'notebook' AND id = new.id);
END;
CREATE TRIGGER notebooks_digest_update AFTER UPDATE OF id, name, name_stamp, deleted,
    deleted_stamp, server_version ON notebooks BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'notebook', old.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'notebook' AND id = old.id);
    INSERT INTO digest_dirty (entity, id) SELECT 'notebook', new.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'notebook' AND id = new.id);
END;
CREATE TRIGGER notebooks_digest_delete AFTER DELETE ON notebooks BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'notebook', old.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'notebook' AND id = old.id);
END;
-- `INSERT OR REPLACE` deletes without firing the delete trigger; the insert marks the key.
-- (The marks test before inserting rather than `INSERT OR IGNORE`: an outer statement's
-- conflict clause, an upsert's too, overrides a trigger's.)
CREATE TRIGGER prefs_digest_insert AFTER INSERT ON prefs BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'pref', new.key
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'pref' AND id = new.key);
END;
CREATE TRIGGER prefs_digest_update AFTER UPDATE OF key, value, stamp ON prefs BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'pref', old.key
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'pref' AND id = old.key);
    INSERT INTO digest_dirty (entity, id) SELECT 'pref', new.key
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'pref' AND id = new.key);
END;
CREATE TRIGGER prefs_digest_delete AFTER DELETE ON prefs BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'pref', old.key
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'pref' AND id = old.key);
END;
"#;

/// Version 8: the notes this device deleted for good, so that one coming back from the server
/// (edited meanwhile on another device, whose edit wins; or a server restored from a backup
/// older than the delete) is named to the user instead of reappearing silently.
const V8: &str = r#"
CREATE TABLE purged_here (
    id        TEXT PRIMARY KEY,
    purged_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#;

/// Version 9: the search index written once per transaction, not once per note. FTS5 writes
/// its pending terms out as a new segment at every statement savepoint, and a trigger on
/// `notes` made each note's statement one: a pull that applied 1,000 edits wrote 1,000 tiny
/// segments and spent most of its time merging them (a 1,000-edit hop 2x slower than it need
/// be). The triggers now only note which rows changed, with the title and body the index holds
/// (the first change in a transaction keeps them); `Store::write` brings the index up to date
/// in two statements before it commits (`search_index::flush`).
const V9: &str = r#"
CREATE TABLE fts_pending (
    seq     INTEGER PRIMARY KEY,
    title   TEXT,
    body    TEXT,
    indexed INTEGER NOT NULL
) STRICT;
DROP TRIGGER notes_fts_insert;
DROP TRIGGER notes_fts_delete;
DROP TRIGGER notes_fts_update;
-- Each mark tests before inserting rather than `INSERT OR IGNORE`: an outer statement's
-- conflict clause (the pull's upsert of a note) overrides a trigger's.
CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO fts_pending (seq, title, body, indexed) SELECT new.seq, NULL, NULL, 0
        WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE seq = new.seq);
END;
CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
    INSERT INTO fts_pending (seq, title, body, indexed) SELECT old.seq, old.title, old.body, 1
        WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE seq = old.seq);
END;
CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, body ON notes BEGIN
    INSERT INTO fts_pending (seq, title, body, indexed) SELECT old.seq, old.title, old.body, 1
        WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE seq = old.seq);
END;
"#;

/// Version 10: the base copy kept only while a note differs from it (issue 15). A synced note
/// without a local edit is its own base (its row at `server_version`), so a first sync of
/// 100,000 notes no longer writes each body twice. The first local edit of a value copies the
/// row as the server left it into `note_base`, before the edit lands; the sync code writes or
/// drops the copy as replies and pulls settle the note. A write by the sync code moves
/// `server_version` (or sets the base itself), so the trigger leaves it alone.
const V10: &str = r#"
CREATE TRIGGER notes_keep_base BEFORE UPDATE OF notebook_id, title, body, tags, pinned, archived,
    deleted ON notes
    WHEN old.server_version IS NOT NULL AND new.server_version IS old.server_version
BEGIN
    INSERT INTO note_base (note_id, version, notebook_id, title, body, tags, pinned, archived,
        deleted)
    SELECT old.id, old.server_version, old.notebook_id, old.title, old.body, old.tags,
        old.pinned, old.archived, old.deleted
    WHERE NOT EXISTS (SELECT 1 FROM note_base WHERE note_id = old.id);
END;
"#;

/// Version 11: attachments (issue 18). An attachment is a record like a notebook (fields merged
/// last-writer-wins, kept here with their stamps as the protocol's JSON, the columns beside it
/// for queries) naming a blob by its SHA-256; `blobs` is what this device knows of each blob:
/// whether its bytes are here and which transfer it waits for. The bytes themselves are files
/// beside the database (`attachments::BlobFiles`), never in it.
///
/// The outbox is rebuilt to take the new entity (SQLite cannot change a CHECK in place), its
/// rows, order and sequence kept; the view that reads it is dropped and made again around it.
const V11: &str = r#"
CREATE TABLE attachments (
    id             TEXT PRIMARY KEY,
    note_id        TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL,
    media_type     TEXT NOT NULL,
    name           TEXT NOT NULL,
    deleted        INTEGER NOT NULL,
    fields         TEXT NOT NULL,
    server_version INTEGER,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_by_note ON attachments (note_id);
CREATE INDEX attachments_by_blob ON attachments (sha256);

CREATE TABLE blobs (
    sha256          TEXT PRIMARY KEY,
    size            INTEGER NOT NULL,
    here            INTEGER NOT NULL DEFAULT 0 CHECK (here IN (0, 1)),
    upload          TEXT NOT NULL DEFAULT 'none'
                        CHECK (upload IN ('none', 'waiting', 'done', 'failed')),
    sent            INTEGER NOT NULL DEFAULT 0,
    download        TEXT NOT NULL DEFAULT 'none' CHECK (download IN ('none', 'wanted', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    updated_ms      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX blobs_by_upload ON blobs (upload, updated_ms);
CREATE INDEX blobs_by_download ON blobs (download, updated_ms);

CREATE TRIGGER attachments_digest_insert AFTER INSERT ON attachments BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'attachment', new.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'attachment' AND id = new.id);
END;
CREATE TRIGGER attachments_digest_update AFTER UPDATE OF id, fields, server_version
    ON attachments BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'attachment', old.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'attachment' AND id = old.id);
    INSERT INTO digest_dirty (entity, id) SELECT 'attachment', new.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'attachment' AND id = new.id);
END;
CREATE TRIGGER attachments_digest_delete AFTER DELETE ON attachments BEGIN
    INSERT INTO digest_dirty (entity, id) SELECT 'attachment', old.id
        WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE entity = 'attachment' AND id = old.id);
END;

DROP VIEW note_state;
CREATE TABLE outbox_v11 (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    mutation_id     TEXT NOT NULL UNIQUE,
    mutation_number INTEGER NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    entity          TEXT NOT NULL CHECK (entity IN ('note', 'notebook', 'pref', 'attachment')),
    entity_id       TEXT NOT NULL,
    fields          TEXT NOT NULL,
    base_version    INTEGER,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'failed')),
    sent            INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1))
);
INSERT INTO outbox_v11 SELECT seq, mutation_id, mutation_number, name, schema_version, entity,
    entity_id, fields, base_version, created_ms, updated_ms, attempts, next_attempt_ms,
    last_error, state, sent FROM outbox;
-- A seq is never handed out twice, also across the rebuild (AUTOINCREMENT's promise).
DELETE FROM sqlite_sequence WHERE name = 'outbox_v11';
INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_v11', seq FROM sqlite_sequence
    WHERE name = 'outbox';
DROP TABLE outbox;
ALTER TABLE outbox_v11 RENAME TO outbox;
CREATE INDEX outbox_by_entity ON outbox (entity_id, state);
CREATE INDEX outbox_by_state ON outbox (state, seq);
CREATE VIEW note_state AS
SELECT n.*,
       CASE
         WHEN EXISTS (SELECT 1 FROM conflicts c WHERE c.note_id = n.id) THEN 'conflict'
         WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = n.id AND o.state = 'failed')
           THEN 'failed'
         WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = n.id) THEN 'pending'
         ELSE 'synced'
       END AS sync_state
FROM notes n;
"#;

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
        M::up(V8),
        M::up(V9),
        M::up(V10),
        M::up(V11),
    ])
}

/// The schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = 11;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
        let fresh = rusqlite::Connection::open_in_memory().expect("db");
        let pending = migrations().pending_migrations(&fresh).expect("count");
        assert_eq!(i64::from(pending), LATEST_VERSION);
    }
}
