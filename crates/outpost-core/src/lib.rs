//! Outpost's core: the local store (SQLite, the UI's source of truth), the outbox, the hybrid
//! logical clock, the change stream, and the sync engine ([`sync`]: plans apart from their
//! execution, the engine loop, the doctor, the token vault).
//!
//! Beside the store: Markdown import and export of a folder ([`Store::export_markdown`],
//! [`Store::import_markdown`]) and editing notes in an external editor ([`ExternalEdits`]).
//!
//! It knows nothing of Tauri: the desktop app, the CLI, tests and benchmarks all drive this
//! crate directly. Start at [`Store::open`].

pub mod attachments;
mod checkpoint;
pub mod clock;
pub mod dates;
mod db;
mod error;
mod external;
mod files;
mod markdown;
mod meta;
mod model;
mod notebooks;
mod notes;
mod outbox;
mod prefs;
#[cfg(test)]
mod query_plans;
mod schema;
mod search_index;
mod status;
mod store;
pub mod sync;
pub mod testhook;

pub use db::Synchronous;
pub use error::{Error, Result};
pub use external::{ExternalEdits, ExternalEvent, ExternalOutcome};
pub use markdown::{MarkdownExport, MarkdownImport, SkippedFile};
pub use model::{
    Change, ListQuery, LocalStatus, Note, NoteDraft, NotePage, NotePatch, NoteSummary, NoteView,
    Notebook, OutboxEntry, SearchHit, SnippetPart, SyncState,
};
pub use notebooks::MAX_NOTEBOOK_NAME_CHARS;
pub use notes::{MAX_TAG_CHARS, MAX_TAGS};
pub use outpost_protocol::{
    AttachmentId, ClientId, IdError, MAX_BODY_BYTES, MAX_TITLE_BYTES, MutationId, NoteId,
    NotebookId, Stamp,
};
pub use prefs::{DOWNLOAD_ALL_ATTACHMENTS, Pref, PrefScope, SYNC_INTERVAL_SECS, WORK_OFFLINE};
pub use store::{Store, StoreOptions};

/// The app's identifier: also the name of its data directory.
pub const APP_IDENTIFIER: &str = "app.outpost.notes";

/// Where the app and the CLI keep their data unless told otherwise: `$OUTPOST_DATA_DIR`, else
/// the platform's data directory (`~/.local/share/app.outpost.notes` on Linux,
/// `~/Library/Application Support/app.outpost.notes` on macOS, `%APPDATA%\app.outpost.notes` on
/// Windows), the same place Tauri's `app_data_dir` gives the desktop app.
pub fn default_data_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("OUTPOST_DATA_DIR").filter(|d| !d.is_empty()) {
        return Some(dir.into());
    }
    dirs::data_dir().map(|d| d.join(APP_IDENTIFIER))
}
