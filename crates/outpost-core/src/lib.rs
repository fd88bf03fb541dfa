//! Outpost's core: the local store (SQLite, the UI's source of truth), the outbox, the hybrid
//! logical clock and the change stream; the sync engine joins it in a later issue.
//!
//! It knows nothing of Tauri: the desktop app, the CLI, tests and benchmarks all drive this
//! crate directly. Start at [`Store::open`].

pub mod clock;
mod db;
mod error;
mod meta;
mod model;
mod notebooks;
mod notes;
mod outbox;
mod prefs;
mod schema;
mod status;
mod store;

pub use db::Synchronous;
pub use error::{Error, Result};
pub use model::{
    Change, ListQuery, LocalStatus, Note, NoteDraft, NotePage, NotePatch, NoteSummary, NoteView,
    Notebook, OutboxEntry, SearchHit, SnippetPart, SyncState,
};
pub use notebooks::MAX_NOTEBOOK_NAME_CHARS;
pub use notes::{MAX_TAG_CHARS, MAX_TAGS};
pub use outpost_protocol::{ClientId, MAX_BODY_BYTES, MAX_TITLE_BYTES, MutationId, NoteId, NotebookId, Stamp};
pub use prefs::{Pref, PrefScope};
pub use store::{Store, StoreOptions};
