//! Running the `outpost` binary as a script would, and a real sync server for it.

#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery";

/// `outpost --data-dir DIR ARGS...`, with no keychain (the token goes to the 0600 file).
pub fn outpost(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().expect("run outpost")
}

pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outpost"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("OUTPOST_PASSWORD", PASSWORD)
        .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
        .env_remove("OUTPOST_DATA_DIR");
    cmd
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = outpost(dir, args);
    assert!(
        out.status.success(),
        "outpost {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command with `--json` that must succeed; returns what it printed.
pub fn json(dir: &Path, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    serde_json::from_str(&ok(dir, &with_json)).expect("valid JSON on stdout")
}

/// Runs a command that must fail; returns (exit code, stderr), which is one line.
pub fn fails(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = outpost(dir, args);
    assert!(!out.status.success(), "outpost {args:?} should have failed");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one-line error, got {stderr:?}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

/// A real server on an ephemeral port, on its own thread and runtime; stops with the process.
pub fn start_server(dir: &Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let storage =
                outpost_server::storage::sqlite::SqliteStorage::open(&path).expect("storage");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(format!("http://{}", listener.local_addr().expect("addr")))
                .expect("send");
            let state = outpost_server::AppState::new(std::sync::Arc::new(storage));
            let _ = outpost_server::serve(listener, state, std::future::pending()).await;
        });
    });
    rx.recv().expect("server url")
}
