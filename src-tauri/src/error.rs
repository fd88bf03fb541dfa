//! The error type of the app's IPC layer and how it reaches the UI.
//!
//! Every command returns `Result<T, AppError>`. The UI receives `{code, message}`: `code` is a
//! stable, machine-readable string (the core's own code where the error comes from the core), so
//! the UI can react to the kind of error instead of parsing a message meant for people.

use outpost_core::sync::SyncError;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The core refused or failed; its `code()` is passed on unchanged.
    #[error(transparent)]
    Core(#[from] outpost_core::Error),
    /// Signing in, the doctor or another call to the server failed (`offline`, `signed_out`, the
    /// server's own code…).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The store could not be opened at start-up. Every command answers with that failure, so
    /// the window can say why (e.g. `data_dir_in_use`) instead of the app dying without a word.
    #[error("{message}")]
    StoreUnavailable { code: &'static str, message: String },
    /// An argument the window sent could not be read (see `args.rs`): a malformed id, an
    /// unknown field, a missing key. The same code as the core's own validation errors.
    #[error("`{name}` is not valid: {reason}")]
    BadArgument { name: &'static str, reason: String },
    /// The user closed a folder picker without choosing: the window says nothing.
    #[error("no folder was chosen")]
    Cancelled,
    /// The system could not open a file or folder (no editor for `.md`, a broken picker).
    #[error("could not open {0}")]
    Open(String),
    /// Tauri itself failed, e.g. no app data dir, or a blocking task that panicked.
    #[error("internal error: {0}")]
    Runtime(#[from] tauri::Error),
}

impl AppError {
    /// The stable code the UI switches on.
    pub fn code(&self) -> &str {
        match self {
            AppError::Core(err) => err.code(),
            AppError::Sync(err) => err.code(),
            AppError::StoreUnavailable { code, .. } => code,
            AppError::BadArgument { .. } => "invalid_input",
            AppError::Cancelled => "cancelled",
            AppError::Open(_) => "cannot_open",
            AppError::Runtime(_) => "internal",
        }
    }
}

impl Serialize for AppError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("AppError", 2)?;
        out.serialize_field("code", self.code())?;
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}

/// What the UI receives when a command fails (the TypeScript side of [`AppError`]).
#[cfg(test)]
#[derive(ts_rs::TS)]
#[allow(dead_code)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_code() -> Result<(), serde_json::Error> {
        let err = AppError::from(outpost_core::Error::Invalid("title is empty".into()));
        let value = serde_json::to_value(&err)?;
        assert_eq!(
            value,
            serde_json::json!({"code": "invalid_input", "message": "title is empty"})
        );
        Ok(())
    }

    #[test]
    fn sync_errors_keep_the_servers_code() -> Result<(), serde_json::Error> {
        let err = AppError::from(SyncError::Server {
            status: 409,
            code: "email_taken".into(),
            message: "an account with this email exists".into(),
        });
        let value = serde_json::to_value(&err)?;
        assert_eq!(value["code"], "email_taken");
        assert!(
            value["message"]
                .as_str()
                .is_some_and(|m| m.contains("an account with this email exists")),
            "{value}"
        );
        let offline = serde_json::to_value(AppError::from(SyncError::Offline(
            "cannot reach the server".into(),
        )))?;
        assert_eq!(offline["code"], "offline");
        Ok(())
    }

    #[test]
    fn runtime_errors_are_internal() -> Result<(), serde_json::Error> {
        let err = AppError::Runtime(tauri::Error::FailedToReceiveMessage);
        let value = serde_json::to_value(&err)?;
        assert_eq!(value["code"], "internal");
        assert_eq!(value["message"], err.to_string());
        Ok(())
    }
}
