//! The embedded SQLite backend: one file in the data directory, no set-up. One writer
//! connection (SQLite has one writer at a time anyway) and a few readers, used from blocking
//! threads so the async runtime never waits on disk.
//!
//! `synchronous = FULL`: a push is acknowledged only after its commit reached the disk, because
//! the device deletes what the server acknowledged (L2).
//!
//! Group commit: pushes that arrive while the writer is busy wait in a queue, and the next
//! writer turn applies all of them (up to [`GROUP_MUTATIONS`]) in one transaction, each in its
//! own savepoint, then commits once: one disk sync for the group instead of one per push. Each
//! push is still all or nothing (a push refused as a whole rolls back its savepoint only), its
//! writes and the device's last mutation number still commit together (S1), and no push is
//! answered before the commit that holds it is on disk. A push alone waits for nothing.
//!
//! A data directory on a filesystem mounted read-only (a disk that failed into read-only, a
//! recovery boot) is served read-only: pulls, digests and sign-in checks work, and every push is
//! refused as on a full disk (503, "cannot write to its disk"), so devices keep their changes
//! and send them once the server runs on a writable disk again.

use super::{
    AccountDigest, AuditNoteRow, AuditResultRow, AuditRows, BlobRow, NewToken, Poke, PullPage,
    PulledRecord, PushOutcome, Result, Storage, StorageError, TokenOwner, column_i64, stored_u64,
};
use super::{HISTORY_DATABASE, HISTORY_EPOCH};
use crate::blobs::collect::{Removed, Sweep, SweepRow, Verdict, verdict};
use crate::plan::{self, Key, Loaded, StoredRecord};
use async_trait::async_trait;
use outpost_protocol::api::{
    AccountId, Cursor, History, Mutation, MutationNumber, Outcome, Version,
};
use outpost_protocol::blobs::BlobHash;
use outpost_protocol::{ClientId, Entity, MutationId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, oneshot};

const SCHEMA_V1: &str = r#"
CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    cursor            INTEGER NOT NULL DEFAULT 0,
    tombstone_horizon INTEGER NOT NULL DEFAULT 0,
    created_ms        INTEGER NOT NULL
) STRICT;
CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    client_id   TEXT NOT NULL,
    device_name TEXT,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
) STRICT;
CREATE TABLE clients (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    client_id    TEXT NOT NULL,
    last_number  INTEGER NOT NULL DEFAULT 0,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
) STRICT;
CREATE TABLE records (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    entity       TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    body_version INTEGER NOT NULL,
    cursor       INTEGER NOT NULL,
    purged       INTEGER NOT NULL,
    fields       TEXT NOT NULL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (account_id, entity, entity_id)
) STRICT;
CREATE UNIQUE INDEX records_by_cursor ON records (account_id, cursor);
CREATE INDEX records_owner ON records (entity, entity_id);
CREATE TABLE results (
    account_id  TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    number      INTEGER NOT NULL,
    mutation_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    PRIMARY KEY (account_id, client_id, number)
) STRICT, WITHOUT ROWID;
CREATE TABLE login_attempts (
    key       TEXT NOT NULL,
    window_ms INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (key, window_ms)
) STRICT, WITHOUT ROWID;
"#;

/// Version 2: the database's history (an identity made at creation, an epoch that a restore
/// moves on) and each account's chain of commits, so a device can tell a restored copy that has
/// moved on from the history its cursor came from.
const SCHEMA_V2: &str = r#"
CREATE TABLE server_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
ALTER TABLE accounts ADD COLUMN chain TEXT NOT NULL DEFAULT '';
CREATE TABLE commits (
    account_id TEXT NOT NULL,
    cursor     INTEGER NOT NULL,
    chain      TEXT NOT NULL,
    PRIMARY KEY (account_id, cursor)
) STRICT, WITHOUT ROWID;
"#;

/// Version 3: each account's running digest, bucket by bucket (see [`crate::plan::DigestDelta`]),
/// moved by every push in its transaction, so `GET /v1/sync/digest` reads 256 rows instead of
/// hashing the account. The migration sums up the records already stored.
const SCHEMA_V3: &str = r#"
CREATE TABLE digests (
    account_id     TEXT NOT NULL,
    bucket         INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    hi             INTEGER NOT NULL,
    lo             INTEGER NOT NULL,
    notes          INTEGER NOT NULL,
    notes_in_trash INTEGER NOT NULL,
    notebooks      INTEGER NOT NULL,
    prefs          INTEGER NOT NULL,
    tombstones     INTEGER NOT NULL,
    PRIMARY KEY (account_id, bucket)
) STRICT, WITHOUT ROWID;
"#;

/// Version 4, attachments: the digest counts attachment records, and the `blobs` table keeps
/// the bookkeeping of each account's blobs and uploads (see [`super::BlobRow`]); their bytes are
/// the blob store's, beside the database.
const SCHEMA_V4: &str = r#"
ALTER TABLE digests ADD COLUMN attachments INTEGER NOT NULL DEFAULT 0;
CREATE TABLE blobs (
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    received    INTEGER NOT NULL,
    complete    INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    chunks_lost INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (account_id, sha256)
) STRICT, WITHOUT ROWID;
"#;

/// Version 5, collection: since when a complete blob has been found unreferenced (NULL while
/// an attachment names it; see [`crate::blobs::collect`]).
const SCHEMA_V5: &str = r#"
ALTER TABLE blobs ADD COLUMN unreferenced_ms INTEGER;
"#;

/// Adds digest deltas to an account's buckets, as a push does.
const ADD_DIGEST: &str = "INSERT INTO digests (account_id, bucket, count, hi, lo, notes,
         notes_in_trash, notebooks, prefs, attachments, tombstones)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (account_id, bucket) DO UPDATE SET count = count + excluded.count,
         hi = hi + excluded.hi, lo = lo + excluded.lo, notes = notes + excluded.notes,
         notes_in_trash = notes_in_trash + excluded.notes_in_trash,
         notebooks = notebooks + excluded.notebooks, prefs = prefs + excluded.prefs,
         attachments = attachments + excluded.attachments,
         tombstones = tombstones + excluded.tombstones";

