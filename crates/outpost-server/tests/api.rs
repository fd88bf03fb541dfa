//! The sync API through real HTTP on 127.0.0.1, on every storage backend: accounts, push and
//! pull (S1, S2), account isolation (S3), conflicts, clock skew, pokes, restarts, concurrency.

mod common;

use common::{Backend, Device, TestServer, error_of, http};
use futures_util::StreamExt;
use outpost_protocol::api::{Cursor, MutationNumber, Outcome, Version};
use outpost_protocol::{NoteId, Stamp};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

backends!(
    health_needs_no_account,
    register_login_and_logout,
    accounts_see_only_their_own_data,
    push_then_pull_in_pages_with_progress,
    the_same_batch_twice_has_one_effect_also_after_a_restart,
    a_rejected_mutation_advances_the_number_and_never_wedges_the_queue,
    a_stale_body_edit_gets_the_current_record_as_a_conflict,
    a_fast_clock_is_clamped_and_the_skew_reported,
    a_push_pokes_the_accounts_listeners,
    eight_pushers_and_a_puller_agree_on_every_change,
    failed_logins_are_rate_limited,
    replies_are_compressed_and_compressed_requests_accepted,
    shutdown_lets_a_request_in_flight_finish,
);

async fn health_needs_no_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let resp = http()
        .get(server.url("/v1/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["protocol"], 1);
    assert_eq!(body["storage"], server.storage.kind());
}

async fn register_login_and_logout(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::register(&server, "Ann@Example.org").await;
    // The email is normalised: the same address in other case is taken.
    let again = http()
        .post(server.url("/v1/accounts"))
        .json(
            &json!({"email": "ann@example.org", "password": "another password",
                      "client_id": outpost_protocol::ClientId::new()}),
        )
        .send()
        .await
        .expect("register");
    assert_eq!(error_of(again, 409).await.0, "email_taken");

    let wrong = http()
        .post(server.url("/v1/sessions"))
        .json(
            &json!({"email": "ann@example.org", "password": "wrong password",
                      "client_id": outpost_protocol::ClientId::new()}),
        )
        .send()
        .await
        .expect("login");
    let (code, message) = error_of(wrong, 401).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("unauthorized", "wrong email or password")
    );

    let b = Device::login(&server, "ann@example.org").await;
    assert_ne!(a.token, b.token, "each device gets its own token");
    let pulled = b.pull(Cursor(0), 10).await;
    assert!(pulled.records.is_empty());

    let out = b
        .request(reqwest::Method::DELETE, "/v1/sessions/current")
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 204);
    let after = b
        .request(reqwest::Method::GET, "/v1/sync/pull")
        .send()
        .await
        .expect("pull");
    assert_eq!(error_of(after, 401).await.0, "unauthorized");
    // The other device's token still works.
    a.pull(Cursor(0), 10).await;
}

async fn accounts_see_only_their_own_data(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let mut bob = Device::register(&server, "bob@example.org").await;
    let note = NoteId::new();
    let m = ann.put(
        note,
        &[
            ("title", json!("Ann's secret")),
            ("body", json!("pin 1234")),
        ],
        None,
    );
    ann.push(vec![m]).await;

    let (bob_sees, bob_cursor) = bob.pull_all(Cursor(0)).await;
    assert!(bob_sees.is_empty(), "Bob sees nothing of Ann's");
    assert_eq!(bob_cursor, Cursor(0));

    // Bob writing to Ann's note id is refused whole; nothing is stored anywhere.
    let own = NoteId::new();
    let batch = vec![
        bob.put(own, &[("title", json!("mine"))], None),
        bob.put(note, &[("title", json!("hijacked"))], Some(1)),
    ];
    let (code, message) = error_of(bob.push_raw(batch).await, 403).await;
    assert_eq!(code, "forbidden");
    assert!(message.contains("belongs to another account"), "{message}");
    assert!(
        bob.pull_all(Cursor(0)).await.0.is_empty(),
        "not even Bob's own note"
    );
    let (ann_sees, _) = ann.pull_all(Cursor(0)).await;
    assert_eq!(ann_sees.len(), 1);
    assert_eq!(ann_sees[0].fields["title"].value, json!("Ann's secret"));

    // Ann's token on Bob's device id is refused.
    let stolen = ann
        .http
        .get(format!("{}/v1/sync/pull", server.base))
        .bearer_auth(&ann.token)
        .header("x-outpost-client", bob.client_id.to_string())
        .header("x-outpost-protocol", "1")
        .send()
        .await
        .expect("pull");
    assert_eq!(error_of(stolen, 403).await.0, "forbidden");
}

