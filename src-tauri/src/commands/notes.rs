//! Notes: list, count, read, create, edit, trash, restore, purge, search.

use outpost_core::{ListQuery, Note, NoteDraft, NoteId, NotePage, NotePatch, SearchHit};
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::AppState;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_notes(
    state: State<'_, AppState>,
    query: Arg<Option<ListQuery>>,
) -> Result<NotePage, AppError> {
    let query = query.parse("query")?;
    blocking(state, move |app| {
        Ok(app.store.list_notes(&query.unwrap_or_default())?)
    })
    .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn count_notes(
    state: State<'_, AppState>,
    query: Arg<Option<ListQuery>>,
) -> Result<i64, AppError> {
    let query = query.parse("query")?;
    blocking(state, move |app| {
        Ok(app.store.count_notes(&query.unwrap_or_default())?)
    })
    .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn get_note(state: State<'_, AppState>, id: Arg<NoteId>) -> Result<Note, AppError> {
    let id = id.parse("id")?;
    blocking(state, move |app| Ok(app.store.get_note(id)?)).await
}

/// Creates a note. The core validates it and queues it for sync in the same transaction; the
/// window learns of it through `notes-changed`, like of any other change.
#[tauri::command(rename_all = "snake_case")]
pub async fn create_note(
    state: State<'_, AppState>,
    note: Arg<NoteDraft>,
) -> Result<Note, AppError> {
    let note = note.parse("note")?;
    blocking(state, move |app| Ok(app.store.create_note(note)?)).await
}

/// Changes only the fields given (the editor sends the body alone as the user types).
#[tauri::command(rename_all = "snake_case")]
pub async fn update_note(
    state: State<'_, AppState>,
    id: Arg<NoteId>,
    patch: Arg<NotePatch>,
) -> Result<Note, AppError> {
    let id = id.parse("id")?;
    let patch = patch.parse("patch")?;
    blocking(state, move |app| Ok(app.store.update_note(id, patch)?)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn trash_note(state: State<'_, AppState>, id: Arg<NoteId>) -> Result<Note, AppError> {
    let id = id.parse("id")?;
    blocking(state, move |app| Ok(app.store.trash_note(id)?)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn restore_note(state: State<'_, AppState>, id: Arg<NoteId>) -> Result<Note, AppError> {
    let id = id.parse("id")?;
    blocking(state, move |app| Ok(app.store.restore_note(id)?)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn purge_note(state: State<'_, AppState>, id: Arg<NoteId>) -> Result<(), AppError> {
    let id = id.parse("id")?;
    blocking(state, move |app| Ok(app.store.purge_note(id)?)).await
}

/// Deletes every note in the Trash for good; answers how many.
#[tauri::command(rename_all = "snake_case")]
pub async fn empty_trash(state: State<'_, AppState>) -> Result<usize, AppError> {
    blocking(state, move |app| Ok(app.store.empty_trash()?)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn search_notes(
    state: State<'_, AppState>,
    text: Arg<String>,
    limit: Arg<Option<u32>>,
) -> Result<Vec<SearchHit>, AppError> {
    let text = text.parse("text")?;
    let limit = limit.parse("limit")?;
    blocking(state, move |app| {
        Ok(app.store.search_notes(&text, limit.unwrap_or(50))?)
    })
    .await
}
