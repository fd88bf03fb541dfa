//! The PostgreSQL backend, for several stateless `outpost-server` instances on one database
//! (DESIGN.md, "Scale"). It owns:
//!
//! - the schema and its versioned migrations (`schema_migrations`), applied at [`PgStorage::connect`]
//!   under an advisory lock, so instances that start together do not race;
//! - a connection pool (deadpool) for requests, with the same load → [`plan::plan_push`] → save
//!   transaction as the SQLite backend, so both backends answer alike;
//! - the cross-instance pokes: every push that commits sends `NOTIFY outpost_poke`, and one
//!   dedicated connection per instance `LISTEN`s and feeds [`Storage::pokes`]. It reconnects with
//!   backoff when the connection drops.
//!
//! Ordering (S2): cursors are a per-account counter in `accounts.cursor`, taken under that row's
//! lock (`SELECT ... FOR UPDATE`) as the first statement of a push. Two pushes of one account,
//! from any instances, therefore run one after the other and commit in cursor order, so a pull
//! never misses a change that commits later with a smaller cursor. (A global sequence would hand
//! out cursors in start order but commit them in any order, which is exactly that bug.)
//!
//! Connections use no TLS (`NoTls`): run the database on a private network or a local socket.

use super::{
    AccountDigest, AuditNoteRow, AuditResultRow, AuditRows, BlobRow, NewToken, Poke, PullPage,
    PulledRecord, PushOutcome, Result, Storage, StorageError, TokenOwner, column_i64, stored_u64,
};
use super::{HISTORY_DATABASE, HISTORY_EPOCH};
use crate::blobs::collect::{Removed, Sweep, SweepRow, Verdict, verdict};
use crate::plan::{self, Key, Loaded, StoredRecord};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use outpost_protocol::api::{
    AccountId, Cursor, History, Mutation, MutationNumber, Outcome, Version,
};
use outpost_protocol::blobs::BlobHash;
use outpost_protocol::{ClientId, Entity, MutationId};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Config, IsolationLevel, NoTls, Notification};
use uuid::Uuid;

/// Migrations in order; each runs once, in its own transaction. Never edit one that shipped:
/// add the next.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, SCHEMA_V3),
    (4, SCHEMA_V4),
    (5, SCHEMA_V5),
];

/// The same tables as the SQLite backend. Ids are `uuid` where the protocol says UUID. Entity
/// ids stay `text`: preference keys are not UUIDs. Fields and outcomes are `text` holding JSON
/// exactly as serde_json wrote it: `jsonb` would refuse a `\u0000` that a note may contain.
const SCHEMA_V1: &str = r#"
CREATE TABLE accounts (
    id                UUID PRIMARY KEY,
    email             TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    cursor            BIGINT NOT NULL DEFAULT 0,
    tombstone_horizon BIGINT NOT NULL DEFAULT 0,
    created_ms        BIGINT NOT NULL,
    CONSTRAINT accounts_email_key UNIQUE (email)
);
CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts (id),
    client_id   UUID NOT NULL,
    device_name TEXT,
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);
CREATE TABLE clients (
    account_id   UUID NOT NULL REFERENCES accounts (id),
    client_id    UUID NOT NULL,
    last_number  BIGINT NOT NULL DEFAULT 0,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);
CREATE TABLE records (
    account_id   UUID NOT NULL REFERENCES accounts (id),
    entity       TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    body_version BIGINT NOT NULL,
    cursor       BIGINT NOT NULL,
    purged       BOOLEAN NOT NULL,
    fields       TEXT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    PRIMARY KEY (account_id, entity, entity_id)
);
CREATE UNIQUE INDEX records_by_cursor ON records (account_id, cursor);
-- Unique, unlike SQLite's: there one writer at a time makes the "owned by another account" check
-- enough, here two accounts could create the same note id in concurrent transactions that both
-- pass the check. The index makes the second one wait for the first and then fail (mapped to
-- Forbidden). Preferences are per account by design, so they are left out.
CREATE UNIQUE INDEX records_owner ON records (entity, entity_id) WHERE entity <> 'pref';
CREATE TABLE results (
    account_id  UUID NOT NULL,
    client_id   UUID NOT NULL,
    number      BIGINT NOT NULL,
    mutation_id UUID NOT NULL,
    outcome     TEXT NOT NULL,
    PRIMARY KEY (account_id, client_id, number)
);
CREATE TABLE login_attempts (
    key       TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (key, window_ms)
);
"#;

/// Version 2, as SQLite's: the database's history (see `History`) and each account's chain of
/// commits.
const SCHEMA_V2: &str = r#"
CREATE TABLE server_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
ALTER TABLE accounts ADD COLUMN chain TEXT NOT NULL DEFAULT '';
CREATE TABLE commits (
    account_id UUID NOT NULL,
    cursor     BIGINT NOT NULL,
    chain      TEXT NOT NULL,
    PRIMARY KEY (account_id, cursor)
);
"#;

/// Version 3, as SQLite's: each account's running digest (see [`crate::plan::DigestDelta`]);
/// the migration sums up the records already stored ([`backfill_digests`]).
const SCHEMA_V3: &str = r#"
CREATE TABLE digests (
    account_id     UUID NOT NULL,
    bucket         INTEGER NOT NULL,
    count          BIGINT NOT NULL,
    hi             BIGINT NOT NULL,
    lo             BIGINT NOT NULL,
    notes          BIGINT NOT NULL,
    notes_in_trash BIGINT NOT NULL,
    notebooks      BIGINT NOT NULL,
    prefs          BIGINT NOT NULL,
    tombstones     BIGINT NOT NULL,
    PRIMARY KEY (account_id, bucket)
);
"#;

/// Version 4, as SQLite's: attachments. The digest counts attachment records, and `blobs` keeps
/// the bookkeeping of each account's blobs and uploads (see [`super::BlobRow`]).
const SCHEMA_V4: &str = r#"
ALTER TABLE digests ADD COLUMN attachments BIGINT NOT NULL DEFAULT 0;
CREATE TABLE blobs (
    account_id  UUID NOT NULL REFERENCES accounts (id),
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    received    BIGINT NOT NULL,
    complete    BOOLEAN NOT NULL,
    chunks      BIGINT NOT NULL,
    chunks_lost BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (account_id, sha256)
);
"#;

/// Version 5, as SQLite's: collection. Since when a complete blob has been found unreferenced
/// (NULL while an attachment names it; see [`crate::blobs::collect`]).
const SCHEMA_V5: &str = r#"
ALTER TABLE blobs ADD COLUMN unreferenced_ms BIGINT;
"#;

