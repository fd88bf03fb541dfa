//! The IPC commands the window may call: one per core operation.
//!
//! Each command parses its arguments into the core's types (each comes as an [`Arg`], so a bad
//! one is answered as `{code, message}` naming it, like any other error; serde refuses unknown
//! fields), calls the core and maps the error; nothing else. Store calls block on SQLite, so
//! they run on the blocking thread pool, not on the async workers. Argument names are snake_case
//! on both sides (`rename_all`), like the fields of the generated TypeScript types.
//!
//! Adding a command: write it here, list it in `COMMANDS` (build.rs reads the same names to
//! generate its permission), in `main.rs`'s `generate_handler!`, in the capability file and in
//! `ui/src/api.ts`; `tests::every_command_is_granted_and_wrapped` checks the last three.

use std::path::PathBuf;
use std::time::Duration;

use outpost_core::sync::doctor::{self, Diagnosis, Repair};
use outpost_core::sync::{Conflict, Resolution, SyncError, SyncErrorEntry, SyncStatus, account};
use outpost_core::{
    ListQuery, LocalStatus, MarkdownExport, MarkdownImport, MutationId, Note, NoteDraft, NoteId,
    NotePage, NotePatch, Notebook, NotebookId, OutboxEntry, Pref, SearchHit, WORK_OFFLINE,
};
use serde::Serialize;
use tauri::State;

use crate::args::Arg;
use crate::error::AppError;
use crate::state::{AppState, Outpost};

/// Every command, by name. build.rs generates an `allow-<name>` permission for each.
#[cfg(test)]
pub const COMMANDS: &[&str] = &include!("../commands.list");

