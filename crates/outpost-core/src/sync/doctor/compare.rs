//! The doctor's decisions, pure: what this device's sums are, which records differ from the
//! server's and how, and which of this device's fields a repair keeps over the server's copy.
//! No SQLite and no network here (the snapshot and the executor do that), so each decision is
//! tested as a table.

use super::snapshot::{LocalRecord, Snapshot};
use super::{Difference, Problem};
use outpost_protocol::digest::{self, Entry, Key, Summary};
use outpost_protocol::{Entity, FieldChange, Fields, Stamp, fields};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// This device's sums: over everything it holds, and over what it holds without pending
/// changes (what is compared with the server).
pub(super) struct Sums {
    pub(super) all: Summary,
    pub(super) synced: Summary,
}

pub(super) fn summarize(snapshot: &Snapshot) -> Sums {
    let mut all = Summary::new();
    let mut synced = Summary::new();
    for r in &snapshot.records {
        all.add(r.key.entity, &r.key.id, r.digest, r.in_trash);
        if !snapshot.pending.contains(&r.key.id) {
            synced.add(r.key.entity, &r.key.id, r.digest, r.in_trash);
        }
    }
    Sums { all, synced }
}

/// How one record differs, from this device's copy and the server's entry; `None` when they
/// agree (or the server purged what this device no longer has either).
pub(super) fn problem(here: Option<&LocalRecord>, there: Option<&Entry>) -> Option<Problem> {
    match (here, there) {
        (None, Some(e)) if !e.purged => Some(Problem::MissingOnDevice),
        (Some(_), Some(e)) if e.purged => Some(Problem::PurgedOnServer),
        (Some(_), None) => Some(Problem::MissingOnServer),
        (Some(r), Some(_)) if r.damaged => Some(Problem::Differs),
        (Some(r), Some(e)) if e.digest.as_deref() != Some(&digest::to_hex(r.digest)) => {
            Some(Problem::Differs)
        }
        _ => None,
    }
}

/// Every record of the differing `buckets` that differs, from this device's snapshot and the
/// server's entries of those buckets. Records with pending changes are left out: they are
/// expected to differ until the next sync. So are preferences this version does not sync.
pub(super) fn differences(
    snapshot: &Snapshot,
    buckets: &[u8],
    theirs: &[Entry],
) -> Vec<Difference> {
    let wanted: HashSet<u8> = buckets.iter().copied().collect();
    let mine: BTreeMap<&Key, &LocalRecord> = snapshot
        .records
        .iter()
        .filter(|r| wanted.contains(&digest::bucket(r.key.entity, &r.key.id)))
        .map(|r| (&r.key, r))
        .collect();
    let theirs: BTreeMap<Key, &Entry> = theirs
        .iter()
        .map(|e| {
            let key = Key {
                entity: e.entity,
                id: e.id.clone(),
            };
            (key, e)
        })
        .collect();
    let keys: BTreeSet<&Key> = mine.keys().copied().chain(theirs.keys()).collect();
    keys.into_iter()
        .filter(|key| {
            !snapshot.pending.contains(&key.id)
                && (key.entity != Entity::Pref || crate::prefs::is_synced_key(&key.id))
        })
        .filter_map(|key| {
            let here = mine.get(key).copied();
            let there = theirs.get(key).copied();
            Some(Difference {
                entity: key.entity,
                id: key.id.clone(),
                title: here.and_then(|r| r.title.clone()),
                problem: problem(here, there)?,
                device_version: here.and_then(|r| r.version),
                server_version: there.map(|e| e.version.0),
            })
        })
        .collect()
}

/// What a repair writes for a note from the server's copy, and what of it goes back.
#[derive(Debug, PartialEq)]
pub(super) struct NoteRepair {
    /// Every field of the note after the repair.
    pub(super) write: Fields,
    /// The fields this device held newer than the server's copy: kept, and queued again.
    pub(super) resend: Fields,
}

/// A note from the server's copy, field by field: the server's value wins unless this device
/// holds a newer stamp (a change that never reached the server). A field the server's copy
/// lacks counts as its default, never stamped.
pub(super) fn repair_note(mine: Option<&Fields>, theirs: &Fields) -> NoteRepair {
    let mut out = NoteRepair {
        write: Fields::new(),
        resend: Fields::new(),
    };
    for spec in fields::NOTE {
        let name = spec.name;
        let server = theirs.get(name).cloned().unwrap_or(FieldChange {
            value: spec.default_value(),
            stamp: Stamp::ZERO,
        });
        match mine.and_then(|m| m.get(name)) {
            Some(here) if here.stamp > server.stamp => {
                out.write.insert(name.to_owned(), here.clone());
                out.resend.insert(name.to_owned(), here.clone());
            }
            _ => {
                out.write.insert(name.to_owned(), server);
            }
        }
    }
    out
}

