//! The sync server's load generator (see BENCHMARKS.md, "Sync server (outpost-server)").
//!
//! `cargo bench -p outpost-server --bench load` starts the real server in this process on
//! 127.0.0.1 with an ephemeral port (in its own tokio runtime, as `outpost-server` runs it) and
//! drives it over real HTTP with reqwest (keep-alive, one connection per device), for each
//! backend:
//!
//! - `push`: for N = 1, 10, 100 devices, each device its own account (registered through
//!   `POST /v1/accounts`, so argon2 and real tokens; each from its own loopback address, as the
//!   sign-up rate limit is per address), pushes batches of `note.put` mutations back to back,
//!   one push in flight per device (as the protocol requires): a warm-up, then three timed
//!   rounds of 5 s (the median round is the figure). A quarter of the mutations create a note (all seven fields, a body of 200 to 600
//!   bytes), the rest edit one of the device's earlier notes (a new body, sometimes a new
//!   title) with the version the server last answered as `base_version`. Batch sizes: 200, the
//!   sync engine's `push_batch_count` (a device catching up on its outbox), and 1 (an online
//!   device pushing each debounced edit). Every mutation must come back `applied` with the
//!   expected version and the account's next cursor, or the bench stops with an error.
//! - `pull`: one account with 100,000 notes of about 1 KB (seeded by pushes of 500, the most a
//!   push takes, and timed as a bulk import), then a fresh HTTP client of a device signed in to
//!   that account pulls every page from cursor 0 (`limit` 5000, the most a page holds; and
//!   1000, the engine's `pull_limit`), decoding each page into `PullResponse`, without
//!   compression, with gzip and with br (what the Outpost client gets: its reqwest accepts both
//!   and the server prefers br). Rounds alternate between the variants; the median is reported.
//!   On PostgreSQL all of it again after `VACUUM ANALYZE`.
//!
//! Flags (after `--`): `--backend sqlite|postgres|all` (default all), `push` or `pull` to run
//! only that part. Environment: `OUTPOST_BENCH_QUICK=1` runs a small version in seconds (as
//! does running the binary without `--bench`, e.g. under `cargo test --benches`);
//! `OUTPOST_BENCH_SECONDS` (seconds of each of the 3 timed rounds of a push case, default 5),
//! `OUTPOST_BENCH_DEVICES` (default `1,10,100`), `OUTPOST_BENCH_BATCHES` (default `200,1`) and
//! `OUTPOST_BENCH_PULL_NOTES` (default 100,000) override the sizes.
//!
//! PostgreSQL: `OUTPOST_TEST_PG_URL` (a superuser URL) if set, used as it is; else a throwaway
//! cluster from `scripts/pg-test-cluster start` with `OUTPOST_PG_DURABLE=1` (fsync and
//! synchronous commit on, like SQLite's `synchronous = FULL` here), stopped at the end. Without
//! PostgreSQL installed the PostgreSQL part is skipped, and the output says so.
//!
//! CPU: the load generator and the server share the machine. The output splits this
//! process's CPU time between the server's threads and the load generator's, and adds the
//! PostgreSQL processes' CPU time, so a figure can be read as "the server was CPU-bound" or not.

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures_util::StreamExt;
use outpost_protocol::api::{
    Credentials, Cursor, HEADER_CLIENT_ID, HEADER_PROTOCOL, MAX_PULL_LIMIT, MAX_PUSH_MUTATIONS,
    Mutation, Outcome, PullResponse, PushResponse, Session, Version,
};
use outpost_protocol::{ClientId, Entity, NoteId, Stamp};
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The sync engine's bound on one push (`EngineConfig::push_batch_count` in outpost-core).
const ENGINE_PUSH_BATCH: usize = 200;
/// The sync engine's page size (`EngineConfig::pull_limit` in outpost-core).
const ENGINE_PULL_LIMIT: u32 = 1000;
const PASSWORD: &str = "correct horse battery staple";
/// Server and load generator threads are named, so their CPU time can be told apart.
const SERVER_THREAD: &str = "outpost-server";
const CLIENT_THREAD: &str = "load-client";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    backends: Vec<Backend>,
    push: bool,
    pull: bool,
    devices: Vec<usize>,
    batches: Vec<usize>,
    warmup: Duration,
    seconds: Duration,
    push_rounds: usize,
    pull_notes: usize,
    pull_rounds: usize,
}

fn env_number(name: &str) -> Result<Option<f64>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let n: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("{name} must be a number, got {v:?}"))?;
            ensure!(n > 0.0, "{name} must be above 0, got {v:?}");
            Ok(Some(n))
        }
        _ => Ok(None),
    }
}

/// A comma-separated list of counts from 1 to `max`.
fn env_list(name: &str, max: usize) -> Result<Option<Vec<usize>>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.split(',')
                .map(|n| {
                    let n: usize = n.trim().parse().with_context(|| {
                        format!("{name} must be numbers like 1,10,100, got {v:?}")
                    })?;
                    ensure!((1..=max).contains(&n), "{name}: {n} is not 1 to {max}");
                    Ok(n)
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        }
        _ => Ok(None),
    }
}

