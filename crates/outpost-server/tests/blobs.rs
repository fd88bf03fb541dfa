//! Attachments' bytes end to end (`/v1/blobs`), on both backends, with real files: a blob goes
//! up in chunks and comes back byte for byte; an upload cut off (a dropped link, a damaged or
//! misplaced chunk, a kill -9 of the server) goes on from the last chunk the server
//! acknowledged; a blob that does not match its name never becomes fetchable; an account keeps
//! one copy, which no other account can fetch; sizes and quotas are refused before a byte is
//! sent.

mod common;

use common::blobs::{bytes, path, post, status};
use common::process::{place, register, start};
use common::{Backend, Device, TestServer, error_of};
use futures_util::StreamExt as _;
use outpost_protocol::blobs::{
    BlobHash, BlobStatus, HEADER_CHUNK_SHA256, Limits, MAX_CHUNK_BYTES, codes,
};
use outpost_server::blobs::{BlobConfig, DEFAULT_CHUNK_BYTES, DEFAULT_MAX_BLOB_BYTES};
use reqwest::Method;
use std::time::Duration;

backends!(
    a_blob_uploaded_in_chunks_downloads_byte_identical,
    an_upload_cut_off_resumes_at_the_last_acknowledged_chunk,
    a_chunk_at_the_wrong_offset_is_refused_and_changes_nothing,
    a_damaged_or_cut_short_chunk_is_refused_counted_and_sent_again,
    a_blob_that_does_not_match_its_name_is_dropped_and_starts_over,
    an_account_keeps_one_copy_and_no_other_account_can_fetch_it,
    a_download_resumes_from_an_offset,
    a_blob_over_the_limit_is_refused_before_a_byte_is_sent,
    uploads_past_the_quota_are_refused_with_what_is_left,
    a_kill_9_mid_upload_resumes_from_the_last_acknowledged_chunk_and_the_blob_is_intact,
);

const CHUNK: usize = DEFAULT_CHUNK_BYTES as usize;

async fn limits(device: &Device) -> Limits {
    let resp = device
        .request(Method::GET, "/v1/blobs")
        .send()
        .await
        .expect("limits");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("limits")
}

/// A `PATCH` whose header names the SHA-256 of `declared` (the chunk's own bytes, unless a
/// test damages them on the way).
async fn patch_as(
    device: &Device,
    hash: &BlobHash,
    offset: usize,
    chunk: &[u8],
    declared: &[u8],
) -> reqwest::Response {
    device
        .request(Method::PATCH, &format!("{}?offset={offset}", path(hash)))
        .header(HEADER_CHUNK_SHA256, BlobHash::of(declared).as_str())
        .header("content-type", "application/octet-stream")
        .body(chunk.to_vec())
        .send()
        .await
        .expect("patch")
}

async fn patch(device: &Device, hash: &BlobHash, offset: usize, chunk: &[u8]) -> reqwest::Response {
    patch_as(device, hash, offset, chunk, chunk).await
}

/// Sends the blob `data` from `from` to the end in chunks of `chunk`, each acknowledged in
/// turn; the last reply.
async fn send_from(device: &Device, data: &[u8], from: usize, chunk: usize) -> BlobStatus {
    send_range(device, data, from, data.len(), chunk).await
}

/// Sends the bytes `from..to` of the blob `data`.
async fn send_range(
    device: &Device,
    data: &[u8],
    from: usize,
    to: usize,
    chunk: usize,
) -> BlobStatus {
    let hash = BlobHash::of(data);
    let mut offset = from;
    let mut last = None;
    while offset < to {
        let end = (offset + chunk).min(to);
        let resp = patch(device, &hash, offset, &data[offset..end]).await;
        assert_eq!(
            resp.status(),
            200,
            "chunk at {offset}: {}",
            resp.text().await.unwrap_or_default()
        );
        let s: BlobStatus = resp.json().await.expect("status");
        assert_eq!(
            s.received, end as u64,
            "the reply says where the upload stands"
        );
        assert_eq!(s.complete, end == data.len());
        last = Some(s);
        offset = end;
    }
    last.expect("at least one chunk")
}

