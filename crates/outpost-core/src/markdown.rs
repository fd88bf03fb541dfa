//! Markdown import and export of a folder: one `.md` file per note, one subfolder per notebook.
//!
//! An export writes every note that is not in the Trash (archived ones too) as
//! `<dir>/<notebook>/<title>.md`, or `<dir>/<title>.md` for a note in no notebook, each file a
//! front matter block (see [`front_matter`]: `id`, `title`, `notebook`, `tags`, `pinned`,
//! `archived`, `created`, `updated`, times as RFC 3339 UTC text) followed by the body verbatim.
//! File names are made safe for Windows, macOS and Linux; names that collide (also ignoring
//! case, as macOS and Windows do) get " (2)", " (3)"...
//!
//! An export never replaces a file it did not write. It writes only into a new folder, an empty
//! one, or one an earlier export wrote: such a folder holds a hidden marker file listing the
//! files that export wrote, and only those may be replaced; anything else the user put there is
//! left alone (a colliding note gets a numbered name instead).
//!
//! An import reads `.md`, `.markdown` and `.txt` files from a folder and its subfolders
//! (hidden ones and links back to a folder already read are skipped); a file's first-level
//! subfolder is its notebook, found by name or created. Front matter is optional and may be
//! the simple YAML other apps write. A note whose `id` this store already has is skipped, so
//! importing an export of this store again adds nothing. A file that cannot become a note (too
//! large, not UTF-8, unreadable, a title or tags over the limits) is skipped with its reason;
//! the rest are imported. The times in the front matter are not kept: an imported note is a new
//! note, created now, with a new id.

mod front_matter;
#[cfg(test)]
mod tests;

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::files::{read_text, safe_stem, write_atomic};
use crate::model::{NoteDraft, NotePatch};
use crate::notes::check_draft;
use crate::store::Store;
use outpost_protocol::{MAX_BODY_BYTES, MAX_TITLE_BYTES, NoteId, NotebookId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The hidden file an export leaves in its folder: proof that the folder is an export, and the
/// list of files it may replace.
const MARKER: &str = ".outpost-export";
/// Files an OS drops into folders by itself: a folder holding only these counts as empty.
const SYSTEM_FILES: [&str; 3] = [".DS_Store", "Thumbs.db", "desktop.ini"];
/// The extensions an import reads (compared ignoring case).
const EXTENSIONS: [&str; 3] = ["md", "markdown", "txt"];
/// Notes, and bytes of text, per import transaction: a batch holds the writer for its whole
/// length and its drafts in memory.
const BATCH_NOTES: usize = 2000;
const BATCH_BYTES: usize = 64 << 20;
/// Room for front matter on top of the largest body a note may have.
const FRONT_MATTER_SLACK: usize = 64 << 10;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MarkdownExport {
    /// The folder, as given.
    pub dir: String,
    /// Files written, one per note.
    pub notes: usize,
    /// Notebook folders written to.
    pub notebooks: usize,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MarkdownImport {
    /// Notes created.
    pub imported: usize,
    /// Files not imported, each with the reason.
    pub skipped: Vec<SkippedFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

/// The marker file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    #[serde(default)]
    files: Vec<String>,
}

/// One note to write: where, and the notebook name its front matter records.
struct Planned {
    id: NoteId,
    notebook: Option<String>,
    folder: Option<String>,
    file: String,
}

impl Planned {
    /// The path relative to the export folder, with `/`, as the marker lists it.
    fn relative(&self) -> String {
        match &self.folder {
            Some(folder) => format!("{folder}/{}", self.file),
            None => self.file.clone(),
        }
    }
}

/// Hands out unique names within one export folder.
struct Names<'a> {
    dir: &'a Path,
    /// Lowercased relative paths the previous export wrote (may be replaced).
    ours: HashSet<String>,
    /// Lowercased relative paths given out by this export, folders and files.
    taken: HashSet<String>,
    folders: HashMap<NotebookId, String>,
}

fn numbered(stem: &str, n: u32, ext: &str) -> String {
    if n == 1 {
        format!("{stem}{ext}")
    } else {
        format!("{stem} ({n}){ext}")
    }
}

impl Names<'_> {
    fn folder(&mut self, id: NotebookId, name: &str) -> String {
        if let Some(folder) = self.folders.get(&id) {
            return folder.clone();
        }
        let stem = safe_stem(name);
        let mut n = 1;
        loop {
            let candidate = numbered(&stem, n, "");
            n += 1;
            if self.taken.contains(&candidate.to_lowercase()) {
                continue;
            }
            // An existing folder is fine (its files are checked one by one); a file or a link
            // in its place is not.
            match std::fs::symlink_metadata(self.dir.join(&candidate)) {
                Ok(meta) if !meta.is_dir() => continue,
                _ => {}
            }
            self.taken.insert(candidate.to_lowercase());
            self.folders.insert(id, candidate.clone());
            return candidate;
        }
    }

    fn file(&mut self, folder: Option<&str>, title: &str) -> String {
        let stem = safe_stem(title);
        let base = folder.map_or_else(|| self.dir.to_path_buf(), |f| self.dir.join(f));
        let mut n = 1;
        loop {
            let name = numbered(&stem, n, ".md");
            n += 1;
            let key = match folder {
                Some(f) => format!("{f}/{name}"),
                None => name.clone(),
            }
            .to_lowercase();
            if self.taken.contains(&key) {
                continue;
            }
            match std::fs::symlink_metadata(base.join(&name)) {
                Ok(meta) if !meta.is_file() || !self.ours.contains(&key) => continue,
                _ => {}
            }
            self.taken.insert(key);
            return name;
        }
    }
}

