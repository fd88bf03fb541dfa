//! The randomized simulation (issues 6 and 11): several devices of one account, each behind its
//! own `outpost-netem`, in front of the real `outpost-server` process, doing random operations
//! (create, edit small fields, edit the body, move to a notebook, trash, restore, delete for
//! good, resolve conflicts, create, rename and delete notebooks, set synced preferences, sync,
//! alone or all at once) through random offline periods, proxy faults (flaky, reply cut, stall,
//! 2G), restarts with a new clock skew, kills in the middle of a sync cycle, and server faults:
//! kill -9, backups (a file copy with the server stopped, `outpost-server backup` while it runs)
//! and restores of an older one, and a full or read-only disk for a while (its data directory is
//! a small tmpfs where the test may mount one). At the end every device goes online and syncs until
//! quiet, and [`verify`] checks what a user would: every replica holds the same notes as the
//! server, every note created and not deleted for good exists exactly once on every device
//! (whatever the server lost), every small field and synced preference shows its last write (by
//! stamp), a body only one device ever edited shows that device's last text, every notebook
//! created is there once with its last name and deleted if any device deleted it, nothing is
//! pending, failed or in conflict.
//!
//! The seed fixes the whole schedule: each step draws the same random values whatever happened
//! before it, so a replay of a seed runs the same operations, faults, restarts and clock skews in
//! the same order. What a seed cannot fix is timing (where exactly a kill lands in a request);
//! a failure that hangs on it may take a few replays to show again.

use crate::device::{Device, SkewedClock, all_notes};
use crate::server::{answers_health, spawn_server};
use outpost_core::sync::Resolution;
use outpost_core::sync::doctor::diagnose;
use outpost_core::sync::{EngineConfig, account};
use outpost_core::{
    Error, NoteDraft, NoteId, NotePatch, NotebookId, Stamp, StoreOptions, SyncState,
};
use outpost_netem::{Mode, Netem};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub devices: usize,
    pub steps: usize,
    /// The server on PostgreSQL (from `OUTPOST_TEST_PG_URL`, or a cluster of this process's
    /// own), not SQLite.
    pub postgres: bool,
}

impl SimConfig {
    /// One seed in four runs the server on PostgreSQL (by the seed, so a replay does too).
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            devices: 5,
            steps: 300,
            postgres: seed % 4 == 3,
        }
    }
}

/// What a run did and found; a run that finds something wrong panics instead, naming its seed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimReport {
    pub seed: u64,
    /// The server's database: `sqlite` or `postgres`.
    pub backend: &'static str,
    pub devices: usize,
    pub steps: usize,
    /// Operations tried, by kind.
    pub ops: BTreeMap<&'static str, u64>,
    /// Operations that could not apply on that device at that moment (the note had not reached
    /// it yet, was not in the Trash, ...), as a user's click would be refused.
    pub ops_refused: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Connections the proxies reset, and replies they cut after the server committed.
    pub connections_cut: u64,
    pub replies_cut: u64,
    pub syncs_ok: u64,
    pub syncs_failed: u64,
    pub conflicts_seen: u64,
    pub conflicts_resolved: u64,
    /// Notes at the end (every one created; none lost, none doubled).
    pub notes: usize,
    /// Notebooks at the end, deleted ones too (each created once, none from nowhere).
    pub notebooks: usize,
    /// Field writes checked against the last stamp, and bodies checked against their writer.
    pub fields_checked: usize,
    pub bodies_checked: usize,
    /// Rounds of "everyone syncs" the end needed until quiet.
    pub final_rounds: usize,
    pub lost: usize,
    pub doubled: usize,
    pub seconds: f64,
}

impl SimReport {
    fn op(&mut self, kind: &'static str) {
        *self.ops.entry(kind).or_default() += 1;
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    pub fn operations(&self) -> u64 {
        self.ops.values().sum()
    }

    pub fn faults_injected(&self) -> u64 {
        self.faults.values().sum()
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |m: &BTreeMap<&'static str, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "seed {} ({}): {} devices, {} steps, {:.1} s; ops {} ({}; {} refused); faults {} ({}; \
             {} connections cut, {} replies cut); syncs {} ok, {} failed; conflicts {} seen, {} \
             resolved; {} notes, {} notebooks, {} fields and {} bodies checked; quiet after {} \
             rounds; {} lost, {} doubled, converged",
            self.seed,
            self.backend,
            self.devices,
            self.steps,
            self.seconds,
            self.operations(),
            list(&self.ops),
            self.ops_refused,
            self.faults_injected(),
            list(&self.faults),
            self.connections_cut,
            self.replies_cut,
            self.syncs_ok,
            self.syncs_failed,
            self.conflicts_seen,
            self.conflicts_resolved,
            self.notes,
            self.notebooks,
            self.fields_checked,
            self.bodies_checked,
            self.final_rounds,
            self.lost,
            self.doubled,
        )
    }
}

/// The random values of one step, all drawn whatever the step turns out to do, so that the
/// stream of draws (and with it the schedule) depends on the seed alone.
#[derive(Clone, Copy, Debug)]
struct Draw {
    kind: u32,
    device: usize,
    note: u64,
    a: u64,
    b: u64,
    c: u64,
}

impl Draw {
    fn next(rng: &mut fastrand::Rng, devices: usize) -> Draw {
        Draw {
            kind: rng.u32(0..100),
            device: rng.usize(0..devices),
            note: rng.u64(..),
            a: rng.u64(..),
            b: rng.u64(..),
            c: rng.u64(..),
        }
    }
}

/// A clock skew a device may have: right, a few seconds, minutes, or a day either way.
const SKEWS_MS: [i64; 7] = [0, 4_000, -7_000, 600_000, -900_000, 86_400_000, -86_400_000];
const TAGS: [&str; 4] = ["pump", "site", "urgent", "todo"];

/// The small fields the oracle follows by stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Title,
    Tags,
    Pinned,
    Archived,
    Notebook,
}

impl Field {
    fn column(self) -> &'static str {
        match self {
            Field::Title => "title_stamp",
            Field::Tags => "tags_stamp",
            Field::Pinned => "pinned_stamp",
            Field::Archived => "archived_stamp",
            Field::Notebook => "notebook_stamp",
        }
    }
}

/// A note as every part of it shows to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteState {
    pub notebook_id: Option<NotebookId>,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub pinned: bool,
    pub archived: bool,
    pub deleted: bool,
}

