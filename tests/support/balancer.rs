//! A round-robin HTTP balancer for tests: each request goes to the next of its upstreams, as a
//! load balancer without sticky sessions does, so two instances behind it answer alternately.
//! Bytes pass through as they are (no decompression); the upstreams can be changed while it
//! runs.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Shared {
    upstreams: Mutex<Vec<String>>,
    next: AtomicUsize,
    http: reqwest::Client,
}

/// A running balancer; dropping it stops it.
pub struct Balancer {
    /// Give this to the device instead of a server's URL.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers about one hop, not the message (RFC 9110, 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "host"
    )
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let upstream = {
        let upstreams = shared.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        upstreams[i % upstreams.len()].clone()
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return bad_gateway();
    };
    let mut outgoing = shared
        .http
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(reply) = outgoing.send().await else {
        return bad_gateway();
    };
    let mut response = Response::builder().status(reply.status());
    for (name, value) in reply.headers() {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    let bytes: Bytes = reply.bytes().await.unwrap_or_default();
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| bad_gateway())
}

fn bad_gateway() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

impl Balancer {
    pub async fn start(upstreams: Vec<String>) -> Balancer {
        let shared = Arc::new(Shared {
            upstreams: Mutex::new(upstreams),
            next: AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .no_gzip()
                .no_brotli()
                .build()
                .expect("balancer client"),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Balancer { url, shared, task }
    }

    /// From the next request on, these upstreams in turn.
    pub fn set_upstreams(&self, upstreams: Vec<String>) {
        *self
            .shared
            .upstreams
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = upstreams;
    }
}
