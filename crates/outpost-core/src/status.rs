//! Local counts for the status bar and `outpost status`.

use crate::error::Result;
use crate::error::SqlContext;
use crate::model::LocalStatus;
use crate::store::Store;

/// Every count reads an index, never the rows: the engine re-reads the status after each queued
/// edit, and the outbox holds whole bodies.
pub(crate) const STATUS_SQL: &str = "SELECT
       (SELECT count(*) FROM notes WHERE deleted = 0),
       (SELECT count(*) FROM notes WHERE deleted = 1),
       (SELECT count(*) FROM notebooks WHERE deleted = 0),
       (SELECT count(*) FROM outbox WHERE state = 'queued'),
       (SELECT count(*) FROM outbox WHERE state = 'failed'),
       (SELECT count(*) FROM conflicts),
       (SELECT min(m) FROM (
            SELECT (SELECT created_ms FROM outbox WHERE state = 'queued' ORDER BY seq LIMIT 1) AS m
            UNION ALL
            SELECT (SELECT created_ms FROM outbox WHERE state = 'failed' ORDER BY seq LIMIT 1)))";

impl Store {
    pub fn local_status(&self) -> Result<LocalStatus> {
        let (notes, in_trash, notebooks, pending, failed, conflicts, oldest) =
            self.read(|conn, path| {
                conn.prepare_cached(STATUS_SQL)
                    .at(path)?
                    .query_row([], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    })
                    .at(path)
            })?;
        Ok(LocalStatus {
            client_id: self.client_id().to_string(),
            data_dir: self.data_dir().display().to_string(),
            notes,
            in_trash,
            notebooks,
            pending,
            failed,
            conflicts,
            oldest_pending_ms: oldest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::STATUS_SQL;
    use crate::NoteDraft;
    use crate::error::SqlContext;
    use crate::store::test_support::temp_store;

    /// "Waiting since" in the status bar is the oldest entry, failed or queued.
    #[test]
    fn the_oldest_waiting_entry_counts_failed_ones() {
        let (_dir, store) = temp_store();
        assert_eq!(
            store.local_status().expect("status").oldest_pending_ms,
            None
        );
        let first = store.create_note(NoteDraft::default()).expect("first");
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.create_note(NoteDraft::default()).expect("second");
        let entries = store.outbox(10).expect("outbox");
        let failing = entries
            .iter()
            .find(|e| e.entity_id == first.id.to_string())
            .expect("first entry");
        store
            .mark_failed(failing.mutation_id, "refused by the server")
            .expect("fail");

        let status = store.local_status().expect("status");
        assert_eq!((status.pending, status.failed), (1, 1));
        assert_eq!(status.oldest_pending_ms, Some(failing.created_ms));
        assert!(entries.iter().all(|e| e.created_ms >= failing.created_ms));
    }

    /// The status is read after every queued edit: it must not scan the outbox (bodies and
    /// all; 40 ms with 100,000 entries waiting, the reader held meanwhile).
    #[test]
    fn the_status_reads_only_indexes() {
        let (_dir, store) = temp_store();
        let plan: Vec<String> = store
            .read(|conn, path| {
                let mut stmt = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {STATUS_SQL}"))
                    .at(path)?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(3))
                    .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
                    .at(path)?;
                Ok(rows)
            })
            .expect("plan");
        // Notebooks and conflicts are a handful of rows; notes and the outbox are not.
        let scans: Vec<&String> = plan
            .iter()
            .filter(|step| step.starts_with("SCAN outbox") || step.starts_with("SCAN notes"))
            .filter(|step| !step.contains("INDEX"))
            .collect();
        assert!(scans.is_empty(), "full scans in {plan:#?}");
        assert!(
            plan.iter().any(|s| s.contains("outbox_by_state")),
            "{plan:#?}"
        );
    }
}
