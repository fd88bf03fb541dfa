//! The `outpost-netem` binary as a tester runs it: proxy in one process, `ctl` in another.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_outpost-netem");

/// Kills the proxy when the test ends, passed or not.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
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

/// Runs `outpost-netem ctl <args>` against `control`; its stdout, after checking it succeeded.
async fn ctl(control: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["ctl", "--control", control])
        .args(args)
        .output()
        .await
        .expect("run ctl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn echoes(proxy: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect(proxy).await else {
        return false;
    };
    let exchange = async {
        conn.write_all(b"hi").await.ok()?;
        let mut back = [0u8; 2];
        conn.read_exact(&mut back).await.ok()?;
        Some(back)
    };
    matches!(
        timeout(Duration::from_secs(2), exchange).await,
        Ok(Some(b)) if &b == b"hi"
    )
}

/// "outpost-netem: proxy on 127.0.0.1:PORT -> ..." gives PORT's address.
fn addr_after<'a>(line: &'a str, marker: &str) -> &'a str {
    let rest = line.split_once(marker).map_or("", |(_, r)| r);
    rest.split_whitespace().next().unwrap_or_default()
}

#[tokio::test]
async fn a_tester_drives_the_binary_with_ctl() {
    let upstream = echo_server().await;
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(["--upstream", &upstream.to_string(), "--seed", "7"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start outpost-netem");
    let stdout = child.stdout.take().expect("stdout");
    let proxy_process = Proxy(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut next_line = async || {
        timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the proxy prints")
            .expect("read stdout")
            .expect("the proxy is still running")
    };

    let first = next_line().await;
    let proxy: SocketAddr = addr_after(&first, "proxy on ").parse().expect("proxy addr");
    let second = next_line().await;
    let control = addr_after(&second, "http://").to_owned();
    assert!(next_line().await.contains("mode online"));
    assert!(echoes(proxy).await, "online does not pass bytes");

    let said = ctl(&control, &["offline"]).await;
    assert!(said.contains("mode offline"), "ctl said {said:?}");
    assert!(
        next_line().await.contains("mode offline"),
        "one line per change"
    );
    assert!(!echoes(proxy).await, "offline let a connection through");

    ctl(&control, &["online"]).await;
    assert!(next_line().await.contains("mode online"));
    assert!(echoes(proxy).await, "online again does not pass bytes");

    ctl(&control, &["flaky", "100"]).await;
    assert!(next_line().await.contains("mode flaky (100%"));
    assert!(!echoes(proxy).await, "flaky 100 let a connection through");

    ctl(&control, &["2g", "--latency-ms", "100"]).await;
    assert!(next_line().await.contains("2g (100 ms latency, 50 kbit/s"));

    let status = ctl(&control, &["status"]).await;
    assert!(status.contains("mode 2g"), "status: {status}");
    assert!(status.contains("1 cut"), "status: {status}");
    assert!(status.contains("(seed 7)"), "status: {status}");

    // A refused mode is an error for the tester, and the proxy keeps its mode.
    let bad = Command::new(BIN)
        .args(["ctl", "--control", &control, "flaky", "150"])
        .output()
        .await
        .expect("run ctl");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid mode"));
    assert!(ctl(&control, &["status"]).await.contains("mode 2g"));
    drop(proxy_process);
}

#[tokio::test]
async fn help_explains_every_mode() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for mode in ["online", "offline", "2g", "flaky P", "cut-reply", "stall"] {
        assert!(help.contains(&format!("  {mode} ")), "--help misses {mode}");
    }
}

#[tokio::test]
async fn ctl_without_a_proxy_says_so() {
    // A port nobody listens on: bind, read it, and let it go.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let out = Command::new(BIN)
        .args(["ctl", "--control", &port.to_string(), "status"])
        .output()
        .await
        .expect("run ctl");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the proxy running?"));
}
