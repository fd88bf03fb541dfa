//! A PostgreSQL for the tests, and a fresh database on it for each test server.
//!
//! With `OUTPOST_TEST_PG_URL` set (a superuser URL, e.g. from `scripts/pg-test-cluster start`),
//! that cluster is used. Otherwise this test process starts its own, once, on first use: a
//! temp dir, `initdb`, and `postgres` on 127.0.0.1 with a free port and its socket in the temp
//! dir. PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user.
//!
//! No postgres may outlive `cargo test`: initdb and the server are run by a small shell
//! watchdog whose stdin is a pipe held open by this process. When this process ends, however
//! it ends (a panic, the harness exiting, kill -9), the kernel closes the pipe, the watchdog's
//! read returns, and it stops postgres (immediate shutdown: the data is thrown away) and
//! deletes the dir, within a fraction of a second. (Killed during initdb, which takes a few
//! seconds, the watchdog lets initdb finish first.)

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser URL of a running cluster: the one given in `OUTPOST_TEST_PG_URL`, or this
/// process's own (started on first call).
pub async fn admin_url() -> String {
    if let Ok(url) = std::env::var("OUTPOST_TEST_PG_URL")
        && !url.trim().is_empty()
    {
        return url.trim().to_owned();
    }
    let cluster = tokio::task::spawn_blocking(|| PRIVATE.get_or_init(start_private).clone())
        .await
        .expect("starting PostgreSQL");
    match cluster {
        Ok(url) => url,
        Err(e) => panic!("no PostgreSQL for the tests: {e}"),
    }
}

/// The cluster's admin URL, a new random database name, and a connection to create it with
/// (its driver task, to await once the client is dropped).
async fn admin_session() -> (
    String,
    String,
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let admin = admin_url().await;
    let name = format!("outpost_test_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test cluster at {admin}: {e}"));
    (admin, name, client, tokio::spawn(connection))
}

/// Creates an empty database with a random name and returns its URL. Each test server gets
/// its own, so tests are isolated and run in parallel.
pub async fn fresh_database_url() -> String {
    let (admin, name, client, driver) = admin_session().await;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    drop(client);
    let _ = driver.await;
    with_database(&admin, &name)
}

/// A copy of the database at `url` as it is now (`CREATE DATABASE .. TEMPLATE`, PostgreSQL's own
/// file-level copy): what restoring a backup taken now gives. Nothing may be connected to it:
/// the copy waits (up to 10 s) for connections just closed to go.
pub async fn copy_database(url: &str) -> String {
    let source = url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .expect("a database in the URL")
        .to_owned();
    let (admin, name, client, driver) = admin_session().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {source}"))
            .await
        {
            Ok(()) => break,
            Err(e)
                if Instant::now() < deadline
                    && e.to_string().contains("accessed by other users") =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("copying {source}: {e}"),
        }
    }
    drop(client);
    let _ = driver.await;
    with_database(&admin, &name)
}

/// `url` with its database replaced by `db` (`postgres://auth@host:port/db?params`).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// This process's own cluster: its URL, or why it could not start (kept, so every test says).
static PRIVATE: OnceLock<Result<String, String>> = OnceLock::new();
/// The watchdog's stdin. Never written or closed: it closes when this process ends.
static WATCHDOG: OnceLock<ChildStdin> = OnceLock::new();

/// Where the PostgreSQL binaries are: `OUTPOST_PG_BINDIR`, the dir `initdb` on the PATH links
/// to, or Debian's newest `/usr/lib/postgresql/<major>/bin`.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("OUTPOST_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // Follow links: /usr/local/bin may hold links to a few of the binaries only.
            if let Ok(initdb) = std::fs::canonicalize(dir.join("initdb"))
                && let Some(bin) = initdb.parent()
                && bin.join("postgres").is_file()
                && bin.join("pg_isready").is_file()
            {
                return Ok(bin.to_owned());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); \
         install Debian's `postgresql` or set OUTPOST_TEST_PG_URL"
            .to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Creates and runs the cluster in `$dir`, then waits for this test process to go away and
/// removes it all. Doing initdb here too means a test process killed at any moment leaves
/// nothing behind.
const WATCHDOG_SCRIPT: &str = r#"
bin=$1 dir=$2 port=$3
# Ctrl-C in the terminal reaches this whole process group; the pipe below decides instead.
trap '' INT HUP
if "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    --no-instructions >"$dir/initdb.log" 2>&1 </dev/null; then
    # fsync and friends off: the tests' data is thrown away, and PostgreSQL's durability is not
    # what they test (crash safety of the protocol is tested end to end), so they run faster.
    "$bin/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=500 -c shared_buffers=64MB \
        >"$dir/postgres.log" 2>&1 </dev/null &
    pg=$!
else
    touch "$dir/initdb.failed"
    pg=
fi
# Returns when the test process is gone: it holds the other end of this pipe.
cat >/dev/null
if [ -n "$pg" ]; then
    # SIGQUIT is an immediate shutdown. It is sent until postgres is gone: a postgres that is
    # still starting has not yet installed its handler and ignores it (a background job of a
    # non-interactive shell starts with SIGQUIT ignored).
    ( while kill -QUIT "$pg" 2>/dev/null; do sleep 0.2; done ) &
    wait "$pg" 2>/dev/null
    kill "$!" 2>/dev/null
fi
rm -rf "$dir"
"#;

fn start_private() -> Result<String, String> {
    let bin = bin_dir()?;
    let root = is_root();
    // A free port can be taken between finding it and postgres binding it: try again then.
    let mut last_error = String::new();
    for _ in 0..3 {
        match start_once(&bin, root) {
            Ok(url) => return Ok(url),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    text
}

fn start_once(bin: &Path, root: bool) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("outpost-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if root {
        let mut chown = Command::new("chown");
        chown.arg("postgres:").arg(&dir);
        if let Err(e) = run(chown, "chown postgres: the cluster dir") {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    }
    let port = free_port()?;
    let mut watchdog = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c");
        c
    };
    let mut child = watchdog
        .arg(WATCHDOG_SCRIPT)
        .arg("outpost-pg-watchdog")
        .arg(bin)
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            format!("starting postgres: {e}")
        })?;
    // Dropping this (on failure below) makes the watchdog stop postgres and delete the dir.
    let stdin = child.stdin.take().ok_or("the watchdog has no stdin")?;

    let started = Instant::now();
    loop {
        if dir.join("initdb.failed").exists() {
            return Err(format!("initdb failed: {}", read(&dir.join("initdb.log"))));
        }
        let probe = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .output();
        let probe = match probe {
            Ok(o) if o.status.success() => break,
            Ok(o) => format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stdout).trim()
            ),
            Err(e) => {
                return Err(format!("running {}: {e}", bin.join("pg_isready").display()));
            }
        };
        let log = read(&dir.join("postgres.log"));
        if log.contains("FATAL") || started.elapsed() > Duration::from_secs(90) {
            return Err(format!(
                "postgres did not start on 127.0.0.1:{port} (after {:?}; pg_isready: {probe}): {log}",
                started.elapsed()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = WATCHDOG.set(stdin);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}
