//! Local counts for the status bar and `outpost status`.

use crate::error::Result;
use crate::model::LocalStatus;
use crate::store::{SqlContext, Store};

impl Store {
    pub fn local_status(&self) -> Result<LocalStatus> {
        let (notes, in_trash, notebooks, pending, failed, conflicts, oldest) =
            self.read(|conn, path| {
                conn.query_row(
                    "SELECT
                       (SELECT count(*) FROM notes WHERE deleted = 0),
                       (SELECT count(*) FROM notes WHERE deleted = 1),
                       (SELECT count(*) FROM notebooks WHERE deleted = 0),
                       (SELECT count(*) FROM outbox WHERE state = 'queued'),
                       (SELECT count(*) FROM outbox WHERE state = 'failed'),
                       (SELECT count(*) FROM conflicts),
                       (SELECT min(created_ms) FROM outbox)",
                    [],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )
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
