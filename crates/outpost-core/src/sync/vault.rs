//! The device token's home. [`TokenVault`] owns where a signed-in device keeps the secret the
//! server gave it, and nothing else: not the account id or server URL (those are ordinary sync
//! metadata in the store).
//!
//! The fallback rule:
//! - **The OS keychain first** (macOS Keychain, Windows Credential Manager, the Secret Service on
//!   Linux/BSD through the `keyring` crate's pure-Rust zbus backend), under the app identifier
//!   as the service and the account id as the user.
//! - **Else a file**, `<data dir>/credentials.json`, a JSON object `{account: token}` that is
//!   created mode 0600 on Unix and replaced atomically (temp file in the same directory, then
//!   rename), so it is never readable by other users, not even for an instant. This is what CI,
//!   headless Linux and any desktop without a running keyring get.
//!
//! "Unavailable" means: no keychain at all (on Linux, no D-Bus session bus, which is checked
//! before any D-Bus call), an error from it, or no answer within a timeout; a keychain call runs
//! on its own thread, so a Secret Service that never replies can delay the caller by at most
//! that timeout, never hang it. A token lives in one place: a save that reaches the keychain
//! drops any older copy from the file. `load` asks the keychain, then the file; `delete` removes
//! from both.
//!
//! Tokens are never logged: nothing here prints one, `Debug` of the vault shows no secret, and
//! no error carries one (parse errors of the file keep only a position, because serde's own
//! messages quote the offending value, which may be a token).
//!
//! Every method blocks (file I/O, D-Bus, the Keychain APIs): from async code, call it through
//! `tokio::task::spawn_blocking` if a stall of up to the keychain timeout matters.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The fallback file's name inside the data directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// How long one keychain call may take before the vault gives up on it and uses the file.
/// Long enough for a Secret Service or Keychain unlock prompt that the user answers at once,
/// short enough that a wedged D-Bus peer reads as "no keychain" rather than a frozen sign-in.
pub const DEFAULT_KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where [`TokenVault::save`] put the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The OS keychain.
    Keychain,
    /// The fallback file (mode 0600 on Unix), at this path.
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the account name is empty; a token needs an account to belong to")]
    EmptyAccount,

    #[error("could not {op} the credentials file {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    // No serde message here on purpose: serde quotes the value it choked on, which can be a token.
    #[error(
        "the credentials file {} is damaged ({what} at line {line}, column {column}); \
         signing in again replaces it",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        line: usize,
        column: usize,
    },

    #[error(
        "the token for {account} may still be in the OS keychain: {reason}; \
         remove the \"{service}\" entry with the system's keychain tool"
    )]
    KeychainDelete {
        service: String,
        account: String,
        reason: String,
    },
}

/// The device token's store: the OS keychain, else `<dir>/credentials.json`. See the module doc.
pub struct TokenVault {
    service: String,
    file: PathBuf,
    keychain: Result<OsKeychainSlot, &'static str>,
}

/// The keychain half of a vault, present when the platform may have one.
struct OsKeychainSlot {
    backend: Arc<dyn Keychain>,
    timeout: Duration,
    /// Keychain calls that timed out and have not returned yet. While one is stuck, new calls
    /// would only queue behind it (the Secret Service backend serialises on one connection), so
    /// they go straight to the file instead of each leaking another blocked thread.
    stuck: Arc<AtomicUsize>,
}

impl fmt::Debug for TokenVault {
    // Written out rather than derived so that a field added later cannot leak a secret into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keychain = match &self.keychain {
            Ok(slot) => format!("os (timeout {:?})", slot.timeout),
            Err(why) => format!("off: {why}"),
        };
        f.debug_struct("TokenVault")
            .field("service", &self.service)
            .field("file", &self.file)
            .field("keychain", &keychain)
            .finish()
    }
}

