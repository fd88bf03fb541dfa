//! The server's half of the sync doctor through real HTTP, on every backend: the sums match
//! what a client computes from the records it pulled, the entries name every record of a bucket
//! (tombstones too), and fetching records never crosses accounts (S3).

mod common;

use common::{Backend, Device, TestServer};
use outpost_protocol::NoteId;
use outpost_protocol::api::{Cursor, Version};
use outpost_protocol::digest::{self, DigestResponse, EntriesResponse, FetchResponse, Summary};
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::SqliteStorage;
use serde_json::json;
use std::sync::Arc;

backends!(
    the_sums_match_what_a_client_computes_from_its_pull,
    entries_name_each_record_of_a_bucket_and_tombstones,
    fetching_records_never_crosses_accounts,
    the_running_digest_is_a_full_pass_also_after_an_upgrade,
    attachment_records_sync_and_the_running_digest_counts_them,
);

async fn get_digest(device: &Device) -> DigestResponse {
    let resp = device
        .request(reqwest::Method::GET, "/v1/sync/digest")
        .send()
        .await
        .expect("digest");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("digest json")
}

async fn post<T: serde::de::DeserializeOwned>(
    device: &Device,
    path: &str,
    body: serde_json::Value,
) -> T {
    let resp = device
        .request(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("json")
}

async fn the_sums_match_what_a_client_computes_from_its_pull(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let notes: Vec<NoteId> = (0..40).map(|_| NoteId::new()).collect();
    let batch = notes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            ann.put(
                *n,
                &[
                    ("title", json!(format!("Note {i}"))),
                    ("body", json!("text")),
                ],
                None,
            )
        })
        .collect();
    ann.push(batch).await;
    // A second version of one note and one in Trash.
    let edit = ann.put(notes[0], &[("body", json!("edited"))], Some(1));
    let trash = ann.put(notes[1], &[("deleted", json!(true))], Some(1));
    ann.push(vec![edit, trash]).await;

    let server_sums = get_digest(&ann).await;
    let mut mine = Summary::new();
    let (records, _) = ann.pull_all(Cursor(0)).await;
    for rec in &records {
        let trash = rec
            .fields
            .get("deleted")
            .is_some_and(|c| c.value == json!(true));
        let d = digest::record_digest(rec.entity, &rec.id, rec.version, &rec.fields);
        mine.add(rec.entity, &rec.id, d, trash);
    }
    assert_eq!(server_sums.counts.notes, 39);
    assert_eq!(server_sums.counts.notes_in_trash, 1);
    assert_eq!(server_sums.counts, mine.counts);
    assert!(
        mine.differing(&server_sums.buckets).is_empty(),
        "a client with every record agrees with the server"
    );

    // A client that missed the last edit sees exactly that note's bucket differ.
    let mut stale = Summary::new();
    for rec in &records {
        let version = if rec.id == notes[0].to_string() {
            Version(1)
        } else {
            rec.version
        };
        let trash = rec
            .fields
            .get("deleted")
            .is_some_and(|c| c.value == json!(true));
        let d = digest::record_digest(rec.entity, &rec.id, version, &rec.fields);
        stale.add(rec.entity, &rec.id, d, trash);
    }
    assert_eq!(
        stale.differing(&server_sums.buckets),
        vec![digest::bucket(
            outpost_protocol::Entity::Note,
            &notes[0].to_string()
        )]
    );
}

async fn entries_name_each_record_of_a_bucket_and_tombstones(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let kept = NoteId::new();
    let purged = NoteId::new();
    let a = ann.put(kept, &[("title", json!("kept"))], None);
    let b = ann.put(purged, &[("title", json!("gone"))], None);
    ann.push(vec![a, b]).await;
    let mut purge = ann.put(purged, &[], Some(1));
    purge.name = outpost_protocol::mutation::names::NOTE_PURGE.into();
    ann.push(vec![purge]).await;

    let sums = get_digest(&ann).await;
    assert_eq!(sums.counts.notes, 1);
    assert_eq!(sums.tombstones, 1);
    let buckets: Vec<u8> = (0..=255).collect();
    let all: EntriesResponse = post(
        &ann,
        "/v1/sync/digest/entries",
        json!({ "buckets": buckets }),
    )
    .await;
    assert_eq!(all.entries.len(), 2);
    let gone = all
        .entries
        .iter()
        .find(|e| e.id == purged.to_string())
        .expect("the tombstone is listed");
    assert!(gone.purged && gone.digest.is_none());
    let live = all
        .entries
        .iter()
        .find(|e| e.id == kept.to_string())
        .expect("the live note is listed");
    assert!(!live.purged && live.digest.is_some());

    // Only the buckets asked for.
    let one = digest::bucket(outpost_protocol::Entity::Note, &kept.to_string());
    let some: EntriesResponse =
        post(&ann, "/v1/sync/digest/entries", json!({ "buckets": [one] })).await;
    assert!(
        some.entries
            .iter()
            .all(|e| digest::bucket(e.entity, &e.id) == one)
    );
    assert!(some.entries.iter().any(|e| e.id == kept.to_string()));
}

