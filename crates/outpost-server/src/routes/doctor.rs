//! The sync doctor's endpoints: a device compares its copy with the server's, bucket by bucket,
//! and fetches only what it must repair instead of downloading the account again. Reading
//! entries and records is [`crate::doctor`]'s, keeping the digest storage's; here are only the
//! bounds of a request.

use super::ApiJson;
use super::responses::{AuthErrors, BodyErrors};
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use outpost_protocol::digest::{
    DigestResponse, EntriesRequest, EntriesResponse, FetchRequest, FetchResponse,
    MAX_ENTRY_BUCKETS, MAX_FETCH_KEYS,
};
// Named only in the OpenAPI attributes (`#[utoipa::path]`) of the handlers.
use outpost_protocol::api::ErrorBody;

/// The sync doctor: the account summed up
///
/// Counts and, for each of 256 buckets, the count and sum of the record digests (see
/// `docs/protocol.md`, "Sync doctor"). A device computes the same from its own copy; only the
/// buckets that differ need a closer look.
#[utoipa::path(
    get,
    path = "/v1/sync/digest",
    tag = "doctor",
    operation_id = "digest",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account's sums.", body = DigestResponse),
        AuthErrors,
    ),
)]
pub async fn digest(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<DigestResponse>, ApiError> {
    // The running digest every push keeps (not a pass over the account): devices ask after
    // every sync that moved anything.
    let digest = state.storage.digest(auth.account).await?;
    tracing::info!(account = %auth.account, cursor = %digest.cursor, "digest");
    Ok(Json(DigestResponse {
        cursor: digest.cursor,
        counts: digest.summary.counts,
        tombstones: digest.tombstones,
        buckets: digest.summary.to_wire(),
    }))
}

/// The sync doctor: the records of some buckets
///
/// One line per record of the given buckets (tombstones included): kind, id, version and
/// digest, so a device can name the records that differ.
#[utoipa::path(
    post,
    path = "/v1/sync/digest/entries",
    tag = "doctor",
    operation_id = "digest_entries",
    security(("bearer" = [])),
    request_body = EntriesRequest,
    responses(
        (status = 200, description = "The entries, by kind and id.", body = EntriesResponse),
        AuthErrors,
        BodyErrors,
        (status = 400, description = "`invalid_json`: the body is not an `EntriesRequest` (a bucket is 0 to 255); `bad_request`: more than 256 buckets, or a header is missing; `unsupported_protocol`.", body = ErrorBody),
    ),
)]
pub async fn digest_entries(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<EntriesRequest>,
) -> Result<Json<EntriesResponse>, ApiError> {
    if req.buckets.len() > MAX_ENTRY_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "ask for at most {MAX_ENTRY_BUCKETS} buckets, not {}",
            req.buckets.len()
        )));
    }
    let (entries, cursor) = crate::doctor::entries(
        state.storage.as_ref(),
        auth.account,
        auth.client,
        &req.buckets,
    )
    .await?;
    Ok(Json(EntriesResponse { cursor, entries }))
}

/// The sync doctor: fetch records for a repair
///
/// The current records of the given keys, each at its newest version (tombstones included);
/// keys the account does not hold are left out, so another account's ids yield nothing.
#[utoipa::path(
    post,
    path = "/v1/sync/records",
    tag = "doctor",
    operation_id = "fetch_records",
    security(("bearer" = [])),
    request_body = FetchRequest,
    responses(
        (status = 200, description = "The records that exist, in commit order.", body = FetchResponse),
        AuthErrors,
        BodyErrors,
        (status = 400, description = "`invalid_json`: the body is not a `FetchRequest`; `bad_request`: more than 1000 keys, or a header is missing; `unsupported_protocol`.", body = ErrorBody),
    ),
)]
pub async fn fetch_records(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<FetchRequest>,
) -> Result<Json<FetchResponse>, ApiError> {
    if req.keys.len() > MAX_FETCH_KEYS {
        return Err(ApiError::bad_request(format!(
            "ask for at most {MAX_FETCH_KEYS} records, not {}",
            req.keys.len()
        )));
    }
    let (records, cursor) =
        crate::doctor::records(state.storage.as_ref(), auth.account, auth.client, &req.keys)
            .await?;
    Ok(Json(FetchResponse { cursor, records }))
}
