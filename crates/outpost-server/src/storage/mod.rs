//! Storage behind one trait, two backends: SQLite (embedded, the default) and PostgreSQL (for
//! several stateless instances on one database). Backends only load and save: the rules of a
//! push are in [`crate::plan`], so both behave the same by construction, and one test suite runs
//! against both.

pub mod postgres;
pub mod sqlite;

use crate::blobs::collect::Sweep;
use crate::plan::DigestDelta;
use async_trait::async_trait;
use outpost_protocol::api::{
    AccountId, Cursor, History, Mutation, MutationNumber, MutationResult, Version,
};
use outpost_protocol::blobs::{BlobHash, BlobStatus};
use outpost_protocol::{ClientId, Entity};
use serde::Serialize;
use serde_json::value::RawValue;
use std::path::PathBuf;
use tokio::sync::broadcast;

/// Clone: a failed group commit gives each of its pushes the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("an account with this email exists")]
    EmailTaken,
    /// The batch touches an entity of another account: nothing was stored.
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "cursor {asked} is ahead of this account's newest change ({newest}); the device must re-download"
    )]
    CursorFromTheFuture { asked: Cursor, newest: Cursor },
    #[error("changes before cursor {horizon} were compacted; the device must re-download")]
    ResetRequired { horizon: Cursor },
    #[error(
        "this server's commit at cursor {cursor} is not the one the device saw there: the server was restored from an older copy and has moved on since; the device must reconcile"
    )]
    HistoryChanged { cursor: Cursor },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database cannot write: its disk is full or read-only. Nothing was stored; the
    /// device keeps its changes and sends them again later.
    #[error("the database cannot write (disk full or read-only): {0}")]
    CannotWrite(String),
    /// Starting this upload would take the account past its blob quota: nothing was stored.
    #[error(
        "this blob needs {needed} bytes and the account has {left} bytes left of its {quota} byte quota for attachments"
    )]
    OverQuota { needed: u64, left: u64, quota: u64 },
    #[error("storage failure: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StorageError::Unavailable(e.to_string())
            }
            Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::ReadOnly) => {
                StorageError::CannotWrite(e.to_string())
            }
            _ => StorageError::Internal(e.to_string()),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A device token as stored: only its hash is ever written.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: String,
    pub account_id: AccountId,
    pub client_id: ClientId,
    pub device_name: Option<String>,
    pub now_ms: i64,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenOwner {
    pub account_id: AccountId,
    pub client_id: ClientId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    pub results: Vec<MutationResult>,
    pub last_number: MutationNumber,
    /// The account's newest cursor if the push committed anything (for the poke).
    pub new_cursor: Option<Cursor>,
}

/// A record as a pull sends it: the protocol's `Record` with `fields` kept as the JSON text
/// stored with it. The server wrote that text itself, with serde_json from `Fields`, so it is
/// already what serialising the parsed fields would give; passing it through saves parsing and
/// re-serialising every field of every record, which was most of a pull's CPU time (see
/// BENCHMARKS.md, "Sync server"). Same fields in the same order as `Record`, so the same JSON
/// (the tests of `routes::sync` hold it to that).
#[derive(Debug, Clone, Serialize)]
pub struct PulledRecord {
    pub entity: Entity,
    pub id: String,
    pub version: Version,
    pub cursor: Cursor,
    pub purged: bool,
    pub fields: Box<RawValue>,
}

