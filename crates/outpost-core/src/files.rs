//! Plain files the user sees (Markdown exports, files handed to an external editor) and the
//! credentials file: writing them so that no reader ever sees half a file, reading them with a size limit, and names that
//! are valid on Windows, macOS and Linux alike.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;

/// How [`replace`] writes a file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Replace {
    /// Readable by its owner only (0600 on Unix), from the instant it exists: a file of secrets.
    pub(crate) private: bool,
    /// Synced to disk, and its folder too, before the call returns: a file that exists nowhere
    /// else.
    pub(crate) durable: bool,
}

impl Replace {
    /// A file the user sees that the database can write again (an export, a note handed to an
    /// editor): no fsync, since a file lost to a power cut is written again by the next export
    /// or the next "open in editor".
    pub(crate) const PLAIN: Replace = Replace {
        private: false,
        durable: false,
    };
    /// A file of secrets held nowhere else (the credentials file).
    pub(crate) const SECRET: Replace = Replace {
        private: true,
        durable: true,
    };
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that
/// an editor, a sync client or a second export never sees half a file, and a crash leaves
/// either the old file or the new one. The temporary name starts with a dot, so a folder
/// watcher or an import that skips hidden files ignores it; it is removed if anything fails.
pub(crate) fn replace(path: &Path, bytes: &[u8], how: Replace) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} has no folder", path.display()),
        )
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let tmp = dir.join(format!(".{name}.{}.tmp", &suffix[..8]));
    let written = create_new(&tmp, how.private)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            if how.durable {
                f.sync_all()?;
            }
            Ok(())
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if how.durable {
        sync_dir(dir);
    }
    Ok(())
}

/// [`replace`] for a file the user sees ([`Replace::PLAIN`]), with the error a user reads.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.parent().is_none() {
        return Err(Error::Invalid(format!("{} has no folder", path.display())));
    }
    replace(path, bytes, Replace::PLAIN).map_err(|e| Error::io(path, e))
}

/// Creates `path`, refusing to follow a symlink or reuse a file someone planted there. A
/// private file gets its mode from `open(2)` itself, so no other user can open it, not even for
/// an instant.
fn create_new(path: &Path, private: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    if private {
        // The umask can only narrow 0600, but make the mode exactly 0600 whatever it is.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    // Elsewhere (Windows) the data directory under the user's profile is already private.
    #[cfg(not(unix))]
    let _ = private;
    Ok(file)
}

/// Makes a rename or removal durable. Best effort: not every platform or filesystem lets a
/// directory be opened and synced, and the file's own contents were already synced.
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync the folder");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Reads `path` as UTF-8 text of at most `limit` bytes, without reading more than that of a
/// larger file (a 2 GB log dropped in a notes folder must not be loaded to learn it is too
/// big). `field` names what the limit is for in the error. A leading byte-order mark, which
/// some Windows editors write, is dropped.
pub(crate) fn read_text(path: &Path, limit: usize, field: &'static str) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let too_large = |size: u64| Error::TooLarge {
        field,
        size: usize::try_from(size).unwrap_or(usize::MAX),
        limit,
    };
    if len > limit as u64 {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // One byte more than the limit tells a file that grew since its size was read.
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() > limit {
        return Err(too_large(bytes.len() as u64));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| Error::NotText {
        path: path.to_path_buf(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Longest file-name stem, in characters and in bytes: well under the 255 bytes most file
/// systems allow, leaving room for " (12)", an id, ".md" and the temporary name's extras.
const MAX_STEM_CHARS: usize = 100;
const MAX_STEM_BYTES: usize = 180;

/// Names Windows reserves for devices, with or without an extension.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A file-name stem made from a note title or a notebook name that is valid on Windows, macOS
/// and Linux: no `/ \ : * ? " < > |` (each becomes `_`), no control characters (spaces), no
/// invisible direction or zero-width marks (dropped: they make two names look the same), no
/// leading dot (a hidden file, which an import skips), no trailing dot or space (Windows drops
/// them), no device name such as `CON` or `nul.txt`, at most 100 characters; "Untitled" when
/// nothing is left.
pub(crate) fn safe_stem(title: &str) -> String {
    let mut out = String::with_capacity(title.len().min(MAX_STEM_BYTES));
    let mut chars = 0;
    for c in title.chars() {
        let c = match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => ' ',
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => continue,
            '\u{feff}' => continue,
            c => c,
        };
        // Runs of spaces (from line breaks and tabs, mostly) shrink to one.
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if chars == MAX_STEM_CHARS || out.len() + c.len_utf8() > MAX_STEM_BYTES {
            break;
        }
        out.push(c);
        chars += 1;
    }
    let trimmed = out
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return "Untitled".to_owned();
    }
    let mut stem = trimmed.to_owned();
    // Windows reserves the device name before the first dot, whatever follows it.
    let base_len = stem.find('.').unwrap_or(stem.len());
    let base = stem[..base_len].trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(base)) {
        stem.insert(base.len(), '_');
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_everywhere() {
        let cases = [
            ("Pump 4", "Pump 4"),
            ("a/b\\c:d*e?f\"g<h>i|j", "a_b_c_d_e_f_g_h_i_j"),
            ("line\nbreak\ttab", "line break tab"),
            ("  trailing dots... ", "trailing dots"),
            (".hidden", "hidden"),
            ("", "Untitled"),
            ("...", "Untitled"),
            ("\u{202e}evil\u{200b}", "evil"),
            ("CON", "CON_"),
            ("nul.txt", "nul_.txt"),
            ("Com1 .notes", "Com1_ .notes"),
            ("Console", "Console"),
        ];
        for (title, want) in cases {
            assert_eq!(safe_stem(title), want, "title {title:?}");
        }
        let long = safe_stem(&"é".repeat(500));
        assert!(long.chars().count() <= MAX_STEM_CHARS && long.len() <= MAX_STEM_BYTES);
        let long = safe_stem(&"x".repeat(500));
        assert_eq!(long.len(), MAX_STEM_CHARS);
    }

    #[test]
    fn a_too_large_or_binary_file_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().expect("dir");
        let big = dir.path().join("big.md");
        std::fs::write(&big, vec![b'x'; 11]).expect("write");
        let err = read_text(&big, 10, "body").expect_err("too large");
        assert_eq!(err.code(), "too_large");
        let bin = dir.path().join("bin.md");
        std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x80]).expect("write");
        let err = read_text(&bin, 10, "body").expect_err("not text");
        assert_eq!(err.code(), "not_text");
        assert!(err.to_string().contains("bin.md"), "{err}");
        let bom = dir.path().join("bom.md");
        std::fs::write(&bom, "\u{feff}hi").expect("write");
        assert_eq!(read_text(&bom, 10, "body").expect("read"), "hi");
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("note.md");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["note.md"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_is_replaced_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("credentials.json");
        std::fs::write(&path, "old").expect("an old file, world-readable");
        replace(&path, b"{}", Replace::SECRET).expect("replace");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
    }
}
