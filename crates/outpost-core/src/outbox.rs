//! The outbox: every local change queued for the server, with its idempotency key.
//!
//! Entries are written only inside the transaction of the change they carry (L1). An unsent
//! entry may absorb a later change of the same entity (coalescing: one mutation instead of one
//! per keystroke); an entry that was ever sent is never rewritten (L3), so a later change gets a
//! new entry behind it.

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::model::OutboxEntry;
use crate::store::{Store, Tx};
use outpost_protocol::{Entity, Fields, MUTATION_SCHEMA_VERSION, MutationId};
use rusqlite::{OptionalExtension, Row, params};
use std::collections::HashSet;

/// The newest outbox entry of an entity: (seq, name, fields JSON, state, sent).
type NewestEntry = (i64, String, String, String, bool);

impl Tx<'_> {
    fn newest_entry(&self, entity: Entity, entity_id: &str) -> Result<Option<NewestEntry>> {
        self.tx
            .prepare_cached(
                "SELECT seq, name, fields, state, sent FROM outbox
                 WHERE entity_id = ?1 AND entity = ?2 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![entity_id, entity.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()
            })
            .at(self.path)
    }

    /// Queues `fields` of `entity_id` under mutation `name`, coalescing into the newest entry of
    /// the same entity when that entry is the same mutation, still queued and never sent.
    pub(crate) fn enqueue(
        &mut self,
        entity: Entity,
        entity_id: &str,
        name: &str,
        fields: Fields,
        base_version: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let path = self.path;
        let newest = self.newest_entry(entity, entity_id)?;
        match newest {
            Some((seq, newest_name, old_fields, state, false))
                if newest_name == name && state == "queued" =>
            {
                let mut merged: Fields = serde_json::from_str(&old_fields)
                    .map_err(|e| Error::Data(format!("outbox entry {seq}: {e}")))?;
                merged.extend(fields);
                self.tx
                    .prepare_cached("UPDATE outbox SET fields = ?1, updated_ms = ?2 WHERE seq = ?3")
                    .and_then(|mut s| s.execute(params![to_json(&merged)?, now_ms, seq]))
                    .at(path)?;
            }
            _ => {
                let number = self.take_mutation_number();
                self.tx
                    .prepare_cached(
                        "INSERT INTO outbox (mutation_id, mutation_number, name, schema_version,
                             entity, entity_id, fields, base_version, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            MutationId::new().to_string(),
                            number,
                            name,
                            MUTATION_SCHEMA_VERSION,
                            entity.as_str(),
                            entity_id,
                            to_json(&fields)?,
                            base_version,
                            now_ms,
                        ])
                    })
                    .at(path)?;
            }
        }
        self.change.outbox = true;
        self.change.queued = true;
        Ok(())
    }
}

impl Tx<'_> {
    /// Queues `fields` of a sent `entry` again, as [`Tx::requeue`] does, on the entry's own
    /// mutation and base.
    pub(crate) fn requeue_entry(&mut self, entry: &OutboxEntry, fields: Fields) -> Result<()> {
        let now = i64::try_from(self.stamp().physical_ms).unwrap_or(i64::MAX);
        self.requeue(
            entry.entity,
            &entry.entity_id,
            &entry.name,
            fields,
            entry.base_version,
            now,
        )
    }

    /// Queues a change again (a dead letter retried, a conflicted push): if an unsent entry
    /// of the same entity exists, the fields go into it (per field, the later stamp wins);
    /// otherwise a new entry with a new id and number.
    pub(crate) fn requeue(
        &mut self,
        entity: Entity,
        entity_id: &str,
        name: &str,
        fields: Fields,
        base_version: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let newest = self.newest_entry(entity, entity_id)?;
        if let Some((seq, newest_name, newer, state, false)) = newest
            && newest_name == name
            && state == "queued"
        {
            let mut merged: Fields = serde_json::from_str(&newer)
                .map_err(|e| Error::Data(format!("outbox entry {seq}: {e}")))?;
            // Field by field, the later edit wins by its stamp. The queued entry is usually the
            // newer one, but not always: when two sent entries of a note both come back as
            // conflicts, the first one's requeue is the queued entry when the second, later,
            // edit is requeued (found by the simulation: the earlier text was sent and the
            // later one lost).
            for (name, change) in fields {
                if merged
                    .get(&name)
                    .is_none_or(|queued| change.stamp > queued.stamp)
                {
                    merged.insert(name, change);
                }
            }
            self.tx
                .prepare_cached("UPDATE outbox SET fields = ?1, updated_ms = ?2 WHERE seq = ?3")
                .and_then(|mut s| s.execute(params![to_json(&merged)?, now_ms, seq]))
                .at(self.path)?;
            self.change.outbox = true;
            self.change.queued = true;
            return Ok(());
        }
        self.enqueue(entity, entity_id, name, fields, base_version, now_ms)
    }
}

