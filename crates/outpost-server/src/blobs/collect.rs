//! Collecting blobs no attachment refers to any more (docs/protocol.md, "Collection").
//!
//! A blob is **referenced** while a record of its account with entity `attachment`, not
//! purged, names it in `sha256` and is not `deleted: true`. References are per account, as
//! copies are: another account's attachment never keeps this account's copy.
//!
//! Nothing goes at once. A sweep ([`Storage::sweep_blobs`], one transaction) judges each row of
//! `blobs` by [`verdict`], the one place the rules are:
//!
//! - a complete blob found unreferenced is marked (`unreferenced_ms`, the sweep's time); one
//!   referenced again loses its mark; one unreferenced since before `now - grace` is removed;
//! - an upload in progress untouched (`updated_ms`) since before `now - grace` is removed: a
//!   device that comes back later starts it over from 0.
//!
//! Then [`Blobs::collect`] removes the bytes of the rows the sweep deleted from the
//! [`BlobStore`](super::BlobStore), each under its upload's lock and only if the account has
//! not begun that blob again meanwhile (then the bytes are the new upload's, and stay). The
//! database goes first, so it never counts a byte the store no longer has; a crash between the
//! two leaves files no row names, which cost disk space and nothing else.
//!
//! A device re-checks a blob (`POST /v1/blobs/{sha256}`) whenever the server takes an
//! attachment record that names it, so a blob collected while a device still meant to use it
//! (a record sent after more than the grace offline) is uploaded again.

use super::{Blobs, UploadError};
use crate::clock::now_i64;
use crate::storage::Storage;
use outpost_protocol::api::AccountId;
use outpost_protocol::blobs::BlobHash;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a blob stays after it lost its last reference, unless told otherwise
/// (`--blob-grace-days`).
pub const DEFAULT_GRACE_DAYS: u32 = 7;

/// A day, in the milliseconds that [`verdict`] counts in.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The first sweep of a server runs this long after it starts (not in the middle of start-up).
pub const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(60);

/// Then one sweep every hour.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

/// `days` of grace in milliseconds.
pub fn grace_ms(days: u32) -> i64 {
    i64::from(days) * DAY_MS
}

/// A row of `blobs` as a sweep judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRow {
    /// A blob (its bytes matched its name), not an upload in progress.
    pub complete: bool,
    /// Some live attachment record of the account names it (see the module doc).
    pub referenced: bool,
    /// When the upload last moved (begun, a chunk counted or lost, completed).
    pub updated_ms: i64,
    /// Since when a complete blob has been found unreferenced, if it has.
    pub unreferenced_ms: Option<i64>,
}

/// What a sweep does with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Found unreferenced: `unreferenced_ms` becomes the sweep's time.
    Mark,
    /// Referenced again: `unreferenced_ms` is cleared.
    Clear,
    /// Unreferenced for longer than the grace, or an upload abandoned for longer: the row goes,
    /// then its bytes.
    Remove,
}

/// The rules of collection, in one place: what a sweep at `now_ms` with `grace_ms` of grace does
/// with `row`. A grace of 0 still takes two sweeps for a complete blob: one finds it
/// unreferenced, a later one removes it.
pub fn verdict(row: &SweepRow, now_ms: i64, grace_ms: i64) -> Verdict {
    let cutoff = now_ms.saturating_sub(grace_ms.max(0));
    if !row.complete {
        // References do not matter here: an upload nobody continued for the whole grace is
        // abandoned, and its device (if it ever comes back) starts over.
        return if row.updated_ms < cutoff {
            Verdict::Remove
        } else {
            Verdict::Keep
        };
    }
    match (row.referenced, row.unreferenced_ms) {
        (true, None) => Verdict::Keep,
        (true, Some(_)) => Verdict::Clear,
        (false, None) => Verdict::Mark,
        (false, Some(since)) if since < cutoff => Verdict::Remove,
        (false, Some(_)) => Verdict::Keep,
    }
}

/// A row a sweep deleted: its bytes are to go from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub account: AccountId,
    pub hash: BlobHash,
    /// A blob, not an upload in progress.
    pub complete: bool,
    /// The bytes the store holds for it (all of a blob; what an upload had received).
    pub bytes: u64,
}

