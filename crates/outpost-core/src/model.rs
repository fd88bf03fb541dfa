//! The values the store hands out and takes in: notes, notebooks, queries, pages, changes.
//! All are serde types, because the app sends them to the UI and the CLI prints them as JSON.

use outpost_protocol::{MutationId, NoteId, NotebookId};
use serde::{Deserialize, Deserializer, Serialize};

/// A note's sync state, derived from the outbox and the conflicts (never stored by hand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    Synced,
    Pending,
    Failed,
    Conflict,
}

impl SyncState {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "synced" => Some(SyncState::Synced),
            "pending" => Some(SyncState::Pending),
            "failed" => Some(SyncState::Failed),
            "conflict" => Some(SyncState::Conflict),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::Pending => "pending",
            SyncState::Failed => "failed",
            SyncState::Conflict => "conflict",
        }
    }
}

/// A whole note.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Note {
    pub id: NoteId,
    pub notebook_id: Option<NotebookId>,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub archived: bool,
    /// In the Trash.
    pub deleted: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The server version this device last saw; `None` until the server has it.
    pub server_version: Option<i64>,
    pub sync_state: SyncState,
}

/// What a list shows of a note: no body, a short preview instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NoteSummary {
    pub id: NoteId,
    pub notebook_id: Option<NotebookId>,
    pub title: String,
    pub preview: String,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub archived: bool,
    pub deleted: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub sync_state: SyncState,
}

/// A new note. Fields left out take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct NoteDraft {
    pub notebook_id: Option<NotebookId>,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub pinned: bool,
}

/// A partial update: only the fields given change (and only those go to the server).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct NotePatch {
    /// `Some(None)` moves the note out of any notebook.
    #[serde(deserialize_with = "present")]
    pub notebook_id: Option<Option<NotebookId>>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub tags: Option<Vec<String>>,
    pub pinned: Option<bool>,
    pub archived: Option<bool>,
}

impl NotePatch {
    pub fn is_empty(&self) -> bool {
        *self == NotePatch::default()
    }
}

/// Tells "absent" (`None`) from "null" (`Some(None)`) for a double option.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Which notes a list shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum NoteView {
    /// Not archived, not in the Trash.
    #[default]
    Active,
    Archived,
    Trash,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct ListQuery {
    pub view: NoteView,
    pub notebook_id: Option<NotebookId>,
    pub tag: Option<String>,
    /// Page size, 1 to [`ListQuery::MAX_LIMIT`].
    pub limit: u32,
    /// The `next` token of the previous page.
    pub after: Option<String>,
    /// Rows to skip instead (not with `after`).
    pub offset: u32,
}

impl ListQuery {
    pub const MAX_LIMIT: u32 = 1000;
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            view: NoteView::Active,
            notebook_id: None,
            tag: None,
            limit: 100,
            after: None,
            offset: 0,
        }
    }
}

/// One page of a list, pinned first, then most recently changed first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NotePage {
    pub items: Vec<NoteSummary>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A run of snippet text, highlighted where it matched the query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SnippetPart {
    pub text: String,
    pub hit: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SearchHit {
    pub note: NoteSummary,
    pub title: Vec<SnippetPart>,
    pub snippet: Vec<SnippetPart>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Notebook {
    pub id: NotebookId,
    pub name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Notes in it that are not in the Trash.
    pub note_count: i64,
}

/// A mutation waiting in the outbox, as the diagnostics screen and `outpost outbox ls` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutboxEntry {
    pub seq: i64,
    pub mutation_id: MutationId,
    pub mutation_number: i64,
    pub name: String,
    pub schema_version: u32,
    pub entity: outpost_protocol::Entity,
    pub entity_id: String,
    pub fields: outpost_protocol::Fields,
    pub base_version: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// `queued`, or `failed` (a dead letter the user can retry, edit or discard).
    pub state: String,
    /// Ever sent: such an entry is never rewritten.
    pub sent: bool,
}

/// What a committed write changed; the app forwards these to the UI, which re-reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Change {
    pub notes: Vec<NoteId>,
    pub notebooks: Vec<NotebookId>,
    pub prefs: Vec<String>,
    /// The outbox changed (so pending counts did).
    pub outbox: bool,
    /// Something was queued to send (an edit, a merge, a retry): a reason to sync. Entries
    /// leaving the outbox after a push are not.
    pub queued: bool,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty() && self.notebooks.is_empty() && self.prefs.is_empty() && !self.outbox
    }
}

/// Counts for the status bar and `outpost status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LocalStatus {
    pub client_id: String,
    pub data_dir: String,
    pub notes: i64,
    pub in_trash: i64,
    pub notebooks: i64,
    pub pending: i64,
    pub failed: i64,
    pub conflicts: i64,
    /// Creation time of the oldest waiting mutation.
    pub oldest_pending_ms: Option<i64>,
}
