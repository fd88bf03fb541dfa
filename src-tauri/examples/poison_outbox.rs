//! Makes the queued change of one note a change the server refuses (a tag far over the
//! server's limit), as a buggy older build might have queued it: `poison_outbox DIR NOTE_ID`.
//!
//! The real-window test uses it to get a dead letter the honest way: the server refuses it, the
//! app shows it, the user fixes the note and retries. It writes the database directly, beside
//! the running app, as only a test tool may.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, note] = args.as_slice() else {
        eprintln!("usage: poison_outbox DIR NOTE_ID");
        return ExitCode::from(2);
    };
    let db = std::path::Path::new(dir).join("outpost.db");
    let result = rusqlite::Connection::open(&db).and_then(|conn| {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute(
            "UPDATE outbox SET fields = json_set(fields, '$.tags.value', json_array(?1))
             WHERE entity_id = ?2 AND state = 'queued' AND sent = 0",
            [&"t".repeat(200), note],
        )
    });
    match result {
        Ok(1) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!(
                "poison_outbox: {n} unsent entries of note {note} in {}",
                db.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("poison_outbox: {}: {err}", db.display());
            ExitCode::FAILURE
        }
    }
}
