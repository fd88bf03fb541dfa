//! The sync doctor's vocabulary: how device and server each sum up an account so the two can be
//! compared without sending it. Both sides hash every record the same way (this module), spread
//! the hashes over [`BUCKETS`] buckets by id, and compare bucket sums; only the entries of the
//! buckets that differ cross the network, so a check of 100,000 notes costs a few kilobytes
//! when all is well.
//!
//! A record's digest covers the fields this protocol version knows, each normalised (a field the
//! record never had counts as its default value with the zero stamp, which is how the device
//! stores it), and the version (not for preferences, which a device keeps without one). So two sides that agree on every value, stamp and version agree
//! on the digest, and anything else shows.

use crate::api::{Cursor, Version};
use crate::{Entity, Fields, Stamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// How many buckets an account's records are spread over.
pub const BUCKETS: usize = 256;

/// The most bucket numbers one entries request may ask for (all of them).
pub const MAX_ENTRY_BUCKETS: usize = BUCKETS;

/// The most records one fetch request may ask for.
pub const MAX_FETCH_KEYS: usize = 1000;

/// The bucket a record falls in: by its kind and id only, so it never moves.
pub fn bucket(entity: Entity, id: &str) -> u8 {
    let hash = Sha256::new()
        .chain_update(entity.as_str())
        .chain_update([0])
        .chain_update(id)
        .finalize();
    hash[0]
}

/// The digest of one live record (see the module docs). Purged records have none: a device
/// holds nothing for them.
pub fn record_digest(entity: Entity, id: &str, version: Version, fields: &Fields) -> u64 {
    let mut hasher = Sha256::new()
        .chain_update(entity.as_str())
        .chain_update([0])
        .chain_update(id)
        .chain_update([0]);
    // A device keeps no version for a preference (last writer wins by stamp, nothing to merge
    // against), so a preference is compared by value and stamp alone.
    if entity != Entity::Pref {
        hasher.update(version.0.to_be_bytes());
    }
    for field in crate::fields::of(entity) {
        hasher.update(field.name.as_bytes());
        hasher.update([0]);
        // serde_json writes objects with sorted keys and no spaces: one spelling per value
        // (`Value`'s `to_string`, written straight into the hash).
        let stamp = match fields.get(field.name) {
            Some(change) => {
                write_json(&mut hasher, &change.value);
                change.stamp
            }
            None => {
                write_json(&mut hasher, &field.default_value());
                Stamp::ZERO
            }
        };
        hasher.update([0]);
        hasher.update(stamp.to_text());
        hasher.update([0]);
    }
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

fn write_json(hasher: &mut Sha256, value: &Value) {
    // Writing into a hash cannot fail, and a `Value` always serialises.
    let _ = serde_json::to_writer(hasher, value);
}

/// A digest on the wire: 16 hex digits (a JSON number would lose bits in JavaScript).
pub fn to_hex(digest: u64) -> String {
    format!("{digest:016x}")
}

/// The sums of an account's live records, bucket by bucket, as of one cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub counts: Counts,
    pub buckets: Vec<Bucket>,
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

impl Summary {
    pub fn new() -> Summary {
        Summary {
            counts: Counts::default(),
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }

    /// Adds a live record. `in_trash` only feeds the counts.
    pub fn add(&mut self, entity: Entity, id: &str, digest: u64, in_trash: bool) {
        let b = &mut self.buckets[usize::from(bucket(entity, id))];
        b.count += 1;
        b.sum = b.sum.wrapping_add(digest);
        match entity {
            Entity::Note if in_trash => self.counts.notes_in_trash += 1,
            Entity::Note => self.counts.notes += 1,
            Entity::Notebook => self.counts.notebooks += 1,
            Entity::Pref => self.counts.prefs += 1,
            Entity::Attachment => self.counts.attachments += 1,
        }
    }

    /// The buckets whose count or sum differ from `other`'s.
    pub fn differing(&self, other: &[BucketDigest]) -> Vec<u8> {
        (0..BUCKETS)
            .filter(|&i| {
                let mine = self.buckets[i];
                other.get(i).is_none_or(|theirs| {
                    theirs.count != mine.count || theirs.sum != to_hex(mine.sum)
                })
            })
            .filter_map(|i| u8::try_from(i).ok())
            .collect()
    }

    pub fn to_wire(&self) -> Vec<BucketDigest> {
        self.buckets
            .iter()
            .map(|b| BucketDigest {
                count: b.count,
                sum: to_hex(b.sum),
            })
            .collect()
    }
}

/// One bucket's count and sum (wrapping) of digests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub count: u64,
    pub sum: u64,
}

/// How many of each an account holds (live records; notes in Trash apart).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub notes: u64,
    pub notes_in_trash: u64,
    pub notebooks: u64,
    pub prefs: u64,
    /// Attachment records (removed ones too: their blobs may still be fetched until collected).
    #[serde(default)]
    pub attachments: u64,
}

/// One bucket on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BucketDigest {
    pub count: u64,
    /// The wrapping sum of the bucket's record digests, 16 hex digits.
    pub sum: String,
}

/// The reply to `GET /v1/sync/digest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DigestResponse {
    /// The account's newest cursor when the sums were taken: a device at this cursor with
    /// nothing pending should match exactly.
    pub cursor: Cursor,
    pub counts: Counts,
    /// Records deleted for good that the server still remembers.
    pub tombstones: u64,
    /// [`BUCKETS`] buckets, in bucket order.
    pub buckets: Vec<BucketDigest>,
}

/// `POST /v1/sync/digest/entries`: the records of some buckets, one line each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EntriesRequest {
    /// Bucket numbers (0 to 255), at most [`MAX_ENTRY_BUCKETS`].
    pub buckets: Vec<u8>,
}

