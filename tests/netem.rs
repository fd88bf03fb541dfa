//! Bad networks, played by `outpost-netem` between devices and a real in-process server (issue 6):
//! the airplane switch in the middle of a push and of a pull, a stalled link, a first sync on 2G,
//! connectivity flapping while two devices edit, and (with the real `outpost-server` process)
//! the server killed mid-batch. Each scenario ends with the sync doctor proving that device and
//! server agree, and with every note present exactly once.
//!
//! Each test prints its run time (`cargo test -p outpost-e2e --test netem -- --nocapture`).

use outpost_core::NoteDraft;
use outpost_core::sync::vault::TokenVault;
use outpost_core::sync::{EngineConfig, EngineState, Progress, SyncEngine, SyncError, SyncStatus};
use outpost_e2e::device::{Device, body, doctor_agrees};
use outpost_e2e::server::{Server, spawn_server};
use outpost_netem::{Mode, Netem};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A real server and the proxy in front of it (online); devices use `url`.
struct Net {
    server: Server,
    netem: Netem,
    url: String,
}

impl Net {
    async fn start() -> Net {
        let server = Server::start().await;
        let upstream: SocketAddr = server
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("server address");
        let netem = Netem::start("127.0.0.1:0".parse().expect("addr"), upstream)
            .await
            .expect("netem");
        let url = format!("http://{}", netem.local_addr());
        Net { server, netem, url }
    }

    async fn set(&self, mode: Mode) {
        self.netem.set_mode(mode).await.expect("switch the network");
    }
}

/// `n` small notes as an import: a title and a short body each, titles unique.
fn drafts(prefix: &str, n: usize) -> Vec<NoteDraft> {
    (0..n)
        .map(|i| NoteDraft {
            title: format!("{prefix} {i:05}"),
            body: format!("Pump {}: {} kPa, seal ok.\n", i % 40, 180 + i % 70),
            ..Default::default()
        })
        .collect()
}

/// Fails the test if a title is on `device` more than once; returns the number of notes.
fn each_title_once(device: &Device) -> usize {
    let mut seen = BTreeMap::new();
    for (title, ..) in device.snapshot().into_values() {
        *seen.entry(title).or_insert(0) += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "notes doubled: {doubled:?}");
    seen.len()
}

fn pending(device: &Device) -> i64 {
    device.store.local_status().expect("status").pending
}

fn took(name: &str, started: Instant) {
    eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
}