async fn fetching_records_never_crosses_accounts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let bob = Device::register(&server, "bob@example.org").await;
    let note = NoteId::new();
    let m = ann.put(note, &[("title", json!("Ann's"))], None);
    ann.push(vec![m]).await;
    let keys = json!({ "keys": [{ "entity": "note", "id": note.to_string() }] });
    let mine: FetchResponse = post(&ann, "/v1/sync/records", keys.clone()).await;
    assert_eq!(mine.records.len(), 1);
    assert_eq!(mine.records[0].fields["title"].value, json!("Ann's"));
    let theirs: FetchResponse = post(&bob, "/v1/sync/records", keys).await;
    assert!(theirs.records.is_empty(), "Bob cannot read Ann's note");
    let bob_sums = get_digest(&bob).await;
    assert_eq!(bob_sums.counts.notes, 0);

    let too_many: Vec<_> = (0..=digest::MAX_FETCH_KEYS)
        .map(|_| json!({ "entity": "note", "id": NoteId::new().to_string() }))
        .collect();
    let resp = ann
        .request(reqwest::Method::POST, "/v1/sync/records")
        .json(&json!({ "keys": too_many }))
        .send()
        .await
        .expect("post");
    let (code, message) = common::error_of(resp, 400).await;
    assert_eq!(code, "bad_request");
    assert!(message.contains("1000"), "{message}");
}

/// What a client computes from every record it pulls (the doctor's full pass).
async fn full_pass(device: &Device) -> (Summary, u64) {
    let (records, _) = device.pull_all(Cursor(0)).await;
    let mut sums = Summary::new();
    let mut tombstones = 0;
    for rec in &records {
        if rec.purged {
            tombstones += 1;
            continue;
        }
        let trash = rec
            .fields
            .get("deleted")
            .is_some_and(|c| c.value == json!(true));
        let d = digest::record_digest(rec.entity, &rec.id, rec.version, &rec.fields);
        sums.add(rec.entity, &rec.id, d, trash);
    }
    (sums, tombstones)
}

async fn assert_running_equals_full(device: &Device, when: &str) {
    let running = get_digest(device).await;
    let (full, tombstones) = full_pass(device).await;
    assert_eq!(running.counts, full.counts, "{when}");
    assert_eq!(running.tombstones, tombstones, "{when}");
    assert!(full.differing(&running.buckets).is_empty(), "{when}");
}

