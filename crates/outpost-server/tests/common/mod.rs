//! Starting a real server on 127.0.0.1 with an ephemeral port, on either backend, and a small
//! typed client for the tests. Every scenario runs against both backends (see `backends!`).

#![allow(dead_code)]

pub mod blobs;
pub mod pg;
pub mod process;

use outpost_protocol::api::{
    Credentials, Cursor, HEADER_CLIENT_ID, HEADER_PROTOCOL, Mutation, PullResponse, PushRequest,
    PushResponse, Session,
};
use outpost_protocol::{ClientId, Entity, NoteId, Stamp};
use outpost_server::blobs::{BlobConfig, Blobs};
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database per server on a test cluster (see [`pg`]).
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each `async fn scenario(backend: Backend)`.
#[macro_export]
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A running server. Dropping it stops it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    pub storage: Arc<dyn Storage>,
    /// The server's blobs (the very ones its handlers use, locks and all), if it keeps any.
    pub blobs: Option<Arc<Blobs>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with_blobs(backend, BlobConfig::default()).await
    }

    /// A server whose blobs are files in its temp dir (`blobs/`), with these limits.
    pub async fn start_with_blobs(backend: Backend, config: BlobConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage: Arc<dyn Storage> = match backend {
            Backend::Sqlite => {
                Arc::new(SqliteStorage::open(dir.path()).expect("open sqlite storage"))
            }
            Backend::Postgres => {
                let url = pg::fresh_database_url().await;
                let storage = PgStorage::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
                Arc::new(storage)
            }
        };
        let blobs = Blobs::in_dir(dir.path().join("blobs"), config);
        Self::serve(storage, Some(dir), Some(blobs)).await
    }

    /// A server on `storage` (with blobs in its default place, if it has one).
    pub async fn start_on(storage: Arc<dyn Storage>, dir: Option<tempfile::TempDir>) -> TestServer {
        Self::serve(storage, dir, None).await
    }

    async fn serve(
        storage: Arc<dyn Storage>,
        dir: Option<tempfile::TempDir>,
        blobs: Option<Blobs>,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let mut state = AppState::new(storage.clone());
        if let Some(blobs) = blobs {
            state = state.with_blobs(blobs);
        }
        let blobs = state.blobs.clone();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
            storage,
            blobs,
        }
    }

    /// The server's temp dir (its blobs are in `blobs/`).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(tempfile::TempDir::path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops accepting, lets requests in flight finish, and returns the storage (for a restart).
    pub async fn stop(mut self) -> (Arc<dyn Storage>, Option<tempfile::TempDir>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server exits cleanly");
        }
        (self.storage.clone(), self._dir.take())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A device talking to the server through the real HTTP API.
#[derive(Clone)]
pub struct Device {
    pub http: reqwest::Client,
    pub base: String,
    pub client_id: ClientId,
    pub token: String,
    pub next_number: i64,
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("http client")
}

impl Device {
    /// Registers a new account from a new device.
    pub async fn register(server: &TestServer, email: &str) -> Device {
        let client_id = ClientId::new();
        let resp = http()
            .post(server.url("/v1/accounts"))
            .json(&Credentials {
                email: email.into(),
                password: "correct horse battery".into(),
                client_id,
                device_name: Some("test".into()),
            })
            .send()
            .await
            .expect("register");
        assert_eq!(
            resp.status(),
            201,
            "register: {}",
            resp.text().await.unwrap_or_default()
        );
        let session: Session = resp.json().await.expect("session");
        Device {
            http: http(),
            base: server.base.clone(),
            client_id,
            token: session.token,
            next_number: 1,
        }
    }

    /// Signs in to an existing account from a new device.
    pub async fn login(server: &TestServer, email: &str) -> Device {
        let client_id = ClientId::new();
        let resp = http()
            .post(server.url("/v1/sessions"))
            .json(&Credentials {
                email: email.into(),
                password: "correct horse battery".into(),
                client_id,
                device_name: None,
            })
            .send()
            .await
            .expect("login");
        assert_eq!(
            resp.status(),
            200,
            "login: {}",
            resp.text().await.unwrap_or_default()
        );
        let session: Session = resp.json().await.expect("session");
        Device {
            http: http(),
            base: server.base.clone(),
            client_id,
            token: session.token,
            next_number: 1,
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(HEADER_CLIENT_ID, self.client_id.to_string())
            .header(HEADER_PROTOCOL, "1")
    }

    /// A note.put of `fields` with the next mutation number.
    pub fn put(
        &mut self,
        note: NoteId,
        fields: &[(&str, serde_json::Value)],
        base: Option<i64>,
    ) -> Mutation {
        let stamp = self.stamp();
        let number = self.next_number;
        self.next_number += 1;
        Mutation::put(Entity::Note, note, number)
            .fields(fields, stamp)
            .base(base)
            .build()
    }

    pub fn stamp(&self) -> Stamp {
        Stamp {
            physical_ms: outpost_server::clock::now_ms(),
            counter: u32::try_from(self.next_number).unwrap_or(0),
            node: self.client_id,
        }
    }

    pub async fn push_raw(&self, mutations: Vec<Mutation>) -> reqwest::Response {
        self.try_push(mutations).await.expect("push")
    }

    /// A push that may fail on the network (the server was killed, say).
    pub async fn try_push(&self, mutations: Vec<Mutation>) -> reqwest::Result<reqwest::Response> {
        self.request(reqwest::Method::POST, "/v1/sync/push")
            .json(&PushRequest { mutations })
            .send()
            .await
    }

    pub async fn push(&self, mutations: Vec<Mutation>) -> PushResponse {
        let resp = self.push_raw(mutations).await;
        assert_eq!(
            resp.status(),
            200,
            "push: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("push response")
    }

    pub async fn pull(&self, cursor: Cursor, limit: u32) -> PullResponse {
        let resp = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/sync/pull?cursor={}&limit={limit}", cursor.0),
            )
            .send()
            .await
            .expect("pull");
        assert_eq!(
            resp.status(),
            200,
            "pull: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("pull response")
    }

    /// Pulls every page from `cursor`; returns the records and the final cursor.
    pub async fn pull_all(
        &self,
        mut cursor: Cursor,
    ) -> (Vec<outpost_protocol::api::Record>, Cursor) {
        let mut all = Vec::new();
        loop {
            let page = self.pull(cursor, 1000).await;
            all.extend(page.records);
            cursor = page.next_cursor;
            if !page.has_more {
                return (all, cursor);
            }
        }
    }
}

/// `{code, message}` of an error reply, asserting its status.
pub async fn error_of(resp: reqwest::Response, status: u16) -> (String, String) {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "status; body: {text}");
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body must be JSON ({e}): {text}"));
    let code = body["code"].as_str().expect("code").to_owned();
    let message = body["message"].as_str().expect("message").to_owned();
    assert!(!message.is_empty());
    (code, message)
}

/// A connection URL to a fresh, empty database of `backend`, for a server subprocess.
pub async fn database_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => panic!("an SQLite server takes --data-dir, not a database URL"),
        Backend::Postgres => pg::fresh_database_url().await,
    }
}
