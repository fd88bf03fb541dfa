//! Real files, a real watcher: each test edits files as editors do and waits (with a deadline)
//! for what the store and the event stream say.

use super::*;
use crate::NoteDraft;
use std::io::Write;

/// Long enough for a loaded CI machine; a passing test returns as soon as the event is seen.
const DEADLINE: Duration = Duration::from_secs(15);

struct Setup {
    _data: tempfile::TempDir,
    _files: tempfile::TempDir,
    store: Arc<Store>,
    edits: ExternalEdits,
    events: broadcast::Receiver<ExternalEvent>,
}

fn setup() -> Setup {
    let data = tempfile::tempdir().expect("dir");
    let files = tempfile::tempdir().expect("dir");
    let store = Arc::new(Store::open(data.path()).expect("store"));
    let edits =
        ExternalEdits::start(store.clone(), files.path().join("editing")).expect("start watcher");
    let events = edits.subscribe();
    Setup {
        _data: data,
        _files: files,
        store,
        edits,
        events,
    }
}

fn note(store: &Store, title: &str, body: &str) -> NoteId {
    store
        .create_note(NoteDraft {
            title: title.into(),
            body: body.into(),
            ..Default::default()
        })
        .expect("create")
        .id
}

/// The next event, or a failure naming what was awaited.
fn next_event(events: &mut broadcast::Receiver<ExternalEvent>, what: &str) -> ExternalEvent {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match events.try_recv() {
            Ok(event) => return event,
            Err(broadcast::error::TryRecvError::Empty) => {
                assert!(
                    Instant::now() < deadline,
                    "no event within {DEADLINE:?}: {what}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("event stream: {e}"),
        }
    }
}

fn saved(id: NoteId, path: &Path) -> ExternalEvent {
    ExternalEvent {
        note_id: id,
        path: path.display().to_string(),
        outcome: ExternalOutcome::Saved,
    }
}

fn body(store: &Store, id: NoteId) -> String {
    store.get_note(id).expect("note").body
}

/// The body the note's newest outbox entry carries, if it carries one.
fn queued_body(store: &Store, id: NoteId) -> Option<String> {
    let entries = store.outbox_for(&id.to_string()).expect("outbox");
    entries
        .last()
        .and_then(|e| e.fields.get("body"))
        .and_then(|f| f.value.as_str().map(str::to_owned))
}

#[test]
fn a_save_in_place_and_a_save_by_rename_reach_the_store_and_the_outbox() {
    let mut s = setup();
    let id = note(&s.store, "Pump 4", "Seal leaking.");
    let path = s.edits.open(id).expect("open");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "Seal leaking."
    );
    assert!(
        path.file_name()
            .expect("name")
            .to_string_lossy()
            .starts_with(&format!("Pump 4-{}", &id.to_string()[..8]))
    );

    std::fs::write(&path, "Seal replaced.").expect("save in place");
    assert_eq!(next_event(&mut s.events, "in-place save"), saved(id, &path));
    assert_eq!(body(&s.store, id), "Seal replaced.");
    assert_eq!(queued_body(&s.store, id).as_deref(), Some("Seal replaced."));

    // vim and VS Code: write a new file beside it, then rename it over the old one.
    let tmp = path.with_extension("md.tmp~");
    std::fs::write(&tmp, "Seal replaced, tested at 6 bar.").expect("write temp");
    std::fs::rename(&tmp, &path).expect("rename over");
    assert_eq!(
        next_event(&mut s.events, "save by rename"),
        saved(id, &path)
    );
    assert_eq!(body(&s.store, id), "Seal replaced, tested at 6 bar.");
    assert_eq!(
        queued_body(&s.store, id).as_deref(),
        Some("Seal replaced, tested at 6 bar.")
    );
    // ...and the file keeps being watched after its inode changed.
    std::fs::write(&path, "third save").expect("save again");
    assert_eq!(
        next_event(&mut s.events, "save after rename"),
        saved(id, &path)
    );
    assert_eq!(body(&s.store, id), "third save");
}

#[test]
fn a_burst_of_writes_applies_only_the_final_text_once() {
    let mut s = setup();
    let id = note(&s.store, "Log", "v0");
    let path = s.edits.open(id).expect("open");
    for i in 0..20 {
        // An editor that truncates, then writes.
        let mut f = std::fs::File::create(&path).expect("truncate");
        f.flush().expect("flush");
        write!(f, "draft {i}").expect("write");
    }
    std::fs::write(&path, "final").expect("final write");
    assert_eq!(next_event(&mut s.events, "the burst"), saved(id, &path));
    assert_eq!(body(&s.store, id), "final");

    // The same text saved again (a second "Save" without changes) is not applied again; a
    // later change is, and it is the only other event.
    std::fs::write(&path, "final").expect("same text");
    std::thread::sleep(QUIET * 3);
    std::fs::write(&path, "after").expect("another save");
    assert_eq!(
        next_event(&mut s.events, "the later save"),
        saved(id, &path)
    );
    assert_eq!(body(&s.store, id), "after");
    assert!(s.events.try_recv().is_err(), "no other event");
}

