//! The Outpost sync server (protocol `/v1`): a router factory over a [`storage::Storage`], and
//! [`serve`] to run it on a listener until a shutdown signal, letting requests in flight finish.
//!
//! Tests start it on `127.0.0.1:0` with a temp database; `main.rs` adds flags and signals.

pub mod audit;
pub mod auth;
pub mod blobs;
pub mod clock;
pub mod doctor;
pub mod error;
pub mod openapi;
pub mod plan;
pub mod routes;
pub mod storage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use outpost_protocol::api::{HEADER_HISTORY, MAX_REQUEST_BYTES, codes};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn storage::Storage>,
    /// Attachments' bytes; `None` where no place for them was given (the blob endpoints then
    /// answer 503).
    pub blobs: Option<Arc<blobs::Blobs>>,
    /// Turns true when the server begins to shut down (ends event streams).
    pub shutdown: watch::Receiver<bool>,
    stop: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// With blobs in the storage's default place (`<data-dir>/blobs` for SQLite) and the
    /// default limits; see [`AppState::with_blobs`] for others.
    pub fn new(storage: Arc<dyn storage::Storage>) -> Self {
        let (stop, shutdown) = watch::channel(false);
        let blobs = storage
            .default_blob_dir()
            .map(|dir| Arc::new(blobs::Blobs::in_dir(dir, blobs::BlobConfig::default())));
        Self {
            storage,
            blobs,
            shutdown,
            stop: Arc::new(stop),
        }
    }

    pub fn with_blobs(mut self, blobs: blobs::Blobs) -> Self {
        self.blobs = Some(Arc::new(blobs));
        self
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("a handler panicked");
    error::ApiError::internal().into_response()
}

/// Gives every error reply the JSON `{code, message}` body (S4), also those made by layers
/// below the handlers (an unsupported `Content-Encoding`, say), which come without one.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            codes::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type or Content-Encoding: send JSON, plain or gzip/br compressed",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (codes::PAYLOAD_TOO_LARGE, "the request body is too large")
        }
        StatusCode::NOT_FOUND => (codes::NOT_FOUND, "not found"),
        s if s.is_server_error() => (
            codes::INTERNAL,
            "the server failed; nothing was stored, try again",
        ),
        _ => (codes::BAD_REQUEST, "the request was refused"),
    };
    error::ApiError::new(status, code, message).into_response()
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    // A UUID and a number: always a valid header value.
    let history = HeaderValue::from_str(&state.storage.history().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    let v1 = Router::new()
        .route("/health", get(routes::meta::health))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/accounts", post(routes::accounts::register))
        .route("/sessions", post(routes::accounts::login))
        .route("/sessions/current", delete(routes::accounts::logout))
        .route("/sync/push", post(routes::sync::push))
        .route("/sync/pull", get(routes::sync::pull))
        .route("/sync/events", get(routes::sync::events))
        .route("/sync/digest", get(routes::doctor::digest))
        .route("/sync/digest/entries", post(routes::doctor::digest_entries))
        .route("/sync/records", post(routes::doctor::fetch_records))
        .route("/blobs", get(routes::blobs::limits))
        .route(
            "/blobs/{sha256}",
            get(routes::blobs::download)
                .post(routes::blobs::start)
                .patch(routes::blobs::append),
        );
    Router::new()
        .nest("/v1", v1)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::BAD_REQUEST,
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
        // The limit applies to the body after decompression, so a small zip bomb cannot fill
        // memory. (It binds the extractors that take a whole body; a blob chunk is read by its
        // handler, which stops at `MAX_CHUNK_BYTES` the same way.)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(RequestDecompressionLayer::new())
        .layer(axum::middleware::map_response(json_errors))
        // The fastest level of each algorithm (gzip 1, br 0; nginx compresses on the fly at
        // gzip 1 by default too). Every reply is compressed as it is sent, and at the default
        // levels (gzip 6, br 4) compressing a first sync of 100,000 notes (180 MB of JSON)
        // took the server 5.5 s of CPU, nearly five times the rest of the pull, to make the
        // replies 15% (br) to 30% (gzip) smaller than here (BENCHMARKS.md, "Sync server").
        //
        // Never a blob: photos and most files are compressed already, and a compressed reply
        // would lose its `Content-Length` and its ranges.
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(
                    DefaultPredicate::new()
                        .and(NotForContentType::const_new("application/octet-stream")),
                ),
        )
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
        // Outermost: even an error or a panic names the history, so a device never mistakes
        // a reply from another database for one from the history its cursor came from.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(HEADER_HISTORY),
            history,
        ))
}

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, ends event
/// streams and waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = state.stop.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            let _ = stop.send(true);
        })
        .await
}
