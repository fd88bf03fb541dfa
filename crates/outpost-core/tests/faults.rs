//! What the user sees when the database file or the disk under it goes wrong: a clear error that
//! names the file, and nothing lost or overwritten.

use outpost_core::{Error, ListQuery, NoteDraft, Store};
use std::path::{Path, PathBuf};
use std::process::Command;

fn db_file(dir: &Path) -> PathBuf {
    dir.join("outpost.db")
}

fn note(title: &str, body: &str) -> NoteDraft {
    NoteDraft {
        title: title.into(),
        body: body.into(),
        ..Default::default()
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_by_name_and_left_untouched() {
    let dir = tempfile::tempdir().expect("dir");
    let diary = b"Dear diary, today the pump failed again. This is not a database.\n".repeat(100);
    std::fs::write(db_file(dir.path()), &diary).expect("write");

    let err = Store::open(dir.path()).expect_err("must refuse");
    assert_eq!(err.code(), "not_a_database");
    let message = err.to_string();
    assert!(
        message.contains(&db_file(dir.path()).display().to_string()),
        "{message}"
    );
    assert!(message.contains("left untouched"), "{message}");
    assert_eq!(std::fs::read(db_file(dir.path())).expect("read"), diary);
    assert!(
        !dir.path().join("outpost.db-wal").exists(),
        "no WAL created beside it"
    );
}

#[test]
fn a_damaged_database_is_reported_as_corrupt_and_never_recreated() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = Store::open(dir.path()).expect("open");
        for i in 0..200 {
            store
                .create_note(note(&format!("note {i}"), &"text ".repeat(200)))
                .expect("create");
        }
    }
    // Keep the header, overwrite everything after the first page with garbage.
    let path = db_file(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 8192, "the test needs more than one page");
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i * 31 % 251) as u8;
    }
    std::fs::write(&path, &bytes).expect("corrupt it");
    let _ = std::fs::remove_file(dir.path().join("outpost.db-wal"));

    let outcome = Store::open(dir.path()).and_then(|s| s.list_notes(&ListQuery::default()));
    let err = outcome.expect_err("corruption must surface");
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::NotADatabase { .. }),
        "got {err:?}"
    );
    assert!(err.to_string().contains("outpost.db"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "file left as it was"
    );
}

#[test]
fn a_database_from_a_newer_version_is_refused_not_downgraded() {
    let dir = tempfile::tempdir().expect("dir");
    drop(Store::open(dir.path()).expect("create"));
    {
        let conn = rusqlite::Connection::open(db_file(dir.path())).expect("raw");
        conn.execute_batch("PRAGMA user_version = 99")
            .expect("bump");
    }
    let err = Store::open(dir.path()).expect_err("too new");
    assert_eq!(err.code(), "database_too_new");
    assert!(err.to_string().contains("schema 99"), "{err}");
}

#[test]
fn a_second_store_on_the_same_directory_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let first = Store::open(dir.path()).expect("open");
    let err = Store::open(dir.path()).expect_err("in use");
    assert_eq!(err.code(), "data_dir_in_use");
    assert!(
        err.to_string()
            .contains(&format!("(pid {})", std::process::id())),
        "{err}"
    );
    drop(first);
    Store::open(dir.path()).expect("free again once the first closes");
}

/// Mounting a small or read-only file system needs root (CI runs as root).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size: &str) -> Option<Mount> {
        if !is_root() {
            eprintln!("SKIPPED: mounting a test file system needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs failed although running as root");
        Some(Mount { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {mode} failed");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_the_write_clearly_and_keeps_everything_saved_before() {
    let Some(disk) = Mount::tmpfs("3m") else {
        return;
    };
    let data = disk.path().join("data");
    let store = Store::open(&data).expect("open");
    let body = "field notes ".repeat(6_000); // ~72 KB
    let mut saved = Vec::new();
    let err = loop {
        match store.create_note(note(&format!("n{}", saved.len()), &body)) {
            Ok(n) => saved.push(n.id),
            Err(e) => break e,
        }
        assert!(saved.len() < 1000, "the disk never filled up");
    };
    assert_eq!(err.code(), "disk_full", "got {err:?}");
    assert!(
        err.to_string().contains("is full; nothing was saved"),
        "{err}"
    );
    assert!(!saved.is_empty());

    // Everything saved before is intact, each note with its one outbox entry (L1).
    let status = store.local_status().expect("status still reads");
    assert_eq!(status.notes, saved.len() as i64);
    assert_eq!(status.pending, saved.len() as i64);
    for id in &saved {
        assert_eq!(store.outbox_for(&id.to_string()).expect("outbox").len(), 1);
    }
    drop(store);
    let reopened = Store::open(&data);
    // Reopening on a full disk may itself fail with disk_full; it must never lose data.
    if let Ok(store) = reopened {
        assert_eq!(
            store.local_status().expect("status").notes,
            saved.len() as i64
        );
    }
    disk.remount("size=16m");
    let store = Store::open(&data).expect("open after space was freed");
    assert_eq!(
        store.local_status().expect("status").notes,
        saved.len() as i64
    );
    store
        .create_note(note("after", "there is room again"))
        .expect("write works again");
}

#[test]
fn a_read_only_directory_fails_clearly_and_keeps_what_was_saved() {
    let Some(disk) = Mount::tmpfs("16m") else {
        return;
    };
    let data = disk.path().join("data");
    {
        let store = Store::open(&data).expect("open");
        store
            .create_note(note("kept", "saved before the disk went read-only"))
            .expect("create");
    }
    disk.remount("ro");
    let err = Store::open(&data).expect_err("read-only");
    assert_eq!(err.code(), "read_only", "got {err:?}");
    assert!(
        err.to_string().contains("read-only; nothing was saved"),
        "{err}"
    );
    disk.remount("rw");
    let store = Store::open(&data).expect("open");
    let notes = store.list_notes(&ListQuery::default()).expect("list");
    assert_eq!(notes.items.len(), 1);
    assert_eq!(notes.items[0].title, "kept");
}

#[test]
fn a_write_protected_database_file_refuses_writes_and_keeps_its_notes() {
    if !is_root() {
        eprintln!("SKIPPED: chattr +i needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("open");
    store.create_note(note("kept", "")).expect("create");
    drop(store);
    let path = db_file(dir.path());
    let immutable = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !immutable("+i") {
        eprintln!("SKIPPED: this file system does not support chattr +i");
        return;
    }
    let outcome = Store::open(dir.path()).and_then(|s| s.create_note(note("new", "")));
    immutable("-i");
    let err = outcome.expect_err("write must fail");
    assert_eq!(err.code(), "read_only", "got {err:?}");
    let store = Store::open(dir.path()).expect("open");
    let titles: Vec<String> = store
        .list_notes(&ListQuery::default())
        .expect("list")
        .items
        .into_iter()
        .map(|n| n.title)
        .collect();
    assert_eq!(titles, ["kept"]);
}