impl TokenVault {
    /// `service` is the app identifier ("app.outpost.notes"), `dir` the data directory (for the
    /// fallback file).
    pub fn new(service: &str, dir: &Path) -> TokenVault {
        match no_keychain_reason() {
            None => Self::with_backend(service, dir, Arc::new(OsKeychain)),
            Some(why) => {
                tracing::debug!(
                    why,
                    "OS keychain skipped; device tokens go to the credentials file"
                );
                Self::without_keychain(service, dir, why)
            }
        }
    }

    /// A vault that never touches the OS keychain (tests, CLI flag).
    pub fn file_only(dir: &Path) -> TokenVault {
        Self::without_keychain(crate::APP_IDENTIFIER, dir, "file-only vault")
    }

    /// How long a keychain call may take before the file is used instead
    /// ([`DEFAULT_KEYCHAIN_TIMEOUT`] unless set).
    pub fn with_keychain_timeout(mut self, timeout: Duration) -> TokenVault {
        if let Ok(slot) = &mut self.keychain {
            slot.timeout = timeout;
        }
        self
    }

    /// The fallback file's path (whether or not it exists).
    pub fn file_path(&self) -> &Path {
        &self.file
    }

    fn without_keychain(service: &str, dir: &Path, why: &'static str) -> TokenVault {
        TokenVault {
            service: service.to_owned(),
            file: dir.join(CREDENTIALS_FILE),
            keychain: Err(why),
        }
    }