async fn push_then_pull_in_pages_with_progress(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let notes: Vec<NoteId> = (0..5).map(|_| NoteId::new()).collect();
    let batch: Vec<_> = notes
        .iter()
        .enumerate()
        .map(|(i, n)| a.put(*n, &[("title", json!(format!("note {i}")))], None))
        .collect();
    let reply = a.push(batch).await;
    assert_eq!(reply.last_mutation_number, MutationNumber(5));
    let cursors: Vec<Cursor> = reply
        .results
        .iter()
        .map(|r| match r.outcome {
            Outcome::Applied { cursor, .. } => cursor,
            ref other => panic!("expected applied, got {other:?}"),
        })
        .collect();
    assert_eq!(cursors, (1..=5).map(Cursor).collect::<Vec<_>>());

    let b = Device::login(&server, "ann@example.org").await;
    let first = b.pull(Cursor(0), 2).await;
    assert_eq!(first.records.len(), 2);
    assert!(first.has_more);
    assert_eq!(first.remaining, 3, "progress: three more to come");
    assert_eq!(first.next_cursor, Cursor(2));
    let second = b.pull(first.next_cursor, 2).await;
    let third = b.pull(second.next_cursor, 2).await;
    assert!(!third.has_more);
    assert_eq!(third.remaining, 0);
    let ids: Vec<String> = [first.records, second.records, third.records]
        .concat()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        notes.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "commit order"
    );
    assert_eq!(third.next_cursor, Cursor(5));
    assert_eq!(b.pull(Cursor(5), 10).await.records.len(), 0);
    assert_eq!(
        a.pull(Cursor(5), 10).await.last_mutation_number,
        MutationNumber(5)
    );
}

async fn the_same_batch_twice_has_one_effect_also_after_a_restart(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let note = NoteId::new();
    let batch = vec![
        a.put(note, &[("title", json!("one"))], None),
        a.put(note, &[("body", json!("text"))], Some(1)),
    ];
    let first = a.push(batch.clone()).await;
    let second = a.push(batch.clone()).await;
    for (r1, r2) in first.results.iter().zip(&second.results) {
        assert_eq!(r2.id, r1.id);
        assert_eq!(
            r2.outcome,
            Outcome::Duplicate {
                first: Some(Box::new(r1.outcome.clone()))
            },
            "the same reply as the first time"
        );
    }
    let (records, cursor) = a.pull_all(Cursor(0)).await;
    assert_eq!((records.len(), records[0].version), (1, Version(2)));

    // Restart the server on the same storage: still one effect.
    let (storage, dir) = server.stop().await;
    let restarted = TestServer::start_on(storage, dir).await;
    let mut again = a.clone();
    again.base = restarted.base.clone();
    let third = again.push(batch).await;
    assert!(
        third
            .results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Duplicate { .. }))
    );
    let (records, cursor_after) = again.pull_all(Cursor(0)).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].version, Version(2));
    assert_eq!(cursor_after, cursor, "nothing new committed");
}

