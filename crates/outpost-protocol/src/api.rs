//! Request and response bodies of protocol `/v1`, and its headers and limits. The server and the
//! client both compile against these, so the two cannot drift; `docs/protocol.md` describes them
//! in prose and the server serves them as OpenAPI at `/v1/openapi.json`.

#[cfg(feature = "openapi")]
use crate::FieldChange;
use crate::{ClientId, Entity, Fields, MutationId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every request names the device that sends it...
pub const HEADER_CLIENT_ID: &str = "x-outpost-client";
/// ...and the protocol version it speaks.
pub const HEADER_PROTOCOL: &str = "x-outpost-protocol";

/// Every reply names the server history it comes from (see [`History`]).
pub const HEADER_HISTORY: &str = "x-outpost-history";

/// Which history of commits a server's database holds: the database's identity (made when it
/// was created) and its epoch (one more at every `outpost-server restore`). A cursor means
/// something only within one history, so a device that meets another one reconciles instead of
/// pulling from its old cursor. On the wire (`x-outpost-history`): `<uuid>.<epoch>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct History {
    pub database: Uuid,
    pub epoch: u64,
}

impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database.hyphenated(), self.epoch)
    }
}

impl std::str::FromStr for History {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a server history (<uuid>.<epoch>)");
        let (database, epoch) = s.split_once('.').ok_or_else(bad)?;
        Ok(History {
            database: Uuid::parse_str(database).map_err(|_| bad())?,
            epoch: epoch.parse().map_err(|_| bad())?,
        })
    }
}

/// The most mutations one push may carry.
pub const MAX_PUSH_MUTATIONS: usize = 500;
/// The largest request body the server reads (a push with a 10 MiB note fits).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// The most records one pull page returns; `limit` above it is refused.
pub const MAX_PULL_LIMIT: u32 = 5000;
/// How far ahead of the server's clock a stamp may be before the server clamps it.
pub const MAX_STAMP_SKEW_MS: u64 = 60_000;

macro_rules! number_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

number_type!(
    /// A position in an account's commit order. Per account, monotonic and without gaps.
    Cursor
);
number_type!(
    /// A record's version: it increases on every change the server applies to it.
    Version
);
number_type!(
    /// A device's mutation number: increasing (gaps allowed) in the order the device sends.
    MutationNumber
);

/// An account's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub Uuid);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// `POST /v1/accounts` and `POST /v1/sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Compared without case and surrounding spaces; at most 254 bytes.
    #[cfg_attr(feature = "openapi", schema(examples("ann@example.org")))]
    pub email: String,
    /// 8 to 1024 characters when registering.
    #[cfg_attr(feature = "openapi", schema(examples("correct horse battery")))]
    pub password: String,
    /// The device asking; its token is bound to it.
    pub client_id: ClientId,
    /// Shown in the account's device list (the server keeps the first 100 characters).
    #[serde(default)]
    pub device_name: Option<String>,
}

/// A device token: sent as `Authorization: Bearer <token>` on every sync request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub account_id: AccountId,
    /// `opt_` and 64 hex digits. The server stores only its SHA-256 hash.
    #[cfg_attr(
        feature = "openapi",
        schema(examples("opt_5f0c8d2e6b1a4c3d9e7f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d"))
    )]
    pub token: String,
}

/// One change a device made: the idempotency key, the device's number for it, and the fields
/// with their stamps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    pub id: MutationId,
    pub number: MutationNumber,
    /// What the mutation does: `note.put`, `note.purge`, `notebook.put` or `pref.put` (see
    /// `mutation::names`). Another name is rejected with `unknown_mutation`.
    #[cfg_attr(
        feature = "openapi",
        schema(examples("note.put", "note.purge", "notebook.put", "pref.put"))
    )]
    pub name: String,
    /// The schema version of `name` the device wrote it in (`MUTATION_SCHEMA_VERSION`).
    #[cfg_attr(feature = "openapi", schema(examples(1)))]
    pub schema_version: u32,
    pub entity: Entity,
    /// A UUID for a note or a notebook; a preference key (1 to 64 of `a-z 0-9 . _`) for a pref.
    #[cfg_attr(
        feature = "openapi",
        schema(examples("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"))
    )]
    pub entity_id: String,
    /// The changed fields by name, each with its new value and stamp.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, FieldChange>))]
    pub fields: Fields,
    /// The version of the record this change was made on (for the body's three-way merge).
    #[serde(default)]
    pub base_version: Option<Version>,
}

