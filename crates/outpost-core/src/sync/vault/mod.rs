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

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

mod file;
mod keychain;

use file::check_account;
#[cfg(test)]
use keychain::keychain_failure;
use keychain::{Keychain, KeychainFailure, OsKeychain, no_keychain_reason};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::collections::HashMap;
    use std::fs;
    use std::sync::atomic::Ordering;
    use std::sync::{Mutex, mpsc};
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