#[test]
fn a_truncated_file_waits_for_the_text_that_follows() {
    let mut s = setup();
    let id = note(&s.store, "Slow editor", "old text");
    let path = s.edits.open(id).expect("open");
    let mut f = std::fs::File::create(&path).expect("truncate");
    // Longer than the quiet period, shorter than the grace for an emptied file.
    std::thread::sleep(QUIET + GRACE / 3);
    write!(f, "new text").expect("write");
    drop(f);
    assert_eq!(next_event(&mut s.events, "the slow save"), saved(id, &path));
    assert_eq!(body(&s.store, id), "new text");
    assert!(
        s.events.try_recv().is_err(),
        "the empty file was never applied"
    );

    // A file the user really empties is applied, after the grace.
    std::fs::write(&path, "").expect("empty it");
    assert_eq!(
        next_event(&mut s.events, "the emptied file"),
        saved(id, &path)
    );
    assert_eq!(body(&s.store, id), "");
}

#[test]
fn a_too_large_or_binary_file_is_reported_and_the_note_left_alone() {
    let mut s = setup();
    let id = note(&s.store, "Big", "small");
    let path = s.edits.open(id).expect("open");
    std::fs::write(&path, vec![b'x'; MAX_BODY_BYTES + 1]).expect("write");
    let event = next_event(&mut s.events, "the too large file");
    let ExternalOutcome::Error { code, message } = event.outcome else {
        panic!("expected an error, got {event:?}");
    };
    assert_eq!(code, "too_large");
    assert!(message.contains("the note was not changed"), "{message}");
    assert_eq!(body(&s.store, id), "small");

    std::fs::write(&path, b"caf\xe9").expect("write latin-1");
    let event = next_event(&mut s.events, "the binary file");
    assert!(
        matches!(&event.outcome, ExternalOutcome::Error { code, .. } if code == "not_text"),
        "{event:?}"
    );
    std::fs::write(&path, "small, then fixed").expect("write");
    assert_eq!(next_event(&mut s.events, "the next save"), saved(id, &path));
    assert_eq!(body(&s.store, id), "small, then fixed");
}

#[test]
fn a_save_to_a_purged_note_is_reported_and_the_watcher_carries_on() {
    let mut s = setup();
    let gone = note(&s.store, "Gone", "text");
    let kept = note(&s.store, "Kept", "text");
    let gone_path = s.edits.open(gone).expect("open");
    let kept_path = s.edits.open(kept).expect("open");
    s.store.trash_note(gone).expect("trash");
    s.store.purge_note(gone).expect("purge");

    std::fs::write(&gone_path, "edited after the purge").expect("write");
    let event = next_event(&mut s.events, "the purged note's save");
    assert_eq!(event.note_id, gone);
    let json = serde_json::to_value(&event.outcome).expect("json");
    assert_eq!(json["kind"], "error");
    assert_eq!(json["code"], "not_found");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the note was deleted in Outpost")),
        "{json}"
    );

    std::fs::write(&kept_path, "still working").expect("write");
    assert_eq!(
        next_event(&mut s.events, "the other note's save"),
        saved(kept, &kept_path)
    );
    assert_eq!(
        serde_json::to_value(ExternalOutcome::Saved).expect("json"),
        serde_json::json!({"kind": "saved"})
    );
}

#[test]
fn two_notes_with_the_same_title_get_two_files_and_a_closed_one_is_left_alone() {
    let mut s = setup();
    let a = note(&s.store, "Meeting", "a");
    let b = note(&s.store, "Meeting", "b");
    let path_a = s.edits.open(a).expect("open a");
    let path_b = s.edits.open(b).expect("open b");
    assert_ne!(path_a, path_b);
    assert_eq!(s.edits.open(a).expect("open a again"), path_a);
    assert_eq!(std::fs::read_to_string(&path_b).expect("read"), "b");

    std::fs::write(&path_b, "b edited").expect("write");
    assert_eq!(next_event(&mut s.events, "b's save"), saved(b, &path_b));
    assert_eq!(
        (body(&s.store, a), body(&s.store, b)),
        ("a".into(), "b edited".into())
    );

    s.edits.close(b);
    std::fs::write(&path_b, "after close").expect("write");
    std::fs::write(&path_a, "a edited").expect("write");
    assert_eq!(next_event(&mut s.events, "a's save"), saved(a, &path_a));
    assert_eq!(
        body(&s.store, b),
        "b edited",
        "a closed file is not applied"
    );
}

#[test]
fn it_can_be_shared_between_threads_and_dropped_promptly() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ExternalEdits>();
    let s = setup();
    let started = Instant::now();
    drop(s.edits);
    assert!(started.elapsed() < Duration::from_secs(5));
}
