//! "Open in external editor": a note's body goes to a file the user's editor opens, and every
//! save there comes back into the note through the normal write path (so it is queued in the
//! outbox and syncs like any edit).
//!
//! One folder holds these files, watched without recursion: editors save in place, or write
//! a temporary file and rename it over the old one (vim, VS Code, most IDEs), which replaces
//! the file's inode, so watching the files themselves would lose them after the first save.
//! Events for anything but the files handed out are ignored.
//!
//! An editor's save is several events (truncate, write, close, sometimes rename and chmod), so
//! a file is read only once it has been quiet for [`QUIET`]. A file read empty, or missing,
//! when it held text before is most likely caught between the truncate and the write of a slow
//! save: it gets [`GRACE`] more for a later event to bring the text; only if none comes is the
//! empty file (or the loss of the file) taken as meant. Text equal to the last text written or
//! applied is never applied again, so the file written by [`ExternalEdits::open`] and repeated
//! events of one save change nothing.
//!
//! Nothing a file holds can stop the watcher: a save that cannot be applied (the note was
//! deleted for good, the file is too large or not UTF-8, it cannot be read) is reported as an
//! [`ExternalEvent`] with an error outcome, and the next save is read as usual.
//!
//! The quiet-period logic lives here rather than in `notify-debouncer-*`: it needs per-file
//! state the debouncers do not keep (the text last applied, the one extra wait for a truncated
//! file), and a worker of our own also lets [`Drop`] apply saves still waiting out their quiet
//! period before it returns.

use crate::error::{Error, Result};
use crate::files::{read_text, safe_stem, write_atomic};
use crate::model::NotePatch;
use crate::store::Store;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use outpost_protocol::{MAX_BODY_BYTES, NoteId};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How long a file must be left alone before it is read: longer than the gaps between the
/// events of one save, short enough that "Saved from your editor" follows the save at once.
const QUIET: Duration = Duration::from_millis(250);
/// The extra wait for a file that was emptied or removed, for the rest of a slow save.
const GRACE: Duration = Duration::from_millis(1000);

/// What became of one save in the editor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExternalOutcome {
    /// The note's body is now the file's text (and queued to sync).
    Saved,
    /// The note was left unchanged; `code` is the core error's code.
    Error { code: String, message: String },
}

/// A save in an external editor and its outcome, for the window to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ExternalEvent {
    pub note_id: NoteId,
    pub path: String,
    pub outcome: ExternalOutcome,
}

/// A file handed out: its note, and the text it was last known to hold (written by `open`, or
/// read from it and applied).
struct Tracked {
    note_id: NoteId,
    last: String,
}

type Files = Arc<Mutex<HashMap<PathBuf, Tracked>>>;

enum Msg {
    Fs(notify::Result<Event>),
    Stop,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only plain map updates happen under these locks; a panic elsewhere leaves them whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The files of notes open in external editors, and the watcher that brings their saves back.
/// Dropping it stops the watcher and its thread (saves already seen are applied first).
pub struct ExternalEdits {
    store: Arc<Store>,
    dir: PathBuf,
    files: Files,
    events: broadcast::Sender<ExternalEvent>,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    worker_tx: mpsc::Sender<Msg>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ExternalEdits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalEdits")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn watch_error(dir: &Path, err: notify::Error) -> Error {
    match err.kind {
        notify::ErrorKind::Io(source) => Error::io(dir, source),
        _ => Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!("cannot watch the folder: {err}")),
        },
    }
}