    fn with_backend(service: &str, dir: &Path, backend: Arc<dyn Keychain>) -> TokenVault {
        TokenVault {
            service: service.to_owned(),
            file: dir.join(CREDENTIALS_FILE),
            keychain: Ok(OsKeychainSlot {
                backend,
                timeout: DEFAULT_KEYCHAIN_TIMEOUT,
                stuck: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Stores `token` for `account`, replacing any earlier one, and says where it went.
    pub fn save(&self, account: &str, token: &str) -> Result<Where, VaultError> {
        check_account(account)?;
        let (service, acct, tok) = (self.service.clone(), account.to_owned(), token.to_owned());
        match self.keychain_call(move |k| k.set(&service, &acct, &tok)) {
            Ok(()) => {
                // The keychain copy now wins on load; a plaintext older copy must not linger.
                if let Err(e) = self.file_remove(account) {
                    tracing::warn!(account, error = %e, "saved to the OS keychain, but could not drop the old copy from the credentials file");
                }
                Ok(Where::Keychain)
            }
            Err(failure) => {
                if let KeychainFailure::Failed(_) = failure {
                    // The keychain answered but refused the write; an older token there would
                    // shadow the new one on load once it works again, so try to clear it.
                    let (service, acct) = (self.service.clone(), account.to_owned());
                    if let Err(e) = self.keychain_call(move |k| k.delete(&service, &acct)) {
                        tracing::debug!(account, error = %e, "could not clear an older keychain entry");
                    }
                }
                tracing::warn!(account, reason = %failure, file = %self.file.display(), "OS keychain unavailable; saving the device token to the credentials file (mode 0600)");
                self.file_put(account, token)?;
                Ok(Where::File(self.file.clone()))
            }
        }
    }

    /// The token for `account`: from the keychain, else from the file; `None` if neither has it.
    pub fn load(&self, account: &str) -> Result<Option<String>, VaultError> {
        check_account(account)?;
        let (service, acct) = (self.service.clone(), account.to_owned());
        match self.keychain_call(move |k| k.get(&service, &acct)) {
            Ok(Some(token)) => return Ok(Some(token)),
            Ok(None) | Err(KeychainFailure::Unavailable(_)) => {}
            Err(failure) => {
                tracing::warn!(account, reason = %failure, "OS keychain failed; looking in the credentials file");
            }
        }
        Ok(self.file_read()?.remove(account))
    }

    /// Removes the token for `account` from the keychain and the file. Succeeds if it was in
    /// neither. Fails if the keychain exists but could not be cleared, because a sign-out that
    /// leaves the token behind must not look like one that worked.
    pub fn delete(&self, account: &str) -> Result<(), VaultError> {
        check_account(account)?;
        let (service, acct) = (self.service.clone(), account.to_owned());
        let keychain = self.keychain_call(move |k| k.delete(&service, &acct));
        // The file goes first in error reporting, but both are always attempted.
        self.file_remove(account)?;
        match keychain {
            Ok(()) | Err(KeychainFailure::Unavailable(_)) => Ok(()),
            Err(failure) => Err(VaultError::KeychainDelete {
                service: self.service.clone(),
                account: account.to_owned(),
                reason: failure.to_string(),
            }),
        }
    }

    /// Runs one keychain operation on its own thread and waits at most the timeout for it.
    fn keychain_call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Keychain) -> Result<T, KeychainFailure> + Send + 'static,
    ) -> Result<T, KeychainFailure> {
        const RUNNING: u8 = 0;
        const DONE: u8 = 1;
        const ABANDONED: u8 = 2;

        let slot = match &self.keychain {
            Ok(slot) => slot,
            Err(why) => return Err(KeychainFailure::Unavailable((*why).to_owned())),
        };
        if slot.stuck.load(Ordering::SeqCst) > 0 {
            return Err(KeychainFailure::TimedOut(
                "it has still not answered an earlier request".to_owned(),
            ));
        }
        let backend = Arc::clone(&slot.backend);
        let stuck = Arc::clone(&slot.stuck);
        let state = Arc::new(AtomicU8::new(RUNNING));
        let thread_state = Arc::clone(&state);
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("outpost-keychain".to_owned())
            .spawn(move || {
                let result = op(backend.as_ref());
                // The caller may have stopped listening; then the result is simply dropped.
                let _ = tx.send(result);
                if thread_state.swap(DONE, Ordering::SeqCst) == ABANDONED {
                    stuck.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if let Err(e) = spawned {
            return Err(KeychainFailure::Failed(format!(
                "could not start a thread for it: {e}"
            )));
        }
        match rx.recv_timeout(slot.timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(KeychainFailure::Failed(
                "the keychain call panicked".to_owned(),
            )),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Count it as stuck before marking it abandoned, so the thread's decrement can
                // never come first.
                slot.stuck.fetch_add(1, Ordering::SeqCst);
                if state.swap(ABANDONED, Ordering::SeqCst) == RUNNING {
                    tracing::warn!(timeout = ?slot.timeout, "the OS keychain did not answer; using the credentials file");
                    Err(KeychainFailure::TimedOut(format!(
                        "no answer within {:?}",
                        slot.timeout
                    )))
                } else {
                    // It finished in the instant between the timeout and now.
                    slot.stuck.fetch_sub(1, Ordering::SeqCst);
                    rx.try_recv().unwrap_or_else(|_| {
                        Err(KeychainFailure::Failed(
                            "the keychain call panicked".to_owned(),
                        ))
                    })
                }
            }
        }
    }

    /// Reads the file's map; an absent file is an empty map.
    fn file_read(&self) -> Result<BTreeMap<String, String>, VaultError> {
        let _guard = file_lock();
        self.read_unlocked()
    }

    fn file_put(&self, account: &str, token: &str) -> Result<(), VaultError> {
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
    fn file_remove(&self, account: &str) -> Result<(), VaultError> {
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
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = &self.file;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|source| VaultError::Io {
            op: "create the directory of",
            path: path.clone(),
            source,
        })?;
        let tmp = dir.join(format!(
            ".{CREDENTIALS_FILE}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // Serialising a map of strings cannot fail; the error path exists only to avoid a panic.
        let bytes = serde_json::to_vec_pretty(entries).map_err(|e| VaultError::Io {
            op: "encode",
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        let written = write_and_replace(&tmp, path, &bytes);
        if written.is_err() {
            // Best effort: the temp file holds tokens and is of no use to anyone now.
            let _ = fs::remove_file(&tmp);
        }
        written?;
        sync_dir(dir);
        Ok(())
    }

    fn remove_file_unlocked(&self) -> Result<(), VaultError> {
        match fs::remove_file(&self.file) {
            Ok(()) => {
                sync_dir(self.file.parent().unwrap_or(Path::new(".")));
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

/// Writes `bytes` to the new private file `tmp`, syncs it, and renames it over `path`.
fn write_and_replace(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let io_err = |op, source| VaultError::Io {
        op,
        path: tmp.to_path_buf(),
        source,
    };
    let mut file = private_create_new(tmp).map_err(|e| io_err("create", e))?;
    file.write_all(bytes).map_err(|e| io_err("write", e))?;
    file.sync_all().map_err(|e| io_err("sync", e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|source| VaultError::Io {
        op: "replace",
        path: path.to_path_buf(),
        source,
    })
}

fn check_account(account: &str) -> Result<(), VaultError> {
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

/// Creates `path` so that only the owner can ever read it: the mode is set by `open(2)` itself,
/// and `create_new` refuses to follow a symlink or reuse a file someone planted there.
fn private_create_new(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // Elsewhere (Windows) the data directory under the user's profile is already private.
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        // The umask can only narrow 0600, but make the mode exactly 0600 whatever it is.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
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

/// Makes a rename or removal durable. Best effort: not every platform or filesystem lets a
/// directory be opened and synced, and the file's own contents were already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync the data directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Why the OS keychain cannot be there at all, checked without touching D-Bus.
///
/// On Linux/BSD the Secret Service lives on the D-Bus session bus. Without one (CI, containers,
/// SSH sessions) the connection attempt is pointless, so skip it and go straight to the file.
/// zbus itself looks at `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`, else
/// `/run/user/<uid>/bus`; the same places are checked here.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
fn no_keychain_reason() -> Option<&'static str> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return None;
    }
    let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            // `/proc/self` is owned by the process's effective uid: the uid zbus would use.
            use std::os::unix::fs::MetadataExt;
            fs::metadata("/proc/self")
                .ok()
                .map(|m| PathBuf::from(format!("/run/user/{}", m.uid())))
        }
    };
    match runtime_dir {
        Some(dir) if dir.join("bus").exists() => None,
        _ => Some("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset, no $XDG_RUNTIME_DIR/bus)"),
    }
}

/// macOS and Windows always have their keychain; other platforms are left to the crate.
#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
)))]
fn no_keychain_reason() -> Option<&'static str> {
    None
}

/// Why a keychain call did not do its job. Messages never contain a secret.
#[derive(Debug)]
enum KeychainFailure {
    /// There is no keychain here, so it cannot hold a token either.
    Unavailable(String),
    /// The keychain answered with an error.
    Failed(String),
    /// The keychain did not answer in time (or an earlier call is still stuck).
    TimedOut(String),
}

impl fmt::Display for KeychainFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeychainFailure::Unavailable(why) => write!(f, "no OS keychain ({why})"),
            KeychainFailure::Failed(why) => write!(f, "the OS keychain failed: {why}"),
            KeychainFailure::TimedOut(why) => write!(f, "the OS keychain did not answer: {why}"),
        }
    }
}

/// The keychain operations the vault needs; the OS one in production, fakes in tests.
trait Keychain: Send + Sync + 'static {
    fn set(&self, service: &str, account: &str, token: &str) -> Result<(), KeychainFailure>;
    fn get(&self, service: &str, account: &str) -> Result<Option<String>, KeychainFailure>;
    /// Succeeds when there was nothing to delete.
    fn delete(&self, service: &str, account: &str) -> Result<(), KeychainFailure>;
}

/// The platform keychain through `keyring`'s v1 API (its default store per platform).
struct OsKeychain;

impl OsKeychain {
    fn entry(service: &str, account: &str) -> Result<keyring::Entry, KeychainFailure> {
        keyring::Entry::new(service, account).map_err(keychain_failure)
    }
}

impl Keychain for OsKeychain {
    fn set(&self, service: &str, account: &str, token: &str) -> Result<(), KeychainFailure> {
        Self::entry(service, account)?
            .set_password(token)
            .map_err(keychain_failure)
    }

    fn get(&self, service: &str, account: &str) -> Result<Option<String>, KeychainFailure> {
        match Self::entry(service, account)?.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_failure(e)),
        }
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), KeychainFailure> {
        match Self::entry(service, account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keychain_failure(e)),
        }
    }
}

