//! The HTTP side of sync: protocol `/v1` over reqwest, with the shared wire types. Every failure
//! is sorted into what the engine must do about it: offline (retry with backoff), signed out,
//! re-download (also when a reply comes from another server history than the one expected), too
//! old, or a server error.

use outpost_protocol::api::{
    Credentials, Cursor, ErrorBody, HEADER_CLIENT_ID, HEADER_HISTORY, HEADER_PROTOCOL, Health,
    History, Mutation, Poke, PullResponse, PushRequest, PushResponse, Session, codes,
};
use outpost_protocol::blobs::{BlobHash, BlobStart, BlobStatus, HEADER_CHUNK_SHA256, Limits};
use outpost_protocol::digest::{
    DigestResponse, EntriesRequest, EntriesResponse, FetchRequest, FetchResponse, Key,
};
use outpost_protocol::{ClientId, PROTOCOL_VERSION};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No connection, a timeout, a cut connection: the network, not the server.
    #[error("offline: {0}")]
    Offline(String),
    /// The server refused the device token: sign in again.
    #[error("signed out by the server: {0}")]
    SignedOut(String),
    /// The server cannot continue from this device's cursor: re-download, keeping the outbox.
    #[error("the server asks for a full re-download: {0}")]
    ResetRequired(String),
    /// The server's history is not the one this device's cursor came from: a server restored
    /// from a backup, a re-created database, another server on the same address. The device
    /// reconciles with it (re-downloads, and sends again what the server lacks).
    #[error("{why}")]
    HistoryChanged {
        /// The history the server's replies now name, when they name one.
        now: Option<History>,
        why: String,
    },
    #[error("{0}")]
    ClientTooOld(String),
    /// A 4xx/5xx with the server's `{code, message}`.
    #[error("the server answered {status}: {message} ({code})")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// A reply that is not the protocol: a captive portal, a proxy's error page, a broken server.
    #[error("the server's reply is not Outpost's protocol: {0}")]
    Garbage(String),
    #[error("not signed in")]
    NotSignedIn,
    /// This device's digest and the server's still differ after a repair.
    #[error("{0}")]
    Unverified(String),
    /// The device token could not be read or kept (a locked keychain, a damaged token file).
    #[error("the token store failed: {0}")]
    Vault(#[from] super::vault::VaultError),
    /// The server address is not one this app can use.
    #[error("{0}")]
    BadServerUrl(String),
    /// The HTTP client could not be set up (no TLS roots, a broken system configuration).
    #[error("cannot set up connections: {0}")]
    HttpClient(String),
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl SyncError {
    /// Worth retrying later without the user doing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Offline(_) | SyncError::Garbage(_) => true,
            SyncError::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            SyncError::Offline(_) => "offline",
            SyncError::SignedOut(_) => "signed_out",
            SyncError::ResetRequired(_) => "reset_required",
            SyncError::HistoryChanged { .. } => codes::HISTORY_CHANGED,
            SyncError::ClientTooOld(_) => "client_too_old",
            SyncError::Server { code, .. } => code,
            SyncError::Garbage(_) => "bad_reply",
            SyncError::NotSignedIn => "not_signed_in",
            SyncError::Unverified(_) => "unverified",
            SyncError::Vault(_) => "token_store",
            SyncError::BadServerUrl(_) => "bad_server_url",
            SyncError::HttpClient(_) => "http_client",
            SyncError::Store(e) => e.code(),
        }
    }
}

fn network(e: reqwest::Error) -> SyncError {
    // Never include the URL's query or headers: only what kind of failure it was.
    let kind = if e.is_timeout() {
        "the server did not answer in time"
    } else if e.is_connect() {
        "cannot reach the server"
    } else if e.is_body() || e.is_decode() {
        "the connection broke during the reply"
    } else {
        "the request failed"
    };
    SyncError::Offline(kind.to_owned())
}

