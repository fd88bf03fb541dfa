//! The proxy against a real upstream on loopback, checked the way a device would notice.

use super::*;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An upstream that echoes every byte back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(any_port()).await.expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// An HTTP/1.1 upstream that answers `ok` to every request (keep-alive) and records the paths.
async fn http_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(any_port()).await.expect("bind http");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    // Requests without bodies: each ends at the blank line.
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                        pending.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                        log.lock().expect("log").push(path);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if conn.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Sends `GET path` on `conn`; the reply's body, or None if the connection died first.
async fn get(conn: &mut TcpStream, path: &str) -> Option<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: outpost\r\n\r\n");
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.ends_with(b"\r\n\r\nok") {
        let n = timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("a reply or a cut, not silence")
            .ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// Writes `payload` and reads as many bytes back (the echo), with the time it took.
async fn echo_round_trip(conn: &mut TcpStream, payload: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let (mut r, mut w) = conn.split();
    let write = async {
        w.write_all(payload).await.expect("write");
    };
    let read = async {
        let mut back = vec![0u8; payload.len()];
        r.read_exact(&mut back).await.expect("echo back");
        back
    };
    let ((), back) = tokio::join!(write, read);
    (back, started.elapsed())
}

/// True if the connection is dead: reset, closed, or refused, within a second.
async fn is_cut(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    let _ = conn.write_all(b"ping").await;
    matches!(
        timeout(Duration::from_secs(1), conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn online_passes_bytes_unchanged_both_ways() {
    let netem = Netem::start(any_port(), echo_server().await)
        .await
        .expect("start");
    let mut conn = TcpStream::connect(netem.local_addr())
        .await
        .expect("connect");
    let sent = payload(300_000);
    let (back, _) = echo_round_trip(&mut conn, &sent).await;
    assert!(back == sent, "the echo came back altered");
    let status = netem.status();
    assert_eq!(status.bytes_up, 300_000);
    assert_eq!(status.bytes_down, 300_000);
    assert_eq!(status.connections_open, 1);
}

#[tokio::test]
async fn offline_refuses_new_connections_and_cuts_open_ones_then_online_lets_them_in() {
    let netem = Netem::start(any_port(), echo_server().await)
        .await
        .expect("start");
    let mut open = TcpStream::connect(netem.local_addr())
        .await
        .expect("connect");
    assert_eq!(echo_round_trip(&mut open, b"hello").await.0, b"hello");

    netem.set_mode(Mode::Offline).await.expect("offline");
    assert!(
        is_cut(&mut open).await,
        "an open connection survived offline"
    );
    let refused = TcpStream::connect(netem.local_addr()).await;
    assert!(refused.is_err(), "a new connection got through offline");

    netem.set_mode(Mode::Online).await.expect("online");
    let mut again = TcpStream::connect(netem.local_addr())
        .await
        .expect("reconnect");
    assert_eq!(echo_round_trip(&mut again, b"back").await.0, b"back");
}

#[tokio::test]
async fn two_g_adds_latency_and_limits_throughput_compared_to_online() {
    let netem = Netem::start(any_port(), echo_server().await)
        .await
        .expect("start");
    let sent = payload(4_000);
    let mut conn = TcpStream::connect(netem.local_addr())
        .await
        .expect("connect");
    let (_, online) = echo_round_trip(&mut conn, &sent).await;

    // 200 ms and 80 kbit/s (10 kB/s). The echo sends back while the upload still trickles in,
    // so the round trip is at least the latency each way plus one 4 kB transfer (400 ms).
    netem
        .set_mode(Mode::TwoG {
            latency_ms: 200,
            kbit_per_s: 80,
        })
        .await
        .expect("2g");
    let (back, two_g) = echo_round_trip(&mut conn, &sent).await;
    assert!(back == sent, "2g altered the bytes");
    assert!(
        two_g >= Duration::from_millis(800),
        "2g round trip of 4 kB took only {two_g:?}"
    );
    assert!(
        two_g > online * 5,
        "2g {two_g:?} is not much slower than online {online:?}"
    );

    // A tiny message pays the latency each way but hardly any transfer time.
    let (_, ping) = echo_round_trip(&mut conn, b"x").await;
    assert!(ping >= Duration::from_millis(400), "ping {ping:?}");
    assert!(
        ping < two_g,
        "1 byte {ping:?} not faster than 4 kB {two_g:?}"
    );

    netem.set_mode(Mode::Online).await.expect("online");
    let (_, after) = echo_round_trip(&mut conn, &sent).await;
    assert!(after * 5 < two_g, "online again still slow: {after:?}");
}

/// Opens `n` connections one after the other; which of them were dropped.
async fn dropped_pattern(netem: &Netem, n: usize) -> Vec<bool> {
    let mut dropped = Vec::new();
    for _ in 0..n {
        let mut conn = TcpStream::connect(netem.local_addr())
            .await
            .expect("connect");
        let passed = timeout(Duration::from_secs(2), async {
            conn.write_all(b"hi").await.ok()?;
            let mut back = [0u8; 2];
            conn.read_exact(&mut back).await.ok()
        })
        .await
        .expect("a dropped connection fails fast");
        dropped.push(passed.is_none());
    }
    dropped
}

#[tokio::test]
async fn flaky_with_a_seed_drops_about_p_percent_and_the_same_seed_the_same_ones() {
    let upstream = echo_server().await;
    let flaky = Mode::Flaky { drop_percent: 30 };
    let a = Netem::start_seeded(any_port(), upstream, 7)
        .await
        .expect("start");
    a.set_mode(flaky).await.expect("flaky");
    let first = dropped_pattern(&a, 40).await;

    let count = first.iter().filter(|&&d| d).count();
    assert!((6..=20).contains(&count), "30% of 40 dropped {count}");
    let expected: Vec<bool> = (0..40).map(|n| flaky_drops(7, n, 30)).collect();
    assert_eq!(first, expected, "drops do not follow the seed");
    assert_eq!(a.status().connections_cut, count as u64);

    // Switching flaky on again replays from the start; another proxy with the seed does too.
    a.set_mode(flaky).await.expect("flaky again");
    assert_eq!(dropped_pattern(&a, 40).await, first);
    let b = Netem::start_seeded(any_port(), upstream, 7)
        .await
        .expect("start");
    b.set_mode(flaky).await.expect("flaky");
    assert_eq!(dropped_pattern(&b, 40).await, first);
}

#[tokio::test]
async fn cut_reply_forwards_the_request_cuts_the_reply_then_the_next_passes() {
    let (upstream, seen) = http_server().await;
    let netem = Netem::start(any_port(), upstream).await.expect("start");
    let mut conn = TcpStream::connect(netem.local_addr())
        .await
        .expect("connect");
    assert!(get(&mut conn, "/before").await.is_some());

    netem
        .set_mode(Mode::CutReply { next: 1 })
        .await
        .expect("cut-reply");
    assert_eq!(
        get(&mut conn, "/v1/sync/push").await,
        None,
        "reply reached us"
    );
    assert_eq!(
        *seen.lock().expect("log"),
        ["/before", "/v1/sync/push"],
        "the server must have seen the request"
    );
    assert_eq!(netem.status().replies_cut, 1);
    assert_eq!(netem.mode(), Mode::Online, "one cut, then back online");

    let mut retry = TcpStream::connect(netem.local_addr())
        .await
        .expect("connect");
    let reply = get(&mut retry, "/v1/sync/push").await;
    assert!(reply.is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    assert_eq!(netem.status().replies_cut, 1);
}

#[tokio::test]
async fn stall_accepts_and_never_answers_then_online_lets_new_connections_through() {
    let (upstream, seen) = http_server().await;
    let netem = Netem::start(any_port(), upstream).await.expect("start");
    netem.set_mode(Mode::Stall).await.expect("stall");

    let mut stalled = TcpStream::connect(netem.local_addr())
        .await
        .expect("stall still accepts");
    stalled
        .write_all(b"GET /stalled HTTP/1.1\r\nHost: outpost\r\n\r\n")
        .await
        .expect("stall takes the request");
    let mut buf = [0u8; 64];
    let waited = timeout(Duration::from_millis(500), stalled.read(&mut buf)).await;
    assert!(waited.is_err(), "a stalled connection answered: {waited:?}");
    assert!(
        seen.lock().expect("log").is_empty(),
        "stall reached the server"
    );

    netem.set_mode(Mode::Online).await.expect("online");
    assert!(
        is_cut(&mut stalled).await,
        "the stalled connection lives on"
    );
    let mut fresh = TcpStream::connect(netem.local_addr())
        .await
        .expect("connect");
    assert!(get(&mut fresh, "/after").await.is_some());
    assert_eq!(*seen.lock().expect("log"), ["/after"]);
}

#[tokio::test]
async fn impossible_modes_are_refused_and_the_mode_stays() {
    let netem = Netem::start(any_port(), echo_server().await)
        .await
        .expect("start");
    let refused = netem.set_mode(Mode::Flaky { drop_percent: 150 }).await;
    assert!(matches!(refused, Err(NetemError::InvalidMode(_))));
    assert_eq!(netem.mode(), Mode::Online);
}