impl PulledRecord {
    /// `fields` is the stored text. It is checked to be JSON (cheap: nothing is built), so a
    /// damaged row still fails the request rather than the device's parser.
    pub fn new(
        entity: Entity,
        id: String,
        version: Version,
        cursor: Cursor,
        purged: bool,
        fields: String,
    ) -> Result<PulledRecord> {
        let fields = RawValue::from_string(fields)
            .map_err(|e| StorageError::Internal(format!("stored data unreadable: {e}")))?;
        Ok(PulledRecord {
            entity,
            id,
            version,
            cursor,
            purged,
            fields,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PullPage {
    pub records: Vec<PulledRecord>,
    pub next_cursor: Cursor,
    /// The chain at `next_cursor`, if the server has one there.
    pub next_chain: Option<String>,
    pub has_more: bool,
    pub remaining: u64,
    pub last_number: MutationNumber,
}

/// An account's running digest (see `outpost_protocol::digest`), kept up to date by every push
/// in the same transaction, as of `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDigest {
    pub cursor: Cursor,
    pub summary: outpost_protocol::digest::Summary,
    pub tombstones: u64,
}

impl AccountDigest {
    /// From the account's stored bucket rows (buckets never touched have none).
    pub fn from_rows(cursor: Cursor, rows: impl IntoIterator<Item = DigestDelta>) -> AccountDigest {
        let mut summary = outpost_protocol::digest::Summary::new();
        let mut tombstones = 0u64;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        for row in rows {
            summary.buckets[usize::from(row.bucket)] = outpost_protocol::digest::Bucket {
                count: count(row.count),
                sum: DigestDelta::sum(row.hi, row.lo),
            };
            summary.counts.notes += count(row.notes);
            summary.counts.notes_in_trash += count(row.notes_in_trash);
            summary.counts.notebooks += count(row.notebooks);
            summary.counts.prefs += count(row.prefs);
            summary.counts.attachments += count(row.attachments);
            tombstones += count(row.tombstones);
        }
        AccountDigest {
            cursor,
            summary,
            tombstones,
        }
    }
}

/// What `outpost-server audit` ([`crate::audit`]) reads, in one snapshot: every account, every
/// note record (tombstones too), and the replies kept for duplicates. Backends only load these
/// rows and the audit decides, so both backends answer alike.
#[derive(Debug, Default, Clone)]
pub struct AuditRows {
    /// (account id, email)
    pub accounts: Vec<(String, String)>,
    pub notes: Vec<AuditNoteRow>,
    pub results: Vec<AuditResultRow>,
}

#[derive(Debug, Clone)]
pub struct AuditNoteRow {
    pub account_id: String,
    pub id: String,
    pub purged: bool,
    /// The stored fields, as JSON text.
    pub fields: String,
}

#[derive(Debug, Clone)]
pub struct AuditResultRow {
    pub account_id: String,
    pub client_id: String,
    pub number: i64,
    pub mutation_id: String,
}

/// An account's blob as the database knows it: an upload in progress, or complete. The bytes
/// are the [`crate::blobs::BlobStore`]'s; this row says how many of them are safely there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRow {
    /// The size the device declared (of a complete blob: its size).
    pub size: u64,
    /// Bytes on the store's disk, synced: never more than are there.
    pub received: u64,
    pub complete: bool,
    pub chunks: u64,
    pub chunks_lost: u64,
}

impl BlobRow {
    pub fn status(&self, sha256: BlobHash) -> BlobStatus {
        BlobStatus {
            sha256,
            size: self.size,
            received: self.received,
            complete: self.complete,
            chunks: self.chunks,
            chunks_lost: self.chunks_lost,
        }
    }
}

/// A count or size read back from a database column (always written from a `u64`).
pub(crate) fn stored_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A size to write to a database column: blob sizes are bounded far below `i64::MAX`
/// (`fields::MAX_BLOB_BYTES`), so this fails only on a bug.
pub(crate) fn column_i64(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| StorageError::Internal(format!("{n} does not fit a column")))
}

/// A poke: the account's newest cursor after a commit.
pub type Poke = (AccountId, Cursor);

/// The `server_meta` keys of a database's [`History`], in both backends.
pub(crate) const HISTORY_DATABASE: &str = "database_id";
pub(crate) const HISTORY_EPOCH: &str = "epoch";

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for /v1/health.
    fn kind(&self) -> &'static str;

    /// The history this database holds (its identity and epoch), named in every reply.
    fn history(&self) -> History;

