//! The events the window listens to: `notes-changed` (batched store changes) and
//! `sync-status` (the status bar). Their payload types are exported to TypeScript.

use outpost_core::sync::SyncStatus;
use outpost_core::{Change, ExternalEvent};
use serde::Serialize;
use tauri::{AppHandle, Emitter};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;

/// On it, the UI re-reads what it shows.
pub const NOTES_CHANGED: &str = "notes-changed";
/// On it, the status bar redraws; the payload is the whole [`SyncStatus`].
pub const SYNC_STATUS: &str = "sync-status";
/// A save in an external editor was taken in, or could not be ([`ExternalEvent`]).
pub const EXTERNAL_EDIT: &str = "external-edit";

/// Payload of `notes-changed`. Changes that arrive together are sent as one batch, so a burst
/// (an import, a sync page) costs the UI one re-read. `complete` is false when the channel
/// overflowed and some changes were dropped: the UI must then re-read everything it shows.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NotesChanged {
    pub changes: Vec<Change>,
    pub complete: bool,
}

/// Drains everything already queued after `first` into one batch.
fn batch(
    first: Result<Change, RecvError>,
    changes: &mut broadcast::Receiver<Change>,
) -> NotesChanged {
    let mut batch = NotesChanged {
        changes: Vec::new(),
        complete: true,
    };
    match first {
        Ok(change) => batch.changes.push(change),
        Err(RecvError::Lagged(missed)) => {
            tracing::warn!(missed, "UI change stream lagged; asking for a full re-read");
            batch.complete = false;
        }
        Err(RecvError::Closed) => {}
    }
    loop {
        match changes.try_recv() {
            Ok(change) => batch.changes.push(change),
            Err(TryRecvError::Lagged(_)) => batch.complete = false,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    batch
}

pub fn forward_changes(app: AppHandle, mut changes: broadcast::Receiver<Change>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let first = changes.recv().await;
            if matches!(first, Err(RecvError::Closed)) {
                break;
            }
            let batch = batch(first, &mut changes);
            if let Err(err) = app.emit(NOTES_CHANGED, &batch) {
                tracing::warn!(error = %err, "could not emit {NOTES_CHANGED}");
            }
        }
        tracing::debug!("change stream closed");
    });
}

/// Sends every new sync status; a burst of progress updates coalesces in the watch channel, so
/// the window never falls behind.
pub fn forward_sync_status(app: AppHandle, mut status: watch::Receiver<SyncStatus>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let current = status.borrow_and_update().clone();
            if let Err(err) = app.emit(SYNC_STATUS, &current) {
                tracing::warn!(error = %err, "could not emit {SYNC_STATUS}");
            }
            if status.changed().await.is_err() {
                break;
            }
        }
    });
}

pub fn forward_external_edits(app: AppHandle, mut events: broadcast::Receiver<ExternalEvent>) {
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Err(err) = app.emit(EXTERNAL_EDIT, &event) {
                        tracing::warn!(error = %err, "could not emit {EXTERNAL_EDIT}");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "external edit events lagged");
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::{NoteDraft, Store};

    #[test]
    fn changes_queued_together_go_as_one_batch() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut rx = store.subscribe();
        let a = store.create_note(NoteDraft::default())?;
        let b = store.create_note(NoteDraft::default())?;
        let first = rx.try_recv().map_err(|_| RecvError::Closed);
        let batch = batch(first, &mut rx);
        let ids: Vec<_> = batch.changes.iter().flat_map(|c| c.notes.clone()).collect();
        assert_eq!(ids, [a.id, b.id]);
        assert!(batch.complete);
        Ok(())
    }
}
