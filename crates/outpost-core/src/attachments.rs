//! Photos and files in notes (DESIGN.md, "Attachments"). This module owns the attachment
//! records on this device, the blob files beside the database ([`BlobFiles`]), and the
//! bookkeeping of which blob waits to go up or to come down. The transfers themselves run in
//! `sync::transfer`; applying a record from the server is in `sync::apply`.
//!
//! Attaching is local first: the bytes are copied into the data directory and checked, then the
//! attachment record, its outbox entry, the blob's row and the note's reference to it commit in
//! one transaction (L1). A note refers to an attachment with ordinary Markdown,
//! `![name](attachment:ID)` for an image and `[name](attachment:ID)` for any other file.

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::notes::{Edit, Field, load_note};
use crate::store::{Store, Tx};
use outpost_protocol::blobs::{BlobHash, Limits};
use outpost_protocol::fields::MAX_FILE_NAME_BYTES;
use outpost_protocol::mutation::names;
use outpost_protocol::{AttachmentId, Entity, FieldChange, Fields, NoteId};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The URI scheme of a note's reference to one of its attachments.
pub const ATTACHMENT_SCHEME: &str = "attachment:";

/// The `sync_meta` key of the server's blob limits as last fetched (JSON of [`Limits`]).
pub(crate) const BLOB_LIMITS: &str = "blob_limits";

/// Where an attachment stands, as the app and the CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AttachmentState {
    /// The bytes are only on this device: nothing has reached the server yet.
    LocalOnly,
    /// Going up: `sent` of the size acknowledged by the server.
    #[cfg_attr(feature = "ts", ts(rename = "uploading"))]
    Uploading {
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        sent: u64,
    },
    /// On the server and on this device.
    Synced,
    /// Not here: another device added it; it comes when the note is opened (or in the
    /// background, if the user asked for every attachment).
    NotDownloaded {
        /// A download is asked for.
        wanted: bool,
    },
    /// A transfer failed in a way retrying alone will not fix: `reason` says what to do.
    Failed { reason: String },
}

/// An attachment of a note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Attachment {
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub id: AttachmentId,
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub note_id: NoteId,
    pub name: String,
    pub media_type: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size: u64,
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub sha256: BlobHash,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A `data:` URL of a small JPEG or PNG, when the attachment is an image.
    pub thumbnail: Option<String>,
    pub deleted: bool,
    #[serde(flatten)]
    pub state: AttachmentState,
}

impl Attachment {
    /// The Markdown that shows it in its note.
    pub fn markdown(&self) -> String {
        reference(&self.name, self.media_type.starts_with("image/"), &self.id)
    }
}

fn reference(name: &str, image: bool, id: &AttachmentId) -> String {
    let mut text = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '[' | ']' | '\\' | '*' | '_' | '`') {
            text.push('\\');
        }
        text.push(c);
    }
    format!(
        "{}[{text}]({ATTACHMENT_SCHEME}{id})",
        if image { "!" } else { "" }
    )
}

/// The blob files of one data directory: `blobs/<first two hex digits>/<sha256>`, written
/// whole through a temporary file and a rename, so a name always holds the bytes it names.
#[derive(Clone, Debug)]
pub struct BlobFiles {
    root: PathBuf,
}

/// The size of the reads and writes that copy a blob (also what is hashed at a time).
const COPY_BUFFER: usize = 64 * 1024;

impl BlobFiles {
    pub(crate) fn new(data_dir: &Path) -> BlobFiles {
        BlobFiles {
            root: data_dir.join("blobs"),
        }
    }