/// Begins and sends the whole of `data`.
async fn upload(device: &Device, data: &[u8]) -> BlobStatus {
    let hash = BlobHash::of(data);
    let s = status(device, &hash, data.len()).await;
    assert_eq!((s.received, s.complete), (0, false));
    send_from(device, data, 0, CHUNK).await
}

async fn download(device: &Device, hash: &BlobHash, range: Option<&str>) -> reqwest::Response {
    let mut request = device.request(Method::GET, &path(hash));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.expect("download")
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Downloads the whole blob and checks it is `data`, byte for byte.
async fn assert_downloads(device: &Device, data: &[u8]) {
    let resp = download(device, &BlobHash::of(data), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        header(&resp, "content-length"),
        Some(data.len().to_string()),
        "sent as it is, with its length (not compressed, although the client accepts gzip)"
    );
    assert_eq!(header(&resp, "content-encoding"), None);
    let body = resp.bytes().await.expect("body");
    assert!(body.as_ref() == data, "the blob comes back byte for byte");
}

async fn a_blob_uploaded_in_chunks_downloads_byte_identical(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let l = limits(&ann).await;
    assert_eq!(
        l,
        Limits {
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            quota_bytes: None,
            used_bytes: 0,
        }
    );
    let photo = bytes(2 * CHUNK + 12_345, 1);
    let done = upload(&ann, &photo).await;
    assert_eq!(
        (done.size, done.received, done.chunks, done.chunks_lost),
        (photo.len() as u64, photo.len() as u64, 3, 0)
    );
    assert_downloads(&ann, &photo).await;
    // Any device of the account fetches it.
    let laptop = Device::login(&server, "ann@example.org").await;
    assert_downloads(&laptop, &photo).await;
    assert_eq!(limits(&ann).await.used_bytes, photo.len() as u64);

    // A blob of no bytes is complete as soon as it is named.
    let empty = status(&ann, &BlobHash::of(b""), 0).await;
    assert!(empty.complete);
    assert_downloads(&laptop, b"").await;
}

async fn an_upload_cut_off_resumes_at_the_last_acknowledged_chunk(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let video = bytes(4 * CHUNK - 7, 2);
    let hash = BlobHash::of(&video);
    status(&ann, &hash, video.len()).await;
    send_range(&ann, &video, 0, 2 * CHUNK, CHUNK).await;

    // The link drops; later (a new connection, the app restarted) the device asks again.
    let phone = Device {
        http: common::http(),
        ..ann.clone()
    };
    let resumed = status(&phone, &hash, video.len()).await;
    assert_eq!(
        (resumed.received, resumed.complete, resumed.chunks),
        (2 * CHUNK as u64, false, 2),
        "the server holds the two acknowledged chunks"
    );
    let done = send_from(&phone, &video, resumed.received as usize, CHUNK).await;
    assert!(done.complete);
    assert_eq!(
        (done.chunks, done.chunks_lost),
        (4, 0),
        "nothing was sent twice"
    );
    assert_downloads(&ann, &video).await;
}

async fn a_chunk_at_the_wrong_offset_is_refused_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let scan = bytes(3 * CHUNK, 3);
    let hash = BlobHash::of(&scan);
    status(&ann, &hash, scan.len()).await;
    send_range(&ann, &scan, 0, CHUNK, CHUNK).await;

    // The first chunk again (its reply was lost), then one too far ahead.
    for offset in [0, 2 * CHUNK] {
        let resp = patch(&ann, &hash, offset, &scan[offset..offset + CHUNK]).await;
        let (code, message) = error_of(resp, 409).await;
        assert_eq!(code, codes::OFFSET_MISMATCH);
        assert!(
            message.contains(&CHUNK.to_string()),
            "the message names where the upload stands: {message}"
        );
    }
    let s = status(&ann, &hash, scan.len()).await;
    assert_eq!(
        (s.received, s.chunks, s.chunks_lost),
        (CHUNK as u64, 1, 2),
        "nothing was written; both chunks count as lost"
    );
    let done = send_from(&ann, &scan, CHUNK, CHUNK).await;
    assert!(done.complete);
    assert_downloads(&ann, &scan).await;
}