/// Waits (polling, with a deadline) until the engine's status satisfies `done`.
async fn wait_status(
    status: &watch::Receiver<SyncStatus>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&SyncStatus) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(&status.borrow()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            *status.borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const OUTBOX: usize = 2_000;

/// What the user sees: 2,000 notes imported on a laptop that was offline for weeks start to go
/// up on a slow link; halfway, the user switches on airplane mode. The sync says "offline" and
/// what the server had acknowledged is no longer pending, the rest is. Back online, the next sync
/// sends the rest: each note is on the server exactly once, nothing is left to send, and another
/// device of the account gets each note once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_offline_mid_push_loses_nothing_and_doubles_nothing() {
    let started = Instant::now();
    let net = Net::start().await;
    let a = Device::new(&net.url, "ann@example.org", true).await;
    a.store
        .import_notes(drafts("Import", OUTBOX))
        .expect("import");
    assert_eq!(pending(&a), OUTBOX as i64);
    // A slow link and small batches, so the push is still running when the switch comes.
    let cfg = EngineConfig {
        push_batch_count: 100,
        ..Default::default()
    };
    net.set(Mode::TwoG {
        latency_ms: 50,
        kbit_per_s: 1_000,
    })
    .await;
    let (failed, ()) = tokio::join!(a.sync_with(&cfg, &|_| {}), async {
        // The airplane switch once the server has acknowledged the first batch.
        let deadline = Instant::now() + Duration::from_secs(30);
        while pending(&a) == OUTBOX as i64 {
            assert!(Instant::now() < deadline, "the first batch never went up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        net.set(Mode::Offline).await;
    });
    assert!(
        matches!(failed, Err(SyncError::Offline(_))),
        "the cycle fails as offline: {failed:?}"
    );
    let left = pending(&a);
    assert!(
        (1..OUTBOX as i64).contains(&left),
        "acknowledged batches left the outbox, the others wait: {left} pending"
    );

    net.set(Mode::Online).await;
    a.sync_with(&cfg, &|_| {}).await.expect("sync once online");
    assert_eq!(pending(&a), 0, "outbox empty");
    let diagnosis = doctor_agrees(&a).await;
    assert_eq!(
        diagnosis.server.notes, OUTBOX as u64,
        "each note once on the server"
    );
    let b = Device::new(&net.server.url, "ann@example.org", false).await;
    b.sync().await;
    assert_eq!(b.snapshot(), a.snapshot());
    assert_eq!(each_title_once(&b), OUTBOX);
    took("offline mid-push", started);
}

const ACCOUNT: usize = 5_000;

/// What the user sees: a new laptop downloads an account of 5,000 notes; after a few pages the
/// user walks out of Wi-Fi range. The app says "offline" and keeps what already arrived (those
/// notes can be read at once). Back in range, the download goes on from where it stopped, not
/// from the start, and ends with every note once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_offline_mid_pull_keeps_what_arrived_and_resumes_from_the_cursor() {
    let started = Instant::now();
    let net = Net::start().await;
    let a = Device::new(&net.server.url, "ann@example.org", true).await;
    a.store
        .import_notes(drafts("Archive", ACCOUNT))
        .expect("import");
    a.sync().await;
    let b = Device::new(&net.url, "ann@example.org", false).await;
    let cfg = EngineConfig {
        pull_limit: 250,
        ..Default::default()
    };
    // A slow link, so pages are still coming when the switch comes.
    net.set(Mode::TwoG {
        latency_ms: 50,
        kbit_per_s: 2_000,
    })
    .await;
    let received = AtomicU64::new(0);
    let progress = |p: Progress| received.store(p.done, Ordering::SeqCst);
    let (failed, ()) = tokio::join!(b.sync_with(&cfg, &progress), async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.load(Ordering::SeqCst) < 500 {
            assert!(Instant::now() < deadline, "the first pages never came");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        net.set(Mode::Offline).await;
    });
    assert!(
        matches!(failed, Err(SyncError::Offline(_))),
        "the cycle fails as offline: {failed:?}"
    );
    let cursor = b.store.cursor().expect("cursor");
    let kept = b.snapshot().len();
    assert!(cursor.0 > 0, "the cursor of the applied pages is saved");
    assert!(
        (250..ACCOUNT).contains(&kept),
        "the applied pages are kept: {kept} notes"
    );

    net.set(Mode::Online).await;
    let first = Mutex::new(None::<Progress>);
    let report = b
        .sync_with(&cfg, &|p| {
            first.lock().expect("lock").get_or_insert(p);
        })
        .await
        .expect("sync once online");
    let first = first
        .into_inner()
        .expect("lock")
        .expect("progress reported");
    assert!(
        first.total as usize <= ACCOUNT - kept,
        "the download resumed from the saved cursor: {first:?} after keeping {kept}"
    );
    assert!(
        report.pulled < ACCOUNT && kept + report.pulled >= ACCOUNT,
        "only the rest was pulled: {} after {kept}",
        report.pulled
    );
    doctor_agrees(&b).await;
    assert_eq!(b.snapshot(), a.snapshot());
    assert_eq!(each_title_once(&b), ACCOUNT);
    took("offline mid-pull", started);
}

/// What the user sees: the hotel Wi-Fi is "connected" but nothing comes back. The app does not
/// spin for ever: after the read timeout it says "offline" with the reason, and the note typed
/// meanwhile stays pending. When the link comes back, the next cycle sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_times_out_as_offline_and_the_next_cycle_completes() {
    let started = Instant::now();
    let net = Net::start().await;
    let a = Device::new(&net.url, "ann@example.org", true).await;
    let cfg = EngineConfig {
        debounce: Duration::from_millis(20),
        // The product waits 30 s between bytes; a second is enough to see the behaviour.
        read_timeout: Some(Duration::from_secs(1)),
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        ..Default::default()
    };
    let engine = SyncEngine::start(a.store.clone(), TokenVault::file_only(a.dir()), cfg);
    let status = engine.status();
    wait_status(&status, Duration::from_secs(10), "up to date", |s| {
        s.state == EngineState::UpToDate
    })
    .await;

    net.set(Mode::Stall).await;
    let id = a.note("Room 214", "radiator cold");
    wait_status(&status, Duration::from_secs(10), "offline", |s| {
        s.state == EngineState::Offline
    })
    .await;
    let shown = status.borrow().clone();
    assert!(
        shown
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not answer in time")),
        "the reason is shown: {shown:?}"
    );
    assert_eq!(shown.pending, 1, "the note waits to be sent");

    net.set(Mode::Online).await;
    wait_status(&status, Duration::from_secs(15), "synced again", |s| {
        s.state == EngineState::UpToDate && s.pending == 0
    })
    .await;
    engine.shutdown().await;
    let diagnosis = doctor_agrees(&a).await;
    assert_eq!(diagnosis.server.notes, 1);
    let b = Device::new(&net.server.url, "ann@example.org", false).await;
    b.sync().await;
    assert_eq!(b.store.get_note(id).expect("on B").body, "radiator cold");
    took("stalled link", started);
}

