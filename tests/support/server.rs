//! A real sync server on 127.0.0.1 with an ephemeral port and its own SQLite database in a temp
//! directory. The listener is bound before the server starts, so it is ready when this returns.

use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use std::sync::Arc;
use tokio::sync::oneshot;

/// A running server; dropping it shuts it down.
pub struct Server {
    pub url: String,
    _dir: tempfile::TempDir,
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
            _dir: dir,
            _stop: stop,
        }
    }
}