/// Adds digest deltas to an account's buckets, in one statement. `with_attachments` is false
/// only for the V3 backfill, which runs before V4 adds that column (and a V3 database holds no
/// attachment records to count).
async fn add_digest(
    tx: &deadpool_postgres::Transaction<'_>,
    account: uuid::Uuid,
    deltas: &[crate::plan::DigestDelta],
    with_attachments: bool,
) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&crate::plan::DigestDelta) -> i64| deltas.iter().map(f).collect::<Vec<i64>>();
    let buckets: Vec<i32> = deltas.iter().map(|d| i32::from(d.bucket)).collect();
    let (count, hi, lo) = (col(|d| d.count), col(|d| d.hi), col(|d| d.lo));
    let (notes, trash) = (col(|d| d.notes), col(|d| d.notes_in_trash));
    let (notebooks, prefs, tombstones) = (
        col(|d| d.notebooks),
        col(|d| d.prefs),
        col(|d| d.tombstones),
    );
    let attachments = col(|d| d.attachments);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &account,
        &buckets,
        &count,
        &hi,
        &lo,
        &notes,
        &trash,
        &notebooks,
        &prefs,
        &tombstones,
    ];
    let sql = if with_attachments {
        params.push(&attachments);
        "INSERT INTO digests (account_id, bucket, count, hi, lo, notes, notes_in_trash,
             notebooks, prefs, tombstones, attachments)
         SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int8[], $5::int8[],
             $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[])
         ON CONFLICT (account_id, bucket) DO UPDATE SET
             count = digests.count + excluded.count, hi = digests.hi + excluded.hi,
             lo = digests.lo + excluded.lo, notes = digests.notes + excluded.notes,
             notes_in_trash = digests.notes_in_trash + excluded.notes_in_trash,
             notebooks = digests.notebooks + excluded.notebooks,
             prefs = digests.prefs + excluded.prefs,
             tombstones = digests.tombstones + excluded.tombstones,
             attachments = digests.attachments + excluded.attachments"
    } else {
        "INSERT INTO digests (account_id, bucket, count, hi, lo, notes, notes_in_trash,
             notebooks, prefs, tombstones)
         SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int8[], $5::int8[],
             $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])
         ON CONFLICT (account_id, bucket) DO UPDATE SET
             count = digests.count + excluded.count, hi = digests.hi + excluded.hi,
             lo = digests.lo + excluded.lo, notes = digests.notes + excluded.notes,
             notes_in_trash = digests.notes_in_trash + excluded.notes_in_trash,
             notebooks = digests.notebooks + excluded.notebooks,
             prefs = digests.prefs + excluded.prefs,
             tombstones = digests.tombstones + excluded.tombstones"
    };
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, &params).await?;
    Ok(())
}

/// Sums up the records stored before V3, account by account (inside the migration's
/// transaction, under its lock).
async fn backfill_digests(tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
    let mut sums: HashMap<uuid::Uuid, std::collections::BTreeMap<u8, crate::plan::DigestDelta>> =
        HashMap::new();
    let rows = tx
        .query(
            "SELECT account_id, entity, entity_id, version, purged, fields FROM records",
            &[],
        )
        .await?;
    for r in rows {
        let account: uuid::Uuid = r.try_get(0)?;
        let entity: String = r.try_get(1)?;
        let id: String = r.try_get(2)?;
        let Some(entity) = Entity::parse(&entity) else {
            continue;
        };
        let fields: String = r.try_get(5)?;
        let record = StoredRecord {
            version: Version(r.try_get(3)?),
            body_version: Version(0),
            cursor: Cursor(0),
            purged: r.try_get(4)?,
            fields: serde_json::from_str(&fields).map_err(bad_data)?,
        };
        let d = crate::plan::DigestDelta::of(entity, &id, &record);
        sums.entry(account)
            .or_default()
            .entry(d.bucket)
            .or_insert(crate::plan::DigestDelta {
                bucket: d.bucket,
                ..Default::default()
            })
            .add(&d, 1);
    }
    for (account, buckets) in sums {
        let deltas: Vec<_> = buckets.into_values().collect();
        add_digest(tx, account, &deltas, false).await?;
    }
    Ok(())
}

/// Key of the advisory lock held while migrating ("outpost" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x006f_7574_706f_7374;
/// The channel every instance listens on. Payload: `<account uuid>:<cursor>`.
const POKE_CHANNEL: &str = "outpost_poke";
/// Appended to the application name of the LISTEN connection (see `pg_stat_activity`).
pub const LISTENER_SUFFIX: &str = "(poke listener)";
/// Connections per instance. Several instances share the server's `max_connections`.
const POOL_SIZE: usize = 16;
/// How long a request waits for a pooled connection before answering "busy, try again".
const POOL_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The poke listener checks its connection this often: a connection that died silently (a
/// firewall dropping idle flows) would otherwise leave this instance deaf until TCP gives up.
const HEARTBEAT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub struct PgStorage {
    pool: Pool,
    pokes: broadcast::Sender<Poke>,
    history: History,
    /// The LISTEN task; stopped when the storage is dropped.
    _listener: AbortOnDrop,
}

/// A task that ends when its handle is dropped (with it, the connection it owns).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::UNIQUE_VIOLATION {
                match db.constraint() {
                    Some("accounts_email_key") => return StorageError::EmailTaken,
                    Some("records_owner") => {
                        return StorageError::Forbidden(
                            "a note, notebook or attachment in this batch belongs to another account"
                                .into(),
                        );
                    }
                    _ => {}
                }
            }
            // Worth a retry by the device: the database is restarting, out of connections, or
            // chose this transaction as a deadlock/serialization victim (rolled back: nothing
            // stored).
            if [SqlState::DISK_FULL, SqlState::READ_ONLY_SQL_TRANSACTION].contains(code) {
                return StorageError::CannotWrite(e.to_string());
            }
            let class = code.code().get(..2).unwrap_or("");
            let transient = matches!(class, "08" | "53")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::QUERY_CANCELED,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                ]
                .contains(code);
            return if transient {
                StorageError::Unavailable(e.to_string())
            } else {
                StorageError::Internal(e.to_string())
            };
        }
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || io {
            StorageError::Unavailable(e.to_string())
        } else {
            StorageError::Internal(e.to_string())
        }
    }
}

impl From<PoolError> for StorageError {
    fn from(e: PoolError) -> Self {
        match e {
            // Failing to open a connection is the database being away, whatever the code.
            PoolError::Backend(e) => match StorageError::from(e) {
                StorageError::Internal(m) => StorageError::Unavailable(m),
                other => other,
            },
            other => StorageError::Unavailable(format!("connection pool: {other}")),
        }
    }
}

fn bad_data(what: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("stored data unreadable: {what}"))
}

fn parse_entity(s: &str) -> Result<Entity> {
    Entity::parse(s).ok_or_else(|| bad_data(format!("entity {s:?}")))
}

/// PostgreSQL `text` cannot hold U+0000, which JSON strings can. Emails, rate-limit keys and
/// device names are only compared with themselves, so mapping it to U+FFFD the same way on every
/// write and lookup keeps behaviour equal to SQLite's instead of failing with a 500.
fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

