//! "Up to date" proven: this device's running digest of what it holds, and its comparison with
//! the server's digest of the account at the same cursor.
//!
//! The store keeps, per bucket of `outpost_protocol::digest`, the count and wrapping sum of the
//! digests of the records it holds (tables `digest_buckets` and `digest_records`, schema V7).
//! Triggers mark each record a write may have changed (`digest_dirty`); [`Store::local_digest`]
//! hashes only those and moves their buckets by the difference, so a check costs what changed
//! since the last one, never a pass over every note. A record's digest is the doctor's, so the
//! status bar and `outpost doctor` agree by construction.
//!
//! [`compare`] is pure: it takes both digests, leaves out the records with changes not yet
//! acknowledged (on both sides: they are expected to differ), and says whether the rest agree.

use super::apply::{self, NOTE_FIELD_COLUMNS, note_fields};
use super::doctor::local_digest;
use crate::error::Result;
use crate::error::SqlContext;
use crate::store::{Store, Tx};
use outpost_protocol::api::Cursor;
use outpost_protocol::digest::{self, BUCKETS, Bucket, DigestResponse, Key};
use outpost_protocol::{Entity, FieldChange, Fields};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

/// What this device holds, summed up the way the server sums an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDigest {
    /// The cursor of the last page applied: the sums are of the device as of this cursor.
    pub cursor: Cursor,
    /// [`BUCKETS`] buckets, in bucket order.
    pub buckets: Vec<Bucket>,
    /// Records with an outbox entry or an open conflict, with their digest here (if this
    /// device holds them): left out of a comparison.
    pub pending: Vec<(Key, Option<u64>)>,
}

impl LocalDigest {
    /// The buckets the pending records fall in (sorted): left out of a comparison.
    pub fn pending_buckets(&self) -> Vec<u8> {
        let mut buckets: Vec<u8> = self
            .pending
            .iter()
            .map(|(k, _)| digest::bucket(k.entity, &k.id))
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        buckets
    }
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record without pending changes is the same on both sides.
    Agrees,
    /// These buckets differ: the doctor names the records and repairs them.
    Differs { buckets: Vec<u8> },
    /// The server's sums are of another cursor (a change committed since this device pulled):
    /// not comparable until the device pulls again.
    OtherCursor { server: Cursor, device: Cursor },
}

/// Compares this device's digest with the server's. The buckets of records with changes not
/// yet acknowledged are left out on both sides (they are expected to differ, and are checked
/// once those changes are through): no request beyond the digest. An error names what in the
/// server's reply is malformed.
pub fn compare(
    local: &LocalDigest,
    server: &DigestResponse,
) -> std::result::Result<Verdict, String> {
    if server.cursor != local.cursor {
        return Ok(Verdict::OtherCursor {
            server: server.cursor,
            device: local.cursor,
        });
    }
    if server.buckets.len() != BUCKETS || local.buckets.len() != BUCKETS {
        return Err(format!(
            "the server's digest has {} buckets, not {BUCKETS}",
            server.buckets.len()
        ));
    }
    let theirs = server
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            u64::from_str_radix(&b.sum, 16)
                .map(|sum| Bucket {
                    count: b.count,
                    sum,
                })
                .map_err(|_| format!("bucket {i} of the server's digest has the sum {:?}", b.sum))
        })
        .collect::<std::result::Result<Vec<Bucket>, String>>()?;
    let left_out = local.pending_buckets();
    let buckets: Vec<u8> = (0..BUCKETS)
        .filter_map(|i| u8::try_from(i).ok())
        .filter(|b| !left_out.contains(b))
        .filter(|&b| local.buckets[usize::from(b)] != theirs[usize::from(b)])
        .collect();
    Ok(if buckets.is_empty() {
        Verdict::Agrees
    } else {
        Verdict::Differs { buckets }
    })
}

