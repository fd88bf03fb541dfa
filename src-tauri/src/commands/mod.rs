//! The IPC commands the window may call: one per core operation.
//!
//! Each command parses its arguments into the core's types (each comes as an [`Arg`], so a bad
//! one is answered as `{code, message}` naming it, like any other error; serde refuses unknown
//! fields), calls the core and maps the error; nothing else. Store calls block on SQLite, so
//! they run on the blocking thread pool, not on the async workers. Argument names are snake_case
//! on both sides (`rename_all`), like the fields of the generated TypeScript types.
//!
//! The commands live by area in the files of this folder (`notes.rs`, `sync.rs`, …); `main.rs`
//! registers them by their path here (`commands::list_notes`), which the re-exports below keep.
//!
//! Adding a command: write it in the file of its area, list it in `COMMANDS` (build.rs reads the
//! same names to generate its permission), in `main.rs`'s `generate_handler!`, in the capability
//! file and in `ui/src/api.ts`; `tests::every_command_is_granted_and_wrapped` checks the last
//! three.

use tauri::State;

use crate::error::AppError;
use crate::state::{AppState, Outpost};

mod account;
mod attachments;
mod files;
mod notebooks;
mod notes;
mod prefs;
mod sync;
#[cfg(test)]
mod tests;

// The glob also re-exports the handler macros `#[tauri::command]` writes beside each command,
// which `generate_handler!` in main.rs looks for at the same path as the command.
pub use account::*;
pub use attachments::*;
pub use files::*;
pub use notebooks::*;
pub use notes::*;
pub use prefs::*;
pub use sync::*;

/// Every command, by name. build.rs generates an `allow-<name>` permission for each.
#[cfg(test)]
pub const COMMANDS: &[&str] = &include!("../../commands.list");

/// Runs a store call on the blocking thread pool.
async fn blocking<T, F>(state: State<'_, AppState>, call: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&Outpost) -> Result<T, AppError> + Send + 'static,
{
    let app = state.app()?;
    tauri::async_runtime::spawn_blocking(move || call(&app)).await?
}

/// Opens `path` with the system's app for its type; the problem, if it could not. The
/// real-window tests set `OUTPOST_NO_EXTERNAL_OPEN` and play the editor or viewer themselves.
fn open_with_system(app_handle: &tauri::AppHandle, path: &str) -> Option<String> {
    use tauri_plugin_opener::OpenerExt;
    if std::env::var_os("OUTPOST_NO_EXTERNAL_OPEN").is_some() {
        return Some("opening files is turned off (OUTPOST_NO_EXTERNAL_OPEN)".to_owned());
    }
    app_handle
        .opener()
        .open_path(path, None::<&str>)
        .err()
        .map(|e| e.to_string())
}
