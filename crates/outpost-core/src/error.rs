//! The core's one error type. Every variant has a stable `code` that the app sends to the UI
//! as `{code, message}` and the CLI prints; messages name the thing that failed.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },

    #[error("{field} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        field: &'static str,
        size: usize,
        limit: usize,
    },

    #[error("{0}")]
    Invalid(String),

    #[error(
        "the data directory {} is in use by another Outpost process{}; close it first",
        path.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    DataDirInUse { path: PathBuf, pid: Option<u32> },

    #[error("{} is not an Outpost database (not SQLite); it was left untouched", path.display())]
    NotADatabase { path: PathBuf },

    #[error("the database {} is corrupt ({detail}); it was left untouched", path.display())]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "the database {} was written by a newer Outpost (schema {found}, this one knows {known}); update Outpost",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("the disk holding {} is full; nothing was saved", path.display())]
    DiskFull { path: PathBuf },

    #[error("{} is read-only; nothing was saved", path.display())]
    ReadOnly { path: PathBuf },

    #[error("the database {} is busy (another writer holds it); try again", path.display())]
    Busy { path: PathBuf },

    #[error(
        "the folder {} is not empty and was not written by an Outpost export; choose an empty or new folder",
        path.display()
    )]
    FolderNotEmpty { path: PathBuf },

    #[error("{} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },

    #[error("{} : {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),

    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),

    #[error("stored data could not be read: {0}")]
    Data(String),
}

impl Error {
    /// A stable, machine-readable code: the UI and scripts branch on it, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::TooLarge { .. } => "too_large",
            Error::Invalid(_) => "invalid_input",
            Error::DataDirInUse { .. } => "data_dir_in_use",
            Error::NotADatabase { .. } => "not_a_database",
            Error::Corrupt { .. } => "database_corrupt",
            Error::TooNew { .. } => "database_too_new",
            Error::DiskFull { .. } => "disk_full",
            Error::ReadOnly { .. } => "read_only",
            Error::Busy { .. } => "busy",
            Error::FolderNotEmpty { .. } => "folder_not_empty",
            Error::NotText { .. } => "not_text",
            Error::Io { .. } => "io",
            Error::Sqlite(_) => "database",
            Error::Migration(_) => "migration",
            Error::Data(_) => "data",
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// A file-system error on `path`, with the meanings a user acts on (a missing or read-only
    /// place, a full disk) given their own codes.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let path = path.to_path_buf();
        match source.kind() {
            K::StorageFull => Error::DiskFull { path },
            K::ReadOnlyFilesystem => Error::ReadOnly { path },
            _ => Error::Io { path, source },
        }
    }

    /// Gives a SQLite error the meaning a user understands, naming the database file.
    pub(crate) fn from_sqlite(path: &std::path::Path, err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        // A cell the app cannot read back (damaged, or written by something else): what is
        // wrong with it is the message, not SQLite's column index.
        if let rusqlite::Error::FromSqlConversionFailure(_, _, e) = &err {
            return Error::Data(e.to_string());
        }
        let path = path.to_path_buf();
        match err.sqlite_error_code() {
            Some(C::DiskFull) => Error::DiskFull { path },
            Some(C::ReadOnly) => Error::ReadOnly { path },
            Some(C::NotADatabase) => Error::NotADatabase { path },
            Some(C::DatabaseCorrupt) => Error::Corrupt {
                path,
                detail: err.to_string(),
            },
            Some(C::DatabaseBusy | C::DatabaseLocked) => Error::Busy { path },
            Some(C::SystemIoFailure) if is_enospc(&err) => Error::DiskFull { path },
            _ => Error::Sqlite(err),
        }
    }
}

/// Maps a SQLite error to the core's error, naming the database file.
pub(crate) trait SqlContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::from_sqlite(path, e))
    }
}

/// SQLite reports some out-of-space conditions (e.g. while growing the WAL) as a generic I/O
/// error; the OS error it keeps says which.
fn is_enospc(err: &rusqlite::Error) -> bool {
    err.to_string().contains("disk is full") || err.to_string().contains("No space left")
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Error", 2)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}
