//! Devices whose clocks are a day off (DESIGN.md, "The clock"): they sync, the skew is shown,
//! and clocks never decide what wins over what a device has seen: a causally later edit wins,
//! and a day-fast device does not win every conflict for a day, nor a day-slow one lose them.

use outpost_core::StoreOptions;
use outpost_core::clock::{MAX_FORWARD_DRIFT_MS, SystemClock, WallClock};
use outpost_core::sync::vault::TokenVault;
use outpost_core::sync::{EngineConfig, EngineState, SyncEngine};
use outpost_e2e::device::{Device, SkewedClock, converge, title};
use outpost_e2e::server::Server;
use outpost_e2e::{outpost_json, wait_until};
use outpost_protocol::{NoteId, Stamp};
use std::sync::Arc;
use std::time::Duration;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Within a few seconds: what a round trip and the test's own pace can blur.
fn about(value: i64, expected: i64) -> bool {
    (value - expected).abs() < 5_000
}

fn clock(skew_ms: i64) -> StoreOptions {
    StoreOptions {
        wall_clock: Arc::new(SkewedClock(skew_ms)),
        ..Default::default()
    }
}

/// What the user sees: a laptop whose clock is a day fast and a tablet a day slow both sync
/// without complaint, and each says its clock is off by about a day (the app's status, and
/// `outpost status`). A note made on the fast laptop and then retitled on the slow tablet, which
/// had received it, shows the tablet's title on both: being a day ahead does not make the
/// laptop's older edit win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_fast_and_a_day_slow_device_sync_and_a_causally_later_edit_wins() {
    let server = Server::start().await;
    let fast = Device::with_clock_skew(&server.url, "ann@example.org", true, DAY_MS).await;
    let slow = Device::with_clock_skew(&server.url, "ann@example.org", false, -DAY_MS).await;

    let id = fast.note("Pump 7", "Pressure: 2.1 bar\n");
    assert!(title_stamp(&fast, id).physical_ms > SystemClock.now_ms() + DAY_MS as u64 / 2);
    let pushed = fast.sync().await;
    // The laptop measured its clock before it sent the note and brought the note's stamps
    // back to real time: the server had nothing to clamp.
    assert_eq!(pushed.applied.skew_ms, None, "nothing was clamped");
    let stamped = title_stamp(&fast, id).physical_ms;
    assert!(
        stamped <= SystemClock.now_ms() + MAX_FORWARD_DRIFT_MS,
        "the note's stamp is in real time: {stamped}"
    );
    assert!(
        about(fast.store.clock_offset_ms(), -DAY_MS),
        "the fast device learnt it is a day ahead: {}",
        fast.store.clock_offset_ms()
    );

    let pulled = slow.sync().await;
    assert!(pulled.applied.changed.contains(&id));
    assert!(about(slow.store.clock_offset_ms(), DAY_MS));
    assert_eq!(slow.store.get_note(id).expect("note").title, "Pump 7");

    // Having seen the laptop's title, the tablet changes it: the later edit, causally.
    slow.edit(id, title("Pump 7 (north)"));
    converge(&[&fast, &slow]).await;
    for d in [&fast, &slow] {
        let note = d.store.get_note(id).expect("note");
        assert_eq!(note.title, "Pump 7 (north)", "the causally later edit wins");
        assert_eq!(note.body, "Pressure: 2.1 bar\n");
    }

    // The app's status bar on the tablet.
    let engine = SyncEngine::start(
        slow.store.clone(),
        TokenVault::file_only(slow.dir()),
        EngineConfig::default(),
    );
    let mut status = engine.status();
    let shown = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.state == EngineState::UpToDate),
    )
    .await
    .expect("the tablet syncs")
    .expect("status")
    .clone();
    engine.shutdown().await;
    let skew = shown.clock_skew_ms.expect("the skew is shown");
    assert!(about(skew, DAY_MS), "status shows {skew} ms");

    // `outpost status` on the laptop, after the app quit: the skew was kept.
    let dir = fast.close();
    let status = tokio::task::spawn_blocking(move || {
        let status = outpost_json(dir.path(), &["status"]);
        drop(dir);
        status
    })
    .await
    .expect("outpost status");
    let skew = status["sync"]["clock_skew_ms"]
        .as_i64()
        .expect("outpost status shows the skew");
    assert!(about(skew, -DAY_MS), "outpost status shows {skew} ms");
}

/// The stamp of a note's title on a device, read as the database holds it.
fn title_stamp(device: &Device, id: NoteId) -> Stamp {
    let conn = rusqlite::Connection::open(device.store.db_path()).expect("read-only look");
    let stamp: String = conn
        .query_row(
            "SELECT title_stamp FROM notes WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .expect("stamp");
    stamp.parse().expect("a stamp")
}

/// What the user sees: a tablet a day slow is switched off and on again and, before it reaches
/// the server, retitles a note offline; a colleague with a right clock had retitled it a moment
/// earlier. When the tablet syncs, its title, the later one in real time, shows on both: after a
/// restart a day-slow clock does not make the tablet's edits lose to older ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_slow_device_restarted_offline_stamps_its_edits_in_real_time() {
    let server = Server::start().await;
    let slow = Device::with_clock_skew(&server.url, "ann@example.org", true, -DAY_MS).await;
    let colleague = Device::new(&server.url, "ann@example.org", false).await;
    let id = colleague.note("Valve 3", "");
    converge(&[&colleague, &slow]).await;

    let slow = slow.restart(clock(-DAY_MS));
    assert!(
        about(slow.store.clock_offset_ms(), DAY_MS),
        "the correction survived the restart"
    );
    colleague.edit(id, title("Valve 3 (closed)"));
    colleague.sync().await;
    // Real time moves on past the colleague's edit, by more than the correction can be off
    // (half a round trip on this machine).
    let theirs = title_stamp(&colleague, id);
    wait_until(Duration::from_secs(5), "real time to move on", || {
        SystemClock.now_ms() > theirs.physical_ms + 500
    });
    slow.edit(id, title("Valve 3 (open again)"));
    let mine = title_stamp(&slow, id);
    assert!(mine > theirs, "stamped in real time: {mine} vs {theirs}");

    converge(&[&colleague, &slow]).await;
    for d in [&colleague, &slow] {
        assert_eq!(
            d.store.get_note(id).expect("note").title,
            "Valve 3 (open again)",
            "the later edit wins"
        );
    }
}
