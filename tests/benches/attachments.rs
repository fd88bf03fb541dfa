//! Attachment transfer benchmarks (issue 18): the real `outpost-server` and the real `outpost`
//! CLI, each a process of its own, on 127.0.0.1; and `curl` sending and fetching the same bytes
//! through the same endpoints, as the yardstick.
//!
//!   cargo build --release -p outpost-cli -p outpost-server
//!   cargo bench -p outpost-e2e --bench attachments
//!   OUTPOST_BENCH_MB=256 (the throughput file), OUTPOST_BENCH_BIG_MB=1024 (the memory file)
//!
//! Figures: upload and download throughput of a photo-like file (random bytes: nothing
//! compresses) against curl with the same chunk size over one keep-alive connection; the peak
//! RSS of `outpost sync` sending a large file, against the same command with nothing to send.

use anyhow::{Context, Result, bail};
use outpost_core::sync::SyncClient;
use outpost_protocol::ClientId;
use outpost_protocol::blobs::BlobHash;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
/// The server's default chunk size, which the device uses.
const CHUNK: usize = 1024 * 1024;

fn env_mb(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A file of `mb` megabytes of random bytes (a photo or a video does not compress either).
fn random_file(dir: &Path, name: &str, mb: u64) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut rng = fastrand::Rng::with_seed(mb);
    let mut buf = vec![0u8; CHUNK];
    for _ in 0..mb {
        rng.fill(&mut buf);
        file.write_all(&buf)?;
    }
    file.flush()?;
    Ok(path)
}

fn outpost(dir: &Path) -> Command {
    let mut cmd = Command::new(outpost_e2e::bin("outpost"));
    cmd.arg("--data-dir")
        .arg(dir)
        .env("OUTPOST_PASSWORD", PASSWORD)
        .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `cmd` and returns (wall time, peak RSS in KiB).
fn timed_rss(cmd: &mut Command) -> Result<(Duration, i64)> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let (status, peak_kib) = outpost_e2e::wait_with_peak_rss(&mut child)?;
    if !status.success() {
        bail!("{:?} failed: {status}", cmd.get_args().collect::<Vec<_>>());
    }
    Ok((start.elapsed(), peak_kib))
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// A device registered on `url` with `email`: its data directory.
fn device(url: &str, email: &str, register: bool) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let verb = if register { "register" } else { "login" };
    run_ok(outpost(dir.path()).args([verb, "--server", url, "--email", email]))?;
    Ok(dir)
}

/// curl, as a user would script it: one process, one keep-alive connection, a request per
/// chunk (POST to begin, then each PATCH at its offset with the chunk's hash).
fn curl_upload(
    url: &str,
    token: &str,
    client: ClientId,
    file: &Path,
    work: &Path,
) -> Result<Duration> {
    let bytes = std::fs::read(file)?;
    let hash = BlobHash::of(&bytes);
    let mut config = String::new();
    let common = format!(
        "header = \"Authorization: Bearer {token}\"\nheader = \"x-outpost-client: {client}\"\nheader = \"x-outpost-protocol: 1\"\nsilent\nfail\noutput = \"/dev/null\"\n"
    );
    config.push_str(&format!(
        "url = \"{url}/v1/blobs/{hash}\"\nrequest = \"POST\"\nheader = \"content-type: application/json\"\ndata = \"{{\\\"size\\\": {}}}\"\n{common}",
        bytes.len()
    ));
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        let part = work.join(format!("chunk-{i}"));
        std::fs::write(&part, chunk)?;
        config.push_str(&format!(
            "next\nurl = \"{url}/v1/blobs/{hash}?offset={}\"\nrequest = \"PATCH\"\nheader = \"content-type: application/octet-stream\"\nheader = \"x-outpost-chunk-sha256: {}\"\ndata-binary = \"@{}\"\n{common}",
            i * CHUNK,
            BlobHash::of(chunk),
            part.display()
        ));
    }
    let config_path = work.join("curl.conf");
    std::fs::write(&config_path, config)?;
    drop(bytes);
    let start = Instant::now();
    let status = Command::new("curl")
        .arg("--config")
        .arg(&config_path)
        .status()?;
    let took = start.elapsed();
    if !status.success() {
        bail!("curl upload failed: {status}");
    }
    Ok(took)
}

