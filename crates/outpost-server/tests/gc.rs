//! Collecting attachments' bytes (`blobs::collect`), on both backends, with a real server and
//! real files: a blob goes only once no live attachment of its account has named it for the
//! whole grace, and nothing a device could still upload or need goes with it. Sweeps are run
//! at chosen times (`now_ms`), so a week of grace passes without sleeping.

mod common;

use common::blobs::{bytes, path, status};
use common::process::{place, register, start};
use common::{Backend, Device, TestServer, error_of};
use outpost_protocol::api::{Mutation, Outcome};
use outpost_protocol::blobs::{BlobHash, BlobStatus, HEADER_CHUNK_SHA256};
use outpost_protocol::{AttachmentId, Entity, NoteId};
use outpost_server::blobs::collect::{CollectReport, DAY_MS};
use outpost_server::blobs::{Blobs, DEFAULT_CHUNK_BYTES};
use outpost_server::clock::now_i64;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

backends!(
    a_blob_a_live_attachment_names_is_never_collected,
    a_removed_attachments_blob_stays_for_the_grace_then_goes,
    a_blob_named_again_within_the_grace_stays_and_its_grace_starts_over,
    an_abandoned_upload_goes_after_the_grace_and_starts_over_from_zero,
    another_accounts_attachment_does_not_keep_this_accounts_copy,
    an_upload_begun_again_after_the_sweep_keeps_its_bytes,
    collect_blobs_beside_a_running_server_removes_what_the_grace_let_go,
);

const CHUNK: usize = DEFAULT_CHUNK_BYTES as usize;
/// The server's default grace: a week.
const GRACE: i64 = 7 * DAY_MS;

/// Sends `data[from..to]` in chunks, each acknowledged.
async fn send(device: &Device, data: &[u8], from: usize, to: usize) -> BlobStatus {
    let hash = BlobHash::of(data);
    let mut offset = from;
    let mut last = None;
    while offset < to {
        let end = (offset + CHUNK).min(to);
        let chunk = &data[offset..end];
        let resp = device
            .request(Method::PATCH, &format!("{}?offset={offset}", path(&hash)))
            .header(HEADER_CHUNK_SHA256, BlobHash::of(chunk).as_str())
            .header("content-type", "application/octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(
            resp.status(),
            200,
            "chunk at {offset}: {}",
            resp.text().await.unwrap_or_default()
        );
        last = Some(resp.json::<BlobStatus>().await.expect("status"));
        offset = end;
    }
    last.expect("at least one chunk")
}

/// Uploads the whole of `data`.
async fn upload(device: &Device, data: &[u8]) {
    let s = status(device, &BlobHash::of(data), data.len()).await;
    assert_eq!((s.received, s.complete), (0, false), "a new upload");
    assert!(send(device, data, 0, data.len()).await.complete);
}

/// Downloads the blob and checks it is `data`, byte for byte.
async fn assert_downloads(device: &Device, data: &[u8]) {
    let resp = device
        .request(Method::GET, &path(&BlobHash::of(data)))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), 200, "the blob can be fetched");
    let body = resp.bytes().await.expect("body");
    assert!(body.as_ref() == data, "the blob comes back byte for byte");
}

/// A device asking for the blob is told the server does not have it.
async fn assert_gone(device: &Device, hash: &BlobHash) {
    let resp = device
        .request(Method::GET, &path(hash))
        .send()
        .await
        .expect("download");
    let (code, _) = error_of(resp, 404).await;
    assert_eq!(code, "not_found");
}

/// Every file under `dir` whose name is the blob's (`<sha256>`, or `<sha256>.part` of an
/// upload in progress).
fn files_of(dir: &Path, hash: &BlobHash) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(hash.as_str()))
            {
                found.push(p);
            }
        }
    }
    found
}

fn blob_dir(server: &TestServer) -> PathBuf {
    server.dir().expect("a temp dir").join("blobs")
}

fn blobs(server: &TestServer) -> Arc<Blobs> {
    server.blobs.clone().expect("the server keeps blobs")
}

/// One collection at `now` with a week of grace, through the server's own [`Blobs`].
async fn collect(server: &TestServer, now: i64) -> CollectReport {
    blobs(server)
        .collect(server.storage.as_ref(), now, GRACE)
        .await
        .expect("collect")
}

