//! Airplane mode: a fault-injecting proxy between a device and the real server. Here, the reply
//! that is lost: the server applies a push and answers, and the connection breaks before the
//! answer reaches the device. The device must not count anything as delivered that it has not
//! heard back about (L2), must send the very same mutations again (L3), and the server must apply
//! them once (S1), telling the device what happened the first time.

use outpost_core::SyncState;
use outpost_core::sync::SyncError;
use outpost_e2e::device::{Device, body, converge};
use outpost_e2e::proxy::Proxy;
use outpost_e2e::server::Server;

const PUSH: &str = "/v1/sync/push";

/// What the user sees: they add three notes and finish a fourth on a train; the device sends
/// them just as a tunnel starts, the server stores them, the answer never arrives. The app says
/// "offline" and the four changes stay pending: nothing shows as synced that the device has not
/// heard back about. Out of the tunnel, the next sync goes through: the server recognises the
/// same four mutations (`duplicate`, by their unchanged ids), nothing is stored twice, the notes
/// show as synced and nothing is left to send. Another device of the account has each note once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_reply_is_lost_is_sent_again_and_applied_once() {
    let server = Server::start().await;
    let proxy = Proxy::start(&server.url).await;
    let a = Device::new(&proxy.url, "ann@example.org", true).await;
    let b = Device::new(&server.url, "ann@example.org", false).await;
    let report = a.note("Site report", "");
    converge(&[&a, &b]).await;

    let new = [
        a.note("Pump 4", "seal leaking"),
        a.note("Pump 5", "fine"),
        a.note("Valve 2", "stuck half open"),
    ];
    a.edit(report, body("All pumps checked.\n"));
    let queued = a.store.outbox(100).expect("outbox");
    assert_eq!(queued.len(), 4);

    proxy.cut_replies(PUSH, 1);
    let failed = a.try_sync().await;
    assert!(
        matches!(failed, Err(SyncError::Offline(_))),
        "a broken connection reads as offline: {failed:?}"
    );
    assert_eq!(proxy.replies_cut(), 1, "the proxy cut the push's reply");
    let status = a.store.local_status().expect("status");
    assert_eq!(status.pending, 4, "not delivered until acknowledged (L2)");
    for id in new.iter().chain([&report]) {
        assert_eq!(
            a.store.get_note(*id).expect("note").sync_state,
            SyncState::Pending
        );
    }
    let after_cut = a.store.outbox(100).expect("outbox");
    assert!(after_cut.iter().all(|e| e.sent), "each was sent once");
    let key = |e: &outpost_core::OutboxEntry| (e.mutation_id, e.mutation_number, e.fields.clone());
    assert_eq!(
        after_cut.iter().map(key).collect::<Vec<_>>(),
        queued.iter().map(key).collect::<Vec<_>>(),
        "the same mutations, ids, numbers and content, wait to be sent again (L3)"
    );

    // The server did apply them: the other device already has them.
    b.sync().await;
    let on_b = b.snapshot();
    assert_eq!(on_b.len(), 4);
    assert_eq!(on_b[&report].1, "All pumps checked.\n");

    proxy.pass_through();
    let retry = a.sync().await;
    assert_eq!(retry.pushed, 4);
    let mut duplicates = retry.applied.duplicates.clone();
    duplicates.sort();
    let mut sent: Vec<_> = queued.iter().map(|e| e.mutation_id).collect();
    sent.sort();
    assert_eq!(duplicates, sent, "the server answered duplicate for each");
    assert!(a.store.outbox(100).expect("outbox").is_empty());
    let status = a.store.local_status().expect("status");
    assert_eq!((status.pending, status.failed, status.notes), (0, 0, 4));
    for id in new.iter().chain([&report]) {
        assert_eq!(
            a.store.get_note(*id).expect("note").sync_state,
            SyncState::Synced
        );
    }

    // Nothing was stored twice: no new version reaches the other device.
    let again = b.sync().await;
    assert_eq!(again.pulled, 0, "the retry changed nothing on the server");
    assert_eq!(b.snapshot(), a.snapshot());
    assert!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST /v1/sync/push"))
            .count()
            >= 3,
        "the setup push, the cut one and the retry went through the proxy"
    );
}

/// What the user sees: they edit the last line of a shared checklist while a colleague has just
/// edited its first line; the device sends the edit, the server answers "conflict" (the body
/// changed since), and that answer is lost. The next sync learns of the conflict from the
/// server's duplicate reply and merges: both lines survive on both devices. Nothing is dropped
/// because the first answer never arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_whose_reply_is_lost_is_still_merged() {
    let server = Server::start().await;
    let proxy = Proxy::start(&server.url).await;
    let a = Device::new(&proxy.url, "ann@example.org", true).await;
    let b = Device::new(&server.url, "ann@example.org", false).await;
    let id = a.note("Checklist", "- valves\n- gauges\n- pumps\n");
    converge(&[&a, &b]).await;

    b.edit(id, body("- valves (done)\n- gauges\n- pumps\n"));
    b.sync().await;
    a.edit(id, body("- valves\n- gauges\n- pumps (done)\n"));
    proxy.cut_replies(PUSH, 1);
    assert!(matches!(a.try_sync().await, Err(SyncError::Offline(_))));
    assert_eq!(proxy.replies_cut(), 1);

    let retry = a.sync().await;
    assert_eq!(retry.applied.duplicates.len(), 1);
    assert_eq!(
        retry.applied.merged,
        vec![id],
        "merged, as if the reply had come"
    );
    converge(&[&a, &b]).await;
    for d in [&a, &b] {
        let note = d.store.get_note(id).expect("note");
        assert_eq!(note.body, "- valves (done)\n- gauges\n- pumps (done)\n");
        assert_eq!(note.sync_state, SyncState::Synced);
    }
}

/// What the user sees: a change the server refuses (here a tag far too long, queued by an older
/// build) is sent, refused, and the refusal is lost on the way. The next sync shows it as failed
/// with the server's reason, for the user to fix or discard; it does not pretend to be synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_whose_reply_is_lost_still_shows_as_failed() {
    let server = Server::start().await;
    let proxy = Proxy::start(&server.url).await;
    let a = Device::new(&proxy.url, "ann@example.org", true).await;
    let poisoned = a.note("Poisoned", "x");
    a.poison_outbox(poisoned);

    proxy.cut_replies(PUSH, 1);
    assert!(matches!(a.try_sync().await, Err(SyncError::Offline(_))));
    let retry = a.sync().await;
    assert_eq!(retry.applied.duplicates.len(), 1);
    assert_eq!(retry.applied.rejected, 1);
    let note = a.store.get_note(poisoned).expect("note");
    assert_eq!(note.sync_state, SyncState::Failed);
    let status = a.store.local_status().expect("status");
    assert_eq!((status.failed, status.pending), (1, 0));
    let dead = a.store.dead_letters().expect("dead letters");
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("note.tags")),
        "the server's reason is kept: {:?}",
        dead[0].last_error
    );
}
