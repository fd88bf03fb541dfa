//! The `outpost` binary as a script would use it: a whole offline session, JSON output, and
//! what a user sees when something is wrong.

mod common;

use common::{fails, json, ok, outpost};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_whole_offline_session() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    ok(d, &["notebook", "add", "Site visits"]);
    let id = ok(
        d,
        &[
            "note",
            "add",
            "--title",
            "Pump 4",
            "--body",
            "Impeller worn; seal leaking.",
            "--notebook",
            "site visits",
            "--tag",
            "pumps",
            "--tag",
            "urgent",
        ],
    )
    .trim()
    .to_owned();
    ok(
        d,
        &["note", "add", "--title", "Groceries", "--body", "eggs"],
    );

    let shown = json(d, &["note", "show", &id[24..]]);
    assert_eq!(shown["title"], "Pump 4");
    assert_eq!(shown["tags"], serde_json::json!(["pumps", "urgent"]));
    assert_eq!(shown["sync_state"], "pending");

    ok(
        d,
        &["note", "edit", &id, "--pin", "--body", "Impeller replaced."],
    );
    let list = json(d, &["note", "ls"]);
    let titles: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, ["Pump 4", "Groceries"], "pinned first");
    assert_eq!(
        json(d, &["note", "ls", "--notebook", "Site visits"])["items"]
            .as_array()
            .expect("items")
            .len(),
        1
    );

    let hits = json(d, &["note", "search", "replac"]);
    assert_eq!(hits[0]["note"]["id"], id.as_str());
    let human = ok(d, &["note", "search", "replac"]);
    assert!(
        human.contains("[Impeller replaced.]") || human.contains("[replaced]"),
        "{human}"
    );

    ok(d, &["note", "rm", &id]);
    assert_eq!(
        json(d, &["note", "ls", "--trash"])["items"][0]["id"],
        id.as_str()
    );
    ok(d, &["note", "restore", &id]);
    assert_eq!(
        json(d, &["note", "ls", "--trash"])["items"],
        serde_json::json!([])
    );

    ok(d, &["pref", "set", "theme", "dark"]);
    assert_eq!(json(d, &["pref", "get", "theme"])["value"], "dark");
    ok(d, &["pref", "set", "sync.interval_secs", "60"]);

    let outbox = json(d, &["outbox", "ls"]);
    let names: Vec<(&str, &str)> = outbox
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name"),
                e["entity"].as_str().expect("entity"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("notebook.put", "notebook"),
            ("note.put", "note"),
            ("note.put", "note"),
            ("pref.put", "pref"),
        ],
        "one entry per entity (coalesced while unsent); device-only prefs stay local"
    );
    let status = json(d, &["status"]);
    assert_eq!(
        (status["notes"].as_i64(), status["pending"].as_i64()),
        (Some(2), Some(4))
    );
}

#[test]
fn errors_are_one_line_with_an_exit_code_that_says_what_kind() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let (code, err) = fails(d, &["note", "show", "0190a1b2-0000-7000-8000-000000000001"]);
    assert_eq!(code, 3);
    assert_eq!(
        err.trim(),
        "outpost: note not found: 0190a1b2-0000-7000-8000-000000000001"
    );

    let (code, err) = fails(d, &["pref", "set", "theme", "purple"]);
    assert_eq!(code, 4);
    assert!(
        err.contains("theme must be one of system, light, dark"),
        "{err}"
    );

    let out = outpost(d, &["note", "show", "abcd1234", "--json"]);
    let err: Value = serde_json::from_slice(&out.stderr).expect("JSON error on stderr");
    assert_eq!(err["code"], "not_found");
    assert_eq!(out.status.code(), Some(3));

    let big = d.join("big.md");
    std::fs::write(&big, "x".repeat(outpost_core::MAX_BODY_BYTES + 1)).expect("write");
    let (code, err) = fails(
        d,
        &["note", "add", "--body-file", big.to_str().expect("path")],
    );
    assert_eq!(code, 4);
    assert!(err.contains("the limit is 10485760 bytes"), "{err}");
    assert_eq!(json(d, &["status"])["notes"], 0, "nothing was written");

    let (code, _) = fails(d, &["note", "edit", "abcd"]);
    assert_eq!(code, 3, "no such note");
}

#[test]
fn a_foreign_file_in_place_of_the_database_is_named_and_kept() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("outpost.db");
    std::fs::write(&db, "my spreadsheet, not a database").expect("write");
    let (code, err) = fails(dir.path(), &["note", "ls"]);
    assert_eq!(code, 6);
    assert!(err.contains("is not an Outpost database"), "{err}");
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert_eq!(
        std::fs::read_to_string(&db).expect("read"),
        "my spreadsheet, not a database"
    );
}

#[test]
fn a_second_process_on_the_same_data_dir_is_told_who_holds_it() {
    let dir = tempfile::tempdir().expect("dir");
    let mut writer = common::command(dir.path(), &["seed", "1000000", "--body-bytes", "64"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    // Wait until the writer holds the lock (it writes its pid into the lock file).
    let lock = dir.path().join("outpost.lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim() != writer.id().to_string()) {
        assert!(Instant::now() < deadline, "writer never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, err) = fails(dir.path(), &["note", "ls"]);
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(code, 5);
    assert!(
        err.contains(&format!(
            "in use by another Outpost process (pid {})",
            writer.id()
        )),
        "{err}"
    );
    // Once it is gone the directory opens, with whatever it had committed intact.
    let status = json(dir.path(), &["status"]);
    assert_eq!(status["notes"], status["pending"]);
}