fn assert_applied(reply: &outpost_protocol::api::PushResponse) {
    assert!(
        reply
            .results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Applied { .. })),
        "{reply:?}"
    );
}

/// The device attaches the file `data` to a new note, as the app does: the note and the
/// attachment record in one push. The attachment's id.
async fn attach(device: &mut Device, data: &[u8]) -> AttachmentId {
    let note = NoteId::new();
    let write = device.put(note, &[("title", json!("Pump 3"))], None);
    let id = AttachmentId::new();
    let stamp = device.stamp();
    let number = device.next_number;
    device.next_number += 1;
    let attach = Mutation::put(Entity::Attachment, id, number)
        .fields(
            &[
                ("note_id", json!(note)),
                ("name", json!("pump 3.jpg")),
                ("media_type", json!("image/jpeg")),
                ("size", json!(data.len())),
                ("sha256", json!(BlobHash::of(data))),
                ("width", json!(4032)),
                ("height", json!(3024)),
                ("thumbnail", json!("")),
                ("deleted", json!(false)),
            ],
            stamp,
        )
        .build();
    assert_applied(&device.push(vec![write, attach]).await);
    id
}

/// The device removes the attachment from its note (`deleted: true`), or puts it back, through
/// the normal push.
async fn set_deleted(device: &mut Device, id: AttachmentId, deleted: bool) {
    let stamp = device.stamp();
    let number = device.next_number;
    device.next_number += 1;
    let put = Mutation::put(Entity::Attachment, id, number)
        .fields(&[("deleted", json!(deleted))], stamp)
        .build();
    assert_applied(&device.push(vec![put]).await);
}

async fn used_bytes(device: &Device) -> u64 {
    let resp = device
        .request(Method::GET, "/v1/blobs")
        .send()
        .await
        .expect("limits");
    assert_eq!(resp.status(), 200);
    resp.json::<outpost_protocol::blobs::Limits>()
        .await
        .expect("limits")
        .used_bytes
}

async fn a_blob_a_live_attachment_names_is_never_collected(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let photo = bytes(CHUNK + 300, 1);
    upload(&ann, &photo).await;
    attach(&mut ann, &photo).await;
    // The same photo in a second note, removed from that one: the first still names it.
    let copy = attach(&mut ann, &photo).await;
    set_deleted(&mut ann, copy, true).await;

    let t0 = now_i64();
    for now in [t0, t0 + GRACE + 1, t0 + 10 * GRACE, t0 + 100 * GRACE] {
        let report = collect(&server, now).await;
        assert_eq!(report, CollectReport::default(), "nothing to do at {now}");
        assert_downloads(&ann, &photo).await;
    }
    assert_eq!(used_bytes(&ann).await, photo.len() as u64);
    // Nor with no grace at all.
    for now in [t0 + 1, t0 + 2] {
        let report = blobs(&server)
            .collect(server.storage.as_ref(), now, 0)
            .await
            .expect("collect");
        assert_eq!(report, CollectReport::default());
    }
    assert_downloads(&ann, &photo).await;
}

async fn a_removed_attachments_blob_stays_for_the_grace_then_goes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    // A note whose text holds U+0000, which PostgreSQL's jsonb refuses: the sweep reads
    // attachments' fields only, and works all the same.
    let odd = ann.put(NoteId::new(), &[("title", json!("nul \u{0} here"))], None);
    assert_applied(&ann.push(vec![odd]).await);
    let photo = bytes(2 * CHUNK + 17, 2);
    let hash = BlobHash::of(&photo);
    upload(&ann, &photo).await;
    let id = attach(&mut ann, &photo).await;
    set_deleted(&mut ann, id, true).await;

    let t0 = now_i64();
    let first = collect(&server, t0).await;
    assert_eq!(
        (first.marked, first.blobs, first.bytes),
        (1, 0, 0),
        "found unreferenced, kept"
    );
    assert_downloads(&ann, &photo).await;
    // Any sweep within the grace keeps it (and does not move its grace).
    for now in [t0 + DAY_MS, t0 + GRACE - 1, t0 + GRACE] {
        assert_eq!(
            collect(&server, now).await,
            CollectReport::default(),
            "{now}"
        );
        assert_downloads(&ann, &photo).await;
    }
    assert_eq!(used_bytes(&ann).await, photo.len() as u64);

    let after = collect(&server, t0 + GRACE + 1).await;
    assert_eq!(
        (after.blobs, after.bytes, after.partial, after.kept),
        (1, photo.len() as u64, 0, 0)
    );
    assert_gone(&ann, &hash).await;
    assert_eq!(
        files_of(&blob_dir(&server), &hash),
        Vec::<PathBuf>::new(),
        "its bytes are gone from the disk"
    );
    assert_eq!(
        used_bytes(&ann).await,
        0,
        "the account's quota has the bytes back"
    );
    // A device that still has the file and asks is told to send it from the start.
    let s = status(&ann, &hash, photo.len()).await;
    assert_eq!((s.received, s.complete), (0, false));
    assert_eq!(
        collect(&server, t0 + GRACE + 2).await,
        CollectReport::default(),
        "a fresh upload is not touched"
    );
}

