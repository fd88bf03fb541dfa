//! The server's history (issue 11): every reply names the database and epoch it comes from, and
//! a pull that names the chain its cursor came with is refused (409 `history_changed`) by a
//! database restored from an older copy that has committed other changes since, on both backends.

mod common;

use common::{Backend, Device, TestServer, error_of, http, pg};
use outpost_protocol::NoteId;
use outpost_protocol::api::{Cursor, HEADER_HISTORY, History};
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::{SqliteStorage, new_epoch};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

backends!(a_restored_copy_that_moved_on_refuses_the_old_cursor);

/// PostgreSQL as the README says to back it up and restore it: `pg_dump` while the server runs,
/// `pg_restore` into an empty database, then `outpost-server restore --database-url`, which
/// starts a new epoch that the restored server names in every reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pg_dump_then_pg_restore_and_outpost_server_restore_start_a_new_epoch() {
    let bin = pg::bin_dir().unwrap_or_else(|e| panic!("PostgreSQL binaries: {e}"));
    let url = pg::fresh_database_url().await;
    let place = Place::Postgres(url.clone());
    let server = serve(&place).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let m = ann.put(NoteId::new(), &[("title", json!("Pump 3"))], None);
    ann.push(vec![m]).await;
    let before = history_of(
        &http()
            .get(server.url("/v1/health"))
            .send()
            .await
            .expect("health"),
    );

    let dumps = tempfile::tempdir().expect("dir");
    let dump = dumps.path().join("outpost.dump");
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(bin.join(program))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(
        "pg_dump",
        &[
            "--format=custom",
            "--file",
            dump.to_str().expect("path"),
            &url,
        ],
    );
    // Written after the dump: lost by the restore.
    let m = ann.put(NoteId::new(), &[("title", json!("Valve 7"))], None);
    ann.push(vec![m]).await;
    stop(server).await;

    let restored_url = pg::fresh_database_url().await;
    run(
        "pg_restore",
        &[
            "--no-owner",
            "--dbname",
            &restored_url,
            dump.to_str().expect("path"),
        ],
    );
    let said = std::process::Command::new(env!("CARGO_BIN_EXE_outpost-server"))
        .args(["restore", "--database-url", &restored_url])
        .output()
        .expect("outpost-server restore");
    assert!(
        said.status.success(),
        "{}",
        String::from_utf8_lossy(&said.stderr)
    );
    assert!(String::from_utf8_lossy(&said.stdout).contains("devices reconcile"));

    let server = serve(&Place::Postgres(restored_url)).await;
    ann.base = server.base.clone();
    let resp = ann
        .request(reqwest::Method::GET, "/v1/sync/pull?cursor=0")
        .send()
        .await
        .expect("pull");
    let after = history_of(&resp);
    assert_eq!(
        after.database, before.database,
        "the same database, restored"
    );
    assert_eq!(after.epoch, before.epoch + 1, "in a new epoch");
    let page: outpost_protocol::api::PullResponse = resp.json().await.expect("page");
    assert_eq!(page.records.len(), 1, "what the dump held");
    stop(server).await;
}

/// Where a test's database lives, so it can be copied and opened again.
enum Place {
    Sqlite(tempfile::TempDir, PathBuf),
    Postgres(String),
}

impl Place {
    async fn new(backend: Backend) -> Place {
        match backend {
            Backend::Sqlite => {
                let root = tempfile::tempdir().expect("dir");
                let dir = root.path().join("data");
                Place::Sqlite(root, dir)
            }
            Backend::Postgres => Place::Postgres(pg::fresh_database_url().await),
        }
    }

    async fn open(&self) -> Arc<dyn Storage> {
        match self {
            Place::Sqlite(_, dir) => Arc::new(SqliteStorage::open(dir).expect("open")),
            Place::Postgres(url) => Arc::new(PgStorage::connect(url).await.expect("connect")),
        }
    }