impl PgStorage {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), applies pending migrations and
    /// starts listening for pokes. Returns once pokes from other instances are being received.
    pub async fn connect(url: &str) -> Result<PgStorage> {
        let mut config = Config::from_str(url)
            .map_err(|e| StorageError::Unavailable(format!("bad database URL: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("outpost-server");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // An instance that stops in the middle of a push (a frozen VM, a network cut) must not
        // hold its account's row lock until TCP notices: PostgreSQL ends such a transaction
        // after 30 s. A push waiting for a lock that long gives up with "busy, try again"
        // rather than hanging the device's request. Options from the URL come after, so win.
        let guards = "-c idle_in_transaction_session_timeout=30s -c lock_timeout=15s";
        let options = match config.get_options() {
            Some(own) if !own.trim().is_empty() => format!("{guards} {own}"),
            _ => guards.to_owned(),
        };
        config.options(options);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StorageError::Internal(format!("building the connection pool: {e}")))?;

        let mut client = pool.get().await?;
        migrate(&mut client).await?;
        let history = load_history(&client).await?;
        drop(client);

        let (pokes, _) = broadcast::channel(1024);
        // Named apart from the pool's connections, so an operator can tell them apart.
        let mut listen_config = config;
        let name = format!(
            "{} {LISTENER_SUFFIX}",
            listen_config
                .get_application_name()
                .unwrap_or("outpost-server")
        );
        listen_config.application_name(name);
        // The first LISTEN happens here, not in the background: a push right after connect()
        // returns must already reach this instance's event streams.
        let first = Listening::start(&listen_config).await?;
        let listener = tokio::spawn(listen_forever(listen_config, pokes.clone(), first));
        Ok(PgStorage {
            pool,
            pokes,
            history,
            _listener: AbortOnDrop(listener),
        })
    }

    /// Starts a new epoch of this database's history, after it was restored from a backup
    /// (`pg_restore`): devices reconcile with it. Instances already running keep naming the old
    /// epoch until restarted (the chain check still protects their devices' cursors).
    pub async fn new_epoch(&self) -> Result<History> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE server_meta SET value = (value::bigint + 1)::text WHERE key = $1",
                &[&HISTORY_EPOCH],
            )
            .await?;
        load_history(&client).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }
}

/// The database's history, made by the first instance that opens it; every instance on one
/// database names the same one.
async fn load_history(client: &deadpool_postgres::Object) -> Result<History> {
    client
        .execute(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2), ($3, '0')
             ON CONFLICT (key) DO NOTHING",
            &[
                &HISTORY_DATABASE,
                &Uuid::now_v7().to_string(),
                &HISTORY_EPOCH,
            ],
        )
        .await?;
    let rows = client
        .query(
            "SELECT key, value FROM server_meta WHERE key IN ($1, $2)",
            &[&HISTORY_DATABASE, &HISTORY_EPOCH],
        )
        .await?;
    let (mut database, mut epoch) = (None, None);
    for row in rows {
        let (key, value): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if key == HISTORY_DATABASE {
            database = Some(Uuid::parse_str(&value).map_err(bad_data)?);
        } else {
            epoch = Some(value.parse::<u64>().map_err(bad_data)?);
        }
    }
    match (database, epoch) {
        (Some(database), Some(epoch)) => Ok(History { database, epoch }),
        _ => Err(bad_data("server_meta lacks the history")),
    }
}

/// The chain stored at an account's cursor, if any.
async fn chain_at(
    tx: &deadpool_postgres::Transaction<'_>,
    account: AccountId,
    cursor: Cursor,
) -> Result<Option<String>> {
    let stmt = tx
        .prepare_cached("SELECT chain FROM commits WHERE account_id = $1 AND cursor = $2")
        .await?;
    Ok(match tx.query_opt(&stmt, &[&account.0, &cursor.0]).await? {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    for &(version, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        // Held until this transaction ends: a second instance starting now waits here (as
        // long as the migration takes), then sees the version recorded and skips it.
        tx.batch_execute("SET LOCAL lock_timeout = 0").await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_ms BIGINT NOT NULL
             )",
        )
        .await?;
        let applied = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .await?
            .is_some();
        if !applied {
            tx.batch_execute(sql).await?;
            if version == 3 {
                backfill_digests(&tx).await?;
            }
            let now = crate::clock::now_i64();
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
                &[&version, &now],
            )
            .await?;
            tracing::info!(version, "database migrated");
        }
        tx.commit().await?;
    }
    let newest: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if newest.is_some_and(|n| n > known) {
        // A newer server migrated this database (a rolling upgrade in progress). Migrations
        // only add, so this one keeps working; say so in case it does not.
        tracing::warn!(
            database = newest,
            known,
            "the database schema is newer than this server"
        );
    }
    Ok(())
}

/// One LISTEN connection: the client (for LISTEN and heartbeats) and the task that drives the
/// connection and hands notifications over.
struct Listening {
    client: tokio_postgres::Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
    driver: JoinHandle<std::result::Result<(), tokio_postgres::Error>>,
}