    /// Where the blob named `hash` lives when it is here.
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        let h = hash.as_str();
        self.root.join(&h[..2]).join(h)
    }

    /// Where a download in progress keeps what arrived so far.
    pub(crate) fn partial(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("partial").join(format!("{hash}.part"))
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// Copies `reader` into a new blob, hashing as it goes; returns its name and size. The
    /// same bytes twice make one file.
    pub(crate) fn import(&self, reader: &mut dyn Read) -> Result<(BlobHash, u64)> {
        let dir = self.temp_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let temp = dir.join(format!(".import-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            let mut file = std::fs::File::create(&temp).map_err(|e| Error::io(&temp, e))?;
            let mut hasher = sha2::Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; COPY_BUFFER];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::Io {
                            path: PathBuf::from("(the file being attached)"),
                            source: e,
                        });
                    }
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(|e| Error::io(&temp, e))?;
                size += n as u64;
            }
            file.sync_all().map_err(|e| Error::io(&temp, e))?;
            let hash = BlobHash::from_digest(&hasher.finalize());
            self.settle(&temp, &hash)?;
            Ok((hash, size))
        })();
        let _ = std::fs::remove_file(&temp);
        result
    }

    /// Moves a complete, checked file to its name.
    pub(crate) fn settle(&self, temp: &Path, hash: &BlobHash) -> Result<()> {
        let path = self.path(hash);
        let Some(dir) = path.parent() else {
            return Err(Error::Data(format!("no folder for blob {hash}")));
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        std::fs::rename(temp, &path).map_err(|e| Error::io(&path, e))?;
        crate::files::sync_dir(dir);
        Ok(())
    }

    /// Whether the blob is here.
    pub fn has(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    /// Copies the blob to `dest`, checking it against its name on the way: a damaged copy is
    /// an error (and `dest` is not left half written).
    pub fn copy_verified(&self, hash: &BlobHash, dest: &Path) -> Result<u64> {
        let src = self.path(hash);
        let mut input = std::fs::File::open(&src).map_err(|e| Error::io(&src, e))?;
        let temp = dest.with_file_name(format!(
            ".{}.outpost-part",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let result = (|| {
            let mut out = std::fs::File::create(&temp).map_err(|e| Error::io(&temp, e))?;
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; COPY_BUFFER];
            let mut size = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(|e| Error::io(&src, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| Error::io(&temp, e))?;
                size += n as u64;
            }
            if &BlobHash::from_digest(&hasher.finalize()) != hash {
                return Err(Error::Data(format!(
                    "the copy of blob {hash} on this device is damaged ({}); it will be fetched again from the server",
                    src.display()
                )));
            }
            out.sync_all().map_err(|e| Error::io(&temp, e))?;
            std::fs::rename(&temp, dest).map_err(|e| Error::io(dest, e))?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Reads `len` bytes of the blob from `offset` (a chunk to send).
    pub(crate) fn read_at(&self, hash: &BlobHash, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::io::Seek as _;
        let path = self.path(hash);
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| Error::io(&path, e))?;
        let mut buf = Vec::with_capacity(len);
        file.take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        Ok(buf)
    }

    /// Whether the blob's bytes here still match its name (read whole, in pieces).
    pub(crate) fn verify(&self, hash: &BlobHash) -> Result<bool> {
        let path = self.path(hash);
        Ok(&hash_file(&path).map_err(|e| Error::io(&path, e))? == hash)
    }
}

/// The name of the bytes of the file at `path`, read in pieces (a 1 GB video is never in
/// memory whole).
pub(crate) fn hash_file(path: &Path) -> std::io::Result<BlobHash> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(BlobHash::from_digest(&hasher.finalize()))
}

/// The columns of an attachment as [`attachment_from_row`] reads them, with its blob's row.
const ATTACHMENT_COLUMNS: &str = "a.id, a.note_id, a.fields, a.deleted, b.here, b.upload, \
     b.sent, b.download, b.last_error";

fn attachment_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Attachment>> {
    let id: String = r.get(0)?;
    let note_id: String = r.get(1)?;
    let fields: String = r.get(2)?;
    let deleted: bool = r.get(3)?;
    let here: Option<bool> = r.get(4)?;
    let upload: Option<String> = r.get(5)?;
    let sent: Option<i64> = r.get(6)?;
    let download: Option<String> = r.get(7)?;
    let last_error: Option<String> = r.get(8)?;
    Ok((|| {
        let fields = parse_fields(&id, &fields)?;
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(|c| c.value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let pixels = |name: &str| {
            fields
                .get(name)
                .and_then(|c| c.value.as_u64())
                .and_then(|n| u32::try_from(n).ok())
        };
        let sha256 = BlobHash::parse(&text("sha256"))
            .map_err(|e| Error::Data(format!("attachment {id}: {e}")))?;
        let thumbnail = Some(text("thumbnail")).filter(|t| !t.is_empty());
        let state = match (
            here.unwrap_or(false),
            upload.as_deref(),
            download.as_deref(),
        ) {
            (_, Some("failed"), _) | (false, _, Some("failed")) => AttachmentState::Failed {
                reason: last_error.unwrap_or_else(|| "the transfer failed".into()),
            },
            (true, Some("waiting"), _) => match sent.and_then(|s| u64::try_from(s).ok()) {
                Some(sent) if sent > 0 => AttachmentState::Uploading { sent },
                _ => AttachmentState::LocalOnly,
            },
            (true, _, _) => AttachmentState::Synced,
            (false, _, download) => AttachmentState::NotDownloaded {
                wanted: download == Some("wanted"),
            },
        };
        Ok(Attachment {
            id: id
                .parse()
                .map_err(|e| Error::Data(format!("attachment id: {e}")))?,
            note_id: note_id
                .parse()
                .map_err(|e| Error::Data(format!("attachment {id}: {e}")))?,
            name: text("name"),
            media_type: text("media_type"),
            size: fields
                .get("size")
                .and_then(|c| c.value.as_u64())
                .unwrap_or(0),
            sha256,
            width: pixels("width"),
            height: pixels("height"),
            thumbnail,
            deleted,
            state,
        })
    })())
}

pub(crate) fn parse_fields(id: &str, json: &str) -> Result<Fields> {
    serde_json::from_str(json).map_err(|e| Error::Data(format!("attachment {id}: {e}")))
}

/// The media type of a file, from its name (what the system picker and a paste give).
pub fn media_type_of(name: &str) -> String {
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// A file name the protocol takes: no folder part, no control characters, at most 255 bytes
/// (cut on a character boundary, the extension kept where it fits).
pub fn clean_file_name(name: &str) -> String {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let base = base.trim();
    let base = if base.is_empty() || base == "." || base == ".." {
        "attachment"
    } else {
        base
    };
    if base.len() <= MAX_FILE_NAME_BYTES {
        return base.to_owned();
    }
    let ext = base
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.len() <= 16)
        .unwrap_or_default();
    let room = MAX_FILE_NAME_BYTES - ext.len() - usize::from(!ext.is_empty());
    let mut cut = room;
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    if ext.is_empty() {
        base[..cut].to_owned()
    } else {
        format!("{}.{ext}", &base[..cut])
    }
}

/// What attaching writes besides the bytes: the name, type and image facts of the file.
struct NewAttachment {
    note: NoteId,
    name: String,
    media_type: String,
    size: u64,
    sha256: BlobHash,
    width: Option<u32>,
    height: Option<u32>,
    thumbnail: Option<String>,
}

impl Store {
    /// The blob files of this data directory.
    pub fn blob_files(&self) -> BlobFiles {
        BlobFiles::new(self.dir())
    }

    /// The server's blob limits as last fetched (none before the first transfer).
    pub fn blob_limits(&self) -> Result<Option<Limits>> {
        let text = self.read(|c, p| crate::meta::get(c, p, BLOB_LIMITS))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub(crate) fn set_blob_limits(&self, limits: &Limits) -> Result<()> {
        let text = serde_json::to_string(limits).map_err(|e| Error::Data(e.to_string()))?;
        self.write(|tx| crate::meta::set(&tx.tx, tx.path, BLOB_LIMITS, &text))
    }

    /// Attaches the file at `path` to `note` (see [`Store::attach_reader`]).
    pub fn attach_file(&self, note: NoteId, path: &Path) -> Result<Attachment> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!("{} is not a file", path.display())));
        }
        self.check_size_allowed(&name, meta.len())?;
        self.attach_reader(note, &name, &mut file)
    }

    /// Attaches bytes already in memory (a pasted image) as a file named `name`.
    pub fn attach_bytes(&self, note: NoteId, name: &str, bytes: &[u8]) -> Result<Attachment> {
        self.check_size_allowed(name, bytes.len() as u64)?;
        self.attach_reader(note, name, &mut std::io::Cursor::new(bytes))
    }

    /// Refuses, before anything is copied, a file larger than the server takes (when its
    /// limits are known): the user learns it now, not after the upload fails.
    fn check_size_allowed(&self, name: &str, size: u64) -> Result<()> {
        if let Some(limits) = self.blob_limits()?
            && size > limits.max_blob_bytes
        {
            return Err(Error::Invalid(format!(
                "{name} is {}; the sync server takes files up to {}",
                human_bytes(size),
                human_bytes(limits.max_blob_bytes)
            )));
        }
        Ok(())
    }

    /// Copies the bytes of `reader` into this device's blobs and attaches them to `note`: the
    /// record, its outbox entry, the blob's upload and the reference at the end of the note's
    /// body commit together. Works offline; the bytes go up when a network is there.
    pub fn attach_reader(
        &self,
        note: NoteId,
        name: &str,
        reader: &mut dyn Read,
    ) -> Result<Attachment> {
        // Fail before copying anything when the note is not there.
        self.get_note(note)?;
        let name = clean_file_name(name);
        let (sha256, size) = self.blob_files().import(reader)?;
        let media_type = media_type_of(&name);
        let facts = if media_type.starts_with("image/") {
            thumbnail::facts(&self.blob_files().path(&sha256))
        } else {
            None
        };
        let new = NewAttachment {
            note,
            name,
            media_type,
            size,
            sha256,
            width: facts.as_ref().map(|f| f.width),
            height: facts.as_ref().map(|f| f.height),
            thumbnail: facts.and_then(|f| f.thumbnail),
        };
        let id = self.write(|tx| tx.insert_attachment(new))?;
        self.get_attachment(id)
    }

    pub fn get_attachment(&self, id: AttachmentId) -> Result<Attachment> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
             LEFT JOIN blobs b ON b.sha256 = a.sha256 WHERE a.id = ?1"
        );
        self.read(|c, p| {
            c.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_row([id.to_string()], attachment_from_row)
                        .optional()
                })
                .at(p)?
                .ok_or_else(|| Error::not_found("attachment", id))?
        })
    }

    /// Finds an attachment by its id or a unique prefix of it (as the CLI takes it).
    pub fn resolve_attachment_id(&self, part: &str) -> Result<AttachmentId> {
        if let Ok(id) = part.parse::<AttachmentId>() {
            return Ok(id);
        }
        let part = part.trim().to_ascii_lowercase();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Error::Invalid(format!(
                "{part:?} is not an attachment id (or the start of one)"
            )));
        }
        let ids: Vec<String> = self.read(|c, p| {
            c.prepare_cached("SELECT id FROM attachments WHERE id LIKE ?1 || '%' LIMIT 2")
                .and_then(|mut s| {
                    s.query_map([&part], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .at(p)
        })?;
        match ids.as_slice() {
            [one] => one
                .parse()
                .map_err(|e| Error::Data(format!("attachment id: {e}"))),
            [] => Err(Error::not_found("attachment", part)),
            _ => Err(Error::Invalid(format!(
                "{part:?} is the start of more than one attachment id; give more of it"
            ))),
        }
    }

    /// The attachments of `note`, or of every note, oldest first; removed ones left out.
    pub fn list_attachments(&self, note: Option<NoteId>) -> Result<Vec<Attachment>> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
             LEFT JOIN blobs b ON b.sha256 = a.sha256
             WHERE a.deleted = 0 AND (?1 IS NULL OR a.note_id = ?1)
             ORDER BY a.created_ms, a.id"
        );
        self.read(|c, p| {
            let mut stmt = c.prepare_cached(&sql).at(p)?;
            let rows = stmt
                .query_map([note.map(|n| n.to_string())], attachment_from_row)
                .at(p)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.at(p)??);
            }
            Ok(out)
        })
    }

    /// Removes an attachment from its note: the record is marked removed (and syncs); the
    /// note's reference to it is taken out of the body. The blob stays until nothing refers
    /// to it (the server collects it after a grace period).
    pub fn remove_attachment(&self, id: AttachmentId) -> Result<()> {
        self.write(|tx| {
            let Some((fields, _)) = tx.attachment_fields(&id.to_string())? else {
                return Err(Error::not_found("attachment", id));
            };
            if fields.get("deleted").is_some_and(|c| c.value == true) {
                return Ok(());
            }
            tx.mark_removed(&id.to_string(), fields.clone())?;
            // Take the note's reference out, if the note still has it.
            let note_id = fields
                .get("note_id")
                .and_then(|c| c.value.as_str())
                .and_then(|s| s.parse::<NoteId>().ok());
            if let Some(note_id) = note_id
                && let Ok(note) = load_note(&tx.tx, tx.path, note_id)
            {
                let body = without_reference(&note.body, &id);
                if body != note.body {
                    tx.apply_edits(&note, vec![Edit::text(Field::Body, body)])?;
                }
            }
            Ok(())
        })
    }

    /// Bytes of attachments waiting to go up, and how many attachments are waiting or failed.
    pub fn blob_queue(&self) -> Result<BlobQueue> {
        self.read(|c, p| {
            c.prepare_cached(
                "SELECT coalesce(sum(CASE WHEN upload = 'waiting' THEN size - sent END), 0),
                        count(CASE WHEN upload = 'waiting' THEN 1 END),
                        count(CASE WHEN upload = 'failed' OR download = 'failed' THEN 1 END),
                        count(CASE WHEN download = 'wanted' THEN 1 END)
                 FROM blobs",
            )
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok(BlobQueue {
                        bytes_to_upload: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        uploads: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        failed: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        downloads: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })
            })
            .at(p)
        })
    }

    /// Forgets a copy of a blob found damaged here, and asks for it again from the server.
    pub fn refetch_damaged(&self, hash: &BlobHash) -> Result<()> {
        let path = self.blob_files().path(hash);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        tracing::warn!(%hash, "a damaged copy of a blob was dropped; fetching it again");
        self.write(|tx| {
            tx.tx
                .prepare_cached(
                    "UPDATE blobs SET here = 0, download = 'wanted', attempts = 0,
                         next_attempt_ms = 0, last_error = NULL WHERE sha256 = ?1",
                )
                .and_then(|mut s| s.execute([hash.as_str()]))
                .at(tx.path)?;
            tx.change.outbox = true;
            Ok(())
        })
    }

    /// Asks for the blob of `id` to be downloaded (opening a note, `attachment get`). False
    /// when it is here already.
    pub fn want_attachment(&self, id: AttachmentId) -> Result<bool> {
        let a = self.get_attachment(id)?;
        if self.blob_files().has(&a.sha256) {
            return Ok(false);
        }
        self.write(|tx| {
            tx.tx
                .prepare_cached(
                    "UPDATE blobs SET download = 'wanted', here = 0, attempts = 0,
                         next_attempt_ms = 0, last_error = NULL
                     WHERE sha256 = ?1",
                )
                .and_then(|mut s| s.execute([a.sha256.as_str()]))
                .at(tx.path)?;
            tx.change.outbox = true;
            Ok(())
        })?;
        Ok(true)
    }
}

