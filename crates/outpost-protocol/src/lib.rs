//! Wire types shared by the Outpost client and server (protocol `/v1`).
//!
//! This crate owns the vocabulary both sides speak: identifiers, clock stamps, every field of a
//! record with its rule ([`fields`]), the digests ([`digest`]), and every request and response
//! body ([`api`]). It has no I/O.
//!
//! With the `openapi` feature every wire type also implements `utoipa::ToSchema`, so the server
//! can serve its OpenAPI document; the desktop core leaves the feature off. With `test-util`,
//! tests and benches write mutations with [`test_util::MutationBuilder`].

mod ids;
mod stamp;

pub use ids::{AttachmentId, ClientId, IdError, MutationId, NoteId, NotebookId};
pub use stamp::{MAX_PHYSICAL_MS, STAMP_PATTERN, Stamp, StampError};

/// The protocol version carried by every request.
pub const PROTOCOL_VERSION: u32 = 1;

/// The current schema version of mutations (see DESIGN.md: the server accepts this one and the
/// previous one).
pub const MUTATION_SCHEMA_VERSION: u32 = 1;

/// The largest note body, in bytes, that client and server accept (10 MiB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The largest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 4 * 1024;

pub mod mutation;
pub use mutation::{Entity, FieldChange, Fields};

pub mod api;
pub mod blobs;
pub mod digest;
pub mod fields;

#[cfg(feature = "openapi")]
mod openapi;

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
