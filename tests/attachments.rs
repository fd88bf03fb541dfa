//! Photos and files in notes, end to end (issue 18): a real server on 127.0.0.1, real data
//! directories, and for the crashes the real `outpost` process killed with SIGKILL at a precise
//! point of an upload or a download (`outpost_core::testhook`).

use outpost_core::attachments::AttachmentState;
use outpost_e2e::device::Device;
use outpost_e2e::server::Server;
use outpost_e2e::{killed_at, outpost_json, outpost_ok};
use std::path::Path;

/// Bytes that do not compress (a photo's), `n` of them, the same for the same `seed`.
fn photo(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_attached_offline_reaches_another_device_whole_and_the_same_photo_is_one_blob() {
    let server = Server::start().await;
    let a = Device::new(&server.url, "tech@example.com", true).await;
    let b = Device::new(&server.url, "tech@example.com", false).await;
    let pump = photo(3_000_000, 1);

    // Attached offline: the note shows it at once, nothing has left the device.
    let note = a.note("Pump 4", "Leak at the seal.");
    let att = a
        .store
        .attach_bytes(note, "pump.jpg", &pump)
        .expect("attach");
    assert_eq!(att.state, AttachmentState::LocalOnly);

    // Online: the records go, then the bytes.
    a.sync().await;
    let up = a.transfer().await;
    assert_eq!((up.uploaded, up.bytes_up), (1, pump.len() as u64));
    assert_eq!(
        a.store.get_attachment(att.id).expect("a").state,
        AttachmentState::Synced
    );

    // The other device sees the note with its photo named, not yet downloaded...
    b.sync().await;
    let on_b = b.store.get_attachment(att.id).expect("on b");
    assert_eq!(on_b.state, AttachmentState::NotDownloaded { wanted: false });
    let body = b.store.get_note(note).expect("note").body;
    assert!(body.contains(&format!("(attachment:{})", att.id)), "{body}");
    // ...and, opened, fetches it whole.
    assert!(b.store.want_attachment(att.id).expect("want"));
    let down = b.transfer().await;
    assert_eq!((down.downloaded, down.bytes_down), (1, pump.len() as u64));
    let out = b.dir().join("pump-copy.jpg");
    b.store
        .blob_files()
        .copy_verified(&on_b.sha256, &out)
        .expect("copy");
    assert_eq!(std::fs::read(&out).expect("read"), pump);
    assert_eq!(
        b.store.get_attachment(att.id).expect("on b").state,
        AttachmentState::Synced
    );

    // The same photo attached on the other device, to another note: nothing is sent again.
    let other = b.note("Pump 5", "Same seal");
    b.store
        .attach_bytes(other, "again.jpg", &pump)
        .expect("attach again");
    b.sync().await;
    let again = b.transfer().await;
    assert_eq!((again.uploaded, again.bytes_up), (1, 0), "{again:?}");
    a.sync().await;
    assert_eq!(a.store.list_attachments(None).expect("list").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_that_arrives_before_its_photo_shows_the_placeholder_then_the_photo() {
    let server = Server::start().await;
    let a = Device::new(&server.url, "inspector@example.com", true).await;
    let b = Device::new(&server.url, "inspector@example.com", false).await;
    let bytes = photo(200_000, 2);
    let note = a.note("Basement", "Damp wall");
    let att = a
        .store
        .attach_bytes(note, "wall.png", &bytes)
        .expect("attach");
    // A's records go, but its link drops before the bytes do.
    a.sync().await;

    b.sync().await;
    b.store.want_attachment(att.id).expect("want");
    let early = b.transfer().await;
    assert_eq!(early.not_yet_on_server, 1, "{early:?}");
    assert_eq!(
        b.store.get_attachment(att.id).expect("b").state,
        AttachmentState::NotDownloaded { wanted: true },
        "still the placeholder, still asked for"
    );

    a.transfer().await;
    // B tries again when its wait is over (the engine's loop); here at once, by "Retry".
    b.store.retry_transfers().expect("retry");
    let late = b.transfer().await;
    assert_eq!(late.downloaded, 1, "{late:?}");
    assert_eq!(
        b.store.get_attachment(att.id).expect("b").state,
        AttachmentState::Synced
    );
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn kill_9_mid_upload_and_mid_download_resumes_where_the_bytes_stopped() {
    let server = Server::start_on_thread();
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    let files = tempfile::tempdir().expect("files");
    let bytes = photo(6 * 1024 * 1024 + 12_345, 3);
    let file = write_file(files.path(), "pump.jpg", &bytes);
    let email = "field@example.com";
    outpost_ok(
        a.path(),
        &["register", "--server", &server.url, "--email", email],
    );
    outpost_ok(
        b.path(),
        &["login", "--server", &server.url, "--email", email],
    );
    let note = outpost_ok(a.path(), &["note", "add", "--title", "Pump 4"]);
    let note = note.trim();
    let attached = outpost_json(
        a.path(),
        &["attach", note, file.to_str().expect("utf-8 path")],
    );
    let id = attached["id"].as_str().expect("id").to_owned();

    // Killed after the server acknowledged the second chunk (1 MiB each).
    killed_at(a.path(), &["sync"], "blob-chunk-sent@2");
    let listed = outpost_json(a.path(), &["attachments"]);
    assert_eq!(listed[0]["state"], "uploading", "{listed}");
    assert_eq!(listed[0]["sent"], 2 * 1024 * 1024, "{listed}");
    // The next sync sends only the rest.
    let synced = outpost_json(a.path(), &["sync"]);
    let sent = synced["transfers"]["bytes_up"].as_u64().expect("bytes_up");
    assert_eq!(sent, bytes.len() as u64 - 2 * 1024 * 1024, "{synced}");
    let listed = outpost_json(a.path(), &["attachments"]);
    assert_eq!(listed[0]["state"], "synced", "{listed}");

    // B fetches it, killed after two pieces were written; the next try asks for the rest.
    outpost_ok(b.path(), &["sync"]);
    let listed = outpost_json(b.path(), &["attachments"]);
    assert_eq!(listed[0]["state"], "not_downloaded", "{listed}");
    let dest = files.path().join("from-b.jpg");
    let dest_arg = dest.to_str().expect("utf-8 path");
    killed_at(
        b.path(),
        &["attachment", "get", &id, dest_arg],
        "blob-piece-written@2",
    );
    assert!(!dest.exists(), "nothing half-written where the user looks");
    let got = outpost_json(b.path(), &["attachment", "get", &id, dest_arg]);
    let fetched = got["downloaded_bytes"].as_u64().expect("downloaded_bytes");
    assert!(
        fetched > 0 && fetched <= bytes.len() as u64 - 2 * 1024 * 1024,
        "resumed, not started over: {got}"
    );
    assert_eq!(std::fs::read(&dest).expect("dest"), bytes);
    let listed = outpost_json(b.path(), &["attachments"]);
    assert_eq!(listed[0]["state"], "synced", "{listed}");
}
