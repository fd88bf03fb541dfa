//! How a command failed, as the user sees it: the exit code (by error variant; `outpost --help`
//! lists them) and the one line on stderr, `{code, message}` with `--json`.

/// A sync that worked but left something for the user (exit code 11).
#[derive(Debug, thiserror::Error)]
#[error(
    "synced, but {conflicts} notes are in conflict and {failed} changes failed: see `outpost conflicts` and `outpost failed`"
)]
pub struct Attention {
    pub conflicts: i64,
    pub failed: i64,
}

/// The doctor found records that differ and did not (or could not) repair them (exit code 12).
#[derive(Debug, thiserror::Error)]
#[error("{count} records differ between this device and the server: run `outpost doctor --repair`")]
pub struct Disagreement {
    pub count: usize,
}

/// The exit code of a store error, by what the user can do about it (`outpost --help`).
pub fn core_exit_code(err: &outpost_core::Error) -> u8 {
    use outpost_core::Error;
    match err {
        Error::NotFound { .. } => 3,
        Error::Invalid(_)
        | Error::TooLarge { .. }
        | Error::FolderNotEmpty { .. }
        | Error::NotText { .. } => 4,
        Error::DataDirInUse { .. } | Error::Busy { .. } => 5,
        Error::NotADatabase { .. } | Error::Corrupt { .. } | Error::TooNew { .. } => 6,
        Error::DiskFull { .. } | Error::ReadOnly { .. } => 7,
        Error::Io { .. } | Error::Sqlite(_) | Error::Migration(_) | Error::Data(_) => 1,
    }
}

/// The exit code of a sync error, by what the user can do about it (`outpost --help`).
pub fn sync_exit_code(err: &outpost_core::sync::SyncError) -> u8 {
    use outpost_core::sync::SyncError;
    match err {
        SyncError::Offline(_) => 8,
        SyncError::SignedOut(_) | SyncError::NotSignedIn | SyncError::Vault(_) => 9,
        SyncError::ClientTooOld(_) => 10,
        SyncError::BadServerUrl(_) => 4,
        SyncError::Store(core) => core_exit_code(core),
        SyncError::ResetRequired(_)
        | SyncError::HistoryChanged { .. }
        | SyncError::Server { .. }
        | SyncError::Garbage(_)
        | SyncError::Unverified(_)
        | SyncError::HttpClient(_) => 1,
    }
}

pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(core) = err.downcast_ref::<outpost_core::Error>() {
        return core_exit_code(core);
    }
    if err.downcast_ref::<Attention>().is_some() {
        return 11;
    }
    if err.downcast_ref::<Disagreement>().is_some() {
        return 12;
    }
    err.downcast_ref::<outpost_core::sync::SyncError>()
        .map_or(1, sync_exit_code)
}

/// One line on stderr: `outpost: <message>`, or `{code, message}` with `--json`.
pub fn print_error(err: &anyhow::Error, json: bool) {
    let (code, message) = match (
        err.downcast_ref::<outpost_core::Error>(),
        err.downcast_ref::<outpost_core::sync::SyncError>(),
    ) {
        (Some(core), _) => (core.code().to_owned(), core.to_string()),
        (_, Some(sync)) => (sync.code().to_owned(), sync.to_string()),
        _ if err.downcast_ref::<Attention>().is_some() => ("attention".to_owned(), err.to_string()),
        _ if err.downcast_ref::<Disagreement>().is_some() => {
            ("doctor_differences".to_owned(), err.to_string())
        }
        _ => ("error".to_owned(), format!("{err:#}")),
    };
    let message = message.replace('\n', " ");
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "code": code, "message": message })
        );
    } else {
        eprintln!("outpost: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::sync::SyncError;
    use outpost_core::sync::vault::VaultError;

    fn code_of(e: impl Into<anyhow::Error>) -> u8 {
        exit_code(&e.into())
    }

    #[test]
    fn each_failure_exits_with_the_code_outpost_help_lists() {
        assert_eq!(
            code_of(SyncError::Offline("cannot reach the server".into())),
            8
        );
        assert_eq!(code_of(SyncError::NotSignedIn), 9);
        // A keychain that cannot be read is a sign-in problem, not "offline" retried for ever.
        assert_eq!(code_of(SyncError::Vault(VaultError::EmptyAccount)), 9);
        assert_eq!(code_of(SyncError::BadServerUrl("ftp://x".into())), 4);
        assert_eq!(code_of(SyncError::ClientTooOld("update".into())), 10);
        assert_eq!(
            code_of(SyncError::Store(outpost_core::Error::Invalid("x".into()))),
            4
        );
        assert_eq!(
            code_of(outpost_core::Error::Invalid("empty title".into())),
            4
        );
        assert_eq!(
            code_of(Attention {
                conflicts: 1,
                failed: 0
            }),
            11
        );
        assert_eq!(code_of(Disagreement { count: 2 }), 12);
        assert_eq!(code_of(anyhow::anyhow!("something else")), 1);
    }
}
