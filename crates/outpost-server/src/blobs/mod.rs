//! Attachments' bytes (DESIGN.md, "Attachments"; the wire contract is
//! `outpost_protocol::blobs`). This module owns the rules of an upload and a download:
//!
//! - the [`BlobStore`] trait, where bytes live: files beside the database ([`files`]) today,
//!   S3-compatible object storage next;
//! - [`Blobs`], the upload rules over a store and the database's bookkeeping
//!   ([`crate::storage::BlobRow`]): a chunk is appended only where the upload stands, and is
//!   on the store's disk, synced, before the database counts it, so the database never claims
//!   a byte that is not there; the chunk that completes a blob is checked against the blob's
//!   name before any device can fetch it; an account keeps one copy per hash;
//! - the limits a server sets ([`BlobConfig`]): the largest blob, the chunk size it asks for,
//!   and a quota per account;
//! - collection ([`collect`]): blobs no attachment refers to any more, and uploads abandoned,
//!   go after a grace period.
//!
//! Handlers ([`crate::routes::blobs`]) only read the request and answer.

pub mod collect;
pub mod files;

use crate::clock::now_i64;
use crate::storage::{BlobRow, Storage, StorageError};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use outpost_protocol::api::AccountId;
use outpost_protocol::blobs::{BlobHash, BlobStatus, Limits, MAX_CHUNK_BYTES};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The largest blob a server takes unless told otherwise (`--max-blob-bytes`).
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 256 * 1024 * 1024;
/// The chunk size a server asks devices for unless told otherwise (`--blob-chunk-bytes`).
pub const DEFAULT_CHUNK_BYTES: u64 = 1024 * 1024;

/// What this server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobConfig {
    pub max_blob_bytes: u64,
    /// At most [`MAX_CHUNK_BYTES`].
    pub chunk_bytes: u64,
    /// The bytes of blobs one account may keep; `None`: no limit.
    pub quota_bytes: Option<u64>,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            quota_bytes: None,
        }
    }
}

/// Bytes read from a store, in pieces.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// How a finished upload turned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Its bytes are the blob its name says: in place, durable, readable.
    Stored,
    /// Its bytes hash to `actual`, not to its name: the store dropped them.
    Mismatch { actual: BlobHash },
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The disk (or the filesystem quota) is full: nothing of this chunk was kept.
    #[error("the blob store is full: {0}")]
    Full(String),
    /// The store cannot write at all (a read-only filesystem).
    #[error("the blob store cannot write: {0}")]
    ReadOnly(String),
    /// The upload has fewer bytes in the store than the database counted: they were lost
    /// outside the server (a disk replaced, files deleted by hand).
    #[error("the upload has {have} bytes in the store, not the {offset} it stands at")]
    Gap { have: u64, offset: u64 },
    #[error("the blob store failed: {0}")]
    Io(String),
}

/// Where blobs' bytes are kept. Every method names a blob by a parsed [`BlobHash`] and the
/// account it belongs to, never by request text; accounts never share a copy (a device must not
/// learn that another account holds some file).
///
/// An upload in progress is separate from the account's blobs: nothing can read it until
/// [`BlobStore::finish`] has checked it.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// `files` (or `s3`), for logs.
    fn kind(&self) -> &'static str;

    /// How many bytes the upload in progress holds, if there is one.
    async fn part_len(&self, account: AccountId, hash: &BlobHash)
    -> Result<Option<u64>, BlobError>;

    /// Writes `chunk` at `offset` of the upload in progress (creating it at offset 0), first
    /// dropping anything past `offset` (a torn write of a chunk never acknowledged). Returns
    /// once the bytes are durable. [`BlobError::Gap`] if the upload holds fewer than `offset`
    /// bytes.
    async fn append(
        &self,
        account: AccountId,
        hash: &BlobHash,
        offset: u64,
        chunk: Bytes,
    ) -> Result<(), BlobError>;

    /// Hashes the whole upload: if it matches `hash` it becomes the account's blob (durable
    /// before this returns); if not, it is dropped.
    async fn finish(&self, account: AccountId, hash: &BlobHash) -> Result<Finished, BlobError>;

    /// Drops the upload in progress, if any.
    async fn discard(&self, account: AccountId, hash: &BlobHash) -> Result<(), BlobError>;

    /// Removes the account's blob and any upload in progress of it (collection: the database
    /// no longer names either). Nothing there is no error.
    async fn remove(&self, account: AccountId, hash: &BlobHash) -> Result<(), BlobError>;

    /// Whether the account's blob is in the store (finished).
    async fn has(&self, account: AccountId, hash: &BlobHash) -> Result<bool, BlobError>;

    /// `len` bytes of the account's blob from `start`, as they are read (never the whole blob
    /// in memory); `None` if the store does not have it.
    async fn read(
        &self,
        account: AccountId,
        hash: &BlobHash,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteStream>, BlobError>;
}

