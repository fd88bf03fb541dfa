//! Several stateless instances on one PostgreSQL database (DESIGN.md, "Scale"): a push to one
//! instance pokes a device listening on the other (also after the LISTEN connection dropped),
//! and concurrent pushes through both keep cursors per account, in commit order and without
//! skips (S2).

mod common;

use common::{Device, TestServer, pg};
use futures_util::StreamExt;
use outpost_protocol::NoteId;
use outpost_protocol::api::{Cursor, Outcome, Poke, Record};
use outpost_server::storage::postgres::{LISTENER_SUFFIX, PgStorage};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Two servers on one fresh database, as two instances behind a load balancer would be.
async fn two_instances() -> (TestServer, TestServer) {
    let url = pg::fresh_database_url().await;
    two_instances_on(&url).await
}

async fn two_instances_on(url: &str) -> (TestServer, TestServer) {
    // Both start together, as instances of one deployment do: migrations must not race.
    let (a, b) = tokio::join!(PgStorage::connect(url), PgStorage::connect(url));
    let a = a.unwrap_or_else(|e| panic!("instance A on {url}: {e}"));
    let b = b.unwrap_or_else(|e| panic!("instance B on {url}: {e}"));
    (
        TestServer::start_on(Arc::new(a), None).await,
        TestServer::start_on(Arc::new(b), None).await,
    )
}

