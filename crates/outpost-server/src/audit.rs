//! `outpost-server audit`: is each note on the server counted once?
//!
//! A tester (or the randomized simulation) runs it after a session of bad networks to prove
//! that nothing was doubled. Per account it counts the notes and names:
//!
//! - a note id stored more than once (in one account, or in two accounts: S3);
//! - a mutation handled more than once: the same mutation id under two mutation numbers of a
//!   device, which the idempotency check (S1) must make impossible. Only the replies the server
//!   keeps for duplicates can be checked (the last [`crate::plan::KEPT_RESULTS`] per device);
//! - notes with the same content (title and body) under different ids: a create applied twice
//!   under a new id would look like that. Notes with neither a title nor a body are left out (a
//!   user may well have several empty notes), and so are notes deleted for good.
//!
//! The backends only load rows ([`AuditRows`], through the [`Storage`] trait) and
//! [`Audit::from_rows`] decides, so both backends answer alike and the rules are tested without
//! a database. Which database to open is the caller's (`main.rs`): this module knows no backend.

use crate::storage::{AuditRows, Result, Storage, StorageError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A mutation id that the server handled more than once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reapplied {
    pub mutation_id: String,
    /// (client id, mutation number) of each time.
    pub handled_as: Vec<(String, i64)>,
}

/// Notes of one account with the same title and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SameContent {
    pub title: String,
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountAudit {
    pub account_id: String,
    pub email: String,
    /// Notes not in the Trash (archived ones included).
    pub notes: u64,
    pub in_trash: u64,
    /// Notes deleted for good (the server keeps a tombstone).
    pub tombstones: u64,
    pub ids_stored_twice: Vec<String>,
    pub mutations_handled_twice: Vec<Reapplied>,
    pub same_content: Vec<SameContent>,
}

impl AccountAudit {
    pub fn clean(&self) -> bool {
        self.ids_stored_twice.is_empty()
            && self.mutations_handled_twice.is_empty()
            && self.same_content.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub accounts: Vec<AccountAudit>,
    /// Note ids stored in more than one account.
    pub ids_in_two_accounts: Vec<String>,
    /// Nothing doubled anywhere.
    pub clean: bool,
}

fn text_field(fields: &serde_json::Value, name: &str) -> String {
    fields
        .get(name)
        .and_then(|f| f.get("value"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

impl Audit {
    /// The audit of what `storage` holds, whichever backend it is.
    pub async fn of(storage: &dyn Storage) -> Result<Audit> {
        Audit::from_rows(storage.audit_rows().await?)
    }

    /// The audit of what a backend loaded (see the module doc for the rules).
    pub fn from_rows(rows: AuditRows) -> Result<Audit> {
        let mut accounts: BTreeMap<String, AccountAudit> = rows
            .accounts
            .into_iter()
            .map(|(id, email)| {
                let audit = AccountAudit {
                    account_id: id.clone(),
                    email,
                    notes: 0,
                    in_trash: 0,
                    tombstones: 0,
                    ids_stored_twice: Vec::new(),
                    mutations_handled_twice: Vec::new(),
                    same_content: Vec::new(),
                };
                (id, audit)
            })
            .collect();
        let mut stored: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut content: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        for note in rows.notes {
            *stored
                .entry((note.account_id.clone(), note.id.clone()))
                .or_default() += 1;
            owners
                .entry(note.id.clone())
                .or_default()
                .insert(note.account_id.clone());
            let Some(account) = accounts.get_mut(&note.account_id) else {
                return Err(StorageError::Internal(format!(
                    "note {} belongs to account {}, which does not exist",
                    note.id, note.account_id
                )));
            };
            if note.purged {
                account.tombstones += 1;
                continue;
            }
            let fields: serde_json::Value = serde_json::from_str(&note.fields).map_err(|e| {
                StorageError::Internal(format!("stored fields of {}: {e}", note.id))
            })?;
            let deleted = fields
                .get("deleted")
                .and_then(|f| f.get("value"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            if deleted {
                account.in_trash += 1;
            } else {
                account.notes += 1;
            }
            let (title, body) = (text_field(&fields, "title"), text_field(&fields, "body"));
            if !(title.is_empty() && body.is_empty()) {
                content
                    .entry((note.account_id, title, body))
                    .or_default()
                    .push(note.id);
            }
        }
        for ((account_id, id), times) in stored {
            if times > 1
                && let Some(a) = accounts.get_mut(&account_id)
            {
                a.ids_stored_twice.push(id);
            }
        }
        for ((account_id, title, _), mut ids) in content {
            if ids.len() > 1
                && let Some(a) = accounts.get_mut(&account_id)
            {
                ids.sort();
                a.same_content.push(SameContent { title, ids });
            }
        }
        let mut handled: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
        for r in rows.results {
            handled
                .entry((r.account_id, r.mutation_id))
                .or_default()
                .push((r.client_id, r.number));
        }
        for ((account_id, mutation_id), mut handled_as) in handled {
            if handled_as.len() > 1
                && let Some(a) = accounts.get_mut(&account_id)
            {
                handled_as.sort();
                a.mutations_handled_twice.push(Reapplied {
                    mutation_id,
                    handled_as,
                });
            }
        }
        let ids_in_two_accounts: Vec<String> = owners
            .into_iter()
            .filter(|(_, accounts)| accounts.len() > 1)
            .map(|(id, _)| id)
            .collect();
        let mut accounts: Vec<AccountAudit> = accounts.into_values().collect();
        accounts.sort_by(|a, b| a.email.cmp(&b.email));
        let clean = ids_in_two_accounts.is_empty() && accounts.iter().all(AccountAudit::clean);
        Ok(Audit {
            accounts,
            ids_in_two_accounts,
            clean,
        })
    }

    /// What a tester reads: one line per account, then one per problem.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for a in &self.accounts {
            let _ = writeln!(
                out,
                "{} ({}): {} notes, {} in the Trash, {} deleted for good: {}",
                a.email,
                a.account_id,
                a.notes,
                a.in_trash,
                a.tombstones,
                if a.clean() {
                    "each note once"
                } else {
                    "DOUBLED"
                }
            );
            for id in &a.ids_stored_twice {
                let _ = writeln!(out, "  note {id} is stored more than once");
            }
            for r in &a.mutations_handled_twice {
                let times: Vec<String> = r
                    .handled_as
                    .iter()
                    .map(|(client, n)| format!("number {n} of device {client}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "  mutation {} was handled {} times: {}",
                    r.mutation_id,
                    r.handled_as.len(),
                    times.join(", ")
                );
            }
            for s in &a.same_content {
                let _ = writeln!(
                    out,
                    "  {} notes have the same title and body ({:?}): {}",
                    s.ids.len(),
                    s.title.chars().take(60).collect::<String>(),
                    s.ids.join(", ")
                );
            }
        }
        for id in &self.ids_in_two_accounts {
            let _ = writeln!(out, "note {id} is stored in more than one account");
        }
        let _ = writeln!(
            out,
            "{}",
            if self.clean {
                "each note counted once"
            } else {
                "something is doubled"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{AuditNoteRow, AuditResultRow};
    use serde_json::json;

    fn note(account: &str, id: &str, title: &str, body: &str, deleted: bool) -> AuditNoteRow {
        let fields = json!({
            "title": {"value": title, "stamp": "x"},
            "body": {"value": body, "stamp": "x"},
            "deleted": {"value": deleted, "stamp": "x"},
        });
        AuditNoteRow {
            account_id: account.into(),
            id: id.into(),
            purged: false,
            fields: fields.to_string(),
        }
    }

    fn result(account: &str, client: &str, number: i64, mutation: &str) -> AuditResultRow {
        AuditResultRow {
            account_id: account.into(),
            client_id: client.into(),
            number,
            mutation_id: mutation.into(),
        }
    }

    fn rows() -> AuditRows {
        AuditRows {
            accounts: vec![
                ("a".into(), "ann@x.org".into()),
                ("b".into(), "bo@x.org".into()),
            ],
            notes: vec![
                note("a", "n1", "Pump 4", "seal", false),
                note("a", "n2", "Pump 5", "seal", true),
                note("a", "n3", "", "", false),
                note("a", "n4", "", "", false),
                // The same text in another account is someone else's note.
                note("b", "n5", "Pump 4", "seal", false),
                AuditNoteRow {
                    purged: true,
                    fields: "{}".into(),
                    ..note("b", "n6", "", "", false)
                },
            ],
            results: vec![
                result("a", "c1", 1, "m1"),
                result("a", "c1", 2, "m2"),
                result("b", "c2", 1, "m3"),
            ],
        }
    }

    #[test]
    fn a_clean_server_counts_each_note_once() {
        let audit = Audit::from_rows(rows()).expect("audit");
        assert!(audit.clean, "{}", audit.to_text());
        let a = &audit.accounts[0];
        assert_eq!((a.notes, a.in_trash, a.tombstones), (3, 1, 0));
        let b = &audit.accounts[1];
        assert_eq!((b.notes, b.in_trash, b.tombstones), (1, 0, 1));
        assert!(audit.to_text().ends_with("each note counted once\n"));
    }

    #[test]
    fn a_doubled_create_a_reapplied_mutation_and_a_shared_id_are_named() {
        let mut rows = rows();
        // A create applied again under a new id: same title and body.
        rows.notes.push(note("a", "n7", "Pump 4", "seal", false));
        // A mutation handled as new twice (under two numbers).
        rows.results.push(result("a", "c1", 3, "m1"));
        // A note id in two accounts (S3).
        rows.notes.push(note("b", "n1", "other", "", false));
        let audit = Audit::from_rows(rows).expect("audit");
        assert!(!audit.clean);
        let a = &audit.accounts[0];
        assert_eq!(
            a.same_content,
            vec![SameContent {
                title: "Pump 4".into(),
                ids: vec!["n1".into(), "n7".into()],
            }]
        );
        assert_eq!(
            a.mutations_handled_twice,
            vec![Reapplied {
                mutation_id: "m1".into(),
                handled_as: vec![("c1".into(), 1), ("c1".into(), 3)],
            }]
        );
        assert_eq!(audit.ids_in_two_accounts, vec!["n1".to_owned()]);
        let text = audit.to_text();
        assert!(text.contains("DOUBLED"), "{text}");
        assert!(text.contains("mutation m1 was handled 2 times"), "{text}");
        assert!(text.ends_with("something is doubled\n"), "{text}");
    }

    #[test]
    fn an_id_stored_twice_in_one_account_is_named() {
        let mut rows = rows();
        rows.notes.push(note("a", "n2", "Pump 5 again", "", false));
        let audit = Audit::from_rows(rows).expect("audit");
        assert_eq!(audit.accounts[0].ids_stored_twice, vec!["n2".to_owned()]);
        assert!(!audit.clean);
    }
}
