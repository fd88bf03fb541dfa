//! `outpost-server audit` against a real database on every backend: a server after retries
//! and duplicates counts each note once (exit 0); a note stored again under a new id and a
//! mutation handled under two numbers are named (exit 3); the storage a running server holds
//! audits alike.

mod common;

use common::{Backend, Device, TestServer};
use outpost_protocol::NoteId;
use outpost_server::audit::Audit;
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::SqliteStorage;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;

backends!(an_audit_counts_each_note_once_and_names_what_is_doubled);

/// Where the audit looks: `--data-dir DIR` or `--database-url URL`.
enum Db {
    Dir(tempfile::TempDir),
    Url(String),
}

impl Db {
    async fn new(backend: Backend) -> (Db, Arc<dyn Storage>) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("dir");
                let storage = SqliteStorage::open(dir.path()).expect("open");
                (Db::Dir(dir), Arc::new(storage))
            }
            Backend::Postgres => {
                let url = common::database_url(backend).await;
                let storage = PgStorage::connect(&url).await.expect("connect");
                (Db::Url(url), Arc::new(storage))
            }
        }
    }

    /// Runs `outpost-server audit --json` on it: (exit code, the audit, the text version).
    fn audit(&self) -> (i32, Value, String) {
        let run = |json: bool| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_outpost-server"));
            cmd.arg("audit")
                .env_remove("OUTPOST_SERVER_DATA_DIR")
                .env_remove("OUTPOST_DATABASE_URL");
            match self {
                Db::Dir(dir) => cmd.arg("--data-dir").arg(dir.path()),
                Db::Url(url) => cmd.arg("--database-url").arg(url),
            };
            if json {
                cmd.arg("--json");
            }
            let out = cmd.output().expect("run outpost-server audit");
            assert!(
                out.stderr.is_empty() || out.status.code() != Some(1),
                "audit failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8(out.stdout).expect("utf-8"),
            )
        };
        let (code, json) = run(true);
        let (text_code, text) = run(false);
        assert_eq!(code, text_code, "same verdict with and without --json");
        let audit = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        (code, audit, text)
    }

    /// Runs SQL on the database behind the server's back (the damage an audit must see).
    async fn tamper(&self, sql: &str) {
        match self {
            Db::Dir(dir) => {
                let conn = rusqlite::Connection::open(
                    dir.path().join(outpost_server::storage::sqlite::DB_FILE),
                )
                .expect("open");
                conn.execute_batch(sql).expect("tamper");
            }
            Db::Url(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                let driver = tokio::spawn(connection);
                client.batch_execute(sql).await.expect("tamper");
                drop(client);
                let _ = driver.await;
            }
        }
    }
}

fn account<'a>(audit: &'a Value, email: &str) -> &'a Value {
    audit["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["email"] == email)
        .unwrap_or_else(|| panic!("no account {email} in {audit}"))
}

async fn an_audit_counts_each_note_once_and_names_what_is_doubled(backend: Backend) {
    let (db, storage) = Db::new(backend).await;
    let server = TestServer::start_on(storage.clone(), None).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let pump = NoteId::new();
    let batch = vec![
        ann.put(
            pump,
            &[("title", json!("Pump 4")), ("body", json!("seal leaking"))],
            None,
        ),
        ann.put(NoteId::new(), &[("title", json!("Pump 5"))], None),
        // Two empty notes are not "the same note twice".
        ann.put(NoteId::new(), &[("title", json!(""))], None),
        ann.put(NoteId::new(), &[("title", json!(""))], None),
    ];
    let first_mutation = batch[0].id;
    ann.push(batch.clone()).await;
    // The reply was lost, the device sends the batch again: duplicates, nothing doubled.
    let again = ann.push(batch).await;
    assert!(
        again
            .results
            .iter()
            .all(|r| matches!(r.outcome, outpost_protocol::api::Outcome::Duplicate { .. }))
    );
    let trashed = ann.put(pump, &[("deleted", json!(true))], Some(1));
    ann.push(vec![trashed]).await;
    // The same text in another account is someone else's note.
    let mut bo = Device::register(&server, "bo@example.org").await;
    let copy = bo.put(
        NoteId::new(),
        &[("title", json!("Pump 4")), ("body", json!("seal leaking"))],
        None,
    );
    bo.push(vec![copy]).await;

    let (code, audit, text) = db.audit();
    assert_eq!(code, 0, "{text}");
    assert_eq!(audit["clean"], true);
    let a = account(&audit, "ann@example.org");
    assert_eq!((&a["notes"], &a["in_trash"]), (&json!(3), &json!(1)), "{a}");
    assert_eq!(account(&audit, "bo@example.org")["notes"], 1);
    assert!(text.contains("each note counted once"), "{text}");

    // A create applied again under a new id, and a mutation handled under a second number.
    let doubled = NoteId::new();
    db.tamper(&format!(
        "INSERT INTO records (account_id, entity, entity_id, version, body_version, cursor,
             purged, fields, updated_ms)
         SELECT account_id, entity, '{doubled}', version, body_version,
             (SELECT max(cursor) + 1 FROM records), purged, fields, updated_ms
         FROM records WHERE entity_id = '{pump}';
         INSERT INTO results (account_id, client_id, number, mutation_id, outcome)
         SELECT account_id, client_id, number + 1000, mutation_id, outcome
         FROM results WHERE mutation_id = '{first_mutation}';"
    ))
    .await;
    let (code, audit, text) = db.audit();
    assert_eq!(code, 3, "{text}");
    assert_eq!(audit["clean"], false);
    let a = account(&audit, "ann@example.org");
    let mut ids = vec![pump.to_string(), doubled.to_string()];
    ids.sort();
    assert_eq!(
        a["same_content"],
        json!([{ "title": "Pump 4", "ids": ids }]),
        "{a}"
    );
    assert_eq!(
        a["mutations_handled_twice"][0]["mutation_id"],
        first_mutation.to_string()
    );
    assert_eq!(account(&audit, "bo@example.org")["same_content"], json!([]));
    assert!(
        text.contains(&format!("mutation {first_mutation} was handled 2 times")),
        "{text}"
    );
    assert!(text.contains("something is doubled"), "{text}");
    // The storage a server runs on audits alike, through the `Storage` trait.
    let live = Audit::of(storage.as_ref())
        .await
        .expect("audit the running storage");
    assert_eq!(serde_json::to_value(&live).expect("to JSON"), audit);
}

#[test]
fn an_audit_of_a_directory_without_a_server_database_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_outpost-server"))
        .args(["audit", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !dir.path()
            .join(outpost_server::storage::sqlite::DB_FILE)
            .exists(),
        "an audit creates nothing"
    );
}
