//! The shape of a mutation's payload: which entity, and the changed fields with their stamps.
//! The client's outbox stores exactly this, so what is queued is what is sent.

use crate::Stamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a mutation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Note,
    Notebook,
    Pref,
    /// A file or photo in a note: the record naming a blob (see [`crate::blobs`]).
    Attachment,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Note => "note",
            Entity::Notebook => "notebook",
            Entity::Pref => "pref",
            Entity::Attachment => "attachment",
        }
    }

    /// The name of the mutation that sets fields of a record of this entity.
    pub fn put_name(self) -> &'static str {
        match self {
            Entity::Note => names::NOTE_PUT,
            Entity::Notebook => names::NOTEBOOK_PUT,
            Entity::Pref => names::PREF_PUT,
            Entity::Attachment => names::ATTACHMENT_PUT,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "note" => Some(Entity::Note),
            "notebook" => Some(Entity::Notebook),
            "pref" => Some(Entity::Pref),
            "attachment" => Some(Entity::Attachment),
            _ => None,
        }
    }
}

/// Mutation names: the operation, versioned by [`crate::MUTATION_SCHEMA_VERSION`].
pub mod names {
    /// Set some fields of a note (creating it if new). Soft delete is `deleted: true`.
    pub const NOTE_PUT: &str = "note.put";
    /// Delete a note for good (from Trash): the server keeps a tombstone.
    pub const NOTE_PURGE: &str = "note.purge";
    /// Set some fields of a notebook (creating it if new).
    pub const NOTEBOOK_PUT: &str = "notebook.put";
    /// Set a synced preference.
    pub const PREF_PUT: &str = "pref.put";
    /// Set some fields of an attachment record (creating it if new). Removing one from its
    /// note is `deleted: true`; its blob goes when nothing refers to it any more.
    pub const ATTACHMENT_PUT: &str = "attachment.put";
}

/// One field's new value and the clock stamp of the edit (field-level last-writer-wins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    /// Any JSON value; which ones a field takes depends on the entity and the field name.
    pub value: serde_json::Value,
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub stamp: Stamp,
}

/// The changed fields of one mutation, by field name.
pub type Fields = BTreeMap<String, FieldChange>;
