//! Planning a push: a pure function from (the batch, what the database holds now) to (the reply
//! for each mutation, the records to write, the new counters, how the account's digest moves). Both storage backends load the
//! inputs, call [`plan_push`] and save its output in one transaction, so the rules live here
//! once and are unit tested without a database.
//!
//! The rules (DESIGN.md): a number at or below the device's last handled number is a duplicate
//! (S1); every other outcome, rejection included, advances it; small fields merge last-writer-
//! wins by stamp; a body edited on a base older than the server's last body change is a
//! conflict; an edit wins over a delete; stamps too far ahead are clamped, never refused.

use outpost_protocol::api::{
    Cursor, MAX_STAMP_SKEW_MS, Mutation, MutationNumber, MutationResult, Outcome, Record, Version,
    codes,
};
use outpost_protocol::mutation::names;
use outpost_protocol::{Entity, FieldChange, Fields, MUTATION_SCHEMA_VERSION, Stamp};
use outpost_protocol::{digest, fields};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The oldest mutation schema this server still applies (DESIGN.md: current and previous).
pub const MIN_SCHEMA_VERSION: u32 = 1;
/// How many past replies per device are kept, so a retry gets "the same reply as the first time".
pub const KEPT_RESULTS: i64 = 10_000;

/// A record as stored: the protocol record plus what only the server needs.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    pub version: Version,
    /// The version at which the body last changed (conflicts are about the body only).
    pub body_version: Version,
    pub cursor: Cursor,
    pub purged: bool,
    pub fields: Fields,
}

pub type Key = (Entity, String);

/// What the backend loaded for the batch, inside the transaction that will save the plan.
#[derive(Debug, Default)]
pub struct Loaded {
    pub last_number: MutationNumber,
    pub account_cursor: Cursor,
    /// The current records of the entities the batch touches (absent: new).
    pub records: HashMap<Key, StoredRecord>,
    /// Earlier replies to this device, by number, for duplicates.
    pub results: HashMap<i64, (outpost_protocol::MutationId, Outcome)>,
    /// The account's chain of commits at `account_cursor` (see [`next_chain`]).
    pub chain: String,
}

/// What to save, and what to answer.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub results: Vec<MutationResult>,
    /// The final state of each record the batch changed.
    pub writes: Vec<(Key, StoredRecord)>,
    /// Replies to remember for later duplicates (not duplicates themselves).
    pub remember: Vec<MutationResult>,
    pub last_number: MutationNumber,
    pub account_cursor: Cursor,
    /// Each commit's cursor and the chain there, in order; the last is the account's new chain.
    pub commits: Vec<(Cursor, String)>,
    /// How the account's digest moves, bucket by bucket (one entry per bucket touched).
    pub digest: Vec<DigestDelta>,
}

/// What to add to one bucket of an account's running digest (see `outpost_protocol::digest`).
/// The wrapping 64-bit sum is kept as two sums of 32-bit halves, so that plain SQL addition on
/// either backend never overflows (below 2^31 records a bucket) and the sum is
/// `(hi << 32) + lo`, wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestDelta {
    pub bucket: u8,
    pub count: i64,
    pub hi: i64,
    pub lo: i64,
    pub notes: i64,
    pub notes_in_trash: i64,
    pub notebooks: i64,
    pub prefs: i64,
    pub attachments: i64,
    pub tombstones: i64,
}

impl DigestDelta {
    /// What one stored record adds to its bucket.
    pub fn of(entity: Entity, id: &str, record: &StoredRecord) -> DigestDelta {
        let mut d = DigestDelta {
            bucket: digest::bucket(entity, id),
            ..DigestDelta::default()
        };
        if record.purged {
            d.tombstones = 1;
            return d;
        }
        let sum = digest::record_digest(entity, id, record.version, &record.fields);
        d.count = 1;
        d.hi = i64::try_from(sum >> 32).unwrap_or(0);
        d.lo = i64::try_from(sum & 0xffff_ffff).unwrap_or(0);
        match entity {
            Entity::Note
                if record
                    .fields
                    .get("deleted")
                    .is_some_and(|c| c.value.as_bool() == Some(true)) =>
            {
                d.notes_in_trash = 1;
            }
            Entity::Note => d.notes = 1,
            Entity::Notebook => d.notebooks = 1,
            Entity::Pref => d.prefs = 1,
            Entity::Attachment => d.attachments = 1,
        }
        d
    }

