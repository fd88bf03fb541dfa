//! `outpost export` and `outpost import`: a folder of Markdown out of one data directory and
//! into another, as a script would move notes between devices or apps.

mod common;

use common::{fails, json, ok};

#[test]
fn export_to_a_folder_and_import_it_on_another_device() {
    let a = tempfile::tempdir().expect("dir");
    let b = tempfile::tempdir().expect("dir");
    let out = tempfile::tempdir().expect("dir");
    let (a, b) = (a.path(), b.path());
    ok(a, &["notebook", "add", "Site visits"]);
    ok(
        a,
        &[
            "note",
            "add",
            "--title",
            "Pump 4",
            "--body",
            "Seal leaking.",
            "--notebook",
            "Site visits",
            "--tag",
            "pumps",
            "--pin",
        ],
    );
    ok(
        a,
        &["note", "add", "--title", "Groceries", "--body", "eggs"],
    );

    let folder = out.path().join("notes");
    let dir = folder.to_str().expect("utf-8 path");
    let export = json(a, &["export", dir]);
    assert_eq!(
        (export["notes"].as_u64(), export["notebooks"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(folder.join("Site visits/Pump 4.md").is_file());
    assert!(folder.join("Groceries.md").is_file());
    std::fs::write(folder.join("Site visits/scan.md"), b"\xff\xfe binary").expect("write");

    let import = json(b, &["import", dir]);
    assert_eq!(import["imported"], 2);
    let skipped = import["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("scan.md")),
        "{import}"
    );
    assert_eq!(skipped[0]["reason"], "not UTF-8 text");
    let pump = json(b, &["note", "ls", "--notebook", "site visits"]);
    assert_eq!(pump["items"][0]["title"], "Pump 4");
    assert_eq!(pump["items"][0]["pinned"], true);
    assert_eq!(pump["items"][0]["tags"], serde_json::json!(["pumps"]));
    assert_eq!(
        json(b, &["status"])["pending"],
        3,
        "two notes and a notebook to sync"
    );

    // Into the device it came from: nothing new.
    let human = ok(a, &["import", dir]);
    assert!(
        human.starts_with("imported 0 notes; skipped 3 files"),
        "{human}"
    );
    assert!(human.contains("already in Outpost"), "{human}");
    assert_eq!(json(a, &["status"])["notes"], 2);

    // A second export into the same folder replaces its own files and keeps the user's.
    ok(a, &["export", dir]);
    assert!(folder.join("Site visits/scan.md").is_file());
}

#[test]
fn a_foreign_folder_and_a_missing_one_are_refused_with_their_path() {
    let data = tempfile::tempdir().expect("dir");
    let d = data.path();
    ok(d, &["note", "add", "--title", "Pump 4"]);
    let out = tempfile::tempdir().expect("dir");
    std::fs::write(out.path().join("thesis.docx"), "years of work").expect("write");
    let dir = out.path().to_str().expect("utf-8 path");

    let (code, err) = fails(d, &["export", dir]);
    assert_eq!(code, 4);
    assert!(err.contains(dir) && err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).expect("list").count(), 1);

    let missing = out.path().join("nope");
    let (code, err) = fails(d, &["import", missing.to_str().expect("utf-8 path")]);
    assert_eq!(code, 3);
    assert_eq!(
        err.trim(),
        format!("outpost: folder not found: {}", missing.display())
    );
}
