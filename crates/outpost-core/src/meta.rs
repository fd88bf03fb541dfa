//! Sync metadata (`sync_meta`): the device's client id, its clock's last stamp, the next
//! mutation number, and later the account, server URL and cursor.

use crate::error::{Error, Result};
use crate::store::SqlContext;
use outpost_protocol::{ClientId, Stamp};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

pub(crate) const CLIENT_ID: &str = "client_id";
const CLOCK_LAST: &str = "clock_last";
const NEXT_MUTATION_NUMBER: &str = "next_mutation_number";
/// The clock correction learnt from the server at the last successful sync (server minus
/// device, ms).
pub(crate) const CLOCK_OFFSET: &str = "clock_offset_ms";

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