async fn a_damaged_or_cut_short_chunk_is_refused_counted_and_sent_again(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let doc = bytes(2 * CHUNK, 4);
    let hash = BlobHash::of(&doc);
    status(&ann, &hash, doc.len()).await;

    // One bit flipped on the way.
    let mut damaged = doc[..CHUNK].to_vec();
    damaged[1000] ^= 0x10;
    let resp = patch_as(&ann, &hash, 0, &damaged, &doc[..CHUNK]).await;
    let (code, _) = error_of(resp, 422).await;
    assert_eq!(code, codes::CHUNK_DAMAGED);
    let s = status(&ann, &hash, doc.len()).await;
    assert_eq!((s.received, s.chunks, s.chunks_lost), (0, 0, 1));

    // The link drops halfway through a chunk.
    let half = doc[..CHUNK / 2].to_vec();
    let body =
        futures_util::stream::iter([Ok(half), Err(std::io::Error::other("the link dropped"))]);
    let cut = ann
        .request(Method::PATCH, &format!("{}?offset=0", path(&hash)))
        .header(HEADER_CHUNK_SHA256, BlobHash::of(&doc[..CHUNK]).as_str())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(cut.is_err(), "the request never completed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = status(&ann, &hash, doc.len()).await;
        if s.chunks_lost == 2 || tokio::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (s.received, s.chunks_lost),
        (0, 2),
        "the chunk cut short is counted, and nothing of it kept"
    );

    let done = send_from(&ann, &doc, 0, CHUNK).await;
    assert_eq!((done.chunks, done.chunks_lost), (2, 2));
    assert_downloads(&ann, &doc).await;
}

async fn a_blob_that_does_not_match_its_name_is_dropped_and_starts_over(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let meant = bytes(CHUNK + 500, 5);
    // The file changed on the device after it was named: same size, other bytes.
    let sent = bytes(CHUNK + 500, 6);
    let hash = BlobHash::of(&meant);
    status(&ann, &hash, meant.len()).await;
    let resp = patch(&ann, &hash, 0, &sent[..CHUNK]).await;
    assert_eq!(resp.status(), 200, "each chunk is fine on its own");
    let resp = patch(&ann, &hash, CHUNK, &sent[CHUNK..]).await;
    let (code, message) = error_of(resp, 422).await;
    assert_eq!(code, codes::BLOB_MISMATCH);
    assert!(message.contains(BlobHash::of(&sent).as_str()), "{message}");

    let (code, _) = error_of(download(&ann, &hash, None).await, 404).await;
    assert_eq!(code, "not_found", "no device can fetch what did not match");
    let fresh = status(&ann, &hash, meant.len()).await;
    assert_eq!(
        (fresh.received, fresh.complete, fresh.chunks),
        (0, false, 0),
        "a fresh start"
    );
    let done = send_from(&ann, &meant, 0, CHUNK).await;
    assert!(done.complete);
    assert_downloads(&ann, &meant).await;
}

