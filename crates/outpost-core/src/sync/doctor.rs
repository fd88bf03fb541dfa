//! The device's half of the sync doctor: does this device hold exactly what the server holds?
//! It sums up its synced records the way the server does (`outpost_protocol::digest`), asks the
//! server for the entries of the buckets that differ, and names each record that differs. A
//! repair rewrites those records from the server's current copy, and queues again what only
//! the device has, so a repair never loses a note.
//!
//! Records with changes not yet acknowledged (an outbox entry or an open conflict) are left out
//! of the comparison: they are expected to differ until the next sync.

use super::apply::{NOTE_FIELD_COLUMNS, note_fields, parse_stamp};
use super::client::{SyncClient, SyncError};
use crate::error::{Error, Result};
use crate::store::{SqlContext, Store, Tx};
use outpost_protocol::api::{Record, Version};
use outpost_protocol::digest::{self, Counts, Entry, Key, MAX_FETCH_KEYS, Summary};
use outpost_protocol::mutation::names;
use outpost_protocol::{Entity, FieldChange, Fields, NoteId, Stamp};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use tracing::Instrument as _;

/// How a record differs between device and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Problem {
    /// The server has it; this device does not.
    MissingOnDevice,
    /// This device has it, with nothing queued to send; the server does not.
    MissingOnServer,
    /// Deleted for good on the server, still here.
    PurgedOnServer,
    /// Both have it, at another version or with other content.
    Differs,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::MissingOnDevice => "missing on this device",
            Problem::MissingOnServer => "missing on the server",
            Problem::PurgedOnServer => "deleted for good on the server, still on this device",
            Problem::Differs => "different on this device and the server",
        }
    }
}

/// One record that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Difference {
    pub entity: Entity,
    pub id: String,
    /// The note's title or the notebook's name on this device, if it has the record.
    pub title: Option<String>,
    pub problem: Problem,
    pub device_version: Option<i64>,
    pub server_version: Option<i64>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Diagnosis {
    pub server_cursor: i64,
    pub device_cursor: i64,
    /// What the server holds (notes in Trash apart).
    pub server: Counts,
    /// What this device holds, pending changes included.
    pub device: Counts,
    /// Buckets (of 256) whose sums differed and whose entries were compared one by one.
    pub buckets_differing: usize,
    /// Records left out because they have changes not yet acknowledged or an open conflict.
    pub pending: usize,
    pub differences: Vec<Difference>,
}

impl Diagnosis {
    /// Device and server agree on every record without pending changes.
    pub fn agrees(&self) -> bool {
        self.differences.is_empty()
    }
}

/// What a repair did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Repair {
    /// Records rewritten from the server's copy.
    pub rewritten: usize,
    /// Records removed here because the server deleted them for good.
    pub removed: usize,
    /// Records (or fields) only this device had, queued to be sent again.
    pub requeued: usize,
    /// Records left alone because they changed here since the check.
    pub skipped: usize,
}

/// One synced record of this device, summed up.
struct LocalRecord {
    key: Key,
    version: Option<i64>,
    digest: u64,
    title: Option<String>,
    in_trash: bool,
}

impl LocalRecord {
    fn new(entity: Entity, id: String, version: Option<i64>, fields: &Fields) -> Self {
        Self {
            digest: local_digest(entity, &id, version, fields),
            key: Key { entity, id },
            version,
            title: None,
            in_trash: false,
        }
    }
}

/// This device's records and which of them have pending changes.
struct Snapshot {
    records: Vec<LocalRecord>,
    pending: HashSet<String>,
    cursor: i64,
}

pub(super) fn local_digest(entity: Entity, id: &str, version: Option<i64>, fields: &Fields) -> u64 {
    // A record never acknowledged has no version; 0 is one the server never gives.
    digest::record_digest(entity, id, Version(version.unwrap_or(0)), fields)
}

fn field(value: Value, stamp: &str) -> FieldChange {
    FieldChange {
        value,
        stamp: parse_stamp(stamp),
    }
}