/// `POST /v1/sync/push`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// In increasing `number` order; 1 to 500 (`MAX_PUSH_MUTATIONS`).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 500))]
    pub mutations: Vec<Mutation>,
}

/// The reply to `POST /v1/sync/push`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    /// One per mutation, in the order sent.
    pub results: Vec<MutationResult>,
    /// The highest mutation number the server has handled for this device.
    pub last_mutation_number: MutationNumber,
    /// The server's clock when it answered, in milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

/// What happened to one mutation, named by its id and number as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MutationResult {
    pub id: MutationId,
    pub number: MutationNumber,
    pub outcome: Outcome,
}

/// What the server did with one mutation. Every outcome acknowledges the mutation: the device
/// removes it from its outbox (a conflict or a rejection is then handled locally).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Committed: the record's new version and the cursor of the commit.
    Applied {
        version: Version,
        cursor: Cursor,
        /// Set when some stamp was too far ahead of the server's clock and was clamped: how
        /// far ahead it was. The app shows it as clock skew.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clamped_skew_ms: Option<u64>,
    },
    /// Already handled earlier (a retry): nothing changed now. `first` is the reply the first
    /// time, when the server still has it.
    Duplicate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(no_recursion))]
        first: Option<Box<Outcome>>,
    },
    /// The body was edited on the server since `base_version` (or the record was purged since):
    /// nothing was applied; here is the current record for a three-way merge.
    Conflict { current: Record },
    /// Refused for good (bad field, too large, unknown entity...): nothing was applied.
    Rejected { code: String, message: String },
}

impl Outcome {
    /// The outcome's `status` on the wire (`applied`, `duplicate`, `conflict`, `rejected`).
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

/// The server's current state of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub entity: Entity,
    pub id: String,
    pub version: Version,
    /// The cursor of the commit that made this version.
    pub cursor: Cursor,
    /// Deleted for good: a tombstone with no fields.
    #[serde(default)]
    pub purged: bool,
    /// Every field the record has, each with the value and stamp that won.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, FieldChange>))]
    pub fields: Fields,
}