/// One record of a bucket. A purged record (a tombstone) has no digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub entity: Entity,
    pub id: String,
    pub version: Version,
    pub purged: bool,
    /// 16 hex digits; absent for a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The reply to `POST /v1/sync/digest/entries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EntriesResponse {
    pub cursor: Cursor,
    pub entries: Vec<Entry>,
}

/// Which record: its kind and id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub entity: Entity,
    pub id: String,
}

/// `POST /v1/sync/records`: the current records of some keys, for a repair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// At most [`MAX_FETCH_KEYS`].
    pub keys: Vec<Key>,
}

/// The reply to `POST /v1/sync/records`: the records that exist (tombstones included), each at
/// its newest version; keys the account does not have are left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FetchResponse {
    pub cursor: Cursor,
    pub records: Vec<crate::api::Record>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldChange;
    use serde_json::json;

    fn stamp(ms: u64) -> Stamp {
        format!("{ms:012x}-00000000-{:032x}", 10)
            .parse()
            .expect("stamp")
    }

    #[test]
    fn a_missing_field_counts_as_its_default_with_the_zero_stamp() {
        let mut explicit = Fields::new();
        explicit.insert(
            "pinned".into(),
            FieldChange {
                value: Value::Bool(false),
                stamp: Stamp::ZERO,
            },
        );
        let a = record_digest(Entity::Note, "n1", Version(1), &Fields::new());
        let b = record_digest(Entity::Note, "n1", Version(1), &explicit);
        assert_eq!(a, b);
    }

    #[test]
    fn a_digest_is_the_one_servers_and_devices_already_hold() {
        // The spelling the first version hashed (values and stamps as text), which running
        // sums on servers and devices were made with: the digest must not move.
        fn as_first_written(entity: Entity, id: &str, version: Version, fields: &Fields) -> u64 {
            let mut hasher = Sha256::new()
                .chain_update(entity.as_str())
                .chain_update([0])
                .chain_update(id)
                .chain_update([0]);
            if entity != Entity::Pref {
                hasher.update(version.0.to_be_bytes());
            }
            for field in crate::fields::of(entity) {
                let (value, stamp) = match fields.get(field.name) {
                    Some(change) => (change.value.clone(), change.stamp),
                    None => (field.default_value(), Stamp::ZERO),
                };
                for part in [field.name.to_string(), value.to_string(), stamp.to_string()] {
                    hasher.update(part.as_bytes());
                    hasher.update([0]);
                }
            }
            let hash = hasher.finalize();
            u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
        }
        let stamp: Stamp = "0193496c8a7b-0000002a-00000000000000000000000000abcdef"
            .parse()
            .expect("stamp");
        let mut note = Fields::new();
        for (name, value) in [
            ("title", json!("Pump \"B\"\tvalve ✓")),
            ("body", json!("line 1\nline 2 \u{1F527} </script>")),
            ("tags", json!(["site 4", "urgent"])),
            ("pinned", json!(true)),
        ] {
            note.insert(name.into(), FieldChange { value, stamp });
        }
        let mut pref = Fields::new();
        pref.insert(
            "value".into(),
            FieldChange {
                value: json!({"z": [1, 2.5, null], "a": {"b": "c"}}),
                stamp,
            },
        );
        for (entity, fields) in [
            (Entity::Note, &note),
            (Entity::Notebook, &Fields::new()),
            (Entity::Pref, &pref),
        ] {
            assert_eq!(
                record_digest(entity, "a1", Version(7), fields),
                as_first_written(entity, "a1", Version(7), fields),
                "{entity:?}"
            );
        }
        assert_eq!(
            to_hex(record_digest(Entity::Note, "a1", Version(7), &note)),
            "346a47b65140df0e"
        );
    }

    #[test]
    fn any_value_stamp_version_or_id_change_shows() {
        let mut fields = Fields::new();
        fields.insert(
            "title".into(),
            FieldChange {
                value: Value::String("Plan".into()),
                stamp: stamp(5),
            },
        );
        let base = record_digest(Entity::Note, "n1", Version(2), &fields);
        let mut other_value = fields.clone();
        other_value.insert(
            "title".into(),
            FieldChange {
                value: Value::String("Plan!".into()),
                stamp: stamp(5),
            },
        );
        let mut other_stamp = fields.clone();
        other_stamp.insert(
            "title".into(),
            FieldChange {
                value: Value::String("Plan".into()),
                stamp: stamp(6),
            },
        );
        for other in [
            record_digest(Entity::Note, "n1", Version(3), &fields),
            record_digest(Entity::Note, "n2", Version(2), &fields),
            record_digest(Entity::Notebook, "n1", Version(2), &fields),
            record_digest(Entity::Note, "n1", Version(2), &other_value),
            record_digest(Entity::Note, "n1", Version(2), &other_stamp),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn sums_do_not_depend_on_order_and_name_the_buckets_that_differ() {
        let mut a = Summary::new();
        let mut b = Summary::new();
        a.add(Entity::Note, "x", 1, false);
        a.add(Entity::Note, "y", 2, true);
        b.add(Entity::Note, "y", 2, true);
        b.add(Entity::Note, "x", 1, false);
        assert!(a.differing(&b.to_wire()).is_empty());
        assert_eq!(a.counts.notes, 1);
        assert_eq!(a.counts.notes_in_trash, 1);
        b.add(Entity::Note, "z", 3, false);
        assert_eq!(a.differing(&b.to_wire()), vec![bucket(Entity::Note, "z")]);
        // A short or missing bucket list counts as different everywhere it is missing.
        assert_eq!(a.differing(&[]).len(), BUCKETS);
    }
}
