//! kill -9 of the real `outpost-server` process in the middle of a stream of pushes: after a
//! restart every mutation it acknowledged is there, and retrying the unacknowledged ones applies
//! each exactly once.

mod common;

use common::Backend;
use common::process::{place, register, start};
use outpost_protocol::NoteId;
use outpost_protocol::api::{Cursor, Outcome};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

backends!(kill_9_mid_push_loses_no_acknowledged_write_and_retries_apply_once);

async fn kill_9_mid_push_loses_no_acknowledged_write_and_retries_apply_once(backend: Backend) {
    let place = place(backend).await;
    let (mut server, base) = start(&place).await;
    let (mut device, _) = register(&base).await;

    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut unacknowledged: Vec<Vec<outpost_protocol::api::Mutation>> = Vec::new();
    let killer_after = Duration::from_millis(400);
    let started = std::time::Instant::now();
    let mut killed = false;
    for round in 0..10_000 {
        let batch: Vec<_> = (0..20)
            .map(|i| {
                device.put(
                    NoteId::new(),
                    &[
                        ("title", json!(format!("r{round} n{i}"))),
                        ("body", json!("x".repeat(2000))),
                    ],
                    None,
                )
            })
            .collect();
        if !killed && started.elapsed() > killer_after {
            // Kill while this push is on the wire.
            let push = device.try_push(batch.clone());
            let kill = async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                server.start_kill().expect("kill -9");
            };
            let (reply, ()) =
                tokio::join!(tokio::time::timeout(Duration::from_secs(10), push), kill);
            let _ = server.wait().await;
            killed = true;
            match reply {
                Ok(Ok(resp)) if resp.status() == 200 => {
                    let body: outpost_protocol::api::PushResponse =
                        resp.json().await.expect("reply");
                    acknowledged.extend(body.results.iter().map(|r| r.id.to_string()));
                }
                _ => unacknowledged.push(batch),
            }
            break;
        }
        let reply = device.push(batch.clone()).await;
        assert!(
            reply
                .results
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Applied { .. }))
        );
        acknowledged.extend(reply.results.iter().map(|r| r.id.to_string()));
    }
    assert!(killed, "the server was killed mid-stream");
    assert!(
        acknowledged.len() >= 20,
        "some pushes were acknowledged before the kill"
    );

    // Restart on the same data.
    let (_server, base) = start(&place).await;
    device.base = base;
    let mut titles_by_mutation: HashMap<String, String> = HashMap::new();
    for batch in &unacknowledged {
        let reply = device.push(batch.clone()).await;
        for (m, r) in batch.iter().zip(&reply.results) {
            assert!(
                matches!(
                    r.outcome,
                    Outcome::Applied { .. } | Outcome::Duplicate { .. }
                ),
                "retry of {} got {:?}",
                m.id,
                r.outcome
            );
            titles_by_mutation.insert(m.id.to_string(), m.entity_id.clone());
        }
        // A second retry is a duplicate for every mutation: applied exactly once.
        let again = device.push(batch.clone()).await;
        assert!(
            again
                .results
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Duplicate { .. }))
        );
    }
    let (records, _) = device.pull_all(Cursor(0)).await;
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no note twice");
    let expected = acknowledged.len() + titles_by_mutation.len();
    assert_eq!(
        records.len(),
        expected,
        "every acknowledged and retried note, once"
    );
    assert!(records.iter().all(|r| r.version.0 == 1));
}