/// Notes of the 2G first sync. The issue asks for 10,000; see the test's doc comment.
const TWO_G_NOTES: usize = 10_000;

/// What the user sees: a new tablet signs in on a 2G link (300 ms latency, 50 kbit/s: the
/// issue's figures) to an account of 10,000 short notes. The first sync finishes, the progress
/// bar moves several times on the way, and every note is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_on_2g_completes_with_progress() {
    let started = Instant::now();
    let net = Net::start().await;
    let a = Device::new(&net.server.url, "ann@example.org", true).await;
    a.store
        .import_notes(drafts("Field", TWO_G_NOTES))
        .expect("import");
    a.sync().await;
    let b = Device::new(&net.url, "ann@example.org", false).await;
    net.set(Mode::TwoG {
        latency_ms: 300,
        kbit_per_s: 50,
    })
    .await;
    let steps = Mutex::new(Vec::<Progress>::new());
    let sync_started = Instant::now();
    b.sync_with(&EngineConfig::default(), &|p| {
        steps.lock().expect("lock").push(p)
    })
    .await
    .expect("first sync on 2G");
    let synced_in = sync_started.elapsed();
    let steps = steps.into_inner().expect("lock");
    assert!(
        steps.len() >= 3,
        "progress advanced several times: {steps:?}"
    );
    assert!(
        steps.windows(2).all(|w| w[0].done < w[1].done),
        "progress only goes forward: {steps:?}"
    );
    assert_eq!(steps.last().map(|p| p.done), Some(TWO_G_NOTES as u64));
    doctor_agrees(&b).await;
    assert_eq!(each_title_once(&b), TWO_G_NOTES);
    eprintln!(
        "2G first sync of {TWO_G_NOTES} notes: {:.1} s, {} bytes down, {} steps",
        synced_in.as_secs_f64(),
        net.netem.status().bytes_down,
        steps.len()
    );
    took("2G first sync", started);
}

/// How long connectivity flaps: a minute, as the issue asks.
const FLAP_FOR: Duration = Duration::from_secs(60);
/// Offline, then online, each this long.
const FLAP_EVERY: Duration = Duration::from_millis(300);

