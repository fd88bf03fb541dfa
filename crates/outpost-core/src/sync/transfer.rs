//! Attachments' bytes between this device and the server (DESIGN.md, "Attachments"). Uploads go
//! in chunks the server acknowledges and resume from the server's own count after a cut, a
//! stall or a kill -9 of either side; downloads resume from what arrived. This runs beside the
//! record sync, never in front of it: a note edited while a 20 MB photo goes up is sent by the
//! sync cycle at once.
//!
//! What waits is in the `blobs` table (see `crate::attachments`), so nothing here is lost with
//! the process: a blob stays `waiting` until the server says it holds every byte.

use super::blocking;
use super::client::{SyncClient, SyncError};
use crate::Store;
use crate::error::Result as StoreResult;
use outpost_protocol::blobs::{BlobHash, MAX_CHUNK_BYTES, codes};
use sha2::Sha256;
use std::io::Write as _;
use tracing::Instrument as _;

/// What one run of the transfers did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferReport {
    pub uploaded: u64,
    pub downloaded: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Transfers that failed in a way the user must act on (too large, over quota, a damaged
    /// copy): each is marked failed with its reason.
    pub failed: u64,
    /// Blobs asked for that the server does not have yet: the device that added them has not
    /// sent them. Tried again later.
    pub not_yet_on_server: u64,
}

/// The chunk size used when the server does not say (and the most it may ask for).
const DEFAULT_CHUNK_BYTES: u64 = 1024 * 1024;

/// The smallest chunk sent, whatever the server says (each costs a request and a disk sync).
const MIN_CHUNK_BYTES: u64 = 16 * 1024;

/// How much of a download is gathered before it is written out.
const WRITE_EVERY: usize = 1024 * 1024;

/// How many times one run starts an upload over after the server found the whole blob wrong
/// before it gives up on it (the copy here is checked each time).
const MISMATCH_RETRIES: u32 = 2;

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
    .unwrap_or(i64::MAX)
}

/// Sends every blob waiting to go up and fetches every blob asked for, until none is left or
/// the network fails (an error: the caller backs off and calls again; what was acknowledged
/// stays acknowledged).
pub async fn run_transfers(
    store: &Store,
    client: &SyncClient,
) -> Result<TransferReport, SyncError> {
    let span = tracing::info_span!("transfers", client = %store.client_id());
    transfers(store, client).instrument(span).await
}

async fn transfers(store: &Store, client: &SyncClient) -> Result<TransferReport, SyncError> {
    let mut report = TransferReport::default();
    let work = blocking(|| store.transfer_work(now_ms()))?;
    // The limits are asked for once even with nothing to send: the app says them before the
    // first attach, not after its upload fails.
    if !work && blocking(|| store.blob_limits())?.is_some() {
        return Ok(report);
    }
    let limits = client.blob_limits().await?;
    blocking(|| store.set_blob_limits(&limits))?;
    if !work {
        return Ok(report);
    }
    let chunk = match limits.chunk_bytes {
        0 => DEFAULT_CHUNK_BYTES,
        n => n.clamp(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES as u64),
    };
    let chunk = usize::try_from(chunk).unwrap_or(MAX_CHUNK_BYTES);
    let mut tried = std::collections::HashSet::new();
    while let Some((hash, size)) = blocking(|| store.next_upload(now_ms()))? {
        if !tried.insert(hash.clone()) {
            break;
        }
        upload(store, client, &hash, size, chunk, &mut report).await?;
    }
    tried.clear();
    while let Some((hash, size)) = blocking(|| store.next_download(now_ms()))? {
        if !tried.insert(hash.clone()) {
            break;
        }
        download(store, client, &hash, size, &mut report).await?;
    }
    Ok(report)
}

/// Whether a server error is about this blob alone and will not go away by itself: the blob is
/// marked failed with the server's words, and the others go on.
fn refused(e: &SyncError) -> Option<String> {
    match e {
        SyncError::Server { code, message, .. }
            if [codes::BLOB_TOO_LARGE, codes::OVER_QUOTA].contains(&code.as_str())
                || code == outpost_protocol::api::codes::BAD_REQUEST =>
        {
            Some(message.clone())
        }
        _ => None,
    }
}