impl Listening {
    async fn start(config: &Config) -> Result<Listening> {
        let (client, mut connection) = config.connect(NoTls).await?;
        let (tx, notifications) = mpsc::unbounded_channel();
        // Notifications arrive as asynchronous messages on the connection itself, so it is
        // polled here rather than by a plain `tokio::spawn(connection)`.
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx.send(n).is_err() {
                            return Ok(());
                        }
                    }
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        tracing::debug!(%notice, "notice on the poke connection");
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        });
        let listening = Listening {
            client,
            notifications,
            driver,
        };
        listening
            .client
            .batch_execute(&format!("LISTEN {POKE_CHANNEL}"))
            .await?;
        Ok(listening)
    }

    /// Relays notifications until the connection fails; returns why it did.
    async fn relay(mut self, pokes: &broadcast::Sender<Poke>) -> String {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                n = self.notifications.recv() => match n {
                    Some(n) => match parse_poke(n.payload()) {
                        // Nobody listening is fine.
                        Some(poke) => { let _ = pokes.send(poke); }
                        None => tracing::warn!(payload = n.payload(), "malformed poke ignored"),
                    },
                    None => break match (&mut self.driver).await {
                        Ok(Ok(())) => "the database closed the connection".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => format!("connection task failed: {e}"),
                    },
                },
                _ = heartbeat.tick() => {
                    match tokio::time::timeout(CONNECT_TIMEOUT, self.client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break format!("heartbeat failed: {e}"),
                        Err(_) => break "heartbeat timed out".to_owned(),
                    }
                }
            }
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Keeps a LISTEN connection up for the life of the storage. Pokes sent while it is down are
/// lost; that only delays devices to their next timer-driven sync, never loses data.
async fn listen_forever(config: Config, pokes: broadcast::Sender<Poke>, first: Listening) {
    let mut current = Some(first);
    let mut backoff = BACKOFF_MIN;
    loop {
        let listening = match current.take() {
            Some(l) => l,
            None => match Listening::start(&config).await {
                Ok(l) => {
                    tracing::info!("poke listener reconnected");
                    backoff = BACKOFF_MIN;
                    l
                }
                Err(e) => {
                    // Jitter, so that instances do not all reconnect in the same instant.
                    let jitter =
                        getrandom::u64().unwrap_or(0) % (backoff.as_millis() as u64 / 2 + 1);
                    let wait = backoff + Duration::from_millis(jitter);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "poke listener cannot connect");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let reason = listening.relay(&pokes).await;
        tracing::warn!(%reason, "poke listener lost its connection; reconnecting");
    }
}

fn parse_poke(payload: &str) -> Option<Poke> {
    let (account, cursor) = payload.split_once(':')?;
    Some((
        AccountId(Uuid::parse_str(account).ok()?),
        Cursor(cursor.parse().ok()?),
    ))
}

async fn account_cursor(
    tx: &deadpool_postgres::Transaction<'_>,
    account: AccountId,
    lock: bool,
) -> Result<(Cursor, Cursor, String)> {
    let sql = if lock {
        "SELECT cursor, tombstone_horizon, chain FROM accounts WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT cursor, tombstone_horizon, chain FROM accounts WHERE id = $1"
    };
    let stmt = tx.prepare_cached(sql).await?;
    let row = tx
        .query_opt(&stmt, &[&account.0])
        .await?
        .ok_or_else(|| StorageError::Forbidden("the account no longer exists".into()))?;
    Ok((
        Cursor(row.try_get(0)?),
        Cursor(row.try_get(1)?),
        row.try_get(2)?,
    ))
}

async fn push_in(
    client: &mut deadpool_postgres::Object,
    account: AccountId,
    client_id: ClientId,
    mutations: Vec<Mutation>,
    now_ms: u64,
) -> Result<PushOutcome> {
    let tx = client.transaction().await?;
    let acc = account.0;
    let cli = *client_id.as_uuid();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    // First, before reading anything: the row lock that orders this account's pushes (S2).
    let (account_cursor, _, chain) = account_cursor(&tx, account, true).await?;

    let stmt = tx
        .prepare_cached(
            "INSERT INTO clients (account_id, client_id, last_number, last_seen_ms)
             VALUES ($1, $2, 0, $3)
             ON CONFLICT (account_id, client_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms
             RETURNING last_number",
        )
        .await?;
    let last = MutationNumber(tx.query_one(&stmt, &[&acc, &cli, &now]).await?.try_get(0)?);

    // An id with U+0000 cannot be stored (the planner rejects it), so it cannot be found either;
    // leaving it out keeps PostgreSQL from refusing the whole query.
    let keys: HashSet<Key> = mutations
        .iter()
        .filter(|m| !m.entity_id.contains('\0'))
        .map(|m| (m.entity, m.entity_id.clone()))
        .collect();
    let (entities, ids): (Vec<&str>, Vec<&str>) =
        keys.iter().map(|(e, id)| (e.as_str(), id.as_str())).unzip();

    let foreign = tx
        .prepare_cached(
            "SELECT r.entity, r.entity_id FROM records r
             JOIN unnest($2::text[], $3::text[]) AS k (entity, entity_id)
               ON r.entity = k.entity AND r.entity_id = k.entity_id
             WHERE r.entity <> 'pref' AND r.account_id <> $1
             LIMIT 1",
        )
        .await?;
    if let Some(row) = tx.query_opt(&foreign, &[&acc, &entities, &ids]).await? {
        let (entity, id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        return Err(StorageError::Forbidden(format!(
            "{entity} {id} belongs to another account"
        )));
    }

    let load = tx
        .prepare_cached(
            "SELECT r.entity, r.entity_id, r.version, r.body_version, r.cursor, r.purged, r.fields
             FROM records r
             JOIN unnest($2::text[], $3::text[]) AS k (entity, entity_id)
               ON r.entity = k.entity AND r.entity_id = k.entity_id
             WHERE r.account_id = $1",
        )
        .await?;
    let earlier = tx
        .prepare_cached(
            "SELECT number, mutation_id, outcome FROM results
             WHERE account_id = $1 AND client_id = $2 AND number = ANY ($3::int8[])",
        )
        .await?;
    let numbers: Vec<i64> = mutations
        .iter()
        .filter(|m| m.number <= last)
        .map(|m| m.number.0)
        .collect();
    // Both reads go out together (tokio-postgres pipelines concurrent queries on a connection).
    let load_params: [&(dyn ToSql + Sync); 3] = [&acc, &entities, &ids];
    let earlier_params: [&(dyn ToSql + Sync); 3] = [&acc, &cli, &numbers];
    let (record_rows, result_rows) = tokio::try_join!(
        tx.query(&load, &load_params),
        tx.query(&earlier, &earlier_params),
    )?;
    let mut records = HashMap::with_capacity(record_rows.len());
    for row in record_rows {
        let fields: String = row.try_get(6)?;
        records.insert(
            (parse_entity(row.try_get(0)?)?, row.try_get::<_, String>(1)?),
            StoredRecord {
                version: Version(row.try_get(2)?),
                body_version: Version(row.try_get(3)?),
                cursor: Cursor(row.try_get(4)?),
                purged: row.try_get(5)?,
                fields: serde_json::from_str(&fields).map_err(bad_data)?,
            },
        );
    }
    let mut results = HashMap::with_capacity(result_rows.len());
    for row in result_rows {
        let outcome: String = row.try_get(2)?;
        let outcome: Outcome = serde_json::from_str(&outcome).map_err(bad_data)?;
        let id = MutationId::from_uuid(row.try_get(1)?);
        results.insert(row.try_get::<_, i64>(0)?, (id, outcome));
    }

    let loaded = Loaded {
        last_number: last,
        account_cursor,
        records,
        results,
        chain,
    };
    let plan = plan::plan_push(mutations, loaded, now_ms);

    if !plan.writes.is_empty() {
        let mut w_entity = Vec::with_capacity(plan.writes.len());
        let mut w_id = Vec::with_capacity(plan.writes.len());
        let mut w_version = Vec::with_capacity(plan.writes.len());
        let mut w_body_version = Vec::with_capacity(plan.writes.len());
        let mut w_cursor = Vec::with_capacity(plan.writes.len());
        let mut w_purged = Vec::with_capacity(plan.writes.len());
        let mut w_fields = Vec::with_capacity(plan.writes.len());
        for ((entity, id), r) in &plan.writes {
            w_entity.push(entity.as_str());
            w_id.push(id.as_str());
            w_version.push(r.version.0);
            w_body_version.push(r.body_version.0);
            w_cursor.push(r.cursor.0);
            w_purged.push(r.purged);
            w_fields.push(serde_json::to_string(&r.fields).map_err(bad_data)?);
        }
        // One statement for the whole batch. The planner writes each key once, which
        // ON CONFLICT DO UPDATE requires.
        let upsert = tx
            .prepare_cached(
                "INSERT INTO records (account_id, entity, entity_id, version, body_version,
                     cursor, purged, fields, updated_ms)
                 SELECT $1, w.entity, w.entity_id, w.version, w.body_version, w.cursor,
                     w.purged, w.fields, $9
                 FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                     $7::bool[], $8::text[])
                     AS w (entity, entity_id, version, body_version, cursor, purged, fields)
                 ON CONFLICT (account_id, entity, entity_id) DO UPDATE SET
                     version = excluded.version, body_version = excluded.body_version,
                     cursor = excluded.cursor, purged = excluded.purged,
                     fields = excluded.fields, updated_ms = excluded.updated_ms",
            )
            .await?;
        tx.execute(
            &upsert,
            &[
                &acc,
                &w_entity,
                &w_id,
                &w_version,
                &w_body_version,
                &w_cursor,
                &w_purged,
                &w_fields,
                &now,
            ],
        )
        .await?;
    }
    if !plan.remember.is_empty() {
        let mut numbers = Vec::with_capacity(plan.remember.len());
        let mut ids = Vec::with_capacity(plan.remember.len());
        let mut outcomes = Vec::with_capacity(plan.remember.len());
        for r in &plan.remember {
            numbers.push(r.number.0);
            ids.push(*r.id.as_uuid());
            outcomes.push(serde_json::to_string(&r.outcome).map_err(bad_data)?);
        }
        let remember = tx
            .prepare_cached(
                "INSERT INTO results (account_id, client_id, number, mutation_id, outcome)
                 SELECT $1, $2, r.number, r.mutation_id, r.outcome
                 FROM unnest($3::int8[], $4::uuid[], $5::text[]) AS r (number, mutation_id, outcome)
                 ON CONFLICT (account_id, client_id, number) DO UPDATE SET
                     mutation_id = excluded.mutation_id, outcome = excluded.outcome",
            )
            .await?;
        tx.execute(&remember, &[&acc, &cli, &numbers, &ids, &outcomes])
            .await?;
    }
    let forget = tx
        .prepare_cached(
            "DELETE FROM results WHERE account_id = $1 AND client_id = $2 AND number <= $3",
        )
        .await?;
    let set_last = tx
        .prepare_cached(
            "UPDATE clients SET last_number = $3 WHERE account_id = $1 AND client_id = $2",
        )
        .await?;
    let oldest_kept = plan.last_number.0 - plan::KEPT_RESULTS;
    let forget_params: [&(dyn ToSql + Sync); 3] = [&acc, &cli, &oldest_kept];
    let set_last_params: [&(dyn ToSql + Sync); 3] = [&acc, &cli, &plan.last_number.0];
    tokio::try_join!(
        tx.execute(&forget, &forget_params),
        tx.execute(&set_last, &set_last_params),
    )?;
    add_digest(&tx, acc, &plan.digest, true).await?;
    let new_cursor = (plan.account_cursor > account_cursor).then_some(plan.account_cursor);
    if let (Some(cursor), Some((_, new_chain))) = (new_cursor, plan.commits.last()) {
        let (c_cursor, c_chain): (Vec<i64>, Vec<&str>) = plan
            .commits
            .iter()
            .map(|(c, chain)| (c.0, chain.as_str()))
            .unzip();
        let commit = tx
            .prepare_cached(
                "INSERT INTO commits (account_id, cursor, chain)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[])
                 ON CONFLICT (account_id, cursor) DO UPDATE SET chain = excluded.chain",
            )
            .await?;
        tx.execute(&commit, &[&acc, &c_cursor, &c_chain]).await?;
        let set_cursor = tx
            .prepare_cached("UPDATE accounts SET cursor = $2, chain = $3 WHERE id = $1")
            .await?;
        // NOTIFY is transactional: delivered to every instance at commit, never for a
        // rolled-back push, and in commit order.
        let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        let payload = format!("{account}:{cursor}");
        let set_cursor_params: [&(dyn ToSql + Sync); 3] = [&acc, &cursor.0, new_chain];
        let notify_params: [&(dyn ToSql + Sync); 2] = [&POKE_CHANNEL, &payload];
        tokio::try_join!(
            tx.execute(&set_cursor, &set_cursor_params),
            tx.execute(&notify, &notify_params),
        )?;
    }
    tx.commit().await?;
    Ok(PushOutcome {
        results: plan.results,
        last_number: plan.last_number,
        new_cursor,
    })
}

async fn last_number(
    tx: &deadpool_postgres::Transaction<'_>,
    account: AccountId,
    client: ClientId,
) -> Result<MutationNumber> {
    let stmt = tx
        .prepare_cached("SELECT last_number FROM clients WHERE account_id = $1 AND client_id = $2")
        .await?;
    let row = tx.query_opt(&stmt, &[&account.0, client.as_uuid()]).await?;
    Ok(MutationNumber(match row {
        Some(row) => row.try_get(0)?,
        None => 0,
    }))
}

async fn pull_in(
    client: &mut deadpool_postgres::Object,
    account: AccountId,
    client_id: ClientId,
    cursor: Cursor,
    chain: Option<String>,
    limit: u32,
) -> Result<PullPage> {
    // One snapshot for the page, the newest cursor, the count and the device's number. Pushes
    // commit in cursor order (see the module doc), so a snapshot holds a prefix of the account's
    // changes and `next_cursor` never steps over one that commits later.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // The page must come from an index scan of `records_by_cursor`, which yields rows in cursor
    // order and stops after `limit`. When the statistics do not know how many records this
    // account has (a large first import not yet analysed, or an account that is small next
    // to the table), the planner takes it for a few rows and plans a scan of every record after
    // the cursor and a sort of them all, on disk: 150 ms for a page of 5,000 from the middle of
    // 100,000 records instead of 2 ms (see BENCHMARKS.md, "Sync server"). Without sorts it
    // keeps to the index whatever it guesses.
    tx.batch_execute("SET LOCAL enable_sort = off").await?;
    let (newest, horizon, _) = account_cursor(&tx, account, false).await?;
    if cursor > newest {
        return Err(StorageError::CursorFromTheFuture {
            asked: cursor,
            newest,
        });
    }
    if cursor.0 > 0 && cursor < horizon {
        return Err(StorageError::ResetRequired { horizon });
    }
    if let Some(theirs) = chain.filter(|_| cursor.0 > 0)
        && chain_at(&tx, account, cursor)
            .await?
            .is_some_and(|ours| ours != theirs)
    {
        return Err(StorageError::HistoryChanged { cursor });
    }
    let page = tx
        .prepare_cached(
            "SELECT entity, entity_id, version, cursor, purged, fields FROM records
             WHERE account_id = $1 AND cursor > $2 ORDER BY cursor LIMIT $3",
        )
        .await?;
    let (rows, last_number) = tokio::try_join!(
        async {
            Ok::<_, StorageError>(
                tx.query(&page, &[&account.0, &cursor.0, &(i64::from(limit) + 1)])
                    .await?,
            )
        },
        last_number(&tx, account, client_id),
    )?;
    let mut records = Vec::with_capacity(rows.len().min(limit as usize));
    for row in rows {
        records.push(PulledRecord::new(
            parse_entity(row.try_get(0)?)?,
            row.try_get(1)?,
            Version(row.try_get(2)?),
            Cursor(row.try_get(3)?),
            row.try_get(4)?,
            row.try_get(5)?,
        )?);
    }
    let has_more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = match (has_more, records.last()) {
        (true, Some(last)) => last.cursor,
        _ => newest,
    };
    let remaining = if has_more {
        let count = tx
            .prepare_cached("SELECT count(*) FROM records WHERE account_id = $1 AND cursor > $2")
            .await?;
        let n: i64 = tx
            .query_one(&count, &[&account.0, &next_cursor.0])
            .await?
            .try_get(0)?;
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    };
    let next_chain = chain_at(&tx, account, next_cursor).await?;
    tx.commit().await?;
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

fn blob_row(r: &tokio_postgres::Row) -> Result<BlobRow> {
    Ok(BlobRow {
        size: stored_u64(r.try_get(0)?),
        received: stored_u64(r.try_get(1)?),
        complete: r.try_get(2)?,
        chunks: stored_u64(r.try_get(3)?),
        chunks_lost: stored_u64(r.try_get(4)?),
    })
}

#[async_trait]
impl Storage for PgStorage {
    fn kind(&self) -> &'static str {
        "postgres"
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
        let client = self.client().await?;
        let id = AccountId(Uuid::now_v7());
        let stmt = client
            .prepare_cached(
                "INSERT INTO accounts (id, email, password_hash, created_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING",
            )
            .await?;
        let email = pg_text(email);
        let inserted = client
            .execute(&stmt, &[&id.0, &email.as_ref(), &password_hash, &now_ms])
            .await?;
        if inserted == 0 {
            return Err(StorageError::EmailTaken);
        }
        Ok(id)
    }

    async fn password_hash(&self, email: &str) -> Result<Option<(AccountId, String)>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, password_hash FROM accounts WHERE email = $1")
            .await?;
        let email = pg_text(email);
        let row = client.query_opt(&stmt, &[&email.as_ref()]).await?;
        row.map(|r| Ok((AccountId(r.try_get(0)?), r.try_get(1)?)))
            .transpose()
    }

    async fn create_token(&self, token: NewToken) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO tokens (hash, account_id, client_id, device_name, created_ms)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await?;
        let device_name = token.device_name.as_deref().map(pg_text);
        client
            .execute(
                &stmt,
                &[
                    &pg_text(&token.hash).as_ref(),
                    &token.account_id.0,
                    token.client_id.as_uuid(),
                    &device_name.as_deref(),
                    &token.now_ms,
                ],
            )
            .await?;
        Ok(())
    }

    async fn token(&self, hash: &str) -> Result<Option<TokenOwner>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT account_id, client_id FROM tokens WHERE hash = $1 AND revoked_ms IS NULL",
            )
            .await?;
        let row = client.query_opt(&stmt, &[&pg_text(hash).as_ref()]).await?;
        row.map(|r| {
            Ok(TokenOwner {
                account_id: AccountId(r.try_get(0)?),
                client_id: ClientId::from_uuid(r.try_get(1)?),
            })
        })
        .transpose()
    }

    async fn revoke_token(&self, hash: &str, now_ms: i64) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("UPDATE tokens SET revoked_ms = $2 WHERE hash = $1")
            .await?;
        client
            .execute(&stmt, &[&pg_text(hash).as_ref(), &now_ms])
            .await?;
        Ok(())
    }

    async fn count_attempt(&self, key: &str, window_ms: i64) -> Result<u32> {
        let mut client = self.client().await?;
        let key = pg_text(key);
        let tx = client.transaction().await?;
        // Old windows are useless: drop them as we go.
        let prune = tx
            .prepare_cached("DELETE FROM login_attempts WHERE key = $1 AND window_ms < $2")
            .await?;
        tx.execute(&prune, &[&key.as_ref(), &window_ms]).await?;
        // Atomic across instances: concurrent attempts each get their own count.
        let count = tx
            .prepare_cached(
                "INSERT INTO login_attempts (key, window_ms, count) VALUES ($1, $2, 1)
                 ON CONFLICT (key, window_ms) DO UPDATE SET count = login_attempts.count + 1
                 RETURNING count",
            )
            .await?;
        let n: i32 = tx
            .query_one(&count, &[&key.as_ref(), &window_ms])
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn push(
        &self,
        account: AccountId,
        client: ClientId,
        mutations: Vec<Mutation>,
        now_ms: u64,
    ) -> Result<PushOutcome> {
        // No local poke: NOTIFY reaches this instance's listener as well as every other's.
        let mut conn = self.client().await?;
        push_in(&mut conn, account, client, mutations, now_ms).await
    }

    async fn pull(
        &self,
        account: AccountId,
        client: ClientId,
        cursor: Cursor,
        chain: Option<String>,
        limit: u32,
    ) -> Result<PullPage> {
        let mut conn = self.client().await?;
        pull_in(&mut conn, account, client, cursor, chain, limit).await
    }

    async fn cursor(&self, account: AccountId) -> Result<Cursor> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT cursor FROM accounts WHERE id = $1")
            .await?;
        let row = client
            .query_opt(&stmt, &[&account.0])
            .await?
            .ok_or_else(|| StorageError::Forbidden("the account no longer exists".into()))?;
        Ok(Cursor(row.try_get(0)?))
    }

    async fn digest(&self, account: AccountId) -> Result<AccountDigest> {
        let client = self.client().await?;
        // One statement, one snapshot: the sums and the cursor of the same commit.
        let stmt = client
            .prepare_cached(
                "SELECT a.cursor, d.bucket, d.count, d.hi, d.lo, d.notes, d.notes_in_trash,
                     d.notebooks, d.prefs, d.tombstones, d.attachments
                 FROM accounts a LEFT JOIN digests d ON d.account_id = a.id
                 WHERE a.id = $1",
            )
            .await?;
        let rows = client.query(&stmt, &[&account.0]).await?;
        let Some(first) = rows.first() else {
            return Err(StorageError::Forbidden(
                "the account no longer exists".into(),
            ));
        };
        let cursor = Cursor(first.try_get(0)?);
        let mut deltas = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(bucket) = r.try_get::<_, Option<i32>>(1)? else {
                continue;
            };
            deltas.push(crate::plan::DigestDelta {
                bucket: u8::try_from(bucket).map_err(bad_data)?,
                count: r.try_get(2)?,
                hi: r.try_get(3)?,
                lo: r.try_get(4)?,
                notes: r.try_get(5)?,
                notes_in_trash: r.try_get(6)?,
                notebooks: r.try_get(7)?,
                prefs: r.try_get(8)?,
                tombstones: r.try_get(9)?,
                attachments: r.try_get(10)?,
            });
        }
        Ok(AccountDigest::from_rows(cursor, deltas))
    }

    fn pokes(&self) -> broadcast::Receiver<Poke> {
        self.pokes.subscribe()
    }

    async fn audit_rows(&self) -> Result<AuditRows> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let accounts = tx
            .query("SELECT id::text, email FROM accounts", &[])
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>>>()?;
        let notes = tx
            .query(
                "SELECT account_id::text, entity_id, purged, fields FROM records
                 WHERE entity = 'note'",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(AuditNoteRow {
                    account_id: r.try_get(0)?,
                    id: r.try_get(1)?,
                    purged: r.try_get(2)?,
                    fields: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let results = tx
            .query(
                "SELECT account_id::text, client_id::text, number, mutation_id::text FROM results",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(AuditResultRow {
                    account_id: r.try_get(0)?,
                    client_id: r.try_get(1)?,
                    number: r.try_get(2)?,
                    mutation_id: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(AuditRows {
            accounts,
            notes,
            results,
        })
    }

    async fn blob(&self, account: AccountId, hash: &BlobHash) -> Result<Option<BlobRow>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {BLOB_COLUMNS} FROM blobs WHERE account_id = $1 AND sha256 = $2"
            ))
            .await?;
        client
            .query_opt(&stmt, &[&account.0, &hash.as_str()])
            .await?
            .as_ref()
            .map(blob_row)
            .transpose()
    }

    async fn blob_usage(&self, account: AccountId) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT COALESCE(SUM(size), 0)::bigint FROM blobs WHERE account_id = $1",
            )
            .await?;
        let used: i64 = client.query_one(&stmt, &[&account.0]).await?.try_get(0)?;
        Ok(stored_u64(used))
    }

    async fn begin_blob(
        &self,
        account: AccountId,
        hash: &BlobHash,
        size: u64,
        quota: Option<u64>,
        now_ms: i64,
    ) -> Result<BlobRow> {
        let column_size = column_i64(size)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(quota) = quota {
            // The account's row lock, as a push takes it: two uploads of one account, from any
            // instances, check the quota one after the other.
            let lock = tx
                .prepare_cached("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
                .await?;
            tx.query_opt(&lock, &[&account.0])
                .await?
                .ok_or_else(|| StorageError::Forbidden("the account no longer exists".into()))?;
            let others = tx
                .prepare_cached(
                    "SELECT COALESCE(SUM(size), 0)::bigint FROM blobs
                     WHERE account_id = $1 AND sha256 <> $2",
                )
                .await?;
            let others: i64 = tx
                .query_one(&others, &[&account.0, &hash.as_str()])
                .await?
                .try_get(0)?;
            let others = stored_u64(others);
            if others.saturating_add(size) > quota {
                return Err(StorageError::OverQuota {
                    needed: size,
                    left: quota.saturating_sub(others),
                    quota,
                });
            }
        }
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO blobs (account_id, sha256, size, received, complete, chunks,
                     chunks_lost, created_ms, updated_ms)
                 VALUES ($1, $2, $3, 0, false, 0, 0, $4, $4)
                 ON CONFLICT (account_id, sha256) DO UPDATE SET size = excluded.size,
                     received = 0, complete = false, chunks = 0, chunks_lost = 0,
                     updated_ms = excluded.updated_ms, unreferenced_ms = NULL
                 RETURNING {BLOB_COLUMNS}"
            ))
            .await?;
        let row = tx
            .query_one(&stmt, &[&account.0, &hash.as_str(), &column_size, &now_ms])
            .await?;
        let row = blob_row(&row)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn blob_received(
        &self,
        account: AccountId,
        hash: &BlobHash,
        from: u64,
        to: u64,
        now_ms: i64,
    ) -> Result<Option<BlobRow>> {
        let (from, to) = (column_i64(from)?, column_i64(to)?);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE blobs SET received = $4, chunks = chunks + 1, updated_ms = $5
                 WHERE account_id = $1 AND sha256 = $2 AND received = $3 AND NOT complete
                 RETURNING {BLOB_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&stmt, &[&account.0, &hash.as_str(), &from, &to, &now_ms])
            .await?
            .as_ref()
            .map(blob_row)
            .transpose()
    }

    async fn blob_lost(&self, account: AccountId, hash: &BlobHash, now_ms: i64) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE blobs SET chunks_lost = chunks_lost + 1, updated_ms = $3
                 WHERE account_id = $1 AND sha256 = $2 AND NOT complete",
            )
            .await?;
        client
            .execute(&stmt, &[&account.0, &hash.as_str(), &now_ms])
            .await?;
        Ok(())
    }

    async fn blob_complete(
        &self,
        account: AccountId,
        hash: &BlobHash,
        now_ms: i64,
    ) -> Result<Option<BlobRow>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE blobs SET complete = true, received = size, updated_ms = $3,
                     unreferenced_ms = NULL
                 WHERE account_id = $1 AND sha256 = $2
                 RETURNING {BLOB_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&stmt, &[&account.0, &hash.as_str(), &now_ms])
            .await?
            .as_ref()
            .map(blob_row)
            .transpose()
    }

    async fn sweep_blobs(&self, now_ms: i64, grace_ms: i64) -> Result<Sweep> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let sweep = sweep_in(&tx, now_ms, grace_ms).await?;
        tx.commit().await?;
        Ok(sweep)
    }
}