impl Config {
    fn from_args() -> Result<Config> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes `--bench`; `cargo test --benches` does not: then a smoke run.
        let under_cargo_bench = args.iter().any(|a| a == "--bench");
        let quick = !under_cargo_bench
            || std::env::var("OUTPOST_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut backends = vec![Backend::Sqlite, Backend::Postgres];
        let (mut push, mut pull) = (false, false);
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let backend = if arg == "--backend" {
                Some(
                    it.next()
                        .context("--backend needs sqlite, postgres or all")?
                        .as_str(),
                )
            } else {
                arg.strip_prefix("--backend=")
            };
            if let Some(b) = backend {
                backends = match b {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" | "pg" => vec![Backend::Postgres],
                    "all" => vec![Backend::Sqlite, Backend::Postgres],
                    other => bail!("--backend takes sqlite, postgres or all, not {other:?}"),
                };
                continue;
            }
            match arg.as_str() {
                "push" => push = true,
                "pull" => pull = true,
                // Flags cargo and test harnesses pass.
                "--bench" | "--test" | "--nocapture" => {}
                other => bail!(
                    "unknown argument {other:?} (takes --backend sqlite|postgres|all, push, pull)"
                ),
            }
        }
        if !push && !pull {
            (push, pull) = (true, true);
        }
        let seconds = env_number("OUTPOST_BENCH_SECONDS")?.unwrap_or(if quick { 1.0 } else { 5.0 });
        let pull_notes = env_number("OUTPOST_BENCH_PULL_NOTES")?
            .map_or(if quick { 5_000 } else { 100_000 }, |n| n as usize);
        Ok(Config {
            quick,
            backends,
            push,
            pull,
            devices: env_list("OUTPOST_BENCH_DEVICES", 10_000)?.unwrap_or(vec![1, 10, 100]),
            batches: env_list("OUTPOST_BENCH_BATCHES", MAX_PUSH_MUTATIONS)?
                .unwrap_or(vec![ENGINE_PUSH_BATCH, 1]),
            warmup: Duration::from_secs_f64(if quick { 0.3 } else { 2.0 }),
            seconds: Duration::from_secs_f64(seconds),
            push_rounds: if quick { 1 } else { 3 },
            pull_notes,
            pull_rounds: if quick { 1 } else { 3 },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic text
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

/// Words of a field technician's notes.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "pump", "valve", "seal", "bearing", "leak", "pressure", "gauge", "flange", "gasket", "motor",
    "belt", "filter", "inspection", "site", "north", "south", "tank", "pipe", "joint", "weld",
    "crack", "corrosion", "replaced", "checked", "noisy", "vibration", "reading", "bar", "psi",
    "temperature", "sensor", "wiring", "panel", "breaker", "fuse", "ok", "failed", "pending",
    "parts", "ordered", "supplier", "invoice", "customer", "access", "ladder", "roof", "basement",
    "shaft", "coupling", "alignment", "grease", "oil", "level", "low", "high", "normal", "photo",
    "taken", "see", "attached", "follow", "up", "next", "week", "monday", "friday", "urgent",
    "minor", "major", "the", "a", "and", "of", "on", "at", "with", "after", "before", "needs",
];

const TAGS: &[&str] = &[
    "pumps",
    "valves",
    "urgent",
    "follow-up",
    "electrical",
    "site-a",
];

fn sentence(rng: &mut Rng, out: &mut String) {
    let n = rng.between(5, 14);
    for i in 0..n {
        let w = WORDS[rng.below(WORDS.len())];
        if i == 0 {
            let mut c = w.chars();
            if let Some(first) = c.next() {
                out.extend(first.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
        }
    }
    out.push_str(". ");
}

/// Markdown of about `len` bytes (ASCII), starting with `head` so that it differs from the
/// text it replaces.
fn body(rng: &mut Rng, head: &str, len: usize) -> String {
    let mut out = String::with_capacity(len + 100);
    out.push_str(head);
    out.push_str("\n\n");
    while out.len() < len {
        if rng.below(6) == 0 {
            out.push_str("\n- ");
        }
        sentence(rng, &mut out);
    }
    out.truncate(len);
    out
}

fn title(rng: &mut Rng) -> String {
    let mut t = String::new();
    sentence(rng, &mut t);
    t.truncate(t.trim_end_matches(['.', ' ']).len().min(60));
    t
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; zeros elsewhere)
// ---------------------------------------------------------------------------------------------

/// The command name, parent pid and utime + stime in seconds of a `/proc/.../stat` line.
fn parse_stat(stat: &str) -> Option<(String, u32, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // After ") ": state is field 3, ppid 4, utime and stime 14 and 15.
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let ppid: u32 = rest.get(1)?.parse().ok()?;
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((comm, ppid, (utime + stime) / 100.0))
}

fn stat_of(path: &Path) -> Option<(String, u32, f64)> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// The postmaster of the cluster the server runs on, when it runs on this machine (0: none).
/// Its children are that cluster's backends and workers; other clusters (another engineer's
/// tests) are not counted.
static POSTMASTER: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, Default)]
struct CpuSample {
    process: f64,
    client: f64,
    postgres: f64,
}

impl CpuSample {
    fn now() -> CpuSample {
        let process = stat_of(Path::new("/proc/self/stat")).map_or(0.0, |(_, _, t)| t);
        // The load generator's threads live as long as the process, so their sum is exact; the
        // server's blocking threads come and go, so the server is the rest of the process.
        // The main thread (its tid is the pid) only waits for the load generator's tasks.
        let main = std::process::id().to_string();
        let mut client = 0.0;
        for task in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some((comm, _, t)) = stat_of(&task.path().join("stat"))
                && (comm.starts_with(CLIENT_THREAD) || task.file_name() == main.as_str())
            {
                client += t;
            }
        }
        let mut postgres = 0.0;
        let postmaster = POSTMASTER.load(Ordering::Relaxed);
        if postmaster != 0 {
            for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = proc.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Some((_, ppid, t)) = stat_of(&proc.path().join("stat"))
                    && (pid == postmaster || ppid == postmaster)
                {
                    postgres += t;
                }
            }
        }
        CpuSample {
            process,
            client,
            postgres,
        }
    }

