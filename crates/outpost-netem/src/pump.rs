//! One proxied connection: two directions, each a reader and a writer joined by a queue.
//!
//! The reader stamps every chunk with the time it arrived; the writer looks at the current mode
//! for each chunk. So 2G latency is added once per chunk from its arrival, not piled up chunk
//! after chunk, and a switch of mode takes effect on connections already open.
//!
//! Cut-reply needs to know which reply belongs to which request: HTTP/1.1 clients (reqwest
//! included) do not pipeline, so the bytes the server sends after a request line went up are
//! that request's reply. The upward reader spots request lines; the downward reader drops the
//! connection at the first byte of a reply it was told to cut.

use crate::{Mode, Shared, flaky};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

const CHUNK: usize = 16 * 1024;

/// How a direction (or a connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The sender closed its side; passed on as a half-close.
    Eof,
    /// The proxy decided to reset the connection.
    Cut,
    /// An I/O error on either side: close both.
    Broken,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard<'a>(&'a Shared);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.counters.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resets the connection (RST), as a dead link looks to the device: an error, not a clean end.
fn reset(stream: TcpStream, shared: &Shared) {
    shared.counters.cut.fetch_add(1, Ordering::SeqCst);
    // Linger 0 turns the close into a reset; if it cannot be set, a plain close still ends it.
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "cannot set linger 0, closing instead of resetting");
    }
    drop(stream);
}

pub(crate) async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let counters = &shared.counters;
    counters.total.fetch_add(1, Ordering::SeqCst);
    counters.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(&shared);
    let mode = *shared.mode.borrow();
    match mode {
        // Accepted just before the switch: the device must not get through.
        Mode::Offline => return reset(client, &shared),
        Mode::Stall => return stall(client, &shared).await,
        Mode::Flaky { drop_percent } => {
            let n = counters.flaky_seq.fetch_add(1, Ordering::SeqCst);
            if flaky::drops(shared.seed, n, drop_percent) {
                tracing::info!(connection = n, "flaky: dropping connection");
                return reset(client, &shared);
            }
        }
        Mode::Online | Mode::TwoG { .. } | Mode::CutReply { .. } => {}
    }
    let server = match TcpStream::connect(shared.upstream).await {
        Ok(server) => server,
        Err(error) => {
            // The device sees what it would see with the server down: a dead connection.
            tracing::warn!(upstream = %shared.upstream, %error, "upstream unreachable");
            return reset(client, &shared);
        }
    };
    relay(client, server, &shared).await;
}

/// Accepts bytes and never answers. The stall ends when the mode changes: a device that kept
/// a connection through an outage finds it dead afterwards (the far side forgot it), so it is
/// reset then.
async fn stall(mut client: TcpStream, shared: &Shared) {
    let mut mode = shared.mode.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return, // the device gave up
                Ok(_) => {}               // swallowed
            },
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow_and_update() != Mode::Stall {
                    return reset(client, shared);
                }
            }
        }
    }
}

async fn relay(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    let cut_reply = AtomicBool::new(false);
    let mut offline = shared.mode.subscribe();
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pipe(client_read, server_write, Dir::Up, shared, &cut_reply);
        let down = pipe(server_read, client_write, Dir::Down, shared, &cut_reply);
        tokio::select! {
            end = both(up, down) => end,
            () = until_offline(&mut offline) => End::Cut,
        }
    };
    if end == End::Cut {
        reset(client, shared);
        // The server only needs to see the connection go; a reset there would just be noise.
        drop(server);
    }
}

