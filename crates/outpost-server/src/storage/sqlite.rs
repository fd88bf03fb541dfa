//! The embedded SQLite backend: one file in the data directory, no set-up. One writer
//! connection (SQLite has one writer at a time anyway) and a few readers, used from blocking
//! threads so the async runtime never waits on disk.
//!
//! `synchronous = FULL`: a push is acknowledged only after its commit reached the disk, because
//! the device deletes what the server acknowledged (L2).

use super::{
    NewToken, Poke, PullPage, PulledRecord, PushOutcome, Result, Storage, StorageError, TokenOwner,
};
use crate::plan::{self, Key, Loaded, StoredRecord};
use async_trait::async_trait;
use outpost_protocol::api::{AccountId, Cursor, Mutation, MutationNumber, Outcome, Version};
use outpost_protocol::{ClientId, Entity, MutationId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

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

const READERS: usize = 4;

pub struct SqliteStorage {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    pokes: broadcast::Sender<Poke>,
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

impl SqliteStorage {
    /// Opens (creating and migrating as needed) `outpost-server.db` in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStorage> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Unavailable(format!("{}: {e}", dir.display())))?;
        let path = dir.join("outpost-server.db");
        let mut writer = open_connection(&path)?;
        Migrations::new(vec![M::up(SCHEMA_V1)])
            .to_latest(&mut writer)
            .map_err(|e| StorageError::Internal(format!("migrating {}: {e}", path.display())))?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStorage {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            pokes: broadcast::channel(1024).0,
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

fn account_cursor(conn: &Connection, account: AccountId) -> Result<(Cursor, Cursor)> {
    conn.prepare_cached("SELECT cursor, tombstone_horizon FROM accounts WHERE id = ?1")?
        .query_row([account.to_string()], |r| {
            Ok((Cursor(r.get(0)?), Cursor(r.get(1)?)))
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

fn push_in(
    conn: &mut Connection,
    account: AccountId,
    client: ClientId,
    mutations: Vec<Mutation>,
    now_ms: u64,
) -> Result<PushOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let acc = account.to_string();
    let cli = client.to_string();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let (account_cursor, _) = account_cursor(&tx, account)?;
    tx.prepare_cached(
        "INSERT INTO clients (account_id, client_id, last_number, last_seen_ms)
         VALUES (?1, ?2, 0, ?3)
         ON CONFLICT (account_id, client_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms",
    )?
    .execute(params![acc, cli, now])?;
    let last = last_number(&tx, account, client)?;

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
    tx.prepare_cached("UPDATE accounts SET cursor = ?2 WHERE id = ?1")?
        .execute(params![acc, plan.account_cursor.0])?;
    tx.commit()?;
    Ok(PushOutcome {
        results: plan.results,
        last_number: plan.last_number,
        new_cursor: (plan.account_cursor > account_cursor).then_some(plan.account_cursor),
    })
}

fn pull_in(
    conn: &mut Connection,
    account: AccountId,
    client: ClientId,
    cursor: Cursor,
    limit: u32,
) -> Result<PullPage> {
    // One read transaction: the page, the newest cursor and the count come from one snapshot.
    let tx = conn.transaction()?;
    let (newest, horizon) = account_cursor(&tx, account)?;
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
    tx.commit()?;
    Ok(PullPage {
        records,
        next_cursor,
        has_more,
        remaining,
        last_number,
    })
}

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> &'static str {
        "sqlite"
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
        let outcome = self
            .write(move |conn| push_in(conn, account, client, mutations, now_ms))
            .await?;
        if let Some(cursor) = outcome.new_cursor {
            // Nobody listening is fine.
            let _ = self.pokes.send((account, cursor));
        }
        Ok(outcome)
    }

    async fn pull(
        &self,
        account: AccountId,
        client: ClientId,
        cursor: Cursor,
        limit: u32,
    ) -> Result<PullPage> {
        self.read(move |conn| pull_in(conn, account, client, cursor, limit))
            .await
    }

    async fn cursor(&self, account: AccountId) -> Result<Cursor> {
        self.read(move |conn| Ok(account_cursor(conn, account)?.0))
            .await
    }

    fn pokes(&self) -> broadcast::Receiver<Poke> {
        self.pokes.subscribe()
    }
}