/// After a last-writer-wins apply of the server's copy of a notebook or preference: the fields
/// this device held before that the server's copy lacks or holds older (the apply kept them).
pub(super) fn newer_here(before: Option<Fields>, theirs: &Fields) -> Fields {
    before
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, mine)| theirs.get(name).is_none_or(|t| mine.stamp > t.stamp))
        .collect()
}

/// A record only this device has, queued whole: the fields somebody wrote. A field nobody ever
/// wrote (stamp zero) is not sent: its default is what the server assumes anyway, and some
/// defaults are not valid values (a notebook known only by its deletion has no name; found by
/// the simulation, seed 8037).
pub(super) fn written(mut fields: Fields) -> Option<Fields> {
    fields.retain(|_, c| c.stamp != Stamp::ZERO);
    (!fields.is_empty()).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::api::Version;
    use serde_json::{Value, json};

    fn stamp(ms: u64) -> Stamp {
        Stamp {
            physical_ms: ms,
            ..Stamp::ZERO
        }
    }

    fn fields(pairs: &[(&str, Value, u64)]) -> Fields {
        pairs
            .iter()
            .map(|(n, v, ms)| {
                let change = FieldChange {
                    value: v.clone(),
                    stamp: stamp(*ms),
                };
                ((*n).to_owned(), change)
            })
            .collect()
    }

    fn local(entity: Entity, id: &str, digest: u64) -> LocalRecord {
        LocalRecord {
            key: Key {
                entity,
                id: id.into(),
            },
            version: Some(3),
            digest,
            title: Some(format!("{id} here")),
            in_trash: false,
            damaged: false,
        }
    }

    fn entry(entity: Entity, id: &str, digest: Option<u64>, purged: bool) -> Entry {
        Entry {
            entity,
            id: id.into(),
            version: Version(4),
            digest: digest.map(digest::to_hex),
            purged,
        }
    }

    #[test]
    fn each_way_a_record_can_differ_is_named() {
        let mine = local(Entity::Note, "n", 7);
        let damaged = LocalRecord {
            damaged: true,
            ..local(Entity::Note, "n", 7)
        };
        type Case<'a> = (
            &'a str,
            Option<&'a LocalRecord>,
            Option<Entry>,
            Option<Problem>,
        );
        let cases: [Case; 8] = [
            (
                "a cell here cannot be read",
                Some(&damaged),
                Some(entry(Entity::Note, "n", Some(7), false)),
                Some(Problem::Differs),
            ),
            (
                "same sums",
                Some(&mine),
                Some(entry(Entity::Note, "n", Some(7), false)),
                None,
            ),
            (
                "other sums",
                Some(&mine),
                Some(entry(Entity::Note, "n", Some(8), false)),
                Some(Problem::Differs),
            ),
            (
                "only on the server",
                None,
                Some(entry(Entity::Note, "n", Some(7), false)),
                Some(Problem::MissingOnDevice),
            ),
            (
                "only here",
                Some(&mine),
                None,
                Some(Problem::MissingOnServer),
            ),
            (
                "purged there, still here",
                Some(&mine),
                Some(entry(Entity::Note, "n", None, true)),
                Some(Problem::PurgedOnServer),
            ),
            (
                "purged there, gone here too",
                None,
                Some(entry(Entity::Note, "n", None, true)),
                None,
            ),
            ("known to neither", None, None, None),
        ];
        for (case, here, there, expected) in cases {
            assert_eq!(problem(here, there.as_ref()), expected, "{case}");
        }
    }

    #[test]
    fn records_with_pending_changes_and_unsynced_preferences_are_left_out() {
        let ids = ["a", "b", "c", "d"];
        let snapshot = Snapshot {
            records: vec![
                local(Entity::Note, ids[0], 1),
                local(Entity::Note, ids[1], 1),
                local(Entity::Pref, "window.width", 1),
            ],
            pending: HashSet::from(["b".to_owned()]),
            cursor: 9,
        };
        let theirs = vec![
            entry(Entity::Note, ids[0], Some(2), false),
            entry(Entity::Note, ids[1], Some(2), false),
            entry(Entity::Note, ids[2], Some(2), false),
            entry(Entity::Notebook, ids[3], Some(2), false),
        ];
        let all: Vec<u8> = (0..=255).collect();
        let found: Vec<(String, Problem)> = differences(&snapshot, &all, &theirs)
            .into_iter()
            .map(|d| (d.id, d.problem))
            .collect();
        assert_eq!(
            found,
            vec![
                ("a".to_owned(), Problem::Differs),
                ("c".to_owned(), Problem::MissingOnDevice),
                ("d".to_owned(), Problem::MissingOnDevice),
            ],
            "b has a pending edit; window.width stays on this device"
        );
        let a = differences(&snapshot, &all, &theirs).remove(0);
        assert_eq!(
            (a.title.as_deref(), a.device_version, a.server_version),
            (Some("a here"), Some(3), Some(4)),
            "a difference names the record as the user knows it"
        );
    }

    #[test]
    fn only_the_buckets_that_differ_are_looked_at() {
        let here = local(Entity::Note, "a", 1);
        let bucket = digest::bucket(Entity::Note, "a");
        let snapshot = Snapshot {
            records: vec![here],
            pending: HashSet::new(),
            cursor: 0,
        };
        let other: Vec<u8> = (0..=255).filter(|b| *b != bucket).collect();
        assert!(differences(&snapshot, &other, &[]).is_empty());
        assert_eq!(differences(&snapshot, &[bucket], &[]).len(), 1);
    }

    #[test]
    fn sums_leave_pending_records_out_of_what_is_compared_but_not_out_of_the_counts() {
        let snapshot = Snapshot {
            records: vec![local(Entity::Note, "a", 1), local(Entity::Note, "b", 2)],
            pending: HashSet::from(["b".to_owned()]),
            cursor: 0,
        };
        let sums = summarize(&snapshot);
        assert_eq!(sums.all.counts.notes, 2);
        assert_eq!(sums.synced.counts.notes, 1);
    }

    #[test]
    fn a_note_repair_takes_the_server_except_where_this_device_is_newer() {
        let theirs = fields(&[
            ("title", json!("Pump 4"), 10),
            ("body", json!("Seal replaced"), 30),
        ]);
        let mine = fields(&[
            ("title", json!("Pump 4 (renamed)"), 20),
            ("body", json!("Seal leaking"), 10),
            ("pinned", json!(true), 5),
        ]);
        type Case<'a> = (
            &'a str,
            Option<&'a Fields>,
            &'a [(&'a str, Value)],
            &'a [&'a str],
        );
        let cases: [Case; 2] = [
            (
                "newer title kept and sent; server body; pinned newer here (server lacks it)",
                Some(&mine),
                &[
                    ("title", json!("Pump 4 (renamed)")),
                    ("body", json!("Seal replaced")),
                    ("pinned", json!(true)),
                    ("archived", json!(false)),
                ],
                &["pinned", "title"],
            ),
            (
                "nothing here: the server's copy, the rest at defaults",
                None,
                &[
                    ("title", json!("Pump 4")),
                    ("body", json!("Seal replaced")),
                    ("pinned", json!(false)),
                    ("tags", json!([])),
                ],
                &[],
            ),
        ];
        for (case, mine, expect_written, expect_resent) in cases {
            let plan = repair_note(mine, &theirs);
            assert_eq!(plan.write.len(), fields::NOTE.len(), "{case}: every field");
            for (name, value) in expect_written {
                assert_eq!(&plan.write[*name].value, value, "{case}: {name}");
            }
            let resent: Vec<&str> = plan.resend.keys().map(String::as_str).collect();
            assert_eq!(resent, *expect_resent, "{case}");
        }
    }

    #[test]
    fn after_a_last_writer_wins_repair_only_newer_fields_go_back() {
        let theirs = fields(&[("name", json!("Site B"), 20)]);
        let cases: [(&str, Option<Fields>, &[&str]); 4] = [
            ("nothing here", None, &[]),
            (
                "older here",
                Some(fields(&[("name", json!("Site A"), 10)])),
                &[],
            ),
            (
                "same stamp",
                Some(fields(&[("name", json!("Site B"), 20)])),
                &[],
            ),
            (
                "newer here, and a field the server lacks",
                Some(fields(&[
                    ("name", json!("Site C"), 30),
                    ("deleted", json!(false), 1),
                ])),
                &["deleted", "name"],
            ),
        ];
        for (case, before, expected) in cases {
            let newer = newer_here(before, &theirs);
            assert_eq!(
                newer.keys().map(String::as_str).collect::<Vec<_>>(),
                *expected,
                "{case}"
            );
        }
    }

    #[test]
    fn a_record_queued_whole_leaves_out_what_nobody_wrote() {
        // Seed 8037: a notebook known only by its deletion has an unwritten, empty name.
        let deleted_only = fields(&[("name", json!(""), 0), ("deleted", json!(true), 12)]);
        let sent = written(deleted_only).expect("the deletion goes");
        assert_eq!(sent.keys().collect::<Vec<_>>(), vec!["deleted"]);
        assert_eq!(written(fields(&[("name", json!(""), 0)])), None);
    }
}
