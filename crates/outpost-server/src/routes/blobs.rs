//! Attachments' bytes on the wire (`outpost_protocol::blobs`): the server's limits, an upload
//! begun or resumed, a chunk appended, a blob downloaded whole or from an offset. The rules of
//! an upload are [`crate::blobs`]'s; here is only what is HTTP: the chunk read off the request
//! (bounded, and told apart when it is cut short), and the `Range` of a download.

use super::ApiJson;
use super::responses::{AuthErrors, BodyErrors};
use crate::AppState;
use crate::auth::Auth;
use crate::blobs::{Blobs, UploadError};
use crate::error::ApiError;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use outpost_protocol::api::codes;
use outpost_protocol::blobs::{
    BlobHash, BlobStart, BlobStatus, HEADER_CHUNK_SHA256, Limits, MAX_CHUNK_BYTES,
};
use serde::Deserialize;
// Named only in the OpenAPI attributes (`#[utoipa::path]`) of the handlers.
use outpost_protocol::api::ErrorBody;

fn blobs(state: &AppState) -> Result<&Blobs, ApiError> {
    state
        .blobs
        .as_deref()
        .ok_or_else(|| UploadError::NoStore.into())
}

fn blob_hash(sha256: &str) -> Result<BlobHash, ApiError> {
    BlobHash::parse(sha256).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// What this server takes
///
/// The largest blob, the chunk size to send, the account's quota (if any) and the bytes of
/// blobs the account keeps now (complete and in progress): what the app shows before attaching.
#[utoipa::path(
    get,
    path = "/v1/blobs",
    tag = "blobs",
    operation_id = "blob_limits",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The server's limits and the account's use.", body = Limits),
        AuthErrors,
        (status = 503, description = "`unavailable`: the database is busy, or this server keeps no attachments (no blob store); nothing was stored, retry later.", body = ErrorBody),
    ),
)]
pub async fn limits(State(state): State<AppState>, auth: Auth) -> Result<Json<Limits>, ApiError> {
    let limits = blobs(&state)?
        .limits(state.storage.as_ref(), auth.account)
        .await?;
    Ok(Json(limits))
}

/// Begin or resume an upload
///
/// Says how many bytes of the blob the server holds: send the rest from `received` with
/// `PATCH`. A blob this account already has answers `complete: true` at once (send nothing).
/// A size other than that of the upload in progress starts it over.
#[utoipa::path(
    post,
    path = "/v1/blobs/{sha256}",
    tag = "blobs",
    operation_id = "blob_start",
    security(("bearer" = [])),
    params(("sha256" = BlobHash, Path, description = "The blob's name: the SHA-256 of its bytes, 64 lowercase hex digits.")),
    request_body = BlobStart,
    responses(
        (status = 200, description = "Where the upload stands.", body = BlobStatus),
        AuthErrors,
        BodyErrors,
        (status = 400, description = "`bad_request`: the name is not 64 lowercase hex digits, or a header is missing; `unsupported_protocol`; `invalid_json`: the body is not a `BlobStart`.", body = ErrorBody),
        (status = 403, description = "`over_quota`: the account's blobs and this one would pass its quota; the message says how many bytes are left (nothing was stored). `forbidden`: the token belongs to another device, or the account no longer exists.", body = ErrorBody),
        (status = 413, description = "`blob_too_large`: the blob is larger than this server's `max_blob_bytes`; `payload_too_large`: the body is over `MAX_REQUEST_BYTES` (32 MiB).", body = ErrorBody),
        (status = 422, description = "`blob_mismatch`: a blob of 0 bytes whose name is not the SHA-256 of nothing.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is busy, or this server keeps no attachments; nothing was stored, retry later.", body = ErrorBody),
        (status = 507, description = "`server_full`: the server's disk is full; try again later.", body = ErrorBody),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    auth: Auth,
    Path(sha256): Path<String>,
    ApiJson(req): ApiJson<BlobStart>,
) -> Result<Json<BlobStatus>, ApiError> {
    let hash = blob_hash(&sha256)?;
    let status = blobs(&state)?
        .start(state.storage.as_ref(), auth.account, &hash, req.size)
        .await?;
    Ok(Json(status))
}

/// `PATCH`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChunkParams {
    /// Where this chunk starts in the blob: the `received` of the last reply.
    #[param(minimum = 0)]
    offset: u64,
}

/// Why the chunk could not be taken off the request.
enum ChunkRead {
    TooLarge,
    /// The body ended before its end (the link dropped, the device stopped sending) or could
    /// not be decompressed.
    CutShort,
}

/// How much of a chunk over [`MAX_CHUNK_BYTES`] is read, and dropped, before the refusal: a
/// server that answers and closes while the device is still sending resets the connection, and
/// the device would see a network error instead of the 413.
const DRAINED_BYTES: usize = 2 * MAX_CHUNK_BYTES;