/// Waits until the mode is offline (or the proxy is gone).
async fn until_offline(mode: &mut watch::Receiver<Mode>) {
    loop {
        if *mode.borrow_and_update() == Mode::Offline {
            return;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
}

/// Runs both directions; ends when both reached their end, or at once on a cut or an error.
async fn both(up: impl Future<Output = End>, down: impl Future<Output = End>) -> End {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let end = tokio::select! {
            end = &mut up, if !up_done => { up_done = true; end }
            end = &mut down, if !down_done => { down_done = true; end }
        };
        if end != End::Eof {
            return end;
        }
    }
    End::Eof
}

async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    dir: Dir,
    shared: &Shared,
    cut_reply: &AtomicBool,
) -> End {
    // A few chunks of slack: enough to keep a fast link busy, bounded so a slow one pushes
    // back on the sender instead of buffering without end.
    let (queue, mut queued) = mpsc::channel::<(Instant, Vec<u8>)>(8);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        // The tail of the previous read, so a request line split across two reads is still seen.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) => return End::Eof,
                Ok(n) => n,
                Err(_) => return End::Broken,
            };
            let arrived = Instant::now();
            match dir {
                Dir::Up => {
                    for _ in 0..count_request_lines(&mut carry, &buf[..n]) {
                        // Marked before the request goes up, so no byte of the reply slips by.
                        if shared.take_reply_cut() {
                            cut_reply.store(true, Ordering::SeqCst);
                        }
                    }
                }
                Dir::Down => {
                    if cut_reply.load(Ordering::SeqCst) {
                        // The server has answered, so it has committed: the device never hears.
                        shared.counters.replies_cut.fetch_add(1, Ordering::SeqCst);
                        tracing::info!("cut-reply: reply cut after the server answered");
                        return End::Cut;
                    }
                }
            }
            if queue.send((arrived, buf[..n].to_vec())).await.is_err() {
                return End::Broken;
            }
        }
    };
    let writer = async {
        let mut mode = shared.mode.subscribe();
        // When the shaped link is free again: bytes queue behind each other at the given rate.
        let mut link_free = Instant::now();
        while let Some((arrived, chunk)) = queued.recv().await {
            let current = loop {
                let current = *mode.borrow_and_update();
                if current != Mode::Stall {
                    break current;
                }
                // Stalled: hold the bytes until the mode changes.
                if mode.changed().await.is_err() {
                    return End::Broken;
                }
            };
            let written = match current {
                Mode::TwoG {
                    latency_ms,
                    kbit_per_s,
                } => {
                    sleep_until(arrived + Duration::from_millis(latency_ms)).await;
                    write_shaped(&mut to, &chunk, kbit_per_s, &mut link_free).await
                }
                _ => to.write_all(&chunk).await,
            };
            if written.is_err() {
                return End::Broken;
            }
            let counter = match dir {
                Dir::Up => &shared.counters.bytes_up,
                Dir::Down => &shared.counters.bytes_down,
            };
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        // The reader saw the end: pass the half-close on (HTTP clients may wait for it).
        match to.shutdown().await {
            Ok(()) => End::Eof,
            Err(_) => End::Broken,
        }
    };
    tokio::pin!(reader, writer);
    tokio::select! {
        end = &mut writer => end,
        end = &mut reader => match end {
            // Drain what is queued, then half-close.
            End::Eof => writer.await,
            other => other,
        },
    }
}

/// Writes `chunk` as a link of `kbit_per_s` would deliver it: in small pieces, each when the
/// link has had time to carry it, so a reader sees a steady trickle rather than a late burst.
async fn write_shaped(
    to: &mut (impl AsyncWrite + Unpin),
    chunk: &[u8],
    kbit_per_s: u64,
    link_free: &mut Instant,
) -> std::io::Result<()> {
    let bytes_per_s = (kbit_per_s.max(1) * 1000 / 8).max(1);
    // About 20 pieces a second: smooth enough, without a timer per byte.
    let piece = usize::try_from(bytes_per_s / 20)
        .unwrap_or(usize::MAX)
        .max(64);
    for part in chunk.chunks(piece) {
        let takes = Duration::from_secs_f64(part.len() as f64 / bytes_per_s as f64);
        *link_free = (*link_free).max(Instant::now()) + takes;
        sleep_until(*link_free).await;
        to.write_all(part).await?;
    }
    Ok(())
}

/// How many HTTP request lines (`POST /v1/sync/push HTTP/1.1`) are complete in `carry` + `new`;
/// keeps in `carry` what may be the start of the next line.
fn count_request_lines(carry: &mut Vec<u8>, new: &[u8]) -> usize {
    const METHODS: [&[u8]; 7] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"HEAD ",
        b"PATCH ",
        b"OPTIONS ",
    ];
    carry.extend_from_slice(new);
    let whole = carry
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(0, |i| i + 2);
    let count = carry[..whole]
        .split(|&b| b == b'\n')
        .filter(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            METHODS.iter().any(|m| line.starts_with(m))
                && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
        })
        .count();
    carry.drain(..whole);
    // A body without line breaks must not grow the carry for ever; a request line is short.
    if carry.len() > 8192 {
        carry.drain(..carry.len() - 8192);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::count_request_lines;

    #[test]
    fn request_lines_are_found_across_reads() {
        let mut carry = Vec::new();
        assert_eq!(count_request_lines(&mut carry, b"POST /v1/sync/pu"), 0);
        assert_eq!(
            count_request_lines(&mut carry, b"sh HTTP/1.1\r\nHost: x\r\n\r\n{\"a\":1}"),
            1
        );
        // A body line that merely looks like a method is not a request without the version.
        assert_eq!(count_request_lines(&mut carry, b"GET it\r\n"), 0);
        assert_eq!(
            count_request_lines(
                &mut carry,
                b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
            ),
            2
        );
    }
}
