//! Opening the database: the data-directory lock, the file checks that keep a foreign or corrupt
//! file untouched, and the connection pragmas (all of them here, none inside a migration).

use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub(crate) const DB_FILE: &str = "outpost.db";
const LOCK_FILE: &str = "outpost.lock";
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How hard SQLite pushes each commit to the disk.
///
/// `Normal` (the default) in WAL mode: a commit survives the app crashing or being killed; a power
/// cut can lose the last commits since the previous WAL sync but never corrupts the file or
/// splits a note from its outbox entry (L1). The sync engine issues a durable barrier
/// ([`crate::Store::durable_barrier`]) before anything leaves the device, so nothing the server
/// has seen can be rolled back here. `Full` syncs the WAL on every commit: see BENCHMARKS.md for
/// what that costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Held for as long as a [`crate::Store`] is open: one process per data directory.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

pub(crate) fn lock_data_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join(LOCK_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Error::ReadOnly { path: path.clone() }
            }
            _ => io(e),
        })?;
    match try_lock_patiently(&file) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(Error::DataDirInUse {
                path: dir.to_path_buf(),
                pid: pid.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // The pid is only for the message another process shows; failing to write it is harmless.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()));
    Ok(DirLock { _file: file })
}

/// A lock released a moment ago can still be held for a few milliseconds: by a previous instance
/// that is still exiting, or by a child process another thread of ours has just forked, which
/// shares the open file until it execs. So a busy lock is retried briefly before it is reported.
fn try_lock_patiently(file: &File) -> std::result::Result<(), TryLockError> {
    const ATTEMPTS: u32 = 20;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(25);
    for _ in 1..ATTEMPTS {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => std::thread::sleep(PAUSE),
            other => return other,
        }
    }
    file.try_lock()
}

/// Refuses a file that exists but is not SQLite, before SQLite gets a chance to write to it.
fn check_header(path: &Path) -> Result<bool> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    // An empty file is what a crash during the very first open leaves: SQLite treats it as a
    // new database, and so do we.
    if read == 0 {
        return Ok(true);
    }
    if read < header.len() || &header != SQLITE_MAGIC {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    Ok(true)
}

/// Opens (creating if absent) the database file with the connection settings every connection
/// of the store shares.
pub(crate) fn open_connection(path: &Path, sync: Synchronous) -> Result<Connection> {
    check_header(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| Error::from_sqlite(path, e))?;
    // A database that fails this read is foreign or damaged; nothing has been written yet.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| Error::from_sqlite(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| Error::from_sqlite(path, e))?;
    // A 4 MB page cache per connection: the OS keeps the file's pages anyway, and the store
    // benchmark (100,000 notes) measured search and import the same with 4 MB as with 16 MB,
    // while the desktop app used 13 MiB less memory (BENCHMARKS.md, "Desktop app").
    let pragmas = format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -4000;",
        sync.pragma()
    );
    conn.execute_batch(&pragmas)
        .map_err(|e| Error::from_sqlite(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}
