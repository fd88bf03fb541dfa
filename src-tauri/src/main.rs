//! Outpost's desktop app: opens the local store, exposes it to the window through IPC commands
//! and forwards the core's change stream to the window as `notes-changed` events.
//!
//! This crate is a thin adapter. What a note is, how it is stored and synced lives in
//! `outpost-core`, which has no Tauri dependency and is tested headless.

// Release builds on Windows must not open a console window next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod error;

use std::path::PathBuf;
use std::sync::Arc;

use commands::StoreState;
use error::AppError;
use outpost_core::{Change, Store};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Overrides where the store lives; tests and QA point it at a temp dir.
const DATA_DIR_ENV: &str = "OUTPOST_DATA_DIR";
/// The event the UI listens to; on it, the UI re-reads what it shows.
const NOTES_CHANGED: &str = "notes-changed";

fn main() {
    init_tracing();
    let result = tauri::Builder::default()
        .setup(|app| {
            let state = match open_store(app.handle()) {
                Ok(store) => {
                    forward_changes(app.handle().clone(), store.subscribe());
                    StoreState::Open(store)
                }
                Err(err) => {
                    tracing::error!(code = err.code(), error = %err, "could not open the store");
                    StoreState::Unavailable {
                        code: err.code(),
                        message: err.to_string(),
                    }
                }
            };
            app.manage(state);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::list_notes,
            commands::create_note
        ])
        // The symlink src-tauri/tauri.conf.json -> ../tauri.conf.json: see build.rs for why.
        .run(tauri::generate_context!("tauri.conf.json"));
    if let Err(err) = result {
        tracing::error!(error = %err, "Outpost stopped with an error");
        std::process::exit(1);
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second subscriber (e.g. in tests) is not an error worth stopping for.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

fn open_store(app: &AppHandle) -> Result<Arc<Store>, AppError> {
    let dir = data_dir(app)?;
    tracing::info!(dir = %dir.display(), "opening the store");
    Ok(Arc::new(Store::open(&dir)?))
}

/// `OUTPOST_DATA_DIR` if set and not empty, else the platform's app data dir for our identifier.
fn data_dir(app: &AppHandle) -> tauri::Result<PathBuf> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => app.path().app_data_dir(),
    }
}

/// Payload of `notes-changed`. Changes that arrive together are sent as one batch, so a burst
/// (an import, a sync page) costs the UI one re-read. `complete` is false when the channel
/// overflowed and some changes were dropped: the UI must then re-read everything it shows.
#[derive(Debug, Clone, Serialize)]
struct NotesChanged {
    changes: Vec<Change>,
    complete: bool,
}

fn forward_changes(app: AppHandle, mut changes: broadcast::Receiver<Change>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let mut batch = NotesChanged {
                changes: Vec::new(),
                complete: true,
            };
            match changes.recv().await {
                Ok(change) => batch.changes.push(change),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "UI change stream lagged; asking for a full re-read");
                    batch.complete = false;
                }
                Err(RecvError::Closed) => break,
            }
            // Take whatever else is already queued into the same batch.
            loop {
                match changes.try_recv() {
                    Ok(change) => batch.changes.push(change),
                    Err(TryRecvError::Lagged(_)) => batch.complete = false,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if let Err(err) = app.emit(NOTES_CHANGED, &batch) {
                tracing::warn!(error = %err, "could not emit {NOTES_CHANGED}");
            }
        }
        tracing::debug!("change stream closed");
    });
}
