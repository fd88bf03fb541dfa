//! The store: one writer connection (with the clock and the mutation counter, so every write
//! takes its stamps and numbers inside its own transaction), one reader connection, the change
//! stream, and the data-directory lock. Every write goes through [`Store::write`].

use crate::clock::{Hlc, SystemClock, WallClock};
use crate::db::{self, DirLock, Synchronous};
use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::meta;
use crate::model::Change;
use crate::schema;
use outpost_protocol::{ClientId, Stamp};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::broadcast;

/// How to open a store. The defaults are what the app uses.
#[derive(Clone)]
pub struct StoreOptions {
    pub synchronous: Synchronous,
    pub wall_clock: Arc<dyn WallClock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::default(),
            wall_clock: Arc::new(SystemClock),
        }
    }
}

struct Writer {
    conn: Connection,
    clock: Hlc,
    next_mutation_number: i64,
}

/// The local database of one device. `Send + Sync`: share it in an `Arc`.
pub struct Store {
    dir: PathBuf,
    db_path: PathBuf,
    client_id: ClientId,
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    changes: broadcast::Sender<Change>,
    /// The clock the HLC reads: the one a clock correction is measured against.
    wall: Arc<dyn WallClock>,
    /// Whether this process has measured the clock against the server's (see
    /// [`Store::clock_checked`]).
    clock_checked: AtomicBool,
    checkpointer: crate::checkpoint::Checkpointer,
    _lock: DirLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A write in progress: the transaction plus what a write needs to stamp and queue its change.
pub(crate) struct Tx<'a> {
    pub(crate) tx: Transaction<'a>,
    pub(crate) path: &'a Path,
    pub(crate) clock: &'a mut Hlc,
    next_mutation_number: &'a mut i64,
    pub(crate) change: Change,
}