    /// (server, load generator, postgres) CPU seconds since `start`.
    fn since(self, start: CpuSample) -> Cpu {
        let client = (self.client - start.client).max(0.0);
        Cpu {
            server: (self.process - start.process - client).max(0.0),
            client,
            // Backends that exited in between take their time with them: a lower bound.
            postgres: (self.postgres - start.postgres).max(0.0),
        }
    }
}

/// " + pg <value>", or that PostgreSQL's CPU time could not be seen (not on this machine).
fn pg_part(value: String) -> String {
    if POSTMASTER.load(Ordering::Relaxed) == 0 {
        " + pg not measured".into()
    } else {
        format!(" + pg {value}")
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    server: f64,
    client: f64,
    postgres: f64,
}

impl Cpu {
    /// "srv 0.80 + gen 0.45 s" (+ postgres): CPU seconds, which other processes on the
    /// machine inflate far less than wall time.
    fn seconds(&self, backend: Backend) -> String {
        let mut s = format!("srv {:.2} + gen {:.2}", self.server, self.client);
        if backend == Backend::Postgres {
            s.push_str(&pg_part(format!("{:.2}", self.postgres)));
        }
        s.push_str(" s");
        s
    }

    /// "srv 95% · gen 60% · pg 30%": CPU time in % of one core over `secs`.
    fn describe(&self, secs: f64, backend: Backend) -> String {
        let pct = |t: f64| format!("{:.0}%", 100.0 * t / secs.max(1e-9));
        let mut s = format!("srv {} · gen {}", pct(self.server), pct(self.client));
        if backend == Backend::Postgres {
            s.push_str(&pg_part(pct(self.postgres)).replace(" + ", " · "));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A PostgreSQL to run the server on: the one in `OUTPOST_TEST_PG_URL`, or our own.
struct PgCluster {
    admin_url: String,
    /// The dir of the cluster we started (stopped and removed on drop).
    own_dir: Option<String>,
    /// What the database does on commit, for the report.
    settings: String,
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(dir) = self.own_dir.take() {
            let script = repo_root().join("scripts/pg-test-cluster");
            match Command::new(&script).arg("stop").arg(&dir).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "warning: stopping the PostgreSQL cluster in {dir} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("warning: stopping the PostgreSQL cluster in {dir}: {e}"),
            }
        }
    }
}

/// `Ok(None)` when PostgreSQL is not installed (the caller says so and skips it).
fn pg_cluster() -> Result<Option<PgCluster>> {
    if let Ok(url) = std::env::var("OUTPOST_TEST_PG_URL")
        && !url.trim().is_empty()
    {
        return Ok(Some(PgCluster {
            admin_url: url.trim().to_owned(),
            own_dir: None,
            settings: String::new(),
        }));
    }
    let script = repo_root().join("scripts/pg-test-cluster");
    let out = Command::new(&script)
        .arg("start")
        .env("OUTPOST_PG_DURABLE", "1")
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("not installed") {
            return Ok(None);
        }
        bail!("{} start failed: {stderr}", script.display());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(|v| v.trim().trim_matches('\'').to_owned())
    };
    let dir = var("OUTPOST_TEST_PG_DIR");
    let url = var("OUTPOST_TEST_PG_URL");
    let cluster = PgCluster {
        admin_url: url.clone().unwrap_or_default(),
        own_dir: dir,
        settings: String::new(),
    };
    ensure!(
        url.is_some() && cluster.own_dir.is_some(),
        "{} start printed no URL or dir: {stdout}",
        script.display()
    );
    Ok(Some(cluster))
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(q) => format!("{}/{db}?{q}", &base[..path]),
        None => format!("{}/{db}", &base[..path]),
    }
}

async fn pg_admin(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

impl PgCluster {
    async fn read_settings(&mut self) -> Result<()> {
        let admin = pg_admin(&self.admin_url).await?;
        let mut parts = Vec::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
        ] {
            let rows = admin.simple_query(&format!("SHOW {name}")).await?;
            let value = rows.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            parts.push(format!("{name} = {}", value.unwrap_or_default()));
        }
        self.settings = parts.join(", ");
        // Our backend's parent is the postmaster, if the cluster runs on this machine.
        let backend: i32 = admin
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        let postmaster = stat_of(&Path::new("/proc").join(backend.to_string()).join("stat"))
            .map_or(
                0,
                |(comm, ppid, _)| if comm == "postgres" { ppid } else { 0 },
            );
        POSTMASTER.store(postmaster, Ordering::Relaxed);
        Ok(())
    }

    async fn create_database(&self) -> Result<(String, String)> {
        let name = format!("outpost_load_{}", uuid::Uuid::new_v4().simple());
        pg_admin(&self.admin_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        Ok((name.clone(), with_database(&self.admin_url, &name)))
    }

    async fn drop_database(&self, name: &str) -> Result<()> {
        pg_admin(&self.admin_url)
            .await?
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("DROP DATABASE {name}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The server, in its own runtime
// ---------------------------------------------------------------------------------------------

enum Where {
    Sqlite(tempfile::TempDir),
    Postgres { name: String, url: String },
}

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    place: Where,
}

impl Server {
    /// Starts the server on a fresh database of `backend`, on 127.0.0.1 with an ephemeral
    /// port, in a runtime of its own with one worker per core, like `outpost-server`'s
    /// `#[tokio::main]`.
    async fn start(backend: Backend, pg: Option<&PgCluster>) -> Result<Server> {
        let place = match backend {
            Backend::Sqlite => Where::Sqlite(
                tempfile::Builder::new()
                    .prefix("outpost-load-")
                    .tempdir()
                    .context("a temp dir for the database")?,
            ),
            Backend::Postgres => {
                let pg = pg.context("no PostgreSQL")?;
                let (name, url) = pg.create_database().await?;
                Where::Postgres { name, url }
            }
        };
        let open: Box<dyn FnOnce() -> OpenStorage + Send> = match &place {
            Where::Sqlite(dir) => {
                let dir = dir.path().to_owned();
                Box::new(move || {
                    Box::pin(async move {
                        let s: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&dir)?);
                        Ok(s)
                    })
                })
            }
            Where::Postgres { url, .. } => {
                let url = url.clone();
                Box::new(move || {
                    Box::pin(async move {
                        let s: Arc<dyn Storage> = Arc::new(PgStorage::connect(&url).await?);
                        Ok(s)
                    })
                })
            }
        };
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD.into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(cores)
                    .thread_name(SERVER_THREAD)
                    .enable_all()
                    .build()
                    .context("the server's runtime")?;
                rt.block_on(async move {
                    let storage = open().await.context("opening the server's storage")?;
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    let _ = addr_tx.send(listener.local_addr()?);
                    serve(listener, AppState::new(storage), async move {
                        let _ = stopped.await;
                    })
                    .await
                    .context("serving")
                })
            })
            .context("starting the server thread")?;
        let mut server = Server {
            base: String::new(),
            stop: Some(stop),
            thread: Some(thread),
            place,
        };
        match addr_rx.await {
            Ok(addr) => server.base = format!("http://{addr}"),
            Err(_) => {
                // The thread ended before listening: its error says why.
                let err = server
                    .thread
                    .take()
                    .map(|t| t.join())
                    .and_then(|r| r.ok())
                    .and_then(|r| r.err())
                    .unwrap_or_else(|| anyhow!("the server thread ended"));
                return Err(err.context("starting the server"));
            }
        }
        Ok(server)
    }

    async fn stop(mut self, pg: Option<&PgCluster>) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow!("the server thread panicked"))??;
        }
        if let (Where::Postgres { name, .. }, Some(pg)) = (&self.place, pg) {
            pg.drop_database(name).await?;
        }
        Ok(())
    }
}

