//! Blobs as files in one directory (by default `<data-dir>/blobs`, beside the SQLite
//! database):
//!
//! - `uploads/<account>/<sha256>.part`: an upload in progress, exactly the bytes acknowledged
//!   (plus, after a crash, perhaps a torn tail that the next chunk cuts off);
//! - `accounts/<account>/<first two hex digits>/<sha256>`: a blob, checked against its name.
//!
//! Paths are built only from an [`AccountId`] and a parsed [`BlobHash`], so no request can name
//! a file outside the directory. All file work runs on the blocking pool.

use super::{BlobError, BlobStore, ByteStream, Finished};
use async_trait::async_trait;
use bytes::Bytes;
use outpost_protocol::api::AccountId;
use outpost_protocol::blobs::BlobHash;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes read at a time when hashing a finished upload or streaming a blob.
const READ_BUFFER: usize = 256 * 1024;

pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    /// A store in `root`; directories are made as uploads need them.
    pub fn new(root: impl Into<PathBuf>) -> FileBlobStore {
        FileBlobStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the upload of `hash` by `account` is kept while in progress.
    pub fn part_path(&self, account: AccountId, hash: &BlobHash) -> PathBuf {
        self.root
            .join("uploads")
            .join(account.to_string())
            .join(format!("{hash}.part"))
    }

    /// Where the blob `hash` of `account` is kept once complete.
    pub fn blob_path(&self, account: AccountId, hash: &BlobHash) -> PathBuf {
        let name = hash.as_str();
        self.root
            .join("accounts")
            .join(account.to_string())
            .join(&name[..2])
            .join(name)
    }
}

fn error(what: &str, path: &Path, e: std::io::Error) -> BlobError {
    let detail = format!("{what} {}: {e}", path.display());
    // ENOSPC and EDQUOT, also where the standard library names them otherwise.
    let full = matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(28 | 122));
    if full {
        BlobError::Full(detail)
    } else if e.kind() == ErrorKind::ReadOnlyFilesystem {
        BlobError::ReadOnly(detail)
    } else {
        BlobError::Io(detail)
    }
}

/// Makes `dir` (under `root`) if missing, syncing each parent that gained an entry: a file
/// synced in a directory that a crash forgets is lost all the same.
fn make_dir(root: &Path, dir: &Path) -> Result<(), BlobError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| error("creating", dir, e))?;
    let mut at = dir.parent();
    while let Some(parent) = at {
        sync_dir(parent)?;
        if parent == root || !parent.starts_with(root) {
            break;
        }
        at = parent.parent();
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| error("syncing", dir, e))
}

fn parent(path: &Path) -> Result<&Path, BlobError> {
    path.parent()
        .ok_or_else(|| BlobError::Io(format!("{} has no directory", path.display())))
}