async fn a_rejected_mutation_advances_the_number_and_never_wedges_the_queue(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let poison = a.put(NoteId::new(), &[("pinned", json!("definitely"))], None);
    let good = a.put(NoteId::new(), &[("title", json!("fine"))], None);
    let reply = a.push(vec![poison.clone(), good]).await;
    match &reply.results[0].outcome {
        Outcome::Rejected { code, message } => {
            assert_eq!(code, "invalid_field");
            assert_eq!(message, "note.pinned must be true or false");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(matches!(reply.results[1].outcome, Outcome::Applied { .. }));
    assert_eq!(reply.last_mutation_number, MutationNumber(2));
    // Sent again it is not re-evaluated.
    let again = a.push(vec![poison]).await;
    assert!(matches!(
        again.results[0].outcome,
        Outcome::Duplicate { .. }
    ));
    assert_eq!(a.pull_all(Cursor(0)).await.0.len(), 1);
}

async fn a_stale_body_edit_gets_the_current_record_as_a_conflict(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let mut b = Device::login(&server, "ann@example.org").await;
    let note = NoteId::new();
    let create = a.put(note, &[("body", json!("line one\n"))], None);
    a.push(vec![create]).await;
    let edit_a = a.put(note, &[("body", json!("line one\nfrom A\n"))], Some(1));
    a.push(vec![edit_a]).await;
    // B edited on version 1, not knowing A's edit.
    let edit_b = b.put(
        note,
        &[
            ("body", json!("line one\nfrom B\n")),
            ("pinned", json!(true)),
        ],
        Some(1),
    );
    let reply = b.push(vec![edit_b]).await;
    match &reply.results[0].outcome {
        Outcome::Conflict { current } => {
            assert_eq!(current.version, Version(2));
            assert_eq!(current.fields["body"].value, json!("line one\nfrom A\n"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let (records, _) = b.pull_all(Cursor(0)).await;
    assert_eq!(
        records[0].fields["body"].value,
        json!("line one\nfrom A\n"),
        "nothing applied"
    );
    assert!(!records[0].fields.contains_key("pinned"));
    // After merging, B pushes on the current version and wins.
    let merged = b.put(
        note,
        &[("body", json!("line one\nfrom A\nfrom B\n"))],
        Some(2),
    );
    let reply = b.push(vec![merged]).await;
    assert!(matches!(
        reply.results[0].outcome,
        Outcome::Applied {
            version: Version(3),
            ..
        }
    ));
}

async fn a_fast_clock_is_clamped_and_the_skew_reported(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut fast = Device::register(&server, "ann@example.org").await;
    let mut m = fast.put(NoteId::new(), &[("title", json!("from the future"))], None);
    let day = 24 * 3600 * 1000;
    for change in m.fields.values_mut() {
        change.stamp = Stamp {
            physical_ms: change.stamp.physical_ms + day,
            ..change.stamp
        };
    }
    let reply = fast.push(vec![m]).await;
    match reply.results[0].outcome {
        Outcome::Applied {
            clamped_skew_ms: Some(skew),
            ..
        } => {
            assert!((day - 5_000..=day + 5_000).contains(&skew), "skew {skew}");
        }
        ref other => panic!("expected applied with skew, got {other:?}"),
    }
    let (records, _) = fast.pull_all(Cursor(0)).await;
    let stamp = records[0].fields["title"].stamp;
    assert!(
        stamp.physical_ms <= reply.server_time_ms + 60_000,
        "stored clamped"
    );
}

/// Reads server-sent events until one carries a cursor of at least `at_least`.
async fn wait_for_poke(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    at_least: i64,
) -> i64 {
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a poke within 10 s")
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let poke: serde_json::Value = serde_json::from_str(data.trim()).expect("json");
                    let cursor = poke["cursor"].as_i64().expect("cursor");
                    if cursor >= at_least {
                        return cursor;
                    }
                }
            }
        }
    }
}

async fn a_push_pokes_the_accounts_listeners(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let b = Device::login(&server, "ann@example.org").await;
    let mut other = Device::register(&server, "bob@example.org").await;
    let resp = b
        .request(reqwest::Method::GET, "/v1/sync/events")
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let mut stream = resp.bytes_stream();
    assert_eq!(
        wait_for_poke(&mut stream, 0).await,
        0,
        "the current cursor first"
    );
    // Another account's push does not poke Ann's devices...
    let m = other.put(NoteId::new(), &[("title", json!("bob"))], None);
    other.push(vec![m]).await;
    // ...Ann's own does.
    let m = a.put(NoteId::new(), &[("title", json!("hello"))], None);
    let started = std::time::Instant::now();
    a.push(vec![m]).await;
    assert_eq!(wait_for_poke(&mut stream, 1).await, 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "poked within a second"
    );
    // Shutting down ends the stream rather than waiting on it.
    let stopping = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;
    assert!(
        stopping.is_ok(),
        "an open event stream must not block shutdown"
    );
}

async fn eight_pushers_and_a_puller_agree_on_every_change(backend: Backend) {
    let server = TestServer::start(backend).await;
    Device::register(&server, "team@example.org").await;
    let mut pushers = Vec::new();
    for _ in 0..8 {
        pushers.push(Device::login(&server, "team@example.org").await);
    }
    let puller = Device::login(&server, "team@example.org").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pull_task = {
        let done = done.clone();
        let puller = puller.clone();
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, Version> = BTreeMap::new();
            let mut cursor = Cursor(0);
            let mut last_cursor_seen = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let (records, next) = puller.pull_all(cursor).await;
                for r in records {
                    assert!(r.cursor.0 > last_cursor_seen, "cursors only increase");
                    last_cursor_seen = r.cursor.0;
                    seen.insert(r.id, r.version);
                }
                cursor = next;
                if finished {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for mut device in pushers {
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for _ in 0..20 {
                let notes: Vec<NoteId> = (0..5).map(|_| NoteId::new()).collect();
                let batch = notes
                    .iter()
                    .map(|n| device.put(*n, &[("title", json!("x"))], None))
                    .collect();
                let reply = device.push(batch).await;
                assert!(
                    reply
                        .results
                        .iter()
                        .all(|r| matches!(r.outcome, Outcome::Applied { .. }))
                );
                written.extend(notes);
            }
            written
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        all.extend(t.await.expect("pusher").into_iter().map(|n| n.to_string()));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = pull_task.await.expect("puller");
    assert_eq!(all.len(), 8 * 20 * 5);
    let seen_ids: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        seen_ids, all,
        "the puller saw exactly every committed change"
    );
    assert!(seen.values().all(|v| *v == Version(1)));
}

async fn failed_logins_are_rate_limited(backend: Backend) {
    let server = TestServer::start(backend).await;
    Device::register(&server, "ann@example.org").await;
    let attempt = || async {
        http()
            .post(server.url("/v1/sessions"))
            .json(
                &json!({"email": "ann@example.org", "password": "guess guess",
                          "client_id": outpost_protocol::ClientId::new()}),
            )
            .send()
            .await
            .expect("login")
    };
    for _ in 0..outpost_server::auth::ATTEMPTS_PER_ACCOUNT {
        assert_eq!(attempt().await.status(), 401);
    }
    let limited = attempt().await;
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
    let (code, message) = error_of(limited, 429).await;
    assert_eq!(code, "rate_limited");
    assert!(
        message.starts_with("too many attempts; try again in"),
        "{message}"
    );
}

async fn replies_are_compressed_and_compressed_requests_accepted(backend: Backend) {
    use std::io::Write;
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let body = "compressible text ".repeat(2000);
    let m = a.put(NoteId::new(), &[("body", json!(body))], None);
    let json_body = serde_json::to_vec(&outpost_protocol::api::PushRequest { mutations: vec![m] })
        .expect("json");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json_body).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    assert!(compressed.len() < json_body.len() / 10);
    let resp = a
        .request(reqwest::Method::POST, "/v1/sync/push")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .expect("push");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client")
        .get(format!("{}/v1/sync/pull", server.base))
        .bearer_auth(&a.token)
        .header("x-outpost-client", a.client_id.to_string())
        .header("x-outpost-protocol", "1")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("pull");
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    let bytes = raw.bytes().await.expect("body");
    assert!(
        bytes.len() < body.len() / 10,
        "a 36 KB body came as {} bytes",
        bytes.len()
    );
}

async fn shutdown_lets_a_request_in_flight_finish(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut a = Device::register(&server, "ann@example.org").await;
    let m = a.put(
        NoteId::new(),
        &[("title", json!("sent while stopping"))],
        None,
    );
    let body = serde_json::to_vec(&outpost_protocol::api::PushRequest { mutations: vec![m] })
        .expect("json");
    // The body trickles in: the server has the request before shutdown starts, and the rest
    // arrives after.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let (head, tail) = body.split_at(body.len() / 2);
    let (head, tail) = (head.to_vec(), tail.to_vec());
    let request = a
        .request(reqwest::Method::POST, "/v1/sync/push")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .send();
    let in_flight = tokio::spawn(request);
    tx.send(Ok(head)).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the request in flight"
    );
    tx.send(Ok(tail)).await.expect("second half");
    drop(tx);
    let resp = in_flight
        .await
        .expect("task")
        .expect("the request completes");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("then the server stops")
        .expect("task");
}
