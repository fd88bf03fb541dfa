//! `outpost-netem`: run the fault proxy, or steer a running one (`outpost-netem ctl ...`).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use outpost_netem::control::{self, DEFAULT_CONTROL};
use outpost_netem::{Mode, Netem, TWO_G_KBIT_PER_S, TWO_G_LATENCY_MS};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MODES: &str = "\
Modes (switch with `outpost-netem ctl <mode>` while the proxy runs):
  online            bytes pass unchanged (the start mode)
  offline           new connections refused, open ones cut (an airplane switch)
  2g                ~400 ms latency and ~50 kbit/s each way (a 2G link)
  flaky P           P% of new connections reset at once; --seed replays the same ones
  cut-reply [N]     the next N requests reach the server, their replies are cut; then online
  stall             connections accepted and never answered; ends (reset) on the next switch

Point the app's server URL at the proxy's --listen port instead of the server's.";

/// A fault-injecting proxy between an Outpost device and its server.
#[derive(Parser)]
#[command(name = "outpost-netem", version, after_help = MODES)]
struct Cli {
    /// Where the device connects (its server URL points here).
    #[arg(long, default_value = "127.0.0.1:8788")]
    listen: SocketAddr,
    /// The real server.
    #[arg(long, default_value = "127.0.0.1:8787")]
    upstream: SocketAddr,
    /// The control interface (HTTP, keep it on loopback).
    #[arg(long, default_value = DEFAULT_CONTROL)]
    control: SocketAddr,
    /// Decides which connections `flaky` drops; the same seed drops the same ones.
    /// Default: from the clock (printed at start, so a run can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Steer a running proxy.
    Ctl {
        /// The proxy's control address.
        #[arg(long, env = "OUTPOST_NETEM_CONTROL", default_value = DEFAULT_CONTROL)]
        control: SocketAddr,
        #[command(subcommand)]
        action: Action,
    },
}

#[derive(Subcommand)]
enum Action {
    /// Bytes pass unchanged.
    Online,
    /// Refuse new connections and cut the open ones (an airplane switch).
    Offline,
    /// A 2G link: several hundred ms of latency and about 50 kbit/s each way.
    #[command(name = "2g")]
    TwoG {
        #[arg(long, default_value_t = TWO_G_LATENCY_MS)]
        latency_ms: u64,
        #[arg(long, default_value_t = TWO_G_KBIT_PER_S)]
        kbit_per_s: u64,
    },
    /// Reset P% of new connections at once (which ones follows the proxy's seed).
    Flaky {
        /// Percentage of connections dropped, 0 to 100.
        p: u8,
    },
    /// Let the next N requests reach the server but cut their replies; then back online.
    CutReply {
        #[arg(default_value_t = 1)]
        next: usize,
    },
    /// Accept connections and never answer them.
    Stall,
    /// Print the mode and the counters.
    Status,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Ctl { control, action }) => ctl(control, action).await,
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            run(cli.listen, cli.upstream, cli.control, cli.seed).await
        }
    }
}

async fn run(
    listen: SocketAddr,
    upstream: SocketAddr,
    control_addr: SocketAddr,
    seed: Option<u64>,
) -> Result<()> {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            // Only the low bits vary between runs, and they are all a seed needs.
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let netem = Arc::new(Netem::start_seeded(listen, upstream, seed).await?);
    let control_listener = TcpListener::bind(control_addr)
        .await
        .with_context(|| format!("cannot listen for control on {control_addr}"))?;
    let control_addr = control_listener.local_addr()?;
    // Tests and scripts read these two lines to learn ports chosen with :0.
    println!(
        "outpost-netem: proxy on {} -> upstream {upstream} (seed {seed})",
        netem.local_addr()
    );
    println!("outpost-netem: control on http://{control_addr} (outpost-netem ctl --help)");
    println!("outpost-netem: mode {}", netem.mode());

    // One line per mode change, whoever made it (including cut-reply going back online).
    let mut modes = netem.subscribe();
    tokio::spawn(async move {
        while modes.changed().await.is_ok() {
            let mode = *modes.borrow_and_update();
            println!("outpost-netem: mode {mode}");
        }
    });

    axum::serve(control_listener, control::router(netem))
        .with_graceful_shutdown(async {
            // Without a Ctrl-C handler the proxy still stops on Ctrl-C, just less politely.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("control interface failed")
}

async fn ctl(control: SocketAddr, action: Action) -> Result<()> {
    let (method, path) = match action {
        Action::Online => ("POST", "/online".to_owned()),
        Action::Offline => ("POST", "/offline".to_owned()),
        Action::TwoG {
            latency_ms,
            kbit_per_s,
        } => (
            "POST",
            format!("/2g?latency_ms={latency_ms}&kbit_per_s={kbit_per_s}"),
        ),
        Action::Flaky { p } => ("POST", format!("/flaky?p={p}")),
        Action::CutReply { next } => ("POST", format!("/cut-reply?next={next}")),
        Action::Stall => ("POST", "/stall".to_owned()),
        Action::Status => ("GET", "/status".to_owned()),
    };
    let (code, body) = http(control, method, &path).await?;
    if !(200..300).contains(&code) {
        bail!("the proxy said {code}: {body}");
    }
    let status: outpost_netem::Status =
        serde_json::from_str(&body).with_context(|| format!("unexpected answer: {body}"))?;
    let mode: Mode = status.mode;
    println!("mode {mode}");
    if method == "GET" {
        println!(
            "connections: {} open, {} total, {} cut; bytes: {} up, {} down; replies cut: {}",
            status.connections_open,
            status.connections_total,
            status.connections_cut,
            status.bytes_up,
            status.bytes_down,
            status.replies_cut
        );
        println!(
            "proxy {} -> upstream {} (seed {})",
            status.listen, status.upstream, status.seed
        );
    }
    Ok(())
}

/// A minimal HTTP/1.1 exchange on loopback: one request, `Connection: close`, read to the end.
/// Enough for our own control interface; not worth an HTTP client dependency.
async fn http(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("no outpost-netem control on {addr} (is the proxy running?)"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed answer from the control interface")?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code in the control interface's answer")?;
    Ok((code, body.to_owned()))
}