/// Rows of (entity, id, digest) as record keys with their digests; an entity this build does
/// not know is left out.
fn keyed_digests(tx: &Tx<'_>, sql: &str) -> Result<Vec<(Key, Option<u64>)>> {
    Ok(tx
        .tx
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .at(tx.path)?
        .into_iter()
        .filter_map(|(entity, id, d)| {
            Entity::parse(&entity).map(|entity| (Key { entity, id }, d.map(from_sql)))
        })
        .collect())
}

/// A record a write marked: its digest before (as summed) and now (`None`: not held).
struct Marked {
    entity: Entity,
    id: String,
    before: Option<u64>,
    now: Option<u64>,
}

fn add(b: &mut Bucket, digest: u64) {
    b.count = b.count.wrapping_add(1);
    b.sum = b.sum.wrapping_add(digest);
}

fn remove(b: &mut Bucket, digest: u64) {
    b.count = b.count.wrapping_sub(1);
    b.sum = b.sum.wrapping_sub(digest);
}

/// SQLite keeps a digest's 64 bits as a signed integer.
fn to_sql(d: u64) -> i64 {
    i64::from_ne_bytes(d.to_ne_bytes())
}

fn from_sql(d: i64) -> u64 {
    u64::from_ne_bytes(d.to_ne_bytes())
}

/// How often a device that is otherwise idle checks its digest against the server's.
pub const VERIFY_EVERY_MS: i64 = 4 * 60 * 1000;

/// What a record's digest depends on besides its row: the protocol's digest rules and which
/// preference keys this build syncs. Stored with the sums; when an upgraded app finds another
/// one, it sums everything up again (no trigger fires for a rule that changed).
fn digest_format() -> String {
    let mut keys: Vec<&str> = crate::prefs::synced_keys().collect();
    keys.sort_unstable();
    let fields: Vec<&str> = [Entity::Note, Entity::Notebook, Entity::Pref]
        .iter()
        .flat_map(|e| outpost_protocol::fields::of(*e).iter().map(|f| f.name))
        .collect();
    format!("1;{};{}", fields.join(","), keys.join(","))
}

use crate::meta::{CURSOR, DIGEST_FORMAT, VERIFIED_CURSOR, VERIFIED_MS};

impl Store {
    /// Remembers a check that agreed at `cursor`.
    pub fn set_verified(&self, cursor: Cursor, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            crate::meta::set(&tx.tx, tx.path, VERIFIED_CURSOR, &cursor.0.to_string())?;
            crate::meta::set(&tx.tx, tx.path, VERIFIED_MS, &now_ms.to_string())
        })
    }

    /// When the last check agreed (ms since the epoch), if one did.
    pub fn verified_ms(&self) -> Result<Option<i64>> {
        Ok(self
            .read(|c, p| crate::meta::get(c, p, VERIFIED_MS))?
            .and_then(|v| v.parse().ok()))
    }

    /// The last check agreed at this device's current cursor: "Up to date" is proven, as far as
    /// anything was acknowledged.
    pub fn verified_at_cursor(&self) -> Result<bool> {
        self.read(|c, p| {
            let verified = crate::meta::get(c, p, VERIFIED_CURSOR)?;
            let cursor = crate::meta::get(c, p, CURSOR)?.unwrap_or_else(|| "0".into());
            Ok(verified.is_some_and(|v| v == cursor))
        })
    }

    /// A check is due: none agreed yet, or the last one is older than [`VERIFY_EVERY_MS`].
    pub fn verification_due(&self, now_ms: i64) -> Result<bool> {
        Ok(self
            .verified_ms()?
            .is_none_or(|at| now_ms.saturating_sub(at) >= VERIFY_EVERY_MS))
    }

    /// Forgets the last check (a re-download starts, the account changes).
    pub(crate) fn forget_verified(tx: &Tx<'_>) -> Result<()> {
        tx.tx
            .execute(
                "DELETE FROM sync_meta WHERE key IN (?1, ?2)",
                [VERIFIED_CURSOR, VERIFIED_MS],
            )
            .at(tx.path)?;
        Ok(())
    }

    /// Sums everything up again at the next check (the sums drifted from a full pass: see
    /// `engine`, a check the doctor found nothing wrong with).
    pub fn rebuild_local_digest(&self) -> Result<()> {
        self.write(|tx| tx.reset_digest())
    }

    /// This device's digest, brought up to date with what changed since the last call, with the
    /// cursor and pending records of the same moment (one transaction).
    pub fn local_digest(&self) -> Result<LocalDigest> {
        self.write(|tx| {
            let format = digest_format();
            if crate::meta::get(&tx.tx, tx.path, DIGEST_FORMAT)?.as_deref() != Some(&format) {
                tx.reset_digest()?;
                crate::meta::set(&tx.tx, tx.path, DIGEST_FORMAT, &format)?;
            }
            let hashed = tx.refresh_digest()?;
            if hashed > 0 {
                tracing::debug!(records = hashed, "brought the device's digest up to date");
            }
            let buckets = tx
                .tx
                .prepare_cached("SELECT count, sum FROM digest_buckets ORDER BY bucket")
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok(Bucket {
                            count: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                            sum: from_sql(r.get(1)?),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<Bucket>>>()
                })
                .at(tx.path)?;
            let pending = keyed_digests(
                tx,
                "WITH p (entity, id) AS (
                     SELECT entity, entity_id FROM outbox
                     UNION SELECT 'note', note_id FROM conflicts)
                 SELECT p.entity, p.id, d.digest FROM p
                 LEFT JOIN digest_records d ON d.entity = p.entity AND d.id = p.id",
            )?
            .into_iter()
            .collect();
            let cursor = crate::meta::get(&tx.tx, tx.path, CURSOR)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Ok(LocalDigest {
                cursor: Cursor(cursor),
                buckets,
                pending,
            })
        })
    }
}

