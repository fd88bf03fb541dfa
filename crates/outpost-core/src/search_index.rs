//! The full-text index of notes (FTS5 `notes_fts`, schema V9): kept up to date in the same
//! transaction as the notes, from the `fts_pending` rows the schema's triggers leave.

use crate::error::{Result, SqlContext};
use rusqlite::Connection;
use std::path::Path;

/// Brings the search index up to date with the notes changed in this transaction (schema V9):
/// takes out what the index holds for them, then indexes what they hold now. Two statements
/// for any number of notes, so FTS5 writes one segment per transaction; called by
/// `Store::write` before each commit, and at start-up for what a write by other means (a
/// `sqlite3` session, an older build mid-upgrade) left.
pub(crate) fn flush(conn: &Connection, path: &Path) -> Result<()> {
    let pending: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM fts_pending)")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .at(path)?;
    if !pending {
        return Ok(());
    }
    for sql in [
        "INSERT INTO notes_fts (notes_fts, rowid, title, body)
             SELECT 'delete', seq, title, body FROM fts_pending WHERE indexed",
        "INSERT INTO notes_fts (rowid, title, body)
             SELECT n.seq, n.title, n.body FROM fts_pending p JOIN notes n ON n.seq = p.seq",
        "DELETE FROM fts_pending",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .at(path)?;
    }
    Ok(())
}
