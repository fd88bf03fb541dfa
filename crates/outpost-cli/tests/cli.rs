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
    let mut writer = common::command(
        dir.path(),
        &["seed", "1000000", "--one-by-one", "--body-bytes", "64"],
    )
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

/// The QA helper: `outpost seed N` makes N realistic, distinct notes quickly, optionally in a
/// notebook (made if missing), each with its outbox entry, and says how long it took.
#[test]
fn seed_makes_realistic_distinct_notes_quickly_in_a_notebook() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let out = json(d, &["seed", "2500", "--notebook", "Site visits"]);
    assert_eq!(out["created"], 2500, "{out}");
    assert!(out["ms"].as_u64().is_some(), "it says how long: {out}");
    let notebooks = json(d, &["notebook", "ls"]);
    assert_eq!(notebooks[0]["name"], "Site visits", "{notebooks}");
    assert_eq!(notebooks[0]["note_count"], 2500);
    // Again into the same notebook: found by name, not made twice, and no text repeats.
    let text = ok(d, &["seed", "500", "--notebook", "site visits"]);
    assert!(
        text.starts_with("created 500 notes in notebook \"site visits\" in "),
        "{text}"
    );
    assert!(text.contains("notes/s"), "{text}");
    assert_eq!(json(d, &["notebook", "ls"])[0]["note_count"], 3000);
    let status = json(d, &["status"]);
    // Each note queued once, and the notebook.
    assert_eq!(
        (&status["notes"], &status["pending"]),
        (&3000.into(), &3001.into())
    );

    let listed = json(d, &["note", "ls", "--all", "--limit", "1000"]);
    let titles: std::collections::BTreeSet<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["title"].as_str().expect("title").to_owned())
        .collect();
    assert_eq!(titles.len(), 3000, "each title once");
    let shown = json(
        d,
        &[
            "note",
            "show",
            listed["items"][0]["id"].as_str().expect("id"),
        ],
    );
    let body = shown["body"].as_str().expect("body");
    assert!(body.starts_with("# ") && body.contains("\n- ["), "{body}");

    // Reproducible with --seed, and sized with --body-bytes.
    let other = tempfile::tempdir().expect("dir");
    ok(
        other.path(),
        &["seed", "3", "--seed", "42", "--body-bytes", "300"],
    );
    let again = tempfile::tempdir().expect("dir");
    ok(
        again.path(),
        &["seed", "3", "--seed", "42", "--body-bytes", "300"],
    );
    let bodies = |d: &std::path::Path| -> Vec<String> {
        json(d, &["note", "ls"])["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| {
                let id = n["id"].as_str().expect("id");
                json(d, &["note", "show", id])["body"]
                    .as_str()
                    .expect("body")
                    .to_owned()
            })
            .collect()
    };
    let (first, second) = (bodies(other.path()), bodies(again.path()));
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|b| b.len() == 300));
    let mut sorted = (first.clone(), second.clone());
    sorted.0.sort();
    sorted.1.sort();
    assert_eq!(sorted.0, sorted.1, "the same seed, the same notes");

    // --edit-every needs --one-by-one.
    let usage = outpost(d, &["seed", "3", "--edit-every", "2"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&usage.stderr).contains("--one-by-one"),
        "{usage:?}"
    );
}