type OpenStorage =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<dyn Storage>>> + Send>>;

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A device
// ---------------------------------------------------------------------------------------------

/// Which compression a client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    /// reqwest with both gzip and br, like the Outpost client: the server picks br.
    Brotli,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "none",
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }
}

/// Each device connects from its own loopback address (all of 127/8 is local on Linux), as
/// devices do from their own networks: the server limits sign-ups per client address.
fn loopback(i: usize) -> IpAddr {
    let i = u32::try_from(i).unwrap_or(u32::MAX) % (250 * 250);
    IpAddr::V4(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn http(local: IpAddr, encoding: Encoding) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .local_address(local)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .gzip(encoding != Encoding::Identity)
        .brotli(encoding == Encoding::Brotli)
        .build()
        .context("an HTTP client")
}

struct Device {
    http: reqwest::Client,
    base: String,
    client_id: ClientId,
    token: String,
    next_number: i64,
    clock: (u64, u32),
    /// The device's notes and the version the server last answered for each.
    notes: Vec<(NoteId, Version)>,
    /// Where each note is in `notes`.
    index: HashMap<NoteId, usize>,
    /// The account's cursor after this device's last change (the only device of its account).
    cursor: i64,
    rng: Rng,
}

async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    format!("{status}: {}", text.chars().take(500).collect::<String>())
}

impl Device {
    /// Registers a new account with a new device.
    async fn register(base: &str, email: &str, index: usize, encoding: Encoding) -> Result<Device> {
        let client_id = ClientId::new();
        let http = http(loopback(index), encoding)?;
        let resp = http
            .post(format!("{base}/v1/accounts"))
            .json(&Credentials {
                email: email.into(),
                password: PASSWORD.into(),
                client_id,
                device_name: Some(format!("load {index}")),
            })
            .send()
            .await
            .context("register")?;
        ensure!(
            resp.status() == 201,
            "register {email}: {}",
            error_text(resp).await
        );
        let session: Session = resp.json().await.context("register: the session")?;
        Ok(Device::new(http, base, client_id, session.token, index))
    }

    /// Signs a new device in to an existing account.
    async fn login(base: &str, email: &str, index: usize, encoding: Encoding) -> Result<Device> {
        let client_id = ClientId::new();
        let http = http(loopback(index), encoding)?;
        let resp = http
            .post(format!("{base}/v1/sessions"))
            .json(&Credentials {
                email: email.into(),
                password: PASSWORD.into(),
                client_id,
                device_name: Some("fresh device".into()),
            })
            .send()
            .await
            .context("sign in")?;
        ensure!(
            resp.status() == 200,
            "sign in {email}: {}",
            error_text(resp).await
        );
        let session: Session = resp.json().await.context("sign in: the session")?;
        Ok(Device::new(http, base, client_id, session.token, index))
    }

