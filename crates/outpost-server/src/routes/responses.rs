//! The error replies several endpoints share, declared once for their `#[utoipa::path]`
//! attributes: a refusal made by shared code (an extractor, storage) is then worded the same
//! wherever it can happen, and an endpoint gets all of them by naming one type. These types
//! only describe; the replies themselves are [`crate::error::ApiError`]s.
//!
//! In `responses(...)` list a shared type before the endpoint's own tuples: a tuple for the
//! same status replaces the shared reply (utoipa inserts them in order), which is how an
//! endpoint with more to say about a status, say push's 403, says it. The reply every endpoint
//! can give, 500 `internal`, is added to every operation by [`crate::openapi::Protocol`].

use outpost_protocol::api::ErrorBody;
use utoipa::IntoResponses;

/// Storage answers 503 both to a busy database and to one that cannot write (see `error.rs`);
/// either way nothing was stored.
const UNAVAILABLE: &str = "`unavailable`: the database is busy; nothing was stored, retry later.";

/// What every endpoint that takes a device token ([`crate::auth::Auth`]) can answer: the
/// extractor refuses the headers or the token before the handler runs, and looks the token up
/// in storage, which can be busy.
#[derive(IntoResponses)]
pub enum AuthErrors {
    #[response(
        status = 400,
        description = "`bad_request`: the `x-outpost-protocol` or `x-outpost-client` header is missing, or the client id is not a UUID; `unsupported_protocol`: the server does not speak the protocol version in `x-outpost-protocol`."
    )]
    BadHeaders(ErrorBody),
    #[response(
        status = 401,
        description = "`unauthorized`: no device token was sent, or it is not valid (unknown or signed out): sign in again."
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "`forbidden`: the token belongs to another device than `x-outpost-client`, or the account no longer exists."
    )]
    Forbidden(ErrorBody),
    #[response(status = 503, description = UNAVAILABLE)]
    Unavailable(ErrorBody),
}

/// What the JSON extractor ([`super::ApiJson`]) refuses before the handler reads the body.
/// (`invalid_json` is a 400 too, but which type the body must be is the endpoint's to say.)
#[derive(IntoResponses)]
pub enum BodyErrors {
    #[response(
        status = 413,
        description = "`payload_too_large`: the body is over `MAX_REQUEST_BYTES` (32 MiB) after decompression."
    )]
    PayloadTooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "`unsupported_media_type`: the body is not sent as `Content-Type: application/json`."
    )]
    UnsupportedMediaType(ErrorBody),
}

/// Storage is busy, for the endpoints that reach it without a token ([`AuthErrors`] carries
/// the same reply for the others).
#[derive(IntoResponses)]
#[response(status = 503, description = UNAVAILABLE)]
pub struct Unavailable(pub ErrorBody);