/// The pokes of `GET /v1/sync/events`, as they arrive.
struct Events {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    async fn open(device: &Device) -> Events {
        let resp = device
            .request(reqwest::Method::GET, "/v1/sync/events")
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .expect("open the event stream");
        assert_eq!(resp.status(), 200);
        Events {
            stream: resp.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next poke's cursor, or None if none comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<Cursor> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find('\n') {
                let line = self.buffer[..end].trim_end_matches('\r').to_owned();
                self.buffer.drain(..=end);
                if let Some(data) = line.strip_prefix("data:") {
                    let poke: Poke = serde_json::from_str(data.trim())
                        .unwrap_or_else(|e| panic!("poke {data:?}: {e}"));
                    return Some(poke.cursor);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?
                .expect("the event stream ended")
                .expect("read the event stream");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }
}

fn applied_cursor(outcome: &Outcome) -> Cursor {
    match outcome {
        Outcome::Applied { cursor, .. } => *cursor,
        other => panic!("expected applied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_to_one_instance_pokes_a_device_listening_on_the_other() {
    let (a, b) = two_instances().await;
    let mut writer = Device::register(&a, "ann@example.org").await;
    let listener = Device::login(&b, "ann@example.org").await;
    // Someone else's pushes must not poke Ann's device.
    let mut stranger = Device::register(&a, "bob@example.org").await;

    let mut events = Events::open(&listener).await;
    assert_eq!(
        events.next(Duration::from_secs(5)).await,
        Some(Cursor(0)),
        "the first event is the current cursor"
    );

    let m = stranger.put(NoteId::new(), &[("title", json!("not Ann's"))], None);
    stranger.push(vec![m]).await;
    for round in 1..=3 {
        let m = writer.put(
            NoteId::new(),
            &[("title", json!(format!("note {round}")))],
            None,
        );
        let sent = Instant::now();
        let reply = writer.push(vec![m]).await;
        let cursor = applied_cursor(&reply.results[0].outcome);
        assert_eq!(cursor, Cursor(round));
        let poked = events.next(Duration::from_secs(5)).await;
        assert_eq!(
            poked,
            Some(cursor),
            "instance B pokes with the new cursor within 5 s (round {round})"
        );
        eprintln!(
            "round {round}: poke on B {:?} after the push to A",
            sent.elapsed()
        );
    }

    // And the other way round: a push to B pokes a listener on A.
    let mut events_a = Events::open(&writer).await;
    assert_eq!(events_a.next(Duration::from_secs(5)).await, Some(Cursor(3)));
    let mut from_b = listener.clone();
    let m = from_b.put(NoteId::new(), &[("title", json!("from B"))], None);
    from_b.push(vec![m]).await;
    assert_eq!(events_a.next(Duration::from_secs(5)).await, Some(Cursor(4)));
    assert_eq!(events.next(Duration::from_secs(5)).await, Some(Cursor(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_through_two_instances_keep_cursors_gapless_and_in_commit_order() {
    const DEVICES: usize = 6;
    const BATCHES: usize = 15;
    let (a, b) = two_instances().await;
    let servers = [&a, &b];
    let first = Device::register(&a, "ann@example.org").await;
    let mut devices = vec![first];
    for i in 1..DEVICES {
        devices.push(Device::login(servers[i % 2], "ann@example.org").await);
    }
    let puller_a = Device::login(&a, "ann@example.org").await;
    let puller_b = Device::login(&b, "ann@example.org").await;

    // A puller that follows along while the pushes run, alternating instances: if a pull could
    // step over a change that commits later with a smaller cursor, it would never see it.
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<Record> = Vec::new();
            let mut cursor = Cursor(0);
            let mut pulls = 0usize;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let puller = if pulls.is_multiple_of(2) {
                    &puller_a
                } else {
                    &puller_b
                };
                let page = puller.pull(cursor, 7).await;
                pulls += 1;
                assert!(page.next_cursor >= cursor, "the cursor never goes back");
                seen.extend(page.records);
                cursor = page.next_cursor;
                if finished && !page.has_more {
                    return (seen, cursor, pulls);
                }
            }
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut device) in devices.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut applied: Vec<(String, Cursor)> = Vec::new();
            for batch in 0..BATCHES {
                let size = 1 + (i + batch) % 3;
                let mutations: Vec<_> = (0..size)
                    .map(|k| {
                        device.put(
                            NoteId::new(),
                            &[("title", json!(format!("device {i} batch {batch} #{k}")))],
                            None,
                        )
                    })
                    .collect();
                let ids: Vec<String> = mutations.iter().map(|m| m.entity_id.clone()).collect();
                let reply = device.push(mutations).await;
                assert_eq!(reply.results.len(), size);
                let mut last = Cursor(0);
                for (id, result) in ids.into_iter().zip(&reply.results) {
                    let cursor = applied_cursor(&result.outcome);
                    assert!(cursor > last, "one batch gets consecutive cursors");
                    last = cursor;
                    applied.push((id, cursor));
                }
            }
            applied
        }));
    }
    let mut applied: HashMap<String, Cursor> = HashMap::new();
    for task in tasks {
        for (id, cursor) in task.await.expect("device task") {
            assert!(applied.insert(id, cursor).is_none(), "note ids are unique");
        }
    }
    let pushed_in = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (seen, final_cursor, pulls) = follower.await.expect("follower");

    let total = applied.len() as i64;
    // Gapless and unique: every cursor 1..=total was handed out exactly once.
    let cursors: HashSet<i64> = applied.values().map(|c| c.0).collect();
    assert_eq!(cursors, (1..=total).collect::<HashSet<_>>());
    assert_eq!(final_cursor, Cursor(total));

    // The follower saw every applied change exactly once, with the cursor its push was told,
    // in strictly increasing cursor order.
    let mut seen_ids: BTreeMap<String, Cursor> = BTreeMap::new();
    let mut previous = Cursor(0);
    for r in &seen {
        assert!(
            r.cursor > previous,
            "cursors strictly increase: {previous} then {}",
            r.cursor
        );
        previous = r.cursor;
        assert!(
            seen_ids.insert(r.id.clone(), r.cursor).is_none(),
            "{} seen twice",
            r.id
        );
    }
    let missing: Vec<_> = applied
        .keys()
        .filter(|id| !seen_ids.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "the follower never saw {missing:?}");
    for (id, cursor) in &applied {
        assert_eq!(seen_ids.get(id), Some(cursor), "{id}");
    }

    // A fresh device from 0, on either instance, gets the same thing.
    for server in servers {
        let fresh = Device::login(server, "ann@example.org").await;
        let (all, cursor) = fresh.pull_all(Cursor(0)).await;
        assert_eq!(cursor, Cursor(total));
        assert_eq!(all.len(), applied.len());
    }
    eprintln!(
        "{total} changes from {DEVICES} devices through 2 instances in {pushed_in:?}; \
         the follower pulled {pulls} pages"
    );
}

/// A plain connection to the test database, for what the servers do not expose.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

async fn listeners(db: &tokio_postgres::Client) -> Vec<i32> {
    db.query(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE '%' || $1",
        &[&LISTENER_SUFFIX],
    )
    .await
    .expect("pg_stat_activity")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pokes_resume_after_the_listen_connection_is_killed() {
    let url = pg::fresh_database_url().await;
    let (a, b) = two_instances_on(&url).await;
    let db = sql(&url).await;
    let mut writer = Device::register(&a, "ann@example.org").await;
    let listener = Device::login(&b, "ann@example.org").await;
    let mut events = Events::open(&listener).await;
    assert_eq!(events.next(Duration::from_secs(5)).await, Some(Cursor(0)));

    // As a database restart or a network cut would: both instances lose their LISTEN.
    let before = listeners(&db).await;
    assert_eq!(before.len(), 2, "one listener per instance");
    for pid in &before {
        db.execute("SELECT pg_terminate_backend($1)", &[pid])
            .await
            .expect("terminate");
    }
    let started = Instant::now();
    loop {
        let now = listeners(&db).await;
        if now.len() == 2 && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the listeners reconnect within 10 s: before {before:?}, now {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("listeners reconnected after {:?}", started.elapsed());

    let m = writer.put(NoteId::new(), &[("title", json!("after"))], None);
    let cursor = applied_cursor(&writer.push(vec![m]).await.results[0].outcome);
    assert_eq!(events.next(Duration::from_secs(5)).await, Some(cursor));
}

#[test]
fn test_urls_get_their_database_replaced() {
    assert_eq!(
        pg::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        pg::with_database("postgres://u:p@h:1", "x"),
        "postgres://u:p@h:1/x"
    );
    assert_eq!(
        pg::with_database("postgresql://u@%2Ftmp%2Fs/db?sslmode=disable", "x"),
        "postgresql://u@%2Ftmp%2Fs/x?sslmode=disable"
    );
}