fn to_json(fields: &Fields) -> rusqlite::Result<String> {
    serde_json::to_string(fields).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

const ENTRY_COLUMNS: &str = "seq, mutation_id, mutation_number, name, entity, entity_id, fields,
    base_version, created_ms, updated_ms, attempts, last_error, state, sent, schema_version";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let mutation_id: String = row.get(1)?;
    let entity: String = row.get(4)?;
    let fields: String = row.get(6)?;
    Ok(OutboxEntry {
        seq: row.get(0)?,
        mutation_id: mutation_id
            .parse()
            .map_err(|e: outpost_protocol::IdError| bad(1, e.to_string()))?,
        mutation_number: row.get(2)?,
        name: row.get(3)?,
        entity: Entity::parse(&entity)
            .ok_or_else(|| bad(4, format!("unknown entity {entity:?}")))?,
        entity_id: row.get(5)?,
        fields: serde_json::from_str(&fields).map_err(|e| bad(6, e.to_string()))?,
        base_version: row.get(7)?,
        created_ms: row.get(8)?,
        updated_ms: row.get(9)?,
        attempts: row.get(10)?,
        last_error: row.get(11)?,
        state: row.get(12)?,
        sent: row.get(13)?,
        schema_version: row.get(14)?,
    })
}

impl Store {
    /// The outbox in send order, at most `limit` entries.
    pub fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        self.read(|conn, path| {
            let sql = format!("SELECT {ENTRY_COLUMNS} FROM outbox ORDER BY seq LIMIT ?1");
            let mut stmt = conn.prepare_cached(&sql).at(path)?;
            let rows = stmt
                .query_map([limit], entry_from_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .at(path)?;
            Ok(rows)
        })
    }

    /// The outbox entries of one entity (a note id, a notebook id, a preference key).
    pub fn outbox_for(&self, entity_id: &str) -> Result<Vec<OutboxEntry>> {
        self.read(|conn, path| {
            let sql =
                format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE entity_id = ?1 ORDER BY seq");
            let mut stmt = conn.prepare_cached(&sql).at(path)?;
            let rows = stmt
                .query_map([entity_id], entry_from_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .at(path)?;
            Ok(rows)
        })
    }
}

/// The queued entries in send order, less those held behind a dead letter of their entity. It
/// must read the first rows of `outbox_by_state` and stop: a plan that sorts the queue makes a
/// long offline backlog push in quadratic time (`query_plans` holds it to that).
pub(crate) fn take_batch_sql() -> String {
    format!(
        "SELECT {ENTRY_COLUMNS}, length(CAST(fields AS BLOB)) FROM outbox o
         WHERE state = 'queued' AND seq > ?2
           AND NOT EXISTS (SELECT 1 FROM outbox f WHERE f.entity_id = o.entity_id
                           AND f.state = 'failed' AND f.seq < o.seq)
         ORDER BY seq LIMIT ?1"
    )
}

/// Removes one acknowledged entry (see [`Store::acknowledge`]).
pub(crate) const ACKNOWLEDGE_SQL: &str =
    "DELETE FROM outbox WHERE mutation_id = ?1 RETURNING entity_id";

impl Store {
    /// The next entries to push, in order, bounded by count and by the bytes of their fields;
    /// always at least one entry if any is queued, however large. Each is marked sent (never to
    /// be rewritten again, L3) and its attempt counted, in one transaction, before it leaves.
    /// Entries of a note behind one of its dead letters wait; the rest of the queue goes on.
    pub fn take_batch(&self, max_count: usize, max_bytes: usize) -> Result<Vec<OutboxEntry>> {
        self.take_batch_behind(max_count, max_bytes, &[])
    }

