//! A large account: the first sync of a fresh device pulls 100,000 notes in pages, shows its
//! progress as it goes, and ends with every note exactly once.

use outpost_core::sync::{EngineConfig, Progress, account};
use outpost_e2e::device::Device;
use outpost_e2e::server::Server;
use outpost_protocol::api::{MAX_PUSH_MUTATIONS, Mutation};
use outpost_protocol::{Entity, NoteId, Stamp};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const NOTES: usize = 100_000;

/// What the user sees: they sign in on a new laptop to an account of 100,000 notes. The first
/// sync shows its progress (pulled 1,000 of 100,000, 2,000 of 100,000, ...) and completes: the
/// laptop has each of the 100,000 notes once, and nothing is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sync_of_a_fresh_device_pulls_100k_notes_with_progress() {
    let server = Server::start().await;
    let started = Instant::now();

    // Seed the server through its push API, in full batches: as a device that made the notes
    // over years would have, without paying for 100,000 local transactions first.
    let seeder = Device::new(&server.url, "ann@example.org", true).await;
    let client = account::signed_in(&seeder.store, &seeder.vault)
        .expect("session")
        .expect("signed in")
        .client;
    let node = seeder.store.client_id();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64;
    let mut ids = Vec::with_capacity(NOTES);
    let mut number = 0i64;
    while ids.len() < NOTES {
        let batch = (NOTES - ids.len()).min(MAX_PUSH_MUTATIONS);
        let mutations: Vec<Mutation> = (0..batch)
            .map(|_| {
                let i = ids.len();
                let id = NoteId::new();
                ids.push(id);
                number += 1;
                let stamp = Stamp {
                    physical_ms: now,
                    counter: u32::try_from(i).expect("counter"),
                    node,
                };
                Mutation::put(Entity::Note, id, number)
                    .field("title", format!("Inspection {i}"), stamp)
                    .field("body", format!("Site {i}: all valves checked.\n"), stamp)
                    .build()
            })
            .collect();
        let reply = client.push(mutations).await.expect("seed push");
        assert_eq!(reply.results.len(), batch);
    }
    let seeded = started.elapsed();

    let laptop = Device::new(&server.url, "ann@example.org", false).await;
    let seen: Mutex<Vec<Progress>> = Mutex::new(Vec::new());
    let pull_started = Instant::now();
    let report = laptop
        .sync_with(&EngineConfig::default(), &|p| {
            seen.lock().expect("progress").push(p)
        })
        .await
        .expect("first sync");
    let pulled = pull_started.elapsed();
    eprintln!("seeded {NOTES} notes in {seeded:.1?}, first sync of a fresh device in {pulled:.1?}");

    assert_eq!(report.pulled, NOTES);
    let seen = seen.into_inner().expect("progress");
    assert!(
        seen.len() >= 10,
        "progress is reported page by page: {} reports",
        seen.len()
    );
    assert!(
        seen.iter().all(|p| p.total == NOTES as u64),
        "the total is known from the first page on"
    );
    assert!(
        seen.windows(2).all(|w| w[0].done < w[1].done),
        "progress only moves forward"
    );
    assert_eq!(
        seen.last().map(|p| p.done),
        Some(NOTES as u64),
        "and completes"
    );

    let status = laptop.store.local_status().expect("status");
    assert_eq!(
        (status.notes, status.pending, status.conflicts),
        (NOTES as i64, 0, 0)
    );
    for i in [0, NOTES / 2, NOTES - 1] {
        let note = laptop.store.get_note(ids[i]).expect("note");
        assert_eq!(note.title, format!("Inspection {i}"));
        assert_eq!(note.body, format!("Site {i}: all valves checked.\n"));
    }
    let conn = rusqlite::Connection::open(laptop.store.db_path()).expect("read-only look");
    let mut stmt = conn.prepare("SELECT id FROM notes").expect("query");
    let on_laptop: HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .expect("ids");
    let seeded: HashSet<String> = ids.iter().map(ToString::to_string).collect();
    assert!(
        on_laptop == seeded,
        "exactly the account's notes, each once"
    );
}