    fn new(
        http: reqwest::Client,
        base: &str,
        client_id: ClientId,
        token: String,
        i: usize,
    ) -> Device {
        Device {
            http,
            base: base.to_owned(),
            client_id,
            token,
            next_number: 1,
            clock: (0, 0),
            notes: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
            rng: Rng(0x5EED_0000 + i as u64),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(HEADER_CLIENT_ID, self.client_id.to_string())
            .header(HEADER_PROTOCOL, "1")
    }

    /// A hybrid logical clock: never goes back, counts within a millisecond.
    fn stamp(&mut self) -> Stamp {
        let now = now_ms();
        if now > self.clock.0 {
            self.clock = (now, 0);
        } else {
            self.clock.1 += 1;
        }
        Stamp {
            physical_ms: self.clock.0,
            counter: self.clock.1,
            node: self.client_id,
        }
    }

    fn mutation(
        &mut self,
        note: NoteId,
        fields: Vec<(&str, Value)>,
        base: Option<Version>,
    ) -> Mutation {
        let stamp = self.stamp();
        let number = self.next_number;
        self.next_number += 1;
        Mutation::put(Entity::Note, note, number)
            .fields(&fields, stamp)
            .base(base.map(|v| v.0))
            .build()
    }

    /// A new note with every field, as the client's create sends it.
    fn create(&mut self, body_len: (usize, usize)) -> Mutation {
        let len = self.rng.between(body_len.0, body_len.1);
        let head = format!("# Visit {}", self.next_number);
        let text = body(&mut self.rng, &head, len);
        let title = title(&mut self.rng);
        let tags: Vec<&str> = (0..self.rng.below(3))
            .map(|_| TAGS[self.rng.below(TAGS.len())])
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.mutation(
            NoteId::new(),
            vec![
                ("title", json!(title)),
                ("body", json!(text)),
                ("tags", json!(tags)),
                ("notebook_id", Value::Null),
                ("pinned", json!(false)),
                ("archived", json!(false)),
                ("deleted", json!(false)),
            ],
            None,
        )
    }

    /// The next batch: a quarter new notes, the rest edits of distinct earlier notes.
    fn batch(&mut self, n: usize) -> Vec<Mutation> {
        let mut taken = HashSet::new();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let edit = !self.notes.is_empty() && self.rng.below(4) != 0;
            let pick = edit.then(|| self.rng.below(self.notes.len()));
            match pick {
                Some(i) if taken.insert(i) => {
                    let (note, version) = self.notes[i];
                    let len = self.rng.between(200, 600);
                    let head = format!("# Visit {}", self.next_number);
                    let mut fields = vec![("body", json!(body(&mut self.rng, &head, len)))];
                    if self.rng.below(5) == 0 {
                        fields.push(("title", json!(title(&mut self.rng))));
                    }
                    out.push(self.mutation(note, fields, Some(version)));
                }
                // A note already in this batch (the client's outbox coalesces those): a new one.
                _ => out.push(self.create((200, 600))),
            }
        }
        out
    }

    /// Pushes `batch`, checks that every mutation was applied as expected, and records the
    /// new versions. Returns the push's latency (send to decoded reply).
    async fn push(&mut self, batch: Vec<Mutation>) -> Result<Duration> {
        // A `PushRequest` by reference, so the batch stays here to check the reply against.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            mutations: &'a [Mutation],
        }
        let body = serde_json::to_vec(&Body { mutations: &batch })?;
        let request = self
            .request(reqwest::Method::POST, "/v1/sync/push")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let started = Instant::now();
        let resp = request.send().await.context("push")?;
        ensure!(resp.status() == 200, "push: {}", error_text(resp).await);
        let reply: PushResponse = resp.json().await.context("push: the reply")?;
        let latency = started.elapsed();
        self.check(&batch, &reply)?;
        Ok(latency)
    }

    fn check(&mut self, batch: &[Mutation], reply: &PushResponse) -> Result<()> {
        ensure!(
            reply.results.len() == batch.len(),
            "{} results for {} mutations",
            reply.results.len(),
            batch.len()
        );
        for (m, r) in batch.iter().zip(&reply.results) {
            ensure!(r.id == m.id && r.number == m.number, "results out of order");
            let Outcome::Applied {
                version, cursor, ..
            } = &r.outcome
            else {
                bail!("mutation {} was not applied: {:?}", m.number, r.outcome);
            };
            // One device per account, and every mutation changes its note: each takes the
            // account's next cursor (S2, no gaps) and raises the note's version by one.
            ensure!(
                cursor.0 == self.cursor + 1,
                "mutation {} got cursor {}, expected {}",
                m.number,
                cursor.0,
                self.cursor + 1
            );
            self.cursor = cursor.0;
            let expected = m.base_version.map_or(1, |v| v.0 + 1);
            ensure!(
                version.0 == expected,
                "mutation {} got version {}, expected {expected}",
                m.number,
                version.0
            );
            let id: NoteId = m.entity_id.parse()?;
            match (self.index.get(&id), m.base_version) {
                (Some(&i), Some(_)) => self.notes[i].1 = *version,
                (None, None) => {
                    self.index.insert(id, self.notes.len());
                    self.notes.push((id, *version));
                }
                (Some(_), None) => bail!("note {id} created twice"),
                (None, Some(_)) => bail!("an edit of note {id}, which this device never created"),
            }
        }
        let last = batch.last().map_or(0, |m| m.number.0);
        ensure!(
            reply.last_mutation_number.0 == last,
            "last_mutation_number {} after pushing up to {last}",
            reply.last_mutation_number.0
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------------------------

struct PushResult {
    backend: Backend,
    devices: usize,
    batch: usize,
    pushes: usize,
    applied: u64,
    secs: f64,
    /// Mutations per second of each timed round.
    rates: Vec<f64>,
    p50: Duration,
    p99: Duration,
    max: Duration,
    cpu: Cpu,
}

/// The nearest-rank percentile of sorted `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Registers `n` accounts, a few at a time (each runs argon2 on the server).
async fn register_devices(base: &str, run: &str, n: usize) -> Result<Vec<Device>> {
    let mut devices: Vec<(usize, Device)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let base = base.to_owned();
            let email = format!("load-{run}-{i}@example.org");
            async move {
                Device::register(&base, &email, i, Encoding::Brotli)
                    .await
                    .map(|d| (i, d))
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    devices.sort_by_key(|(i, _)| *i);
    Ok(devices.into_iter().map(|(_, d)| d).collect())
}

/// Every device pushes batches back to back until `until`; returns the devices, latencies and
/// mutations applied.
async fn drive(
    devices: Vec<Device>,
    batch: usize,
    until: Instant,
) -> Result<(Vec<Device>, Vec<Duration>, u64)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut device) in devices.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut applied = 0u64;
            while Instant::now() < until {
                let mutations = device.batch(batch);
                latencies.push(device.push(mutations).await?);
                applied += batch as u64;
            }
            anyhow::Ok((i, device, latencies, applied))
        });
    }
    let mut out = Vec::new();
    let (mut latencies, mut applied) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (i, device, l, a) = done??;
        out.push((i, device));
        latencies.extend(l);
        applied += a;
    }
    out.sort_by_key(|(i, _)| *i);
    Ok((
        out.into_iter().map(|(_, d)| d).collect(),
        latencies,
        applied,
    ))
}