/// Why an upload or a download was refused. Each is one reply of the API (`error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("this blob is {size} bytes; this server takes blobs of at most {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("the server has no upload of this blob: POST /v1/blobs/{{sha256}} first")]
    NoUpload,
    #[error("this account has no blob {0}")]
    NotFound(BlobHash),
    #[error(
        "the upload stands at {received} bytes, not at {offset}: send the chunk that starts at {received}"
    )]
    OffsetMismatch { offset: u64, received: u64 },
    #[error(
        "the chunk's bytes have SHA-256 {actual}, not the {declared} its header names: it was damaged on the way; send it again"
    )]
    ChunkDamaged {
        declared: BlobHash,
        actual: BlobHash,
    },
    #[error(
        "the {size} bytes received have SHA-256 {actual}, not the blob's name: the server dropped them; check the file and upload it again from 0"
    )]
    BlobMismatch { size: u64, actual: BlobHash },
    #[error("a chunk of {len} bytes at {offset} goes past the blob's {size} bytes")]
    PastTheEnd { offset: u64, len: u64, size: u64 },
    #[error("an empty chunk: send at least one byte")]
    EmptyChunk,
    #[error("this server keeps no attachments (it has no blob store)")]
    NoStore,
    #[error(transparent)]
    Store(#[from] BlobError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The upload rules over a [`BlobStore`] and the database's bookkeeping (see the module doc).
pub struct Blobs {
    store: Arc<dyn BlobStore>,
    config: BlobConfig,
    locks: UploadLocks,
}

impl Blobs {
    pub fn new(store: Arc<dyn BlobStore>, config: BlobConfig) -> Blobs {
        let config = BlobConfig {
            chunk_bytes: config.chunk_bytes.clamp(1, MAX_CHUNK_BYTES as u64),
            ..config
        };
        Blobs {
            store,
            config,
            locks: UploadLocks::default(),
        }
    }

    /// Blobs as files under `dir` (see [`files::FileBlobStore`]).
    pub fn in_dir(dir: impl Into<PathBuf>, config: BlobConfig) -> Blobs {
        Blobs::new(Arc::new(files::FileBlobStore::new(dir)), config)
    }

    pub fn config(&self) -> &BlobConfig {
        &self.config
    }

    pub fn store(&self) -> &dyn BlobStore {
        self.store.as_ref()
    }

    /// What this server takes, and what the account uses.
    pub async fn limits(
        &self,
        storage: &dyn Storage,
        account: AccountId,
    ) -> Result<Limits, UploadError> {
        Ok(Limits {
            max_blob_bytes: self.config.max_blob_bytes,
            chunk_bytes: self.config.chunk_bytes,
            quota_bytes: self.config.quota_bytes,
            used_bytes: storage.blob_usage(account).await?,
        })
    }

    /// `POST /v1/blobs/{sha256}`: begins the upload of a blob of `size` bytes, or says where
    /// the one in progress stands (all of it, `complete`, for a blob the account has).
    pub async fn start(
        &self,
        storage: &dyn Storage,
        account: AccountId,
        hash: &BlobHash,
        size: u64,
    ) -> Result<BlobStatus, UploadError> {
        let too_large = size > self.config.max_blob_bytes;
        let _upload = self.locks.lock(account, hash).await;
        if let Some(row) = storage.blob(account, hash).await?
            && let Some(kept) = self.resume(storage, account, hash, row, size).await?
            // A blob the account has is its, whatever the limit is now.
            && (kept.complete || !too_large)
        {
            return Ok(kept.status(hash.clone()));
        }
        if too_large {
            return Err(UploadError::TooLarge {
                size,
                max: self.config.max_blob_bytes,
            });
        }
        // New, of another size, or its bytes lost: from 0, and nothing left of an earlier try.
        self.store.discard(account, hash).await?;
        let row = storage
            .begin_blob(account, hash, size, self.config.quota_bytes, now_i64())
            .await?;
        tracing::info!(%account, %hash, size, "upload begun");
        if size == 0 {
            // Nothing to send: the (empty) blob is checked against its name at once.
            self.store.append(account, hash, 0, Bytes::new()).await?;
            return self.finish(storage, account, hash, row).await;
        }
        Ok(row.status(hash.clone()))
    }

    /// The row of an earlier start, if the upload can go on from it (or is done), reconciled
    /// with the store: the store's word wins where a crash left the two apart.
    async fn resume(
        &self,
        storage: &dyn Storage,
        account: AccountId,
        hash: &BlobHash,
        row: BlobRow,
        size: u64,
    ) -> Result<Option<BlobRow>, UploadError> {
        let in_store = self.store.has(account, hash).await?;
        if row.complete {
            if in_store {
                return Ok(Some(row));
            }
            tracing::warn!(%account, %hash, "a complete blob is missing from the store: taking it again");
            return Ok(None);
        }
        if in_store {
            // Checked and moved into place, then the server stopped before the database
            // said so: only a finished, matching upload gets there.
            return Ok(storage.blob_complete(account, hash, now_i64()).await?);
        }
        if row.size != size {
            tracing::info!(%account, %hash, was = row.size, size, "upload restarted at another size");
            return Ok(None);
        }
        let on_disk = self.store.part_len(account, hash).await?.unwrap_or(0);
        if on_disk < row.received {
            tracing::warn!(%account, %hash, on_disk, counted = row.received, "an upload lost bytes it had acknowledged: starting over");
            return Ok(None);
        }
        Ok(Some(row))
    }

    /// Counts a chunk that came in cut short.
    pub async fn cut_short(
        &self,
        storage: &dyn Storage,
        account: AccountId,
        hash: &BlobHash,
    ) -> Result<(), UploadError> {
        storage.blob_lost(account, hash, now_i64()).await?;
        Ok(())
    }

    /// `PATCH /v1/blobs/{sha256}?offset=N`: appends `chunk` (whose SHA-256 the device says is
    /// `declared`) if the upload stands at `offset`; the chunk that completes the blob is
    /// checked against its name.
    pub async fn append(
        &self,
        storage: &dyn Storage,
        account: AccountId,
        hash: &BlobHash,
        offset: u64,
        declared: &BlobHash,
        chunk: Bytes,
    ) -> Result<BlobStatus, UploadError> {
        // Hashed before the lock: a slow hash of one upload's chunk holds up nobody.
        let actual = {
            let chunk = chunk.clone();
            tokio::task::spawn_blocking(move || BlobHash::of(&chunk))
                .await
                .map_err(|e| StorageError::Internal(format!("hashing a chunk: {e}")))?
        };
        let _upload = self.locks.lock(account, hash).await;
        let now = now_i64();
        let row = storage
            .blob(account, hash)
            .await?
            .ok_or(UploadError::NoUpload)?;
        if row.complete {
            // The reply to the last chunk was lost and the device sends it again: done.
            return Ok(row.status(hash.clone()));
        }
        if actual != *declared {
            storage.blob_lost(account, hash, now).await?;
            return Err(UploadError::ChunkDamaged {
                declared: declared.clone(),
                actual,
            });
        }
        if offset != row.received {
            storage.blob_lost(account, hash, now).await?;
            return Err(UploadError::OffsetMismatch {
                offset,
                received: row.received,
            });
        }
        let len = chunk.len() as u64;
        if len == 0 {
            return Err(UploadError::EmptyChunk);
        }
        let end = offset.saturating_add(len);
        if end > row.size {
            return Err(UploadError::PastTheEnd {
                offset,
                len,
                size: row.size,
            });
        }
        match self.store.append(account, hash, offset, chunk).await {
            Ok(()) => {}
            Err(BlobError::Gap { have, .. }) => {
                tracing::warn!(%account, %hash, have, counted = offset, "an upload lost bytes it had acknowledged: starting over");
                self.store.discard(account, hash).await?;
                storage
                    .begin_blob(account, hash, row.size, None, now)
                    .await?;
                return Err(UploadError::OffsetMismatch {
                    offset,
                    received: 0,
                });
            }
            Err(e) => return Err(e.into()),
        }
        // Only now, with the bytes synced: the database never counts what is not on disk.
        let Some(row) = storage
            .blob_received(account, hash, offset, end, now)
            .await?
        else {
            // Another instance moved the upload meanwhile; where it stands now decides.
            let received = storage
                .blob(account, hash)
                .await?
                .map_or(0, |row| row.received);
            return Err(UploadError::OffsetMismatch { offset, received });
        };
        if row.received == row.size {
            return self.finish(storage, account, hash, row).await;
        }
        Ok(row.status(hash.clone()))
    }

    /// Checks a fully received upload against its name: into place and complete, or dropped and
    /// begun afresh.
    async fn finish(
        &self,
        storage: &dyn Storage,
        account: AccountId,
        hash: &BlobHash,
        row: BlobRow,
    ) -> Result<BlobStatus, UploadError> {
        let now = now_i64();
        match self.store.finish(account, hash).await? {
            Finished::Stored => {
                let row = storage
                    .blob_complete(account, hash, now)
                    .await?
                    .ok_or(UploadError::NoUpload)?;
                tracing::info!(%account, %hash, size = row.size, chunks = row.chunks, lost = row.chunks_lost, "blob complete");
                Ok(row.status(hash.clone()))
            }
            Finished::Mismatch { actual } => {
                tracing::warn!(%account, %hash, %actual, size = row.size, "an upload does not match its name: dropped");
                storage
                    .begin_blob(account, hash, row.size, None, now)
                    .await?;
                Err(UploadError::BlobMismatch {
                    size: row.size,
                    actual,
                })
            }
        }
    }

    /// The size of the account's complete blob ([`UploadError::NotFound`] if it has none:
    /// another account's blob is not found either).
    pub async fn size_of(
        &self,
        storage: &dyn Storage,
        account: AccountId,
        hash: &BlobHash,
    ) -> Result<u64, UploadError> {
        match storage.blob(account, hash).await? {
            Some(row) if row.complete => Ok(row.size),
            _ => Err(UploadError::NotFound(hash.clone())),
        }
    }

    /// `len` bytes of the account's blob from `start`, streamed from the store.
    pub async fn read(
        &self,
        account: AccountId,
        hash: &BlobHash,
        start: u64,
        len: u64,
    ) -> Result<ByteStream, UploadError> {
        match self.store.read(account, hash, start, len).await? {
            Some(stream) => Ok(stream),
            None => {
                tracing::error!(%account, %hash, "a complete blob is missing from the store");
                Err(UploadError::NotFound(hash.clone()))
            }
        }
    }
}

/// One upload handled at a time per account and blob on this instance: two requests for one
/// upload (a device retrying while its first try still runs) must not interleave their writes.
/// Across instances the database's compare-and-set on `received` keeps the count right.
#[derive(Default)]
struct UploadLocks(Mutex<HashMap<UploadKey, Weak<UploadLock>>>);

type UploadKey = (AccountId, BlobHash);
type UploadLock = tokio::sync::Mutex<()>;

impl UploadLocks {
    async fn lock(&self, account: AccountId, hash: &BlobHash) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Entries of uploads no request holds any more.
            if locks.len() >= 64 {
                locks.retain(|_, lock| lock.strong_count() > 0);
            }
            let key = (account, hash.clone());
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(UploadLock::new(()));
                    locks.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_upload_is_handled_at_a_time_and_its_lock_is_forgotten_after() {
        let locks = UploadLocks::default();
        let account = AccountId(uuid::Uuid::now_v7());
        let (a, b) = (BlobHash::of(b"a"), BlobHash::of(b"b"));
        let held = locks.lock(account, &a).await;
        // Another blob is not held up.
        let _other = locks.lock(account, &b).await;
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            locks.lock(account, &a),
        )
        .await;
        assert!(waiting.is_err(), "a second request for one upload waits");
        drop(held);
        drop(locks.lock(account, &a).await);
        for n in 0..100u32 {
            drop(locks.lock(account, &BlobHash::of(&n.to_le_bytes())).await);
        }
        let kept = locks.0.lock().expect("locks").len();
        assert!(kept < 70, "released locks are dropped, {kept} kept");
    }
}