/// What a sweep of the database did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// The rows it deleted, whose bytes are to go.
    pub removed: Vec<Removed>,
    /// Complete blobs found unreferenced (their grace begins).
    pub marked: u64,
    /// Blobs referenced again (their mark cleared).
    pub cleared: u64,
}

/// What a collection removed, and what it left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CollectReport {
    /// Blobs removed, bytes and all.
    pub blobs: u64,
    /// Bytes removed from the store (of blobs and of abandoned uploads).
    pub bytes: u64,
    /// Abandoned uploads removed.
    pub partial: u64,
    /// Blobs found unreferenced by this sweep: they go once the grace has passed.
    pub marked: u64,
    /// Blobs referenced again before their grace ended: they stay.
    pub cleared: u64,
    /// Rows deleted whose bytes stayed, because the account began that blob again meanwhile.
    pub kept: u64,
    /// Rows deleted whose bytes could not be removed (logged): files no row names.
    pub failed: u64,
}

impl CollectReport {
    /// Whether the collection changed anything worth a log line.
    pub fn is_empty(&self) -> bool {
        *self == CollectReport::default()
    }
}

impl std::fmt::Display for CollectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed {} blobs and {} abandoned uploads ({} bytes); {} blobs newly unreferenced (kept until the grace ends), {} referenced again",
            self.blobs, self.partial, self.bytes, self.marked, self.cleared
        )?;
        if self.kept > 0 {
            write!(f, "; {} kept, begun again meanwhile", self.kept)?;
        }
        if self.failed > 0 {
            write!(f, "; {} could not be removed (logged)", self.failed)?;
        }
        Ok(())
    }
}

impl Blobs {
    /// One collection at `now_ms` with `grace_ms` of grace: the database's sweep, then the
    /// bytes of what it removed (see the module doc). Safe beside uploads, on this instance and
    /// others.
    pub async fn collect(
        &self,
        storage: &dyn Storage,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<CollectReport, UploadError> {
        let sweep = storage.sweep_blobs(now_ms, grace_ms).await?;
        let mut report = self.remove_swept(storage, &sweep.removed).await;
        report.marked = sweep.marked;
        report.cleared = sweep.cleared;
        Ok(report)
    }

    /// The second half of [`Blobs::collect`]: removes the bytes of rows a sweep deleted, each
    /// under its upload's lock, once the account is seen to have no row for it again. A device
    /// may have begun uploading it again since the sweep: then the bytes stay (the new upload
    /// goes on, or finds the blob already complete). Where that cannot be checked, the bytes
    /// stay too.
    pub async fn remove_swept(&self, storage: &dyn Storage, removed: &[Removed]) -> CollectReport {
        let mut report = CollectReport::default();
        for r in removed {
            let (account, hash) = (r.account, &r.hash);
            let _upload = self.locks.lock(account, hash).await;
            match storage.blob(account, hash).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    tracing::info!(%account, %hash, "blob begun again since the sweep: its bytes stay");
                    report.kept += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(%account, %hash, error = %e, "cannot check a swept blob: its bytes stay");
                    report.failed += 1;
                    continue;
                }
            }
            if let Err(e) = self.store.remove(account, hash).await {
                tracing::warn!(%account, %hash, error = %e, "cannot remove a swept blob's bytes");
                report.failed += 1;
                continue;
            }
            tracing::debug!(%account, %hash, bytes = r.bytes, complete = r.complete, "blob removed");
            report.bytes += r.bytes;
            if r.complete {
                report.blobs += 1;
            } else {
                report.partial += 1;
            }
        }
        report
    }
}

