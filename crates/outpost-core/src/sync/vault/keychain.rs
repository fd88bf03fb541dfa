//! The OS keychain (macOS Keychain, Windows Credential Manager, the Secret Service through the
//! `keyring` crate): whether one can be there, and each call on its own thread with a timeout,
//! so a keychain that never answers cannot hang the app.

use super::TokenVault;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, mpsc};

impl TokenVault {
    /// Runs one keychain operation on its own thread and waits at most the timeout for it.
    pub(super) fn keychain_call<T: Send + 'static>(
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
pub(super) fn no_keychain_reason() -> Option<&'static str> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return None;
    }
    let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Some(std::path::PathBuf::from(dir)),
        None => {
            // `/proc/self` is owned by the process's effective uid: the uid zbus would use.
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| std::path::PathBuf::from(format!("/run/user/{}", m.uid())))
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
pub(super) fn no_keychain_reason() -> Option<&'static str> {
    None
}

/// Why a keychain call did not do its job. Messages never contain a secret.
#[derive(Debug)]
pub(super) enum KeychainFailure {
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
pub(super) trait Keychain: Send + Sync + 'static {
    fn set(&self, service: &str, account: &str, token: &str) -> Result<(), KeychainFailure>;
    fn get(&self, service: &str, account: &str) -> Result<Option<String>, KeychainFailure>;
    /// Succeeds when there was nothing to delete.
    fn delete(&self, service: &str, account: &str) -> Result<(), KeychainFailure>;
}

/// The platform keychain through `keyring`'s v1 API (its default store per platform).
pub(super) struct OsKeychain;

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

pub(super) fn keychain_failure(e: keyring::Error) -> KeychainFailure {
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
