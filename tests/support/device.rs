//! A device: its own data directory and store, signed in to a server, synced with the core's
//! real engine (`run_cycle`) over the real HTTP client.

use outpost_core::clock::{SystemClock, WallClock};
use outpost_core::sync::doctor::{Diagnosis, diagnose};
use outpost_core::sync::vault::TokenVault;
use outpost_core::sync::{CycleReport, EngineConfig, Progress, SyncError, account, run_cycle};
use outpost_core::{ListQuery, Note, NoteDraft, NoteId, NotePatch, NoteView, Store, StoreOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A wall clock `skew_ms` off the system's: a device whose clock is wrong.
pub struct SkewedClock(pub i64);

impl WallClock for SkewedClock {
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms().saturating_add_signed(self.0)
    }
}

pub struct Device {
    dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub vault: TokenVault,
}

/// A note as the user sees it: (title, body, in the Trash, pinned).
pub type NoteShape = (String, String, bool, bool);

impl Device {
    /// A new device that registers `email` on the server at `url` (`register`), or signs in.
    pub async fn new(url: &str, email: &str, register: bool) -> Device {
        Self::with_options(url, email, register, StoreOptions::default()).await
    }

    /// A new device whose wall clock is `skew_ms` off.
    pub async fn with_clock_skew(url: &str, email: &str, register: bool, skew_ms: i64) -> Device {
        let options = StoreOptions {
            wall_clock: Arc::new(SkewedClock(skew_ms)),
            ..Default::default()
        };
        Self::with_options(url, email, register, options).await
    }

    pub async fn with_options(
        url: &str,
        email: &str,
        register: bool,
        options: StoreOptions,
    ) -> Device {
        let dir = tempfile::tempdir().expect("device dir");
        let store = Arc::new(Store::open_with(dir.path(), options).expect("store"));
        let vault = TokenVault::file_only(dir.path());
        let which = account::Account::new_if(register);
        let signed_in = account::sign_in(&store, &vault, url, email, crate::PASSWORD, which).await;
        signed_in.expect("sign in");
        Device { dir, store, vault }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Closes the store and opens it again with `options`, as when the app is quit and started
    /// again.
    pub fn restart(self, options: StoreOptions) -> Device {
        let Device { dir, store, vault } = self;
        // The data directory stays locked while the store is open.
        drop(store);
        let store = Arc::new(Store::open_with(dir.path(), options).expect("reopen"));
        Device { dir, store, vault }
    }

    /// Quits: closes the store and hands back the data directory (for `outpost` to open).
    pub fn close(self) -> tempfile::TempDir {
        self.dir
    }

    /// One sync cycle; the test fails if it fails.
    pub async fn sync(&self) -> CycleReport {
        self.try_sync().await.expect("sync cycle")
    }

    pub async fn try_sync(&self) -> Result<CycleReport, SyncError> {
        self.sync_with(&EngineConfig::default(), &|_| {}).await
    }

    pub async fn sync_with(
        &self,
        cfg: &EngineConfig,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<CycleReport, SyncError> {
        let session =
            account::signed_in(&self.store, &self.vault)?.ok_or(SyncError::NotSignedIn)?;
        // As the engine does: a read timeout set in the configuration replaces the product's.
        let client = match cfg.read_timeout {
            Some(read) => session
                .client
                .with_timeouts(outpost_core::sync::client::CONNECT_TIMEOUT, read)?,
            None => session.client,
        };
        run_cycle(&self.store, &client, cfg, progress).await
    }

    /// Moves the attachments' bytes (as the engine's transfer loop does); fails the test if
    /// the network part fails.
    pub async fn transfer(&self) -> outpost_core::sync::TransferReport {
        let session = account::signed_in(&self.store, &self.vault)
            .expect("session")
            .expect("signed in");
        outpost_core::sync::run_transfers(&self.store, &session.client)
            .await
            .expect("transfers")
    }

    pub fn note(&self, title: &str, body: &str) -> NoteId {
        self.store
            .create_note(NoteDraft {
                title: title.into(),
                body: body.into(),
                ..Default::default()
            })
            .expect("create")
            .id
    }

    /// Makes the queued change of `note` one the server refuses (a tag of 200 characters), as
    /// an older build could have queued it.
    pub fn poison_outbox(&self, note: NoteId) {
        let conn = rusqlite::Connection::open(self.store.db_path()).expect("raw");
        let changed = conn
            .execute(
                "UPDATE outbox SET fields = json_set(fields, '$.tags.value', json_array(?1))
                 WHERE entity_id = ?2",
                [&"t".repeat(200), &note.to_string()],
            )
            .expect("poison");
        assert_eq!(changed, 1, "one queued change of {note}");
    }

    pub fn edit(&self, id: NoteId, patch: NotePatch) {
        self.store.update_note(id, patch).expect("edit");
    }

    pub fn snapshot(&self) -> BTreeMap<NoteId, NoteShape> {
        snapshot(&self.store)
    }
}

pub fn body(text: &str) -> NotePatch {
    NotePatch {
        body: Some(text.into()),
        ..Default::default()
    }
}

pub fn title(text: &str) -> NotePatch {
    NotePatch {
        title: Some(text.into()),
        ..Default::default()
    }
}

/// Every note of a store, in every view (notes, archive, Trash), in full; fails the test if a
/// note is listed twice.
pub fn all_notes(store: &Store) -> BTreeMap<NoteId, Note> {
    let mut all = BTreeMap::new();
    for view in [NoteView::Active, NoteView::Archived, NoteView::Trash] {
        let mut query = ListQuery {
            view,
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = store.list_notes(&query).expect("list");
            for n in page.items {
                let full = store.get_note(n.id).expect("note");
                assert!(
                    all.insert(n.id, full).is_none(),
                    "note {} listed twice",
                    n.id
                );
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
    }
    all
}

/// Every note of a store (any view) as id -> (title, body, deleted, pinned).
pub fn snapshot(store: &Store) -> BTreeMap<NoteId, NoteShape> {
    all_notes(store)
        .into_iter()
        .map(|(id, n)| (id, (n.title, n.body, n.deleted, n.pinned)))
        .collect()
}

/// The sync doctor on `device` against its server: they must agree.
pub async fn doctor_agrees(device: &Device) -> Diagnosis {
    let session = account::signed_in(&device.store, &device.vault)
        .expect("session")
        .expect("signed in");
    let diagnosis = diagnose(&device.store, &session.client)
        .await
        .expect("diagnose");
    assert!(
        diagnosis.agrees(),
        "device and server disagree: {:?}",
        diagnosis.differences
    );
    diagnosis
}

/// Syncs every device until all are quiet; returns when replicas agree and nothing is pending.
pub async fn converge(devices: &[&Device]) {
    for _ in 0..3 {
        for d in devices {
            d.sync().await;
        }
    }
    let first = devices[0].snapshot();
    for d in &devices[1..] {
        assert_eq!(d.snapshot(), first, "replicas differ");
    }
    for d in devices {
        let status = d.store.local_status().expect("status");
        assert_eq!(status.pending, 0, "nothing left to send");
    }
}
