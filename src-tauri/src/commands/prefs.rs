//! Preferences (each with the limits the window's controls read) and the local status.

use outpost_core::{LocalStatus, Pref, WORK_OFFLINE};
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::AppState;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_prefs(state: State<'_, AppState>) -> Result<Vec<Pref>, AppError> {
    blocking(state, move |app| Ok(app.store.list_prefs()?)).await
}

/// Sets a preference. "Work offline" goes through the engine, which pauses at once.
#[tauri::command(rename_all = "snake_case")]
pub async fn set_pref(
    state: State<'_, AppState>,
    key: Arg<String>,
    value: Arg<serde_json::Value>,
) -> Result<Pref, AppError> {
    let key = key.parse("key")?;
    let value = value.parse("value")?;
    blocking(state, move |app| {
        if key == WORK_OFFLINE {
            // Checked before the engine acts on it: a bad value must not switch sync back on.
            let paused = value.as_bool().ok_or_else(|| AppError::BadArgument {
                name: "value",
                reason: format!("{WORK_OFFLINE} is true or false, not {value}"),
            })?;
            if let Some(result) = app.with_engine(|engine| engine.set_paused(paused)) {
                result?;
            }
        }
        Ok(app.store.set_pref(&key, value)?)
    })
    .await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn local_status(state: State<'_, AppState>) -> Result<LocalStatus, AppError> {
    blocking(state, move |app| Ok(app.store.local_status()?)).await
}
