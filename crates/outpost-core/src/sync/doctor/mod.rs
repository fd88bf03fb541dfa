//! The device's half of the sync doctor: does this device hold exactly what the server holds?
//! It sums up its synced records the way the server does (`outpost_protocol::digest`), asks the
//! server for the entries of the buckets that differ, and names each record that differs. A
//! repair rewrites those records from the server's current copy, and queues again what only
//! the device has, so a repair never loses a note.
//!
//! Records with changes not yet acknowledged (an outbox entry or an open conflict) are left out
//! of the comparison: they are expected to differ until the next sync.
//!
//! In parts: `snapshot` reads this device (SQL), `compare` decides (pure, table-tested),
//! `repair` writes (SQL); this module runs them with the server's answers in between.

mod compare;
mod repair;
mod snapshot;

pub(in crate::sync) use snapshot::local_digest;

use super::blocking;
use super::client::{SyncClient, SyncError};
use crate::store::Store;
use outpost_protocol::Entity;
use outpost_protocol::digest::{Counts, Key, MAX_FETCH_KEYS};
use serde::Serialize;
use tracing::Instrument as _;

/// How a record differs between device and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Problem {
    /// The server has it; this device does not.
    MissingOnDevice,
    /// This device has it, with nothing queued to send; the server does not.
    MissingOnServer,
    /// Deleted for good on the server, still here.
    PurgedOnServer,
    /// Both have it, at another version or with other content.
    Differs,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::MissingOnDevice => "missing on this device",
            Problem::MissingOnServer => "missing on the server",
            Problem::PurgedOnServer => "deleted for good on the server, still on this device",
            Problem::Differs => "different on this device and the server",
        }
    }
}

/// One record that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Difference {
    pub entity: Entity,
    pub id: String,
    /// The note's title or the notebook's name on this device, if it has the record.
    pub title: Option<String>,
    pub problem: Problem,
    pub device_version: Option<i64>,
    pub server_version: Option<i64>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Diagnosis {
    pub server_cursor: i64,
    pub device_cursor: i64,
    /// What the server holds (notes in Trash apart).
    pub server: Counts,
    /// What this device holds, pending changes included.
    pub device: Counts,
    /// Buckets (of 256) whose sums differed and whose entries were compared one by one.
    pub buckets_differing: usize,
    /// Records left out because they have changes not yet acknowledged or an open conflict.
    pub pending: usize,
    pub differences: Vec<Difference>,
}

impl Diagnosis {
    /// Device and server agree on every record without pending changes.
    pub fn agrees(&self) -> bool {
        self.differences.is_empty()
    }
}

/// What a repair did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Repair {
    /// Records rewritten from the server's copy.
    pub rewritten: usize,
    /// Records removed here because the server deleted them for good.
    pub removed: usize,
    /// Records (or fields) only this device had, queued to be sent again.
    pub requeued: usize,
    /// Records left alone because they changed here since the check.
    pub skipped: usize,
}

/// Compares this device with the server and names every record that differs.
pub async fn diagnose(store: &Store, client: &SyncClient) -> Result<Diagnosis, SyncError> {
    let span = tracing::info_span!("sync_doctor", client = %store.client_id());
    diagnose_in(store, client).instrument(span).await
}

async fn diagnose_in(store: &Store, client: &SyncClient) -> Result<Diagnosis, SyncError> {
    let server = client.digest().await?;
    let local = blocking(|| store.doctor_snapshot())?;
    let sums = compare::summarize(&local);
    let differing = sums.synced.differing(&server.buckets);
    let differences = if differing.is_empty() {
        Vec::new()
    } else {
        let theirs = client.digest_entries(differing.clone()).await?;
        compare::differences(&local, &differing, &theirs.entries)
    };
    let diagnosis = Diagnosis {
        server_cursor: server.cursor.0,
        device_cursor: local.cursor,
        server: server.counts,
        device: sums.all.counts,
        buckets_differing: differing.len(),
        pending: local.pending.len(),
        differences,
    };
    tracing::info!(
        differences = diagnosis.differences.len(),
        buckets = diagnosis.buckets_differing,
        pending = diagnosis.pending,
        "sync doctor checked the device against the server"
    );
    Ok(diagnosis)
}

/// Repairs what a diagnosis found: rewrites the records that differ from the server's current
/// copy, removes what the server deleted for good, and queues again what only this device has
/// (also the fields it holds newer than the server). Run a sync afterwards to send the queue.
pub async fn repair(
    store: &Store,
    client: &SyncClient,
    diagnosis: &Diagnosis,
) -> Result<Repair, SyncError> {
    let span = tracing::info_span!("sync_doctor_repair", client = %store.client_id());
    repair_in(store, client, diagnosis).instrument(span).await
}

async fn repair_in(
    store: &Store,
    client: &SyncClient,
    diagnosis: &Diagnosis,
) -> Result<Repair, SyncError> {
    let key = |d: &&Difference| Key {
        entity: d.entity,
        id: d.id.clone(),
    };
    let (only_here, to_fetch): (Vec<&Difference>, Vec<&Difference>) = diagnosis
        .differences
        .iter()
        .partition(|d| d.problem == Problem::MissingOnServer);
    let mut repair = Repair::default();
    for chunk in to_fetch.chunks(MAX_FETCH_KEYS) {
        let fetched = client
            .fetch_records(chunk.iter().map(key).collect())
            .await?;
        repair.add(blocking(|| store.repair_from_server(&fetched.records))?);
    }
    let keys: Vec<Key> = only_here.iter().map(key).collect();
    repair.add(blocking(|| store.requeue_for_server(&keys))?);
    tracing::info!(
        rewritten = repair.rewritten,
        removed = repair.removed,
        requeued = repair.requeued,
        skipped = repair.skipped,
        "sync doctor repaired the device"
    );
    Ok(repair)
}

impl Repair {
    fn add(&mut self, other: Repair) {
        self.rewritten += other.rewritten;
        self.removed += other.removed;
        self.requeued += other.requeued;
        self.skipped += other.skipped;
    }
}