/// The digest each push keeps up to date equals a pass over every record, after creates,
/// edits, a conflict (nothing written), Trash, a purge and a preference; and a database from
/// before the running digest (schema 2) is summed up when the server upgrades it.
async fn the_running_digest_is_a_full_pass_also_after_an_upgrade(backend: Backend) {
    let (storage, dir, url): (Arc<dyn Storage>, _, _) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("dir");
            let storage = SqliteStorage::open(dir.path()).expect("open");
            (Arc::new(storage), Some(dir), None)
        }
        Backend::Postgres => {
            let url = common::database_url(backend).await;
            let storage = PgStorage::connect(&url).await.expect("connect");
            (Arc::new(storage), None, Some(url))
        }
    };
    let server = TestServer::start_on(storage, dir).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let notes: Vec<NoteId> = (0..30).map(|_| NoteId::new()).collect();
    let batch = notes
        .iter()
        .map(|n| ann.put(*n, &[("title", json!("Pump")), ("body", json!("a"))], None))
        .collect();
    ann.push(batch).await;
    assert_running_equals_full(&ann, "creates").await;
    let edit = ann.put(notes[0], &[("body", json!("b"))], Some(1));
    let stale = ann.put(notes[0], &[("body", json!("c"))], Some(1));
    let trash = ann.put(notes[1], &[("deleted", json!(true))], Some(1));
    let mut purge = ann.put(notes[2], &[], Some(1));
    purge.name = outpost_protocol::mutation::names::NOTE_PURGE.into();
    let mut pref = ann.put(notes[3], &[("value", json!("dark"))], None);
    pref.entity = outpost_protocol::Entity::Pref;
    pref.entity_id = "theme".into();
    pref.name = outpost_protocol::mutation::names::PREF_PUT.into();
    ann.push(vec![edit, stale, trash, purge, pref]).await;
    assert_running_equals_full(&ann, "edits, a conflict, trash, purge, a preference").await;
    let before = get_digest(&ann).await;

    // Back to schema 2, as a server from before this change left it.
    let (storage, dir) = server.stop().await;
    drop(storage);
    let storage: Arc<dyn Storage> = match (&dir, &url) {
        (Some(dir), _) => {
            let db = rusqlite::Connection::open(
                dir.path().join(outpost_server::storage::sqlite::DB_FILE),
            )
            .expect("db");
            db.execute_batch("DROP TABLE digests; DROP TABLE blobs; PRAGMA user_version = 2;")
                .expect("downgrade");
            drop(db);
            Arc::new(SqliteStorage::open(dir.path()).expect("upgrade"))
        }
        (None, Some(url)) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let conn = tokio::spawn(conn);
            client
                .batch_execute(
                    "DROP TABLE digests; DROP TABLE blobs;
                     DELETE FROM schema_migrations WHERE version IN (3, 4);",
                )
                .await
                .expect("downgrade");
            drop(client);
            let _ = conn.await;
            Arc::new(PgStorage::connect(url).await.expect("upgrade"))
        }
        (None, None) => unreachable!("a backend has a directory or a URL"),
    };
    let server = TestServer::start_on(storage, dir).await;
    let after = get_digest(&ann_on(&ann, &server)).await;
    assert_eq!(after, before, "the upgrade sums up what was stored");
    assert_eq!(after.tombstones, 1);
    assert_eq!(after.counts.prefs, 1);
}

/// An attachment record goes through push and pull like any record, and the running digest
/// counts it (removed ones too) the way a device's full pass does.
async fn attachment_records_sync_and_the_running_digest_counts_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let note = NoteId::new();
    let photo = outpost_protocol::AttachmentId::new();
    let write = ann.put(note, &[("title", json!("Pump 3"))], None);
    let stamp = ann.stamp();
    ann.next_number += 1;
    let attach = outpost_protocol::api::Mutation::put(
        outpost_protocol::Entity::Attachment,
        photo,
        write.number.0 + 1,
    )
    .fields(
        &[
            ("note_id", json!(note)),
            ("name", json!("pump 3.jpg")),
            ("media_type", json!("image/jpeg")),
            ("size", json!(3_500_000)),
            (
                "sha256",
                json!(outpost_protocol::blobs::BlobHash::of(b"pump")),
            ),
            ("width", json!(4032)),
            ("height", json!(3024)),
            ("thumbnail", json!("data:image/jpeg;base64,/9j/4A==")),
        ],
        stamp,
    )
    .build();
    let reply = ann.push(vec![write, attach]).await;
    assert!(
        reply
            .results
            .iter()
            .all(|r| matches!(r.outcome, outpost_protocol::api::Outcome::Applied { .. })),
        "{reply:?}"
    );
    assert_running_equals_full(&ann, "a note and its photo").await;
    assert_eq!(get_digest(&ann).await.counts.attachments, 1);

    let stamp = ann.stamp();
    let number = ann.next_number;
    ann.next_number += 1;
    let remove =
        outpost_protocol::api::Mutation::put(outpost_protocol::Entity::Attachment, photo, number)
            .fields(&[("deleted", json!(true))], stamp)
            .base(Some(1))
            .build();
    ann.push(vec![remove]).await;
    assert_running_equals_full(&ann, "the photo removed").await;
    assert_eq!(get_digest(&ann).await.counts.attachments, 1);

    let laptop = Device::login(&server, "ann@example.org").await;
    let (records, _) = laptop.pull_all(Cursor(0)).await;
    let pulled = records
        .iter()
        .find(|r| r.entity == outpost_protocol::Entity::Attachment)
        .expect("the attachment is pulled");
    assert_eq!(pulled.id, photo.to_string());
    assert_eq!(pulled.fields["name"].value, json!("pump 3.jpg"));
    assert_eq!(pulled.fields["deleted"].value, json!(true));
}

/// The same device, talking to a restarted server.
fn ann_on(device: &Device, server: &TestServer) -> Device {
    Device {
        base: server.base.clone(),
        ..device.clone()
    }
}