/// Every note of a store in every view, as the user sees it; panics if a note is listed twice.
pub fn full_snapshot(store: &outpost_core::Store) -> BTreeMap<NoteId, NoteState> {
    all_notes(store)
        .into_iter()
        .map(|(id, note)| {
            let state = NoteState {
                notebook_id: note.notebook_id,
                title: note.title,
                body: note.body,
                tags: note.tags,
                pinned: note.pinned,
                archived: note.archived,
                deleted: note.deleted,
            };
            (id, state)
        })
        .collect()
}

/// A device of the run: the device (none while "switched off"), its proxy, its clock.
struct SimDevice {
    device: Option<Device>,
    netem: Netem,
    skew_ms: i64,
}

impl SimDevice {
    fn get(&self) -> &Device {
        self.device.as_ref().expect("the device is on")
    }

    /// Quit and start again, with the clock at `skew_ms` (data directory and token kept).
    fn restart(&mut self, skew_ms: i64) {
        let device = self.device.take().expect("the device is on");
        self.skew_ms = skew_ms;
        self.device = Some(device.restart(options(skew_ms)));
    }
}

fn options(skew_ms: i64) -> StoreOptions {
    StoreOptions {
        wall_clock: Arc::new(SkewedClock(skew_ms)),
        ..Default::default()
    }
}

/// The real server process on a fixed port, so that proxies and devices keep its address
/// across a kill -9 and restart; on SQLite or PostgreSQL. An SQLite data directory is, where
/// this machine lets the test mount one (as root), a small tmpfs of its own, so that the disk
/// can really fill up.
struct ServerProc {
    dir: tempfile::TempDir,
    /// On PostgreSQL: the database it serves (a restore moves it to another one).
    database_url: Option<String>,
    port: u16,
    child: Option<std::process::Child>,
    /// Backups taken so far, oldest first (outside the data directory).
    backups_dir: tempfile::TempDir,
    backups: Vec<Backup>,
    /// The data directory is a tmpfs of its own (the disk-full fault needs one).
    tmpfs: bool,
    /// The disk is full until this step (a ballast file takes what was free).
    full_until: Option<usize>,
    /// The disk is read-only until this step (remounted so, the server restarted on it).
    read_only_until: Option<usize>,
}

/// A copy of the server's database: a file copy made with the server stopped (what a nightly
/// file backup does), or `outpost-server backup` while it runs; on PostgreSQL a copy of the
/// database made with the server stopped, or `pg_dump` while it runs.
enum Backup {
    FileCopy(std::path::PathBuf),
    Command(std::path::PathBuf),
    PgCopy(String),
    PgDump(std::path::PathBuf),
}

/// Runs a program to its end; panics with what it said if it fails.
fn run_ok(cmd: &mut std::process::Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pg_bin(name: &str) -> std::path::PathBuf {
    crate::pg::bin_dir()
        .unwrap_or_else(|e| panic!("PostgreSQL binaries: {e}"))
        .join(name)
}

const SERVER_DB: &str = outpost_server::storage::sqlite::DB_FILE;
const BALLAST: &str = "ballast";

/// The database's files in a directory (the database and its WAL and shared-memory files).
fn db_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| dir.join(format!("{SERVER_DB}{suffix}")))
        .filter(|p| p.exists())
        .collect()
}

impl ServerProc {
    async fn start(postgres: bool) -> ServerProc {
        let dir = tempfile::tempdir().expect("server dir");
        let database_url = if postgres {
            Some(crate::pg::fresh_database_url().await)
        } else {
            None
        };
        let tmpfs = !postgres
            && std::env::var_os("OUTPOST_SIM_NO_MOUNT").is_none()
            && std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = ServerProc {
            dir,
            database_url,
            port,
            child: None,
            backups_dir: tempfile::tempdir().expect("backups dir"),
            backups: Vec::new(),
            tmpfs,
            full_until: None,
            read_only_until: None,
        };
        server.ensure_up().await;
        server
    }

    async fn spawn(&self) -> std::process::Child {
        match &self.database_url {
            Some(url) => {
                crate::server::spawn_server_on(
                    &["--database-url".as_ref(), url.as_ref()],
                    self.port,
                )
                .await
            }
            None => spawn_server(self.dir.path(), self.port).await,
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it as a service manager does (SIGTERM), so the files are at rest.
    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::server::stop_server(child);
        }
    }

    async fn ensure_up(&mut self) {
        if self.child.is_none() || !answers_health(self.port).await {
            self.kill9();
            self.child = Some(self.spawn().await);
        }
    }

    /// A nightly file copy: the server stopped, its database files copied, started again.
    async fn backup_by_copy(&mut self) {
        self.stop();
        if let Some(url) = &self.database_url {
            let copy = crate::pg::copy_database(url).await;
            self.backups.push(Backup::PgCopy(copy));
            self.ensure_up().await;
            return;
        }
        let to = self
            .backups_dir
            .path()
            .join(format!("copy-{}", self.backups.len()));
        std::fs::create_dir_all(&to).expect("backup dir");
        for file in db_files(self.dir.path()) {
            let name = file.file_name().expect("a file name");
            std::fs::copy(&file, to.join(name)).expect("copy a database file");
        }
        self.backups.push(Backup::FileCopy(to));
        self.ensure_up().await;
    }

