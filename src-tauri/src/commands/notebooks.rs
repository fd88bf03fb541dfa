//! Notebooks: list, create, rename, delete.

use outpost_core::{Notebook, NotebookId};
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::AppState;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_notebooks(state: State<'_, AppState>) -> Result<Vec<Notebook>, AppError> {
    blocking(state, move |app| Ok(app.store.list_notebooks()?)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_notebook(
    state: State<'_, AppState>,
    name: Arg<String>,
) -> Result<Notebook, AppError> {
    let name = name.parse("name")?;
    blocking(state, move |app| Ok(app.store.create_notebook(&name)?)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn rename_notebook(
    state: State<'_, AppState>,
    id: Arg<NotebookId>,
    name: Arg<String>,
) -> Result<Notebook, AppError> {
    let id = id.parse("id")?;
    let name = name.parse("name")?;
    blocking(state, move |app| {
        Ok(app.store.rename_notebook(id, &name)?)
    })
    .await
}

/// Deletes a notebook; its notes stay, outside any notebook.
#[tauri::command(rename_all = "snake_case")]
pub async fn delete_notebook(
    state: State<'_, AppState>,
    id: Arg<NotebookId>,
) -> Result<(), AppError> {
    let id = id.parse("id")?;
    blocking(state, move |app| Ok(app.store.delete_notebook(id)?)).await
}
