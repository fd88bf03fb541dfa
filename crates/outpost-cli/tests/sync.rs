//! A whole sync session from the command line, as a QA script runs it: two devices (data
//! directories) against a real server on 127.0.0.1, a conflict resolved with `outpost resolve`,
//! and what `outpost sync` says when the server is gone.

mod common;

use common::{json, ok, outpost, start_server};

#[test]
fn two_devices_sync_and_a_conflict_is_resolved_from_the_cli() {
    let server_dir = tempfile::tempdir().expect("dir");
    let url = start_server(server_dir.path());
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    ok(
        a.path(),
        &["register", "--server", &url, "--email", "ann@example.org"],
    );
    ok(
        b.path(),
        &["login", "--server", &url, "--email", "ann@example.org"],
    );
    let status = json(a.path(), &["status"]);
    assert_eq!(status["sync"]["signed_in"], true);
    assert_eq!(status["sync"]["server"], url.as_str());
    let token_file = a.path().join("credentials.json");
    assert!(
        token_file.exists(),
        "no keychain here: the token is in the 0600 file"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    let id = ok(
        a.path(),
        &[
            "note",
            "add",
            "--title",
            "Meter",
            "--body",
            "Reading: 100\n",
        ],
    )
    .trim()
    .to_owned();
    ok(a.path(), &["sync"]);
    ok(b.path(), &["sync"]);
    assert_eq!(
        json(b.path(), &["note", "show", &id])["body"],
        "Reading: 100\n"
    );

    ok(a.path(), &["note", "edit", &id, "--body", "Reading: 140\n"]);
    ok(b.path(), &["note", "edit", &id, "--body", "Reading: 150\n"]);
    ok(a.path(), &["sync"]);
    let out = outpost(b.path(), &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(11),
        "synced with a conflict to look at"
    );
    let conflicts = json(b.path(), &["conflicts"]);
    assert_eq!(conflicts[0]["mine"], "Reading: 150\n");
    assert_eq!(conflicts[0]["theirs"], "Reading: 140\n");

    ok(b.path(), &["resolve", &id, "--mine"]);
    ok(b.path(), &["sync"]);
    ok(a.path(), &["sync"]);
    for d in [a.path(), b.path()] {
        let note = json(d, &["note", "show", &id]);
        assert_eq!(note["body"], "Reading: 150\n");
        assert_eq!(note["sync_state"], "synced");
    }

    ok(a.path(), &["logout"]);
    assert_eq!(json(a.path(), &["status"])["sync"]["signed_in"], false);
    let out = outpost(a.path(), &["sync"]);
    assert_eq!(out.status.code(), Some(9), "not signed in");
}

#[test]
fn sync_with_the_server_gone_says_offline_and_keeps_the_change() {
    let server_dir = tempfile::tempdir().expect("dir");
    let url = start_server(server_dir.path());
    let a = tempfile::tempdir().expect("a");
    ok(
        a.path(),
        &["register", "--server", &url, "--email", "ann@example.org"],
    );
    // Point the device at a port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let conn = rusqlite::Connection::open(a.path().join("outpost.db")).expect("db");
    conn.execute(
        "UPDATE sync_meta SET value = ?1 WHERE key = 'server_url'",
        [&dead],
    )
    .expect("url");
    drop(conn);
    ok(a.path(), &["note", "add", "--title", "Written offline"]);
    let out = outpost(a.path(), &["sync"]);
    assert_eq!(out.status.code(), Some(8));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("offline: cannot reach the server"),
        "{stderr}"
    );
    assert_eq!(
        json(a.path(), &["status"])["pending"],
        1,
        "the change waits in the outbox"
    );
}