fn add_digest(
    conn: &Connection,
    account: &str,
    deltas: &[crate::plan::DigestDelta],
) -> rusqlite::Result<()> {
    let mut add = conn.prepare_cached(ADD_DIGEST)?;
    for d in deltas {
        add.execute(params![
            account,
            d.bucket,
            d.count,
            d.hi,
            d.lo,
            d.notes,
            d.notes_in_trash,
            d.notebooks,
            d.prefs,
            d.attachments,
            d.tombstones
        ])?;
    }
    Ok(())
}

/// The V3 backfill's statement: it runs before V4 adds the `attachments` column (and a V3
/// database holds no attachment records to count).
const ADD_DIGEST_V3: &str = "INSERT INTO digests (account_id, bucket, count, hi, lo, notes,
         notes_in_trash, notebooks, prefs, tombstones)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
     ON CONFLICT (account_id, bucket) DO UPDATE SET count = count + excluded.count,
         hi = hi + excluded.hi, lo = lo + excluded.lo, notes = notes + excluded.notes,
         notes_in_trash = notes_in_trash + excluded.notes_in_trash,
         notebooks = notebooks + excluded.notebooks, prefs = prefs + excluded.prefs,
         tombstones = tombstones + excluded.tombstones";

/// Sums up the records stored before V3, account by account.
fn backfill_digests(tx: &rusqlite::Transaction<'_>) -> rusqlite_migration::HookResult {
    let mut sums: HashMap<(String, u8), crate::plan::DigestDelta> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT account_id, entity, entity_id, version, purged, fields FROM records",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let account: String = r.get(0)?;
            let entity: String = r.get(1)?;
            let id: String = r.get(2)?;
            let Some(entity) = Entity::parse(&entity) else {
                continue;
            };
            let fields: String = r.get(5)?;
            let record = StoredRecord {
                version: Version(r.get(3)?),
                body_version: Version(0),
                cursor: Cursor(0),
                purged: r.get(4)?,
                fields: serde_json::from_str(&fields).map_err(|e| {
                    rusqlite_migration::HookError::Hook(format!("stored fields of {id}: {e}"))
                })?,
            };
            let d = crate::plan::DigestDelta::of(entity, &id, &record);
            sums.entry((account, d.bucket))
                .or_insert(crate::plan::DigestDelta {
                    bucket: d.bucket,
                    ..Default::default()
                })
                .add(&d, 1);
        }
    }
    let mut add = tx.prepare(ADD_DIGEST_V3)?;
    for ((account, _), d) in sums {
        add.execute(params![
            account,
            d.bucket,
            d.count,
            d.hi,
            d.lo,
            d.notes,
            d.notes_in_trash,
            d.notebooks,
            d.prefs,
            d.tombstones
        ])?;
    }
    Ok(())
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(SCHEMA_V1),
        M::up(SCHEMA_V2),
        M::up_with_hook(SCHEMA_V3, backfill_digests),
        M::up(SCHEMA_V4),
        M::up(SCHEMA_V5),
    ])
}

/// The database file in the server's `--data-dir`: the one name every tool and test uses.
pub const DB_FILE: &str = "outpost-server.db";

/// The database's history, made on first open: a new database is a new history.
fn load_history(conn: &Connection) -> Result<History> {
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return read_history(conn);
    }
    conn.execute(
        "INSERT OR IGNORE INTO server_meta (key, value) VALUES (?1, ?2), (?3, '0')",
        params![
            HISTORY_DATABASE,
            uuid::Uuid::now_v7().to_string(),
            HISTORY_EPOCH
        ],
    )?;
    read_history(conn)
}

