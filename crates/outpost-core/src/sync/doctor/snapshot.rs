//! The doctor's snapshot of this device: every synced record summed up the way the server sums
//! its own (`outpost_protocol::digest`), read in one transaction so that every table is seen as
//! of the same commit.

use crate::error::Result;
use crate::error::SqlContext;
use crate::store::Store;
use crate::sync::apply::{NOTE_FIELD_COLUMNS, note_fields};
use outpost_protocol::api::Version;
use outpost_protocol::digest::{self, Key};
use outpost_protocol::{Entity, Fields};
use rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;

/// One synced record of this device, summed up.
pub(super) struct LocalRecord {
    pub(super) key: Key,
    pub(super) version: Option<i64>,
    pub(super) digest: u64,
    /// The note's title or the notebook's name, to name it in a report.
    pub(super) title: Option<String>,
    pub(super) in_trash: bool,
    /// A cell of it cannot be read back (a damaged tags cell): it differs from any copy, and a
    /// repair takes the server's.
    pub(super) damaged: bool,
}

impl LocalRecord {
    pub(super) fn new(entity: Entity, id: String, version: Option<i64>, fields: &Fields) -> Self {
        Self {
            digest: local_digest(entity, &id, version, fields),
            key: Key { entity, id },
            version,
            title: None,
            in_trash: false,
            damaged: false,
        }
    }
}

/// This device's records and which of them have pending changes.
pub(super) struct Snapshot {
    pub(super) records: Vec<LocalRecord>,
    /// Ids with an outbox entry or an open conflict.
    pub(super) pending: HashSet<String>,
    pub(super) cursor: i64,
}

pub(in crate::sync) fn local_digest(
    entity: Entity,
    id: &str,
    version: Option<i64>,
    fields: &Fields,
) -> u64 {
    // A record never acknowledged has no version; 0 is one the server never gives.
    digest::record_digest(entity, id, Version(version.unwrap_or(0)), fields)
}

impl Store {
    pub(super) fn doctor_snapshot(&self) -> Result<Snapshot> {
        self.read(|conn, path| {
            // One read transaction: every table as of the same commit.
            let tx = conn.unchecked_transaction().at(path)?;
            let mut records = snapshot_notes(&tx, path)?;
            records.extend(snapshot_notebooks(&tx, path)?);
            records.extend(snapshot_prefs(&tx, path)?);
            records.extend(snapshot_attachments(&tx, path)?);
            let pending = tx
                .prepare("SELECT entity_id FROM outbox UNION SELECT note_id FROM conflicts")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<HashSet<String>>>()
                })
                .at(path)?;
            let cursor = crate::meta::get(&tx, path, crate::meta::CURSOR)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Ok(Snapshot {
                records,
                pending,
                cursor,
            })
        })
    }
}

fn snapshot_notes(conn: &Connection, path: &Path) -> Result<Vec<LocalRecord>> {
    let mut notes = conn
        .prepare(&format!(
            "SELECT {NOTE_FIELD_COLUMNS}, server_version, id FROM notes"
        ))
        .at(path)?;
    let rows = notes
        .query_map([], |r| {
            let id: String = r.get(15)?;
            let fields = match note_fields(r) {
                Ok(fields) => Some(fields),
                // Named as differing rather than failing the whole check: the repair takes
                // the server's copy of it.
                Err(rusqlite::Error::FromSqlConversionFailure(..)) => None,
                Err(e) => return Err(e),
            };
            Ok((fields, r.get(14)?, id))
        })
        .at(path)?;
    let mut records = Vec::new();
    for row in rows {
        let (fields, version, id): (Option<Fields>, Option<i64>, String) = row.at(path)?;
        let Some(fields) = fields else {
            tracing::warn!(note = %id, "a cell of this note cannot be read; the doctor names it");
            records.push(LocalRecord {
                damaged: true,
                ..LocalRecord::new(Entity::Note, id, version, &Fields::new())
            });
            continue;
        };
        records.push(LocalRecord {
            title: fields
                .get("title")
                .and_then(|c| c.value.as_str())
                .map(str::to_owned),
            in_trash: fields.get("deleted").is_some_and(|c| c.value == true),
            ..LocalRecord::new(Entity::Note, id, version, &fields)
        });
    }
    Ok(records)
}

fn snapshot_notebooks(conn: &Connection, path: &Path) -> Result<Vec<LocalRecord>> {
    let mut notebooks = conn
        .prepare(
            "SELECT id, name, name_stamp, deleted, deleted_stamp, server_version
             FROM notebooks",
        )
        .at(path)?;
    let rows = notebooks
        .query_map([], |r| {
            let name: String = r.get(1)?;
            let fields = crate::sync::verify::notebook_fields(
                name.clone(),
                &r.get::<_, String>(2)?,
                r.get(3)?,
                &r.get::<_, String>(4)?,
            );
            Ok((r.get::<_, String>(0)?, name, fields, r.get(5)?))
        })
        .at(path)?;
    let mut records = Vec::new();
    for row in rows {
        let (id, name, fields, version): (String, String, Fields, Option<i64>) = row.at(path)?;
        records.push(LocalRecord {
            title: Some(name),
            ..LocalRecord::new(Entity::Notebook, id, version, &fields)
        });
    }
    Ok(records)
}

fn snapshot_attachments(conn: &Connection, path: &Path) -> Result<Vec<LocalRecord>> {
    let mut stmt = conn
        .prepare("SELECT id, name, fields, server_version FROM attachments")
        .at(path)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .at(path)?;
    let mut records = Vec::new();
    for row in rows {
        let (id, name, json, version) = row.at(path)?;
        // Fields that cannot be read back differ from any copy: a repair takes the server's.
        let (fields, damaged) = match crate::attachments::parse_fields(&id, &json) {
            Ok(fields) => (fields, false),
            Err(_) => (Fields::new(), true),
        };
        records.push(LocalRecord {
            title: Some(name),
            damaged,
            ..LocalRecord::new(Entity::Attachment, id, version, &fields)
        });
    }
    Ok(records)
}

fn snapshot_prefs(conn: &Connection, path: &Path) -> Result<Vec<LocalRecord>> {
    let mut prefs = conn
        .prepare("SELECT key, value, stamp FROM prefs")
        .at(path)?;
    let rows = prefs
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .at(path)?;
    let mut records = Vec::new();
    for row in rows {
        let (key, value, stamp) = row.at(path)?;
        if !crate::prefs::is_synced_key(&key) {
            continue;
        }
        let fields = crate::sync::verify::pref_fields(&key, &value, &stamp)?;
        records.push(LocalRecord::new(Entity::Pref, key, None, &fields));
    }
    Ok(records)
}

#[cfg(test)]
impl Store {
    /// The doctor's sums of every record this device holds, from a full pass: what the running
    /// digest (`sync::verify`) must equal.
    pub(crate) fn full_digest_buckets(&self) -> Result<Vec<digest::Bucket>> {
        let local = self.doctor_snapshot()?;
        Ok(super::compare::summarize(&local).all.buckets)
    }
}
