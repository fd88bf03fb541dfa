//! Sync benchmarks end to end (issue 4): a real server on 127.0.0.1 (SQLite, in this process),
//! devices with their own data directories, the real engine.
//!
//!   cargo build --release -p outpost-cli          # the RSS step runs the real `outpost sync`
//!   cargo bench -p outpost-e2e --bench sync
//!   OUTPOST_BENCH_NOTES=10000 cargo bench -p outpost-e2e --bench sync   # a smaller account
//!   OUTPOST_BENCH_HOPS=20 (rounds of the 1,000-edit hop), OUTPOST_BENCH_RSS=0 (no `outpost sync`)
//!
//! Figures: a device pushes N notes created offline; a fresh device pulls them (and the cost per
//! note of both against an account of N/10 in the same run: linear means within 1.3x; the peak RSS
//! of a separate `outpost sync` process doing the same); 1,000 offline edits from A visible on
//! B; an idle cycle; edit-to-visible latency between two online devices through the poke.

use anyhow::{Context, Result, bail};
use outpost_core::sync::vault::TokenVault;
use outpost_core::sync::{EngineConfig, SyncEngine, account, run_cycle};
use outpost_core::{NoteDraft, NoteId, NotePatch, Store};
use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
const EMAIL: &str = "bench@example.org";

struct Device {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    vault: TokenVault,
}

impl Device {
    async fn new(url: &str, register: bool) -> Result<Device> {
        Self::of(url, EMAIL, register).await
    }

    async fn of(url: &str, email: &str, register: bool) -> Result<Device> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(Store::open(dir.path())?);
        let vault = TokenVault::file_only(dir.path());
        let which = account::Account::new_if(register);
        account::sign_in(&store, &vault, url, email, PASSWORD, which).await?;
        Ok(Device { dir, store, vault })
    }

    /// Creates `n` notes offline, in batches of 5,000 as an import does.
    fn create(&self, n: usize) -> Result<Vec<NoteId>> {
        let mut ids: Vec<NoteId> = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
            let drafts = chunk
                .iter()
                .map(|&i| NoteDraft {
                    title: format!("Site visit {i}"),
                    body: body(i),
                    ..Default::default()
                })
                .collect();
            ids.extend(self.store.import_notes(drafts)?);
        }
        Ok(ids)
    }

    /// One cycle; returns its time and when the push part ended (the first pull page).
    async fn cycle(&self) -> Result<(Duration, Option<Duration>, usize, usize)> {
        let session = account::signed_in(&self.store, &self.vault)?.context("signed in")?;
        let start = Instant::now();
        let push_done = AtomicU64::new(0);
        let report = run_cycle(
            &self.store,
            &session.client,
            &EngineConfig::default(),
            &|_| {
                let _ = push_done.compare_exchange(
                    0,
                    start.elapsed().as_micros() as u64,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            },
        )
        .await?;
        let took = start.elapsed();
        let push = match push_done.load(Ordering::SeqCst) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        };
        Ok((took, push, report.pushed, report.pulled))
    }
}