    /// Adds (`sign` 1) or takes away (-1) another delta of the same bucket.
    pub fn add(&mut self, other: &DigestDelta, sign: i64) {
        self.count += sign * other.count;
        self.hi += sign * other.hi;
        self.lo += sign * other.lo;
        self.notes += sign * other.notes;
        self.notes_in_trash += sign * other.notes_in_trash;
        self.notebooks += sign * other.notebooks;
        self.prefs += sign * other.prefs;
        self.attachments += sign * other.attachments;
        self.tombstones += sign * other.tombstones;
    }

    /// The bucket's wrapping sum from its two half sums.
    pub fn sum(hi: i64, lo: i64) -> u64 {
        (hi as u64).wrapping_shl(32).wrapping_add(lo as u64)
    }
}

/// The digest deltas of some writes: each new record added, the record it replaces (if any)
/// taken away, summed per bucket.
pub fn digest_deltas<'a>(
    writes: impl IntoIterator<Item = (&'a Key, Option<&'a StoredRecord>, &'a StoredRecord)>,
) -> Vec<DigestDelta> {
    let mut by_bucket: std::collections::BTreeMap<u8, DigestDelta> = Default::default();
    for ((entity, id), before, after) in writes {
        let new = DigestDelta::of(*entity, id, after);
        let slot = by_bucket.entry(new.bucket).or_insert(DigestDelta {
            bucket: new.bucket,
            ..DigestDelta::default()
        });
        slot.add(&new, 1);
        if let Some(before) = before {
            slot.add(&DigestDelta::of(*entity, id, before), -1);
        }
    }
    by_bucket
        .into_values()
        .filter(|d| {
            *d != DigestDelta {
                bucket: d.bucket,
                ..DigestDelta::default()
            }
        })
        .collect()
}

/// The chain of an account's commits after one more: a hash of the chain before it, the
/// commit's cursor and the mutation it applied (32 hex digits). Two histories that agree at a
/// cursor have the same chain there; a server restored from an older copy that has committed
/// other changes since has another one, which a device's pull then finds out (see
/// `codes::HISTORY_CHANGED`). The same mutation committed again at the same place after a
/// restore gives the same chain: that history is the one the device knew.
pub fn next_chain(
    previous: &str,
    cursor: Cursor,
    mutation: outpost_protocol::MutationId,
) -> String {
    use sha2::{Digest as _, Sha256};
    let hash = Sha256::new()
        .chain_update(previous.as_bytes())
        .chain_update([0])
        .chain_update(cursor.0.to_be_bytes())
        .chain_update(mutation.to_string().as_bytes())
        .finalize();
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A batch the server refuses as a whole (nothing is stored).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("mutation numbers must increase within a push: {0} follows {1}")]
    OutOfOrder(MutationNumber, MutationNumber),
    #[error(
        "this app is too old for the server: mutation schema {0} is no longer supported (oldest: {MIN_SCHEMA_VERSION}); update Outpost"
    )]
    ClientTooOld(u32),
    #[error("mutation numbers start at 1, got {0}")]
    BadNumber(MutationNumber),
}

/// Checks what can be checked before touching the database.
pub fn check_batch(mutations: &[Mutation]) -> Result<(), BatchError> {
    // A number below 1 would always count as a duplicate and vanish without a trace.
    if let Some(m) = mutations.iter().find(|m| m.number.0 < 1) {
        return Err(BatchError::BadNumber(m.number));
    }
    for pair in mutations.windows(2) {
        if pair[1].number <= pair[0].number {
            return Err(BatchError::OutOfOrder(pair[1].number, pair[0].number));
        }
    }
    if let Some(old) = mutations
        .iter()
        .find(|m| m.schema_version < MIN_SCHEMA_VERSION)
    {
        return Err(BatchError::ClientTooOld(old.schema_version));
    }
    Ok(())
}

