//! Files on disk: a note in an external editor, Markdown export and import, and where the data
//! and the logs are.

use std::path::PathBuf;

use outpost_core::{MarkdownExport, MarkdownImport, NoteId};
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::AppState;

/// A note's file for an external editor, and whether the system could open it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct EditorFile {
    pub path: String,
    /// False when no app is set to open `.md` files: the window then shows the path, and saves
    /// made to it by any editor still come back.
    pub opened: bool,
    pub problem: Option<String>,
}

/// Writes the note to a Markdown file, opens it in the user's default editor for `.md` files and
/// watches it: each save there comes back through the normal write path (and syncs), reported
/// as an `external-edit` event.
#[tauri::command(rename_all = "snake_case")]
pub async fn open_in_editor(
    state: State<'_, AppState>,
    app_handle: tauri::AppHandle,
    id: Arg<NoteId>,
) -> Result<EditorFile, AppError> {
    let id = id.parse("id")?;
    let forward = app_handle.clone();
    let path = blocking(state, move |app| {
        let edits = app.external_edits(|edits| {
            crate::events::forward_external_edits(forward, edits.subscribe());
        })?;
        Ok(edits.open(id)?)
    })
    .await?;
    let path = path.display().to_string();
    let problem = super::open_with_system(&app_handle, &path);
    if let Some(problem) = &problem {
        tracing::warn!(%problem, "could not open the note's file in an editor");
    }
    Ok(EditorFile {
        opened: problem.is_none(),
        path,
        problem,
    })
}

/// A folder for import or export: the one given (tests, scripts), else the user picks one.
async fn folder(
    app_handle: &tauri::AppHandle,
    dir: Option<String>,
    title: &str,
) -> Result<PathBuf, AppError> {
    if let Some(dir) = dir.filter(|d| !d.trim().is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    use tauri_plugin_dialog::DialogExt;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app_handle
        .dialog()
        .file()
        .set_title(title)
        .pick_folder(move |picked| {
            let _ = tx.send(picked);
        });
    let picked = rx.await.ok().flatten().ok_or(AppError::Cancelled)?;
    picked
        .into_path()
        .map_err(|e| AppError::Open(format!("the chosen folder: {e}")))
}

/// Writes every note (not the Trash) as Markdown files, a folder per notebook.
#[tauri::command(rename_all = "snake_case")]
pub async fn export_markdown(
    state: State<'_, AppState>,
    app_handle: tauri::AppHandle,
    dir: Arg<Option<String>>,
) -> Result<MarkdownExport, AppError> {
    let dir = dir.parse("dir")?;
    let dir = folder(&app_handle, dir, "Export notes to a folder").await?;
    blocking(state, move |app| Ok(app.store.export_markdown(&dir)?)).await
}

/// Reads every Markdown file of a folder as a new note (a first-level folder is a notebook);
/// files it cannot take are listed with the reason.
#[tauri::command(rename_all = "snake_case")]
pub async fn import_markdown(
    state: State<'_, AppState>,
    app_handle: tauri::AppHandle,
    dir: Arg<Option<String>>,
) -> Result<MarkdownImport, AppError> {
    let dir = dir.parse("dir")?;
    let dir = folder(&app_handle, dir, "Import Markdown files from a folder").await?;
    blocking(state, move |app| Ok(app.store.import_markdown(&dir)?)).await
}

/// Where the data directory and the logs are, for the diagnostics screen and bug reports.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AppPaths {
    pub data_dir: String,
    pub log_dir: Option<String>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn app_paths(
    state: State<'_, AppState>,
    app_handle: tauri::AppHandle,
) -> Result<AppPaths, AppError> {
    use tauri::Manager;
    let app = state.app()?;
    Ok(AppPaths {
        data_dir: app.store.data_dir().display().to_string(),
        log_dir: app_handle
            .path()
            .app_log_dir()
            .ok()
            .map(|d| d.display().to_string()),
    })
}