/// Blob rows with whether a live attachment record of their account names them (the rule in
/// [`crate::blobs::collect`]): the account's attachment records, not purged, whose `sha256` is
/// the blob's and whose `deleted` is not true; of the accounts in `$1`, or of all if it is
/// NULL. Fields are `text` (see [`SCHEMA_V1`]); only an attachment's are read as `jsonb` (the
/// `CASE` makes sure of it: a note may hold a `\u0000` that `jsonb` refuses, and an
/// attachment's fields cannot), each once, not once per blob.
const SWEEP_ROWS: &str = "
    SELECT b.account_id, b.sha256, b.complete, b.received, b.updated_ms, b.unreferenced_ms,
           l.sha256 IS NOT NULL
    FROM blobs b
    LEFT JOIN (
        SELECT DISTINCT account_id, f -> 'sha256' ->> 'value' AS sha256
        FROM (
            SELECT account_id, CASE WHEN entity = 'attachment' THEN fields::jsonb END AS f
            FROM records
            WHERE entity = 'attachment' AND NOT purged
              AND ($1::uuid[] IS NULL OR account_id = ANY($1))
            OFFSET 0
        ) a
        WHERE (f -> 'deleted' -> 'value') IS DISTINCT FROM 'true'::jsonb
    ) l ON l.account_id = b.account_id AND l.sha256 = b.sha256
    WHERE $1::uuid[] IS NULL OR b.account_id = ANY($1)";

