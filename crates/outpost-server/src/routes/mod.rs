//! The handlers of `/v1`, one module per area of the API (the OpenAPI document's tags), so that
//! a change to accounts, to sync, to the doctor or to blobs touches one file. Handlers stay
//! thin: each parses, checks what the protocol bounds, calls storage and answers. The rules of
//! a push are in [`crate::plan`], of an upload in [`crate::blobs`], the SQL in
//! [`crate::storage`], tokens in [`crate::auth`].
//!
//! Here is only what handlers of every area share: the JSON extractor that answers with our
//! error body, the clock, and the fallback for unknown paths.

pub mod accounts;
pub mod blobs;
pub mod doctor;
pub mod meta;
pub mod responses;
pub mod sync;

use crate::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::{Json, http::request::Parts};
use outpost_protocol::api::codes;

/// JSON in, with our error body for every way it can be wrong.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

pub async fn not_found(parts: Parts) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        format!("no such endpoint: {} {}", parts.method, parts.uri.path()),
    )
}