/// Plans `mutations` (already checked by [`check_batch`]) against `loaded`.
pub fn plan_push(mutations: Vec<Mutation>, mut loaded: Loaded, now_ms: u64) -> Plan {
    let mut plan = Plan {
        last_number: loaded.last_number,
        account_cursor: loaded.account_cursor,
        ..Plan::default()
    };
    let mut changed: Vec<Key> = Vec::new();
    // `changed` as a set: a push of 500 mutations looked each key up in the list (quadratic).
    let mut seen: HashSet<Key> = HashSet::new();
    // The stored record each changed key had before this batch: the digest moves from it.
    let mut originals: Vec<Option<StoredRecord>> = Vec::new();
    let mut chain = std::mem::take(&mut loaded.chain);
    for m in mutations {
        let (id, number) = (m.id, m.number);
        if number <= plan.last_number {
            let outcome = match loaded.results.get(&number.0) {
                Some((first_id, first)) if *first_id == id => Outcome::Duplicate {
                    first: Some(Box::new(first.clone())),
                },
                // The number was used by another mutation: this one was never applied. Saying
                // "duplicate" would drop it silently; a rejection shows it to the user.
                Some(_) => Outcome::Rejected {
                    code: codes::NUMBER_REUSED.into(),
                    message: format!(
                        "mutation number {number} was already used by another mutation of this device"
                    ),
                },
                None => Outcome::Duplicate { first: None },
            };
            plan.results.push(MutationResult {
                id,
                number,
                outcome,
            });
            continue;
        }
        plan.last_number = number;
        let key = (m.entity, m.entity_id.clone());
        let outcome = match apply(&m, loaded.records.get(&key), now_ms) {
            Applied::Write(mut record, clamped_skew_ms) => {
                plan.account_cursor = Cursor(plan.account_cursor.0 + 1);
                record.cursor = plan.account_cursor;
                chain = next_chain(&chain, plan.account_cursor, id);
                plan.commits.push((plan.account_cursor, chain.clone()));
                let outcome = Outcome::Applied {
                    version: record.version,
                    cursor: record.cursor,
                    clamped_skew_ms,
                };
                let previous = loaded.records.insert(key.clone(), record);
                if seen.insert(key.clone()) {
                    changed.push(key);
                    originals.push(previous);
                }
                outcome
            }
            Applied::Unchanged(current) => Outcome::Applied {
                version: current.version,
                cursor: current.cursor,
                clamped_skew_ms: None,
            },
            Applied::Conflict(current) => Outcome::Conflict {
                current: to_record(&key, &current),
            },
            Applied::Rejected(code, message) => Outcome::Rejected {
                code: code.into(),
                message,
            },
        };
        let result = MutationResult {
            id,
            number,
            outcome,
        };
        plan.remember.push(result.clone());
        plan.results.push(result);
    }
    let (writes, originals): (Vec<(Key, StoredRecord)>, Vec<Option<StoredRecord>>) = changed
        .into_iter()
        .zip(originals)
        .filter_map(|(k, before)| loaded.records.remove(&k).map(|r| ((k, r), before)))
        .unzip();
    plan.digest = digest_deltas(
        writes
            .iter()
            .zip(&originals)
            .map(|((k, after), before)| (k, before.as_ref(), after)),
    );
    plan.writes = writes;
    plan
}

pub fn to_record(key: &Key, r: &StoredRecord) -> Record {
    Record {
        entity: key.0,
        id: key.1.clone(),
        version: r.version,
        cursor: r.cursor,
        purged: r.purged,
        fields: r.fields.clone(),
    }
}