impl Tx<'_> {
    /// A fresh clock stamp for an edit made in this transaction.
    pub(crate) fn stamp(&mut self) -> Stamp {
        self.clock.now()
    }

    /// The clock correction in use (server minus device, ms).
    pub(crate) fn clock_offset_ms(&self) -> i64 {
        self.clock.offset_ms()
    }

    /// Moves the clock past a stamp received from the server.
    pub(crate) fn observe(&mut self, stamp: &Stamp) -> crate::clock::Observed {
        self.clock.observe(stamp)
    }

    /// The next mutation number of this device (monotonic; rolled-back writes leave gaps).
    pub(crate) fn take_mutation_number(&mut self) -> i64 {
        let n = *self.next_mutation_number;
        *self.next_mutation_number += 1;
        n
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock rolled its transaction back (Transaction's Drop), so the
    // connection is still consistent: carry on rather than poison every later call.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens the data directory `dir` (creating it if needed) with the default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(dir, StoreOptions::default())
    }

    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Error::ReadOnly { path: dir.clone() }
            }
            _ => Error::Io {
                path: dir.clone(),
                source,
            },
        })?;
        let lock = db::lock_data_dir(&dir)?;
        let db_path = db::db_path(&dir);
        let mut conn = db::open_connection(&db_path, options.synchronous)?;
        migrate(&mut conn, &db_path)?;
        {
            // One transaction: the index must never lose a note's terms without gaining its
            // new ones.
            let tx = conn.transaction().at(&db_path)?;
            crate::search_index::flush(&tx, &db_path)?;
            tx.commit().at(&db_path)?;
        }
        // SQLite's advice for a long-lived connection: let it analyse, within a bounded budget,
        // the tables whose statistics are missing or stale. The hot queries are written to take
        // the right index without statistics (see `query_plans`); this keeps the rest sound.
        conn.execute_batch("PRAGMA analysis_limit = 400; PRAGMA optimize = 0x10002;")
            .map_err(|e| Error::from_sqlite(&db_path, e))?;
        let (client_id, last_stamp, next_mutation_number) = meta::init_device(&mut conn, &db_path)?;
        let reader = db::open_connection(&db_path, options.synchronous)?;
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {};",
            crate::checkpoint::BACKSTOP_PAGES
        ))
        .map_err(|e| Error::from_sqlite(&db_path, e))?;
        let checkpointer = crate::checkpoint::Checkpointer::start(&db_path, options.synchronous)?;
        let mut clock = Hlc::new(client_id, options.wall_clock.clone(), last_stamp);
        // A device whose clock is off stamps in server time from the start, also offline after
        // a restart: without the correction, a slow device's edits would lose to older ones until
        // it next reached the server. (If the user fixes the clock meanwhile, the old correction
        // holds until the next sync replaces it; the server clamps what that puts ahead.)
        let offset = meta::get(&conn, &db_path, meta::CLOCK_OFFSET)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        clock.set_offset_ms(offset);
        tracing::info!(dir = %dir.display(), %client_id, "opened store");
        Ok(Store {
            dir,
            db_path,
            client_id,
            writer: Mutex::new(Writer {
                conn,
                clock,
                next_mutation_number,
            }),
            reader: Mutex::new(reader),
            changes: broadcast::channel(256).0,
            wall: options.wall_clock,
            clock_checked: AtomicBool::new(false),
            checkpointer,
            _lock: lock,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// The data directory (the database and the attachments' blobs are in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A stream of committed changes. A slow receiver that lags gets `Lagged` and should
    /// re-read everything.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Runs `f` in one immediate transaction: commits on `Ok`, rolls back on `Err`. The clock's
    /// last stamp and the mutation counter are saved in the same transaction, and the change is
    /// announced only after the commit.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.writer);
        let Writer {
            conn,
            clock,
            next_mutation_number,
        } = &mut *guard;
        let path = self.db_path.as_path();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(path)?;
        let mut ctx = Tx {
            tx,
            path,
            clock,
            next_mutation_number,
            change: Change::default(),
        };
        let out = f(&mut ctx)?;
        let Tx {
            tx,
            clock,
            next_mutation_number,
            change,
            ..
        } = ctx;
        crate::search_index::flush(&tx, path)?;
        meta::save_counters(&tx, path, clock.last(), *next_mutation_number)?;
        tx.commit().at(path)?;
        self.checkpointer.committed();
        if !change.is_empty() {
            // No receiver is fine: nobody is watching.
            let _ = self.changes.send(change);
        }
        Ok(out)
    }

    /// Runs `f` on the reader connection (sees every committed write).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection, &Path) -> Result<T>) -> Result<T> {
        let conn = lock(&self.reader);
        f(&conn, &self.db_path)
    }

    /// Takes the server's clock (server minus device, in ms), just measured, for
    /// [`Store::set_clock_offset`]: true when this clock is found well ahead, and what it
    /// stamped ahead must be brought back in a write.
    pub(crate) fn take_clock_offset(&self, offset_ms: i64) -> bool {
        self.clock_checked.store(true, Ordering::Relaxed);
        let mut writer = lock(&self.writer);
        if writer.clock.found_ahead_by(offset_ms) {
            return true;
        }
        writer.clock.learn_offset_ms(offset_ms);
        false
    }

    /// Whether this process has measured its clock against the server's yet. Until it has,
    /// stamps follow the device's own clock (with the correction saved last time), and the
    /// engine asks the server for its time before it sends anything.
    pub fn clock_checked(&self) -> bool {
        self.clock_checked.load(Ordering::Relaxed)
    }

    /// This device's wall clock, uncorrected (ms since the Unix epoch): what the server's time is
    /// compared with to learn the correction.
    pub fn wall_clock_ms(&self) -> u64 {
        self.wall.now_ms()
    }

    /// The correction in use: what the status shows as this device's clock skew.
    pub fn clock_offset_ms(&self) -> i64 {
        lock(&self.writer).clock.offset_ms()
    }

    /// Makes every commit so far durable against power loss (an fsync of the WAL). The sync
    /// engine calls it before sending the outbox, so that nothing the server has seen can be
    /// rolled back on this device by a power cut under `synchronous = NORMAL`.
    pub fn durable_barrier(&self) -> Result<()> {
        let guard = lock(&self.writer);
        let path = self.db_path.as_path();
        let conn = &guard.conn;
        let restore: String = conn
            .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
            .at(path)?
            .to_string();
        conn.execute_batch("PRAGMA synchronous = FULL").at(path)?;
        let result = conn
            .execute(
                "INSERT INTO sync_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [
                    meta::BARRIER_MS.to_owned(),
                    SystemClock.now_ms().to_string(),
                ],
            )
            .at(path);
        conn.execute_batch(&format!("PRAGMA synchronous = {restore}"))
            .at(path)?;
        result.map(|_| ())
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .at(path)?;
    if found > schema::LATEST_VERSION {
        return Err(Error::TooNew {
            path: path.to_path_buf(),
            found,
            known: schema::LATEST_VERSION,
        });
    }
    if found < schema::LATEST_VERSION {
        tracing::info!(from = found, to = schema::LATEST_VERSION, db = %path.display(), "migrating schema");
    }
    schema::migrations().to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => Error::from_sqlite(path, err),
        other => Error::Migration(other),
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A store in a fresh temp dir (kept alive by the returned guard).
    pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open store");
        (dir, store)
    }

    /// Sends what is queued and has the server apply all of it, at version 1: the device's
    /// changes are on the server now. Returns what was sent.
    pub(crate) fn ack_all(store: &Store) -> Vec<crate::OutboxEntry> {
        use outpost_protocol::api::{Cursor, MutationNumber, MutationResult, Outcome, Version};
        let sent = store.take_batch(100, usize::MAX).expect("batch");
        let replies: Vec<MutationResult> = sent
            .iter()
            .map(|e| MutationResult {
                id: e.mutation_id,
                number: MutationNumber(e.mutation_number),
                outcome: Outcome::Applied {
                    version: Version(1),
                    cursor: Cursor(1),
                    clamped_skew_ms: None,
                },
            })
            .collect();
        store.apply_push_results(&sent, &replies).expect("ack");
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ListQuery, NoteDraft};

    fn schema_of(conn: &Connection) -> Vec<(String, String, String)> {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        let mut rows: Vec<(String, String, String)> = conn
            .prepare(
                "SELECT type, name, coalesce(sql, '') FROM sqlite_master
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .expect("schema");
        rows.push(("user_version".into(), version.to_string(), String::new()));
        rows
    }

    /// A database written by the first release (schema 1), with a note and its queued
    /// mutation, is upgraded at start-up: same schema as a fresh one, nothing lost, and the
    /// old note is searchable.
    #[test]
    fn a_database_upgraded_step_by_step_equals_a_fresh_one_and_keeps_its_outbox() {
        let old = tempfile::tempdir().expect("dir");
        {
            let mut conn = Connection::open(db::db_path(old.path())).expect("v1 db");
            schema::migrations()
                .to_version(&mut conn, 1)
                .expect("to v1");
            conn.execute_batch(
                "INSERT INTO notes (id, title, body, created_ms, updated_ms, notebook_stamp,
                     title_stamp, body_stamp, tags_stamp, pinned_stamp, archived_stamp,
                     deleted_stamp)
                 VALUES ('0190a1b2-0000-7000-8000-000000000001', 'Valve log',
                     'pressure relief checked', 1, 1, 's', 's', 's', 's', 's', 's', 's');
                 INSERT INTO outbox (mutation_id, mutation_number, name, schema_version, entity,
                     entity_id, fields, created_ms, updated_ms)
                 VALUES ('0190a1b2-0000-7000-8000-0000000000aa', 7, 'note.put', 1, 'note',
                     '0190a1b2-0000-7000-8000-000000000001', '{}', 1, 1);",
            )
            .expect("v1 data");
        }
        let upgraded = Store::open(old.path()).expect("upgrade at start-up");
        let fresh_dir = tempfile::tempdir().expect("dir");
        let fresh = Store::open(fresh_dir.path()).expect("fresh");
        let a = upgraded.read(|c, _| Ok(schema_of(c))).expect("schema");
        let b = fresh.read(|c, _| Ok(schema_of(c))).expect("schema");
        assert_eq!(a, b);

        let outbox = upgraded.outbox(10).expect("outbox");
        assert_eq!(outbox.len(), 1, "the queued mutation survived the upgrade");
        assert_eq!(outbox[0].mutation_number, 7);
        let hits = upgraded.search_notes("relief", 10).expect("search");
        assert_eq!(
            hits.len(),
            1,
            "notes written before search existed are indexed"
        );
        // New mutations number after the ones still queued.
        let note = upgraded
            .create_note(NoteDraft::default())
            .expect("create after upgrade");
        let entry = upgraded.outbox_for(&note.id.to_string()).expect("outbox");
        assert_eq!(entry[0].mutation_number, 8);
        // The outbox was rebuilt (V11) with its send order: the new entry goes after it.
        assert!(entry[0].seq > outbox[0].seq);
        assert_eq!(
            upgraded
                .list_notes(&ListQuery::default())
                .expect("list")
                .items
                .len(),
            2
        );
    }
}
