//! Attachments: attach (files by path, the system picker, or bytes pasted or dropped), list,
//! open with the system's app, remove, retry. Each call goes to the core; the bytes move in the
//! engine's transfer loop, which an attach wakes.

use std::path::PathBuf;

use outpost_core::attachments::{Attachment, BlobQueue};
use outpost_core::{AttachmentId, NoteId};
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::AppState;

/// The headers of `attach_bytes` (its body is the raw bytes).
const HEADER_NOTE: &str = "x-outpost-note";
const HEADER_NAME: &str = "x-outpost-file-name";

#[tauri::command(rename_all = "snake_case")]
pub async fn list_attachments(
    state: State<'_, AppState>,
    note_id: Arg<Option<NoteId>>,
) -> Result<Vec<Attachment>, AppError> {
    let note = note_id.parse("note_id")?;
    blocking(state, move |app| Ok(app.store.list_attachments(note)?)).await
}

/// Attaches files by path (dropped on the window), or, without paths, the files the user picks.
#[tauri::command(rename_all = "snake_case")]
pub async fn attach_files(
    state: State<'_, AppState>,
    app_handle: tauri::AppHandle,
    note_id: Arg<NoteId>,
    paths: Arg<Option<Vec<String>>>,
) -> Result<Vec<Attachment>, AppError> {
    let note = note_id.parse("note_id")?;
    let paths: Vec<PathBuf> = match paths.parse("paths")? {
        Some(paths) if !paths.is_empty() => paths.into_iter().map(PathBuf::from).collect(),
        _ => pick_files(&app_handle).await?,
    };
    blocking(state, move |app| {
        let attached = paths
            .iter()
            .map(|p| app.store.attach_file(note, p))
            .collect::<Result<Vec<_>, _>>()?;
        app.with_engine(|e| e.transfer_now());
        Ok(attached)
    })
    .await
}

async fn pick_files(app_handle: &tauri::AppHandle) -> Result<Vec<PathBuf>, AppError> {
    use tauri_plugin_dialog::DialogExt;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app_handle
        .dialog()
        .file()
        .set_title("Attach files")
        .pick_files(move |picked| {
            let _ = tx.send(picked);
        });
    let picked = rx.await.ok().flatten().ok_or(AppError::Cancelled)?;
    picked
        .into_iter()
        .map(|p| {
            p.into_path()
                .map_err(|e| AppError::Open(format!("the chosen file: {e}")))
        })
        .collect()
}

/// Attaches bytes pasted or dropped into the window: the body is the file's bytes as they are
/// (no JSON: a 10 MB photo as a JSON array would be 40 MB), the note and the file's name come
/// in headers.
#[tauri::command(rename_all = "snake_case")]
pub async fn attach_bytes(
    state: State<'_, AppState>,
    request: tauri::ipc::Request<'_>,
) -> Result<Attachment, AppError> {
    let header = |name: &'static str| -> Result<String, AppError> {
        let value = request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(AppError::BadArgument {
                name,
                reason: "it is missing".to_owned(),
            })?;
        // The window encodes the name (a header is ASCII).
        percent_decode(value).ok_or(AppError::BadArgument {
            name,
            reason: "it is not percent-encoded UTF-8".to_owned(),
        })
    };
    let note: NoteId = header(HEADER_NOTE)?
        .parse()
        .map_err(|e: outpost_core::IdError| AppError::BadArgument {
            name: HEADER_NOTE,
            reason: e.to_string(),
        })?;
    let name = header(HEADER_NAME)?;
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(AppError::BadArgument {
            name: "body",
            reason: "send the file's bytes as the raw body".to_owned(),
        });
    };
    let bytes = bytes.clone();
    blocking(state, move |app| {
        let attached = app.store.attach_bytes(note, &name, &bytes)?;
        app.with_engine(|e| e.transfer_now());
        Ok(attached)
    })
    .await
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What opening an attachment did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OpenOutcome {
    /// Handed to the system's app for its type (a copy: the app cannot change the stored one).
    Opened { path: String },
    /// No app opens it here, or opening is turned off: the copy is at `path`.
    Saved { path: String, problem: String },
    /// Not on this device yet: its download is asked for.
    Downloading,
}

/// Opens an attachment with the system's app for its type; one not downloaded yet is asked for.
#[tauri::command(rename_all = "snake_case")]
pub async fn open_attachment(
    state: State<'_, AppState>,
    app_handle: tauri::AppHandle,
    id: Arg<AttachmentId>,
) -> Result<OpenOutcome, AppError> {
    let id = id.parse("id")?;
    let copy = blocking(state, move |app| {
        let a = app.store.get_attachment(id)?;
        let files = app.store.blob_files();
        if !files.has(&a.sha256) {
            app.store.want_attachment(id)?;
            app.with_engine(|e| e.transfer_now());
            return Ok(None);
        }
        let dir = app.store.dir().join("opened").join(id.to_string());
        std::fs::create_dir_all(&dir)
            .map_err(|e| AppError::Open(format!("{}: {e}", dir.display())))?;
        let path = dir.join(&a.name);
        files.copy_verified(&a.sha256, &path)?;
        Ok(Some(path))
    })
    .await?;
    let Some(path) = copy else {
        return Ok(OpenOutcome::Downloading);
    };
    let path = path.display().to_string();
    Ok(match super::open_with_system(&app_handle, &path) {
        None => OpenOutcome::Opened { path },
        Some(problem) => OpenOutcome::Saved { path, problem },
    })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn remove_attachment(
    state: State<'_, AppState>,
    id: Arg<AttachmentId>,
) -> Result<(), AppError> {
    let id = id.parse("id")?;
    blocking(state, move |app| Ok(app.store.remove_attachment(id)?)).await
}

/// "Retry" in Diagnostics: every failed or waiting transfer, now.
#[tauri::command(rename_all = "snake_case")]
pub async fn retry_transfers(state: State<'_, AppState>) -> Result<usize, AppError> {
    blocking(state, move |app| {
        let n = app.store.retry_transfers()?;
        app.with_engine(|e| e.transfer_now());
        Ok(n)
    })
    .await
}

/// What waits to go up or come down, and the server's limit on one file (known after the first
/// transfer), to say before attaching.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TransferQueue {
    pub queue: BlobQueue,
    #[cfg_attr(test, ts(type = "number | null"))]
    pub max_file_bytes: Option<u64>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn transfer_queue(state: State<'_, AppState>) -> Result<TransferQueue, AppError> {
    blocking(state, move |app| {
        Ok(TransferQueue {
            queue: app.store.blob_queue()?,
            max_file_bytes: app.store.blob_limits()?.map(|l| l.max_blob_bytes),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn a_file_name_comes_percent_encoded() {
        assert_eq!(
            percent_decode("pump%204%20%C3%A9.jpg").as_deref(),
            Some("pump 4 é.jpg")
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%C3"), None);
    }
}