    /// A backup of the database as it is now (nothing may have it open).
    async fn copy(&self) -> Place {
        match self {
            Place::Sqlite(root, dir) => {
                let to = root
                    .path()
                    .join(format!("copy-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&to).expect("copy dir");
                for entry in std::fs::read_dir(dir).expect("data dir") {
                    let entry = entry.expect("entry");
                    std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
                }
                let keep = tempfile::tempdir().expect("dir");
                let dest = keep.path().join("data");
                std::fs::rename(&to, &dest).expect("move");
                Place::Sqlite(keep, dest)
            }
            Place::Postgres(url) => Place::Postgres(pg::copy_database(url).await),
        }
    }
}

async fn serve(place: &Place) -> TestServer {
    TestServer::start_on(place.open().await, None).await
}

/// Stops the server and closes its database.
async fn stop(server: TestServer) {
    let (storage, _) = server.stop().await;
    drop(storage);
}

fn history_of(resp: &reqwest::Response) -> History {
    resp.headers()
        .get(HEADER_HISTORY)
        .expect("every reply names its history")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a history")
}

async fn pull_with_chain(device: &Device, cursor: Cursor, chain: &str) -> reqwest::Response {
    device
        .request(
            reqwest::Method::GET,
            &format!("/v1/sync/pull?cursor={}&chain={chain}", cursor.0),
        )
        .send()
        .await
        .expect("pull")
}

async fn a_restored_copy_that_moved_on_refuses_the_old_cursor(backend: Backend) {
    let place = Place::new(backend).await;
    let server = serve(&place).await;
    let mut ann = Device::register(&server, "ann@example.org").await;
    let notes = [NoteId::new(), NoteId::new()];
    let batch = notes
        .iter()
        .map(|n| ann.put(*n, &[("title", json!("Pump 3"))], None))
        .collect();
    ann.push(batch).await;
    let at_two = ann.pull(Cursor(0), 10).await;
    assert_eq!(at_two.next_cursor, Cursor(2));
    let chain_two = at_two.next_chain.clone().expect("a chain at cursor 2");
    assert_eq!(chain_two.len(), 32);
    // Every reply names the history, errors too.
    let health = http()
        .get(server.url("/v1/health"))
        .send()
        .await
        .expect("health");
    let history = history_of(&health);
    let missing = http()
        .get(server.url("/v1/nowhere"))
        .send()
        .await
        .expect("404");
    assert_eq!(history_of(&missing), history);
    stop(server).await;

    // The nightly backup, then one more change on the live database.
    let backup = place.copy().await;
    let server = serve(&place).await;
    ann.base = server.base.clone();
    let m = ann.put(NoteId::new(), &[("title", json!("Valve 7"))], None);
    ann.push(vec![m]).await;
    let resp = pull_with_chain(&ann, Cursor(2), &chain_two).await;
    assert_eq!(
        history_of(&resp),
        history,
        "the same database after a restart"
    );
    assert_eq!(resp.status(), 200);
    let at_three: outpost_protocol::api::PullResponse = resp.json().await.expect("page");
    assert_eq!(at_three.next_cursor, Cursor(3));
    let chain_three = at_three.next_chain.expect("a chain at cursor 3");
    assert_ne!(chain_three, chain_two);
    stop(server).await;

    // The backup is put back, and another device commits something else as change 3.
    let server = serve(&backup).await;
    ann.base = server.base.clone();
    let mut bob = Device::login(&server, "ann@example.org").await;
    let m = bob.put(NoteId::new(), &[("title", json!("Boiler"))], None);
    bob.push(vec![m]).await;
    let resp = pull_with_chain(&ann, Cursor(3), &chain_three).await;
    assert_eq!(
        history_of(&resp),
        history,
        "a file copy cannot tell: the same identity and epoch"
    );
    let (code, message) = error_of(resp, 409).await;
    assert_eq!(code, "history_changed");
    assert!(message.contains("restored from an older copy"), "{message}");
    // Where the histories agree the cursor is good, and a pull without a chain (a device from
    // before chains) is answered as before.
    assert_eq!(
        pull_with_chain(&ann, Cursor(2), &chain_two).await.status(),
        200
    );
    assert_eq!(ann.pull(Cursor(3), 10).await.next_cursor, Cursor(3));
    stop(server).await;

    // `new_epoch` (what a restore run by the operator does) changes what replies name.
    if let Place::Sqlite(_, dir) = &backup {
        let moved =
            new_epoch(&dir.join(outpost_server::storage::sqlite::DB_FILE)).expect("new epoch");
        assert_eq!(
            (moved.database, moved.epoch),
            (history.database, history.epoch + 1)
        );
        let server = serve(&backup).await;
        let resp = http()
            .get(server.url("/v1/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(history_of(&resp), moved);
        stop(server).await;
    }
}