async fn upload(
    store: &Store,
    client: &SyncClient,
    hash: &BlobHash,
    size: u64,
    chunk: usize,
    report: &mut TransferReport,
) -> Result<(), SyncError> {
    let files = store.blob_files();
    if !files.has(hash) {
        let why = "the file is missing from this device's data folder; attach it again";
        blocking(|| store.upload_failed(hash, why))?;
        report.failed += 1;
        return Ok(());
    }
    let mut mismatches = 0;
    let mut status = match client.blob_start(hash, size).await {
        Ok(s) => s,
        Err(e) => return give_up_or_fail(store, hash, e, report),
    };
    let mut sent_now = 0u64;
    while !status.complete {
        let offset = status.received;
        let len = usize::try_from(size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(chunk);
        let bytes = blocking(|| files.read_at(hash, offset, len))?;
        if bytes.is_empty() && offset < size {
            let why =
                "the file on this device is shorter than when it was attached; attach it again";
            blocking(|| store.upload_failed(hash, why))?;
            report.failed += 1;
            return Ok(());
        }
        let n = bytes.len() as u64;
        match client.blob_chunk(hash, offset, bytes).await {
            Ok(next) => {
                sent_now += next.received.saturating_sub(offset).min(n);
                status = next;
                let received = status.received;
                blocking(|| store.upload_progress(hash, received))?;
                crate::testhook::pause_at(crate::testhook::BLOB_CHUNK_SENT);
            }
            Err(SyncError::Server { code, .. }) if code == codes::OFFSET_MISMATCH => {
                // Another attempt (a reply lost in a cut) moved the upload on: ask where.
                status = client.blob_start(hash, size).await?;
            }
            Err(SyncError::Server { code, .. }) if code == codes::CHUNK_DAMAGED => {
                tracing::warn!(%hash, offset, "the server received a damaged chunk; sending it again");
                status = client.blob_start(hash, size).await?;
            }
            Err(SyncError::Server { code, message, .. }) if code == codes::BLOB_MISMATCH => {
                mismatches += 1;
                let intact = blocking(|| files.verify(hash))?;
                if !intact || mismatches > MISMATCH_RETRIES {
                    let why = if intact {
                        format!("the server keeps finding the file damaged ({message})")
                    } else {
                        "the copy on this device is damaged; attach the file again".to_owned()
                    };
                    blocking(|| store.upload_failed(hash, &why))?;
                    report.failed += 1;
                    return Ok(());
                }
                status = client.blob_start(hash, size).await?;
            }
            Err(e) => return give_up_or_fail(store, hash, e, report),
        }
    }
    blocking(|| store.upload_done(hash))?;
    report.uploaded += 1;
    report.bytes_up += sent_now;
    tracing::info!(%hash, size, sent = sent_now, "attachment uploaded");
    Ok(())
}

fn give_up_or_fail(
    store: &Store,
    hash: &BlobHash,
    e: SyncError,
    report: &mut TransferReport,
) -> Result<(), SyncError> {
    if let Some(why) = refused(&e) {
        blocking(|| store.upload_failed(hash, &why))?;
        report.failed += 1;
        return Ok(());
    }
    if !e.is_transient() {
        return Err(e);
    }
    blocking(|| store.transfer_later(hash, &e.to_string(), now_ms()))?;
    Err(e)
}

async fn download(
    store: &Store,
    client: &SyncClient,
    hash: &BlobHash,
    size: u64,
    report: &mut TransferReport,
) -> Result<(), SyncError> {
    let files = store.blob_files();
    let partial = files.partial(hash);
    let have = blocking(|| partial_len(&partial, size))?;
    let Some(mut body) = client.blob_download(hash, have).await? else {
        let why = "not on the server yet: the device that added it has not sent it";
        blocking(|| store.transfer_later(hash, why, now_ms()))?;
        report.not_yet_on_server += 1;
        return Ok(());
    };
    // Hashed as it arrives (what a resumed download already had, first): the file is read
    // back once less than checking it at the end would.
    let (mut file, mut hasher) = blocking(|| open_partial(&partial, body.from))?;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_EVERY);
    let mut got = 0u64;
    loop {
        let piece = match body.next().await {
            Ok(p) => p,
            Err(e) => {
                // Keep what arrived: the next try asks for the rest.
                blocking(|| write_out(&mut file, &partial, &mut buf, &mut hasher))?;
                blocking(|| store.transfer_later(hash, &e.to_string(), now_ms()))?;
                return Err(e);
            }
        };
        let Some(piece) = piece else { break };
        got += piece.len() as u64;
        buf.extend_from_slice(&piece);
        if buf.len() >= WRITE_EVERY {
            blocking(|| write_out(&mut file, &partial, &mut buf, &mut hasher))?;
            crate::testhook::pause_at(crate::testhook::BLOB_PIECE_WRITTEN);
        }
    }
    blocking(|| write_out(&mut file, &partial, &mut buf, &mut hasher))?;
    let settled = blocking(|| -> StoreResult<bool> {
        file.sync_all().map_err(|e| crate::Error::io(&partial, e))?;
        drop(file);
        if &BlobHash::from_digest(&sha2::Digest::finalize(hasher)) != hash {
            let _ = std::fs::remove_file(&partial);
            return Ok(false);
        }
        files.settle(&partial, hash)?;
        Ok(true)
    })?;
    if !settled {
        let why = "the file arrived damaged; it will be fetched again";
        tracing::warn!(%hash, "a downloaded blob did not match its name; dropped");
        blocking(|| store.transfer_later(hash, why, now_ms()))?;
        return Ok(());
    }
    blocking(|| store.download_done(hash))?;
    report.downloaded += 1;
    report.bytes_down += got;
    tracing::info!(%hash, size, received = got, "attachment downloaded");
    Ok(())
}

/// How much of a download is already here (nothing if the partial file is longer than the
/// blob: it is not this blob's, start over).
fn partial_len(path: &std::path::Path, size: u64) -> StoreResult<u64> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() <= size => Ok(m.len()),
        Ok(_) => {
            std::fs::remove_file(path).map_err(|e| crate::Error::io(path, e))?;
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}

/// The partial file, cut to `from` (the reply starts there: what is beyond it goes), and the
/// hash of what it holds up to there.
fn open_partial(path: &std::path::Path, from: u64) -> StoreResult<(std::fs::File, Sha256)> {
    use sha2::Digest as _;
    use std::io::Read as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| crate::Error::io(path, e))?;
    file.set_len(from).map_err(|e| crate::Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; WRITE_EVERY];
    loop {
        let n = file.read(&mut buf).map_err(|e| crate::Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((file, hasher))
}

fn write_out(
    file: &mut std::fs::File,
    path: &std::path::Path,
    buf: &mut Vec<u8>,
    hasher: &mut Sha256,
) -> StoreResult<()> {
    use sha2::Digest as _;
    hasher.update(buf.as_slice());
    file.write_all(buf).map_err(|e| crate::Error::io(path, e))?;
    buf.clear();
    Ok(())
}