enum Applied {
    Write(StoredRecord, Option<u64>),
    Unchanged(StoredRecord),
    Conflict(StoredRecord),
    Rejected(&'static str, String),
}

fn reject(code: &'static str, message: impl Into<String>) -> Applied {
    Applied::Rejected(code, message.into())
}

fn apply(m: &Mutation, current: Option<&StoredRecord>, now_ms: u64) -> Applied {
    if m.schema_version > MUTATION_SCHEMA_VERSION {
        return reject(
            codes::UNKNOWN_MUTATION,
            format!(
                "mutation schema {} is newer than this server knows ({MUTATION_SCHEMA_VERSION}); retry it once the server is updated",
                m.schema_version
            ),
        );
    }
    let expected_entity = match m.name.as_str() {
        names::NOTE_PUT | names::NOTE_PURGE => Entity::Note,
        names::NOTEBOOK_PUT => Entity::Notebook,
        names::PREF_PUT => Entity::Pref,
        names::ATTACHMENT_PUT => Entity::Attachment,
        other => {
            return reject(
                codes::UNKNOWN_MUTATION,
                format!("unknown mutation {other:?}"),
            );
        }
    };
    if m.entity != expected_entity {
        return reject(
            codes::UNKNOWN_MUTATION,
            format!(
                "{} applies to a {}, not a {}",
                m.name,
                expected_entity.as_str(),
                m.entity.as_str()
            ),
        );
    }
    if let Err(message) = check_entity_id(m.entity, &m.entity_id) {
        return reject(codes::INVALID_FIELD, message);
    }
    if m.name == names::NOTE_PURGE {
        return purge(current);
    }
    if m.fields.is_empty() {
        return reject(codes::INVALID_FIELD, "a put must change at least one field");
    }
    for (name, change) in &m.fields {
        if let Err((code, message)) = check_field(m.entity, name, &change.value) {
            return reject(code, message);
        }
    }
    let (fields, clamped) = clamp_stamps(&m.fields, now_ms);
    put(m, current, fields, clamped)
}

fn purge(current: Option<&StoredRecord>) -> Applied {
    match current {
        Some(c) if c.purged => Applied::Unchanged(c.clone()),
        _ => {
            let version = Version(current.map_or(0, |c| c.version.0) + 1);
            Applied::Write(
                StoredRecord {
                    version,
                    body_version: version,
                    cursor: Cursor(0),
                    purged: true,
                    // A tombstone keeps no text: deleting for good means it.
                    fields: Fields::new(),
                },
                None,
            )
        }
    }
}

/// A record written whole at `version`, its body too: a first write, or a note written again
/// after it was deleted for good.
fn whole(version: Version, fields: Fields, clamped: Option<u64>) -> Applied {
    let record = StoredRecord {
        version,
        body_version: version,
        cursor: Cursor(0),
        purged: false,
        fields,
    };
    Applied::Write(record, clamped)
}

fn put(
    m: &Mutation,
    current: Option<&StoredRecord>,
    incoming: Fields,
    clamped: Option<u64>,
) -> Applied {
    let base = m.base_version.unwrap_or_default();
    let Some(current) = current else {
        return whole(Version(1), incoming, clamped);
    };
    if current.purged {
        // Deleted for good on another device. An edit made without knowing that wins, but the
        // device must resend the whole note: answer with the tombstone so it can.
        if base < current.version {
            return Applied::Conflict(current.clone());
        }
        return whole(Version(current.version.0 + 1), incoming, clamped);
    }
    if let Some(body) = incoming.get("body") {
        let same_text = current.fields.get("body").map(|f| &f.value) == Some(&body.value);
        if current.body_version > base && !same_text {
            return Applied::Conflict(current.clone());
        }
    }

    let mut fields = current.fields.clone();
    let mut body_changed = false;
    let mut any = false;
    // The same body text from another writer (a merge that came out as the server's text, or
    // the same edit made on two devices): the text stays, and the record takes the newer of the
    // two stamps under a new version, so that every replica, the sender included, pulls the
    // same record (the sync doctor compares stamps too).
    let mut restamped = false;
    if let (Some(old), Some(change)) = (fields.get("body"), incoming.get("body"))
        && old.value == change.value
        && old.stamp != change.stamp
    {
        let stamp = old.stamp.max(change.stamp);
        fields.insert(
            "body".into(),
            FieldChange {
                value: change.value.clone(),
                stamp,
            },
        );
        restamped = true;
    }
    for (name, change) in &incoming {
        // Ordered by the stamp as the device wrote it: clamping moves a fast clock's stamps
        // to the same limit, and between two edits clamped to one millisecond the counters
        // alone would decide, so the earlier edit could win (found by the simulation, seed
        // 6009: a fast device's notebook deletion lost to its creation, sent in one batch).
        // A clamped stamp is never above the one written, so this only keeps a device's
        // later edit over its own earlier one.
        let written = m.fields.get(name).map_or(change.stamp, |c| c.stamp);
        let wins = match fields.get(name) {
            None => true,
            // The body's order is the server's (base version, checked above), not the clock.
            Some(old) if name == "body" => old.value != change.value,
            Some(old) => written > old.stamp,
        };
        if wins {
            // The body keeps its writer's stamp (even an older one): its node tells a device
            // whether the server's body is its own last push or someone else's edit.
            body_changed |= name == "body";
            fields.insert(name.clone(), change.clone());
            any = true;
        }
    }
    // Edit against delete: a content edit made without setting `deleted` brings a note back
    // from the Trash, with a stamp newer than the delete's so every replica agrees.
    if m.entity == Entity::Note && !incoming.contains_key("deleted") {
        let content_edit = incoming.keys().any(|k| k != "pinned" && k != "archived");
        if let Some(deleted) = fields
            .get("deleted")
            .filter(|d| d.value == Value::Bool(true))
            && content_edit
            && any
        {
            let newest = incoming
                .values()
                .map(|c| c.stamp)
                .max()
                .unwrap_or(Stamp::ZERO);
            let stamp = successor(deleted.stamp.max(newest));
            fields.insert(
                "deleted".into(),
                FieldChange {
                    value: Value::Bool(false),
                    stamp,
                },
            );
        }
    }
    if !any && !restamped {
        return Applied::Unchanged(current.clone());
    }
    let version = Version(current.version.0 + 1);
    Applied::Write(
        StoredRecord {
            version,
            body_version: if body_changed {
                version
            } else {
                current.body_version
            },
            cursor: current.cursor,
            purged: false,
            fields,
        },
        clamped,
    )
}

fn successor(s: Stamp) -> Stamp {
    match s.counter.checked_add(1) {
        Some(counter) => Stamp { counter, ..s },
        None => Stamp {
            physical_ms: s.physical_ms + 1,
            counter: 0,
            ..s
        },
    }
}

/// Stamps more than [`MAX_STAMP_SKEW_MS`] ahead of the server's clock are pulled back to that
/// limit: a device whose clock is a day fast must not win every conflict for a day.
fn clamp_stamps(fields: &Fields, now_ms: u64) -> (Fields, Option<u64>) {
    let limit = now_ms.saturating_add(MAX_STAMP_SKEW_MS);
    let mut skew = None;
    let fields = fields
        .iter()
        .map(|(name, change)| {
            let mut change = change.clone();
            if change.stamp.physical_ms > limit {
                skew = Some(skew.unwrap_or(0).max(change.stamp.physical_ms - now_ms));
                change.stamp.physical_ms = limit;
            }
            (name.clone(), change)
        })
        .collect();
    (fields, skew)
}

fn check_entity_id(entity: Entity, id: &str) -> Result<(), String> {
    match entity {
        // Canonical text only (lowercase, hyphenated): one UUID spelled two ways must not
        // become two records.
        Entity::Note | Entity::Notebook | Entity::Attachment => match uuid::Uuid::parse_str(id) {
            Ok(u) if u.hyphenated().to_string() == id => Ok(()),
            _ => Err(format!(
                "{} id must be a UUID in lowercase hyphenated form, got {:?}",
                entity.as_str(),
                truncate(id)
            )),
        },
        Entity::Pref => {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
                });
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "preference key must be 1 to 64 of a-z 0-9 . _, got {:?}",
                    truncate(id)
                ))
            }
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

type FieldError = (&'static str, String);

fn check_field(entity: Entity, name: &str, value: &Value) -> Result<(), FieldError> {
    fields::check(entity, name, value).map_err(|p| match p {
        fields::Problem::Invalid(m) => (codes::INVALID_FIELD, m),
        fields::Problem::TooLarge(m) => (codes::TOO_LARGE, m),
    })
}

#[cfg(test)]
mod tests;