fn read_history(conn: &Connection) -> Result<History> {
    let get = |key: &str| -> Result<String> {
        Ok(
            conn.query_row("SELECT value FROM server_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })?,
        )
    };
    Ok(History {
        database: uuid::Uuid::parse_str(&get(HISTORY_DATABASE)?).map_err(bad_data)?,
        epoch: get(HISTORY_EPOCH)?.parse().map_err(bad_data)?,
    })
}

/// Starts a new epoch of the database in `path` (after a restore): devices reconcile with it.
pub fn new_epoch(path: &Path) -> Result<History> {
    let mut conn = open_connection(path)?;
    migrations()
        .to_latest(&mut conn)
        .map_err(|e| StorageError::Internal(format!("migrating {}: {e}", path.display())))?;
    load_history(&conn)?;
    conn.execute(
        "UPDATE server_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?1",
        [HISTORY_EPOCH],
    )?;
    load_history(&conn)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// A consistent copy of the database in `dir`, written to `to` (SQLite's `VACUUM INTO`: safe
/// while the server runs, and the copy is one file with no WAL beside it).
pub fn backup(dir: &Path, to: &Path) -> Result<()> {
    let from = dir.join(DB_FILE);
    if !from.exists() {
        return Err(StorageError::Unavailable(format!(
            "no server database in {}",
            dir.display()
        )));
    }
    if to.exists() {
        return Err(StorageError::Unavailable(format!(
            "{} exists already: back up to a new file",
            to.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| StorageError::Unavailable(format!("{} is not UTF-8", to.display())))?;
    // `VACUUM INTO` reads only: a database served read-only backs up as well.
    let conn = if on_read_only_filesystem(&from) {
        open_read_only(&from)?
    } else {
        open_connection(&from)?
    };
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(())
}

/// Puts the backup `from` in place of the database in `dir` (with the server stopped) and
/// starts a new epoch of its history, so that every device reconciles with it instead of
/// trusting a cursor from the history it replaced. A file that is not a sound Outpost server
/// database is refused and nothing in `dir` changes.
pub fn restore(dir: &Path, from: &Path) -> Result<History> {
    let refuse = |why: String| StorageError::Unavailable(format!("{}: {why}", from.display()));
    {
        let check = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| refuse(e.to_string()))?;
        let sound: String = check
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| refuse(format!("not an Outpost server database ({e})")))?;
        if sound != "ok" {
            return Err(refuse(format!("the backup is damaged ({sound})")));
        }
        let ours: i64 = check
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('accounts', 'records')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| refuse(e.to_string()))?;
        if ours != 2 {
            return Err(refuse("not an Outpost server database".into()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let db = dir.join(DB_FILE);
    let staged = dir.join(format!("{DB_FILE}.restoring"));
    std::fs::copy(from, &staged).map_err(|e| io_error("copying the backup to", &staged, e))?;
    // The old database's write-ahead log belongs to the old file: applied to the backup it
    // would corrupt it.
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("{DB_FILE}{suffix}"));
        match std::fs::remove_file(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error("removing", &side, e));
            }
            _ => {}
        }
    }
    std::fs::rename(&staged, &db).map_err(|e| io_error("moving the backup to", &db, e))?;
    new_epoch(&db)
}

/// What `outpost-server audit` reads from the database in `dir` (the server's `--data-dir`),
/// opened read-only rather than as a [`SqliteStorage`]: it may run beside a running server,
/// and must neither create nor migrate a database.
pub fn audit_rows(dir: &Path) -> Result<AuditRows> {
    let path = dir.join(DB_FILE);
    if !path.exists() {
        return Err(StorageError::Unavailable(format!(
            "{} does not exist: is {} a server's --data-dir?",
            path.display(),
            dir.display()
        )));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    load_audit_rows(&conn)
}

fn load_audit_rows(conn: &Connection) -> Result<AuditRows> {
    // One snapshot for the three reads.
    let tx = conn.unchecked_transaction()?;
    let accounts = tx
        .prepare("SELECT id, email FROM accounts")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let notes = tx
        .prepare("SELECT account_id, entity_id, purged, fields FROM records WHERE entity = 'note'")?
        .query_map([], |r| {
            Ok(AuditNoteRow {
                account_id: r.get(0)?,
                id: r.get(1)?,
                purged: r.get(2)?,
                fields: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let results = tx
        .prepare("SELECT account_id, client_id, number, mutation_id FROM results")?
        .query_map([], |r| {
            Ok(AuditResultRow {
                account_id: r.get(0)?,
                client_id: r.get(1)?,
                number: r.get(2)?,
                mutation_id: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(tx);
    Ok(AuditRows {
        accounts,
        notes,
        results,
    })
}

/// The chain stored at an account's cursor, if any.
fn chain_at(conn: &Connection, account: &str, cursor: Cursor) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT chain FROM commits WHERE account_id = ?1 AND cursor = ?2")?
        .query_row(params![account, cursor.0], |r| r.get(0))
        .optional()?)
}

const READERS: usize = 4;

/// The most mutations one group commit applies (whole pushes; a push is never split). Enough
/// to spread a disk sync over ten of the sync engine's batches, small enough that the first
/// push of a group waits for the others for a fraction of a second at most.
pub const GROUP_MUTATIONS: usize = 2_000;

/// A push waiting for its turn at the writer.
struct QueuedPush {
    account: AccountId,
    client: ClientId,
    mutations: Vec<Mutation>,
    now_ms: u64,
    reply: oneshot::Sender<Result<PushOutcome>>,
}

pub struct SqliteStorage {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    pokes: broadcast::Sender<Poke>,
    /// Pushes waiting for the writer, oldest first (see the module doc).
    queue: Arc<Mutex<VecDeque<QueuedPush>>>,
    history: History,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -32000;",
    )?;
    Ok(conn)
}

/// Whether the database file sits on a filesystem mounted read-only (not merely a file the
/// server may not write: that is an error to fix, not a mode to serve in).
fn on_read_only_filesystem(path: &Path) -> bool {
    matches!(
        std::fs::OpenOptions::new().append(true).open(path),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Opens the database on a read-only filesystem. Nothing can change the file there, so SQLite
/// is told so (`immutable`): it needs no lock and no `-shm` file, which it could not create. A
/// `-wal` file left by a crash holds commits the file alone lacks; serving without them would
/// show devices an older history, so that is refused.
fn open_read_only(path: &Path) -> Result<Connection> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(StorageError::CannotWrite(format!(
            "{} is on a read-only filesystem with commits not yet folded into it (its -wal file): make it writable once so SQLite can fold them in",
            path.display()
        )));
    }
    // A URI path: `%`, `?` and `#` would be read as its syntax.
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -32000;")?;
    Ok(conn)
}

impl SqliteStorage {
    /// Opens (creating and migrating as needed) `outpost-server.db` in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStorage> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Unavailable(format!("{}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let read_only = on_read_only_filesystem(&path);
        let open = if read_only {
            open_read_only
        } else {
            open_connection
        };
        let mut writer = open(&path)?;
        if read_only {
            let pending = migrations()
                .pending_migrations(&writer)
                .map_err(|e| StorageError::Internal(format!("reading {}: {e}", path.display())))?;
            if pending > 0 {
                return Err(StorageError::CannotWrite(format!(
                    "{} is on a read-only filesystem and its schema is older than this server's: make it writable so it can be upgraded",
                    path.display()
                )));
            }
            tracing::warn!(db = %path.display(), "the data directory is on a read-only filesystem: serving pulls, refusing pushes until the server runs on a writable disk");
        } else {
            migrations().to_latest(&mut writer).map_err(|e| {
                StorageError::Internal(format!("migrating {}: {e}", path.display()))
            })?;
        }
        let history = load_history(&writer)?;
        let readers = (0..READERS)
            .map(|_| open(&path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStorage {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            pokes: broadcast::channel(1024).0,
            queue: Arc::new(Mutex::new(VecDeque::new())),
            history,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let mut conn = readers[i].lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
    }
}

fn bad_data(what: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("stored data unreadable: {what}"))
}

fn parse_entity(s: &str) -> Result<Entity> {
    Entity::parse(s).ok_or_else(|| bad_data(format!("entity {s:?}")))
}

/// An account's newest cursor, its tombstone horizon and its chain.
fn account_cursor(conn: &Connection, account: AccountId) -> Result<(Cursor, Cursor, String)> {
    conn.prepare_cached("SELECT cursor, tombstone_horizon, chain FROM accounts WHERE id = ?1")?
        .query_row([account.to_string()], |r| {
            Ok((Cursor(r.get(0)?), Cursor(r.get(1)?), r.get(2)?))
        })
        .optional()?
        .ok_or_else(|| StorageError::Forbidden("the account no longer exists".into()))
}

fn last_number(conn: &Connection, account: AccountId, client: ClientId) -> Result<MutationNumber> {
    Ok(MutationNumber(
        conn.prepare_cached(
            "SELECT last_number FROM clients WHERE account_id = ?1 AND client_id = ?2",
        )?
        .query_row(params![account.to_string(), client.to_string()], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0),
    ))
}

/// Applies one push inside the caller's transaction (a savepoint of a group commit).
fn push_in(
    tx: &Connection,
    account: AccountId,
    client: ClientId,
    mutations: Vec<Mutation>,
    now_ms: u64,
) -> Result<PushOutcome> {
    let acc = account.to_string();
    let cli = client.to_string();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let (account_cursor, _, chain) = account_cursor(tx, account)?;
    tx.prepare_cached(
        "INSERT INTO clients (account_id, client_id, last_number, last_seen_ms)
         VALUES (?1, ?2, 0, ?3)
         ON CONFLICT (account_id, client_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms",
    )?
    .execute(params![acc, cli, now])?;
    let last = last_number(tx, account, client)?;

    let keys: HashSet<Key> = mutations
        .iter()
        .map(|m| (m.entity, m.entity_id.clone()))
        .collect();
    let mut records = HashMap::new();
    {
        let mut foreign = tx.prepare_cached(
            "SELECT 1 FROM records WHERE entity = ?1 AND entity_id = ?2 AND account_id <> ?3",
        )?;
        let mut load = tx.prepare_cached(
            "SELECT version, body_version, cursor, purged, fields FROM records
             WHERE account_id = ?1 AND entity = ?2 AND entity_id = ?3",
        )?;
        for (entity, id) in keys {
            if entity != Entity::Pref
                && foreign
                    .query_row(params![entity.as_str(), id, acc], |_| Ok(()))
                    .optional()?
                    .is_some()
            {
                return Err(StorageError::Forbidden(format!(
                    "{} {id} belongs to another account",
                    entity.as_str()
                )));
            }
            let row = load
                .query_row(params![acc, entity.as_str(), id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .optional()?;
            if let Some((version, body_version, cursor, purged, fields)) = row {
                let fields = serde_json::from_str(&fields).map_err(bad_data)?;
                records.insert(
                    (entity, id),
                    StoredRecord {
                        version: Version(version),
                        body_version: Version(body_version),
                        cursor: Cursor(cursor),
                        purged,
                        fields,
                    },
                );
            }
        }
    }
    let mut results = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT mutation_id, outcome FROM results
             WHERE account_id = ?1 AND client_id = ?2 AND number = ?3",
        )?;
        for m in mutations.iter().filter(|m| m.number <= last) {
            let row = stmt
                .query_row(params![acc, cli, m.number.0], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            if let Some((id, outcome)) = row {
                let id: MutationId = id.parse().map_err(bad_data)?;
                let outcome: Outcome = serde_json::from_str(&outcome).map_err(bad_data)?;
                results.insert(m.number.0, (id, outcome));
            }
        }
    }

    let loaded = Loaded {
        last_number: last,
        account_cursor,
        records,
        results,
        chain,
    };
    let plan = plan::plan_push(mutations, loaded, now_ms);

    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO records (account_id, entity, entity_id, version, body_version, cursor,
                 purged, fields, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (account_id, entity, entity_id) DO UPDATE SET
                 version = excluded.version, body_version = excluded.body_version,
                 cursor = excluded.cursor, purged = excluded.purged, fields = excluded.fields,
                 updated_ms = excluded.updated_ms",
        )?;
        for ((entity, id), r) in &plan.writes {
            let fields = serde_json::to_string(&r.fields).map_err(bad_data)?;
            upsert.execute(params![
                acc,
                entity.as_str(),
                id,
                r.version.0,
                r.body_version.0,
                r.cursor.0,
                r.purged,
                fields,
                now
            ])?;
        }
        let mut remember = tx.prepare_cached(
            "INSERT OR REPLACE INTO results (account_id, client_id, number, mutation_id, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in &plan.remember {
            let outcome = serde_json::to_string(&r.outcome).map_err(bad_data)?;
            remember.execute(params![acc, cli, r.number.0, r.id.to_string(), outcome])?;
        }
    }
    tx.prepare_cached(
        "DELETE FROM results WHERE account_id = ?1 AND client_id = ?2 AND number <= ?3",
    )?
    .execute(params![acc, cli, plan.last_number.0 - plan::KEPT_RESULTS])?;
    tx.prepare_cached(
        "UPDATE clients SET last_number = ?3 WHERE account_id = ?1 AND client_id = ?2",
    )?
    .execute(params![acc, cli, plan.last_number.0])?;
    {
        let mut commit = tx.prepare_cached(
            "INSERT OR REPLACE INTO commits (account_id, cursor, chain) VALUES (?1, ?2, ?3)",
        )?;
        for (cursor, chain) in &plan.commits {
            commit.execute(params![acc, cursor.0, chain])?;
        }
    }
    add_digest(tx, &acc, &plan.digest)?;
    match plan.commits.last() {
        Some((_, chain)) => tx
            .prepare_cached("UPDATE accounts SET cursor = ?2, chain = ?3 WHERE id = ?1")?
            .execute(params![acc, plan.account_cursor.0, chain])?,
        None => tx
            .prepare_cached("UPDATE accounts SET cursor = ?2 WHERE id = ?1")?
            .execute(params![acc, plan.account_cursor.0])?,
    };
    Ok(PushOutcome {
        results: plan.results,
        last_number: plan.last_number,
        new_cursor: (plan.account_cursor > account_cursor).then_some(plan.account_cursor),
    })
}

/// Takes the oldest queued pushes, up to [`GROUP_MUTATIONS`] mutations (at least one push).
fn take_group(queue: &Mutex<VecDeque<QueuedPush>>) -> Vec<QueuedPush> {
    let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
    let mut group = Vec::new();
    let mut mutations = 0;
    while let Some(next) = queue.front() {
        if !group.is_empty() && mutations + next.mutations.len() > GROUP_MUTATIONS {
            break;
        }
        mutations += next.mutations.len();
        group.extend(queue.pop_front());
    }
    group
}

/// Applies `group` in one transaction, a savepoint per push, commits once, then answers every
/// push and pokes. Nothing is answered before the commit; if the commit fails, every push of
/// the group gets the error (nothing of the group was stored).
fn push_group(conn: &mut Connection, group: Vec<QueuedPush>, pokes: &broadcast::Sender<Poke>) {
    let mut answers = Vec::with_capacity(group.len());
    let committed = (|| -> Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for push in group {
            let QueuedPush {
                account,
                client,
                mutations,
                now_ms,
                reply,
            } = push;
            let outcome = (|| {
                let savepoint = tx.savepoint()?;
                let outcome = push_in(&savepoint, account, client, mutations, now_ms)?;
                savepoint.commit()?;
                Ok(outcome)
            })();
            // Some errors (a full disk, an I/O error) make SQLite roll back the whole
            // transaction: the pushes before this one are gone too, and the ones after would
            // run outside any transaction. The whole group fails then.
            let whole_group_lost = outcome.is_err() && tx.is_autocommit();
            answers.push((account, reply, outcome));
            if whole_group_lost {
                return Err(StorageError::Unavailable(
                    "the database rolled back the transaction".into(),
                ));
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if answers.len() > 1 {
        tracing::debug!(pushes = answers.len(), "group commit");
    }
    for (account, reply, outcome) in answers {
        let outcome = match &committed {
            Ok(()) => outcome,
            Err(e) => Err(e.clone()),
        };
        if let Ok(PushOutcome {
            new_cursor: Some(cursor),
            ..
        }) = &outcome
        {
            // Nobody listening is fine.
            let _ = pokes.send((account, *cursor));
        }
        // The device may have hung up; its push is applied all the same.
        let _ = reply.send(outcome);
    }
}

fn pull_in(
    conn: &mut Connection,
    account: AccountId,
    client: ClientId,
    cursor: Cursor,
    chain: Option<String>,
    limit: u32,
) -> Result<PullPage> {
    // One read transaction: the page, the newest cursor and the count come from one snapshot.
    let tx = conn.transaction()?;
    let (newest, horizon, _) = account_cursor(&tx, account)?;
    if cursor > newest {
        return Err(StorageError::CursorFromTheFuture {
            asked: cursor,
            newest,
        });
    }
    if cursor.0 > 0 && cursor < horizon {
        return Err(StorageError::ResetRequired { horizon });
    }
    let acc = account.to_string();
    if let Some(theirs) = chain.filter(|_| cursor.0 > 0)
        && chain_at(&tx, &acc, cursor)?.is_some_and(|ours| ours != theirs)
    {
        return Err(StorageError::HistoryChanged { cursor });
    }
    let mut records = {
        let mut stmt = tx.prepare_cached(
            "SELECT entity, entity_id, version, cursor, purged, fields FROM records
             WHERE account_id = ?1 AND cursor > ?2 ORDER BY cursor LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![acc, cursor.0, i64::from(limit) + 1], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut records = Vec::with_capacity(limit as usize);
        for row in rows {
            let (entity, id, version, cur, purged, fields) = row?;
            records.push(PulledRecord::new(
                parse_entity(&entity)?,
                id,
                Version(version),
                Cursor(cur),
                purged,
                fields,
            )?);
        }
        records
    };
    let has_more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = match (has_more, records.last()) {
        (true, Some(last)) => last.cursor,
        _ => newest,
    };
    let remaining = if has_more {
        let n: i64 = tx
            .prepare_cached("SELECT count(*) FROM records WHERE account_id = ?1 AND cursor > ?2")?
            .query_row(params![acc, next_cursor.0], |r| r.get(0))?;
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    };
    let last_number = last_number(&tx, account, client)?;
    let next_chain = chain_at(&tx, &acc, next_cursor)?;
    tx.commit()?;
    Ok(PullPage {
        records,
        next_cursor,
        next_chain,
        has_more,
        remaining,
        last_number,
    })
}

/// The columns of a [`BlobRow`], in the order [`blob_row`] reads them.
const BLOB_COLUMNS: &str = "size, received, complete, chunks, chunks_lost";

fn blob_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlobRow> {
    Ok(BlobRow {
        size: stored_u64(r.get(0)?),
        received: stored_u64(r.get(1)?),
        complete: r.get(2)?,
        chunks: stored_u64(r.get(3)?),
        chunks_lost: stored_u64(r.get(4)?),
    })
}

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn history(&self) -> History {
        self.history
    }

    async fn create_account(
        &self,
        email: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<AccountId> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.write(move |conn| {
            let id = AccountId(uuid::Uuid::now_v7());
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO accounts (id, email, password_hash, created_ms)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (email) DO NOTHING",
                )?
                .execute(params![id.to_string(), email, hash, now_ms])?;
            if inserted == 0 {
                return Err(StorageError::EmailTaken);
            }
            Ok(id)
        })
        .await
    }

    async fn password_hash(&self, email: &str) -> Result<Option<(AccountId, String)>> {
        let email = email.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT id, password_hash FROM accounts WHERE email = ?1")?
                .query_row([email], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            row.map(|(id, hash)| {
                let id = uuid::Uuid::parse_str(&id).map_err(bad_data)?;
                Ok((AccountId(id), hash))
            })
            .transpose()
        })
        .await
    }

    async fn create_token(&self, token: NewToken) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO tokens (hash, account_id, client_id, device_name, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                token.hash,
                token.account_id.to_string(),
                token.client_id.to_string(),
                token.device_name,
                token.now_ms
            ])?;
            Ok(())
        })
        .await
    }

    async fn token(&self, hash: &str) -> Result<Option<TokenOwner>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT account_id, client_id FROM tokens
                     WHERE hash = ?1 AND revoked_ms IS NULL",
                )?
                .query_row([hash], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            row.map(|(account, client)| {
                Ok(TokenOwner {
                    account_id: AccountId(uuid::Uuid::parse_str(&account).map_err(bad_data)?),
                    client_id: client.parse().map_err(bad_data)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn revoke_token(&self, hash: &str, now_ms: i64) -> Result<()> {
        let hash = hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("UPDATE tokens SET revoked_ms = ?2 WHERE hash = ?1")?
                .execute(params![hash, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn count_attempt(&self, key: &str, window_ms: i64) -> Result<u32> {
        let key = key.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            // Old windows are useless: drop them as we go.
            tx.prepare_cached("DELETE FROM login_attempts WHERE key = ?1 AND window_ms < ?2")?
                .execute(params![key, window_ms])?;
            let count: i64 = tx
                .prepare_cached(
                    "INSERT INTO login_attempts (key, window_ms, count) VALUES (?1, ?2, 1)
                     ON CONFLICT (key, window_ms) DO UPDATE SET count = count + 1
                     RETURNING count",
                )?
                .query_row(params![key, window_ms], |r| r.get(0))?;
            tx.commit()?;
            Ok(u32::try_from(count).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn push(
        &self,
        account: AccountId,
        client: ClientId,
        mutations: Vec<Mutation>,
        now_ms: u64,
    ) -> Result<PushOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(QueuedPush {
                account,
                client,
                mutations,
                now_ms,
                reply,
            });
        // One writer turn per queued push, so every push is taken by some turn: by this one, or
        // by an earlier one that found it queued (then this turn takes later pushes, or none).
        // Detached: the push completes even if this request is dropped.
        let (writer, queue, pokes) = (self.writer.clone(), self.queue.clone(), self.pokes.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
            let group = take_group(&queue);
            if !group.is_empty() {
                push_group(&mut conn, group, &pokes);
            }
        });
        answer
            .await
            .map_err(|_| StorageError::Internal("the push was dropped by a failed writer".into()))?
    }

    async fn pull(
        &self,
        account: AccountId,
        client: ClientId,
        cursor: Cursor,
        chain: Option<String>,
        limit: u32,
    ) -> Result<PullPage> {
        self.read(move |conn| pull_in(conn, account, client, cursor, chain, limit))
            .await
    }

    async fn cursor(&self, account: AccountId) -> Result<Cursor> {
        self.read(move |conn| Ok(account_cursor(conn, account)?.0))
            .await
    }

    async fn digest(&self, account: AccountId) -> Result<AccountDigest> {
        self.read(move |conn| {
            // One read transaction: the sums and the cursor of the same commit.
            let tx = conn.transaction()?;
            let cursor = account_cursor(&tx, account)?.0;
            let rows = tx
                .prepare_cached(
                    "SELECT bucket, count, hi, lo, notes, notes_in_trash, notebooks, prefs,
                         attachments, tombstones
                     FROM digests WHERE account_id = ?1",
                )?
                .query_map([account.to_string()], |r| {
                    Ok(crate::plan::DigestDelta {
                        bucket: r.get(0)?,
                        count: r.get(1)?,
                        hi: r.get(2)?,
                        lo: r.get(3)?,
                        notes: r.get(4)?,
                        notes_in_trash: r.get(5)?,
                        notebooks: r.get(6)?,
                        prefs: r.get(7)?,
                        attachments: r.get(8)?,
                        tombstones: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(AccountDigest::from_rows(cursor, rows))
        })
        .await
    }

    fn pokes(&self) -> broadcast::Receiver<Poke> {
        self.pokes.subscribe()
    }

    async fn audit_rows(&self) -> Result<AuditRows> {
        self.read(|conn| load_audit_rows(conn)).await
    }

    fn default_blob_dir(&self) -> Option<PathBuf> {
        self.path.parent().map(|dir| dir.join("blobs"))
    }

    async fn blob(&self, account: AccountId, hash: &BlobHash) -> Result<Option<BlobRow>> {
        let hash = hash.clone();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {BLOB_COLUMNS} FROM blobs WHERE account_id = ?1 AND sha256 = ?2"
                ))?
                .query_row(params![account.to_string(), hash.as_str()], blob_row)
                .optional()?)
        })
        .await
    }

    async fn blob_usage(&self, account: AccountId) -> Result<u64> {
        self.read(move |conn| {
            let used: i64 = conn
                .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE account_id = ?1")?
                .query_row([account.to_string()], |r| r.get(0))?;
            Ok(stored_u64(used))
        })
        .await
    }

    async fn begin_blob(
        &self,
        account: AccountId,
        hash: &BlobHash,
        size: u64,
        quota: Option<u64>,
        now_ms: i64,
    ) -> Result<BlobRow> {
        let hash = hash.clone();
        let column_size = column_i64(size)?;
        self.write(move |conn| {
            let (acc, sha) = (account.to_string(), hash.as_str());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(quota) = quota {
                let others: i64 = tx
                    .prepare_cached(
                        "SELECT COALESCE(SUM(size), 0) FROM blobs
                         WHERE account_id = ?1 AND sha256 <> ?2",
                    )?
                    .query_row(params![acc, sha], |r| r.get(0))?;
                let others = stored_u64(others);
                if others.saturating_add(size) > quota {
                    return Err(StorageError::OverQuota {
                        needed: size,
                        left: quota.saturating_sub(others),
                        quota,
                    });
                }
            }
            let row = tx
                .prepare_cached(&format!(
                    "INSERT INTO blobs (account_id, sha256, size, received, complete, chunks,
                         chunks_lost, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, 0, 0, 0, 0, ?4, ?4)
                     ON CONFLICT (account_id, sha256) DO UPDATE SET size = excluded.size,
                         received = 0, complete = 0, chunks = 0, chunks_lost = 0,
                         updated_ms = excluded.updated_ms, unreferenced_ms = NULL
                     RETURNING {BLOB_COLUMNS}"
                ))?
                .query_row(params![acc, sha, column_size, now_ms], blob_row)?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    async fn blob_received(
        &self,
        account: AccountId,
        hash: &BlobHash,
        from: u64,
        to: u64,
        now_ms: i64,
    ) -> Result<Option<BlobRow>> {
        let hash = hash.clone();
        let (from, to) = (column_i64(from)?, column_i64(to)?);
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "UPDATE blobs SET received = ?4, chunks = chunks + 1, updated_ms = ?5
                     WHERE account_id = ?1 AND sha256 = ?2 AND received = ?3 AND complete = 0
                     RETURNING {BLOB_COLUMNS}"
                ))?
                .query_row(
                    params![account.to_string(), hash.as_str(), from, to, now_ms],
                    blob_row,
                )
                .optional()?)
        })
        .await
    }

    async fn blob_lost(&self, account: AccountId, hash: &BlobHash, now_ms: i64) -> Result<()> {
        let hash = hash.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE blobs SET chunks_lost = chunks_lost + 1, updated_ms = ?3
                 WHERE account_id = ?1 AND sha256 = ?2 AND complete = 0",
            )?
            .execute(params![account.to_string(), hash.as_str(), now_ms])?;
            Ok(())
        })
        .await
    }

    async fn blob_complete(
        &self,
        account: AccountId,
        hash: &BlobHash,
        now_ms: i64,
    ) -> Result<Option<BlobRow>> {
        let hash = hash.clone();
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "UPDATE blobs SET complete = 1, received = size, updated_ms = ?3,
                         unreferenced_ms = NULL
                     WHERE account_id = ?1 AND sha256 = ?2
                     RETURNING {BLOB_COLUMNS}"
                ))?
                .query_row(
                    params![account.to_string(), hash.as_str(), now_ms],
                    blob_row,
                )
                .optional()?)
        })
        .await
    }

    async fn sweep_blobs(&self, now_ms: i64, grace_ms: i64) -> Result<Sweep> {
        // On the writer, in one immediate transaction: no push and no upload of this server
        // (nor of another process on the file) writes between the judging and the deleting.
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let sweep = sweep_in(&tx, now_ms, grace_ms)?;
            tx.commit()?;
            Ok(sweep)
        })
        .await
    }
}