/// Runs a store call on the blocking thread pool.
async fn blocking<T, F>(state: State<'_, AppState>, call: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&Outpost) -> Result<T, AppError> + Send + 'static,
{
    let app = state.app()?;
    tauri::async_runtime::spawn_blocking(move || call(&app)).await?
}

// ---- Notes ----------------------------------------------------------------------------------

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

// ---- Notebooks ------------------------------------------------------------------------------

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

// ---- Preferences and local status -----------------------------------------------------------

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

// ---- Sync -----------------------------------------------------------------------------------

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

async fn doctor_on(app: &Outpost, repair: bool) -> Result<DoctorReport, AppError> {
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

// ---- Account --------------------------------------------------------------------------------

/// Who this device syncs as, if anyone.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AccountInfo {
    pub signed_in: bool,
    /// The server signed in to; signed out, the one to offer (`OUTPOST_SERVER_URL`, which
    /// `scripts/run-app` sets to the local server it starts), if any.
    pub server_url: Option<String>,
    pub email: Option<String>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn account_info(state: State<'_, AppState>) -> Result<AccountInfo, AppError> {
    blocking(state, move |app| {
        Ok(match account::signed_in(&app.store, &app.vault)? {
            Some(s) => AccountInfo {
                signed_in: true,
                server_url: Some(s.server_url),
                email: Some(s.email),
            },
            None => AccountInfo {
                server_url: offered_server(),
                ..AccountInfo::default()
            },
        })
    })
    .await
}

/// The server the sign-in form starts with, from the environment (a local or company server).
fn offered_server() -> Option<String> {
    std::env::var("OUTPOST_SERVER_URL")
        .ok()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// Registers a new account (or, with `new_account` false, signs in to one) and syncs at once.
/// The password goes to the server and nowhere else: it is not stored or logged.
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in(
    state: State<'_, AppState>,
    server_url: Arg<String>,
    email: Arg<String>,
    password: Arg<String>,
    new_account: Arg<bool>,
) -> Result<AccountInfo, AppError> {
    let server_url = server_url.parse("server_url")?;
    let email = email.parse("email")?;
    let password = password.parse_secret("password")?;
    let new_account = new_account.parse("new_account")?;
    let app = state.app()?;
    let session = if new_account {
        account::register(&app.store, &app.vault, &server_url, &email, &password).await?
    } else {
        account::login(&app.store, &app.vault, &server_url, &email, &password).await?
    };
    app.with_engine(|engine| engine.sync_now());
    Ok(AccountInfo {
        signed_in: true,
        server_url: Some(session.server_url),
        email: Some(session.email),
    })
}

/// Signs out: the token is revoked and deleted; notes and the outbox stay on this device.
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out(state: State<'_, AppState>) -> Result<(), AppError> {
    let app = state.app()?;
    account::logout(&app.store, &app.vault).await?;
    app.with_engine(|engine| engine.sync_now());
    Ok(())
}

// ---- Files ----------------------------------------------------------------------------------

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
    use tauri_plugin_opener::OpenerExt;
    let problem = if std::env::var_os("OUTPOST_NO_EXTERNAL_OPEN").is_some() {
        // The real-window tests play the editor themselves.
        Some("opening editors is turned off (OUTPOST_NO_EXTERNAL_OPEN)".to_owned())
    } else {
        app_handle
            .opener()
            .open_path(&path, None::<&str>)
            .err()
            .map(|e| e.to_string())
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::Store;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The arguments each command reads (`name: Arg<..>`), and whether it may be left out.
    fn command_args(source: &str) -> BTreeMap<String, BTreeMap<String, bool>> {
        let mut commands = BTreeMap::new();
        let blocks = source.split("#[tauri::command").skip(1);
        // (Only attributes: the string in this very function is followed by a quote.)
        for block in blocks.filter(|b| b.starts_with('(')) {
            let Some(start) = block.find("pub async fn ") else {
                continue;
            };
            let rest = &block[start + "pub async fn ".len()..];
            let name: String = rest.chars().take_while(|c| *c != '(').collect();
            let params = rest.split(") -> ").next().unwrap_or_default();
            let mut args = BTreeMap::new();
            for (i, _) in params.match_indices(": Arg<") {
                let arg: String = params[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let optional = params[i..].starts_with(": Arg<Option<");
                args.insert(arg, optional);
            }
            commands.insert(name, args);
        }
        commands
    }

    /// The argument keys each wrapper in api.ts sends (`invoke<T>('name', { a, b })`).
    fn wrapper_args(api: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut wrappers = BTreeMap::new();
        for call in api.split("invoke<").skip(1) {
            let Some(open) = call.find(">('") else {
                continue;
            };
            let after = &call[open + 3..];
            let name: String = after.chars().take_while(|c| *c != '\'').collect();
            let tail = &after[name.len() + 1..];
            let keys = match tail.strip_prefix(", {") {
                Some(object) => object
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|k| k.split(':').next().unwrap_or_default().trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
                None => BTreeSet::new(),
            };
            wrappers.insert(name, keys);
        }
        wrappers
    }

    /// Argument names are strings on the JavaScript side: a renamed or added argument must be
    /// renamed or added in api.ts too, or the window would send what no command reads.
    #[test]
    fn each_wrapper_sends_the_arguments_its_command_reads() -> TestResult {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let api = std::fs::read_to_string(root.join("../ui/src/api.ts"))?;
        let commands = command_args(include_str!("commands.rs"));
        let wrappers = wrapper_args(&api);
        assert_eq!(commands.len(), COMMANDS.len(), "{:?}", commands.keys());
        for (name, args) in &commands {
            let sent = wrappers
                .get(name)
                .ok_or_else(|| format!("{name} has no wrapper in ui/src/api.ts"))?;
            let read: BTreeSet<String> = args.keys().cloned().collect();
            let unread: Vec<_> = sent.difference(&read).collect();
            assert!(
                unread.is_empty(),
                "api.ts sends {unread:?} to {name}, which reads {read:?}"
            );
            let missing: Vec<_> = args
                .iter()
                .filter(|(arg, optional)| !**optional && !sent.contains(*arg))
                .map(|(arg, _)| arg)
                .collect();
            assert!(
                missing.is_empty(),
                "api.ts does not send {missing:?} to {name}"
            );
        }
        Ok(())
    }

    #[test]
    fn every_command_is_granted_and_wrapped() -> TestResult {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let capability = std::fs::read_to_string(root.join("capabilities/main-window.json"))?;
        let main = std::fs::read_to_string(root.join("src/main.rs"))?;
        let api = std::fs::read_to_string(root.join("../ui/src/api.ts"))?;
        for name in COMMANDS {
            let permission = format!("\"allow-{}\"", name.replace('_', "-"));
            assert!(
                capability.contains(&permission),
                "{permission} missing in the capability"
            );
            assert!(
                main.contains(&format!("commands::{name},"))
                    || main.contains(&format!("commands::{name}\n")),
                "{name} not registered in main.rs"
            );
            assert!(
                api.contains(&format!("'{name}'")),
                "{name} has no wrapper in ui/src/api.ts"
            );
        }
        Ok(())
    }

    #[test]
    fn drafts_and_patches_refuse_unknown_fields() {
        let parsed = serde_json::from_str::<NoteDraft>(r#"{"title": "a", "colour": "red"}"#);
        assert!(parsed.is_err());
        let patch = serde_json::from_str::<NotePatch>(r#"{"body": "b", "colour": "red"}"#);
        assert!(patch.is_err());
    }

    #[test]
    fn resolutions_parse_as_the_merge_view_sends_them() -> TestResult {
        let mine: Resolution = serde_json::from_str(r#"{"kind": "mine"}"#)?;
        assert_eq!(mine, Resolution::Mine);
        let text: Resolution = serde_json::from_str(r#"{"kind": "text", "text": "merged"}"#)?;
        assert_eq!(text, Resolution::Text("merged".into()));
        assert!(serde_json::from_str::<Resolution>(r#"{"kind": "both"}"#).is_err());
        Ok(())
    }

    #[test]
    fn an_unavailable_store_answers_with_its_code() {
        let state = AppState::Unavailable {
            code: "data_dir_in_use",
            message: "in use".into(),
        };
        let err = state
            .app()
            .err()
            .map(|e| (e.code().to_owned(), e.to_string()));
        assert_eq!(
            err,
            Some(("data_dir_in_use".to_owned(), "in use".to_string()))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_doctor_needs_an_account_and_says_so() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(Store::open(dir.path())?);
        let app = Outpost::start(store);
        let err = doctor_on(&app, false).await.err().ok_or("signed out")?;
        assert_eq!(err.code(), "not_signed_in");
        app.shutdown(Duration::from_secs(5)).await;
        Ok(())
    }
}