async fn a_blob_named_again_within_the_grace_stays_and_its_grace_starts_over(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let photo = bytes(CHUNK / 2, 3);
    upload(&ann, &photo).await;
    let id = attach(&mut ann, &photo).await;
    set_deleted(&mut ann, id, true).await;
    let t0 = now_i64();
    assert_eq!(collect(&server, t0).await.marked, 1);

    // Undo: the attachment is back in its note before the grace ends.
    set_deleted(&mut ann, id, false).await;
    let t1 = t0 + GRACE + 1;
    let report = collect(&server, t1).await;
    assert_eq!(
        (report.cleared, report.blobs, report.bytes),
        (1, 0, 0),
        "its mark cleared, nothing removed"
    );
    assert_downloads(&ann, &photo).await;

    // Removed again: its grace counts from now, not from the first removal.
    set_deleted(&mut ann, id, true).await;
    assert_eq!(collect(&server, t1 + 1).await.marked, 1);
    assert_eq!(collect(&server, t1 + GRACE).await, CollectReport::default());
    assert_downloads(&ann, &photo).await;
    let report = collect(&server, t1 + GRACE + 2).await;
    assert_eq!((report.blobs, report.bytes), (1, photo.len() as u64));
    assert_gone(&ann, &BlobHash::of(&photo)).await;
}

async fn an_abandoned_upload_goes_after_the_grace_and_starts_over_from_zero(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let video = bytes(3 * CHUNK, 4);
    let hash = BlobHash::of(&video);
    attach(&mut ann, &video).await;
    let before = now_i64();
    status(&ann, &hash, video.len()).await;
    send(&ann, &video, 0, CHUNK).await;
    let after = now_i64();
    // The device goes away with a third of the file sent.

    // Within the grace of its last chunk it waits, however many sweeps run.
    for now in [after, before + GRACE - 1] {
        assert_eq!(collect(&server, now).await, CollectReport::default());
    }
    let s = status(&ann, &hash, video.len()).await;
    assert_eq!(
        (s.received, s.complete),
        (CHUNK as u64, false),
        "the device could go on from where it stopped"
    );
    assert_eq!(files_of(&blob_dir(&server), &hash).len(), 1, "its .part");

    // Once the grace has passed since its last chunk (the status above does not move it), it
    // goes, even though an attachment names it.
    let report = collect(&server, after + GRACE + 1).await;
    assert_eq!(
        (report.partial, report.bytes, report.blobs),
        (1, CHUNK as u64, 0)
    );
    assert_eq!(
        files_of(&blob_dir(&server), &hash),
        Vec::<PathBuf>::new(),
        "the .part is gone"
    );
    assert_eq!(used_bytes(&ann).await, 0);

    // The device comes back: it starts over, and the blob arrives whole.
    let s = status(&ann, &hash, video.len()).await;
    assert_eq!((s.received, s.complete, s.chunks), (0, false, 0));
    assert!(send(&ann, &video, 0, video.len()).await.complete);
    assert_downloads(&ann, &video).await;
}