async fn an_account_keeps_one_copy_and_no_other_account_can_fetch_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let photo = bytes(CHUNK + 1, 7);
    let hash = BlobHash::of(&photo);
    upload(&ann, &photo).await;

    // Ann attaches the same photo from her laptop: nothing to send.
    let laptop = Device::login(&server, "ann@example.org").await;
    let s = status(&laptop, &hash, photo.len()).await;
    assert!(s.complete, "the server has it: {s:?}");
    assert_eq!(s.received, photo.len() as u64);
    assert_eq!(
        limits(&laptop).await.used_bytes,
        photo.len() as u64,
        "one copy counted"
    );

    // Bob cannot fetch it, nor learn that it exists.
    let bob = Device::register(&server, "bob@example.org").await;
    let (code, _) = error_of(download(&bob, &hash, None).await, 404).await;
    assert_eq!(code, "not_found");
    let (code, _) = error_of(download(&bob, &BlobHash::of(b"never"), None).await, 404).await;
    assert_eq!(code, "not_found");
    let theirs = status(&bob, &hash, photo.len()).await;
    assert_eq!(
        (theirs.received, theirs.complete),
        (0, false),
        "Bob uploads his own copy"
    );
    let (code, _) = error_of(patch(&bob, &BlobHash::of(b"no upload"), 0, b"x").await, 404).await;
    assert_eq!(code, "not_found", "a chunk needs an upload begun");
}

async fn a_download_resumes_from_an_offset(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ann = Device::register(&server, "ann@example.org").await;
    let audio = bytes(CHUNK + 4321, 8);
    let hash = BlobHash::of(&audio);
    upload(&ann, &audio).await;
    let size = audio.len();

    let from = 700_000;
    let resp = download(&ann, &hash, Some(&format!("bytes={from}-"))).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range"),
        Some(format!("bytes {from}-{}/{size}", size - 1))
    );
    assert_eq!(
        header(&resp, "content-length"),
        Some((size - from).to_string())
    );
    let tail = resp.bytes().await.expect("tail");
    assert!(tail.as_ref() == &audio[from..], "the tail, byte for byte");

    let resp = download(&ann, &hash, Some(&format!("bytes={size}-"))).await;
    assert_eq!(
        header(&resp, "content-range"),
        Some(format!("bytes */{size}"))
    );
    let (code, _) = error_of(resp, 416).await;
    assert_eq!(code, "bad_request");
}

async fn a_blob_over_the_limit_is_refused_before_a_byte_is_sent(backend: Backend) {
    let server = TestServer::start_with_blobs(
        backend,
        BlobConfig {
            max_blob_bytes: 3 * DEFAULT_CHUNK_BYTES,
            ..BlobConfig::default()
        },
    )
    .await;
    let ann = Device::register(&server, "ann@example.org").await;
    assert_eq!(limits(&ann).await.max_blob_bytes, 3 * DEFAULT_CHUNK_BYTES);
    let big = BlobHash::of(b"a film");
    let resp = post(&ann, &big, 3 * CHUNK + 1).await;
    let (code, message) = error_of(resp, 413).await;
    assert_eq!(code, codes::BLOB_TOO_LARGE);
    assert!(message.contains(&(3 * CHUNK).to_string()), "{message}");
    assert_eq!(limits(&ann).await.used_bytes, 0, "nothing was kept");

    // A chunk larger than any server takes.
    let data = bytes(MAX_CHUNK_BYTES + 1, 9);
    let hash = BlobHash::of(&data[..CHUNK]);
    status(&ann, &hash, CHUNK).await;
    let (code, _) = error_of(patch(&ann, &hash, 0, &data).await, 413).await;
    assert_eq!(code, "payload_too_large");
}