/// `GET /v1/sync/pull?cursor=C&limit=N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    #[serde(default)]
    pub cursor: Cursor,
    /// The `next_chain` the device got with `cursor`: the server checks that the commit at
    /// `cursor` is the one the device saw there, and answers `history_changed` if not.
    #[serde(default)]
    pub chain: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The reply to `GET /v1/sync/pull`: one page of changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullResponse {
    /// Records changed after the cursor, in commit order; each at its newest version.
    pub records: Vec<Record>,
    /// Pass as `cursor` next time.
    pub next_cursor: Cursor,
    /// The server's chain of commits at `next_cursor` (32 hex digits): pass it as `chain` with
    /// that cursor. Absent at cursor 0 and for commits made before the server kept chains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_chain: Option<String>,
    pub has_more: bool,
    /// Records still to come after this page (for a progress bar).
    pub remaining: u64,
    /// The highest mutation number the server has handled for this device.
    pub last_mutation_number: MutationNumber,
    /// The server's clock when it answered, in milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

/// `GET /v1/sync/events`: the data of each server-sent event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Poke {
    pub cursor: Cursor,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`.
    #[cfg_attr(feature = "openapi", schema(examples("ok")))]
    pub status: String,
    /// The server's version.
    #[cfg_attr(feature = "openapi", schema(examples("0.1.0")))]
    pub version: String,
    /// The protocol version it speaks (`PROTOCOL_VERSION`).
    #[cfg_attr(feature = "openapi", schema(examples(1)))]
    pub protocol: u32,
    /// `sqlite` or `postgres`.
    #[cfg_attr(feature = "openapi", schema(examples("sqlite", "postgres")))]
    pub storage: String,
    /// The server's clock, in milliseconds since the Unix epoch: a device measures its own
    /// clock against it before it sends what it wrote offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(examples(1_733_382_405_123_u64)))]
    pub server_time_ms: Option<u64>,
}

/// The body of every 4xx and 5xx reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable and machine-readable: one of `api::codes`.
    #[cfg_attr(feature = "openapi", schema(examples("invalid_json")))]
    pub code: String,
    /// For people: what was wrong, and what to do about it. Never empty.
    pub message: String,
}

/// Stable error codes of [`ErrorBody`].
pub mod codes {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const INVALID_JSON: &str = "invalid_json";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const BATCH_TOO_LARGE: &str = "batch_too_large";
    pub const EMPTY_BATCH: &str = "empty_batch";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not_found";
    pub const EMAIL_TAKEN: &str = "email_taken";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const CURSOR_FROM_THE_FUTURE: &str = "cursor_from_the_future";
    pub const RESET_REQUIRED: &str = "reset_required";
    /// The commit at the device's cursor is not the one it saw there: the server's history was
    /// rewound (a restored copy) and has moved on since. The device reconciles.
    pub const HISTORY_CHANGED: &str = "history_changed";
    pub const CLIENT_TOO_OLD: &str = "client_too_old";
    pub const UNSUPPORTED_PROTOCOL: &str = "unsupported_protocol";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const INTERNAL: &str = "internal";
    pub const UNAVAILABLE: &str = "unavailable";
    // Rejection codes of a single mutation.
    pub const INVALID_FIELD: &str = "invalid_field";
    pub const UNKNOWN_MUTATION: &str = "unknown_mutation";
    pub const TOO_LARGE: &str = "too_large";
    /// The mutation's number was used before by another mutation of the same device.
    pub const NUMBER_REUSED: &str = "number_reused";

    /// Every code a reply body ([`super::ErrorBody`]) can carry.
    pub const ERRORS: &[&str] = &[
        BAD_REQUEST,
        INVALID_JSON,
        PAYLOAD_TOO_LARGE,
        BATCH_TOO_LARGE,
        EMPTY_BATCH,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        EMAIL_TAKEN,
        RATE_LIMITED,
        CURSOR_FROM_THE_FUTURE,
        RESET_REQUIRED,
        HISTORY_CHANGED,
        CLIENT_TOO_OLD,
        UNSUPPORTED_PROTOCOL,
        UNSUPPORTED_MEDIA_TYPE,
        INTERNAL,
        UNAVAILABLE,
    ];

    /// Every code a `rejected` outcome of one mutation can carry.
    pub const REJECTIONS: &[&str] = &[INVALID_FIELD, UNKNOWN_MUTATION, TOO_LARGE, NUMBER_REUSED];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stamp;

    #[test]
    fn outcomes_are_tagged_by_status() {
        let applied = Outcome::Applied {
            version: Version(3),
            cursor: Cursor(17),
            clamped_skew_ms: None,
        };
        assert_eq!(
            serde_json::to_value(&applied).expect("json"),
            serde_json::json!({"status": "applied", "version": 3, "cursor": 17})
        );
        let dup = Outcome::Duplicate {
            first: Some(Box::new(applied)),
        };
        let back: Outcome =
            serde_json::from_str(&serde_json::to_string(&dup).expect("json")).expect("parse");
        assert_eq!(back, dup);
    }

    #[test]
    fn a_history_reads_back_and_garbage_is_refused() {
        let h = History {
            database: Uuid::now_v7(),
            epoch: 3,
        };
        assert_eq!(h.to_string().parse::<History>(), Ok(h));
        for bad in [
            "",
            "x.1",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.-1",
        ] {
            assert!(bad.parse::<History>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<PushRequest>(r#"{"mutations": [], "extra": 1}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn a_mutation_round_trips() {
        let m = Mutation::put(Entity::Note, crate::NoteId::new(), 9)
            .field("title", "x", Stamp::ZERO)
            .base(Some(2))
            .build();
        let json = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<Mutation>(&json).expect("parse"), m);
    }
}