/// About 1 KB of Markdown, different per note.
fn body(i: usize) -> String {
    let mut text = format!("# Site visit {i}\n\n");
    while text.len() < 1000 {
        text.push_str(&format!(
            "- Pump {} pressure {} kPa, seal {}.\n",
            i % 97,
            100 + i % 400,
            if i.is_multiple_of(3) { "ok" } else { "worn" }
        ));
    }
    text
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `outpost sync` on a fresh data directory and returns (wall time, peak RSS in KiB).
fn cli_pull_rss(url: &str, notes: usize) -> Result<(Duration, i64)> {
    let outpost = outpost_e2e::bin("outpost");
    let dir = tempfile::tempdir()?;
    let run = |args: &[&str]| {
        std::process::Command::new(&outpost)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("OUTPOST_PASSWORD", PASSWORD)
            .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let status = run(&["login", "--server", url, "--email", EMAIL])?.wait()?;
    if !status.success() {
        bail!("outpost login failed: {status}");
    }
    let start = Instant::now();
    let mut child = run(&["sync"])?;
    let (status, peak_kib) = outpost_e2e::wait_with_peak_rss(&mut child)?;
    let took = start.elapsed();
    if !status.success() {
        bail!("outpost sync failed: {status}");
    }
    let count = Store::open(dir.path())?.local_status()?.notes;
    if usize::try_from(count)? != notes {
        bail!("outpost sync pulled {count} notes, expected {notes}");
    }
    Ok((took, peak_kib))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::var("OUTPOST_BENCH_NOTES")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(100_000);
    let server_dir = tempfile::tempdir()?;
    let storage = SqliteStorage::open(server_dir.path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(serve(
        listener,
        AppState::new(Arc::new(storage)),
        std::future::pending::<()>(),
    ));
    println!("## Sync, {n} notes of ~1 KB, server on SQLite at {url}\n");
    println!("| step | figure |\n|---|---|");

    // A device creates N notes offline (imported in batches), then pushes them.
    // The cost per note of a smaller account first, in this same run, to hold the big one's
    // against: a first sync must stay linear (issue 15: a quadratic push went unseen).
    let small = (n / 10).max(1);
    let per_note_small = {
        let a = Device::of(&url, "small@example.org", true).await?;
        a.create(small)?;
        let (took, push, _, _) = a.cycle().await?;
        let b = Device::of(&url, "small@example.org", false).await?;
        let (pulled_in, _, _, _) = b.cycle().await?;
        (
            push.unwrap_or(took) / small as u32,
            pulled_in / small as u32,
        )
    };

    let a = Device::new(&url, true).await?;
    let t = Instant::now();
    let ids = a.create(n)?;
    println!(
        "| create {n} notes offline (`import_notes`, batches of 5,000) | {:.2} s |",
        t.elapsed().as_secs_f64()
    );
    let (took, push, pushed, pulled) = a.cycle().await?;
    if pushed != n {
        bail!("pushed {pushed} of {n}");
    }
    println!(
        "| **push {n}** (first sync of A: push, then pull back its own {pulled}) | push {:.2} s; whole cycle {:.2} s |",
        push.unwrap_or(took).as_secs_f64(),
        took.as_secs_f64()
    );

    let per_note_push = push.unwrap_or(took) / n as u32;

    // A fresh device pulls them.
    let b = Device::new(&url, false).await?;
    let (took, _, _, pulled) = b.cycle().await?;
    if pulled != n || usize::try_from(b.store.local_status()?.notes)? != n {
        bail!("B pulled {pulled} of {n}");
    }
    println!(
        "| **pull {n}** to a fresh device (in process) | {:.2} s, {:.0} notes/s |",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let per_note_pull = took / n as u32;
    let linear = |what: &str, small_cost: Duration, big_cost: Duration| {
        let ratio = big_cost.as_secs_f64() / small_cost.as_secs_f64().max(1e-9);
        println!(
            "| cost per note, {what}: {small} notes vs {n} | {:.1} µs vs {:.1} µs: **{ratio:.2}x** ({}) |",
            small_cost.as_secs_f64() * 1e6,
            big_cost.as_secs_f64() * 1e6,
            if ratio <= 1.3 {
                "linear: at most 1.3x"
            } else {
                "NOT LINEAR: over 1.3x"
            }
        );
    };
    linear("push", per_note_small.0, per_note_push);
    linear("pull", per_note_small.1, per_note_pull);
    // OUTPOST_BENCH_RSS=0 leaves this step out (a bench binary copied away from its `outpost`).
    if std::env::var("OUTPOST_BENCH_RSS").as_deref() != Ok("0") {
        let cli_url = url.clone();
        match tokio::task::spawn_blocking(move || cli_pull_rss(&cli_url, n)).await? {
            Ok((took, rss_kib)) => println!(
                "| pull {n} with `outpost sync` (a process of its own) | {:.2} s, **peak RSS {:.0} MB** |",
                took.as_secs_f64(),
                rss_kib as f64 / 1024.0
            ),
            Err(e) => println!("| pull with `outpost sync` | not measured: {e:#} |"),
        }
    }

    // 1,000 offline edits on A, visible on B: several rounds (OUTPOST_BENCH_HOPS, default 5),
    // each editing the same notes again, so one noisy moment does not make the figure.
    let rounds: usize = std::env::var("OUTPOST_BENCH_HOPS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    let mut hops = Vec::new();
    let (mut a_took, mut b_took) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for id in ids.iter().take(1000) {
            a.store.update_note(
                *id,
                NotePatch {
                    body: Some(format!("{}\nEdited offline ({round}).", body(0))),
                    ..Default::default()
                },
            )?;
        }
        let t = Instant::now();
        let (took_a, _, pushed, _) = a.cycle().await?;
        let (took_b, _, _, pulled) = b.cycle().await?;
        let took = t.elapsed();
        if pushed != 1000 || pulled < 1000 {
            bail!("edits: pushed {pushed}, pulled {pulled}");
        }
        if !b
            .store
            .get_note(ids[999])?
            .body
            .ends_with(&format!("Edited offline ({round})."))
        {
            bail!("B does not show the last edit");
        }
        hops.push(took);
        a_took.push(took_a);
        b_took.push(took_b);
    }
    for v in [&mut hops, &mut a_took, &mut b_took] {
        v.sort();
    }
    println!(
        "| **1,000 offline edits A to B** (A's cycle + B's cycle, {rounds} rounds) | median {} (A {}, B {}), range {} to {} |",
        ms(percentile(&hops, 0.5)),
        ms(percentile(&a_took, 0.5)),
        ms(percentile(&b_took, 0.5)),
        ms(hops[0]),
        ms(hops[hops.len() - 1])
    );

    // An idle cycle: nothing to push, nothing to pull.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let (took, _, pushed, pulled) = b.cycle().await?;
        if pushed + pulled != 0 {
            bail!("an idle cycle moved data");
        }
        idle.push(took);
    }
    idle.sort();
    println!(
        "| **idle cycle** (200 runs) | median {}, p99 {} |",
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 0.99))
    );

    // Edit-to-visible through the poke: both engines running, A edits, B's store shows it.
    let engine_a = SyncEngine::start(
        a.store.clone(),
        TokenVault::file_only(a.dir.path()),
        EngineConfig::default(),
    );
    let engine_b = SyncEngine::start(
        b.store.clone(),
        TokenVault::file_only(b.dir.path()),
        EngineConfig::default(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seen = b.store.subscribe();
    let mut latencies = Vec::new();
    for (i, &id) in ids.iter().take(100).enumerate() {
        tracing::debug!(i, "bench: edit on A");
        let t = Instant::now();
        a.store.update_note(
            id,
            NotePatch {
                title: Some(format!("Poked {i}")),
                ..Default::default()
            },
        )?;
        let deadline = t + Duration::from_secs(10);
        loop {
            let change = tokio::time::timeout_at(deadline.into(), seen.recv())
                .await
                .context("the edit never reached B")?;
            if matches!(&change, Ok(c) if c.notes.contains(&id))
                && b.store.get_note(id)?.title == format!("Poked {i}")
            {
                break;
            }
        }
        tracing::debug!(
            i,
            ms = t.elapsed().as_millis() as u64,
            "bench: visible on B"
        );
        latencies.push(t.elapsed());
        // Space the edits out like a person would, past the burst throttle.
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    latencies.sort();
    println!(
        "| **edit visible on the other device** (100 edits, poke) | p50 {}, p99 {}, max {} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1])
    );
    engine_a.shutdown().await;
    engine_b.shutdown().await;
    repair_figure().await
}

/// A server that lost 1,000 of a device's 2,000 notes without a sign in its history (rows gone,
/// its sums those of what it still holds): the device's next cycle that moves anything finds
/// the difference by the digests and sends the 1,000 again. The figure is that whole cycle.
async fn repair_figure() -> Result<()> {
    const NOTES: usize = 2000;
    const LOST: usize = 1000;
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let serve_once = |listener: tokio::net::TcpListener| -> Result<_> {
        let storage = SqliteStorage::open(dir.path())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, AppState::new(Arc::new(storage)), async {
            let _ = stopped.await;
        }));
        Ok((stop, task))
    };
    let (stop, task) = serve_once(listener)?;
    let c = Device::new(&url, true).await?;
    let drafts = (0..NOTES)
        .map(|i| NoteDraft {
            title: format!("Pump {i}"),
            body: body(i),
            ..Default::default()
        })
        .collect();
    let ids = c.store.import_notes(drafts)?;
    c.cycle().await?;
    let _ = stop.send(());
    task.await??;
    {
        let db =
            rusqlite::Connection::open(dir.path().join(outpost_server::storage::sqlite::DB_FILE))?;
        for id in ids.iter().take(LOST) {
            db.execute("DELETE FROM records WHERE entity_id = ?1", [id.to_string()])?;
        }
        db.execute_batch("DROP TABLE digests; PRAGMA user_version = 2;")?;
    }
    let (stop, task) = serve_once(tokio::net::TcpListener::bind(addr).await?)?;
    c.store.update_note(
        ids[NOTES - 1],
        NotePatch {
            title: Some("Pump (checked)".into()),
            ..Default::default()
        },
    )?;
    let (took, _, pushed, _) = c.cycle().await?;
    if pushed < LOST {
        bail!("the repair sent {pushed}, not the {LOST} the server lost");
    }
    println!(
        "| **repair of {LOST} notes the server lost** (of {NOTES}; the cycle that finds and resends them) | {} |",
        ms(took)
    );
    let _ = stop.send(());
    task.await??;
    Ok(())
}
