//! Seeds a data dir with notes through the core: `seed_notes DIR TITLE...`.
//!
//! The real-window test uses it to start the app on a store that already has notes. It goes
//! through the same `Store` API as the app, so the notes are real (outbox entries and all).

use std::process::ExitCode;

use outpost_core::{NoteDraft, Store};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: seed_notes DIR TITLE...");
        return ExitCode::from(2);
    };
    let result = Store::open(&dir).and_then(|store| {
        for title in args {
            store.create_note(NoteDraft {
                title: title.to_string_lossy().into_owned(),
                body: format!("Seeded for the window test: {}", title.to_string_lossy()),
                ..Default::default()
            })?;
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("seed_notes: {err} ({})", err.code());
            ExitCode::FAILURE
        }
    }
}