impl ExternalEdits {
    /// Starts watching `dir` (created if missing), where [`ExternalEdits::open`] puts files.
    /// Give it a folder of its own, such as one in the app's data or cache directory.
    pub fn start(store: Arc<Store>, dir: PathBuf) -> Result<ExternalEdits> {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // Watchers report real paths (macOS reports /private/var for /var): track those.
        let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
        let (tx, rx) = mpsc::channel();
        let fs_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The worker is gone only while this watcher is being dropped.
            let _ = fs_tx.send(Msg::Fs(event));
        })
        .map_err(|e| watch_error(&dir, e))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(&dir, e))?;
        let files = Files::default();
        let events = broadcast::channel(64).0;
        let worker = Worker {
            store: store.clone(),
            files: files.clone(),
            events: events.clone(),
            pending: HashMap::new(),
        };
        let worker = std::thread::Builder::new()
            .name("outpost-external-edits".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| Error::io(&dir, e))?;
        tracing::debug!(dir = %dir.display(), "watching for external edits");
        Ok(ExternalEdits {
            store,
            dir,
            files,
            events,
            watcher: Mutex::new(Some(watcher)),
            worker_tx: tx,
            worker: Some(worker),
        })
    }

    /// The watched folder (its real path).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the note's body to `<dir>/<safe title>-<first 8 characters of its id>.md` and
    /// watches it; returns the path for the editor. Two open notes never share a file (a
    /// numbered name tells them apart). A note already open keeps its file, which is brought
    /// up to date with the note unless it holds a save not yet applied.
    pub fn open(&self, id: NoteId) -> Result<PathBuf> {
        let note = self.store.get_note(id)?;
        let mut files = lock(&self.files);
        if let Some((path, tracked)) = files.iter_mut().find(|(_, t)| t.note_id == id) {
            let on_disk = read_text(path, MAX_BODY_BYTES, "body").ok();
            let unsaved = on_disk.is_some_and(|text| text != tracked.last);
            if !unsaved && note.body != tracked.last {
                write_atomic(path, note.body.as_bytes())?;
                tracked.last = note.body;
            }
            return Ok(path.clone());
        }
        let stem = safe_stem(&note.title);
        let short: String = id.to_string().chars().take(8).collect();
        let mut n = 1;
        let path = loop {
            let name = match n {
                1 => format!("{stem}-{short}.md"),
                n => format!("{stem}-{short} ({n}).md"),
            };
            n += 1;
            // UUIDv7 ids begin with their creation time: notes made within a minute or so
            // of each other share the first 8 characters, and may share a title too. Compare
            // ignoring case, as the file systems of macOS and Windows do.
            let lower = name.to_lowercase();
            let taken = files.keys().any(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().to_lowercase() == lower)
            });
            if !taken {
                break self.dir.join(name);
            }
        };
        write_atomic(&path, note.body.as_bytes())?;
        files.insert(
            path.clone(),
            Tracked {
                note_id: id,
                last: note.body,
            },
        );
        Ok(path)
    }

    /// Stops bringing saves of this note's file back. The file stays (an editor may still show
    /// it); a later [`ExternalEdits::open`] writes and watches it again.
    pub fn close(&self, id: NoteId) {
        lock(&self.files).retain(|_, t| t.note_id != id);
    }

    /// Every save's outcome. A receiver that falls behind gets `Lagged` and misses some.
    pub fn subscribe(&self) -> broadcast::Receiver<ExternalEvent> {
        self.events.subscribe()
    }
}

impl Drop for ExternalEdits {
    fn drop(&mut self) {
        // The OS watch goes first, so that nothing arrives after the worker is gone.
        drop(lock(&self.watcher).take());
        let _ = self.worker_tx.send(Msg::Stop);
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!("the external-edits worker panicked");
        }
    }
}

/// A file that changed and is waiting out its quiet period.
struct Pending {
    due: Instant,
    /// It may wait [`GRACE`] more if it reads empty or missing.
    patient: bool,
}

/// The thread that turns events into saves.
struct Worker {
    store: Arc<Store>,
    files: Files,
    events: broadcast::Sender<ExternalEvent>,
    pending: HashMap<PathBuf, Pending>,
}