impl Store {
    fn doctor_snapshot(&self) -> Result<Snapshot> {
        self.read(|conn, path| {
            // One read transaction: every table as of the same commit.
            let tx = conn.unchecked_transaction().at(path)?;
            let mut records = snapshot_notes(&tx, path)?;
            records.extend(snapshot_notebooks(&tx, path)?);
            records.extend(snapshot_prefs(&tx, path)?);
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
        .query_map([], |r| Ok((note_fields(r)?, r.get(14)?, r.get(15)?)))
        .at(path)?;
    let mut records = Vec::new();
    for row in rows {
        let (fields, version, id): (Fields, Option<i64>, String) = row.at(path)?;
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
            let fields = super::verify::notebook_fields(
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
        let fields = super::verify::pref_fields(&value, &stamp);
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
        let mut all = Summary::new();
        for r in &local.records {
            all.add(r.key.entity, &r.key.id, r.digest, r.in_trash);
        }
        Ok(all.buckets)
    }
}

/// Compares this device with the server and names every record that differs.
pub async fn diagnose(store: &Store, client: &SyncClient) -> Result<Diagnosis, SyncError> {
    let span = tracing::info_span!("sync_doctor", client = %store.client_id());
    diagnose_in(store, client).instrument(span).await
}

async fn diagnose_in(store: &Store, client: &SyncClient) -> Result<Diagnosis, SyncError> {
    let server = client.digest().await?;
    let local = store.doctor_snapshot()?;

    let mut all = Summary::new();
    let mut synced = Summary::new();
    for r in &local.records {
        all.add(r.key.entity, &r.key.id, r.digest, r.in_trash);
        if !local.pending.contains(&r.key.id) {
            synced.add(r.key.entity, &r.key.id, r.digest, r.in_trash);
        }
    }
    let differing = synced.differing(&server.buckets);
    let mut differences = Vec::new();
    if !differing.is_empty() {
        let wanted: HashSet<u8> = differing.iter().copied().collect();
        let theirs = client.digest_entries(differing.clone()).await?;
        let mine: BTreeMap<&Key, &LocalRecord> = local
            .records
            .iter()
            .filter(|r| wanted.contains(&digest::bucket(r.key.entity, &r.key.id)))
            .map(|r| (&r.key, r))
            .collect();
        let theirs: BTreeMap<Key, &Entry> = theirs
            .entries
            .iter()
            .map(|e| {
                (
                    Key {
                        entity: e.entity,
                        id: e.id.clone(),
                    },
                    e,
                )
            })
            .collect();
        let keys: std::collections::BTreeSet<&Key> =
            mine.keys().copied().chain(theirs.keys()).collect();
        for key in keys {
            if local.pending.contains(&key.id)
                || (key.entity == Entity::Pref && !crate::prefs::is_synced_key(&key.id))
            {
                continue;
            }
            let here = mine.get(key);
            let there = theirs.get(key);
            let problem = match (here, there) {
                (None, Some(e)) if !e.purged => Problem::MissingOnDevice,
                (Some(_), Some(e)) if e.purged => Problem::PurgedOnServer,
                (Some(_), None) => Problem::MissingOnServer,
                (Some(r), Some(e)) if e.digest.as_deref() != Some(&digest::to_hex(r.digest)) => {
                    Problem::Differs
                }
                _ => continue,
            };
            differences.push(Difference {
                entity: key.entity,
                id: key.id.clone(),
                title: here.and_then(|r| r.title.clone()),
                problem,
                device_version: here.and_then(|r| r.version),
                server_version: there.map(|e| e.version.0),
            });
        }
    }
    let diagnosis = Diagnosis {
        server_cursor: server.cursor.0,
        device_cursor: local.cursor,
        server: server.counts,
        device: all.counts,
        buckets_differing: differing.len(),
        pending: local.pending.len(),
        differences,
    };
    tracing::info!(
        differences = diagnosis.differences.len(),
        buckets = diagnosis.buckets_differing,
        pending = diagnosis.pending,
        "sync doctor checked the device against the server"
    );
    Ok(diagnosis)
}

/// Repairs what a diagnosis found: rewrites the records that differ from the server's current
/// copy, removes what the server deleted for good, and queues again what only this device has
/// (also the fields it holds newer than the server). Run a sync afterwards to send the queue.
pub async fn repair(
    store: &Store,
    client: &SyncClient,
    diagnosis: &Diagnosis,
) -> Result<Repair, SyncError> {
    let span = tracing::info_span!("sync_doctor_repair", client = %store.client_id());
    repair_in(store, client, diagnosis).instrument(span).await
}

async fn repair_in(
    store: &Store,
    client: &SyncClient,
    diagnosis: &Diagnosis,
) -> Result<Repair, SyncError> {
    let mut repair = Repair::default();
    let (only_here, to_fetch): (Vec<&Difference>, Vec<&Difference>) = diagnosis
        .differences
        .iter()
        .partition(|d| d.problem == Problem::MissingOnServer);
    for chunk in to_fetch.chunks(MAX_FETCH_KEYS) {
        let keys = chunk
            .iter()
            .map(|d| Key {
                entity: d.entity,
                id: d.id.clone(),
            })
            .collect();
        let fetched = client.fetch_records(keys).await?;
        let done = store.repair_from_server(&fetched.records)?;
        repair.rewritten += done.rewritten;
        repair.removed += done.removed;
        repair.requeued += done.requeued;
        repair.skipped += done.skipped;
    }
    let keys: Vec<Key> = only_here
        .iter()
        .map(|d| Key {
            entity: d.entity,
            id: d.id.clone(),
        })
        .collect();
    let done = store.requeue_for_server(&keys)?;
    repair.requeued += done.requeued;
    repair.skipped += done.skipped;
    tracing::info!(
        rewritten = repair.rewritten,
        removed = repair.removed,
        requeued = repair.requeued,
        skipped = repair.skipped,
        "sync doctor repaired the device"
    );
    Ok(repair)
}

impl Store {
    /// Rewrites records from the server's current copies (see [`repair`]), in one transaction.
    pub fn repair_from_server(&self, records: &[Record]) -> Result<Repair> {
        self.write(|tx| {
            let mut done = Repair::default();
            for rec in records {
                if !tx.pending(&rec.id)?.is_empty() || tx.has_conflict(&rec.id)? {
                    done.skipped += 1;
                    continue;
                }
                for change in rec.fields.values() {
                    tx.observe(&change.stamp);
                }
                match rec.entity {
                    Entity::Note => tx.repair_note(rec, &mut done)?,
                    Entity::Notebook => {
                        let before = tx.notebook_fields(&rec.id)?;
                        tx.apply_notebook(rec, false)?;
                        tx.requeue_newer(Entity::Notebook, rec, before, &mut done)?;
                    }
                    Entity::Pref => {
                        let before = tx.pref_fields(&rec.id)?;
                        tx.apply_pref(rec, false)?;
                        tx.requeue_newer(Entity::Pref, rec, before, &mut done)?;
                    }
                }
            }
            Ok(done)
        })
    }

    /// Queues again, whole, records only this device has (see [`repair`]), in one transaction.
    pub fn requeue_for_server(&self, keys: &[Key]) -> Result<Repair> {
        self.write(|tx| {
            let mut done = Repair::default();
            for key in keys {
                if !tx.pending(&key.id)?.is_empty() || tx.has_conflict(&key.id)? {
                    done.skipped += 1;
                    continue;
                }
                if tx.requeue_whole(key)? {
                    done.requeued += 1;
                } else {
                    done.skipped += 1;
                }
            }
            Ok(done)
        })
    }
}

impl Tx<'_> {
    /// Queues a record this device holds, whole, as new to a server that does not know it (no
    /// base version). False if the device does not hold it either.
    pub(super) fn requeue_whole(&mut self, key: &Key) -> Result<bool> {
        let (name, fields) = match key.entity {
            Entity::Note => (names::NOTE_PUT, self.load_local(&key.id)?.map(|l| l.fields)),
            Entity::Notebook => (names::NOTEBOOK_PUT, self.notebook_fields(&key.id)?),
            Entity::Pref => (names::PREF_PUT, self.pref_fields(&key.id)?),
        };
        // A field nobody ever wrote (stamp zero) is not sent: its default is what the server
        // assumes anyway, and some defaults are not valid values (a notebook known only by its
        // deletion has no name; found by the simulation, seed 8037).
        let Some(fields) = fields.map(|mut f| {
            f.retain(|_, c| c.stamp != outpost_protocol::Stamp::ZERO);
            f
        }) else {
            return Ok(false);
        };
        if fields.is_empty() {
            return Ok(false);
        }
        let now = now_ms(self);
        self.forget_server_version(key)?;
        self.enqueue(key.entity, &key.id, name, fields, None, now)?;
        if let (Entity::Note, Ok(note)) = (key.entity, key.id.parse::<NoteId>()) {
            self.change.notes.push(note);
        }
        Ok(true)
    }
}

fn now_ms(tx: &mut Tx<'_>) -> i64 {
    i64::try_from(tx.stamp().physical_ms).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    pub(super) fn has_conflict(&self, id: &str) -> Result<bool> {
        self.tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM conflicts WHERE note_id = ?1)")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .at(self.path)
    }

    pub(super) fn notebook_fields(&self, id: &str) -> Result<Option<Fields>> {
        Ok(self.load_local_notebook(id)?.map(|l| l.fields))
    }

    pub(super) fn pref_fields(&self, key: &str) -> Result<Option<Fields>> {
        use rusqlite::OptionalExtension;
        self.tx
            .prepare_cached("SELECT value, stamp FROM prefs WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    let value: String = r.get(0)?;
                    let stamp: String = r.get(1)?;
                    Ok((value, stamp))
                })
                .optional()
            })
            .at(self.path)?
            .map(|(value, stamp)| {
                let value = serde_json::from_str(&value)
                    .map_err(|e| Error::Data(format!("preference {key}: {e}")))?;
                let mut fields = Fields::new();
                fields.insert("value".into(), field(value, &stamp));
                Ok(fields)
            })
            .transpose()
    }

    /// A note from the server's copy, field by field: the server's value wins unless this
    /// device holds a newer stamp (a change that never reached the server), which is kept and
    /// queued again. The base becomes the server's copy.
    fn repair_note(&mut self, rec: &Record, done: &mut Repair) -> Result<()> {
        let Ok(note_id) = rec.id.parse::<NoteId>() else {
            done.skipped += 1;
            return Ok(());
        };
        let now = now_ms(self);
        if rec.purged {
            for sql in [
                "DELETE FROM notes WHERE id = ?1",
                "DELETE FROM note_base WHERE note_id = ?1",
            ] {
                self.tx
                    .prepare_cached(sql)
                    .and_then(|mut s| s.execute([&rec.id]))
                    .at(self.path)?;
            }
            self.change.notes.push(note_id);
            done.removed += 1;
            return Ok(());
        }
        let local = self.load_local(&rec.id)?;
        let mut merged = Fields::new();
        let mut newer_here = Fields::new();
        for spec in outpost_protocol::fields::NOTE {
            let name = &spec.name;
            let theirs = rec.fields.get(*name).cloned().unwrap_or(FieldChange {
                value: spec.default_value(),
                stamp: Stamp::ZERO,
            });
            match local.as_ref().and_then(|l| l.fields.get(*name)) {
                Some(mine) if mine.stamp > theirs.stamp => {
                    merged.insert((*name).to_owned(), mine.clone());
                    newer_here.insert((*name).to_owned(), mine.clone());
                }
                _ => {
                    merged.insert((*name).to_owned(), theirs);
                }
            }
        }
        self.write_local(&rec.id, &merged, Some(rec.version.0), now)?;
        self.write_base(&rec.id, rec.version.0, &rec.fields)?;
        self.change.notes.push(note_id);
        done.rewritten += 1;
        if !newer_here.is_empty() {
            self.enqueue(
                Entity::Note,
                &rec.id,
                names::NOTE_PUT,
                newer_here,
                Some(rec.version.0),
                now,
            )?;
            done.requeued += 1;
        }
        Ok(())
    }

    /// After a last-writer-wins apply: queues the fields this device held newer than the
    /// server's copy, which the apply kept.
    fn requeue_newer(
        &mut self,
        entity: Entity,
        rec: &Record,
        before: Option<Fields>,
        done: &mut Repair,
    ) -> Result<()> {
        done.rewritten += 1;
        let newer: Fields = before
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, mine)| {
                rec.fields
                    .get(name)
                    .is_none_or(|theirs| mine.stamp > theirs.stamp)
            })
            .collect();
        if newer.is_empty() {
            return Ok(());
        }
        let name = match entity {
            Entity::Notebook => names::NOTEBOOK_PUT,
            _ => names::PREF_PUT,
        };
        let now = now_ms(self);
        self.enqueue(entity, &rec.id, name, newer, Some(rec.version.0), now)?;
        done.requeued += 1;
        Ok(())
    }

    fn forget_server_version(&self, key: &Key) -> Result<()> {
        let sql = match key.entity {
            Entity::Note => "UPDATE notes SET server_version = NULL WHERE id = ?1",
            Entity::Notebook => "UPDATE notebooks SET server_version = NULL WHERE id = ?1",
            Entity::Pref => return Ok(()),
        };
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([&key.id]))
            .at(self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use crate::{NoteDraft, NoteId};
    use outpost_protocol::api::{Cursor, Outcome};

    /// A note created here and acknowledged at version 1; returns it and its first push.
    fn synced(store: &Store) -> (NoteId, Fields) {
        let note = store
            .create_note(NoteDraft {
                title: "Pump 4".into(),
                body: "Seal leaking".into(),
                ..Default::default()
            })
            .expect("create");
        let sent = store.take_batch(10, usize::MAX).expect("batch");
        let reply = outpost_protocol::api::MutationResult {
            id: sent[0].mutation_id,
            number: outpost_protocol::api::MutationNumber(sent[0].mutation_number),
            outcome: Outcome::Applied {
                version: Version(1),
                cursor: Cursor(1),
                clamped_skew_ms: None,
            },
        };
        store.apply_push_results(&sent, &[reply]).expect("ack");
        (note.id, sent[0].fields.clone())
    }

    fn record(id: NoteId, version: i64, fields: Fields) -> Record {
        Record {
            entity: Entity::Note,
            id: id.to_string(),
            version: Version(version),
            cursor: Cursor(version),
            purged: false,
            fields,
        }
    }

    #[test]
    fn a_repair_takes_the_servers_copy_but_keeps_and_resends_a_newer_local_field() {
        let (_dir, store) = temp_store();
        let (id, mut server) = synced(&store);
        // The server has a newer body (another device); this device has a newer title that
        // never reached its outbox (the damage the doctor exists for).
        let first = server["body"].stamp;
        let later = |ms: u64| Stamp {
            physical_ms: first.physical_ms + ms,
            ..first
        };
        server.insert(
            "body".into(),
            FieldChange {
                value: Value::String("Seal replaced".into()),
                stamp: later(10),
            },
        );
        store
            .write(|tx| {
                tx.tx
                    .execute(
                        "UPDATE notes SET title = 'Pump 4 (renamed)', title_stamp = ?2
                         WHERE id = ?1",
                        rusqlite::params![id.to_string(), later(20).to_string()],
                    )
                    .at(tx.path)?;
                Ok(())
            })
            .expect("damage");

        let done = store
            .repair_from_server(&[record(id, 2, server)])
            .expect("repair");
        assert_eq!((done.rewritten, done.requeued, done.skipped), (1, 1, 0));
        let note = store.get_note(id).expect("note");
        assert_eq!(note.body, "Seal replaced", "the server's newer body");
        assert_eq!(
            note.title, "Pump 4 (renamed)",
            "the newer local title stays"
        );
        let queued = store.outbox_for(&id.to_string()).expect("outbox");
        assert_eq!(queued.len(), 1);
        assert_eq!(
            queued[0].fields.keys().collect::<Vec<_>>(),
            vec!["title"],
            "only the title goes back to the server"
        );
        assert_eq!(queued[0].base_version, Some(2));
    }

    #[test]
    fn a_note_with_a_pending_edit_is_left_alone_and_a_purged_one_removed() {
        let (_dir, store) = temp_store();
        let (kept, fields) = synced(&store);
        let (gone, _) = synced(&store);
        store
            .update_note(
                kept,
                crate::NotePatch {
                    body: Some("typed since the check".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
        let purged = Record {
            purged: true,
            fields: Fields::new(),
            ..record(gone, 3, Fields::new())
        };
        let done = store
            .repair_from_server(&[record(kept, 2, fields), purged])
            .expect("repair");
        assert_eq!((done.skipped, done.removed), (1, 1));
        assert_eq!(
            store.get_note(kept).expect("kept").body,
            "typed since the check"
        );
        assert_eq!(
            store.get_note(gone).expect_err("purged").code(),
            "not_found"
        );
    }
}