/// The request body, up to [`MAX_CHUNK_BYTES`]: a chunk is held whole so it can be checked
/// before a byte of it reaches the disk.
async fn read_chunk(headers: &HeaderMap, body: Body) -> Result<Bytes, ChunkRead> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAINED_BYTES as u64) {
        return Err(ChunkRead::TooLarge);
    }
    let capacity = declared.map_or(64 * 1024, |n| (n as usize).min(MAX_CHUNK_BYTES));
    let mut chunk = BytesMut::with_capacity(capacity);
    let mut total = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let Ok(piece) = piece else {
            return Err(if total > MAX_CHUNK_BYTES {
                ChunkRead::TooLarge
            } else {
                ChunkRead::CutShort
            });
        };
        total = total.saturating_add(piece.len());
        if total > DRAINED_BYTES {
            return Err(ChunkRead::TooLarge);
        }
        if total > MAX_CHUNK_BYTES {
            chunk = BytesMut::new();
        } else {
            chunk.extend_from_slice(&piece);
        }
    }
    if total > MAX_CHUNK_BYTES {
        return Err(ChunkRead::TooLarge);
    }
    Ok(chunk.freeze())
}

/// Append a chunk
///
/// Raw bytes (at most `MAX_CHUNK_BYTES`, 4 MiB) written at `offset`, which must be where the
/// upload stands. Acknowledged only once on the server's disk. The chunk that completes the
/// blob is checked against the blob's name: the reply says `complete: true`, or `422
/// blob_mismatch` and the upload starts over.
#[utoipa::path(
    patch,
    path = "/v1/blobs/{sha256}",
    tag = "blobs",
    operation_id = "blob_append",
    security(("bearer" = [])),
    params(
        ("sha256" = BlobHash, Path, description = "The blob's name: the SHA-256 of its bytes, 64 lowercase hex digits."),
        ChunkParams,
        ("x-outpost-chunk-sha256" = BlobHash, Header, description = "The SHA-256 of this chunk's bytes, 64 lowercase hex digits."),
    ),
    request_body(content(("application/octet-stream")), description = "The chunk: the blob's bytes from `offset`, at most `MAX_CHUNK_BYTES` (4 MiB)."),
    responses(
        (status = 200, description = "The chunk is on the server's disk: where the upload stands now (`complete` once the whole blob arrived and matched its name).", body = BlobStatus),
        AuthErrors,
        (status = 400, description = "`bad_request`: the name, `offset` or `x-outpost-chunk-sha256` is missing or malformed, the chunk is empty or goes past the blob's size, the body arrived cut short (counted in `chunks_lost`), or a header is missing; `unsupported_protocol`.", body = ErrorBody),
        (status = 404, description = "`not_found`: there is no upload of this blob: `POST` first.", body = ErrorBody),
        (status = 409, description = "`offset_mismatch`: the upload does not stand at `offset`; the message names where it stands (and `POST` says so too). Nothing was written; counted in `chunks_lost`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the chunk is over `MAX_CHUNK_BYTES` (4 MiB).", body = ErrorBody),
        (status = 422, description = "`chunk_damaged`: the chunk's bytes do not match `x-outpost-chunk-sha256`; nothing was written, counted in `chunks_lost`: send it again. `blob_mismatch`: the whole blob does not match its name; the server dropped it and the upload starts over from 0.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is busy, the disk is read-only, or this server keeps no attachments; retry later.", body = ErrorBody),
        (status = 507, description = "`server_full`: the server's disk is full; nothing of this chunk was kept, try again later.", body = ErrorBody),
    ),
)]
pub async fn append(
    State(state): State<AppState>,
    auth: Auth,
    Path(sha256): Path<String>,
    query: Result<Query<ChunkParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobStatus>, ApiError> {
    let blobs = blobs(&state)?;
    let hash = blob_hash(&sha256)?;
    let Query(params) = query?;
    let declared = headers
        .get(HEADER_CHUNK_SHA256)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request(format!("missing the {HEADER_CHUNK_SHA256} header")))
        .and_then(|v| {
            BlobHash::parse(v.trim())
                .map_err(|e| ApiError::bad_request(format!("{HEADER_CHUNK_SHA256}: {e}")))
        })?;
    let chunk = match read_chunk(&headers, body).await {
        Ok(chunk) => chunk,
        Err(ChunkRead::TooLarge) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("a chunk is at most {MAX_CHUNK_BYTES} bytes"),
            ));
        }
        Err(ChunkRead::CutShort) => {
            tracing::info!(account = %auth.account, %hash, offset = params.offset, "a chunk arrived cut short");
            blobs
                .cut_short(state.storage.as_ref(), auth.account, &hash)
                .await?;
            return Err(ApiError::bad_request(
                "the chunk arrived cut short (or could not be decompressed): send it again",
            ));
        }
    };
    let status = blobs
        .append(
            state.storage.as_ref(),
            auth.account,
            &hash,
            params.offset,
            &declared,
            chunk,
        )
        .await?;
    tracing::debug!(account = %auth.account, %hash, received = status.received, "chunk kept");
    Ok(Json(status))
}

