//! A sync server that fails: its data directory put back from an older file copy while the
//! devices kept theirs. Nothing a user wrote may leave a device because the server lost it;
//! the devices notice the other history (the server's chain of commits at their cursor), send
//! again what the server lacks, and agree with it and with each other, as the doctor confirms.

use outpost_e2e::device::{Device, doctor_agrees, title};
use outpost_e2e::server::{copy_dir, restore_dir, spawn_server, stop_server};
use std::time::Instant;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn titles(device: &Device) -> std::collections::BTreeSet<String> {
    device.snapshot().into_values().map(|(t, ..)| t).collect()
}

fn notes(device: &Device, prefix: &str, n: usize) {
    for i in 0..n {
        device.note(&format!("{prefix} {i:02}"), "checked; photo to follow");
    }
}

/// Issue 11, first case: the server is put back to a copy from before 30 notes and an edit;
/// both devices that have them keep them, and the server gets them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restored_from_an_old_copy_gets_back_what_it_lost_and_no_device_deletes_it() {
    let started = Instant::now();
    let root = tempfile::tempdir().expect("dirs");
    let (data, backup) = (root.path().join("data"), root.path().join("backup"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    let b = Device::new(&url, "ann@example.org", false).await;
    notes(&a, "Before", 5);
    a.sync().await;
    b.sync().await;
    let first = *a.snapshot().keys().next().expect("a note");

    // The nightly file copy.
    stop_server(server);
    copy_dir(&data, &backup);
    let server = spawn_server(&data, port).await;

    notes(&a, "Pump", 30);
    b.edit(first, title("Before 00 (valve replaced)"));
    a.sync().await;
    b.sync().await;
    a.sync().await;
    assert_eq!(a.snapshot().len(), 35);
    assert_eq!(b.snapshot(), a.snapshot());

    // The disk dies; the copy is put back.
    stop_server(server);
    restore_dir(&backup, &data);
    let server = spawn_server(&data, port).await;

    let report_a = a.sync().await;
    assert!(report_a.reset, "A noticed the server's other history");
    assert_eq!(report_a.resent.notes, 30, "A sent its 30 notes again");
    let report_b = b.sync().await;
    assert!(report_b.reset, "B noticed it too");
    a.sync().await;

    // What the user sees: every note still there on both devices, with the newest title.
    assert_eq!(a.snapshot().len(), 35, "nothing deleted on A");
    assert_eq!(b.snapshot(), a.snapshot(), "B agrees");
    assert!(titles(&a).contains("Before 00 (valve replaced)"));
    assert!(titles(&a).contains("Pump 29"));
    assert_eq!(a.store.local_status().expect("status").pending, 0);
    // The sync log says what happened.
    let log = a.store.recent_sync_errors(5).expect("log");
    assert!(
        log.iter()
            .any(|e| e.message.starts_with("Sent 30 notes again")),
        "{log:?}"
    );
    // And the server has them all again: the doctor finds nothing to repair.
    for device in [&a, &b] {
        let diagnosis = doctor_agrees(device).await;
        assert_eq!(diagnosis.server.notes, 35);
    }
    // A device that signs in now gets everything.
    let c = Device::new(&url, "ann@example.org", false).await;
    c.sync().await;
    assert_eq!(c.snapshot(), a.snapshot());
    stop_server(server);
    eprintln!("restored server: {:?}", started.elapsed());
}

/// Issue 11, second case: after the restore a third device commits 40 notes, so the server
/// reaches A's cursor again with other commits. A's pull names the chain it saw at that cursor;
/// the server's differs, and A reconciles instead of skipping C's notes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_server_that_moved_past_a_devices_cursor_is_not_taken_for_the_old_one() {
    let started = Instant::now();
    let root = tempfile::tempdir().expect("dirs");
    let (data, backup) = (root.path().join("data"), root.path().join("backup"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    let b = Device::new(&url, "ann@example.org", false).await;
    notes(&a, "Before", 5);
    a.sync().await;
    b.sync().await;

    stop_server(server);
    copy_dir(&data, &backup);
    let server = spawn_server(&data, port).await;
    notes(&a, "Ann", 20);
    a.sync().await;
    b.sync().await;
    assert_eq!(b.snapshot().len(), 25);

    stop_server(server);
    restore_dir(&backup, &data);
    let server = spawn_server(&data, port).await;
    let c = Device::new(&url, "ann@example.org", false).await;
    c.sync().await;
    notes(&c, "Carl", 40);
    c.sync().await;

    for device in [&a, &b, &c, &a, &b, &c] {
        device.sync().await;
    }
    let want = 5 + 20 + 40;
    for (name, device) in [("A", &a), ("B", &b), ("C", &c)] {
        assert_eq!(device.snapshot().len(), want, "{name} has every note");
        let titles = titles(device);
        assert!(
            titles.contains("Ann 19") && titles.contains("Carl 39"),
            "{name}"
        );
        let diagnosis = doctor_agrees(device).await;
        assert_eq!(
            diagnosis.server.notes, want as u64,
            "{name}: the server has them"
        );
    }
    assert_eq!(b.snapshot(), a.snapshot());
    assert_eq!(c.snapshot(), a.snapshot());
    stop_server(server);
    eprintln!("restored server moved on: {:?}", started.elapsed());
}

/// The operator's way: `outpost-server backup` while it runs, `restore` after a failure. The
/// restore starts a new epoch, so the devices reconcile from the first reply that names it;
/// a file that is not a server database is refused with a clear message and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outpost_server_restore_makes_every_device_reconcile_and_refuses_a_bad_file() {
    let root = tempfile::tempdir().expect("dirs");
    let data = root.path().join("data");
    let backup = root.path().join("nightly.db");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    notes(&a, "Before", 5);
    a.sync().await;
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(outpost_e2e::bin("outpost-server"))
            .args(args)
            .output()
            .expect("run outpost-server")
    };
    let made = run(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--to".as_ref(),
        backup.as_os_str(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    notes(&a, "After", 10);
    a.sync().await;
    stop_server(server);

    let junk = root.path().join("notes.txt");
    std::fs::write(&junk, "not a database").expect("junk");
    let refused = run(&[
        "restore".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--from".as_ref(),
        junk.as_os_str(),
    ]);
    assert!(!refused.status.success());
    let told = String::from_utf8_lossy(&refused.stderr);
    assert!(told.contains("not an Outpost server database"), "{told}");
    // The refused restore changed nothing: the server still has all 15.
    let server = spawn_server(&data, port).await;
    assert!(!a.sync().await.reset, "the same history");
    stop_server(server);

    let restored = run(&[
        "restore".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--from".as_ref(),
        backup.as_os_str(),
    ]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(said.contains("devices reconcile"), "{said}");
    let server = spawn_server(&data, port).await;
    let report = a.sync().await;
    assert!(report.reset, "the new epoch makes A reconcile");
    assert_eq!(report.resent.notes, 10, "A sends the 10 the backup lacks");
    assert_eq!(a.snapshot().len(), 15);
    let diagnosis = doctor_agrees(&a).await;
    assert_eq!(diagnosis.server.notes, 15);
    assert!(
        !a.sync().await.reset,
        "once reconciled, syncs go on from the cursor"
    );
    stop_server(server);
}

/// A restore while a device is in the middle of a long push: the server is killed after some
/// batches were committed (the reply of the last may be lost), and put back to a copy from
/// before the push. The device's pull cursor is valid on the restored server (it was taken
/// there), so only the changes it was told were committed show the loss: they do not come
/// back with the pull. The device reconciles and every note ends on the server exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_in_the_middle_of_a_push_leaves_every_note_on_the_server_once() {
    use outpost_core::NoteDraft;
    use outpost_core::sync::{EngineConfig, SyncError};
    const NOTES: usize = 2_000;
    let root = tempfile::tempdir().expect("dirs");
    let (data, backup) = (root.path().join("data"), root.path().join("backup"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    notes(&a, "Before", 3);
    a.sync().await;
    stop_server(server);
    copy_dir(&data, &backup);

    let mut server = spawn_server(&data, port).await;
    let drafts = (0..NOTES).map(|i| NoteDraft {
        title: format!("Meter {i:04}"),
        body: "reading taken".into(),
        ..Default::default()
    });
    a.store.import_notes(drafts.collect()).expect("import");
    let pending = |d: &Device| d.store.local_status().expect("status").pending;
    let cfg = EngineConfig {
        push_batch_count: 100,
        ..Default::default()
    };
    let (failed, ()) = tokio::join!(a.sync_with(&cfg, &|_| {}), async {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while pending(&a) > (NOTES as i64) - 300 {
            assert!(Instant::now() < deadline, "the first batches never went up");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        server.kill().expect("kill -9 the server");
        server.wait().expect("reap the server");
    });
    assert!(matches!(failed, Err(SyncError::Offline(_))), "{failed:?}");
    assert!(pending(&a) < NOTES as i64, "some batches were acknowledged");

    restore_dir(&backup, &data);
    let server = spawn_server(&data, port).await;
    let report = a
        .sync_with(&cfg, &|_| {})
        .await
        .expect("sync after the restore");
    assert!(
        report.reset,
        "A noticed the acknowledged notes are gone and reconciled"
    );
    assert_eq!(pending(&a), 0);
    assert_eq!(a.snapshot().len(), NOTES + 3);
    let diagnosis = doctor_agrees(&a).await;
    assert_eq!(diagnosis.server.notes, (NOTES + 3) as u64, "each note once");
    let audit = std::process::Command::new(outpost_e2e::bin("outpost-server"))
        .args(["audit".as_ref(), "--data-dir".as_ref(), data.as_os_str()])
        .output()
        .expect("audit");
    assert!(
        audit.status.success(),
        "nothing doubled: {}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let b = Device::new(&url, "ann@example.org", false).await;
    b.sync().await;
    assert_eq!(b.snapshot(), a.snapshot());
    stop_server(server);
}

/// Two copies of one server database in different epochs behind a balancer that alternates
/// on every request (a restore done on one instance only): the replies flip between two
/// histories. The device says so in its status, deletes nothing, and does not re-send in a
/// loop; once one history answers alone it reconciles with it and agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_flips_between_two_histories_gets_a_clear_error_and_no_loop() {
    use outpost_e2e::balancer::Balancer;
    use outpost_e2e::server::Server;
    let root = tempfile::tempdir().expect("dirs");
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    let first = Server::start_in(&one).await;
    let balancer = Balancer::start(vec![first.url.clone()]).await;
    let a = Device::new(&balancer.url, "ann@example.org", true).await;
    notes(&a, "Site", 5);
    a.sync().await;
    drop(first);
    // Let the server let go of its database before it is copied.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    copy_dir(&one, &two);
    outpost_server::storage::sqlite::new_epoch(&two.join(outpost_server::storage::sqlite::DB_FILE))
        .expect("epoch");
    let (one_server, two_server) = (Server::start_in(&one).await, Server::start_in(&two).await);
    balancer.set_upstreams(vec![one_server.url.clone(), two_server.url.clone()]);

    let id = *a.snapshot().keys().next().expect("a note");
    a.edit(id, title("Site 00 (roof leaking)"));
    // A cycle whose replies all come from one copy completes (against that copy); one that
    // meets both says so. Either way nothing goes, and nothing piles up.
    let mut told = 0;
    for _ in 0..6 {
        match a.try_sync().await {
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.contains("different copies of its data"),
                    "{message}"
                );
                told += 1;
            }
            Ok(report) => assert!(report.resent.total() <= 1, "{report:?}"),
        }
        assert_eq!(a.snapshot().len(), 5, "nothing deleted");
        assert!(
            a.store.local_status().expect("status").pending <= 1,
            "no pile of re-sends"
        );
    }
    assert!(told > 0, "the status said what is wrong");
    assert!(titles(&a).contains("Site 00 (roof leaking)"));

    balancer.set_upstreams(vec![two_server.url.clone()]);
    let report = a.sync().await;
    assert!(report.reset, "it reconciles with the history that answers");
    a.sync().await;
    assert!(titles(&a).contains("Site 00 (roof leaking)"));
    assert_eq!(doctor_agrees(&a).await.server.notes, 5);
}

/// Issue 11, "Up to date" proven: a server that forgot three notes without any sign in its
/// history (rows deleted from its database by hand, the chain of commits untouched, its sums
/// those of what it still holds). The next
/// cycle that moves anything compares digests, finds the difference, sends the three again and
/// says so in the sync log; only then does it report the device verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_silently_forgot_notes_is_caught_by_the_digest_check_and_repaired() {
    let root = tempfile::tempdir().expect("dirs");
    let data = root.path().join("data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    let b = Device::new(&url, "ann@example.org", false).await;
    notes(&a, "Valve", 10);
    let first = a.sync().await;
    assert!(
        first.verified,
        "a cycle that moved something proves it: {first:?}"
    );
    assert!(b.sync().await.verified);
    assert!(b.store.verified_at_cursor().expect("verified"));

    // Three notes vanish from the server's database; its history does not change.
    stop_server(server);
    let lost: Vec<String> = a
        .snapshot()
        .keys()
        .take(3)
        .map(ToString::to_string)
        .collect();
    {
        let db = rusqlite::Connection::open(data.join(outpost_server::storage::sqlite::DB_FILE))
            .expect("server db");
        for id in &lost {
            db.execute("DELETE FROM records WHERE entity_id = ?1", [id])
                .expect("forget");
        }
        // Its sums agree with what it still has: the server sums its records up again at
        // start, as after an upgrade.
        db.execute_batch("DROP TABLE digests; DROP TABLE blobs; PRAGMA user_version = 2;")
            .expect("sums forgotten");
    }
    let server = spawn_server(&data, port).await;

    // B edits a note: its cycle moves, checks, and finds what the server lacks.
    let kept = *b.snapshot().keys().last().expect("a note");
    b.edit(kept, title("Valve 09 (replaced)"));
    let report = b.sync().await;
    let repaired = report.repaired.clone().expect("the check repaired");
    assert_eq!(repaired.requeued, 3, "{report:?}");
    assert!(report.verified, "verified after the repair: {report:?}");
    let log = b.store.recent_sync_errors(5).expect("log");
    assert!(
        log.iter().any(|e| e
            .message
            .starts_with("Checked against the server: Sent 3 notes again")),
        "{log:?}"
    );
    // A gets the edit; nothing went anywhere; both agree with the server.
    let report_a = a.sync().await;
    assert!(report_a.verified, "{report_a:?}");
    assert_eq!(a.snapshot().len(), 10);
    assert_eq!(b.snapshot(), a.snapshot());
    assert!(titles(&a).contains("Valve 09 (replaced)"));
    for device in [&a, &b] {
        assert_eq!(doctor_agrees(device).await.server.notes, 10);
    }
    // An idle cycle right after moves nothing and asks nothing more of the server.
    let idle = a.sync().await;
    assert!(!idle.moved() && !idle.verified && idle.repaired.is_none());
    assert!(a.store.verified_at_cursor().expect("still proven"));
    stop_server(server);
}

/// Issue 11, bad input and faults: the server's disk fills up (its data directory is a small
/// tmpfs of its own, filled by a ballast file). A push is refused with an error that says so;
/// the device keeps its note queued, and sends it once the disk has room again. Needs `mount`
/// (root, as in CI); elsewhere it says why it did not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_full_disk_refuses_pushes_clearly_and_nothing_is_lost() {
    use std::io::Write as _;
    let root = tempfile::tempdir().expect("dirs");
    let data = root.path().join("data");
    let Some(_unmount) = Tmpfs::mount(&data) else {
        eprintln!("not run: this machine does not let the test mount a tmpfs (needs root)");
        return;
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    notes(&a, "Before", 3);
    a.sync().await;

    // The disk fills up.
    let ballast = data.join("ballast");
    {
        let mut file = std::fs::File::create(&ballast).expect("ballast");
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..4096]).is_ok() {}
    }
    notes(&a, "Pump", 20);
    let e = a.try_sync().await.expect_err("the server cannot store it");
    let message = e.to_string();
    assert!(
        message.contains("cannot write to its disk") && message.contains("503"),
        "what the status shows: {message}"
    );
    let status = a.store.local_status().expect("status");
    assert_eq!(status.pending, 20, "every note waits on the device");
    assert_eq!(a.snapshot().len(), 23);

    // Room again: everything goes up, once.
    std::fs::remove_file(&ballast).expect("free the disk");
    let report = a.sync().await;
    assert_eq!(report.pushed, 20, "{report:?}");
    assert!(report.verified, "{report:?}");
    assert_eq!(doctor_agrees(&a).await.server.notes, 23);
    stop_server(server);
}

/// A small tmpfs of a test's own (a disk it can fill or make read-only), unmounted on drop.
/// `None` where the machine does not let the test mount one (it needs root, as in CI).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        Self::run(&["-t", "tmpfs", "-o", "size=32m", "tmpfs"], dir).then(|| Tmpfs(dir.into()))
    }

    /// Remounts it read-only or writable again (the files must not be open for writing).
    fn set_read_only(&self, read_only: bool) {
        let opts = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        assert!(Self::run(&["-o", opts], &self.0), "mount -o {opts}");
    }

    fn run(args: &[&str], dir: &std::path::Path) -> bool {
        std::process::Command::new("mount")
            .args(args)
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Issue 11, bad input and faults: the server's disk goes read-only (a failing disk remounted
/// read-only, a recovery boot) and the server is started on it. It serves: a device still pulls
/// and proves "Up to date"; a push is refused with an error that says the server cannot write,
/// and the notes wait on the device. Once the disk is writable and the server restarted, they go
/// up once and reach the other device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_read_only_disk_serves_pulls_refuses_pushes_clearly_and_loses_nothing() {
    let root = tempfile::tempdir().expect("dirs");
    let data = root.path().join("data");
    let Some(disk) = Tmpfs::mount(&data) else {
        eprintln!("not run: this machine does not let the test mount a tmpfs (needs root)");
        return;
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    let b = Device::new(&url, "ann@example.org", false).await;
    notes(&a, "Before", 3);
    a.sync().await;
    stop_server(server);

    disk.set_read_only(true);
    let server = spawn_server(&data, port).await;
    let pulled = b.sync().await;
    assert_eq!(pulled.pulled, 3, "{pulled:?}");
    assert!(
        pulled.verified,
        "B proves Up to date against the read-only server"
    );
    notes(&a, "Pump", 5);
    let e = a.try_sync().await.expect_err("the server cannot store it");
    let message = e.to_string();
    assert!(
        message.contains("cannot write to its disk") && message.contains("503"),
        "what the status shows: {message}"
    );
    assert_eq!(a.store.local_status().expect("status").pending, 5);
    assert_eq!(a.snapshot().len(), 8, "every note stays on the device");
    stop_server(server);

    disk.set_read_only(false);
    let server = spawn_server(&data, port).await;
    let report = a.sync().await;
    assert_eq!(report.pushed, 5, "{report:?}");
    assert!(report.verified, "{report:?}");
    b.sync().await;
    assert_eq!(titles(&b), titles(&a));
    assert_eq!(doctor_agrees(&a).await.server.notes, 8);
    stop_server(server);
}

/// Issue 11, bad input and faults: a note deleted for good after the backup was taken. The
/// restored server holds it again, so it comes back on the devices (the one fault a restore may
/// cause), and the device that deleted it says so in its sync log; nothing else changes: every
/// other note, edit and deletion stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_made_after_the_backup_may_come_back_and_nothing_else_changes() {
    let root = tempfile::tempdir().expect("dirs");
    let (data, backup) = (root.path().join("data"), root.path().join("backup"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = spawn_server(&data, port).await;
    let a = Device::new(&url, "ann@example.org", true).await;
    let b = Device::new(&url, "ann@example.org", false).await;
    notes(&a, "Site", 4);
    a.sync().await;
    b.sync().await;
    let ids: Vec<_> = a.snapshot().keys().copied().collect();

    stop_server(server);
    copy_dir(&data, &backup);
    let server = spawn_server(&data, port).await;

    // After the backup: one note deleted for good, one note new, one edited.
    a.store.trash_note(ids[0]).expect("trash");
    a.store.purge_note(ids[0]).expect("purge");
    let new = a.note("Site 04", "after the backup");
    b.edit(ids[1], title("Site 01 (roof done)"));
    a.sync().await;
    b.sync().await;
    a.sync().await;
    assert_eq!(a.snapshot(), b.snapshot());
    assert!(!a.snapshot().contains_key(&ids[0]));
    let before_restore = a.snapshot();

    stop_server(server);
    restore_dir(&backup, &data);
    let server = spawn_server(&data, port).await;
    a.sync().await;
    b.sync().await;
    a.sync().await;

    let mut after = a.snapshot();
    assert_eq!(b.snapshot(), after, "both devices agree");
    // The purged note is back, as the backup had it, and A (which deleted it) says so.
    let back = after.remove(&ids[0]).expect("the purged note came back");
    assert_eq!(back.0, "Site 00");
    let log = a.store.recent_sync_errors(5).expect("log");
    assert!(
        log.iter()
            .any(|e| e.message.starts_with("1 note you deleted for good is back")),
        "{log:?}"
    );
    // Nothing else: the new note, the edit and the other notes are exactly as before.
    assert_eq!(after, before_restore);
    assert!(after.contains_key(&new));
    assert_eq!(doctor_agrees(&a).await.server.notes, 5);
    stop_server(server);
}

/// Issue 11: the status bar says "Up to date" only when the digests prove it. A device's own
/// copy damaged behind its back (a note's row gone, as a broken disk or a tool might leave it):
/// "Sync now" checks, finds the difference, takes the note back from the server and says so;
/// only then is the status "Up to date" again, and the doctor agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_proves_up_to_date_and_repairs_a_damaged_device_first() {
    use outpost_core::sync::vault::TokenVault;
    use outpost_core::sync::{EngineConfig, EngineState, SyncEngine};
    let server = outpost_e2e::server::Server::start().await;
    let a = Device::new(&server.url, "ann@example.org", true).await;
    notes(&a, "Gauge", 6);
    a.sync().await;
    let engine = SyncEngine::start(
        a.store.clone(),
        TokenVault::file_only(a.dir()),
        EngineConfig::default(),
    );
    let mut status = engine.status();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while status.borrow().state != EngineState::UpToDate {
        assert!(
            Instant::now() < deadline,
            "never up to date: {:?}",
            *status.borrow()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // A note's row vanishes from the device's database.
    let gone = *a.snapshot().keys().next().expect("a note");
    {
        let db = rusqlite::Connection::open(a.store.db_path()).expect("device db");
        db.execute("DELETE FROM notes WHERE id = ?1", [gone.to_string()])
            .expect("damage");
    }
    assert_eq!(a.snapshot().len(), 5);
    status.mark_unchanged();
    engine.sync_now();
    // The next status after "Sync now" comes from a cycle that checked: it is "Up to date"
    // only with the note back.
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    loop {
        tokio::time::timeout_at(deadline.into(), status.changed())
            .await
            .expect("a status within 20 s")
            .expect("the engine runs");
        let s = status.borrow().clone();
        if s.state == EngineState::UpToDate {
            assert_eq!(a.snapshot().len(), 6, "up to date only with the note back");
            break;
        }
    }
    let log = a.store.recent_sync_errors(5).expect("log");
    assert!(
        log.iter().any(|e| e
            .message
            .starts_with("Checked against the server: Took 1 record from the server")),
        "{log:?}"
    );
    engine.shutdown().await;
    assert_eq!(doctor_agrees(&a).await.server.notes, 6);
}
