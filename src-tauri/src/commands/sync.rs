//! Sync: the engine's status, "sync now", the outbox and what the server refused, the error log,
//! conflicts and the sync doctor.

use std::time::Duration;

use outpost_core::sync::doctor::{self, Diagnosis, Repair};
use outpost_core::sync::{Conflict, Resolution, SyncError, SyncErrorEntry, SyncStatus, account};
use outpost_core::{MutationId, Note, NoteId, OutboxEntry};
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::{AppState, Outpost};

/// The status bar's state now; later changes arrive as `sync-status` events.
#[tauri::command(rename_all = "snake_case")]
pub async fn sync_status(state: State<'_, AppState>) -> Result<SyncStatus, AppError> {
    Ok(state.app()?.status())
}

/// "Sync now": at once, also while backing off after a failure.
#[tauri::command(rename_all = "snake_case")]
pub async fn sync_now(state: State<'_, AppState>) -> Result<(), AppError> {
    state.app()?.with_engine(|engine| engine.sync_now());
    Ok(())
}

/// What waits in the outbox, oldest first (the diagnostics screen).
#[tauri::command(rename_all = "snake_case")]
pub async fn list_outbox(
    state: State<'_, AppState>,
    limit: Arg<Option<u32>>,
) -> Result<Vec<OutboxEntry>, AppError> {
    let limit = limit.parse("limit")?;
    blocking(state, move |app| {
        Ok(app.store.outbox(limit.unwrap_or(500))?)
    })
    .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn list_dead_letters(state: State<'_, AppState>) -> Result<Vec<OutboxEntry>, AppError> {
    blocking(state, move |app| Ok(app.store.dead_letters()?)).await
}

/// Sends a refused change again, as a new mutation (after the user fixed what was wrong).
#[tauri::command(rename_all = "snake_case")]
pub async fn retry_dead_letter(
    state: State<'_, AppState>,
    mutation_id: Arg<MutationId>,
) -> Result<(), AppError> {
    let mutation_id = mutation_id.parse("mutation_id")?;
    blocking(state, move |app| {
        Ok(app.store.retry_dead_letter(mutation_id)?)
    })
    .await
}

/// Drops a refused change; the fields it carried go back to the server's version.
#[tauri::command(rename_all = "snake_case")]
pub async fn discard_dead_letter(
    state: State<'_, AppState>,
    mutation_id: Arg<MutationId>,
) -> Result<(), AppError> {
    let mutation_id = mutation_id.parse("mutation_id")?;
    blocking(state, move |app| {
        Ok(app.store.discard_dead_letter(mutation_id)?)
    })
    .await
}

/// The recent sync errors, newest first (a failure repeated cycle after cycle is one entry).
#[tauri::command(rename_all = "snake_case")]
pub async fn list_sync_errors(
    state: State<'_, AppState>,
    limit: Arg<Option<u32>>,
) -> Result<Vec<SyncErrorEntry>, AppError> {
    let limit = limit.parse("limit")?;
    blocking(state, move |app| {
        Ok(app.store.recent_sync_errors(limit.unwrap_or(20))?)
    })
    .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn list_conflicts(state: State<'_, AppState>) -> Result<Vec<Conflict>, AppError> {
    blocking(state, move |app| Ok(app.store.conflicts()?)).await
}

/// Closes a conflict with mine, theirs, or the text edited in the merge view.
#[tauri::command(rename_all = "snake_case")]
pub async fn resolve_conflict(
    state: State<'_, AppState>,
    note_id: Arg<NoteId>,
    resolution: Arg<Resolution>,
) -> Result<Note, AppError> {
    let note_id = note_id.parse("note_id")?;
    let resolution = resolution.parse("resolution")?;
    blocking(state, move |app| {
        Ok(app.store.resolve_conflict(note_id, resolution)?)
    })
    .await
}

/// What the sync doctor found, and what its repair did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DoctorReport {
    pub diagnosis: Diagnosis,
    pub repair: Option<Repair>,
    /// The check after the repair (and the sync that sent what it re-queued).
    pub after: Option<Diagnosis>,
}

/// The sync doctor: compares this device with the server record by record; with `repair`,
/// rewrites what differs from the server, re-sends what only this device had, and checks again.
#[tauri::command(rename_all = "snake_case")]
pub async fn run_doctor(
    state: State<'_, AppState>,
    repair: Arg<bool>,
) -> Result<DoctorReport, AppError> {
    let repair = repair.parse("repair")?;
    let app = state.app()?;
    doctor_on(&app, repair).await
}

pub(super) async fn doctor_on(app: &Outpost, repair: bool) -> Result<DoctorReport, AppError> {
    let session = account::signed_in(&app.store, &app.vault)?.ok_or(SyncError::NotSignedIn)?;
    app.settle(Duration::from_secs(20)).await;
    let diagnosis = doctor::diagnose(&app.store, &session.client).await?;
    if !repair || diagnosis.agrees() {
        return Ok(DoctorReport {
            diagnosis,
            repair: None,
            after: None,
        });
    }
    let done = doctor::repair(&app.store, &session.client, &diagnosis).await?;
    app.with_engine(|engine| engine.sync_now());
    // Let the engine start the cycle that sends what the repair queued, then wait for it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.settle(Duration::from_secs(30)).await;
    let after = doctor::diagnose(&app.store, &session.client).await?;
    Ok(DoctorReport {
        diagnosis,
        repair: Some(done),
        after: Some(after),
    })
}