/// Makes sure `dir` may be exported into (see the module doc); returns what an earlier export
/// there wrote.
fn prepare_export_dir(dir: &Path) -> Result<Manifest> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            return Ok(Manifest::default());
        }
        Err(e) => return Err(Error::io(dir, e)),
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::Invalid(format!(
                "{} is a file, not a folder",
                dir.display()
            )));
        }
        Ok(_) => {}
    }
    let marker = dir.join(MARKER);
    match std::fs::read_to_string(&marker) {
        // A marker this version cannot read still proves the folder is an export; with no
        // list, every file in it is treated as the user's and kept.
        Ok(text) => return Ok(serde_json::from_str(&text).unwrap_or_default()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&marker, e)),
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if !SYSTEM_FILES.iter().any(|s| name == *s) {
            return Err(Error::FolderNotEmpty {
                path: dir.to_path_buf(),
            });
        }
    }
    Ok(Manifest::default())
}

/// A file found by an import, with its first-level folder (the notebook) if it is in one.
struct Found {
    path: PathBuf,
    folder: Option<String>,
}

/// A file read and checked, waiting for its batch.
struct Prepared {
    draft: NoteDraft,
    archived: bool,
}

fn skip(path: &Path, reason: impl Into<String>) -> SkippedFile {
    SkippedFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Why a file could not become a note, in words for the user.
fn reason(err: &Error) -> String {
    match err {
        Error::TooLarge { size, .. } => {
            format!("too large: {size} bytes (a note holds at most {MAX_BODY_BYTES} bytes)")
        }
        Error::NotText { .. } => "not UTF-8 text".to_owned(),
        Error::Io { source, .. } => format!("could not be read: {source}"),
        other => other.to_string(),
    }
}

/// Every note file under `root`, depth first in name order. Unreadable subfolders and links
/// back to a folder already read are reported in `skipped`; only an unreadable `root` fails.
fn walk(root: &Path, skipped: &mut Vec<SkippedFile>) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut visited = HashSet::new();
    visited.insert(std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()));
    let mut stack: Vec<(PathBuf, Option<String>)> = vec![(root.to_path_buf(), None)];
    while let Some((dir, folder)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if dir == root => return Err(Error::io(root, e)),
            Err(e) => {
                skipped.push(skip(&dir, format!("folder could not be read: {e}")));
                continue;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(std::result::Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        let mut subfolders = Vec::new();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // Follows links: a linked note or folder is read like any other.
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    skipped.push(skip(&path, format!("could not be read: {e}")));
                    continue;
                }
            };
            if meta.is_dir() {
                let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if !visited.insert(real) {
                    skipped.push(skip(
                        &path,
                        "a link to a folder already read; not followed again",
                    ));
                    continue;
                }
                let notebook = folder.clone().or(Some(name));
                subfolders.push((path, notebook));
            } else if meta.is_file() && is_note_file(&path) {
                found.push(Found {
                    path,
                    folder: folder.clone(),
                });
            }
        }
        stack.extend(subfolders.into_iter().rev());
    }
    Ok(found)
}