async fn push_case(
    cfg: &Config,
    backend: Backend,
    pg: Option<&PgCluster>,
    n: usize,
    batch: usize,
) -> Result<PushResult> {
    let server = Server::start(backend, pg).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let devices = register_devices(&server.base, &run[..8], n).await?;
    // Warm-up: connections open, statements prepared, every device has notes to edit.
    let (devices, _, _) = drive(devices, batch, Instant::now() + cfg.warmup).await?;
    // Rounds back to back on the same server and devices: the median round is the figure, so
    // that one moment when another process takes the machine does not make it.
    let cpu0 = CpuSample::now();
    let (mut devices, mut latencies, mut applied, mut secs) = (devices, Vec::new(), 0, 0.0);
    let mut rates = Vec::new();
    for _ in 0..cfg.push_rounds {
        let started = Instant::now();
        let (d, l, a) = drive(devices, batch, started + cfg.seconds).await?;
        let s = started.elapsed().as_secs_f64();
        devices = d;
        latencies.extend(l);
        applied += a;
        secs += s;
        rates.push(a as f64 / s);
    }
    let cpu = CpuSample::now().since(cpu0);
    drop(devices);
    server.stop(pg).await?;
    latencies.sort();
    Ok(PushResult {
        backend,
        devices: n,
        batch,
        pushes: latencies.len(),
        applied,
        secs,
        rates,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or_default(),
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// Pull
// ---------------------------------------------------------------------------------------------

struct PullRun {
    secs: f64,
    pages: usize,
    records: usize,
    cpu: Cpu,
}

struct PullResult {
    backend: Backend,
    /// PostgreSQL after `VACUUM ANALYZE` (what autovacuum does a while after an import).
    vacuumed: bool,
    encoding: Encoding,
    limit: u32,
    runs: Vec<PullRun>,
    /// Bytes of the first page on the wire (compressed as the variant asks).
    page_bytes: usize,
}

struct SeedResult {
    backend: Backend,
    notes: usize,
    body_bytes: usize,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

/// Seeds one account with `notes` notes of about 1 KB, in pushes of 500.
async fn seed(
    backend: Backend,
    base: &str,
    email: &str,
    notes: usize,
) -> Result<(Device, SeedResult)> {
    let mut device = Device::register(base, email, 0, Encoding::Brotli).await?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut body_bytes = 0;
    let mut left = notes;
    while left > 0 {
        let n = left.min(MAX_PUSH_MUTATIONS);
        let batch: Vec<Mutation> = (0..n).map(|_| device.create((1000, 1050))).collect();
        body_bytes += batch
            .iter()
            .filter_map(|m| m.fields.get("body")?.value.as_str().map(str::len))
            .sum::<usize>();
        latencies.push(device.push(batch).await?);
        left -= n;
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let result = SeedResult {
        backend,
        notes,
        body_bytes,
        secs,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    };
    Ok((device, result))
}

/// A fresh client (new connection, nothing cached) pulls everything from cursor 0.
async fn pull_all(
    device: &Device,
    encoding: Encoding,
    limit: u32,
    expect: &Expect,
) -> Result<PullRun> {
    let client = Device {
        http: http(loopback(1000), encoding)?,
        base: device.base.clone(),
        client_id: device.client_id,
        token: device.token.clone(),
        next_number: 1,
        clock: (0, 0),
        notes: Vec::new(),
        index: HashMap::new(),
        cursor: 0,
        rng: Rng(0),
    };
    let mut ids: Vec<String> = Vec::with_capacity(expect.notes);
    let mut body_bytes = 0usize;
    let mut cursor = Cursor(0);
    let mut pages = 0;
    let cpu0 = CpuSample::now();
    let started = Instant::now();
    loop {
        let resp = client
            .request(
                reqwest::Method::GET,
                &format!("/v1/sync/pull?cursor={}&limit={limit}", cursor.0),
            )
            .send()
            .await
            .context("pull")?;
        ensure!(resp.status() == 200, "pull: {}", error_text(resp).await);
        let page: PullResponse = resp.json().await.context("pull: the page")?;
        pages += 1;
        for r in page.records {
            body_bytes += r
                .fields
                .get("body")
                .and_then(|f| f.value.as_str())
                .map_or(0, str::len);
            ids.push(r.id);
        }
        ensure!(page.next_cursor > cursor, "the cursor did not advance");
        cursor = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = CpuSample::now().since(cpu0);
    // Everything, once, as pushed.
    let records = ids.len();
    ensure!(
        records == expect.notes,
        "pulled {records} records, expected {}",
        expect.notes
    );
    ensure!(
        ids.iter().collect::<HashSet<_>>().len() == records,
        "a record came twice"
    );
    ensure!(
        body_bytes == expect.body_bytes,
        "pulled {body_bytes} bytes of bodies, pushed {}",
        expect.body_bytes
    );
    ensure!(
        cursor.0 == expect.cursor,
        "ended at cursor {}, expected {}",
        cursor.0,
        expect.cursor
    );
    Ok(PullRun {
        secs,
        pages,
        records,
        cpu,
    })
}

struct Expect {
    notes: usize,
    body_bytes: usize,
    cursor: i64,
}

/// The first page's size on the wire with `encoding` (asked for by hand, not decoded).
async fn page_bytes(device: &Device, encoding: Encoding, limit: u32) -> Result<usize> {
    let raw = http(loopback(1001), Encoding::Identity)?;
    let accept = match encoding {
        Encoding::Identity => "identity",
        Encoding::Gzip => "gzip",
        Encoding::Brotli => "gzip, br",
    };
    let resp = raw
        .get(format!(
            "{}/v1/sync/pull?cursor=0&limit={limit}",
            device.base
        ))
        .bearer_auth(&device.token)
        .header(HEADER_CLIENT_ID, device.client_id.to_string())
        .header(HEADER_PROTOCOL, "1")
        .header(reqwest::header::ACCEPT_ENCODING, accept)
        .send()
        .await?;
    ensure!(resp.status() == 200, "pull: {}", error_text(resp).await);
    let got = resp
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    let want = match encoding {
        Encoding::Identity => "identity",
        Encoding::Gzip => "gzip",
        Encoding::Brotli => "br",
    };
    ensure!(
        got == want,
        "asked for {accept}, got Content-Encoding {got}"
    );
    Ok(resp.bytes().await?.len())
}

async fn pull_case(
    cfg: &Config,
    backend: Backend,
    pg: Option<&PgCluster>,
) -> Result<(SeedResult, Vec<PullResult>)> {
    let server = Server::start(backend, pg).await?;
    let email = format!(
        "pull-{}@example.org",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    eprintln!("  seeding {} notes of about 1 KB ...", cfg.pull_notes);
    let (seeder, seeded) = seed(backend, &server.base, &email, cfg.pull_notes).await?;
    let expect = Expect {
        notes: cfg.pull_notes,
        body_bytes: seeded.body_bytes,
        cursor: seeder.cursor,
    };
    drop(seeder);
    // The fresh device: signs in to the account, owns nothing yet.
    let device = Device::login(&server.base, &email, 999, Encoding::Identity).await?;
    let variants = [
        (Encoding::Identity, MAX_PULL_LIMIT),
        (Encoding::Gzip, MAX_PULL_LIMIT),
        (Encoding::Brotli, MAX_PULL_LIMIT),
        (Encoding::Brotli, ENGINE_PULL_LIMIT),
    ];
    let mut results = Vec::new();
    // Right after the import, as a device signing in then finds it; for PostgreSQL also once
    // the table is vacuumed: until then its visibility map is empty, and counting the records
    // still to come (`remaining`, on every page) reads every one of them from the heap.
    let passes: &[bool] = match (&server.place, pg) {
        (Where::Postgres { .. }, Some(_)) => &[false, true],
        _ => &[false],
    };
    for &vacuumed in passes {
        if vacuumed && let Where::Postgres { url, .. } = &server.place {
            eprintln!("  VACUUM ANALYZE ...");
            pg_admin(url).await?.batch_execute("VACUUM ANALYZE").await?;
        }
        let first = results.len();
        for (encoding, limit) in variants {
            results.push(PullResult {
                backend,
                vacuumed,
                encoding,
                limit,
                runs: Vec::new(),
                page_bytes: page_bytes(&device, encoding, limit).await?,
            });
        }
        for round in 0..cfg.pull_rounds {
            for r in &mut results[first..] {
                let run = pull_all(&device, r.encoding, r.limit, &expect).await?;
                eprintln!(
                    "  round {}: {} limit {}: {:.2} s, {} pages",
                    round + 1,
                    r.encoding.name(),
                    r.limit,
                    run.secs,
                    run.pages
                );
                r.runs.push(run);
            }
        }
    }
    drop(device);
    server.stop(pg).await?;
    Ok((seeded, results))
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cores} cores ({model}), load average {load}")
}

fn report(
    cfg: &Config,
    pushes: &[PushResult],
    seeds: &[SeedResult],
    pulls: &[PullResult],
    notes: &[String],
) {
    println!();
    println!(
        "## Sync server load ({})",
        if cfg.quick {
            "QUICK run: small sizes, figures not comparable"
        } else {
            "full run"
        }
    );
    println!();
    println!("Machine: {}.", machine());
    for n in notes {
        println!("{n}");
    }
    if !pushes.is_empty() {
        println!();
        println!(
            "Push: each device its own account, one push in flight per device; {} timed round(s) of {} s after {} s of warm-up, on one server; mutations/s is the median round; latencies and CPU over all rounds, CPU in % of one core (the machine has {}).",
            cfg.push_rounds,
            cfg.seconds.as_secs_f64(),
            cfg.warmup.as_secs_f64(),
            std::thread::available_parallelism().map_or(0, |n| n.get()) * 100
        );
        println!();
        println!(
            "| backend | devices | batch | pushes | mutations applied | mutations/s | rounds | p50 push | p99 push | max | CPU | server CPU per mutation |"
        );
        println!("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|");
        for r in pushes {
            // PostgreSQL's own processes do part of the server's work there.
            let server = r.cpu.server + r.cpu.postgres;
            let rounds = r
                .rates
                .iter()
                .map(|x| thousands(*x))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "| {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {:.0} µs |",
                r.backend.name(),
                r.devices,
                r.batch,
                thousands(r.pushes as f64),
                thousands(r.applied as f64),
                thousands(median(&mut r.rates.clone())),
                rounds,
                ms(r.p50),
                ms(r.p99),
                ms(r.max),
                r.cpu.describe(r.secs, r.backend),
                1e6 * server / r.applied.max(1) as f64,
            );
        }
    }
    if !seeds.is_empty() {
        println!();
        println!(
            "Seeding the pull account: one device pushing notes of about 1 KB in batches of {MAX_PUSH_MUTATIONS}."
        );
        println!();
        println!("| backend | notes | body bytes | seconds | notes/s | p50 push | p99 push |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for s in seeds {
            println!(
                "| {} | {} | {} | {:.1} | {} | {} | {} |",
                s.backend.name(),
                thousands(s.notes as f64),
                thousands(s.body_bytes as f64),
                s.secs,
                thousands(s.notes as f64 / s.secs),
                ms(s.p50),
                ms(s.p99),
            );
        }
    }
    if !pulls.is_empty() {
        println!();
        println!(
            "Pull: a fresh client pulls every page from cursor 0 and decodes each into `PullResponse`; median of {} round(s), rounds alternate between the rows.",
            cfg.pull_rounds
        );
        println!();
        println!(
            "| backend | compression | page limit | records | pages | seconds (median) | records/s | all rounds (s) | first page on the wire | CPU per pull |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---|---:|---|");
        for r in pulls {
            let mut secs: Vec<f64> = r.runs.iter().map(|x| x.secs).collect();
            let all = secs
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            let med = median(&mut secs);
            let (records, pages) = r.runs.first().map_or((0, 0), |x| (x.records, x.pages));
            let cpu = r.runs.iter().fold(Cpu::default(), |a, x| Cpu {
                server: a.server + x.cpu.server,
                client: a.client + x.cpu.client,
                postgres: a.postgres + x.cpu.postgres,
            });
            let rounds = r.runs.len().max(1) as f64;
            let per_pull = Cpu {
                server: cpu.server / rounds,
                client: cpu.client / rounds,
                postgres: cpu.postgres / rounds,
            };
            println!(
                "| {}{} | {} | {} | {} | {} | **{:.2}** | {} | {} | {:.1} MB | {} |",
                r.backend.name(),
                if r.vacuumed { ", vacuumed" } else { "" },
                r.encoding.name(),
                r.limit,
                thousands(records as f64),
                pages,
                med,
                thousands(records as f64 / med),
                all,
                r.page_bytes as f64 / 1e6,
                per_pull.seconds(r.backend),
            );
        }
    }
    // The goals of the server issue.
    println!();
    println!("Goals:");
    for r in pushes
        .iter()
        .filter(|r| r.devices == 100 && r.batch == ENGINE_PUSH_BATCH)
    {
        let rate = median(&mut r.rates.clone());
        println!(
            "- {}: >= 10,000 mutations/s with 100 devices (batches of {}): {} -> {}",
            r.backend.name(),
            r.batch,
            thousands(rate),
            if rate >= 10_000.0 { "PASS" } else { "MISS" }
        );
    }
    for r in pulls.iter().filter(|r| r.limit == MAX_PULL_LIMIT) {
        let mut secs: Vec<f64> = r.runs.iter().map(|x| x.secs).collect();
        let med = median(&mut secs);
        let records = r.runs.first().map_or(0, |x| x.records);
        println!(
            "- {}{}: pull of {} one-KB notes in <= 2 s ({}): {:.2} s -> {}",
            r.backend.name(),
            if r.vacuumed { ", vacuumed" } else { "" },
            thousands(records as f64),
            r.encoding.name(),
            med,
            if records < 100_000 {
                "n/a (fewer notes)"
            } else if med <= 2.0 {
                "PASS"
            } else {
                "MISS"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async fn run(cfg: Config) -> Result<()> {
    let mut notes = Vec::new();
    let mut pushes = Vec::new();
    let mut seeds = Vec::new();
    let mut pulls = Vec::new();
    let wall = Instant::now();
    for &backend in &cfg.backends {
        let pg = if backend == Backend::Postgres {
            match pg_cluster()? {
                Some(mut pg) => {
                    pg.read_settings().await?;
                    notes.push(format!(
                        "PostgreSQL: {} ({}).",
                        pg.settings,
                        if pg.own_dir.is_some() {
                            "a throwaway cluster from scripts/pg-test-cluster with OUTPOST_PG_DURABLE=1, on the same disk"
                        } else {
                            "the cluster in OUTPOST_TEST_PG_URL"
                        }
                    ));
                    Some(pg)
                }
                None => {
                    let msg = "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin) and OUTPOST_TEST_PG_URL is not set: the PostgreSQL part was SKIPPED.";
                    eprintln!("{msg}");
                    notes.push(msg.into());
                    continue;
                }
            }
        } else {
            None
        };
        if backend == Backend::Sqlite {
            notes.push("SQLite: WAL, synchronous = FULL (the server's settings), a temp dir on the machine's disk.".into());
        }
        if cfg.push {
            for &batch in &cfg.batches {
                for &n in &cfg.devices {
                    eprintln!(
                        "{}: push, {n} device(s), batches of {batch} ...",
                        backend.name()
                    );
                    let r = push_case(&cfg, backend, pg.as_ref(), n, batch)
                        .await
                        .with_context(|| {
                            format!("{} push, {n} devices, batch {batch}", backend.name())
                        })?;
                    eprintln!(
                        "  {} mutations in {:.1} s: {:.0}/s, p50 {}, p99 {}",
                        r.applied,
                        r.secs,
                        r.applied as f64 / r.secs,
                        ms(r.p50),
                        ms(r.p99)
                    );
                    pushes.push(r);
                }
            }
        }
        if cfg.pull {
            eprintln!("{}: pull ...", backend.name());
            let (seed, results) = pull_case(&cfg, backend, pg.as_ref())
                .await
                .with_context(|| format!("{} pull", backend.name()))?;
            seeds.push(seed);
            pulls.extend(results);
        }
    }
    notes.push(format!(
        "The whole run took {:.0} s.",
        wall.elapsed().as_secs_f64()
    ));
    report(&cfg, &pushes, &seeds, &pulls, &notes);
    Ok(())
}

fn main() -> Result<()> {
    let cfg = Config::from_args()?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .context("the load generator's runtime")?;
    rt.block_on(run(cfg))
}