    async fn create_account(
        &self,
        email: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<AccountId>;

    /// The account and password hash for an email, if it exists.
    async fn password_hash(&self, email: &str) -> Result<Option<(AccountId, String)>>;

    async fn create_token(&self, token: NewToken) -> Result<()>;

    /// The owner of a token that exists and is not revoked.
    async fn token(&self, hash: &str) -> Result<Option<TokenOwner>>;

    async fn revoke_token(&self, hash: &str, now_ms: i64) -> Result<()>;

    /// Counts one more attempt under `key` in the window starting at `window_ms`; returns the
    /// count so far. Kept in the database so every instance sees the same limit.
    async fn count_attempt(&self, key: &str, window_ms: i64) -> Result<u32>;

    /// Applies a checked batch in one transaction (see [`crate::plan`]).
    async fn push(
        &self,
        account: AccountId,
        client: ClientId,
        mutations: Vec<Mutation>,
        now_ms: u64,
    ) -> Result<PushOutcome>;

    /// The changes after `cursor`. With `chain` (what the device got with that cursor) the
    /// commit at `cursor` must be the one the device saw there ([`StorageError::HistoryChanged`]
    /// if not); a cursor whose commit predates chains is taken as it is.
    async fn pull(
        &self,
        account: AccountId,
        client: ClientId,
        cursor: Cursor,
        chain: Option<String>,
        limit: u32,
    ) -> Result<PullPage>;

    /// The account's newest cursor.
    async fn cursor(&self, account: AccountId) -> Result<Cursor>;

    /// The account's running digest and the cursor it is of, read together.
    async fn digest(&self, account: AccountId) -> Result<AccountDigest>;

    /// Pokes after every commit, from every instance on this database.
    fn pokes(&self) -> broadcast::Receiver<Poke>;

    /// What an audit reads (see [`AuditRows`]), from one snapshot.
    async fn audit_rows(&self) -> Result<AuditRows>;

    /// Where blobs go when the operator names no place (`<data-dir>/blobs` for SQLite; a
    /// database server has no directory of its own to offer).
    fn default_blob_dir(&self) -> Option<PathBuf> {
        None
    }

    /// The account's blob or upload of `hash`, if any.
    async fn blob(&self, account: AccountId, hash: &BlobHash) -> Result<Option<BlobRow>>;

    /// The bytes of blobs the account keeps: complete ones and uploads in progress, each at
    /// its declared size, so that many partial uploads cannot dodge a quota.
    async fn blob_usage(&self, account: AccountId) -> Result<u64>;

    /// Starts the upload of `hash` afresh (a new one, or one begun over): `size` bytes
    /// declared, none received, counts at zero. With a `quota`, refused with
    /// [`StorageError::OverQuota`] if the account's other blobs and this one would pass it;
    /// checked and written in one transaction, so that concurrent uploads cannot pass it
    /// together.
    async fn begin_blob(
        &self,
        account: AccountId,
        hash: &BlobHash,
        size: u64,
        quota: Option<u64>,
        now_ms: i64,
    ) -> Result<BlobRow>;

    /// Records a chunk now synced to the store: `received` moves from `from` to `to`, if the
    /// upload still stands at `from` and is not complete (`None` otherwise, nothing changed).
    async fn blob_received(
        &self,
        account: AccountId,
        hash: &BlobHash,
        from: u64,
        to: u64,
        now_ms: i64,
    ) -> Result<Option<BlobRow>>;

    /// Counts a chunk that arrived but was not kept (cut short, at the wrong offset, damaged).
    async fn blob_lost(&self, account: AccountId, hash: &BlobHash, now_ms: i64) -> Result<()>;

    /// Marks the upload complete: its bytes matched its name and are in place in the store.
    /// Its grace (collection) starts afresh: it has been unreferenced for no time yet.
    async fn blob_complete(
        &self,
        account: AccountId,
        hash: &BlobHash,
        now_ms: i64,
    ) -> Result<Option<BlobRow>>;

    /// Collection's sweep of every account's blobs, in one transaction: each row judged by
    /// [`crate::blobs::collect::verdict`] (whether a live attachment record of its account
    /// names it, its `unreferenced_ms` and `updated_ms`), marked, cleared or deleted
    /// accordingly. Returns the rows deleted, whose bytes are the caller's to remove. A row that
    /// changes while the sweep runs (an upload begun again, an attachment pushed) is judged as
    /// it is then, never as it was.
    async fn sweep_blobs(&self, now_ms: i64, grace_ms: i64) -> Result<Sweep>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_fields_that_are_not_json_fail_the_request() {
        let bad = PulledRecord::new(
            Entity::Note,
            "x".into(),
            Version(1),
            Cursor(1),
            false,
            "{\"title\": ".into(),
        );
        assert!(matches!(bad, Err(StorageError::Internal(_))));
    }
}
