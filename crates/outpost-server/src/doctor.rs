//! The server's half of the sync doctor: an account summed up bucket by bucket, the entries of
//! some buckets, and the current records of some keys (see `outpost_protocol::digest`).
//!
//! It reads the account through [`Storage::pull`] from cursor 0, so both backends serve it
//! without new SQL. A record changed while the scan runs moves to a later cursor and can be
//! read twice; keeping the newest version of each key makes the result exact for every record
//! that did not change meanwhile, which is all a diagnosis can ask of a live account.

use crate::storage::{PulledRecord, Result, Storage, StorageError};
use outpost_protocol::api::{AccountId, Cursor, MAX_PULL_LIMIT, Record};
use outpost_protocol::digest::{self, Entry, Key, Summary};
use outpost_protocol::{ClientId, Entity};
use std::collections::{HashMap, HashSet};

/// Reads every record of the account once, newest version of each, and hands it to `keep`,
/// which returns what to remember of it. Returns what was kept and the newest cursor seen.
async fn scan<T>(
    storage: &dyn Storage,
    account: AccountId,
    client: ClientId,
    mut keep: impl FnMut(&Record) -> Option<T>,
) -> Result<(HashMap<Key, (i64, T)>, Cursor)> {
    let mut kept: HashMap<Key, (i64, T)> = HashMap::new();
    let mut cursor = Cursor(0);
    loop {
        let page = storage
            .pull(account, client, cursor, None, MAX_PULL_LIMIT)
            .await?;
        for rec in page.records.iter().map(to_record) {
            let rec = &rec?;
            let key = Key {
                entity: rec.entity,
                id: rec.id.clone(),
            };
            if kept.get(&key).is_some_and(|(v, _)| *v >= rec.version.0) {
                continue;
            }
            match keep(rec) {
                Some(t) => kept.insert(key, (rec.version.0, t)),
                None => kept.remove(&key),
            };
        }
        cursor = cursor.max(page.next_cursor);
        if !page.has_more {
            return Ok((kept, cursor));
        }
    }
}

/// A pulled record with its fields parsed (pull hands them on as stored, unparsed).
fn to_record(rec: &PulledRecord) -> Result<Record> {
    let fields = serde_json::from_str(rec.fields.get())
        .map_err(|e| StorageError::Internal(format!("stored fields of {}: {e}", rec.id)))?;
    Ok(Record {
        entity: rec.entity,
        id: rec.id.clone(),
        version: rec.version,
        cursor: rec.cursor,
        purged: rec.purged,
        fields,
    })
}

fn in_trash(rec: &Record) -> bool {
    rec.entity == Entity::Note
        && rec
            .fields
            .get("deleted")
            .is_some_and(|c| c.value.as_bool() == Some(true))
}

/// One line of a record: its digest if live.
fn entry(rec: &Record) -> Entry {
    Entry {
        entity: rec.entity,
        id: rec.id.clone(),
        version: rec.version,
        purged: rec.purged,
        digest: (!rec.purged).then(|| {
            digest::to_hex(digest::record_digest(
                rec.entity,
                &rec.id,
                rec.version,
                &rec.fields,
            ))
        }),
    }
}

/// The account's sums, its tombstone count and the newest cursor.
pub async fn summary(
    storage: &dyn Storage,
    account: AccountId,
    client: ClientId,
) -> Result<(Summary, u64, Cursor)> {
    let (kept, cursor) = scan(storage, account, client, |rec| {
        Some((entry(rec), in_trash(rec)))
    })
    .await?;
    let mut summary = Summary::new();
    let mut tombstones = 0;
    for (key, (_, (entry, trash))) in kept {
        match entry.digest.as_deref().map(|d| u64::from_str_radix(d, 16)) {
            Some(Ok(d)) => summary.add(key.entity, &key.id, d, trash),
            _ => tombstones += 1,
        }
    }
    Ok((summary, tombstones, cursor))
}

/// The entries of the given buckets, tombstones included, ordered by kind and id.
pub async fn entries(
    storage: &dyn Storage,
    account: AccountId,
    client: ClientId,
    buckets: &[u8],
) -> Result<(Vec<Entry>, Cursor)> {
    let wanted: HashSet<u8> = buckets.iter().copied().collect();
    let (kept, cursor) = scan(storage, account, client, |rec| {
        wanted
            .contains(&digest::bucket(rec.entity, &rec.id))
            .then(|| entry(rec))
    })
    .await?;
    let mut entries: Vec<Entry> = kept.into_values().map(|(_, e)| e).collect();
    entries.sort_by(|a, b| (a.entity.as_str(), &a.id).cmp(&(b.entity.as_str(), &b.id)));
    Ok((entries, cursor))
}

/// The current records of the given keys that exist, tombstones included.
pub async fn records(
    storage: &dyn Storage,
    account: AccountId,
    client: ClientId,
    keys: &[Key],
) -> Result<(Vec<Record>, Cursor)> {
    let wanted: HashSet<&Key> = keys.iter().collect();
    let (kept, cursor) = scan(storage, account, client, |rec| {
        let key = Key {
            entity: rec.entity,
            id: rec.id.clone(),
        };
        wanted.contains(&key).then(|| rec.clone())
    })
    .await?;
    let mut records: Vec<Record> = kept.into_values().map(|(_, r)| r).collect();
    records.sort_by_key(|r| r.cursor);
    Ok((records, cursor))
}