/// The part of a blob a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// From `start` to `end`, inclusive.
    Part {
        start: u64,
        end: u64,
    },
    /// Starts past the end.
    Unsatisfiable,
}

/// `bytes=N-`, `bytes=N-M` or `bytes=-N` of a blob of `size` bytes. Any other form (several
/// ranges, another unit) is ignored, as HTTP allows: the whole blob is sent.
fn wanted(range: Option<&HeaderValue>, size: u64) -> Wanted {
    let Some(spec) = range
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
    else {
        return Wanted::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), number(first), number(last)) {
        // The last N bytes.
        (true, _, Some(n)) if n > 0 => (size.saturating_sub(n), size.saturating_sub(1)),
        (true, _, _) => return Wanted::Unsatisfiable,
        (false, Some(start), None) if last.trim().is_empty() => (start, size.saturating_sub(1)),
        (false, Some(start), Some(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        _ => return Wanted::Whole,
    };
    if start >= size {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part { start, end }
}

/// Download a blob
///
/// The bytes, streamed, with `Content-Length`; `Range: bytes=N-` (or `N-M`, `-N`) gives part
/// of them with 206 and `Content-Range`, to resume a download. Only a complete blob of this
/// account is found; another account's blob is not.
#[utoipa::path(
    get,
    path = "/v1/blobs/{sha256}",
    tag = "blobs",
    operation_id = "blob_download",
    security(("bearer" = [])),
    params(
        ("sha256" = BlobHash, Path, description = "The blob's name: the SHA-256 of its bytes, 64 lowercase hex digits."),
        ("range" = Option<String>, Header, description = "`bytes=N-` for the bytes from N on (also `bytes=N-M` and `bytes=-N`); other forms are ignored and the whole blob is sent."),
    ),
    responses(
        (status = 200, description = "The whole blob (never compressed).", content(("application/octet-stream")),
            headers(
                ("content-length" = u64, description = "The blob's size."),
                ("accept-ranges" = String, description = "`bytes`."),
                ("etag" = String, description = "The blob's name, quoted."),
            )),
        (status = 206, description = "The bytes the `Range` asks for.", content(("application/octet-stream")),
            headers(
                ("content-length" = u64, description = "The bytes sent."),
                ("content-range" = String, description = "`bytes N-M/size`."),
            )),
        AuthErrors,
        (status = 400, description = "`bad_request`: the name is not 64 lowercase hex digits, or a header is missing; `unsupported_protocol`.", body = ErrorBody),
        (status = 404, description = "`not_found`: this account has no complete blob of that name.", body = ErrorBody),
        (status = 416, description = "`bad_request`: the range starts past the end of the blob; `Content-Range: bytes */size` says its size.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is busy, or this server keeps no attachments; retry later.", body = ErrorBody),
    ),
)]
pub async fn download(
    State(state): State<AppState>,
    auth: Auth,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let blobs = blobs(&state)?;
    let hash = blob_hash(&sha256)?;
    let size = blobs
        .size_of(state.storage.as_ref(), auth.account, &hash)
        .await?;
    let (status, start, end) = match wanted(headers.get(header::RANGE), size) {
        Wanted::Whole => (StatusCode::OK, 0, size.saturating_sub(1)),
        Wanted::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Wanted::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                codes::BAD_REQUEST,
                format!("the blob is {size} bytes: a range must start before its end"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                refused.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(refused);
        }
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let bytes = blobs.read(auth.account, &hash, start, len).await?;
    let mut response = Response::new(Body::from_stream(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        headers.insert(header::ETAG, etag);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(range) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
    {
        headers.insert(header::CONTENT_RANGE, range);
    }
    tracing::info!(account = %auth.account, %hash, start, len, "blob download");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(spec: &str, size: u64) -> Wanted {
        wanted(Some(&HeaderValue::from_str(spec).expect("header")), size)
    }

    #[test]
    fn ranges_give_the_tail_a_part_or_the_whole() {
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(range("bytes=4-", 10), Wanted::Part { start: 4, end: 9 });
        assert_eq!(range("bytes=0-", 10), Wanted::Part { start: 0, end: 9 });
        assert_eq!(range("bytes=2-5", 10), Wanted::Part { start: 2, end: 5 });
        assert_eq!(range("bytes=2-500", 10), Wanted::Part { start: 2, end: 9 });
        assert_eq!(range("bytes=-3", 10), Wanted::Part { start: 7, end: 9 });
        assert_eq!(range("bytes=-30", 10), Wanted::Part { start: 0, end: 9 });
        assert_eq!(range("bytes=10-", 10), Wanted::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Wanted::Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Wanted::Unsatisfiable);
        for ignored in [
            "bytes=0-1,4-5",
            "items=0-",
            "bytes=x-",
            "bytes=5-2",
            "bytes=4",
        ] {
            assert_eq!(range(ignored, 10), Wanted::Whole, "{ignored}");
        }
    }
}
