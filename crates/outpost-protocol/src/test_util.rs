//! One way to write a mutation in a test or a bench (feature `test-util`), so that a field added
//! to [`Mutation`] is added here once, not in every test that sends one.

use crate::api::{Mutation, MutationNumber, Version};
use crate::{Entity, FieldChange, Fields, MUTATION_SCHEMA_VERSION, MutationId, Stamp};
use serde_json::Value;

/// The fields of one edit: every pair at `stamp`.
pub fn fields(pairs: &[(&str, Value)], stamp: Stamp) -> Fields {
    pairs
        .iter()
        .map(|(name, value)| {
            let change = FieldChange {
                value: value.clone(),
                stamp,
            };
            ((*name).to_owned(), change)
        })
        .collect()
}

/// Text that is no stamp: what the parser and the pattern of the OpenAPI document must refuse.
pub const MALFORMED_STAMPS: [&str; 9] = [
    "",
    "0-0-0",
    "00000000000g-00000000-00000000000000000000000000000000",
    "00000000000A-00000000-00000000000000000000000000000000",
    "000000000000-00000000-00000000000000000000000000000000-1",
    "+00000000000-00000000-00000000000000000000000000000000",
    "000000000000-00000000-0000000000000000000000000000000",
    "000000000000000000000-00000000000000000000000000000000",
    "000000000000-00000000-00000000-0000-0000-0000-000000000000",
];

/// A mutation being written: start with [`Mutation::put`], end with [`MutationBuilder::build`].
#[derive(Clone, Debug)]
pub struct MutationBuilder(Mutation);

impl Mutation {
    /// The `put` of record `id` of `entity`, as mutation `number` of its device, with a fresh
    /// idempotency key, the current schema version, no fields yet and no base version.
    pub fn put(entity: Entity, id: impl ToString, number: i64) -> MutationBuilder {
        let name = entity.put_name();
        MutationBuilder(Mutation {
            id: MutationId::new(),
            number: MutationNumber(number),
            name: name.to_owned(),
            schema_version: MUTATION_SCHEMA_VERSION,
            entity,
            entity_id: id.to_string(),
            fields: Fields::new(),
            base_version: None,
        })
    }
}

impl MutationBuilder {
    /// Sets one field.
    pub fn field(mut self, name: &str, value: impl Into<Value>, stamp: Stamp) -> Self {
        let change = FieldChange {
            value: value.into(),
            stamp,
        };
        self.0.fields.insert(name.to_owned(), change);
        self
    }

    /// Sets fields, all at one stamp (as one edit writes them).
    pub fn fields(mut self, pairs: &[(&str, Value)], stamp: Stamp) -> Self {
        self.0.fields.extend(fields(pairs, stamp));
        self
    }

    /// Replaces the fields with `fields`, each at its own stamp.
    pub fn with_fields(mut self, fields: Fields) -> Self {
        self.0.fields = fields;
        self
    }

    /// The version the change was made on (`None`: a record new to the server).
    pub fn base(mut self, base: Option<i64>) -> Self {
        self.0.base_version = base.map(Version);
        self
    }

    /// Another name than the entity's `put` (a purge, or one the server does not know).
    pub fn named(mut self, name: &str) -> Self {
        self.0.name = name.to_owned();
        self
    }

    /// Another schema version than the current one.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.0.schema_version = version;
        self
    }

    pub fn build(self) -> Mutation {
        self.0
    }
}