/// Notes one device types while the network flaps: a new note every 100 ms, and every third
/// time an edit of one of its own earlier notes. Returns title -> last body typed.
async fn type_while_flapping(device: &Device, name: &str) -> BTreeMap<String, String> {
    let mut typed = BTreeMap::new();
    let mut ids = Vec::new();
    let until = Instant::now() + FLAP_FOR;
    let mut i = 0;
    while Instant::now() < until {
        let title = format!("{name} {i:04}");
        let text = format!("typed on {name}, {i}");
        ids.push((title.clone(), device.note(&title, &text)));
        typed.insert(title, text);
        if i % 3 == 2 {
            let (title, id) = &ids[i / 2];
            let text = format!("edited on {name} at {i}");
            device.edit(*id, body(&text));
            typed.insert(title.clone(), text);
        }
        i += 1;
        // The user's typing pace, not a synchronisation.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    typed
}

/// What the user sees: on a train, the connection comes and goes every few hundred ms for a
/// while, and two devices of the account are being used, each syncing on its own. Once the
/// train is out of the hills, both settle: up to date, nothing pending, both hold the same notes,
/// every note and edit exactly once, and the doctor finds nothing to repair on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_connectivity_while_two_devices_edit_converges_exactly_once() {
    let started = Instant::now();
    let net = Net::start().await;
    let a = Device::new(&net.url, "ann@example.org", true).await;
    let b = Device::new(&net.url, "ann@example.org", false).await;
    let cfg = EngineConfig {
        debounce: Duration::from_millis(50),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..Default::default()
    };
    // What brings one device's last notes to the other once both are quiet is the background
    // poll: at its shortest (15 s) so the test settles within its deadline.
    for device in [&a, &b] {
        device
            .store
            .set_pref("sync.interval_secs", serde_json::Value::from(15))
            .expect("poll interval");
    }
    let engine_a = SyncEngine::start(a.store.clone(), TokenVault::file_only(a.dir()), cfg.clone());
    let engine_b = SyncEngine::start(b.store.clone(), TokenVault::file_only(b.dir()), cfg);

    let flap = async {
        let until = Instant::now() + FLAP_FOR;
        let mut online = true;
        while Instant::now() < until {
            tokio::time::sleep(FLAP_EVERY).await;
            online = !online;
            net.set(if online { Mode::Online } else { Mode::Offline })
                .await;
        }
        net.set(Mode::Online).await;
    };
    let (typed_a, typed_b, ()) = tokio::join!(
        type_while_flapping(&a, "A"),
        type_while_flapping(&b, "B"),
        flap
    );
    let mut typed = typed_a;
    typed.extend(typed_b);
    let cut = net.netem.status().connections_cut;

    // Online for good: both engines catch up by themselves.
    let (status_a, status_b) = (engine_a.status(), engine_b.status());
    let deadline = Instant::now() + Duration::from_secs(45);
    for (status, device) in [(&status_a, &a), (&status_b, &b)] {
        loop {
            let settled = {
                let s = status.borrow();
                s.state == EngineState::UpToDate && s.pending == 0
            };
            if settled && device.snapshot().len() == typed.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "timed out settling: {:?}",
                *status.borrow()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    engine_a.shutdown().await;
    engine_b.shutdown().await;

    for device in [&a, &b] {
        let diagnosis = doctor_agrees(device).await;
        assert_eq!(diagnosis.server.notes, typed.len() as u64, "once each");
        assert_eq!(each_title_once(device), typed.len());
        let seen: BTreeMap<String, String> = device
            .snapshot()
            .into_values()
            .map(|(title, body, ..)| (title, body))
            .collect();
        assert_eq!(seen, typed, "every note and edit, as last typed");
    }
    eprintln!(
        "flapping: {} notes typed, {cut} connections cut by the proxy",
        typed.len()
    );
    took("flapping connectivity", started);
}

/// What the user sees: a laptop sends 3,000 notes; in the middle, the server machine loses
/// power (kill -9, a batch in flight). The sync says offline; the notes the server acknowledged
/// are no longer pending. When the server is back (same database, same address) the next sync
/// sends the rest, each note is on the server exactly once, and the doctor finds nothing to
/// repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_mid_batch_and_restarted_loses_and_doubles_nothing() {
    const NOTES: usize = 3_000;
    let started = Instant::now();
    let data = tempfile::tempdir().expect("server dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = spawn_server(data.path(), port).await;
    let url = format!("http://127.0.0.1:{port}");
    let a = Device::new(&url, "ann@example.org", true).await;
    a.store.import_notes(drafts("Sent", NOTES)).expect("import");
    let cfg = EngineConfig {
        push_batch_count: 100,
        ..Default::default()
    };
    let (failed, ()) = tokio::join!(a.sync_with(&cfg, &|_| {}), async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while pending(&a) == NOTES as i64 {
            assert!(Instant::now() < deadline, "the first batch never went up");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill().expect("kill -9 the server");
        server.wait().expect("reap the server");
    });
    assert!(
        matches!(failed, Err(SyncError::Offline(_))),
        "the cycle fails as offline: {failed:?}"
    );
    let left = pending(&a);
    assert!(
        (1..NOTES as i64).contains(&left),
        "acknowledged batches left the outbox, the others wait: {left} pending"
    );

    let mut server = spawn_server(data.path(), port).await;
    a.sync_with(&cfg, &|_| {})
        .await
        .expect("sync after the restart");
    assert_eq!(pending(&a), 0, "outbox empty");
    let diagnosis = doctor_agrees(&a).await;
    assert_eq!(diagnosis.server.notes, NOTES as u64, "each note once");
    let b = Device::new(&url, "ann@example.org", false).await;
    b.sync().await;
    assert_eq!(each_title_once(&b), NOTES);
    assert_eq!(b.snapshot(), a.snapshot());
    let _ = server.kill();
    let _ = server.wait();
    took("server killed mid-batch", started);
}
