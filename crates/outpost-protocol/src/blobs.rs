//! Attachments' bytes on the wire (DESIGN.md, "Attachments"). A blob is named by the SHA-256 of
//! its bytes and moves apart from the records: up in chunks the server acknowledges, so an
//! upload cut short resumes at the last acknowledged byte, and down with HTTP ranges.
//!
//! - `GET /v1/blobs`: the server's [`Limits`] and what the account uses.
//! - `POST /v1/blobs/{sha256}` with [`BlobStart`]: begins or resumes an upload; the reply
//!   ([`BlobStatus`]) says how many bytes the server already holds (all of them: nothing to send).
//! - `PATCH /v1/blobs/{sha256}?offset=N` with a chunk of raw bytes (and its SHA-256 in
//!   [`HEADER_CHUNK_SHA256`]): appends it if `N` is where the upload stands, else `409
//!   offset_mismatch` and the device asks again. The chunk that completes the blob is checked
//!   against the blob's name before any device can fetch it.
//! - `GET /v1/blobs/{sha256}`: the bytes, with `Range: bytes=N-` to resume a download.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The SHA-256 of one chunk, in hex, on every `PATCH`.
pub const HEADER_CHUNK_SHA256: &str = "x-outpost-chunk-sha256";

/// The largest chunk a server takes in one `PATCH`.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// A blob's name: the SHA-256 of its bytes in 64 lowercase hex digits. Never a path: it is
/// checked before it names a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]{64}$"))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
#[serde(try_from = "String", into = "String")]
pub struct BlobHash(String);

/// A string that is not a blob name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a blob is named by 64 lowercase hex digits (its SHA-256), not {0:?}")]
pub struct BlobHashError(pub String);

impl BlobHash {
    pub fn parse(s: &str) -> Result<BlobHash, BlobHashError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(BlobHash(s.to_owned()))
        } else {
            Err(BlobHashError(s.chars().take(80).collect()))
        }
    }

    /// The name of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        use sha2::Digest as _;
        BlobHash::from_digest(&sha2::Sha256::digest(bytes))
    }

    /// From a finished SHA-256 (32 bytes).
    pub fn from_digest(digest: &[u8]) -> BlobHash {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in digest {
            let _ = write!(s, "{b:02x}");
        }
        BlobHash(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for BlobHash {
    type Err = BlobHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BlobHash::parse(s)
    }
}

impl TryFrom<String> for BlobHash {
    type Error = BlobHashError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        BlobHash::parse(&s)
    }
}

impl From<BlobHash> for String {
    fn from(h: BlobHash) -> String {
        h.0
    }
}

/// `POST /v1/blobs/{sha256}`: the device is about to send a blob of `size` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlobStart {
    pub size: u64,
}

/// Where a blob stands on the server: the reply to `POST` and to every `PATCH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlobStatus {
    pub sha256: BlobHash,
    pub size: u64,
    /// Bytes the server holds, safely on its disk: the next `PATCH` starts here.
    pub received: u64,
    /// Every byte arrived and matched the name: any device of the account can fetch it.
    pub complete: bool,
    /// Chunks the server accepted for this upload.
    #[serde(default)]
    pub chunks: u64,
    /// Chunks it received but could not keep (cut short, at the wrong offset, or damaged):
    /// what a flaky link cost.
    #[serde(default)]
    pub chunks_lost: u64,
}

/// `GET /v1/blobs`: what this server takes, so the app can say so before attaching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest blob this server takes.
    pub max_blob_bytes: u64,
    /// The chunk size the device should send (at most [`MAX_CHUNK_BYTES`]).
    pub chunk_bytes: u64,
    /// The bytes of blobs this account may keep, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// The bytes of blobs (complete and in progress) this account keeps now.
    pub used_bytes: u64,
}

/// Error codes of the blob endpoints (with those of `api::codes`).
pub mod codes {
    /// `PATCH` at another offset than where the upload stands: ask with `POST` and go on there.
    pub const OFFSET_MISMATCH: &str = "offset_mismatch";
    /// A chunk whose bytes do not match its `x-outpost-chunk-sha256`: send it again.
    pub const CHUNK_DAMAGED: &str = "chunk_damaged";
    /// The whole blob does not match its name: the server dropped it; the device checks its
    /// own copy and starts over.
    pub const BLOB_MISMATCH: &str = "blob_mismatch";
    /// Larger than the server's `max_blob_bytes`.
    pub const BLOB_TOO_LARGE: &str = "blob_too_large";
    /// The account's quota would be exceeded: the message says what is left.
    pub const OVER_QUOTA: &str = "over_quota";
    /// The server's disk is full: try again later.
    pub const SERVER_FULL: &str = "server_full";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_named_by_its_sha256_and_nothing_else_names_one() {
        let h = BlobHash::of(b"pump");
        assert_eq!(h.as_str().len(), 64);
        assert_eq!(BlobHash::parse(h.as_str()), Ok(h.clone()));
        let json = serde_json::to_string(&h).expect("json");
        assert_eq!(serde_json::from_str::<BlobHash>(&json).expect("parse"), h);
        for bad in [
            "",
            "../x",
            &"A".repeat(64),
            &"a".repeat(63),
            &"g".repeat(64),
        ] {
            assert!(BlobHash::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<BlobHash>("\"../../etc/passwd\"").is_err());
    }
}
