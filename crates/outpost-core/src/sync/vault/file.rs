//! The credentials file, `<data dir>/credentials.json`: where a token goes when no keychain
//! runs. A JSON object `{account: token}`, created mode 0600 on Unix and replaced atomically, so
//! other users never read it, not even for an instant.

use super::{TokenVault, VaultError};
use crate::files::{self, Replace};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;

impl TokenVault {
    /// Reads the file's map; an absent file is an empty map.
    pub(super) fn file_read(&self) -> Result<BTreeMap<String, String>, VaultError> {
        let _guard = file_lock();
        self.read_unlocked()
    }

    pub(super) fn file_put(&self, account: &str, token: &str) -> Result<(), VaultError> {
        let _guard = file_lock();
        let mut entries = match self.read_unlocked() {
            Ok(entries) => entries,
            // Saving repairs a damaged file: its tokens are unreadable anyway, and the one being
            // saved is the user's current sign-in. Refusing would leave them unable to sign in
            // until they found and deleted the file by hand.
            Err(e @ VaultError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "replacing the damaged credentials file");
                BTreeMap::new()
            }
            Err(e) => return Err(e),
        };
        entries.insert(account.to_owned(), token.to_owned());
        self.write_unlocked(&entries)
    }

    /// Drops `account` from the file; removes the file once it holds nothing.
    pub(super) fn file_remove(&self, account: &str) -> Result<(), VaultError> {
        let _guard = file_lock();
        let mut entries = match self.read_unlocked() {
            Ok(entries) => entries,
            // A damaged file may still hold this account's token in some unparsable form; on
            // sign-out the only way to be sure it is gone is to remove the whole file.
            Err(e @ VaultError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "removing the damaged credentials file");
                return self.remove_file_unlocked();
            }
            Err(e) => return Err(e),
        };
        if entries.remove(account).is_none() {
            return Ok(());
        }
        if entries.is_empty() {
            self.remove_file_unlocked()
        } else {
            self.write_unlocked(&entries)
        }
    }

    fn read_unlocked(&self) -> Result<BTreeMap<String, String>, VaultError> {
        let path = &self.file;
        let io_err = |op, source| VaultError::Io {
            op,
            path: path.clone(),
            source,
        };
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io_err("open", e)),
        };
        let meta = file.metadata().map_err(|e| io_err("inspect", e))?;
        if !meta.is_file() {
            return Err(io_err("read", io::Error::other("it is not a regular file")));
        }
        #[cfg(unix)]
        {
            // Someone (a backup restore, a chmod) may have widened it; tokens must not stay
            // readable by others just because this process did not create the file.
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(file = %path.display(), mode = %format_args!("{:o}", mode & 0o777), "credentials file was readable by others; restricting it to 0600");
                file.set_permissions(fs::Permissions::from_mode(0o600))
                    .map_err(|e| io_err("restrict the permissions of", e))?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_err("read", e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            use serde_json::error::Category;
            VaultError::Corrupt {
                path: path.clone(),
                what: match e.classify() {
                    Category::Syntax => "not valid JSON",
                    Category::Data => "not an object of account to token",
                    Category::Eof => "cut short",
                    Category::Io => "unreadable",
                },
                line: e.line(),
                column: e.column(),
            }
        })
    }

    /// Replaces the file with `entries`: a fresh 0600 temp file beside it, synced, then renamed
    /// over it, so a crash leaves either the old file or the new one, never half of either.
    fn write_unlocked(&self, entries: &BTreeMap<String, String>) -> Result<(), VaultError> {
        let path = &self.file;
        let io_err = |op, source| VaultError::Io {
            op,
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| io_err("create the directory of", e))?;
        // Serialising a map of strings cannot fail; the error path exists only to avoid a panic.
        let bytes = serde_json::to_vec_pretty(entries)
            .map_err(|e| io_err("encode", io::Error::new(io::ErrorKind::InvalidData, e)))?;
        files::replace(path, &bytes, Replace::SECRET).map_err(|e| io_err("replace", e))
    }

    fn remove_file_unlocked(&self) -> Result<(), VaultError> {
        match fs::remove_file(&self.file) {
            Ok(()) => {
                files::sync_dir(self.file.parent().unwrap_or(Path::new(".")));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VaultError::Io {
                op: "remove",
                path: self.file.clone(),
                source,
            }),
        }
    }
}

pub(super) fn check_account(account: &str) -> Result<(), VaultError> {
    if account.is_empty() {
        Err(VaultError::EmptyAccount)
    } else {
        Ok(())
    }
}

/// Serialises read-modify-write of the file between vaults and threads of this process (the
/// app and its tests may hold more than one vault on the same directory).
fn file_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A panic elsewhere while holding the lock leaves no half-written state (writes are
    // atomic renames), so a poisoned lock is safe to take.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The data directory normally exists; if the vault has to create it, it is private (0700).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