    /// [`Store::take_batch`] while `in_flight`, the batch taken before, waits for its replies:
    /// the entries after it, ending before the first entry of an entity in it, so that entry
    /// is taken once the replies about its entity have set its base.
    pub fn take_batch_behind(
        &self,
        max_count: usize,
        max_bytes: usize,
        in_flight: &[OutboxEntry],
    ) -> Result<Vec<OutboxEntry>> {
        // A batch is the queue's first entries (less those held behind a dead letter), so
        // what follows it starts after its last entry.
        let after = in_flight.iter().map(|e| e.seq).max().unwrap_or(0);
        let entities: HashSet<&str> = in_flight.iter().map(|e| e.entity_id.as_str()).collect();
        self.write(|tx| {
            let candidates = tx
                .tx
                .prepare_cached(&take_batch_sql())
                .and_then(|mut s| {
                    s.query_map(
                        params![i64::try_from(max_count.max(1)).unwrap_or(i64::MAX), after],
                        // The size of the fields as stored is the size they go out at.
                        |r| Ok((entry_from_row(r)?, r.get::<_, i64>(15)?)),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .at(tx.path)?;
            let mut batch = Vec::with_capacity(candidates.len());
            let mut bytes = 0usize;
            for (mut entry, size) in candidates {
                let size = usize::try_from(size).unwrap_or(0);
                if (!batch.is_empty() && bytes + size > max_bytes)
                    || entities.contains(entry.entity_id.as_str())
                {
                    break;
                }
                bytes += size;
                tx.tx
                    .prepare_cached(
                        "UPDATE outbox SET sent = 1, attempts = attempts + 1 WHERE seq = ?1",
                    )
                    .and_then(|mut s| s.execute([entry.seq]))
                    .at(tx.path)?;
                entry.sent = true;
                entry.attempts += 1;
                batch.push(entry);
            }
            Ok(batch)
        })
    }

    /// Removes entries the server acknowledged (applied or duplicate): the only way an entry
    /// leaves the outbox (L2).
    pub fn acknowledge(&self, mutation_ids: &[MutationId]) -> Result<usize> {
        self.write(|tx| {
            let mut removed = 0;
            for id in mutation_ids {
                let entity: Option<String> = tx
                    .tx
                    .prepare_cached(ACKNOWLEDGE_SQL)
                    .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
                    .at(tx.path)?;
                if let Some(entity) = entity {
                    removed += 1;
                    if let Ok(note) = entity.parse() {
                        tx.change.notes.push(note);
                    }
                }
            }
            tx.change.outbox = removed > 0;
            Ok(removed)
        })
    }

    /// Marks an entry a dead letter with the server's reason; its note shows `failed`.
    pub fn mark_failed(&self, mutation_id: MutationId, reason: &str) -> Result<()> {
        self.write(|tx| {
            let entity: Option<String> = tx
                .tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'failed', last_error = ?2 WHERE mutation_id = ?1
                     RETURNING entity_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![mutation_id.to_string(), reason], |r| r.get(0))
                        .optional()
                })
                .at(tx.path)?;
            let entity = entity.ok_or_else(|| Error::not_found("outbox entry", mutation_id))?;
            if let Ok(note) = entity.parse() {
                tx.change.notes.push(note);
            }
            tx.change.outbox = true;
            Ok(())
        })
    }
}