fn curl_download(
    url: &str,
    token: &str,
    client: ClientId,
    hash: &BlobHash,
    dest: &Path,
) -> Result<Duration> {
    let start = Instant::now();
    let status = Command::new("curl")
        .args(["--silent", "--fail", "-o"])
        .arg(dest)
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("-H")
        .arg(format!("x-outpost-client: {client}"))
        .args(["-H", "x-outpost-protocol: 1"])
        .arg(format!("{url}/v1/blobs/{hash}"))
        .status()?;
    let took = start.elapsed();
    if !status.success() {
        bail!("curl download failed: {status}");
    }
    Ok(took)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mb = env_mb("OUTPOST_BENCH_MB", 256);
    let big_mb = env_mb("OUTPOST_BENCH_BIG_MB", 1024);
    let work = tempfile::tempdir()?;
    let server_dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let max = (big_mb.max(mb) + 1) * 1024 * 1024;
    let server = outpost_e2e::server::spawn_server_on(
        &[
            "--data-dir".as_ref(),
            server_dir.path().as_os_str(),
            "--max-blob-bytes".as_ref(),
            max.to_string().as_ref(),
        ],
        port,
    )
    .await;
    let url = format!("http://127.0.0.1:{port}");
    println!("| work ({mb} MB of random bytes, chunks of 1 MiB) | time | throughput |");
    println!("|---|---|---|");

    // Ours: `outpost attach`, then `outpost sync` sends it; a second device gets it.
    let file = random_file(work.path(), "video.bin", mb)?;
    let bytes = mb * CHUNK as u64;
    let a = device(&url, "bench@example.org", true)?;
    let note = run_ok(outpost(a.path()).args(["note", "add", "--title", "Pump 4"]))?;
    let attached = run_ok(outpost(a.path()).args([
        "attach",
        note.trim(),
        file.to_str().context("utf-8 path")?,
        "--json",
    ]))?;
    let attached: serde_json::Value = serde_json::from_str(&attached)?;
    let id = attached["id"].as_str().context("id")?.to_owned();
    let hash = BlobHash::parse(attached["sha256"].as_str().context("sha256")?)?;
    let (up, up_rss) = timed_rss(outpost(a.path()).arg("sync"))?;
    println!(
        "| `outpost sync` uploads it | {:.2} s | **{:.0} MB/s** (peak RSS {:.0} MB) |",
        up.as_secs_f64(),
        mb_per_s(bytes, up),
        up_rss as f64 / 1024.0
    );
    // A device that fetches every attachment: its `outpost sync` pulls the note and downloads
    // the file into its data directory (checked against its name, synced to disk).
    let b = device(&url, "bench@example.org", false)?;
    run_ok(outpost(b.path()).args(["pref", "set", "sync.download_all_attachments", "true"]))?;
    let (down, down_rss) = timed_rss(outpost(b.path()).arg("sync"))?;
    println!(
        "| `outpost sync` downloads it (checked, on disk) | {:.2} s | **{:.0} MB/s** (peak RSS {:.0} MB) |",
        down.as_secs_f64(),
        mb_per_s(bytes, down),
        down_rss as f64 / 1024.0
    );
    // The same command with nothing to fetch: the sync cycle, sign-in and start-up around it.
    let (idle, _) = timed_rss(outpost(b.path()).arg("sync"))?;
    let net = down.saturating_sub(idle);
    println!(
        "| the same `outpost sync` with nothing to fetch | {:.2} s | the download alone: {:.2} s, **{:.0} MB/s** |",
        idle.as_secs_f64(),
        net.as_secs_f64(),
        mb_per_s(bytes, net)
    );
    let dest = work.path().join("from-b.bin");
    let (copy, _) = timed_rss(outpost(b.path()).args([
        "attachment",
        "get",
        &id,
        dest.to_str().context("utf-8 path")?,
    ]))?;
    println!(
        "| `outpost attachment get` copies it out (checked again on the way) | {:.2} s | {:.0} MB/s |",
        copy.as_secs_f64(),
        mb_per_s(bytes, copy)
    );

    // curl on another account (blobs are per account: nothing is deduplicated).
    let client = ClientId::new();
    let session = SyncClient::new(&url, client, None)?
        .register("curl@example.org", PASSWORD, None)
        .await?;
    let curl_up = curl_upload(&url, &session.token, client, &file, work.path())?;
    println!(
        "| curl uploads it (the same requests, one connection) | {:.2} s | **{:.0} MB/s** |",
        curl_up.as_secs_f64(),
        mb_per_s(bytes, curl_up)
    );
    let curl_dest = work.path().join("from-curl.bin");
    let curl_down = curl_download(&url, &session.token, client, &hash, &curl_dest)?;
    println!(
        "| curl downloads it | {:.2} s | **{:.0} MB/s** |",
        curl_down.as_secs_f64(),
        mb_per_s(bytes, curl_down)
    );
    println!(
        "\nOutpost against curl: upload {:.0}%, download {:.0}% as a whole `outpost sync`, {:.0}% for the download alone (goal: at least 80%)",
        100.0 * curl_up.as_secs_f64() / up.as_secs_f64(),
        100.0 * curl_down.as_secs_f64() / down.as_secs_f64(),
        100.0 * curl_down.as_secs_f64() / net.as_secs_f64().max(1e-6)
    );
    for f in [&file, &dest, &curl_dest] {
        let _ = std::fs::remove_file(f);
    }
    drop((a, b));

    // Memory: a large file sent by `outpost sync`, against the same command idle.
    let big = random_file(work.path(), "big.bin", big_mb)?;
    let c = device(&url, "big@example.org", true)?;
    let note = run_ok(outpost(c.path()).args(["note", "add", "--title", "Site video"]))?;
    run_ok(outpost(c.path()).args(["attach", note.trim(), big.to_str().context("utf-8 path")?]))?;
    let _ = std::fs::remove_file(&big);
    let (big_took, big_rss) = timed_rss(outpost(c.path()).arg("sync"))?;
    let (_, idle_rss) = timed_rss(outpost(c.path()).arg("sync"))?;
    println!(
        "\n`outpost sync` sending {big_mb} MB: {:.1} s, peak RSS {:.0} MB; the same command with nothing to send: {:.0} MB; **{:.0} MB above idle** (goal: under 50 MB)",
        big_took.as_secs_f64(),
        big_rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0,
        (big_rss - idle_rss) as f64 / 1024.0
    );
    outpost_e2e::server::stop_server(server);
    Ok(())
}
