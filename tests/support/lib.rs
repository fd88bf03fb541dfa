//! Helpers shared by the end-to-end scenarios: the workspace's binaries, a real server, devices
//! with their own data directories, and a fault-injecting proxy between them.

pub mod balancer;
pub mod device;
/// The server tests' PostgreSQL for the tests (a cluster from `OUTPOST_TEST_PG_URL`, or one of
/// this process's own), shared rather than written twice.
#[path = "../../crates/outpost-server/tests/common/pg.rs"]
pub mod pg;
pub mod proxy;
pub mod server;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The path of a binary of this workspace (`outpost`, later `outpost-server`), built in the same
/// profile as the running test. `scripts/test-all` builds every binary before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> or target/<profile>/<bin> -> target/<profile>/<name>
    let dir = exe.parent().expect("the binary's directory");
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().expect("target/<profile> directory")
    } else {
        dir
    };
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test-all does)",
        path.display()
    );
    path
}

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery";

/// `outpost --data-dir DIR`, as a QA script runs it: the password in the environment, no OS
/// keychain (the token goes to the data directory's 0600 file), nothing inherited that would
/// change where it works or make it stop.
pub fn outpost(dir: &Path) -> Command {
    let mut cmd = Command::new(bin("outpost"));
    cmd.arg("--data-dir")
        .arg(dir)
        .env("OUTPOST_PASSWORD", PASSWORD)
        .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
        .env_remove("OUTPOST_DATA_DIR")
        .env_remove("OUTPOST_TEST_PAUSE_AT");
    cmd
}

/// Runs `outpost` with `args` and returns its standard output; fails the test if it fails.
pub fn outpost_ok(dir: &Path, args: &[&str]) -> String {
    let out = outpost(dir).args(args).output().expect("run outpost");
    assert!(
        out.status.success(),
        "outpost {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs `outpost ... --json` and parses what it prints.
pub fn outpost_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = outpost_ok(dir, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("outpost {args:?}: {e}: {out}"))
}

/// Polls `done` every 10 ms until it holds; fails the test with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `outpost ARGS` with the core's test hook set to stop at `pause_at` (`point` or
/// `point@n`), waits until the process says it stopped there, and kills it with SIGKILL: a
/// crash at a precise point (see `outpost_core::testhook`).
pub fn killed_at(dir: &Path, args: &[&str], pause_at: &str) {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::sync::mpsc::RecvTimeoutError;
    let point = pause_at.split('@').next().unwrap_or(pause_at);
    let mut child = outpost(dir)
        .args(args)
        .env("OUTPOST_TEST_PAUSE_AT", pause_at)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outpost");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let marker = outpost_core::testhook::marker(point);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) if line.contains(&marker) => break,
            Ok(line) => said.push(line),
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("outpost {args:?} did not reach {pause_at}: {said:?}");
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("reap");
                panic!("outpost {args:?} ended ({status}) before {pause_at}: {said:?}");
            }
        }
    }
    child.kill().expect("kill -9");
    let status = child.wait().expect("reap");
    assert!(!status.success(), "killed, not finished");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "by SIGKILL");
    }
}

/// Waits for `child` to exit and returns its status with its peak RSS in KiB: the kernel's
/// high-water mark, read until it exits. (getrusage of the children would count the caller
/// too: a forked child starts with the parent's pages.) Linux only (`/proc`); elsewhere the
/// peak reads 0.
pub fn wait_with_peak_rss(
    child: &mut std::process::Child,
) -> std::io::Result<(std::process::ExitStatus, i64)> {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0i64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak_kib));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
