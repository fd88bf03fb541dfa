//! The server's error type: every failure becomes a status and a JSON `{code, message}` body.
//! Internal details go to the log, never to the client.

use crate::blobs::{BlobError, UploadError};
use crate::storage::StorageError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use outpost_protocol::api::{ErrorBody, MAX_REQUEST_BYTES, codes};
use outpost_protocol::blobs::codes as blob_codes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait, sent as `Retry-After` (rate limits).
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: i64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "the server failed; nothing was stored, try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::EmailTaken => {
                ApiError::new(StatusCode::CONFLICT, codes::EMAIL_TAKEN, e.to_string())
            }
            StorageError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, m),
            StorageError::CursorFromTheFuture { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::CURSOR_FROM_THE_FUTURE,
                e.to_string(),
            ),
            StorageError::HistoryChanged { .. } => {
                ApiError::new(StatusCode::CONFLICT, codes::HISTORY_CHANGED, e.to_string())
            }
            StorageError::ResetRequired { .. } => {
                ApiError::new(StatusCode::GONE, codes::RESET_REQUIRED, e.to_string())
            }
            StorageError::Unavailable(detail) => {
                tracing::warn!(%detail, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "the server is busy; nothing was stored, try again",
                )
            }
            StorageError::CannotWrite(detail) => {
                tracing::error!(%detail, "the database cannot write");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "the server cannot write to its disk (full or read-only); nothing was stored, your changes wait on your device",
                )
            }
            StorageError::OverQuota { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, blob_codes::OVER_QUOTA, e.to_string())
            }
            StorageError::Internal(detail) => {
                tracing::error!(%detail, "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                blob_codes::BLOB_TOO_LARGE,
                message,
            ),
            UploadError::NoUpload | UploadError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
            }
            UploadError::OffsetMismatch { .. } => {
                ApiError::new(StatusCode::CONFLICT, blob_codes::OFFSET_MISMATCH, message)
            }
            UploadError::ChunkDamaged { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                blob_codes::CHUNK_DAMAGED,
                message,
            ),
            UploadError::BlobMismatch { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                blob_codes::BLOB_MISMATCH,
                message,
            ),
            UploadError::PastTheEnd { .. } | UploadError::EmptyChunk => {
                ApiError::bad_request(message)
            }
            UploadError::NoStore => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
            }
            UploadError::Store(BlobError::Full(detail)) => {
                tracing::error!(%detail, "the blob store is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    blob_codes::SERVER_FULL,
                    "the server's disk is full; nothing of this chunk was kept, try again later",
                )
            }
            UploadError::Store(BlobError::ReadOnly(detail)) => {
                tracing::error!(%detail, "the blob store cannot write");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "the server cannot write to its disk (read-only); nothing of this chunk was kept, try again later",
                )
            }
            UploadError::Store(e) => {
                tracing::error!(error = %e, "blob store failure");
                ApiError::internal()
            }
            UploadError::Storage(e) => e.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "send JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    codes::PAYLOAD_TOO_LARGE,
                    format!("the request body is over the limit of {MAX_REQUEST_BYTES} bytes"),
                )
            }
            // Syntax errors, wrong types, unknown fields and invalid UTF-8 all land here; serde's
            // message says which field and where.
            JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_JSON,
                rejection.body_text(),
            ),
            other => ApiError::new(other.status(), codes::BAD_REQUEST, other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}