fn append(root: &Path, path: &Path, offset: u64, chunk: &[u8]) -> Result<(), BlobError> {
    let (mut file, created) = match OpenOptions::new().write(true).open(path) {
        Ok(file) => (file, false),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if offset > 0 {
                return Err(BlobError::Gap { have: 0, offset });
            }
            make_dir(root, parent(path)?)?;
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(|e| error("creating", path, e))?;
            (file, true)
        }
        Err(e) => return Err(error("opening", path, e)),
    };
    let have = file
        .metadata()
        .map_err(|e| error("reading", path, e))?
        .len();
    if have < offset {
        return Err(BlobError::Gap { have, offset });
    }
    if have > offset {
        // Bytes past the last acknowledged chunk: a write the server crashed in, or a chunk
        // whose database update failed. Never counted, so never kept.
        file.set_len(offset)
            .map_err(|e| error("truncating", path, e))?;
    }
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(chunk))
        .map_err(|e| error("writing", path, e))?;
    // The length as well as the bytes: `fdatasync` covers what reading the data back needs.
    file.sync_data().map_err(|e| error("syncing", path, e))?;
    if created {
        sync_dir(parent(path)?)?;
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<BlobHash, BlobError> {
    let mut file = File::open(path).map_err(|e| error("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(error("reading", path, e)),
        };
        hasher.update(&buffer[..n]);
    }
    Ok(BlobHash::from_digest(&hasher.finalize()))
}

fn finish(root: &Path, part: &Path, blob: &Path, hash: &BlobHash) -> Result<Finished, BlobError> {
    let actual = hash_file(part)?;
    if actual != *hash {
        remove(part)?;
        return Ok(Finished::Mismatch { actual });
    }
    let dir = parent(blob)?;
    make_dir(root, dir)?;
    std::fs::rename(part, blob).map_err(|e| error("moving into place", blob, e))?;
    sync_dir(dir)?;
    Ok(Finished::Stored)
}

fn remove(path: &Path) -> Result<(), BlobError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(error("removing", path, e)),
        _ => Ok(()),
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(format!("blob store task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FileBlobStore {
    fn kind(&self) -> &'static str {
        "files"
    }

    async fn part_len(
        &self,
        account: AccountId,
        hash: &BlobHash,
    ) -> Result<Option<u64>, BlobError> {
        let path = self.part_path(account, hash);
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(error("reading", &path, e)),
        })
        .await
    }

    async fn append(
        &self,
        account: AccountId,
        hash: &BlobHash,
        offset: u64,
        chunk: Bytes,
    ) -> Result<(), BlobError> {
        let (root, path) = (self.root.clone(), self.part_path(account, hash));
        blocking(move || append(&root, &path, offset, &chunk)).await
    }

    async fn finish(&self, account: AccountId, hash: &BlobHash) -> Result<Finished, BlobError> {
        let root = self.root.clone();
        let (part, blob) = (self.part_path(account, hash), self.blob_path(account, hash));
        let hash = hash.clone();
        blocking(move || finish(&root, &part, &blob, &hash)).await
    }

    async fn discard(&self, account: AccountId, hash: &BlobHash) -> Result<(), BlobError> {
        let path = self.part_path(account, hash);
        blocking(move || remove(&path)).await
    }

    async fn remove(&self, account: AccountId, hash: &BlobHash) -> Result<(), BlobError> {
        let (part, blob) = (self.part_path(account, hash), self.blob_path(account, hash));
        // Directories stay: an upload may be about to move a blob into one.
        blocking(move || {
            remove(&blob)?;
            remove(&part)
        })
        .await
    }

    async fn has(&self, account: AccountId, hash: &BlobHash) -> Result<bool, BlobError> {
        let path = self.blob_path(account, hash);
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(error("reading", &path, e)),
        })
        .await
    }

    async fn read(
        &self,
        account: AccountId,
        hash: &BlobHash,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteStream>, BlobError> {
        let path = self.blob_path(account, hash);
        // tokio's file does its reads on the blocking pool, a piece at a time.
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(error("opening", &path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| error("reading", &path, e))?
            .len();
        if start.saturating_add(len) > size {
            return Err(BlobError::Io(format!(
                "{} is {size} bytes, shorter than the database says",
                path.display()
            )));
        }
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| error("reading", &path, e))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_BUFFER);
        Ok(Some(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn account() -> AccountId {
        AccountId(uuid::Uuid::now_v7())
    }

    async fn read_all(
        store: &FileBlobStore,
        a: AccountId,
        h: &BlobHash,
        start: u64,
        len: u64,
    ) -> Vec<u8> {
        let mut stream = store
            .read(a, h, start, len)
            .await
            .expect("read")
            .expect("stored");
        let mut out = Vec::new();
        while let Some(piece) = stream.next().await {
            out.extend_from_slice(&piece.expect("piece"));
        }
        out
    }

    #[tokio::test]
    async fn chunks_append_a_torn_tail_is_cut_and_a_checked_blob_reads_back() {
        let dir = tempfile::tempdir().expect("dir");
        let store = FileBlobStore::new(dir.path());
        let a = account();
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let hash = BlobHash::of(&bytes);
        store
            .append(a, &hash, 0, Bytes::copy_from_slice(&bytes[..300_000]))
            .await
            .expect("first");
        // A crash mid-write leaves bytes nobody acknowledged, here more than the next chunk.
        let part = store.part_path(a, &hash);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&part)
            .and_then(|mut f| f.write_all(&[7; 500_000]))
            .expect("torn tail");
        assert_eq!(store.part_len(a, &hash).await.expect("len"), Some(800_000));
        store
            .append(a, &hash, 300_000, Bytes::copy_from_slice(&bytes[300_000..]))
            .await
            .expect("second");
        assert_eq!(
            store.part_len(a, &hash).await.expect("len"),
            Some(700_000),
            "the tail is cut off"
        );
        assert!(matches!(
            store
                .append(a, &hash, 800_000, Bytes::from_static(b"x"))
                .await,
            Err(BlobError::Gap {
                have: 700_000,
                offset: 800_000
            })
        ));
        assert!(!store.has(a, &hash).await.expect("has"));
        assert_eq!(
            store.finish(a, &hash).await.expect("finish"),
            Finished::Stored
        );
        assert!(store.has(a, &hash).await.expect("has"));
        assert_eq!(store.part_len(a, &hash).await.expect("len"), None);
        assert_eq!(read_all(&store, a, &hash, 0, 700_000).await, bytes);
        assert_eq!(
            read_all(&store, a, &hash, 699_990, 10).await,
            &bytes[699_990..]
        );
        // Another account has nothing under that name.
        assert!(
            store
                .read(account(), &hash, 0, 1)
                .await
                .expect("read")
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_upload_that_does_not_match_its_name_is_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let store = FileBlobStore::new(dir.path());
        let a = account();
        let hash = BlobHash::of(b"what the device meant");
        store
            .append(a, &hash, 0, Bytes::from_static(b"what arrived"))
            .await
            .expect("append");
        assert_eq!(
            store.finish(a, &hash).await.expect("finish"),
            Finished::Mismatch {
                actual: BlobHash::of(b"what arrived")
            }
        );
        assert_eq!(store.part_len(a, &hash).await.expect("len"), None);
        assert!(!store.has(a, &hash).await.expect("has"));
        assert!(matches!(
            store.append(a, &hash, 5, Bytes::from_static(b"x")).await,
            Err(BlobError::Gap { have: 0, offset: 5 })
        ));
    }

    #[tokio::test]
    async fn removing_a_blob_takes_its_file_and_any_upload_of_it() {
        let dir = tempfile::tempdir().expect("dir");
        let store = FileBlobStore::new(dir.path());
        let (a, b) = (account(), account());
        let hash = BlobHash::of(b"photo");
        for owner in [a, b] {
            store
                .append(owner, &hash, 0, Bytes::from_static(b"photo"))
                .await
                .expect("append");
            assert_eq!(
                store.finish(owner, &hash).await.expect("finish"),
                Finished::Stored
            );
        }
        // An upload begun again beside the blob.
        store
            .append(a, &hash, 0, Bytes::from_static(b"pho"))
            .await
            .expect("append");
        store.remove(a, &hash).await.expect("remove");
        assert!(!store.has(a, &hash).await.expect("has"));
        assert_eq!(store.part_len(a, &hash).await.expect("len"), None);
        assert!(store.read(a, &hash, 0, 1).await.expect("read").is_none());
        assert!(
            store.has(b, &hash).await.expect("has"),
            "another account's copy stays"
        );
        store
            .remove(a, &hash)
            .await
            .expect("nothing left is no error");
    }

    #[test]
    fn paths_stay_under_the_root() {
        let store = FileBlobStore::new("/srv/blobs");
        let a = AccountId(uuid::Uuid::nil());
        let hash = BlobHash::of(b"x");
        let blob = store.blob_path(a, &hash);
        assert!(blob.starts_with("/srv/blobs/accounts/00000000-0000-0000-0000-000000000000/"));
        assert_eq!(
            blob.parent().and_then(Path::file_name),
            Some(hash.as_str()[..2].as_ref())
        );
        assert!(store.part_path(a, &hash).starts_with("/srv/blobs/uploads/"));
    }
}