/// The server's collector: a sweep [`FIRST_SWEEP_AFTER`] start-up, then every
/// [`SWEEP_EVERY`], until `shutdown` turns true (a sweep under way finishes first). Logs what
/// each removed: counts and bytes.
pub async fn collect_every(
    blobs: Arc<Blobs>,
    storage: Arc<dyn Storage>,
    grace_ms: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = FIRST_SWEEP_AFTER;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        wait = SWEEP_EVERY;
        match blobs.collect(storage.as_ref(), now_i64(), grace_ms).await {
            Ok(report) if report.is_empty() => tracing::debug!("blob collection: nothing to do"),
            Ok(report) => tracing::info!(
                blobs = report.blobs,
                bytes = report.bytes,
                partial = report.partial,
                marked = report.marked,
                cleared = report.cleared,
                kept = report.kept,
                failed = report.failed,
                "blob collection"
            ),
            Err(e) => tracing::warn!(error = %e, "blob collection failed: trying again in an hour"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const GRACE: i64 = 7 * DAY_MS;

    fn blob(referenced: bool, unreferenced_ms: Option<i64>) -> SweepRow {
        SweepRow {
            complete: true,
            referenced,
            updated_ms: 0,
            unreferenced_ms,
        }
    }

    fn upload(updated_ms: i64, referenced: bool) -> SweepRow {
        SweepRow {
            complete: false,
            referenced,
            updated_ms,
            unreferenced_ms: None,
        }
    }

    #[test]
    fn a_referenced_blob_is_kept_however_old_and_loses_its_mark() {
        assert_eq!(verdict(&blob(true, None), NOW, GRACE), Verdict::Keep);
        assert_eq!(verdict(&blob(true, None), NOW, 0), Verdict::Keep);
        assert_eq!(
            verdict(&blob(true, Some(NOW - 100 * GRACE)), NOW, GRACE),
            Verdict::Clear
        );
    }

    #[test]
    fn an_unreferenced_blob_is_marked_then_kept_for_the_grace_then_removed() {
        assert_eq!(verdict(&blob(false, None), NOW, GRACE), Verdict::Mark);
        assert_eq!(verdict(&blob(false, Some(NOW)), NOW, GRACE), Verdict::Keep);
        assert_eq!(
            verdict(&blob(false, Some(NOW - GRACE)), NOW, GRACE),
            Verdict::Keep,
            "exactly the grace: not yet"
        );
        assert_eq!(
            verdict(&blob(false, Some(NOW - GRACE - 1)), NOW, GRACE),
            Verdict::Remove
        );
        // No grace: marked by one sweep, removed by the next.
        assert_eq!(verdict(&blob(false, None), NOW, 0), Verdict::Mark);
        assert_eq!(verdict(&blob(false, Some(NOW)), NOW, 0), Verdict::Keep);
        assert_eq!(
            verdict(&blob(false, Some(NOW)), NOW + 1, 0),
            Verdict::Remove
        );
        // A clock set back does not remove anything early.
        assert_eq!(
            verdict(&blob(false, Some(NOW)), NOW - DAY_MS, GRACE),
            Verdict::Keep
        );
    }

    #[test]
    fn an_upload_in_progress_goes_only_when_abandoned_for_the_grace_referenced_or_not() {
        for referenced in [false, true] {
            assert_eq!(
                verdict(&upload(NOW - 1, referenced), NOW, GRACE),
                Verdict::Keep
            );
            assert_eq!(
                verdict(&upload(NOW - GRACE, referenced), NOW, GRACE),
                Verdict::Keep
            );
            assert_eq!(
                verdict(&upload(NOW - GRACE - 1, referenced), NOW, GRACE),
                Verdict::Remove
            );
        }
    }

    #[test]
    fn a_grace_is_counted_in_days() {
        assert_eq!(grace_ms(0), 0);
        assert_eq!(grace_ms(DEFAULT_GRACE_DAYS), 604_800_000);
        assert_eq!(grace_ms(u32::MAX), i64::from(u32::MAX) * DAY_MS);
    }

    #[test]
    fn a_report_says_what_went_and_what_stayed() {
        let report = CollectReport {
            blobs: 2,
            bytes: 3_500_000,
            partial: 1,
            marked: 4,
            cleared: 1,
            kept: 1,
            failed: 0,
        };
        let text = report.to_string();
        assert!(
            text.starts_with("removed 2 blobs and 1 abandoned uploads (3500000 bytes)"),
            "{text}"
        );
        assert!(text.contains("1 kept"), "{text}");
        assert!(!text.contains("could not"), "{text}");
        assert!(CollectReport::default().is_empty());
    }
}
