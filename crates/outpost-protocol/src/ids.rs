//! Typed identifiers. All are UUIDs; new ones are UUIDv7 so that they sort by creation time,
//! which keeps SQLite's primary-key B-trees append-mostly.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A string that is not a UUID where one was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} must be a UUID, got {value:?}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| IdError {
                    kind: $kind,
                    value: s.to_owned(),
                })
            }
        }
    };
}

id_type!(
    /// A note's id.
    NoteId,
    "note id"
);
id_type!(
    /// A notebook's id.
    NotebookId,
    "notebook id"
);
id_type!(
    /// A mutation's id: the idempotency key. It never changes across retries (invariant L3).
    MutationId,
    "mutation id"
);
id_type!(
    /// An attachment's id: the record that names a blob in a note.
    AttachmentId,
    "attachment id"
);
id_type!(
    /// A device's id: one per local database, the node of its clock stamps.
    ClientId,
    "client id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = NoteId::new();
        assert_eq!(id.to_string().parse::<NoteId>(), Ok(id));
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<NoteId>(&json).expect("parse"), id);
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = NoteId::new();
        let b = NoteId::new();
        assert!(a < b, "UUIDv7 ids must sort by creation time");
    }

    #[test]
    fn a_bad_id_names_what_was_expected() {
        let err = "not-a-uuid".parse::<NoteId>().expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "note id must be a UUID, got \"not-a-uuid\""
        );
    }
}