/// A row as [`SWEEP_ROWS`] read it, and what [`verdict`] made of it.
struct Judged {
    account: Uuid,
    sha256: String,
    complete: bool,
    updated_ms: i64,
    unreferenced_ms: Option<i64>,
    verdict: Verdict,
}

async fn judge(
    tx: &deadpool_postgres::Transaction<'_>,
    accounts: Option<Vec<Uuid>>,
    now_ms: i64,
    grace_ms: i64,
) -> Result<Vec<Judged>> {
    let stmt = tx.prepare_cached(SWEEP_ROWS).await?;
    // Streamed: only the rows something happens to are kept.
    let rows = tx.query_raw(&stmt, [&accounts]).await?;
    futures_util::pin_mut!(rows);
    let mut judged = Vec::new();
    while let Some(r) = futures_util::TryStreamExt::try_next(&mut rows).await? {
        let row = SweepRow {
            complete: r.try_get(2)?,
            referenced: r.try_get(6)?,
            updated_ms: r.try_get(4)?,
            unreferenced_ms: r.try_get(5)?,
        };
        let verdict = verdict(&row, now_ms, grace_ms);
        if verdict != Verdict::Keep {
            judged.push(Judged {
                account: r.try_get(0)?,
                sha256: r.try_get(1)?,
                complete: row.complete,
                updated_ms: row.updated_ms,
                unreferenced_ms: row.unreferenced_ms,
                verdict,
            });
        }
    }
    Ok(judged)
}