/// `body` without its links to attachment `id`: a line that is only the link goes whole, a
/// link within other text goes alone.
fn without_reference(body: &str, id: &AttachmentId) -> String {
    let needle = format!("]({ATTACHMENT_SCHEME}{id})");
    if !body.contains(&needle) {
        return body.to_owned();
    }
    let mut out = Vec::new();
    for original in body.split('\n') {
        let mut line = original.to_owned();
        while let Some(end) = line.find(&needle) {
            let Some(open) = line[..end].rfind('[') else {
                break;
            };
            let start = if line[..open].ends_with('!') {
                open - 1
            } else {
                open
            };
            line.replace_range(start..end + needle.len(), "");
        }
        if line.trim().is_empty() && original.contains(&needle) {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

/// The status bar's view of the attachments' transfers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BlobQueue {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_to_upload: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub uploads: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub failed: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub downloads: u64,
}

/// "2.4 MB": sizes as people read them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Tx<'_> {
    fn insert_attachment(&mut self, new: NewAttachment) -> Result<AttachmentId> {
        let note = load_note(&self.tx, self.path, new.note)?;
        let id = AttachmentId::new();
        let stamp = self.stamp();
        let now = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
        let field = |value: Value| FieldChange { value, stamp };
        let pixels = |p: Option<u32>| p.map_or(Value::Null, Value::from);
        let fields = Fields::from([
            (
                "note_id".to_owned(),
                field(Value::from(new.note.to_string())),
            ),
            ("name".to_owned(), field(Value::from(new.name.clone()))),
            (
                "media_type".to_owned(),
                field(Value::from(new.media_type.clone())),
            ),
            ("size".to_owned(), field(Value::from(new.size))),
            (
                "sha256".to_owned(),
                field(Value::from(new.sha256.to_string())),
            ),
            ("width".to_owned(), field(pixels(new.width))),
            ("height".to_owned(), field(pixels(new.height))),
            (
                "thumbnail".to_owned(),
                field(Value::from(new.thumbnail.clone().unwrap_or_default())),
            ),
            ("deleted".to_owned(), field(Value::Bool(false))),
        ]);
        self.write_attachment(&id.to_string(), &fields, None, true)?;
        self.enqueue(
            Entity::Attachment,
            &id.to_string(),
            names::ATTACHMENT_PUT,
            fields,
            None,
            now,
        )?;
        let size = i64::try_from(new.size).unwrap_or(i64::MAX);
        self.tx
            .prepare_cached(
                "INSERT INTO blobs (sha256, size, here, upload, updated_ms)
                 VALUES (?1, ?2, 1, 'waiting', ?3)
                 ON CONFLICT (sha256) DO UPDATE SET here = 1, download = 'none',
                     upload = CASE WHEN upload = 'done' THEN 'done' ELSE 'waiting' END,
                     attempts = 0, next_attempt_ms = 0, last_error = NULL,
                     updated_ms = excluded.updated_ms",
            )
            .and_then(|mut s| s.execute(params![new.sha256.as_str(), size, now]))
            .at(self.path)?;
        let link = reference(&new.name, new.media_type.starts_with("image/"), &id);
        let body = if note.body.is_empty() {
            link
        } else if note.body.ends_with('\n') {
            format!("{}{link}\n", note.body)
        } else {
            format!("{}\n{link}\n", note.body)
        };
        crate::notes::check_body_len(body.len())?;
        self.apply_edits(&note, vec![Edit::text(Field::Body, body)])?;
        Ok(id)
    }

    /// Writes an attachment's row from its fields (inserting it if new). `version`: the
    /// server version, when the write comes from the server.
    pub(crate) fn write_attachment(
        &mut self,
        id: &str,
        fields: &Fields,
        version: Option<i64>,
        new: bool,
    ) -> Result<()> {
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(|c| c.value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let size = fields
            .get("size")
            .and_then(|c| c.value.as_i64())
            .unwrap_or(0);
        let deleted = fields.get("deleted").is_some_and(|c| c.value == true);
        let json = serde_json::to_string(fields).map_err(|e| Error::Data(e.to_string()))?;
        let now = i64::try_from(self.stamp().physical_ms).unwrap_or(i64::MAX);
        let sql = if new {
            "INSERT INTO attachments (id, note_id, sha256, size, media_type, name, deleted,
                 fields, server_version, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
             ON CONFLICT (id) DO UPDATE SET note_id = excluded.note_id,
                 sha256 = excluded.sha256, size = excluded.size,
                 media_type = excluded.media_type, name = excluded.name,
                 deleted = excluded.deleted, fields = excluded.fields,
                 server_version = coalesce(excluded.server_version, server_version),
                 updated_ms = excluded.updated_ms"
        } else {
            "UPDATE attachments SET note_id = ?2, sha256 = ?3, size = ?4, media_type = ?5,
                 name = ?6, deleted = ?7, fields = ?8,
                 server_version = coalesce(?9, server_version), updated_ms = ?10
             WHERE id = ?1"
        };
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    text("note_id"),
                    text("sha256"),
                    size,
                    text("media_type"),
                    text("name"),
                    deleted,
                    json,
                    version,
                    now
                ])
            })
            .at(self.path)?;
        Ok(())
    }

    /// Marks an attachment removed (`fields` as it is now) and queues the removal.
    fn mark_removed(&mut self, id: &str, mut fields: Fields) -> Result<()> {
        let stamp = self.stamp();
        let removed = FieldChange {
            value: Value::Bool(true),
            stamp,
        };
        fields.insert("deleted".into(), removed.clone());
        self.write_attachment(id, &fields, None, false)?;
        let now = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
        let queued = Fields::from([("deleted".to_owned(), removed)]);
        self.enqueue(
            Entity::Attachment,
            id,
            names::ATTACHMENT_PUT,
            queued,
            None,
            now,
        )
    }

    /// A note deleted for good takes its attachments with it: each is marked removed (and the
    /// removal syncs), so the server can collect the files once no other note names them.
    pub(crate) fn remove_attachments_of(&mut self, note: NoteId) -> Result<()> {
        let ids: Vec<String> = self
            .tx
            .prepare_cached("SELECT id FROM attachments WHERE note_id = ?1 AND deleted = 0")
            .and_then(|mut s| {
                s.query_map([note.to_string()], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .at(self.path)?;
        for id in ids {
            if let Some((fields, _)) = self.attachment_fields(&id)? {
                self.mark_removed(&id, fields)?;
            }
        }
        Ok(())
    }

    /// An attachment's fields with their stamps, and its server version.
    pub(crate) fn attachment_fields(&self, id: &str) -> Result<Option<(Fields, Option<i64>)>> {
        let row: Option<(String, Option<i64>)> = self
            .tx
            .prepare_cached("SELECT fields, server_version FROM attachments WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .at(self.path)?;
        row.map(|(json, version)| Ok((parse_fields(id, &json)?, version)))
            .transpose()
    }

    /// Notes a blob named by a record from the server: known from now on, here or not. With
    /// `fetch`, its download is asked for at once.
    pub(crate) fn know_blob(&mut self, sha256: &str, size: i64, fetch: bool) -> Result<()> {
        let now = i64::try_from(self.stamp().physical_ms).unwrap_or(i64::MAX);
        self.tx
            .prepare_cached(
                "INSERT INTO blobs (sha256, size, here, download, updated_ms)
                 VALUES (?1, ?2, 0, CASE WHEN ?3 THEN 'wanted' ELSE 'none' END, ?4)
                 ON CONFLICT (sha256) DO UPDATE SET download = CASE
                     WHEN here = 0 AND ?3 AND download = 'none' THEN 'wanted'
                     ELSE download END",
            )
            .and_then(|mut s| s.execute(params![sha256, size, fetch, now]))
            .at(self.path)?;
        Ok(())
    }
}

/// How long a transfer that failed for a passing reason waits before the next try.
fn retry_after_ms(attempts: i64) -> i64 {
    let secs = 5i64.saturating_mul(1 << attempts.clamp(0, 7));
    secs.min(600) * 1000
}

fn hash_and_size(r: &Row<'_>) -> rusqlite::Result<(String, i64)> {
    Ok((r.get(0)?, r.get(1)?))
}

/// The transfers' bookkeeping (`sync::transfer` runs them).
impl Store {
    /// Whether any transfer is due (a cheap look before asking the server anything).
    pub(crate) fn transfer_work(&self, now: i64) -> Result<bool> {
        self.read(|c, p| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM blobs WHERE next_attempt_ms <= ?1
                     AND (upload = 'waiting' OR download = 'wanted'))",
            )
            .and_then(|mut s| s.query_row([now], |r| r.get(0)))
            .at(p)
        })
    }

    /// The next blob to send: one a live attachment here refers to, the smallest first (a
    /// note's photos arrive whole sooner than one video would let them).
    pub(crate) fn next_upload(&self, now: i64) -> Result<Option<(BlobHash, u64)>> {
        self.next_blob(
            "SELECT sha256, size FROM blobs b
             WHERE upload = 'waiting' AND here = 1 AND next_attempt_ms <= ?1
               AND EXISTS (SELECT 1 FROM attachments a
                           WHERE a.sha256 = b.sha256 AND a.deleted = 0)
             ORDER BY size, updated_ms LIMIT 1",
            now,
        )
    }

    /// The next blob asked for.
    pub(crate) fn next_download(&self, now: i64) -> Result<Option<(BlobHash, u64)>> {
        self.next_blob(
            "SELECT sha256, size FROM blobs
             WHERE download = 'wanted' AND next_attempt_ms <= ?1
             ORDER BY size, updated_ms LIMIT 1",
            now,
        )
    }

    /// The blob (name and size) the query `sql` picks at time `now`, if any.
    fn next_blob(&self, sql: &str, now: i64) -> Result<Option<(BlobHash, u64)>> {
        let row = self.read(|c, p| {
            c.prepare_cached(sql)
                .and_then(|mut s| s.query_row([now], hash_and_size).optional())
                .at(p)
        })?;
        row.map(|(h, size)| {
            Ok((
                BlobHash::parse(&h).map_err(|e| Error::Data(e.to_string()))?,
                u64::try_from(size).unwrap_or(0),
            ))
        })
        .transpose()
    }

    fn update_blob(
        &self,
        sql: &str,
        hash: &BlobHash,
        extra: &[&dyn rusqlite::ToSql],
    ) -> Result<()> {
        let hash = hash.as_str();
        self.write(|tx| {
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&hash as &dyn rusqlite::ToSql];
            values.extend_from_slice(extra);
            tx.tx
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(values.as_slice()))
                .at(tx.path)?;
            tx.change.outbox = true;
            Ok(())
        })
    }

    /// The server holds `received` bytes of the blob.
    pub(crate) fn upload_progress(&self, hash: &BlobHash, received: u64) -> Result<()> {
        let received = i64::try_from(received).unwrap_or(i64::MAX);
        self.update_blob(
            "UPDATE blobs SET sent = ?2, attempts = 0, last_error = NULL WHERE sha256 = ?1",
            hash,
            &[&received],
        )
    }

    pub(crate) fn upload_done(&self, hash: &BlobHash) -> Result<()> {
        self.update_blob(
            "UPDATE blobs SET upload = 'done', sent = size, attempts = 0, last_error = NULL
             WHERE sha256 = ?1",
            hash,
            &[],
        )
    }

    /// An upload the server refused for good, or that cannot be made: `why` is shown.
    pub(crate) fn upload_failed(&self, hash: &BlobHash, why: &str) -> Result<()> {
        self.update_blob(
            "UPDATE blobs SET upload = 'failed', last_error = ?2 WHERE sha256 = ?1",
            hash,
            &[&why],
        )
    }

    /// A transfer that failed for a passing reason: tried again after a while.
    pub(crate) fn transfer_later(&self, hash: &BlobHash, why: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            let attempts: i64 = tx
                .tx
                .prepare_cached("SELECT attempts FROM blobs WHERE sha256 = ?1")
                .and_then(|mut s| s.query_row([hash.as_str()], |r| r.get(0)).optional())
                .at(tx.path)?
                .unwrap_or(0);
            tx.tx
                .prepare_cached(
                    "UPDATE blobs SET attempts = attempts + 1, next_attempt_ms = ?2,
                         last_error = ?3 WHERE sha256 = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        hash.as_str(),
                        now.saturating_add(retry_after_ms(attempts)),
                        why
                    ])
                })
                .at(tx.path)?;
            Ok(())
        })
    }

    pub(crate) fn download_done(&self, hash: &BlobHash) -> Result<()> {
        self.update_blob(
            "UPDATE blobs SET here = 1, download = 'none', attempts = 0, last_error = NULL
             WHERE sha256 = ?1",
            hash,
            &[],
        )
    }

    /// Tries every failed or waiting transfer again now ("Retry" in Diagnostics).
    pub fn retry_transfers(&self) -> Result<usize> {
        self.write(|tx| {
            let n = tx
                .tx
                .execute(
                    "UPDATE blobs SET upload = CASE WHEN upload = 'failed' THEN 'waiting'
                             ELSE upload END,
                         download = CASE WHEN download = 'failed' THEN 'wanted' ELSE download END,
                         attempts = 0, next_attempt_ms = 0, last_error = NULL
                     WHERE upload IN ('waiting', 'failed') OR download IN ('wanted', 'failed')",
                    [],
                )
                .at(tx.path)?;
            tx.change.outbox = true;
            Ok(n)
        })
    }
}

mod thumbnail;

#[cfg(test)]
mod tests;
