//! The IPC commands the window may call, and the state they run against.
//!
//! Each command parses its arguments into the core's types (serde does that, refusing unknown
//! fields), calls the core and maps the error; nothing else. The logic is in plain functions over
//! a [`Store`], so tests run it against a temp database without a window. Store calls block on
//! SQLite, so the commands run them on the blocking thread pool, not on the async workers.

use std::sync::Arc;

use outpost_core::{ListQuery, Note, NoteDraft, NotePage, Store};
use tauri::State;

use crate::error::AppError;

/// What the commands run against: the open store, or why it could not be opened.
pub enum StoreState {
    Open(Arc<Store>),
    Unavailable { code: &'static str, message: String },
}

impl StoreState {
    fn store(&self) -> Result<Arc<Store>, AppError> {
        match self {
            StoreState::Open(store) => Ok(Arc::clone(store)),
            StoreState::Unavailable { code, message } => Err(AppError::StoreUnavailable {
                code,
                message: message.clone(),
            }),
        }
    }
}

/// One page of notes; the first page of the active notes when `query` is left out.
pub fn list_notes_in(store: &Store, query: Option<ListQuery>) -> Result<NotePage, AppError> {
    Ok(store.list_notes(&query.unwrap_or_default())?)
}

/// Creates a note. The core validates it and queues it for sync in the same transaction; the
/// window learns of it through `notes-changed`, like of any other change.
pub fn create_note_in(store: &Store, draft: NoteDraft) -> Result<Note, AppError> {
    Ok(store.create_note(draft)?)
}

/// Runs a store call on the blocking thread pool.
async fn blocking<T, F>(state: State<'_, StoreState>, call: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, AppError> + Send + 'static,
{
    let store = state.store()?;
    tauri::async_runtime::spawn_blocking(move || call(&store)).await?
}

#[tauri::command]
pub async fn list_notes(
    state: State<'_, StoreState>,
    query: Option<ListQuery>,
) -> Result<NotePage, AppError> {
    blocking(state, move |store| list_notes_in(store, query)).await
}

#[tauri::command]
pub async fn create_note(state: State<'_, StoreState>, note: NoteDraft) -> Result<Note, AppError> {
    blocking(state, move |store| create_note_in(store, note)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn created_notes_are_listed() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        assert!(list_notes_in(&store, None)?.items.is_empty());

        // Parsed from JSON as the window sends it.
        let draft: NoteDraft =
            serde_json::from_str(r#"{"title": "Pump station 4", "body": "Valve B leaks."}"#)?;
        create_note_in(&store, draft)?;

        let page = list_notes_in(&store, None)?;
        let titles: Vec<&str> = page.items.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(titles, ["Pump station 4"]);
        assert_eq!(page.items[0].preview, "Valve B leaks.");
        Ok(())
    }

    #[test]
    fn a_change_is_announced_after_create() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut changes = store.subscribe();
        let note = create_note_in(&store, NoteDraft::default())?;
        let change = changes.try_recv()?;
        assert!(change.notes.contains(&note.id), "{change:?}");
        Ok(())
    }

    #[test]
    fn an_unavailable_store_answers_with_its_code() {
        let state = StoreState::Unavailable {
            code: "data_dir_in_use",
            message: "in use".into(),
        };
        let err = state.store().err().map(|e| (e.code(), e.to_string()));
        assert_eq!(err, Some(("data_dir_in_use", "in use".to_string())));
    }

    #[test]
    fn drafts_refuse_unknown_fields() {
        let parsed = serde_json::from_str::<NoteDraft>(r#"{"title": "a", "colour": "red"}"#);
        assert!(parsed.is_err());
    }
}