fn is_note_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The notebook a folder stands for: the front matter's notebook name when the folder is that
/// name made safe (an export renames "A/B" to "A_B", possibly numbered), else the folder name.
fn notebook_name(folder: &str, recorded: Option<&str>) -> String {
    if let Some(name) = recorded {
        let stem = safe_stem(name);
        let numbered = folder
            .strip_prefix(stem.as_str())
            .and_then(|rest| rest.strip_prefix(" ("))
            .and_then(|rest| rest.strip_suffix(')'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if folder == stem || numbered {
            return name.to_owned();
        }
    }
    folder.to_owned()
}

impl Store {
    /// Writes every note not in the Trash to `dir` as Markdown (see the module doc). `dir` is
    /// created if missing; an existing folder must be empty or an earlier export.
    pub fn export_markdown(&self, dir: &Path) -> Result<MarkdownExport> {
        let previous = prepare_export_dir(dir)?;
        let notebooks: HashMap<NotebookId, String> = self
            .list_notebooks()?
            .into_iter()
            .map(|nb| (nb.id, nb.name))
            .collect();
        let mut names = Names {
            dir,
            ours: previous.files.iter().map(|f| f.to_lowercase()).collect(),
            taken: HashSet::new(),
            folders: HashMap::new(),
        };
        // Oldest first, so that a colliding newer note is the one numbered, on every export.
        let rows: Vec<(String, String, Option<String>)> = self.read(|conn, path| {
            conn.prepare_cached(
                "SELECT id, title, notebook_id FROM notes WHERE deleted = 0
                 ORDER BY created_ms, id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .at(path)
        })?;
        let mut plan = Vec::with_capacity(rows.len());
        for (id, title, notebook_id) in rows {
            let id: NoteId = id
                .parse()
                .map_err(|e: outpost_protocol::IdError| Error::Data(e.to_string()))?;
            // A note whose notebook was deleted (its move not yet applied) is unfiled.
            let notebook = notebook_id
                .and_then(|nb| nb.parse::<NotebookId>().ok())
                .and_then(|nb| notebooks.get(&nb).map(|name| (nb, name)));
            let folder = notebook.map(|(nb, name)| names.folder(nb, name));
            let file = names.file(folder.as_deref(), &title);
            plan.push(Planned {
                id,
                notebook: notebook.map(|(_, name)| name.clone()),
                folder,
                file,
            });
        }

        // The marker goes first and lists every file about to be written, so that an export
        // cut short is still known as ours, and its files may be replaced by the next one.
        let mut files = previous.files;
        let mut seen: HashSet<String> = files.iter().map(|f| f.to_lowercase()).collect();
        for p in &plan {
            let rel = p.relative();
            if seen.insert(rel.to_lowercase()) {
                files.push(rel);
            }
        }
        let manifest = serde_json::to_vec_pretty(&Manifest { files })
            .map_err(|e| Error::Data(e.to_string()))?;
        write_atomic(&dir.join(MARKER), &manifest)?;

        let mut written = 0;
        let mut folders = HashSet::new();
        for p in plan {
            let note = match self.get_note(p.id) {
                Ok(note) if !note.deleted => note,
                // Purged or trashed since the list was read (a sync ran): not exported.
                Ok(_) | Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let parent = match &p.folder {
                Some(folder) => {
                    let path = dir.join(folder);
                    std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                    folders.insert(folder.clone());
                    path
                }
                None => dir.to_path_buf(),
            };
            let mut text = front_matter::render(&note, p.notebook.as_deref());
            text.push_str(&note.body);
            write_atomic(&parent.join(&p.file), text.as_bytes())?;
            written += 1;
        }
        tracing::info!(dir = %dir.display(), notes = written, "exported Markdown");
        Ok(MarkdownExport {
            dir: dir.display().to_string(),
            notes: written,
            notebooks: folders.len(),
        })
    }

    /// Creates a note for every Markdown or text file under `dir` (see the module doc). Files
    /// that cannot be imported are listed with their reasons; a missing or unreadable `dir`,
    /// or a failing database, is an error.
    pub fn import_markdown(&self, dir: &Path) -> Result<MarkdownImport> {
        let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found("folder", dir.display()),
            _ => Error::io(dir, e),
        })?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is a file, not a folder",
                dir.display()
            )));
        }
        let mut skipped = Vec::new();
        let found = walk(dir, &mut skipped)?;
        let mut notebooks: HashMap<String, Result<NotebookId, String>> = HashMap::new();
        let mut batch: Vec<Prepared> = Vec::new();
        let mut batch_bytes = 0;
        let mut imported = 0;
        for file in found {
            match self.prepare_import(&file, &mut notebooks) {
                Ok(Some(prepared)) => {
                    batch_bytes += prepared.draft.body.len();
                    batch.push(prepared);
                    if batch.len() >= BATCH_NOTES || batch_bytes >= BATCH_BYTES {
                        imported += self.import_batch(std::mem::take(&mut batch))?;
                        batch_bytes = 0;
                    }
                }
                Ok(None) => skipped.push(skip(
                    &file.path,
                    "already in Outpost (a note with this id exists)",
                )),
                Err(why) => skipped.push(skip(&file.path, why)),
            }
        }
        imported += self.import_batch(batch)?;
        tracing::info!(dir = %dir.display(), imported, skipped = skipped.len(), "imported Markdown");
        Ok(MarkdownImport { imported, skipped })
    }

    /// Reads and checks one file: `Ok(None)` if its note is already here, `Err(reason)` if it
    /// cannot be imported.
    fn prepare_import(
        &self,
        file: &Found,
        notebooks: &mut HashMap<String, Result<NotebookId, String>>,
    ) -> Result<Option<Prepared>, String> {
        let mut text = read_text(&file.path, MAX_BODY_BYTES + FRONT_MATTER_SLACK, "file")
            .map_err(|e| reason(&e))?;
        let (fm, body) = front_matter::split(&text);
        if let Some(id) = fm
            .id
            .as_deref()
            .and_then(|s| s.trim().parse::<NoteId>().ok())
        {
            match self.get_note(id) {
                Ok(_) => return Ok(None),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(reason(&e)),
            }
        }
        let title = fm
            .title
            .clone()
            .or_else(|| front_matter::first_heading(body))
            .or_else(|| {
                file.path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let notebook_id = match &file.folder {
            None => None,
            Some(folder) => {
                let name = notebook_name(folder, fm.notebook.as_deref());
                let id = notebooks
                    .entry(name.to_lowercase())
                    .or_insert_with(|| self.notebook_by_name(&name))
                    .clone()?;
                Some(id)
            }
        };
        // The body is the text after the front matter: cut in place, not copied (up to 10 MB).
        let body_start = text.len() - body.len();
        text.drain(..body_start);
        let draft = NoteDraft {
            notebook_id,
            title: truncate(title, MAX_TITLE_BYTES),
            body: text,
            tags: fm.tags.unwrap_or_default(),
            pinned: fm.pinned.unwrap_or(false),
        };
        check_draft(&draft).map_err(|e| reason(&e))?;
        Ok(Some(Prepared {
            draft,
            archived: fm.archived.unwrap_or(false),
        }))
    }

    fn notebook_by_name(&self, name: &str) -> Result<NotebookId, String> {
        match self.find_notebook(name) {
            Ok(nb) => Ok(nb.id),
            Err(Error::NotFound { .. }) => self
                .create_notebook(name)
                .map(|nb| nb.id)
                .map_err(|e| format!("notebook {name:?} could not be created: {e}")),
            Err(e) => Err(reason(&e)),
        }
    }

    /// One transaction for the batch's notes; archived ones are then archived, each an edit
    /// that joins the note's still unsent outbox entry.
    fn import_batch(&self, batch: Vec<Prepared>) -> Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let (drafts, archived): (Vec<NoteDraft>, Vec<bool>) =
            batch.into_iter().map(|p| (p.draft, p.archived)).unzip();
        let ids = self.import_notes(drafts)?;
        for (id, _) in ids.iter().zip(archived).filter(|(_, a)| *a) {
            self.update_note(
                *id,
                NotePatch {
                    archived: Some(true),
                    ..Default::default()
                },
            )?;
        }
        Ok(ids.len())
    }
}
