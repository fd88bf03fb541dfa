//! The real `outpost-server` binary as a subprocess, for tests that kill it with -9 and start it
//! again on the same data.

use super::{Backend, Device};
use outpost_protocol::api::{AccountId, Session};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where a server subprocess keeps its data, so a restart finds it again.
pub struct Place {
    pub args: Vec<String>,
    /// Where its blobs are.
    pub blob_dir: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn place(backend: Backend) -> Place {
    let dir = tempfile::tempdir().expect("dir");
    match backend {
        // Blobs in their default place, beside the database.
        Backend::Sqlite => Place {
            args: vec!["--data-dir".into(), dir.path().display().to_string()],
            blob_dir: dir.path().join("blobs"),
            _dir: dir,
        },
        Backend::Postgres => {
            let blob_dir = dir.path().join("blobs");
            Place {
                args: vec![
                    "--database-url".into(),
                    super::database_url(backend).await,
                    "--blob-dir".into(),
                    blob_dir.display().to_string(),
                ],
                blob_dir,
                _dir: dir,
            }
        }
    }
}

/// Starts the server binary on an ephemeral port; returns it and its base URL.
pub async fn start(place: &Place) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost-server"))
        .args(&place.args)
        .args(["--listen", "127.0.0.1:0"])
        .env("OUTPOST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn outpost-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("server started within 60 s")
        .expect("read stdout")
        .expect("a line");
    let base = line
        .strip_prefix("outpost-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (child, base)
}

/// Registers ann@example.org on the server at `base`; the device and the account's id.
pub async fn register(base: &str) -> (Device, AccountId) {
    let client_id = outpost_protocol::ClientId::new();
    let resp = super::http()
        .post(format!("{base}/v1/accounts"))
        .json(&json!({"email": "ann@example.org", "password": "correct horse battery", "client_id": client_id}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    let session: Session = resp.json().await.expect("session");
    let device = Device {
        http: super::http(),
        base: base.to_owned(),
        client_id,
        token: session.token,
        next_number: 1,
    };
    (device, session.account_id)
}
