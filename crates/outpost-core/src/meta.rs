//! Sync metadata (`sync_meta`): every key (the device's id, its clock, its mutation numbers,
//! the account, the server, the cursor and its history, the last check), and reading and
//! writing them.

use crate::error::SqlContext;
use crate::error::{Error, Result};
use outpost_protocol::{ClientId, Stamp};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

// Every key of `sync_meta`, defined here once.

/// This device's id on the server (a UUID, made at first start).
pub(crate) const CLIENT_ID: &str = "client_id";
/// The clock's last stamp: the clock continues after it across restarts.
pub(crate) const CLOCK_LAST: &str = "clock_last";
/// The next mutation number of this device.
pub(crate) const NEXT_MUTATION_NUMBER: &str = "next_mutation_number";
/// The clock correction learnt from the server at the last successful sync (server minus
/// device, ms).
pub(crate) const CLOCK_OFFSET: &str = "clock_offset_ms";
/// When the outbox was last made durable before a push (see `Store::durable_barrier`).
pub(crate) const BARRIER_MS: &str = "barrier_ms";
/// The server this device syncs with, its account and the account's email.
pub(crate) const SERVER_URL: &str = "server_url";
pub(crate) const ACCOUNT_ID: &str = "account_id";
pub(crate) const EMAIL: &str = "email";
/// How far this device has read the account's commits.
pub(crate) const CURSOR: &str = "cursor";
/// The server's chain of commits at [`CURSOR`]: the pull sends it, so a server whose history is
/// not the one this cursor was read from says so instead of answering from it.
pub(crate) const CURSOR_CHAIN: &str = "cursor_chain";
/// The server history this device's cursor belongs to (see `outpost_protocol::api::History`).
pub(crate) const SERVER_HISTORY: &str = "server_history";
/// A re-download (reconcile) under way: it goes on from its saved cursor after a crash.
pub(crate) const RESET: &str = "reset_in_progress";
/// The time of the last successful sync, and the last error.
pub(crate) const LAST_SUCCESS: &str = "last_success_ms";
pub(crate) const LAST_ERROR: &str = "last_error";
/// What the running digest sums (fields and synced preference keys): sums kept by another
/// build are summed up again.
pub(crate) const DIGEST_FORMAT: &str = "digest_format";
/// The cursor and time of the last check that agreed.
pub(crate) const VERIFIED_CURSOR: &str = "verified_cursor";
pub(crate) const VERIFIED_MS: &str = "verified_ms";

pub(crate) fn get(conn: &Connection, path: &Path, key: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM sync_meta WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .at(path)
}

pub(crate) fn set(conn: &Connection, path: &Path, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![key, value]))
    .at(path)?;
    Ok(())
}

fn parse<T: std::str::FromStr>(key: &str, value: Option<String>) -> Result<Option<T>> {
    value
        .map(|v| {
            v.parse()
                .map_err(|_| Error::Data(format!("sync_meta.{key} holds {v:?}")))
        })
        .transpose()
}

/// Gives a new database its client id; returns (client id, last clock stamp, next mutation
/// number) of this device.
pub(crate) fn init_device(
    conn: &mut Connection,
    path: &Path,
) -> Result<(ClientId, Option<Stamp>, i64)> {
    let tx = conn.transaction().at(path)?;
    let client_id = match parse::<ClientId>(CLIENT_ID, get(&tx, path, CLIENT_ID)?)? {
        Some(id) => id,
        None => {
            let id = ClientId::new();
            set(&tx, path, CLIENT_ID, &id.to_string())?;
            id
        }
    };
    let last = parse::<Stamp>(CLOCK_LAST, get(&tx, path, CLOCK_LAST)?)?;
    let next = parse::<i64>(NEXT_MUTATION_NUMBER, get(&tx, path, NEXT_MUTATION_NUMBER)?)?;
    // The counter must also stay above anything still queued (belt and braces: a restored
    // backup of sync_meta must never make a number repeat).
    let max_queued: i64 = tx
        .query_row(
            "SELECT coalesce(max(mutation_number), 0) FROM outbox",
            [],
            |r| r.get(0),
        )
        .at(path)?;
    let next = next.unwrap_or(1).max(max_queued + 1);
    tx.commit().at(path)?;
    Ok((client_id, last, next))
}

pub(crate) fn save_counters(
    conn: &Connection,
    path: &Path,
    last: Stamp,
    next_mutation_number: i64,
) -> Result<()> {
    set(conn, path, CLOCK_LAST, &last.to_string())?;
    set(
        conn,
        path,
        NEXT_MUTATION_NUMBER,
        &next_mutation_number.to_string(),
    )
}