fn keychain_failure(e: keyring::Error) -> KeychainFailure {
    match e {
        // The platform store could not even be opened (e.g. no Secret Service on the bus).
        keyring::Error::NoDefaultStore => {
            KeychainFailure::Unavailable("the platform credential store did not start".to_owned())
        }
        // These two carry the stored bytes; describe them without the bytes.
        keyring::Error::BadEncoding(_) => {
            KeychainFailure::Failed("the stored token is not valid UTF-8".to_owned())
        }
        keyring::Error::BadDataFormat(..) => {
            KeychainFailure::Failed("the stored token is malformed".to_owned())
        }
        other => KeychainFailure::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Instant;

    const TOKEN: &str = "tok-7f3a9c1e-SECRET-do-not-log";

    fn file_text(vault: &TokenVault) -> String {
        fs::read_to_string(vault.file_path()).expect("read the credentials file")
    }

    #[test]
    fn vault_file_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::file_only(dir.path());
        assert_eq!(vault.load("acct-1").expect("load"), None);

        let saved = vault.save("acct-1", TOKEN).expect("save");
        assert_eq!(saved, Where::File(dir.path().join(CREDENTIALS_FILE)));
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));

        // Saving again replaces the token.
        vault.save("acct-1", "tok-2").expect("save again");
        assert_eq!(
            vault.load("acct-1").expect("load").as_deref(),
            Some("tok-2")
        );

        vault.delete("acct-1").expect("delete");
        assert_eq!(vault.load("acct-1").expect("load"), None);
        assert!(!vault.file_path().exists(), "an empty file is removed");
        vault
            .delete("acct-1")
            .expect("deleting an absent token is fine");
    }

    #[cfg(unix)]
    #[test]
    fn vault_file_mode_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::file_only(dir.path());
        vault.save("acct-1", TOKEN).expect("save");
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(vault.file_path()), 0o600);
        // A rewrite (new temp file + rename) keeps it 0600, and leaves no temp file behind.
        vault.save("acct-2", "tok-2").expect("save");
        assert_eq!(mode(vault.file_path()), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [CREDENTIALS_FILE]);

        // A file someone widened is narrowed again on the next read.
        fs::set_permissions(vault.file_path(), fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));
        assert_eq!(mode(vault.file_path()), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn vault_creates_a_missing_data_dir_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let vault = TokenVault::file_only(&data);
        vault.save("acct-1", TOKEN).expect("save");
        let mode = fs::metadata(&data).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "dir mode {mode:o}");
    }

    #[test]
    fn vault_two_accounts_share_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::file_only(dir.path());
        vault.save("acct-1", "tok-1").expect("save 1");
        vault.save("acct-2", "tok-2").expect("save 2");
        assert_eq!(
            vault.load("acct-1").expect("load").as_deref(),
            Some("tok-1")
        );
        assert_eq!(
            vault.load("acct-2").expect("load").as_deref(),
            Some("tok-2")
        );

        let on_disk: BTreeMap<String, String> =
            serde_json::from_str(&file_text(&vault)).expect("a JSON object");
        assert_eq!(on_disk.len(), 2);

        vault.delete("acct-1").expect("delete 1");
        assert_eq!(vault.load("acct-1").expect("load"), None);
        assert_eq!(
            vault.load("acct-2").expect("load").as_deref(),
            Some("tok-2")
        );
        // Another vault on the same directory sees the same file.
        let other = TokenVault::file_only(dir.path());
        assert_eq!(
            other.load("acct-2").expect("load").as_deref(),
            Some("tok-2")
        );
    }

    #[test]
    fn vault_corrupt_file_is_a_clear_error_and_save_repairs_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::file_only(dir.path());
        // A bare JSON string: serde's own message would quote it, i.e. leak the token.
        fs::write(vault.file_path(), format!("\"{TOKEN}\"")).expect("write");
        let err = vault
            .load("acct-1")
            .expect_err("a damaged file is an error");
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&vault.file_path().display().to_string()),
            "{message}"
        );
        assert!(!message.contains(TOKEN), "{message}");
        assert!(!format!("{err:?}").contains(TOKEN));

        for garbage in ["{\"acct-1\": ", "not json", "{\"acct-1\": 5}", "\u{0}\u{1}"] {
            fs::write(vault.file_path(), garbage).expect("write");
            let err = vault.load("acct-1").expect_err(garbage);
            assert!(
                matches!(err, VaultError::Corrupt { .. }),
                "{garbage}: {err:?}"
            );
        }

        // Saving replaces the damaged file with a good one.
        vault.save("acct-1", TOKEN).expect("save repairs");
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));

        // Deleting from a damaged file removes it: the token may be in there.
        fs::write(vault.file_path(), format!("{{\"acct-1\": \"{TOKEN}\"")).expect("write");
        vault.delete("acct-1").expect("delete");
        assert!(!vault.file_path().exists());
    }

    #[test]
    fn vault_io_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::file_only(dir.path());
        // A directory where the file should be: reading it fails on every platform.
        fs::create_dir(vault.file_path()).expect("mkdir");
        let err = vault.load("acct-1").expect_err("not a file");
        let message = err.to_string();
        assert!(
            message.contains(&vault.file_path().display().to_string()),
            "{message}"
        );
        assert!(vault.save("acct-1", TOKEN).is_err());
    }

    #[test]
    fn vault_rejects_an_empty_account() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::file_only(dir.path());
        assert!(matches!(
            vault.save("", TOKEN),
            Err(VaultError::EmptyAccount)
        ));
        assert!(matches!(vault.load(""), Err(VaultError::EmptyAccount)));
    }

    #[test]
    fn vault_debug_and_errors_never_show_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        // `new` is only formatted, not used: it may reach a real keyring on a developer's desktop.
        let shown = format!("{:?}", TokenVault::new(crate::APP_IDENTIFIER, dir.path()));
        assert!(shown.contains("app.outpost.notes"), "{shown}");
        for vault in [
            TokenVault::file_only(dir.path()),
            TokenVault::with_backend("svc", dir.path(), Arc::new(MemoryKeychain::default())),
        ] {
            vault.save("acct-1", TOKEN).expect("save");
            let shown = format!("{vault:?} {vault:#?}");
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(shown.contains("TokenVault"));
        }
        let errors = [
            VaultError::KeychainDelete {
                service: "svc".into(),
                account: "acct-1".into(),
                reason: KeychainFailure::Failed("denied".into()).to_string(),
            },
            VaultError::Io {
                op: "read",
                path: dir.path().join(CREDENTIALS_FILE),
                source: io::Error::other("boom"),
            },
        ];
        for err in errors {
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(TOKEN), "{shown}");
        }
        // The keyring errors that carry the stored bytes are described without them.
        let leaky = keyring::Error::BadEncoding(TOKEN.as_bytes().to_vec());
        assert!(!keychain_failure(leaky).to_string().contains(TOKEN));
    }

    /// This machine (like CI) has no D-Bus session bus, so `new` must go to the file without
    /// ever calling D-Bus. Skipped where a session bus exists, since then the keychain is used.
    #[test]
    fn vault_new_without_a_session_bus_uses_the_file() {
        let Some(why) = no_keychain_reason() else {
            eprintln!("a session bus is present; this test checks the no-bus fallback only");
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::new(crate::APP_IDENTIFIER, dir.path());
        assert!(format!("{vault:?}").contains(why));
        let started = Instant::now();
        let saved = vault.save("acct-1", TOKEN).expect("save");
        assert_eq!(saved, Where::File(dir.path().join(CREDENTIALS_FILE)));
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));
        vault.delete("acct-1").expect("delete");
        assert_eq!(vault.load("acct-1").expect("load"), None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no keychain wait"
        );
    }

    /// The OS keychain itself, when one answers: on this machine (no bus) `keyring` reports no
    /// store, which must read as "unavailable" (so delete still succeeds), not as a failure.
    #[test]
    fn vault_os_keychain_without_a_store_is_unavailable() {
        if no_keychain_reason().is_none() {
            return; // A real session bus: do not write test entries into someone's keyring.
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::with_backend("app.outpost.test", dir.path(), Arc::new(OsKeychain))
            .with_keychain_timeout(Duration::from_secs(5));
        let saved = vault.save("acct-1", TOKEN).expect("save");
        assert!(matches!(saved, Where::File(_)));
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));
        vault
            .delete("acct-1")
            .expect("no keychain: nothing to clear there");
    }

    /// The real OS keychain, end to end. Ignored by default: it writes (and then removes) an
    /// entry in the keyring of whoever runs it. On headless Linux, run it inside a throwaway
    /// session with an unlocked gnome-keyring:
    /// `dbus-run-session -- sh -c 'echo pw | gnome-keyring-daemon --unlock --components=secrets
    /// && cargo test -p outpost-core vault_real_keychain -- --ignored'`.
    #[test]
    #[ignore = "touches the real OS keychain: run with --ignored inside dbus-run-session with an unlocked keyring"]
    fn vault_real_keychain_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = "app.outpost.notes.vault-test";
        let vault = TokenVault::new(service, dir.path());
        assert_eq!(vault.save("acct-1", TOKEN).expect("save"), Where::Keychain);
        assert!(!vault.file_path().exists(), "nothing on disk");
        let other = TokenVault::new(service, dir.path());
        assert_eq!(other.load("acct-1").expect("load").as_deref(), Some(TOKEN));
        vault.delete("acct-1").expect("delete");
        assert_eq!(other.load("acct-1").expect("load"), None);
    }

    #[derive(Default)]
    struct MemoryKeychain {
        entries: Mutex<HashMap<(String, String), String>>,
    }

    impl MemoryKeychain {
        fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
            self.entries.lock().expect("fake keychain lock")
        }
    }

    impl Keychain for MemoryKeychain {
        fn set(&self, service: &str, account: &str, token: &str) -> Result<(), KeychainFailure> {
            self.map()
                .insert((service.into(), account.into()), token.into());
            Ok(())
        }
        fn get(&self, service: &str, account: &str) -> Result<Option<String>, KeychainFailure> {
            Ok(self.map().get(&(service.into(), account.into())).cloned())
        }
        fn delete(&self, service: &str, account: &str) -> Result<(), KeychainFailure> {
            self.map().remove(&(service.into(), account.into()));
            Ok(())
        }
    }

    #[test]
    fn vault_keychain_first_and_no_stale_file_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        // An earlier save went to the file (say, the keychain was locked then).
        TokenVault::file_only(dir.path())
            .save("acct-1", "tok-old")
            .expect("file save");
        TokenVault::file_only(dir.path())
            .save("acct-2", "tok-other")
            .expect("file save");

        let keychain = Arc::new(MemoryKeychain::default());
        let vault = TokenVault::with_backend("svc", dir.path(), keychain.clone());
        assert_eq!(vault.save("acct-1", TOKEN).expect("save"), Where::Keychain);
        assert_eq!(
            keychain
                .map()
                .get(&("svc".into(), "acct-1".into()))
                .map(String::as_str),
            Some(TOKEN)
        );
        assert!(!file_text(&vault).contains("acct-1"), "old copy dropped");
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));
        // An account only in the file is still found there.
        assert_eq!(
            vault.load("acct-2").expect("load").as_deref(),
            Some("tok-other")
        );

        vault.delete("acct-1").expect("delete");
        assert!(keychain.map().is_empty());
        assert_eq!(vault.load("acct-1").expect("load"), None);
        vault.delete("acct-2").expect("delete");
        assert!(!vault.file_path().exists());
    }

    /// A keychain that answers every call with an error.
    struct BrokenKeychain;

    impl Keychain for BrokenKeychain {
        fn set(&self, _: &str, _: &str, _: &str) -> Result<(), KeychainFailure> {
            Err(KeychainFailure::Failed("collection is locked".into()))
        }
        fn get(&self, _: &str, _: &str) -> Result<Option<String>, KeychainFailure> {
            Err(KeychainFailure::Failed("collection is locked".into()))
        }
        fn delete(&self, _: &str, _: &str) -> Result<(), KeychainFailure> {
            Err(KeychainFailure::Failed("collection is locked".into()))
        }
    }

    #[test]
    fn vault_failing_keychain_falls_back_and_delete_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = TokenVault::with_backend("svc", dir.path(), Arc::new(BrokenKeychain));
        let saved = vault.save("acct-1", TOKEN).expect("save");
        assert_eq!(saved, Where::File(dir.path().join(CREDENTIALS_FILE)));
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));

        let err = vault
            .delete("acct-1")
            .expect_err("keychain could not be cleared");
        assert!(matches!(err, VaultError::KeychainDelete { .. }), "{err:?}");
        assert!(err.to_string().contains("collection is locked"), "{err}");
        // The file copy is gone all the same.
        assert!(!vault.file_path().exists());
    }

    /// A keychain whose calls block until the test lets them go, like a wedged D-Bus peer.
    struct HangingKeychain {
        release: Mutex<mpsc::Receiver<()>>,
        inner: MemoryKeychain,
    }

    impl HangingKeychain {
        fn wait(&self) {
            // Only the first call blocks; later ones find the channel closed or signalled.
            let _ = self.release.lock().expect("hang lock").recv();
        }
    }

    impl Keychain for HangingKeychain {
        fn set(&self, service: &str, account: &str, token: &str) -> Result<(), KeychainFailure> {
            self.wait();
            self.inner.set(service, account, token)
        }
        fn get(&self, service: &str, account: &str) -> Result<Option<String>, KeychainFailure> {
            self.wait();
            self.inner.get(service, account)
        }
        fn delete(&self, service: &str, account: &str) -> Result<(), KeychainFailure> {
            self.wait();
            self.inner.delete(service, account)
        }
    }

    #[test]
    fn vault_hanging_keychain_cannot_hang_the_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (release, rx) = mpsc::channel();
        let keychain = Arc::new(HangingKeychain {
            release: Mutex::new(rx),
            inner: MemoryKeychain::default(),
        });
        let vault = TokenVault::with_backend("svc", dir.path(), keychain.clone())
            .with_keychain_timeout(Duration::from_secs(2));

        let started = Instant::now();
        let saved = vault.save("acct-1", TOKEN).expect("save");
        assert_eq!(saved, Where::File(dir.path().join(CREDENTIALS_FILE)));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");

        // While the first call is stuck, later ones wait neither for it nor for a timeout.
        let started = Instant::now();
        assert_eq!(vault.load("acct-1").expect("load").as_deref(), Some(TOKEN));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(
            vault.delete("acct-1"),
            Err(VaultError::KeychainDelete { .. })
        ));

        // Once the keychain answers again, the vault uses it again.
        release.send(()).expect("release");
        let deadline = Instant::now() + Duration::from_secs(5);
        while vault
            .keychain
            .as_ref()
            .map(|s| s.stuck.load(Ordering::SeqCst))
            != Ok(0)
        {
            assert!(Instant::now() < deadline, "the stuck call never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(release); // later calls see a closed channel and go straight through
        assert_eq!(
            vault.save("acct-1", "tok-2").expect("save"),
            Where::Keychain
        );
        assert_eq!(
            vault.load("acct-1").expect("load").as_deref(),
            Some("tok-2")
        );
    }
}