async fn uploads_past_the_quota_are_refused_with_what_is_left(backend: Backend) {
    let quota = 3 * DEFAULT_CHUNK_BYTES;
    let server = TestServer::start_with_blobs(
        backend,
        BlobConfig {
            quota_bytes: Some(quota),
            ..BlobConfig::default()
        },
    )
    .await;
    let ann = Device::register(&server, "ann@example.org").await;
    let first = bytes(CHUNK, 10);
    upload(&ann, &first).await;
    // Begun, not finished: it counts at its full size.
    let partial = bytes(CHUNK + CHUNK / 2, 11);
    let s = status(&ann, &BlobHash::of(&partial), partial.len()).await;
    assert!(!s.complete);
    let l = limits(&ann).await;
    assert_eq!(
        (l.quota_bytes, l.used_bytes),
        (Some(quota), (2 * CHUNK + CHUNK / 2) as u64)
    );

    let third = bytes(CHUNK, 12);
    let (code, message) = error_of(post(&ann, &BlobHash::of(&third), third.len()).await, 403).await;
    assert_eq!(code, codes::OVER_QUOTA);
    let left = (CHUNK / 2).to_string();
    assert!(
        message.contains(&left),
        "the message says {left} bytes are left: {message}"
    );
    // The upload in progress goes on; asking again does not count it twice.
    assert!(
        !status(&ann, &BlobHash::of(&partial), partial.len())
            .await
            .complete
    );
    send_from(&ann, &partial, 0, CHUNK).await;
    // Another account has its own quota.
    let bob = Device::register(&server, "bob@example.org").await;
    upload(&bob, &third).await;
    assert_eq!(
        limits(&ann).await.used_bytes,
        (2 * CHUNK + CHUNK / 2) as u64
    );
}

async fn a_kill_9_mid_upload_resumes_from_the_last_acknowledged_chunk_and_the_blob_is_intact(
    backend: Backend,
) {
    let place = place(backend).await;
    let (mut server, base) = start(&place).await;
    let (mut ann, account) = register(&base).await;
    let photo = bytes(5 * CHUNK - 99, 13);
    let hash = BlobHash::of(&photo);
    status(&ann, &hash, photo.len()).await;
    send_range(&ann, &photo, 0, 2 * CHUNK, CHUNK).await;

    // The third chunk is on the wire, half sent, when the server is killed.
    let (sent_half, half_sent) = tokio::sync::oneshot::channel::<()>();
    let half = photo[2 * CHUNK..2 * CHUNK + CHUNK / 2].to_vec();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(half) }).chain(
        futures_util::stream::once(async move {
            let _ = sent_half.send(());
            std::future::pending::<std::io::Result<Vec<u8>>>().await
        }),
    );
    let third = ann
        .request(
            Method::PATCH,
            &format!("{}?offset={}", path(&hash), 2 * CHUNK),
        )
        .header(
            HEADER_CHUNK_SHA256,
            BlobHash::of(&photo[2 * CHUNK..3 * CHUNK]).as_str(),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let kill = async {
        let _ = half_sent.await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.start_kill().expect("kill -9");
        let _ = server.wait().await;
    };
    let (reply, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(30), third), kill);
    assert!(
        !matches!(reply, Ok(Ok(ref r)) if r.status() == 200),
        "the third chunk was never acknowledged"
    );

    // What a crash can leave: bytes past the last one counted (a torn write, or chunks written
    // whose count never reached the database), here more than the rest of the blob, so that
    // only cutting them off gives the right blob.
    let part = place
        .blob_dir
        .join("uploads")
        .join(account.to_string())
        .join(format!("{hash}.part"));
    let on_disk = std::fs::metadata(&part).expect("the upload's file").len();
    assert_eq!(
        on_disk,
        2 * CHUNK as u64,
        "the acknowledged chunks are on disk"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes(3 * CHUNK + 1000, 14)))
        .expect("a torn write");

    let (_server, base) = start(&place).await;
    ann.base = base;
    let resumed = status(&ann, &hash, photo.len()).await;
    assert_eq!(
        (resumed.received, resumed.complete),
        (2 * CHUNK as u64, false),
        "the upload stands at the last acknowledged chunk"
    );
    let done = send_from(&ann, &photo, resumed.received as usize, CHUNK).await;
    assert!(done.complete);
    assert_downloads(&ann, &photo).await;
    assert!(!part.exists(), "the upload's file became the blob");
}
