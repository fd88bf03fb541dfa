//! A fault-injecting TCP proxy between a device and the real server: airplane mode for tests.
//!
//! It passes bytes through untouched, or, when told, cuts the connection after the server has
//! answered a request and before the reply reaches the device: the server has committed (it
//! replies only after its commit), the device never hears about it. This is the fault that
//! idempotency keys exist for (invariant L3, server invariant S1).
//!
//! How it knows which reply belongs to which request: HTTP/1.1 clients (reqwest included) do not
//! pipeline, so on one connection the bytes the server sends after a request line went up are
//! that request's reply. The proxy watches the request lines going up and, for a request it was
//! told to cut, drops the connection at the first byte coming back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Faults {
    /// Cut the replies to the next `remaining` requests whose path starts with `path_prefix`.
    cut_prefix: String,
    cut_remaining: usize,
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    /// Request lines seen going up (`POST /v1/sync/push`), in order.
    requests: Mutex<Vec<String>>,
    replies_cut: AtomicUsize,
}

/// A running proxy; dropping it stops accepting (connections in flight run out).
pub struct Proxy {
    /// Give this to the device instead of the server's URL.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Proxy {
    /// A pass-through proxy in front of the server at `server_url` (`http://host:port`).
    pub async fn start(server_url: &str) -> Proxy {
        let upstream: SocketAddr = server_url
            .trim_start_matches("http://")
            .parse()
            .expect("the server URL is http://ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, accepting.clone()));
            }
        });
        Proxy { url, shared, task }
    }

    /// Cuts the replies to the next `n` requests whose path starts with `path_prefix`
    /// (`/v1/sync/push`, or `/v1/` for any request), then passes everything through again.
    pub fn cut_replies(&self, path_prefix: &str, n: usize) {
        let mut faults = lock(&self.shared.faults);
        faults.cut_prefix = path_prefix.to_owned();
        faults.cut_remaining = n;
    }

    /// Back to passing everything through.
    pub fn pass_through(&self) {
        lock(&self.shared.faults).cut_remaining = 0;
    }

    /// How many replies were cut so far.
    pub fn replies_cut(&self) -> usize {
        self.shared.replies_cut.load(Ordering::SeqCst)
    }

    /// The request lines seen so far, without the HTTP version (`POST /v1/sync/push`).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }
}

/// Request lines in `bytes` (whole lines only: `GET /path HTTP/1.1`), without the version.
fn request_lines(bytes: &[u8]) -> Vec<String> {
    const METHODS: [&str; 5] = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD "];
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .filter_map(|line| {
            let line = line.strip_suffix(" HTTP/1.1")?;
            METHODS
                .iter()
                .any(|m| line.starts_with(m))
                .then(|| line.to_owned())
        })
        .collect()
}

async fn relay(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut_next_reply = Arc::new(AtomicBool::new(false));

    let cut = cut_next_reply.clone();
    let up_shared = shared.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of the previous read, so a request line split across two reads is still seen.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            carry.extend_from_slice(&buf[..n]);
            // Everything up to the last line break is whole lines; keep the rest for later.
            let whole = carry
                .windows(2)
                .rposition(|w| w == b"\r\n")
                .map_or(0, |i| i + 2);
            for line in request_lines(&carry[..whole]) {
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                lock(&up_shared.requests).push(line);
                let mut faults = lock(&up_shared.faults);
                if faults.cut_remaining > 0 && path.starts_with(&faults.cut_prefix) {
                    faults.cut_remaining -= 1;
                    // Set before the request goes up, so the reply cannot slip through.
                    cut.store(true, Ordering::SeqCst);
                }
            }
            carry.drain(..whole);
            // A body without line breaks must not grow the carry for ever.
            if carry.len() > 4096 {
                carry.drain(..carry.len() - 4096);
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    });

    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut_next_reply.load(Ordering::SeqCst) {
            // The server has answered: drop both connections without passing a byte of it on.
            shared.replies_cut.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
    // Dropping the halves closes both connections.
}