/// A download in progress: the reply's bytes start at `from`.
pub struct BlobDownload {
    resp: reqwest::Response,
    pub from: u64,
}

impl BlobDownload {
    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>, SyncError> {
        self.resp.chunk().await.map_err(network)
    }
}

/// A client for one server and one device.
#[derive(Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    client_id: ClientId,
    token: Option<String>,
    /// The server history replies must come from; `None` until the first reply that names one
    /// (see [`SyncClient::expect_history`]). Shared by the clones a cycle makes.
    history: Arc<Mutex<Option<History>>>,
}

impl std::fmt::Debug for SyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClient")
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How long the client waits: to connect, and between bytes of a reply (not for the whole
/// reply: a large pull on 2G takes long but keeps moving).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Push bodies from this size on are sent gzip-compressed.
const COMPRESS_FROM_BYTES: usize = 4096;

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, SyncError> {
    use std::io::Write;
    // The fastest level: most of the gain, little CPU on a slow laptop.
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| SyncError::Store(crate::Error::Data(format!("compressing a push: {e}"))))
}

fn http_client(connect: Duration, read: Duration) -> Result<reqwest::Client, SyncError> {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(read)
        .user_agent(concat!("outpost/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SyncError::HttpClient(e.to_string()))
}

impl SyncClient {
    pub fn new(
        base: &str,
        client_id: ClientId,
        token: Option<String>,
    ) -> Result<SyncClient, SyncError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SyncError::BadServerUrl(format!(
                "the server address must start with http:// or https://, got {base:?}"
            )));
        }
        let http = http_client(CONNECT_TIMEOUT, READ_TIMEOUT)?;
        Ok(SyncClient {
            http,
            base,
            client_id,
            token,
            history: Arc::default(),
        })
    }

    /// From now on a reply from another server history fails with
    /// [`SyncError::HistoryChanged`] (`None`: the first reply that names one sets it).
    pub fn expect_history(&self, history: Option<History>) {
        *self.history.lock().unwrap_or_else(|e| e.into_inner()) = history;
    }

    /// The server history replies came from (or must come from).
    pub fn history(&self) -> Option<History> {
        *self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a reply to the history it must come from. A reply without the header is from a
    /// server that predates histories (nothing to check); one with a header that is not a
    /// history is not our protocol.
    fn check_history(&self, resp: &reqwest::Response) -> Result<(), SyncError> {
        let Some(value) = resp.headers().get(HEADER_HISTORY) else {
            return Ok(());
        };
        let seen: History = value
            .to_str()
            .map_err(|e| e.to_string())
            .and_then(|v| v.parse())
            .map_err(|e| SyncError::Garbage(format!("the reply's {HEADER_HISTORY}: {e}")))?;
        let mut expected = self.history.lock().unwrap_or_else(|e| e.into_inner());
        match *expected {
            None => {
                *expected = Some(seen);
                Ok(())
            }
            Some(known) if known == seen => Ok(()),
            Some(known) => Err(SyncError::HistoryChanged {
                now: Some(seen),
                why: format!(
                    "the server's data is not the copy this device synced with (it was {known}, now {seen}: restored from a backup, or a new database); reconciling"
                ),
            }),
        }
    }

    /// The same client with other timeouts. The product keeps [`CONNECT_TIMEOUT`] and
    /// [`READ_TIMEOUT`]; tests of a stalled link use a short read timeout so they do not wait
    /// 30 s for each stalled request (see `EngineConfig::read_timeout`).
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Result<Self, SyncError> {
        self.http = http_client(connect, read)?;
        Ok(self)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, SyncError> {
        let token = self.token.as_deref().ok_or(SyncError::NotSignedIn)?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header(HEADER_CLIENT_ID, self.client_id.to_string())
            .header(HEADER_PROTOCOL, PROTOCOL_VERSION.to_string()))
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
    ) -> Result<T, SyncError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(network)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                SyncError::Garbage(format!(
                    "{e} (a {}-byte reply to a {status} response)",
                    bytes.len()
                ))
            });
        }
        let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) else {
            return Err(if status.is_server_error() {
                SyncError::Server {
                    status: status.as_u16(),
                    code: "server_error".into(),
                    message: format!("HTTP {status} without a protocol error body"),
                }
            } else {
                SyncError::Garbage(format!("HTTP {status} without a protocol error body"))
            });
        };
        Err(match body.code.as_str() {
            codes::UNAUTHORIZED => SyncError::SignedOut(body.message),
            codes::RESET_REQUIRED | codes::CURSOR_FROM_THE_FUTURE => {
                SyncError::ResetRequired(body.message)
            }
            codes::CLIENT_TOO_OLD => SyncError::ClientTooOld(body.message),
            codes::HISTORY_CHANGED => SyncError::HistoryChanged {
                now: None,
                why: body.message,
            },
            _ => SyncError::Server {
                status: status.as_u16(),
                code: body.code,
                message: body.message,
            },
        })
    }

    async fn session(
        &self,
        path: &str,
        email: &str,
        password: &str,
        device_name: Option<String>,
    ) -> Result<Session, SyncError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&Credentials {
                email: email.to_owned(),
                password: password.to_owned(),
                client_id: self.client_id,
                device_name,
            })
            .send()
            .await
            .map_err(network)?;
        Self::decode(resp).await
    }

    pub async fn register(
        &self,
        email: &str,
        password: &str,
        device_name: Option<String>,
    ) -> Result<Session, SyncError> {
        self.session("/v1/accounts", email, password, device_name)
            .await
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device_name: Option<String>,
    ) -> Result<Session, SyncError> {
        self.session("/v1/sessions", email, password, device_name)
            .await
    }

    pub async fn logout(&self) -> Result<(), SyncError> {
        let resp = self
            .request(reqwest::Method::DELETE, "/v1/sessions/current")?
            .send()
            .await
            .map_err(network)?;
        if resp.status().is_success() {
            return Ok(());
        }
        Self::decode::<serde_json::Value>(resp).await.map(|_| ())
    }

    /// The server's clock (`GET /v1/health`); `None` from a server that does not say.
    pub async fn server_time(&self) -> Result<Option<u64>, SyncError> {
        let request = self.request(reqwest::Method::GET, "/v1/health")?;
        let health: Health = self.call(request).await?;
        Ok(health.server_time_ms)
    }

    pub async fn push(&self, mutations: Vec<Mutation>) -> Result<PushResponse, SyncError> {
        let json = serde_json::to_vec(&PushRequest { mutations })
            .map_err(|e| SyncError::Store(crate::Error::Data(format!("a push: {e}"))))?;
        let request = self
            .request(reqwest::Method::POST, "/v1/sync/push")?
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        // Notes are text and compress three to five times: on a 2G link that is minutes saved
        // on a big outbox. Tiny pushes (one edit) go as they are.
        let request = if json.len() >= COMPRESS_FROM_BYTES {
            request
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(gzip(&json)?)
        } else {
            request.body(json)
        };
        self.call(request).await
    }

    /// Sends a prepared request and decodes the reply (or sorts its error), from the server
    /// history this client expects.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SyncError> {
        let resp = request.send().await.map_err(network)?;
        if resp.status().is_success() {
            self.check_history(&resp)?;
        }
        Self::decode(resp).await
    }

    /// The sync doctor: the account summed up bucket by bucket.
    pub async fn digest(&self) -> Result<DigestResponse, SyncError> {
        self.call(self.request(reqwest::Method::GET, "/v1/sync/digest")?)
            .await
    }

    /// The sync doctor: one line per record of the given buckets.
    pub async fn digest_entries(&self, buckets: Vec<u8>) -> Result<EntriesResponse, SyncError> {
        let body = EntriesRequest { buckets };
        self.call(
            self.request(reqwest::Method::POST, "/v1/sync/digest/entries")?
                .json(&body),
        )
        .await
    }

    /// The current records of some keys, for a repair.
    pub async fn fetch_records(&self, keys: Vec<Key>) -> Result<FetchResponse, SyncError> {
        let body = FetchRequest { keys };
        self.call(
            self.request(reqwest::Method::POST, "/v1/sync/records")?
                .json(&body),
        )
        .await
    }

    /// The server's blob limits and what the account uses (`GET /v1/blobs`).
    pub async fn blob_limits(&self) -> Result<Limits, SyncError> {
        let resp = self
            .request(reqwest::Method::GET, "/v1/blobs")?
            .send()
            .await
            .map_err(network)?;
        Self::decode(resp).await
    }

    /// Begins or resumes the upload of a blob: how much of it the server holds.
    pub async fn blob_start(&self, hash: &BlobHash, size: u64) -> Result<BlobStatus, SyncError> {
        let resp = self
            .request(reqwest::Method::POST, &format!("/v1/blobs/{hash}"))?
            .json(&BlobStart { size })
            .send()
            .await
            .map_err(network)?;
        Self::decode(resp).await
    }

    /// Sends one chunk of a blob at `offset` (where the server said the upload stands).
    pub async fn blob_chunk(
        &self,
        hash: &BlobHash,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<BlobStatus, SyncError> {
        let chunk_hash = BlobHash::of(&bytes);
        let resp = self
            .request(
                reqwest::Method::PATCH,
                &format!("/v1/blobs/{hash}?offset={offset}"),
            )?
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(HEADER_CHUNK_SHA256, chunk_hash.as_str())
            .body(bytes)
            .send()
            .await
            .map_err(network)?;
        Self::decode(resp).await
    }

    /// The bytes of a blob from `from` on: the reply to read from, or `None` when the server
    /// does not have the blob (not uploaded yet by the device that added it).
    pub async fn blob_download(
        &self,
        hash: &BlobHash,
        from: u64,
    ) -> Result<Option<BlobDownload>, SyncError> {
        let mut request = self.request(reqwest::Method::GET, &format!("/v1/blobs/{hash}"))?;
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let resp = request.send().await.map_err(network)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Self::decode::<serde_json::Value>(resp).await.map(|_| None);
        }
        // A server that ignores the range sends the whole blob: start over from 0.
        let from = if status == reqwest::StatusCode::PARTIAL_CONTENT {
            from
        } else {
            0
        };
        Ok(Some(BlobDownload { resp, from }))
    }

    /// The changes after `cursor`; with `chain` (the `next_chain` that came with `cursor`) the
    /// server checks that its history at `cursor` is the one this device read.
    pub async fn pull(
        &self,
        cursor: Cursor,
        chain: Option<&str>,
        limit: u32,
    ) -> Result<PullResponse, SyncError> {
        let mut path = format!("/v1/sync/pull?cursor={}&limit={limit}", cursor.0);
        // 32 hex digits from the server; anything else is not sent rather than escaped.
        if let Some(chain) = chain.filter(|c| c.bytes().all(|b| b.is_ascii_hexdigit())) {
            path.push_str("&chain=");
            path.push_str(chain);
        }
        self.call(self.request(reqwest::Method::GET, &path)?).await
    }

    /// Opens the server's poke stream; yields each announced cursor until the stream ends.
    pub async fn events(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Result<Cursor, SyncError>>, SyncError> {
        use futures_util::StreamExt;
        let resp = self
            .request(reqwest::Method::GET, "/v1/sync/events")?
            // An event stream is long-lived: only the idle gap between events is bounded, and
            // the server sends a keep-alive every 15 s.
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(network)?;
        if resp.status().is_success() {
            self.check_history(&resp)?;
        } else {
            return Err(Self::decode::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or_else(|| SyncError::Garbage("an event stream that is not one".into())));
        }
        let mut buffer = String::new();
        let stream = resp.bytes_stream().flat_map(move |chunk| {
            let mut out = Vec::new();
            match chunk {
                Err(e) => out.push(Err(network(e))),
                Ok(bytes) => {
                    buffer.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = buffer.find("\n\n") {
                        let event: String = buffer.drain(..end + 2).collect();
                        for line in event.lines() {
                            if let Some(data) = line.strip_prefix("data:")
                                && let Ok(poke) = serde_json::from_str::<Poke>(data.trim())
                            {
                                out.push(Ok(poke.cursor));
                            }
                        }
                    }
                }
            }
            futures_util::stream::iter(out)
        });
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A server that accepts the connection and never answers (a stalled link): the request
    /// fails as offline after the read timeout, not never.
    #[tokio::test]
    async fn a_stalled_server_times_out_as_offline_after_the_read_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        // Accepts (the kernel completes the handshake from the backlog), never reads or writes.
        let client = SyncClient::new(&url, ClientId::new(), Some("token".into()))
            .expect("client")
            .with_timeouts(Duration::from_secs(1), Duration::from_millis(200))
            .expect("timeouts");
        let started = std::time::Instant::now();
        let result = client.pull(Cursor(0), None, 10).await;
        assert!(
            matches!(&result, Err(SyncError::Offline(m)) if m.contains("in time")),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(listener);
    }

    /// A server on a thread that answers each connection with the next of `replies` (a raw
    /// HTTP/1.1 response), then stops.
    fn answering(replies: Vec<String>) -> String {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for reply in replies {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                // Reads the request head before answering (a client may wait to send it all).
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        url
    }

    fn pull_reply(history: Option<&str>) -> String {
        let body = r#"{"records":[],"next_cursor":0,"has_more":false,"remaining":0,"last_mutation_number":0,"server_time_ms":1}"#;
        let header = history.map_or(String::new(), |h| format!("{HEADER_HISTORY}: {h}\r\n"));
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{header}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// The first reply sets the history; the same one passes; another one is a
    /// `history_changed` that names it; a header that is not a history is not the protocol; a
    /// reply without one (a server from before histories) is taken as it is.
    #[tokio::test]
    async fn replies_are_held_to_the_server_history_they_must_come_from() {
        let first = History {
            database: uuid::Uuid::now_v7(),
            epoch: 0,
        };
        let restored = History { epoch: 1, ..first };
        let url = answering(vec![
            pull_reply(Some(&first.to_string())),
            pull_reply(Some(&first.to_string())),
            pull_reply(Some(&restored.to_string())),
            pull_reply(Some("not-a-history")),
            pull_reply(None),
        ]);
        let client = SyncClient::new(&url, ClientId::new(), Some("token".into())).expect("client");
        assert_eq!(client.history(), None);
        client.pull(Cursor(0), None, 10).await.expect("first reply");
        assert_eq!(client.history(), Some(first), "the first reply sets it");
        client
            .pull(Cursor(0), None, 10)
            .await
            .expect("same history");
        let changed = client.pull(Cursor(0), None, 10).await;
        assert!(
            matches!(&changed, Err(SyncError::HistoryChanged { now: Some(h), why }) if *h == restored && why.contains("restored from a backup")),
            "{changed:?}"
        );
        assert_eq!(
            client.history(),
            Some(first),
            "a changed history is not taken silently"
        );
        let garbage = client.pull(Cursor(0), None, 10).await;
        assert!(
            matches!(&garbage, Err(SyncError::Garbage(m)) if m.contains(HEADER_HISTORY)),
            "{garbage:?}"
        );
        client.pull(Cursor(0), None, 10).await.expect("no header");
    }

    #[test]
    fn a_compressed_push_body_is_smaller_and_decodes_to_the_same_json() {
        let json = serde_json::to_vec(&serde_json::json!({
            "body": "Pump 3 pressure 240 kPa, seal worn. ".repeat(200)
        }))
        .expect("json");
        let packed = gzip(&json).expect("gzip");
        assert!(
            packed.len() * 3 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, json);
    }
}