async fn another_accounts_attachment_does_not_keep_this_accounts_copy(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let mut bob = Device::register(&server, "bob@example.org").await;
    // Both attach the same photo (a picture shared in a chat): one copy each.
    let photo = bytes(CHUNK + 5, 5);
    let hash = BlobHash::of(&photo);
    upload(&ann, &photo).await;
    upload(&bob, &photo).await;
    let anns = attach(&mut ann, &photo).await;
    attach(&mut bob, &photo).await;
    set_deleted(&mut ann, anns, true).await;

    let t0 = now_i64();
    assert_eq!(collect(&server, t0).await.marked, 1, "Ann's copy only");
    let report = collect(&server, t0 + GRACE + 1).await;
    assert_eq!((report.blobs, report.bytes), (1, photo.len() as u64));
    assert_gone(&ann, &hash).await;
    assert_downloads(&bob, &photo).await;
    assert_eq!(used_bytes(&ann).await, 0);
    assert_eq!(used_bytes(&bob).await, photo.len() as u64);
    assert_eq!(
        files_of(&blob_dir(&server), &hash).len(),
        1,
        "Bob's copy is on disk"
    );
}

async fn an_upload_begun_again_after_the_sweep_keeps_its_bytes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let scan = bytes(2 * CHUNK + 99, 6);
    let hash = BlobHash::of(&scan);
    upload(&ann, &scan).await;
    let id = attach(&mut ann, &scan).await;
    set_deleted(&mut ann, id, true).await;
    let t0 = now_i64();
    assert_eq!(collect(&server, t0).await.marked, 1);

    // A collection's two steps, with a device in between: the sweep deletes the row...
    let sweep = server
        .storage
        .sweep_blobs(t0 + GRACE + 1, GRACE)
        .await
        .expect("sweep");
    assert_eq!(sweep.removed.len(), 1);
    // ...then Ann puts the scan back in its note, and her device (which re-checks a blob when
    // its attachment is sent) begins the upload again and sends a chunk...
    set_deleted(&mut ann, id, false).await;
    let s = status(&ann, &hash, scan.len()).await;
    assert_eq!((s.received, s.complete), (0, false));
    send(&ann, &scan, 0, CHUNK).await;
    // ...and only then are the swept bytes removed: they are the new upload's now, and stay.
    let report = blobs(&server)
        .remove_swept(server.storage.as_ref(), &sweep.removed)
        .await;
    let done = send(&ann, &scan, CHUNK, scan.len()).await;
    assert!(done.complete, "the upload goes on where it stood");
    assert_eq!(done.chunks_lost, 0, "nothing had to be sent again");
    assert_downloads(&ann, &scan).await;
    assert_eq!(
        (report.kept, report.blobs, report.partial, report.bytes),
        (1, 0, 0, 0)
    );
    // Named again, it stays.
    assert_eq!(
        collect(&server, t0 + 10 * GRACE).await,
        CollectReport::default()
    );
    assert_downloads(&ann, &scan).await;
}

/// `outpost-server collect-blobs`, run beside a serving `outpost-server` (started with
/// `--blob-grace-days 0`) on the same database and blob directory.
async fn collect_blobs_beside_a_running_server_removes_what_the_grace_let_go(backend: Backend) {
    let mut place = place(backend).await;
    let db_args = place.args.clone();
    place.args.extend(["--blob-grace-days".into(), "0".into()]);
    let (_server, base) = start(&place).await;
    let (mut ann, _) = register(&base).await;
    let photo = bytes(CHUNK + 1, 7);
    let hash = BlobHash::of(&photo);
    upload(&ann, &photo).await;
    let id = attach(&mut ann, &photo).await;
    set_deleted(&mut ann, id, true).await;

    let run = || async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_outpost-server"))
            .arg("collect-blobs")
            .args(&db_args)
            .args(["--grace-days", "0", "--json"])
            .env("OUTPOST_LOG", "warn")
            .output()
            .await
            .expect("run collect-blobs");
        assert!(
            out.status.success(),
            "collect-blobs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("a JSON report")
    };
    let first = run().await;
    assert_eq!(
        (first["marked"].as_u64(), first["blobs"].as_u64()),
        (Some(1), Some(0))
    );
    assert_downloads(&ann, &photo).await;
    // With no grace, the next sweep (a moment later) removes it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = run().await;
    assert_eq!(
        (second["blobs"].as_u64(), second["bytes"].as_u64()),
        (Some(1), Some(photo.len() as u64))
    );
    assert_gone(&ann, &hash).await;
    assert_eq!(files_of(&place.blob_dir, &hash), Vec::<PathBuf>::new());

    // The text report, for people.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_outpost-server"))
        .arg("collect-blobs")
        .args(&db_args)
        .output()
        .await
        .expect("run collect-blobs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("grace 7 days"), "{text}");
    assert!(text.contains("removed 0 blobs"), "{text}");
}