/// The keys of the rows judged `verdict`, as the two arrays `unnest` takes.
fn keys_of(judged: &[Judged], verdict: Verdict) -> (Vec<Uuid>, Vec<&str>) {
    judged
        .iter()
        .filter(|j| j.verdict == verdict)
        .map(|j| (j.account, j.sha256.as_str()))
        .unzip()
}

/// The sweep, inside the caller's transaction. Other instances push and upload meanwhile, so a
/// row is deleted only as judged under the lock of its account's row, the one every push
/// takes first: no attachment of that account can be written between that judging and the
/// delete. And only if the row is still the one judged (no upload began it again meanwhile).
async fn sweep_in(
    tx: &deadpool_postgres::Transaction<'_>,
    now_ms: i64,
    grace_ms: i64,
) -> Result<Sweep> {
    let mut sweep = Sweep::default();
    let judged = judge(tx, None, now_ms, grace_ms).await?;

    // A mark or its clearing only moves when a blob may go: judged without locks, they are
    // put right by the next sweep if a push overtook them.
    let (accounts, hashes) = keys_of(&judged, Verdict::Mark);
    if !accounts.is_empty() {
        let mark = tx
            .prepare_cached(
                "UPDATE blobs b SET unreferenced_ms = $3
                 FROM unnest($1::uuid[], $2::text[]) AS d (account_id, sha256)
                 WHERE b.account_id = d.account_id AND b.sha256 = d.sha256
                   AND b.complete AND b.unreferenced_ms IS NULL",
            )
            .await?;
        sweep.marked = tx.execute(&mark, &[&accounts, &hashes, &now_ms]).await?;
    }
    let (accounts, hashes) = keys_of(&judged, Verdict::Clear);
    if !accounts.is_empty() {
        let clear = tx
            .prepare_cached(
                "UPDATE blobs b SET unreferenced_ms = NULL
                 FROM unnest($1::uuid[], $2::text[]) AS d (account_id, sha256)
                 WHERE b.account_id = d.account_id AND b.sha256 = d.sha256
                   AND b.unreferenced_ms IS NOT NULL",
            )
            .await?;
        sweep.cleared = tx.execute(&clear, &[&accounts, &hashes]).await?;
    }

    let candidates: std::collections::BTreeSet<Uuid> = judged
        .iter()
        .filter(|j| j.verdict == Verdict::Remove)
        .map(|j| j.account)
        .collect();
    if candidates.is_empty() {
        return Ok(sweep);
    }
    let candidates: Vec<Uuid> = candidates.into_iter().collect();
    // In one order on every instance, so two sweeps at once cannot deadlock.
    let lock = tx
        .prepare_cached("SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await?;
    tx.query(&lock, &[&candidates]).await?;
    // Judged again, in a new snapshot that holds every push committed before the locks.
    let again: Vec<Judged> = judge(tx, Some(candidates), now_ms, grace_ms)
        .await?
        .into_iter()
        .filter(|j| j.verdict == Verdict::Remove)
        .collect();
    if again.is_empty() {
        return Ok(sweep);
    }
    let (accounts, hashes) = keys_of(&again, Verdict::Remove);
    let complete: Vec<bool> = again.iter().map(|j| j.complete).collect();
    let updated: Vec<i64> = again.iter().map(|j| j.updated_ms).collect();
    let unreferenced: Vec<Option<i64>> = again.iter().map(|j| j.unreferenced_ms).collect();
    let delete = tx
        .prepare_cached(
            "DELETE FROM blobs b
             USING unnest($1::uuid[], $2::text[], $3::bool[], $4::bigint[], $5::bigint[])
                 AS d (account_id, sha256, complete, updated_ms, unreferenced_ms)
             WHERE b.account_id = d.account_id AND b.sha256 = d.sha256
               AND b.complete = d.complete AND b.updated_ms = d.updated_ms
               AND b.unreferenced_ms IS NOT DISTINCT FROM d.unreferenced_ms
             RETURNING b.account_id, b.sha256, b.complete, b.received",
        )
        .await?;
    let rows = tx
        .query(
            &delete,
            &[&accounts, &hashes, &complete, &updated, &unreferenced],
        )
        .await?;
    for r in rows {
        let sha: String = r.try_get(1)?;
        sweep.removed.push(Removed {
            account: AccountId(r.try_get(0)?),
            hash: BlobHash::parse(&sha).map_err(bad_data)?,
            complete: r.try_get(2)?,
            bytes: stored_u64(r.try_get(3)?),
        });
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pokes_parse_and_malformed_ones_are_ignored() {
        let id = Uuid::now_v7();
        assert_eq!(
            parse_poke(&format!("{id}:42")),
            Some((AccountId(id), Cursor(42)))
        );
        assert_eq!(parse_poke("nonsense"), None);
        assert_eq!(parse_poke(&format!("{id}:x")), None);
        assert_eq!(parse_poke("x:1"), None);
    }

    #[test]
    fn nul_is_mapped_the_same_way_every_time() {
        assert_eq!(pg_text("a@b.c"), "a@b.c");
        assert_eq!(pg_text("a\0@b.c"), "a\u{fffd}@b.c");
    }
}