/// Every blob row with whether a live attachment record of its account names it (the rule in
/// [`crate::blobs::collect`]): the account's attachment records, not purged, whose `sha256`
/// is the blob's and whose `deleted` is not true. Attachment records are found through
/// `records_owner` (entity first) and read once each, not once per blob; the `CAST` gives the
/// hash text affinity, so the join looks each blob up by account and hash (an automatic index)
/// rather than among all of its account's attachments.
const SWEEP_ROWS: &str = "
    SELECT b.account_id, b.sha256, b.complete, b.received, b.updated_ms, b.unreferenced_ms,
           l.sha256 IS NOT NULL
    FROM blobs b
    LEFT JOIN (
        SELECT DISTINCT account_id,
               CAST(json_extract(fields, '$.sha256.value') AS TEXT) AS sha256
        FROM records
        WHERE entity = 'attachment' AND purged = 0
          AND json_type(fields, '$.deleted.value') IS NOT 'true'
    ) l ON l.account_id = b.account_id AND l.sha256 = b.sha256";

fn sweep_in(tx: &Connection, now_ms: i64, grace_ms: i64) -> Result<Sweep> {
    let mut sweep = Sweep::default();
    let (mut marks, mut clears, mut removes) = (Vec::new(), Vec::new(), Vec::new());
    {
        let mut stmt = tx.prepare(SWEEP_ROWS)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let row = SweepRow {
                complete: r.get(2)?,
                referenced: r.get(6)?,
                updated_ms: r.get(4)?,
                unreferenced_ms: r.get(5)?,
            };
            let key: (String, String) = (r.get(0)?, r.get(1)?);
            match verdict(&row, now_ms, grace_ms) {
                Verdict::Keep => {}
                Verdict::Mark => marks.push(key),
                Verdict::Clear => clears.push(key),
                Verdict::Remove => removes.push(key),
            }
        }
    }
    {
        let mut mark = tx.prepare_cached(
            "UPDATE blobs SET unreferenced_ms = ?3
             WHERE account_id = ?1 AND sha256 = ?2 AND unreferenced_ms IS NULL",
        )?;
        for (account, sha) in &marks {
            sweep.marked += mark.execute(params![account, sha, now_ms])? as u64;
        }
        let mut clear = tx.prepare_cached(
            "UPDATE blobs SET unreferenced_ms = NULL
             WHERE account_id = ?1 AND sha256 = ?2 AND unreferenced_ms IS NOT NULL",
        )?;
        for (account, sha) in &clears {
            sweep.cleared += clear.execute(params![account, sha])? as u64;
        }
        let mut delete = tx.prepare_cached(
            "DELETE FROM blobs WHERE account_id = ?1 AND sha256 = ?2
             RETURNING complete, received",
        )?;
        for (account, sha) in removes {
            let Some((complete, received)) = delete
                .query_row(params![account, sha], |r| {
                    Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
            else {
                continue;
            };
            sweep.removed.push(Removed {
                account: AccountId(uuid::Uuid::parse_str(&account).map_err(bad_data)?),
                hash: BlobHash::parse(&sha).map_err(bad_data)?,
                complete,
                bytes: stored_u64(received),
            });
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::{NoteId, Stamp};
    use std::time::Duration;

    const NOW: u64 = 1_800_000_000_000;

    fn put(number: i64, note: NoteId, node: ClientId) -> Mutation {
        let stamp = Stamp {
            physical_ms: NOW,
            counter: 0,
            node,
        };
        Mutation::put(Entity::Note, note, number)
            .field("title", format!("note {number}"), stamp)
            .build()
    }

    fn queued(mutations: usize) -> (QueuedPush, oneshot::Receiver<Result<PushOutcome>>) {
        let (reply, answer) = oneshot::channel();
        let client = ClientId::new();
        let push = QueuedPush {
            account: AccountId(uuid::Uuid::now_v7()),
            client,
            mutations: (1..=mutations as i64)
                .map(|n| put(n, NoteId::new(), client))
                .collect(),
            now_ms: NOW,
            reply,
        };
        (push, answer)
    }

    #[test]
    fn the_migrations_are_valid() {
        migrations().validate().expect("valid migrations");
    }

    /// A database from before digests and attachments, holding a note, upgraded in place: the
    /// V3 backfill sums up the note (with its own statement, before V4's column exists), and V4
    /// adds the attachment count and the blobs.
    #[tokio::test]
    async fn a_database_from_before_attachments_upgrades_with_its_digest() {
        let dir = tempfile::tempdir().expect("dir");
        let account = AccountId(uuid::Uuid::now_v7());
        let note = NoteId::new();
        {
            let mut conn = open_connection(&dir.path().join(DB_FILE)).expect("open");
            migrations().to_version(&mut conn, 2).expect("V2");
            let record = plan::StoredRecord {
                version: Version(1),
                body_version: Version(1),
                cursor: Cursor(1),
                purged: false,
                fields: put(1, note, ClientId::new()).fields,
            };
            conn.execute(
                "INSERT INTO accounts (id, email, password_hash, cursor, created_ms)
                 VALUES (?1, 'ann@example.org', 'h', 1, 0)",
                [account.to_string()],
            )
            .expect("account");
            conn.execute(
                "INSERT INTO records (account_id, entity, entity_id, version, body_version,
                     cursor, purged, fields, updated_ms)
                 VALUES (?1, 'note', ?2, 1, 1, 1, 0, ?3, 0)",
                params![
                    account.to_string(),
                    note.to_string(),
                    serde_json::to_string(&record.fields).expect("fields")
                ],
            )
            .expect("note");
        }
        let storage = SqliteStorage::open(dir.path()).expect("upgraded");
        let digest = storage.digest(account).await.expect("digest");
        assert_eq!(
            (
                digest.summary.counts.notes,
                digest.summary.counts.attachments
            ),
            (1, 0)
        );
        let hash = BlobHash::of(b"photo");
        let row = storage
            .begin_blob(account, &hash, 5, Some(10), 0)
            .await
            .expect("an upload");
        assert_eq!((row.size, row.received, row.complete), (5, 0, false));
        assert_eq!(storage.blob_usage(account).await.expect("usage"), 5);
    }

    #[test]
    fn a_group_takes_whole_pushes_oldest_first_up_to_the_cap() {
        let queue = Mutex::new(VecDeque::new());
        for n in [1500, 400, 200, 10] {
            queue.lock().expect("queue").push_back(queued(n).0);
        }
        let sizes = |g: Vec<QueuedPush>| g.iter().map(|p| p.mutations.len()).collect::<Vec<_>>();
        assert_eq!(sizes(take_group(&queue)), [1500, 400]);
        assert_eq!(sizes(take_group(&queue)), [200, 10]);
        assert!(take_group(&queue).is_empty());
        // A push larger than the cap still goes, alone.
        for n in [GROUP_MUTATIONS + 1, 1] {
            queue.lock().expect("queue").push_back(queued(n).0);
        }
        assert_eq!(sizes(take_group(&queue)), [GROUP_MUTATIONS + 1]);
        assert_eq!(sizes(take_group(&queue)), [1]);
    }

    /// Pushes that queue while the writer is busy commit as one group: each gets its own
    /// outcome, cursors stay gap-free per account, and a push refused as a whole stores
    /// nothing while the others of its group are kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_pushes_commit_together_and_a_refused_one_stores_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Arc::new(SqliteStorage::open(dir.path()).expect("open"));
        let a = storage.create_account("a@x.org", "h", 0).await.expect("a");
        let b = storage.create_account("b@x.org", "h", 0).await.expect("b");
        let first = ClientId::new();
        let shared = NoteId::new();
        storage
            .push(a, first, vec![put(1, shared, first)], NOW)
            .await
            .expect("a's note");

        // Hold the writer, so the next pushes queue.
        let (held, is_held) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let writer = storage.writer.clone();
        let holder = tokio::task::spawn_blocking(move || {
            let _conn = writer.lock().expect("writer");
            let _ = held.send(());
            let _ = released.recv();
        });
        is_held.await.expect("held");
        let mut pushes = Vec::new();
        for i in 0..6 {
            let (account, client) = (if i < 4 { a } else { b }, ClientId::new());
            let storage = storage.clone();
            let mut mutations = vec![put(1, NoteId::new(), client), put(2, NoteId::new(), client)];
            if i == 5 {
                // b touches a's note: the whole push is refused.
                mutations.push(put(3, shared, client));
            }
            pushes.push(tokio::spawn(async move {
                storage.push(account, client, mutations, NOW).await
            }));
        }
        while storage.queue.lock().expect("queue").len() < 6 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).expect("release");
        holder.await.expect("holder");

        let mut a_cursors = Vec::new();
        let mut b_cursors = Vec::new();
        for (i, push) in pushes.into_iter().enumerate() {
            let outcome = push.await.expect("task");
            if i == 5 {
                assert!(
                    matches!(outcome, Err(StorageError::Forbidden(_))),
                    "{outcome:?}"
                );
                continue;
            }
            let outcome = outcome.expect("applied");
            assert_eq!(outcome.last_number, MutationNumber(2));
            let cursors = outcome.results.iter().map(|r| match &r.outcome {
                Outcome::Applied { cursor, .. } => cursor.0,
                other => panic!("not applied: {other:?}"),
            });
            if i < 4 {
                a_cursors.extend(cursors);
            } else {
                b_cursors.extend(cursors);
            }
        }
        a_cursors.sort_unstable();
        b_cursors.sort_unstable();
        assert_eq!(a_cursors, (2..=9).collect::<Vec<_>>());
        assert_eq!(b_cursors, [1, 2]);
        assert_eq!(storage.cursor(a).await.expect("a"), Cursor(9));
        // Nothing of the refused push: b holds only the other push's two notes.
        assert_eq!(storage.cursor(b).await.expect("b"), Cursor(2));
        let page = storage
            .pull(b, ClientId::new(), Cursor(0), None, 100)
            .await
            .expect("pull");
        assert_eq!(page.records.len(), 2);
    }
}