impl Tx<'_> {
    /// Forgets the sums and marks every record, as schema V7 does.
    fn reset_digest(&mut self) -> Result<()> {
        self.tx
            .execute_batch(
                "DELETE FROM digest_records;
                 UPDATE digest_buckets SET count = 0, sum = 0;
                 INSERT OR IGNORE INTO digest_dirty (entity, id)
                     SELECT 'note', id FROM notes
                     UNION ALL SELECT 'notebook', id FROM notebooks
                     UNION ALL SELECT 'pref', key FROM prefs;",
            )
            .at(self.path)
    }

    /// Hashes the records marked since the last refresh and moves their buckets; returns how
    /// many it hashed.
    fn refresh_digest(&mut self) -> Result<usize> {
        let marked = self.marked_records()?;
        if marked.is_empty() {
            return Ok(0);
        }
        let mut buckets: Vec<Option<Bucket>> = vec![None; BUCKETS];
        for m in &marked {
            if m.before == m.now {
                continue;
            }
            let i = usize::from(digest::bucket(m.entity, &m.id));
            let bucket = match &mut buckets[i] {
                Some(b) => b,
                slot => slot.insert(self.bucket(i)?),
            };
            if let Some(old) = m.before {
                remove(bucket, old);
            }
            if let Some(new) = m.now {
                add(bucket, new);
            }
            self.save_record_digest(m)?;
        }
        let mut write = self
            .tx
            .prepare_cached("UPDATE digest_buckets SET count = ?2, sum = ?3 WHERE bucket = ?1")
            .at(self.path)?;
        for (i, b) in buckets.iter().enumerate() {
            if let Some(b) = b {
                write
                    .execute(params![
                        i64::try_from(i).unwrap_or(0),
                        i64::try_from(b.count).unwrap_or(i64::MAX),
                        to_sql(b.sum)
                    ])
                    .at(self.path)?;
            }
        }
        drop(write);
        self.tx
            .prepare_cached("DELETE FROM digest_dirty")
            .and_then(|mut s| s.execute([]))
            .at(self.path)?;
        Ok(marked.len())
    }

    /// Every record a write marked, with its digest before and now. Notes, nearly all of them,
    /// come in one pass that joins each mark to its row and old digest.
    fn marked_records(&self) -> Result<Vec<Marked>> {
        let mut marked: Vec<Marked> = self
            .tx
            .prepare_cached(&format!(
                "SELECT {NOTE_FIELD_COLUMNS}, server_version, d.id, r.digest, n.rowid
                 FROM digest_dirty d
                 LEFT JOIN notes n ON n.id = d.id
                 LEFT JOIN digest_records r ON r.entity = 'note' AND r.id = d.id
                 WHERE d.entity = 'note'"
            ))
            .and_then(|mut s| {
                s.query_map([], |r| {
                    let id: String = r.get(15)?;
                    let before: Option<i64> = r.get(16)?;
                    let now = match r.get::<_, Option<i64>>(17)? {
                        Some(_) => Some(local_digest(
                            Entity::Note,
                            &id,
                            r.get(14)?,
                            &note_fields(r)?,
                        )),
                        None => None,
                    };
                    Ok(Marked {
                        entity: Entity::Note,
                        id,
                        before: before.map(from_sql),
                        now,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .at(self.path)?;
        let others = keyed_digests(
            self,
            "SELECT d.entity, d.id, r.digest FROM digest_dirty d
             LEFT JOIN digest_records r ON r.entity = d.entity AND r.id = d.id
             WHERE d.entity != 'note'",
        )?;
        for (Key { entity, id }, before) in others {
            let now = self.current_digest(entity, &id)?;
            marked.push(Marked {
                entity,
                id,
                before,
                now,
            });
        }
        Ok(marked)
    }

    fn save_record_digest(&self, m: &Marked) -> Result<()> {
        match m.now {
            Some(new) => self
                .tx
                .prepare_cached(
                    "INSERT INTO digest_records (entity, id, digest) VALUES (?1, ?2, ?3)
                     ON CONFLICT (entity, id) DO UPDATE SET digest = excluded.digest",
                )
                .and_then(|mut s| s.execute(params![m.entity.as_str(), m.id, to_sql(new)])),
            None => self
                .tx
                .prepare_cached("DELETE FROM digest_records WHERE entity = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![m.entity.as_str(), m.id])),
        }
        .at(self.path)?;
        Ok(())
    }

    fn bucket(&self, i: usize) -> Result<Bucket> {
        self.tx
            .prepare_cached("SELECT count, sum FROM digest_buckets WHERE bucket = ?1")
            .and_then(|mut s| {
                s.query_row([i64::try_from(i).unwrap_or(0)], |r| {
                    Ok(Bucket {
                        count: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        sum: from_sql(r.get(1)?),
                    })
                })
            })
            .at(self.path)
    }

    /// The digest of a record as this device holds it now; `None` if it holds none (or the
    /// record is a preference that stays on this device).
    fn current_digest(&self, entity: Entity, id: &str) -> Result<Option<u64>> {
        match entity {
            Entity::Note => Ok(self
                .load_local(id)?
                .map(|l| local_digest(Entity::Note, id, l.server_version, &l.fields))),
            Entity::Notebook => self
                .tx
                .prepare_cached(
                    "SELECT name, name_stamp, deleted, deleted_stamp, server_version
                     FROM notebooks WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([id], |r| {
                        let fields = notebook_fields(
                            r.get(0)?,
                            &r.get::<_, String>(1)?,
                            r.get(2)?,
                            &r.get::<_, String>(3)?,
                        );
                        Ok(local_digest(Entity::Notebook, id, r.get(4)?, &fields))
                    })
                    .optional()
                })
                .at(self.path),
            Entity::Pref if !crate::prefs::is_synced_key(id) => Ok(None),
            Entity::Pref => Ok(self
                .pref_fields(id)?
                .map(|fields| local_digest(Entity::Pref, id, None, &fields))),
            Entity::Attachment => Ok(self
                .attachment_fields(id)?
                .map(|(fields, version)| local_digest(Entity::Attachment, id, version, &fields))),
        }
    }
}

/// A notebook's fields from its columns, as the doctor and the running digest read them.
pub(super) fn notebook_fields(
    name: String,
    name_stamp: &str,
    deleted: bool,
    deleted_stamp: &str,
) -> Fields {
    let mut fields = Fields::new();
    fields.insert(
        "name".into(),
        FieldChange {
            value: Value::String(name),
            stamp: apply::parse_stamp(name_stamp),
        },
    );
    fields.insert(
        "deleted".into(),
        FieldChange {
            value: Value::Bool(deleted),
            stamp: apply::parse_stamp(deleted_stamp),
        },
    );
    fields
}

/// A preference's fields from its columns. A value cell that is not JSON is an error naming
/// the preference, never read as null: null is a value, and it would be sent and win.
pub(super) fn pref_fields(key: &str, value: &str, stamp: &str) -> Result<Fields> {
    let value = serde_json::from_str(value).map_err(|e| {
        crate::error::Error::Data(format!("preference {key:?} holds no JSON value: {e}"))
    })?;
    let mut fields = Fields::new();
    fields.insert(
        "value".into(),
        FieldChange {
            value,
            stamp: apply::parse_stamp(stamp),
        },
    );
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use crate::{NoteDraft, NotePatch};
    use outpost_protocol::api::{MutationNumber, MutationResult, Outcome, Record, Version};
    use outpost_protocol::digest::BucketDigest;
    use outpost_protocol::{NoteId, Stamp};

    fn agrees_with_a_full_pass(store: &Store, after: &str) {
        let running = store.local_digest().expect("running digest").buckets;
        let full = store.full_digest_buckets().expect("full pass");
        assert_eq!(running, full, "after {after}");
    }

    /// Acknowledges everything queued, at increasing versions.
    fn acknowledge_all(store: &Store, version: &mut i64) {
        let sent = store.take_batch(1000, usize::MAX).expect("batch");
        let replies: Vec<MutationResult> = sent
            .iter()
            .map(|e| {
                *version += 1;
                MutationResult {
                    id: e.mutation_id,
                    number: MutationNumber(e.mutation_number),
                    outcome: Outcome::Applied {
                        version: Version(*version),
                        cursor: Cursor(*version),
                        clamped_skew_ms: None,
                    },
                }
            })
            .collect();
        store.apply_push_results(&sent, &replies).expect("ack");
    }

    #[test]
    fn the_running_digest_equals_a_full_pass_after_every_kind_of_write() {
        let (_dir, store) = temp_store();
        agrees_with_a_full_pass(&store, "nothing");
        let mut version = 0;
        let notes: Vec<NoteId> = (0..5)
            .map(|i| {
                store
                    .create_note(NoteDraft {
                        title: format!("Pump {i}"),
                        body: "Seal leaking".into(),
                        ..Default::default()
                    })
                    .expect("create")
                    .id
            })
            .collect();
        agrees_with_a_full_pass(&store, "creating notes");
        store
            .update_note(
                notes[0],
                NotePatch {
                    title: Some("Pump 0 (valve)".into()),
                    pinned: Some(true),
                    ..Default::default()
                },
            )
            .expect("edit");
        let book = store.create_notebook("Site 4").expect("notebook");
        store
            .rename_notebook(book.id, "Site 4 (north)")
            .expect("rename");
        store
            .set_pref("theme", Value::String("dark".into()))
            .expect("synced pref");
        store
            .set_pref("sync.work_offline", Value::Bool(true))
            .expect("device pref");
        agrees_with_a_full_pass(&store, "edits, a notebook and preferences");
        acknowledge_all(&store, &mut version);
        agrees_with_a_full_pass(&store, "the server acknowledged them");
        store.trash_note(notes[1]).expect("trash");
        store.trash_note(notes[2]).expect("trash");
        store.purge_note(notes[2]).expect("purge");
        store.delete_notebook(book.id).expect("delete notebook");
        agrees_with_a_full_pass(&store, "trash, purge and a notebook deleted");

        // A page from another device: a new note and an edit of one of ours.
        let stamp: Stamp = "7fffffffffff-00000000-0000000000000000000000000000000a"
            .parse()
            .expect("stamp");
        let field = |value: Value| FieldChange { value, stamp };
        let theirs = NoteId::new();
        let mut fields = Fields::new();
        fields.insert("title".into(), field(Value::String("From B".into())));
        fields.insert(
            "body".into(),
            field(Value::String("Gauge read 4 bar".into())),
        );
        let mut edit = Fields::new();
        edit.insert("body".into(), field(Value::String("Seal replaced".into())));
        let page = vec![
            Record {
                entity: Entity::Note,
                id: theirs.to_string(),
                version: Version(version + 1),
                cursor: Cursor(version + 1),
                purged: false,
                fields,
            },
            Record {
                entity: Entity::Note,
                id: notes[3].to_string(),
                version: Version(version + 2),
                cursor: Cursor(version + 2),
                purged: false,
                fields: edit,
            },
        ];
        store
            .apply_pull_page(&page, Cursor(version + 2))
            .expect("pull");
        agrees_with_a_full_pass(&store, "a pull page");

        // Damage by a tool that knows nothing of the outbox: still counted.
        store
            .write(|tx| {
                tx.tx
                    .execute_batch(
                        "UPDATE notes SET title = 'edited in sqlite3' WHERE rowid = 1;
                         DELETE FROM notes WHERE rowid = 2;
                         INSERT OR REPLACE INTO prefs (key, value, stamp, updated_ms)
                             VALUES ('theme', '\"light\"', 'x', 0);",
                    )
                    .at(tx.path)
            })
            .expect("damage");
        agrees_with_a_full_pass(&store, "changes made behind the store's back");
    }

    #[test]
    fn a_database_from_before_the_running_digest_is_summed_up_on_its_first_check() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = Store::open(dir.path()).expect("store");
            for i in 0..20 {
                store
                    .create_note(NoteDraft {
                        title: format!("Inspection {i}"),
                        ..Default::default()
                    })
                    .expect("create");
            }
            // As a V6 database holds them: no digest tables, nothing marked.
            store
                .write(|tx| {
                    tx.tx
                        .execute_batch(
                            "DELETE FROM digest_dirty;
                             DELETE FROM digest_records;
                             UPDATE digest_buckets SET count = 0, sum = 0;",
                        )
                        .at(tx.path)
                })
                .expect("forget");
        }
        // Run V7 again on that data, as an upgrade does.
        {
            let conn = rusqlite::Connection::open(dir.path().join("outpost.db")).expect("db");
            conn.execute_batch(
                "DROP TABLE digest_records; DROP TABLE digest_buckets; DROP TABLE digest_dirty;
                 DROP TABLE purged_here; DROP TABLE fts_pending; DROP TRIGGER notes_keep_base;
                 DROP TABLE attachments; DROP TABLE blobs;
                 PRAGMA user_version = 6;",
            )
            .expect("back to V6");
            for t in ["notes", "notebooks", "prefs"] {
                for op in ["insert", "update", "delete"] {
                    conn.execute_batch(&format!("DROP TRIGGER {t}_digest_{op};"))
                        .expect("drop trigger");
                }
            }
        }
        let store = Store::open(dir.path()).expect("upgraded");
        let digest = store.local_digest().expect("digest");
        assert_eq!(digest.buckets.iter().map(|b| b.count).sum::<u64>(), 20);
        agrees_with_a_full_pass(&store, "the upgrade");
    }

    #[test]
    fn sums_kept_by_another_build_are_summed_up_again() {
        let (_dir, store) = temp_store();
        for i in 0..5 {
            store
                .create_note(NoteDraft {
                    title: format!("Gauge {i}"),
                    ..Default::default()
                })
                .expect("create");
        }
        agrees_with_a_full_pass(&store, "creating notes");
        // What an older build left: other rules, sums that no longer match them.
        store
            .write(|tx| {
                crate::meta::set(&tx.tx, tx.path, DIGEST_FORMAT, "0;title;theme")?;
                tx.tx
                    .execute_batch("UPDATE digest_buckets SET count = count + 1, sum = 42;")
                    .at(tx.path)
            })
            .expect("older sums");
        agrees_with_a_full_pass(&store, "an upgrade of the digest's rules");
    }

    fn wire(buckets: &[Bucket]) -> Vec<BucketDigest> {
        buckets
            .iter()
            .map(|b| BucketDigest {
                count: b.count,
                sum: digest::to_hex(b.sum),
            })
            .collect()
    }

    fn server(cursor: i64, buckets: &[Bucket]) -> DigestResponse {
        DigestResponse {
            cursor: Cursor(cursor),
            counts: Default::default(),
            tombstones: 0,
            buckets: wire(buckets),
        }
    }

    fn key(id: &str) -> Key {
        Key {
            entity: Entity::Note,
            id: id.into(),
        }
    }

    fn with(records: &[(&str, u64)]) -> Vec<Bucket> {
        let mut buckets = vec![Bucket::default(); BUCKETS];
        for (id, d) in records {
            add(
                &mut buckets[usize::from(digest::bucket(Entity::Note, id))],
                *d,
            );
        }
        buckets
    }

    #[test]
    fn the_verdict_of_each_case() {
        let device = |records: &[(&str, u64)], pending: Vec<(Key, Option<u64>)>| LocalDigest {
            cursor: Cursor(7),
            buckets: with(records),
            pending,
        };
        let both = [("a", 1), ("b", u64::MAX)];
        // The same records: agrees (sums wrap).
        assert_eq!(
            compare(&device(&both, vec![]), &server(7, &with(&both))),
            Ok(Verdict::Agrees)
        );
        // The server lost b: its bucket differs.
        assert_eq!(
            compare(&device(&both, vec![]), &server(7, &with(&[("a", 1)]))),
            Ok(Verdict::Differs {
                buckets: vec![digest::bucket(Entity::Note, "b")]
            })
        );
        // Another device committed since: not comparable.
        assert_eq!(
            compare(&device(&both, vec![]), &server(9, &with(&both))),
            Ok(Verdict::OtherCursor {
                server: Cursor(9),
                device: Cursor(7)
            })
        );
        // b edited here and not yet sent: its bucket is left out.
        let edited = device(&[("a", 1), ("b", 5)], vec![(key("b"), Some(5))]);
        assert_eq!(
            compare(&edited, &server(7, &with(&both))),
            Ok(Verdict::Agrees)
        );
        // A new note here, queued: the server has none yet.
        let created = device(
            &[("a", 1), ("b", u64::MAX), ("c", 3)],
            vec![(key("c"), Some(3))],
        );
        assert_eq!(
            compare(&created, &server(7, &with(&both))),
            Ok(Verdict::Agrees)
        );
        // A pending record does not hide a difference in another bucket.
        let (x, y) = ("x", "y");
        assert_ne!(
            digest::bucket(Entity::Note, x),
            digest::bucket(Entity::Note, y)
        );
        let pending_x = device(&[(x, 1), (y, 2)], vec![(key(x), Some(1))]);
        assert_eq!(
            compare(&pending_x, &server(7, &with(&[(x, 9)]))),
            Ok(Verdict::Differs {
                buckets: vec![digest::bucket(Entity::Note, y)]
            })
        );
    }

    #[test]
    fn a_digest_reply_that_is_not_the_protocol_is_an_error_not_a_difference() {
        let local = LocalDigest {
            cursor: Cursor(1),
            buckets: with(&[]),
            pending: vec![],
        };
        let mut short = server(1, &with(&[]));
        short.buckets.truncate(10);
        assert!(compare(&local, &short).is_err());
        let mut garbled = server(1, &with(&[]));
        garbled.buckets[3].sum = "not hex".into();
        let e = compare(&local, &garbled).expect_err("garbled");
        assert!(e.contains("bucket 3"), "{e}");
    }
}
