//! `outpost doctor` against a real server: two devices that agree are told so; a device whose
//! database was damaged behind Outpost's back (a body changed, a note lost, a change that never
//! reached the outbox, a note the server deleted for good brought back) is told which notes
//! differ and how, and `--repair` puts it right without losing what only it had.

mod common;

use common::{json, ok, outpost, start_server};
use serde_json::Value;
use std::path::Path;

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("outpost.db")).expect("open the device database")
}

fn add(dir: &Path, title: &str, body: &str) -> String {
    ok(dir, &["note", "add", "--title", title, "--body", body])
        .trim()
        .to_owned()
}

/// `outpost doctor ARGS --json`, which may fail: (exit code, what it printed).
fn doctor(dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = outpost(dir, &all);
    let printed = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), printed)
}

/// Each difference as (id, problem).
fn problems(diagnosis: &Value) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = diagnosis["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().expect("id").to_owned(),
                d["problem"].as_str().expect("problem").to_owned(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn the_doctor_names_what_differs_and_repairs_it_without_losing_anything() {
    let server_dir = tempfile::tempdir().expect("dir");
    let url = start_server(server_dir.path());
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    let (a, b) = (a.path(), b.path());
    ok(
        a,
        &["register", "--server", &url, "--email", "ann@example.org"],
    );
    ok(
        b,
        &["login", "--server", &url, "--email", "ann@example.org"],
    );
    let notes: Vec<String> = (1..=5)
        .map(|i| add(a, &format!("Pump {i}"), &format!("Checked valve {i}.")))
        .collect();
    ok(a, &["sync"]);
    ok(b, &["sync"]);

    // Healthy devices: both agree, with the same counts as the server.
    for dir in [a, b] {
        let (code, report) = doctor(dir, &[]);
        assert_eq!(code, 0, "{report}");
        let d = &report["diagnosis"];
        assert_eq!(d["differences"], serde_json::json!([]));
        assert_eq!(d["server"]["notes"], 5);
        assert_eq!(d["device"]["notes"], 5);
        assert_eq!(d["server_cursor"], d["device_cursor"]);
    }
    let human = ok(b, &["doctor"]);
    assert!(human.contains("device and server agree"), "{human}");

    // Damage B behind Outpost's back, and bring back a note the server deleted for good.
    ok(a, &["note", "rm", &notes[4]]);
    ok(a, &["note", "purge", &notes[4]]);
    ok(a, &["sync"]);
    db(b)
        .execute_batch(&format!(
            "CREATE TABLE saved AS SELECT * FROM notes WHERE id = '{}'",
            notes[4]
        ))
        .expect("keep a copy");
    ok(b, &["sync"]);
    let only_on_b = add(b, "Written on B", "never queued");
    // A stamp a second from now: newer than anything the server has for that title.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let late = format!("{:012x}-00000000-{:032x}", now_ms + 1000, 0);
    db(b)
        .execute_batch(&format!(
            "UPDATE saved SET seq = NULL;
             INSERT INTO notes SELECT * FROM saved;
             DROP TABLE saved;
             UPDATE notes SET body = 'scribbled over' WHERE id = '{n0}';
             DELETE FROM notes WHERE id = '{n1}';
             UPDATE notes SET title = 'Pump 3 (renamed on B)', title_stamp = '{late}'
                 WHERE id = '{n2}';
             DELETE FROM outbox WHERE entity_id = '{only_on_b}';",
            n0 = notes[0],
            n1 = notes[1],
            n2 = notes[2],
        ))
        .expect("damage B");

    // The doctor names each note and what is wrong with it; the exit code says so.
    let (code, report) = doctor(b, &[]);
    assert_eq!(code, 12, "{report}");
    let mut expected = vec![
        (notes[0].clone(), "differs".to_owned()),
        (notes[1].clone(), "missing_on_device".to_owned()),
        (notes[2].clone(), "differs".to_owned()),
        (notes[4].clone(), "purged_on_server".to_owned()),
        (only_on_b.clone(), "missing_on_server".to_owned()),
    ];
    expected.sort();
    assert_eq!(problems(&report["diagnosis"]), expected);
    let out = outpost(b, &["doctor"]);
    assert_eq!(out.status.code(), Some(12));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains(&format!("note {} ", notes[1])), "{human}");
    assert!(human.contains("missing on this device"), "{human}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outpost doctor --repair"), "{err}");

    // Repair: rewritten from the server, the purged note removed, B's own changes sent.
    let (code, report) = doctor(b, &["--repair"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["repair"]["rewritten"], 3, "{report}");
    assert_eq!(report["repair"]["removed"], 1, "{report}");
    assert_eq!(report["repair"]["requeued"], 2, "{report}");
    assert_eq!(report["after"]["differences"], serde_json::json!([]));
    let show = |dir: &Path, id: &str| json(dir, &["note", "show", id]);
    assert_eq!(show(b, &notes[0])["body"], "Checked valve 1.");
    assert_eq!(show(b, &notes[1])["title"], "Pump 2");
    assert_eq!(show(b, &notes[2])["title"], "Pump 3 (renamed on B)");
    assert_eq!(show(b, &notes[2])["sync_state"], "synced");
    let gone = outpost(b, &["note", "show", &notes[4]]);
    assert_eq!(gone.status.code(), Some(3), "the purged note is gone again");

    // What only B had reached the server: A gets it, and A agrees with the server too.
    ok(a, &["sync"]);
    assert_eq!(show(a, &only_on_b)["body"], "never queued");
    assert_eq!(show(a, &notes[2])["title"], "Pump 3 (renamed on B)");
    let (code, report) = doctor(a, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["diagnosis"]["server"]["notes"], 5);
    assert_eq!(report["diagnosis"]["device"]["notes"], 5);
}