/// Whether an event may mean new content. Reads are not (this worker's own reads would
/// otherwise wake it again and again); a close after writing is.
fn may_change_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let msg = match self.pending.values().map(|p| p.due).min() {
                Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Fs(Ok(event))) => self.noticed(&event),
                Ok(Msg::Fs(Err(err))) => tracing::warn!(error = %err, "file watcher error"),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    // Saves already seen are applied now rather than lost with the app.
                    for (path, _) in std::mem::take(&mut self.pending) {
                        self.apply(&path, false);
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let due: Vec<(PathBuf, bool)> = self
                .pending
                .iter()
                .filter(|(_, p)| p.due <= now)
                .map(|(path, p)| (path.clone(), p.patient))
                .collect();
            for (path, patient) in due {
                self.pending.remove(&path);
                self.apply(&path, patient);
            }
        }
    }

    /// Starts (or restarts) the quiet period of every tracked file the event names.
    fn noticed(&mut self, event: &Event) {
        if !may_change_content(&event.kind) && !event.need_rescan() {
            return;
        }
        let paths: Vec<PathBuf> = {
            let files = lock(&self.files);
            if event.need_rescan() {
                // The OS dropped events: any file may have changed.
                files.keys().cloned().collect()
            } else {
                event
                    .paths
                    .iter()
                    .filter(|p| files.contains_key(*p))
                    .cloned()
                    .collect()
            }
        };
        let due = Instant::now() + QUIET;
        for path in paths {
            self.pending.insert(path, Pending { due, patient: true });
        }
    }

    /// Reads the file and saves its text into the note if it is new. A `patient` read that
    /// finds the file emptied or gone waits [`GRACE`] for the rest of the save instead.
    fn apply(&mut self, path: &Path, patient: bool) {
        let Some(note_id) = lock(&self.files).get(path).map(|t| t.note_id) else {
            return; // closed meanwhile
        };
        let wait = |pending: &mut HashMap<PathBuf, Pending>| {
            pending.insert(
                path.to_path_buf(),
                Pending {
                    due: Instant::now() + GRACE,
                    patient: false,
                },
            );
        };
        let text = match read_text(path, MAX_BODY_BYTES, "body") {
            Ok(text) => text,
            Err(Error::Io { source, .. })
                if patient && source.kind() == std::io::ErrorKind::NotFound =>
            {
                return wait(&mut self.pending);
            }
            Err(err) => return self.report(note_id, path, Err(err)),
        };
        match lock(&self.files).get(path) {
            Some(t) if t.note_id == note_id && t.last == text => return,
            Some(t) if t.note_id == note_id => {}
            _ => return,
        }
        // Unchanged text returned above, so an empty one means the file held text before.
        if patient && text.is_empty() {
            return wait(&mut self.pending);
        }
        let saved = self.store.update_note(
            note_id,
            NotePatch {
                body: Some(text),
                ..Default::default()
            },
        );
        let saved = saved.map(|note| {
            if let Some(t) = lock(&self.files).get_mut(path) {
                t.last = note.body;
            }
        });
        self.report(note_id, path, saved);
    }

    fn report(&self, note_id: NoteId, path: &Path, result: Result<()>) {
        let outcome = match result {
            Ok(()) => {
                tracing::debug!(%note_id, path = %path.display(), "saved from an external editor");
                ExternalOutcome::Saved
            }
            Err(err) => {
                tracing::warn!(%note_id, path = %path.display(), error = %err, "external edit not saved");
                let message = match &err {
                    Error::NotFound { what: "note", .. } => format!(
                        "the note was deleted in Outpost; the changes in {} were not saved",
                        path.display()
                    ),
                    err => format!("{err}; the note was not changed"),
                };
                ExternalOutcome::Error {
                    code: err.code().to_owned(),
                    message,
                }
            }
        };
        // No receiver is fine: no window is listening.
        let _ = self.events.send(ExternalEvent {
            note_id,
            path: path.display().to_string(),
            outcome,
        });
    }
}

#[cfg(test)]
mod tests;
