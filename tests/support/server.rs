//! A real sync server on 127.0.0.1 with an ephemeral port and its own SQLite database in a temp
//! directory. The listener is bound before the server starts, so it is ready when this returns.
//! Or the real `outpost-server` process ([`spawn_server`]), for scenarios that kill it with -9.

use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A running server; dropping it shuts it down.
pub struct Server {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _stop: oneshot::Sender<()>,
}

fn open() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("server dir");
    let storage = SqliteStorage::open(dir.path()).expect("server storage");
    (dir, AppState::new(Arc::new(storage)))
}

impl Server {
    /// On the current tokio runtime (for async tests).
    pub async fn start() -> Server {
        let (dir, state) = open();
        Self::serve(state, Some(dir)).await
    }

    /// On the database in `dir` (kept when the server stops), on the current tokio runtime.
    pub async fn start_in(dir: &std::path::Path) -> Server {
        let storage = SqliteStorage::open(dir).expect("server storage");
        Self::serve(AppState::new(Arc::new(storage)), None).await
    }

    async fn serve(state: AppState, dir: Option<tempfile::TempDir>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            url,
            _dir: dir,
            _stop: stop,
        }
    }

    /// On its own thread and runtime: for tests that block on `outpost` subprocesses.
    pub fn start_on_thread() -> Server {
        let (dir, state) = open();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, url) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                ready.send(format!("http://{addr}")).expect("send url");
                let _ = serve(listener, state, async move {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Server {
            url: url.recv().expect("server url"),
            _dir: Some(dir),
            _stop: stop,
        }
    }
}

/// The real `outpost-server` on `port`, its database in `dir`; returns once it answers.
pub async fn spawn_server(dir: &std::path::Path, port: u16) -> std::process::Child {
    spawn_server_on(&["--data-dir".as_ref(), dir.as_os_str()], port).await
}

/// The real `outpost-server` on `port` with its database given by `place` (`--data-dir DIR` or
/// `--database-url URL`); returns once it answers.
pub async fn spawn_server_on(place: &[&std::ffi::OsStr], port: u16) -> std::process::Child {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut child = std::process::Command::new(crate::bin("outpost-server"))
            .args(place)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start outpost-server");
        // Up when /v1/health answers; gone if it exited (the port not free yet after a kill).
        loop {
            let health = answers_health(port).await;
            if health {
                return child;
            }
            if child.try_wait().expect("server status").is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "outpost-server never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(Instant::now() < deadline, "outpost-server never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether something answers HTTP on the port (a raw request: no client library needed).
pub async fn answers_health(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if conn.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply).await;
    reply.starts_with(b"HTTP/1.1 200")
}

/// Stops an `outpost-server` process as a service manager does (SIGTERM: it finishes requests
/// in flight and closes its database), and waits for it to exit.
pub fn stop_server(mut child: std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        let _ = child.kill();
    }
    child.wait().expect("reap outpost-server");
}

/// Copies a server's data directory file by file, as a plain file backup does.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("backup dir");
    for entry in std::fs::read_dir(from).expect("read data dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Puts a backup made by [`copy_dir`] back in place of the data directory.
pub fn restore_dir(backup: &std::path::Path, data: &std::path::Path) {
    std::fs::remove_dir_all(data).expect("remove the data dir");
    copy_dir(backup, data);
}
