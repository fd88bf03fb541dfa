//! The store's WAL checkpoints, on a thread of their own. SQLite's automatic checkpoint runs
//! inside the commit that crosses its threshold, so a long first sync paid for copying the WAL
//! into the database file in its own critical path: 17% of a 30,000-note pull, measured with
//! `perf` (BENCHMARKS.md, "Sync end to end"). Here the writer only signals a commit, and this
//! thread runs a passive checkpoint (it never blocks the writer or a reader) a moment later.
//! The writer's own automatic checkpoint stays as a backstop, at a threshold this thread keeps
//! the WAL well below, so the WAL stays bounded even if this thread falls behind.

use crate::db::{self, Synchronous};
use crate::error::Result;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The writer's automatic checkpoint, in pages (64 MB at 4 KiB): only if this thread lags.
pub(crate) const BACKSTOP_PAGES: u32 = 16_384;

/// How long the thread lets commits gather before it checkpoints: a burst of small commits
/// (typing) costs one checkpoint, not one each.
const GATHER: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Signal {
    committed: bool,
    stop: bool,
}

type Shared = Arc<(Mutex<Signal>, Condvar)>;

pub(crate) struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(db_path: &Path, sync: Synchronous) -> Result<Checkpointer> {
        let conn = db::open_connection(db_path, sync)?;
        let shared: Shared = Arc::default();
        let path = db_path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("outpost-checkpoint".into())
            .spawn({
                let shared = shared.clone();
                move || run(&conn, &path, &shared)
            })
            .map_err(|source| crate::Error::Io {
                path: db_path.to_path_buf(),
                source,
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// A transaction committed: its pages are in the WAL.
    pub(crate) fn committed(&self) {
        let (signal, wake) = &*self.shared;
        signal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .committed = true;
        wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (signal, wake) = &*self.shared;
        signal.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread left nothing half done: a checkpoint is atomic.
            let _ = thread.join();
        }
    }
}

fn run(conn: &rusqlite::Connection, path: &Path, shared: &Shared) {
    let (signal, wake) = &**shared;
    loop {
        {
            let mut s = signal.lock().unwrap_or_else(PoisonError::into_inner);
            while !s.committed && !s.stop {
                s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            s.committed = false;
        }
        std::thread::sleep(GATHER);
        // PASSIVE copies what it can without waiting for anyone; what a reader still needs
        // is copied next time.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((frames, copied)) => tracing::trace!(frames, copied, "checkpoint"),
            // Nothing is lost: the pages stay in the WAL, and the next commit tries again.
            Err(e) => tracing::warn!(db = %path.display(), error = %e, "a checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::temp_store;
    use crate::{NoteDraft, Store};
    use std::time::{Duration, Instant};

    /// What a user would notice otherwise: a WAL that grows for as long as the app runs (disk
    /// space, slower reads), or commits that stall on a checkpoint. The notes written reach
    /// the database file itself without anyone asking (2 MB is far below the writer's own
    /// automatic checkpoint), and are all there after a reopen.
    #[test]
    fn commits_are_checkpointed_by_the_thread_and_nothing_is_lost() {
        let (dir, store) = temp_store();
        let before = std::fs::metadata(store.db_path()).expect("db").len();
        let drafts = (0..2_000)
            .map(|i| NoteDraft {
                title: format!("Valve {i}"),
                body: "pressure ok ".repeat(80),
                ..Default::default()
            })
            .collect();
        store.import_notes(drafts).expect("import");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = std::fs::metadata(store.db_path()).expect("db").len();
            if now > before + 2_000_000 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the WAL was never copied into the database: {before} bytes, now {now}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.local_status().expect("status").notes, 2_000);
    }
}