    /// `outpost-server backup` while the server runs.
    fn backup_by_command(&mut self) -> bool {
        let to = self
            .backups_dir
            .path()
            .join(format!("backup-{}.db", self.backups.len()));
        if let Some(url) = &self.database_url {
            run_ok(
                std::process::Command::new(pg_bin("pg_dump"))
                    .arg("--format=custom")
                    .arg("--file")
                    .arg(&to)
                    .arg(url),
                "pg_dump",
            );
            self.backups.push(Backup::PgDump(to));
            return true;
        }
        let ok = std::process::Command::new(crate::bin("outpost-server"))
            .arg("backup")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--to")
            .arg(&to)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            self.backups.push(Backup::Command(to));
        }
        ok
    }

    /// The disk died: the server stopped and put back to backup `which` (by the way it was
    /// made), then started. False if there is no backup yet.
    async fn restore(&mut self, which: usize) -> bool {
        if self.backups.is_empty() {
            return false;
        }
        self.free_disk();
        self.writable_at(None).await;
        self.stop();
        match &self.backups[which % self.backups.len()] {
            Backup::FileCopy(from) => {
                for file in db_files(self.dir.path()) {
                    std::fs::remove_file(file).expect("remove a database file");
                }
                for file in db_files(from) {
                    let name = file.file_name().expect("a file name");
                    std::fs::copy(&file, self.dir.path().join(name)).expect("put a file back");
                }
            }
            Backup::Command(from) => run_ok(
                std::process::Command::new(crate::bin("outpost-server"))
                    .arg("restore")
                    .arg("--data-dir")
                    .arg(self.dir.path())
                    .arg("--from")
                    .arg(from),
                "outpost-server restore",
            ),
            // As the README says for PostgreSQL: into a new database, then marked restored.
            Backup::PgCopy(from) => {
                let restored = crate::pg::copy_database(from).await;
                self.restored_into(restored);
            }
            Backup::PgDump(from) => {
                let restored = crate::pg::fresh_database_url().await;
                run_ok(
                    std::process::Command::new(pg_bin("pg_restore"))
                        .arg("--no-owner")
                        .arg("--dbname")
                        .arg(&restored)
                        .arg(from),
                    "pg_restore",
                );
                self.restored_into(restored);
            }
        }
        self.ensure_up().await;
        true
    }

    /// Marks a PostgreSQL database just restored (a new epoch) and serves it from now on.
    fn restored_into(&mut self, url: String) {
        run_ok(
            std::process::Command::new(crate::bin("outpost-server"))
                .arg("restore")
                .arg("--database-url")
                .arg(&url),
            "outpost-server restore --database-url",
        );
        self.database_url = Some(url);
    }

    /// Fills the server's disk (a tmpfs of its own) until `until`. False where the data
    /// directory is not one (no mount here): the fault is not played.
    fn fill_disk(&mut self, until: usize) -> bool {
        use std::io::Write as _;
        if !self.tmpfs || self.read_only_until.is_some() {
            return false;
        }
        if self.full_until.is_none() {
            let mut ballast =
                std::fs::File::create(self.dir.path().join(BALLAST)).expect("ballast");
            let chunk = vec![0u8; 1 << 20];
            // Until the disk says no: what is left is less than one chunk, then nothing.
            while ballast.write_all(&chunk).is_ok() {}
            while ballast.write_all(&chunk[..4096]).is_ok() {}
        }
        self.full_until = Some(until);
        true
    }

    /// Frees the disk when its time is up (or at once with `None`).
    fn free_disk_at(&mut self, step: Option<usize>) {
        if self
            .full_until
            .is_some_and(|until| step.is_none_or(|s| s >= until))
        {
            let _ = std::fs::remove_file(self.dir.path().join(BALLAST));
            self.full_until = None;
        }
    }

    fn free_disk(&mut self) {
        self.free_disk_at(None);
    }

    /// The disk fails into read-only until `until`: the server stopped, its tmpfs remounted
    /// read-only, the server started on it (it serves pulls and refuses pushes). False where the
    /// data directory is not a tmpfs of its own, or while the disk is full (one disk fault at a
    /// time).
    async fn make_read_only(&mut self, until: usize) -> bool {
        if !self.tmpfs || self.full_until.is_some() {
            return false;
        }
        if self.read_only_until.is_none() {
            self.stop();
            self.remount(true);
            self.ensure_up().await;
        }
        self.read_only_until = Some(until);
        true
    }

    /// Makes the disk writable again when its time is up (or at once with `None`), and restarts
    /// the server on it, as whoever repaired the disk would.
    async fn writable_at(&mut self, step: Option<usize>) {
        if self
            .read_only_until
            .is_some_and(|until| step.is_none_or(|s| s >= until))
        {
            self.stop();
            self.remount(false);
            self.read_only_until = None;
            self.ensure_up().await;
        }
    }

    fn remount(&self, read_only: bool) {
        let opts = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        run_ok(
            std::process::Command::new("mount")
                .args(["-o", opts])
                .arg(self.dir.path()),
            "remount the server's disk",
        );
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill9();
        if self.tmpfs {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// A small field's write: its stamp, its value, and whether the server may clamp the stamp.
type FieldWrite = (Stamp, String, bool);

/// The oracle: what the run wrote, to check the end against.
#[derive(Default)]
struct Oracle {
    /// Every note created, and by which device.
    created: BTreeMap<NoteId, usize>,
    /// Each small field write: (note, field) -> [(stamp, value, whether the server may clamp
    /// the stamp: more than `MAX_STAMP_SKEW_MS` ahead of the real time of the write)].
    fields: BTreeMap<(NoteId, Field), Vec<FieldWrite>>,
    /// Body writes: note -> [(device, body)], in order.
    bodies: BTreeMap<NoteId, Vec<(usize, String)>>,
    /// Notes that were ever in conflict on some device.
    conflicted: BTreeSet<NoteId>,
    /// Every notebook created, by which device; its name writes; those some device deleted.
    notebooks: BTreeMap<NotebookId, usize>,
    notebook_names: BTreeMap<NotebookId, Vec<FieldWrite>>,
    notebooks_deleted: BTreeSet<NotebookId>,
    /// Notes some device deleted for good (an edit elsewhere may bring one back, and so may a
    /// server restored from a backup older than the purge).
    purged: BTreeSet<NoteId>,
    /// Each synced preference's writes: key -> [(stamp, value as JSON, clampable)].
    prefs: BTreeMap<String, Vec<FieldWrite>>,
}

/// The stamp a store holds for a field of a note (its own write, or one received since).
fn field_stamp(device: &Device, id: NoteId, field: Field) -> Stamp {
    let conn = rusqlite::Connection::open_with_flags(
        device.store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("a read-only look at the store");
    let sql = format!("SELECT {} FROM notes WHERE id = ?1", field.column());
    let stamp: String = conn
        .query_row(&sql, [id.to_string()], |r| r.get(0))
        .expect("the field's stamp");
    stamp.parse().expect("a stamp")
}

/// A note's row on a device with its stamps, for a failure's message.
fn device_row(device: &Device, id: &str) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        device.store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("a read-only look at the store");
    conn.query_row(
        "SELECT title, title_stamp, body, body_stamp, tags, tags_stamp, pinned, pinned_stamp, \
         archived, archived_stamp, deleted, deleted_stamp, notebook_id, notebook_stamp, \
         server_version FROM notes WHERE id = ?1",
        [id],
        |r| {
            let mut parts = Vec::new();
            for i in 0..15 {
                parts.push(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
            }
            Ok(parts.join(" | "))
        },
    )
    .unwrap_or_else(|e| format!("{id}: {e}"))
}

/// An operation's result: refused like a user's click (the note is not there yet, not in the
/// Trash, ...) counts; anything else (a database error) fails the run.
fn refused(seed: u64, what: &str, e: &Error) -> bool {
    match e {
        Error::NotFound { .. } | Error::Invalid(_) => true,
        other => panic!("seed {seed}: {what} failed: {other}"),
    }
}

fn engine_config(d: Draw) -> EngineConfig {
    EngineConfig {
        // Small batches and pages, so a cycle has several and faults land between them.
        push_batch_count: 1 + (d.b % 40) as usize,
        push_batch_max: 1 + (d.b % 40) as usize,
        pull_limit: 5 + (d.c % 50) as u32,
        // A stalled link must not hold the run for the product's 30 s.
        read_timeout: Some(Duration::from_millis(1_200)),
        ..Default::default()
    }
}

/// `OUTPOST_SIM_TRACE=1` prints every step (to follow a failing seed's replay).
fn tracing_steps() -> bool {
    std::env::var_os("OUTPOST_SIM_TRACE").is_some_and(|v| v != "0")
}

/// Runs one simulation; panics (naming the seed) when a check fails.
pub async fn run(cfg: SimConfig) -> SimReport {
    let trace = tracing_steps();
    // OUTPOST_SIM_WATCH=N: the note created at step N is printed on every device whenever its
    // row changes (with OUTPOST_SIM_TRACE, to follow one note through a failing replay).
    let watch_step: Option<usize> = std::env::var("OUTPOST_SIM_WATCH")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut watched: Option<NoteId> = None;
    let mut watched_rows: Vec<String> = Vec::new();
    let started = Instant::now();
    let seed = cfg.seed;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut report = SimReport {
        seed,
        backend: if cfg.postgres { "postgres" } else { "sqlite" },
        devices: cfg.devices,
        steps: cfg.steps,
        ..Default::default()
    };
    let mut oracle = Oracle::default();
    let mut server = ServerProc::start(cfg.postgres).await;
    let upstream: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let email = format!("sim-{seed}@example.org");

    let mut devs: Vec<SimDevice> = Vec::with_capacity(cfg.devices);
    for i in 0..cfg.devices {
        let netem = Netem::start_seeded(
            "127.0.0.1:0".parse().expect("addr"),
            upstream,
            seed.wrapping_mul(31).wrapping_add(i as u64),
        )
        .await
        .expect("netem");
        let url = format!("http://{}", netem.local_addr());
        let skew_ms = SKEWS_MS[rng.usize(0..SKEWS_MS.len())];
        let device = Device::with_options(&url, &email, i == 0, options(skew_ms)).await;
        devs.push(SimDevice {
            device: Some(device),
            netem,
            skew_ms,
        });
    }

    for step in 0..cfg.steps {
        let d = Draw::next(&mut rng, cfg.devices);
        server.free_disk_at(Some(step));
        server.writable_at(Some(step)).await;
        if trace {
            let note = (!oracle.created.is_empty()).then(|| {
                let n = oracle.created.len() as u64;
                oracle.created.keys().nth((d.note % n) as usize).copied()
            });
            eprintln!(
                "step {step} at {:.1} s: kind {} device {} note {note:?}",
                started.elapsed().as_secs_f64(),
                d.kind,
                d.device
            );
        }
        let pick_note = |oracle: &Oracle| -> Option<NoteId> {
            let n = oracle.created.len();
            (n > 0).then(|| {
                *oracle
                    .created
                    .keys()
                    .nth((d.note % n as u64) as usize)
                    .expect("in range")
            })
        };
        let pick_notebook = |oracle: &Oracle, draw: u64| -> Option<NotebookId> {
            let n = oracle.notebooks.len();
            (n > 0).then(|| {
                *oracle
                    .notebooks
                    .keys()
                    .nth((draw % n as u64) as usize)
                    .expect("in range")
            })
        };
        match d.kind {
            18..22 => {
                let device = devs[d.device].get();
                match d.a % 4 {
                    0 | 1 => {
                        report.op("create notebook");
                        let name = format!("Notebook {step} from device {}", d.device);
                        let nb = device
                            .store
                            .create_notebook(&name)
                            .expect("create a notebook");
                        oracle.notebooks.insert(nb.id, d.device);
                        record_notebook_name(&mut oracle, device, nb.id, &nb.name);
                    }
                    2 => {
                        report.op("rename notebook");
                        let Some(id) = pick_notebook(&oracle, d.b) else {
                            continue;
                        };
                        let name = format!("Renamed at step {step} on device {}", d.device);
                        match device.store.rename_notebook(id, &name) {
                            Ok(nb) => record_notebook_name(&mut oracle, device, id, &nb.name),
                            Err(e) => {
                                if refused(seed, "renaming a notebook", &e) {
                                    report.ops_refused += 1;
                                }
                            }
                        }
                    }
                    _ => {
                        report.op("delete notebook");
                        let Some(id) = pick_notebook(&oracle, d.b) else {
                            continue;
                        };
                        // Its notes stay, unfiled: each is a move the oracle follows.
                        let filed: Vec<NoteId> = all_notes(&device.store)
                            .into_iter()
                            .filter(|(_, n)| n.notebook_id == Some(id))
                            .map(|(note, _)| note)
                            .collect();
                        match device.store.delete_notebook(id) {
                            Ok(()) => {
                                if trace {
                                    eprintln!("  deleted notebook {id} on device {}", d.device);
                                }
                                oracle.notebooks_deleted.insert(id);
                                for note_id in filed {
                                    let note = device.store.get_note(note_id).expect("note");
                                    record_fields(
                                        &mut oracle,
                                        device,
                                        note_id,
                                        &note,
                                        &[Field::Notebook],
                                    );
                                }
                            }
                            Err(e) => {
                                if refused(seed, "deleting a notebook", &e) {
                                    report.ops_refused += 1;
                                }
                            }
                        }
                    }
                }
            }
            16..18 => {
                report.op("purge");
                let Some(id) = pick_note(&oracle) else {
                    continue;
                };
                let device = devs[d.device].get();
                // From the Trash, as a user does: moved there first if it is not.
                let in_trash = match device.store.get_note(id) {
                    Ok(note) => note.deleted || device.store.trash_note(id).is_ok(),
                    Err(e) => {
                        if refused(seed, "reading a note", &e) {
                            report.ops_refused += 1;
                        }
                        continue;
                    }
                };
                if !in_trash {
                    report.ops_refused += 1;
                    continue;
                }
                match device.store.purge_note(id) {
                    Ok(()) => {
                        oracle.purged.insert(id);
                    }
                    Err(e) => {
                        if refused(seed, "deleting a note for good", &e) {
                            report.ops_refused += 1;
                        }
                    }
                }
            }
            0..16 => {
                report.op("create");
                let device = devs[d.device].get();
                let tags = if d.b.is_multiple_of(3) {
                    vec![TAGS[(d.c % 4) as usize].to_owned()]
                } else {
                    Vec::new()
                };
                let draft = NoteDraft {
                    title: format!("Note {step} from device {}", d.device),
                    body: (0..1 + d.a % 4)
                        .map(|l| format!("line {l} of step {step}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    tags,
                    pinned: d.b.is_multiple_of(5),
                    ..Default::default()
                };
                let note = device.store.create_note(draft).expect("create a note");
                if watch_step == Some(step) {
                    watched = Some(note.id);
                }
                oracle.created.insert(note.id, d.device);
                oracle
                    .bodies
                    .entry(note.id)
                    .or_default()
                    .push((d.device, note.body.clone()));
                record_fields(&mut oracle, device, note.id, &note, &FIELDS_ALL);
            }
            22..40 => {
                report.op("edit body");
                let Some(id) = pick_note(&oracle) else {
                    continue;
                };
                let device = devs[d.device].get();
                let current = match device.store.get_note(id) {
                    Ok(n) => n.body,
                    Err(e) => {
                        if refused(seed, "reading a note", &e) {
                            report.ops_refused += 1;
                        }
                        continue;
                    }
                };
                let mut lines: Vec<String> = current.lines().map(str::to_owned).collect();
                let new_line = format!("edit {step} on device {}", d.device);
                match (d.a % 3, lines.len()) {
                    (0, _) | (_, 0) => lines.push(new_line),
                    (1, n) => lines[(d.b % n as u64) as usize] = new_line,
                    (_, n) => {
                        lines.remove((d.b % n as u64) as usize);
                    }
                }
                let patch = NotePatch {
                    body: Some(lines.join("\n")),
                    ..Default::default()
                };
                match device.store.update_note(id, patch) {
                    Ok(note) => oracle
                        .bodies
                        .entry(id)
                        .or_default()
                        .push((d.device, note.body)),
                    Err(e) => {
                        if refused(seed, "editing a body", &e) {
                            report.ops_refused += 1;
                        }
                    }
                }
            }
            40..54 => {
                report.op("edit fields");
                let Some(id) = pick_note(&oracle) else {
                    continue;
                };
                let device = devs[d.device].get();
                let field = [
                    Field::Title,
                    Field::Tags,
                    Field::Pinned,
                    Field::Archived,
                    Field::Notebook,
                ][(d.a % 5) as usize];
                let patch = match field {
                    Field::Title => NotePatch {
                        title: Some(format!("Retitled at step {step} on device {}", d.device)),
                        ..Default::default()
                    },
                    Field::Tags => NotePatch {
                        tags: Some(
                            TAGS.iter()
                                .enumerate()
                                .filter(|(i, _)| d.b >> i & 1 == 1)
                                .map(|(_, t)| (*t).to_owned())
                                .collect(),
                        ),
                        ..Default::default()
                    },
                    Field::Pinned => NotePatch {
                        pinned: Some(d.b.is_multiple_of(2)),
                        ..Default::default()
                    },
                    Field::Archived => NotePatch {
                        archived: Some(d.b.is_multiple_of(2)),
                        ..Default::default()
                    },
                    // Into a notebook this device may not have yet (refused, as the UI
                    // would not offer it), or out of any.
                    Field::Notebook => NotePatch {
                        notebook_id: Some(if d.b.is_multiple_of(4) {
                            None
                        } else {
                            pick_notebook(&oracle, d.c)
                        }),
                        ..Default::default()
                    },
                };
                match device.store.update_note(id, patch) {
                    Ok(note) => record_fields(&mut oracle, device, id, &note, &[field]),
                    Err(e) => {
                        if refused(seed, "editing fields", &e) {
                            report.ops_refused += 1;
                        }
                    }
                }
            }
            54..59 => {
                report.op("trash");
                let Some(id) = pick_note(&oracle) else {
                    continue;
                };
                if let Err(e) = devs[d.device].get().store.trash_note(id)
                    && refused(seed, "trashing", &e)
                {
                    report.ops_refused += 1;
                }
            }
            59..63 => {
                report.op("restore");
                let Some(id) = pick_note(&oracle) else {
                    continue;
                };
                if let Err(e) = devs[d.device].get().store.restore_note(id)
                    && refused(seed, "restoring", &e)
                {
                    report.ops_refused += 1;
                }
            }
            63..67 => {
                report.op("resolve conflict");
                let device = devs[d.device].get();
                let conflicts = device.store.conflicts().expect("conflicts");
                if conflicts.is_empty() {
                    continue;
                }
                let c = &conflicts[(d.a % conflicts.len() as u64) as usize];
                let resolution = resolution_for(d.b, &c.mine, &c.theirs);
                let note = device
                    .store
                    .resolve_conflict(c.note_id, resolution)
                    .expect("resolve a listed conflict");
                report.conflicts_resolved += 1;
                oracle
                    .bodies
                    .entry(c.note_id)
                    .or_default()
                    .push((d.device, note.body));
            }
            80..82 => {
                report.op("set a preference");
                let device = devs[d.device].get();
                let (key, value) = match d.a % 3 {
                    0 => (
                        "theme",
                        serde_json::json!(["system", "light", "dark"][(d.b % 3) as usize]),
                    ),
                    1 => ("editor.font_size", serde_json::json!(8 + d.b % 30)),
                    _ => (
                        "editor.spellcheck",
                        serde_json::json!(d.b.is_multiple_of(2)),
                    ),
                };
                device.store.set_pref(key, value).expect("set a preference");
                let (value, stamp) = prefs_of(device)[key].clone();
                oracle.prefs.entry(key.to_owned()).or_default().push((
                    stamp,
                    value,
                    clampable(stamp),
                ));
            }
            67..80 => {
                report.op("sync");
                sync_one(&devs, d.device, d, &mut report, &mut oracle).await;
            }
            82..85 => {
                report.op("sync all at once");
                let cycles = devs.iter().map(|dev| {
                    let cfg = engine_config(d);
                    async move { dev.get().sync_with(&cfg, &|_| {}).await }
                });
                for result in futures_util::future::join_all(cycles).await {
                    count_sync(&mut report, result.is_ok());
                }
                for i in 0..devs.len() {
                    note_conflicts(&devs, i, &mut report, &mut oracle);
                }
            }
            85..92 => {
                let mode = match d.a % 10 {
                    0..4 => Mode::Online,
                    4 | 5 => Mode::Offline,
                    6 => Mode::Flaky {
                        drop_percent: 20 + (d.b % 60) as u8,
                    },
                    7 => Mode::CutReply {
                        next: 1 + (d.b % 3) as usize,
                    },
                    8 => Mode::Stall,
                    _ => Mode::two_g(),
                };
                report.fault(match mode {
                    Mode::Online => "back online",
                    Mode::Offline => "offline",
                    Mode::Flaky { .. } => "flaky",
                    Mode::CutReply { .. } => "cut-reply",
                    Mode::Stall => "stall",
                    Mode::TwoG { .. } => "2g",
                });
                devs[d.device]
                    .netem
                    .set_mode(mode)
                    .await
                    .expect("switch the network");
            }
            92..95 => {
                let skew = if d.a.is_multiple_of(3) {
                    report.fault("clock skew changed");
                    SKEWS_MS[(d.c % SKEWS_MS.len() as u64) as usize]
                } else {
                    devs[d.device].skew_ms
                };
                if d.b.is_multiple_of(2) {
                    // Killed in the middle of a cycle: the cycle's future is dropped at an
                    // await (what a kill leaves: SQLite rolls back what was not committed).
                    report.fault("client killed mid-cycle");
                    let cfg = engine_config(d);
                    let cycle = devs[d.device].get().sync_with(&cfg, &|_| {});
                    let _ = tokio::time::timeout(Duration::from_millis(d.c % 60), cycle).await;
                } else {
                    report.fault("client restarted");
                }
                devs[d.device].restart(skew);
            }
            _ => match d.a % 10 {
                3 | 4 if d.b.is_multiple_of(2) => {
                    report.fault("server backed up (a copy, server stopped)");
                    server.backup_by_copy().await;
                }
                3 | 4 => {
                    if server.backup_by_command() {
                        report.fault("server backed up (backup tool, server running)");
                    }
                }
                5 | 6 => {
                    // The disk died; last night's copy (or an older one) is put back.
                    if trace {
                        eprintln!(
                            "  restoring backup {} of {}",
                            d.b as usize % server.backups.len().max(1),
                            server.backups.len()
                        );
                    }
                    if server.restore(d.b as usize).await {
                        report.fault("server restored from an older backup");
                    }
                }
                7 | 8 if d.b.is_multiple_of(3) => {
                    if server.make_read_only(step + 3 + (d.b % 15) as usize).await {
                        report.fault("server disk read-only for a while");
                    }
                }
                7 | 8 => {
                    if server.fill_disk(step + 3 + (d.b % 15) as usize) {
                        report.fault("server disk full for a while");
                    }
                }
                _ => {
                    // The server loses power while a device is in a cycle.
                    report.fault("server killed (kill -9)");
                    let cfg = engine_config(d);
                    let device = devs[d.device].get();
                    let delay = Duration::from_millis(d.c % 40);
                    let (result, ()) = tokio::join!(device.sync_with(&cfg, &|_| {}), async {
                        tokio::time::sleep(delay).await;
                        server.kill9();
                    });
                    count_sync(&mut report, result.is_ok());
                    server.ensure_up().await;
                }
            },
        }
        if let Some(id) = watched {
            watched_rows.resize(devs.len(), String::new());
            for (i, dev) in devs.iter().enumerate() {
                let Some(device) = dev.device.as_ref() else {
                    continue;
                };
                let row = device_row(device, &id.to_string());
                let queued: Vec<String> = device
                    .store
                    .outbox_for(&id.to_string())
                    .unwrap_or_default()
                    .iter()
                    .map(|e| {
                        format!(
                            "{} sent={} base={:?} {:?}",
                            e.mutation_id,
                            e.sent,
                            e.base_version,
                            e.fields.get("body").map(|b| b.value.to_string())
                        )
                    })
                    .collect();
                let row = format!("{row} | queued {queued:?}");
                if row != watched_rows[i] {
                    eprintln!("  watched, step {step}, device {i}: {row}");
                    watched_rows[i] = row;
                }
            }
        }
    }

    settle(&mut devs, &mut server, &mut rng, &mut report, &mut oracle).await;
    if let Some(id) = watched {
        for (i, dev) in devs.iter().enumerate() {
            eprintln!(
                "  watched, end, device {i}: {}",
                device_row(dev.get(), &id.to_string())
            );
        }
    }
    verify(&devs, &oracle, &mut report).await;
    for dev in &devs {
        let status = dev.netem.status();
        report.connections_cut += status.connections_cut;
        report.replies_cut += status.replies_cut;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

const FIELDS_ALL: [Field; 4] = [Field::Title, Field::Tags, Field::Pinned, Field::Archived];

fn field_value(note: &outpost_core::Note, field: Field) -> String {
    match field {
        Field::Title => note.title.clone(),
        Field::Tags => format!("{:?}", note.tags),
        Field::Pinned => note.pinned.to_string(),
        Field::Archived => note.archived.to_string(),
        Field::Notebook => note.notebook_id.map(|n| n.to_string()).unwrap_or_default(),
    }
}

fn record_fields(
    oracle: &mut Oracle,
    device: &Device,
    id: NoteId,
    note: &outpost_core::Note,
    fields: &[Field],
) {
    for &field in fields {
        let stamp = field_stamp(device, id, field);
        oracle.fields.entry((id, field)).or_default().push((
            stamp,
            field_value(note, field),
            clampable(stamp),
        ));
    }
}

/// A notebook's name as this device wrote it, with the stamp it holds for it.
fn record_notebook_name(oracle: &mut Oracle, device: &Device, id: NotebookId, name: &str) {
    let stamp = notebooks_of(device)[&id].name_stamp;
    oracle
        .notebook_names
        .entry(id)
        .or_default()
        .push((stamp, name.to_owned(), clampable(stamp)));
}

/// A notebook as every device must end up holding it (deleted ones too).
#[derive(Clone, Debug, PartialEq, Eq)]
struct NotebookRow {
    name: String,
    name_stamp: Stamp,
    deleted: bool,
}

/// Every notebook of a store, deleted ones too (the app lists only the others).
fn notebooks_of(device: &Device) -> BTreeMap<NotebookId, NotebookRow> {
    let conn = rusqlite::Connection::open_with_flags(
        device.store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("a read-only look at the store");
    let mut stmt = conn
        .prepare("SELECT id, name, name_stamp, deleted FROM notebooks")
        .expect("notebooks");
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })
    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
    .expect("notebook rows")
    .into_iter()
    .map(|(id, name, stamp, deleted)| {
        let row = NotebookRow {
            name,
            name_stamp: stamp.parse().expect("a stamp"),
            deleted,
        };
        (id.parse().expect("a notebook id"), row)
    })
    .collect()
}

/// Every preference row of a store: key -> (value as JSON, stamp).
fn prefs_of(device: &Device) -> BTreeMap<String, (String, Stamp)> {
    let conn = rusqlite::Connection::open_with_flags(
        device.store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("a read-only look at the store");
    let mut stmt = conn
        .prepare("SELECT key, value, stamp FROM prefs")
        .expect("prefs");
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
    .expect("preference rows")
    .into_iter()
    .map(|(key, value, stamp)| (key, (value, stamp.parse().expect("a stamp"))))
    .collect()
}

/// Last writer wins, checked: the value shown (`got`, under `stamp`) is one of the writes, under
/// that write's stamp (or the server's clamp of it, for a clock too far ahead), and no write with
/// a later stamp was lost, unless the server clamped that one.
fn check_last_write(writes: &[FieldWrite], got: &str, stamp: Stamp) -> Result<(), String> {
    let shown_by = |(w, value, clamped): &&FieldWrite| {
        value == got
            && (*w == stamp
                || (*clamped
                    && w.node == stamp.node
                    && w.counter == stamp.counter
                    && w.physical_ms > stamp.physical_ms))
    };
    if !writes.iter().any(|w| shown_by(&w)) {
        return Err(format!(
            "shows {got:?} under {stamp}, which no write made: {writes:?}"
        ));
    }
    let lost: Vec<_> = writes
        .iter()
        .filter(|(w, value, clamped)| *w > stamp && !clamped && value != got)
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "shows {got:?} under {stamp}, but later writes were lost: {lost:?}"
        ));
    }
    Ok(())
}

/// Whether the server will pull this stamp back (a device clock too far ahead).
fn clampable(stamp: Stamp) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    stamp.physical_ms > now_ms + outpost_protocol::api::MAX_STAMP_SKEW_MS
}

fn resolution_for(draw: u64, mine: &str, theirs: &str) -> Resolution {
    match draw % 3 {
        0 => Resolution::Mine,
        1 => Resolution::Theirs,
        _ => Resolution::Text(format!("{mine}\n{theirs}")),
    }
}

fn count_sync(report: &mut SimReport, ok: bool) {
    if ok {
        report.syncs_ok += 1;
    } else {
        report.syncs_failed += 1;
    }
}

fn note_conflicts(devs: &[SimDevice], i: usize, report: &mut SimReport, oracle: &mut Oracle) {
    for c in devs[i].get().store.conflicts().expect("conflicts") {
        if oracle.conflicted.insert(c.note_id) {
            report.conflicts_seen += 1;
        }
    }
}

async fn sync_one(
    devs: &[SimDevice],
    i: usize,
    d: Draw,
    report: &mut SimReport,
    oracle: &mut Oracle,
) {
    let cfg = engine_config(d);
    let result = devs[i].get().sync_with(&cfg, &|_| {}).await;
    if tracing_steps() {
        eprintln!("  sync of device {i}: {result:?}");
    }
    let ok = result.is_ok();
    count_sync(report, ok);
    note_conflicts(devs, i, report, oracle);
}

/// The end: every proxy online, the server up, every device syncs; conflicts are resolved as a
/// user would (randomly: mine, theirs or both); repeated until a whole round changes nothing.
async fn settle(
    devs: &mut [SimDevice],
    server: &mut ServerProc,
    rng: &mut fastrand::Rng,
    report: &mut SimReport,
    oracle: &mut Oracle,
) {
    let seed = report.seed;
    server.free_disk();
    server.writable_at(None).await;
    server.ensure_up().await;
    for dev in devs.iter() {
        dev.netem.set_mode(Mode::Online).await.expect("back online");
    }
    let cfg = EngineConfig {
        read_timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    };
    const MAX_ROUNDS: usize = 12;
    for round in 1..=MAX_ROUNDS {
        report.final_rounds = round;
        // Quiet: a whole round in which no device sent or received anything.
        let mut moved = false;
        for (i, dev) in devs.iter().enumerate() {
            // Online for good: a cycle may still fail once on a connection a fault left
            // behind; it must not fail three times.
            let mut tries = 0;
            loop {
                match dev.get().sync_with(&cfg, &|_| {}).await {
                    Ok(cycle) => {
                        if tracing_steps() {
                            eprintln!("  settle round {round}, device {i}: {cycle:?}");
                        }
                        moved |= cycle.pushed > 0 || cycle.pulled > 0;
                        break;
                    }
                    Err(e) => {
                        tries += 1;
                        assert!(
                            tries < 3,
                            "seed {seed}: device {i} cannot sync once online: {e}"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        let mut resolved_any = false;
        for (i, dev) in devs.iter().enumerate() {
            let store = &dev.get().store;
            for c in store.conflicts().expect("conflicts") {
                if oracle.conflicted.insert(c.note_id) {
                    report.conflicts_seen += 1;
                }
                let note = store
                    .resolve_conflict(c.note_id, resolution_for(rng.u64(..), &c.mine, &c.theirs))
                    .expect("resolve");
                report.conflicts_resolved += 1;
                oracle
                    .bodies
                    .entry(c.note_id)
                    .or_default()
                    .push((i, note.body));
                resolved_any = true;
            }
        }
        if resolved_any || moved {
            continue;
        }
        let pending: i64 = devs
            .iter()
            .map(|d| d.get().store.local_status().expect("status").pending)
            .sum();
        let first = full_snapshot(&devs[0].get().store);
        let same = devs[1..]
            .iter()
            .all(|d| full_snapshot(&d.get().store) == first);
        if pending == 0 && same {
            return;
        }
    }
    let states: Vec<String> = devs
        .iter()
        .map(|d| {
            let store = &d.get().store;
            format!(
                "{:?}; outbox {:?}",
                store.local_status().expect("status"),
                store.outbox(50).expect("outbox")
            )
        })
        .collect();
    let first = full_snapshot(&devs[0].get().store);
    let mut differing = Vec::new();
    for (i, d) in devs.iter().enumerate().skip(1) {
        let other = full_snapshot(&d.get().store);
        for id in first.keys().chain(other.keys()).collect::<BTreeSet<_>>() {
            if first.get(id) != other.get(id) {
                differing.push(format!(
                    "device 0: {}\n    device {i}: {}",
                    device_row(devs[0].get(), &id.to_string()),
                    device_row(d.get(), &id.to_string())
                ));
            }
        }
    }
    panic!(
        "seed {seed}: still not quiet after {MAX_ROUNDS} rounds of everyone syncing: {states:#?}\n\
         notes that differ:\n  {}",
        differing.join("\n  ")
    );
}

/// The checks a user would make at the end (see the module's documentation).
async fn verify(devs: &[SimDevice], oracle: &Oracle, report: &mut SimReport) {
    let seed = report.seed;
    let first = full_snapshot(&devs[0].get().store);
    for (i, dev) in devs.iter().enumerate() {
        let device = dev.get();
        let snapshot = full_snapshot(&device.store);
        assert_eq!(
            snapshot, first,
            "seed {seed}: device {i} differs from device 0"
        );

        let status = device.store.local_status().expect("status");
        let waiting: Vec<String> = device
            .store
            .outbox(20)
            .expect("outbox")
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} #{} ({}): {}",
                    e.state,
                    e.name,
                    e.entity_id,
                    e.mutation_number,
                    e.mutation_id,
                    e.last_error.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            (status.pending, status.failed, status.conflicts),
            (0, 0, 0),
            "seed {seed}: device {i} is not quiet: {status:?}; outbox: {waiting:#?}"
        );
        let dead = device.store.dead_letters().expect("dead letters");
        assert!(
            dead.is_empty(),
            "seed {seed}: device {i} has changes the server refused: {dead:?}"
        );
        for id in snapshot.keys() {
            let note = device.store.get_note(*id).expect("note");
            assert_eq!(
                note.sync_state,
                SyncState::Synced,
                "seed {seed}: device {i} shows note {id} as {:?}",
                note.sync_state
            );
        }

        let session = account::signed_in(&device.store, &device.vault)
            .expect("session")
            .expect("signed in");
        let diagnosis = diagnose(&device.store, &session.client)
            .await
            .expect("the sync doctor runs");
        if !diagnosis.agrees() {
            let keys = diagnosis
                .differences
                .iter()
                .map(|d| outpost_protocol::digest::Key {
                    entity: d.entity,
                    id: d.id.clone(),
                })
                .collect();
            let server: Vec<String> = match session.client.fetch_records(keys).await {
                Ok(fetched) => fetched
                    .records
                    .iter()
                    .map(|r| {
                        let fields: Vec<String> = r
                            .fields
                            .iter()
                            .map(|(k, f)| format!("{k}={}@{}", f.value, f.stamp))
                            .collect();
                        format!("v{} {}", r.version.0, fields.join(" | "))
                    })
                    .collect(),
                Err(e) => vec![format!("cannot fetch: {e}")],
            };
            let rows: Vec<String> = diagnosis
                .differences
                .iter()
                .map(|d| device_row(device, &d.id))
                .collect();
            panic!(
                "seed {seed}: device {i} and the server disagree: {:?}\n  device rows: \
                 {rows:#?}\n  server records: {server:#?}",
                diagnosis.differences
            );
        }
    }

    // Every note created and not deleted for good is there, once, on every device (the
    // snapshots are equal); nothing is there that was not created. A note deleted for good may
    // be back: edited meanwhile on another device, or on a server restored from before.
    let ids: BTreeSet<NoteId> = first.keys().copied().collect();
    let created: BTreeSet<NoteId> = oracle.created.keys().copied().collect();
    let kept: BTreeSet<NoteId> = created.difference(&oracle.purged).copied().collect();
    report.lost = kept.difference(&ids).count();
    report.doubled = ids.difference(&created).count();
    assert_eq!(
        (report.lost, report.doubled),
        (0, 0),
        "seed {seed}: notes lost {:?}, notes that no one created {:?}",
        kept.difference(&ids).collect::<Vec<_>>(),
        ids.difference(&created).collect::<Vec<_>>()
    );
    report.notes = ids.len();

    // Each small field shows the last write by stamp (last writer wins).
    for ((id, field), writes) in &oracle.fields {
        if oracle.purged.contains(id) {
            // Deleted for good somewhere: gone, or brought back by an edit on another device
            // with that device's copy (what the deleting device wrote before went with it).
            continue;
        }
        let note = devs[0].get().store.get_note(*id).expect("note");
        let got = field_value(&note, *field);
        let stamp = field_stamp(devs[0].get(), *id, *field);
        if let Err(e) = check_last_write(writes, &got, stamp) {
            panic!("seed {seed}: note {id}'s {field:?} {e}");
        }
        report.fields_checked += 1;
    }

    // Every notebook created is there once on every device, with its last name, and deleted
    // if any device deleted it (nothing undeletes a notebook).
    let notebooks = notebooks_of(devs[0].get());
    for (i, dev) in devs.iter().enumerate().skip(1) {
        assert_eq!(
            notebooks_of(dev.get()),
            notebooks,
            "seed {seed}: device {i}'s notebooks differ from device 0's"
        );
    }
    let have: BTreeSet<NotebookId> = notebooks.keys().copied().collect();
    let created: BTreeSet<NotebookId> = oracle.notebooks.keys().copied().collect();
    assert_eq!(
        have, created,
        "seed {seed}: the notebooks at the end are not the ones created"
    );
    for (id, row) in &notebooks {
        if let Err(e) = check_last_write(&oracle.notebook_names[id], &row.name, row.name_stamp) {
            panic!("seed {seed}: notebook {id}'s name {e}");
        }
        assert_eq!(
            row.deleted,
            oracle.notebooks_deleted.contains(id),
            "seed {seed}: notebook {id} deleted = {}, against what the devices did",
            row.deleted
        );
        report.fields_checked += 1;
    }
    report.notebooks = notebooks.len();

    // Every synced preference is the same on every device, its last write by stamp.
    let prefs = prefs_of(devs[0].get());
    for (i, dev) in devs.iter().enumerate().skip(1) {
        let theirs = prefs_of(dev.get());
        for key in oracle.prefs.keys() {
            assert_eq!(
                theirs.get(key),
                prefs.get(key),
                "seed {seed}: device {i}'s preference {key} differs from device 0's"
            );
        }
    }
    for (key, writes) in &oracle.prefs {
        let (value, stamp) = &prefs[key];
        if let Err(e) = check_last_write(writes, value, *stamp) {
            panic!("seed {seed}: preference {key} {e}");
        }
        report.fields_checked += 1;
    }

    // A body that only one device ever wrote, never in conflict, shows its last text.
    for (id, writes) in &oracle.bodies {
        let writer = writes[0].0;
        if oracle.purged.contains(id)
            || oracle.conflicted.contains(id)
            || writes.iter().any(|(d, _)| *d != writer)
        {
            continue;
        }
        let want = &writes.last().expect("a write").1;
        let got = &first[id].body;
        assert_eq!(
            got, want,
            "seed {seed}: note {id}'s body, written only on device {writer}, shows another text"
        );
        report.bodies_checked += 1;
    }
}
