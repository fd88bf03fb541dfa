//! Signing devices in and out. A sign-in issues a token bound to one device (`client_id`), so
//! that a token copied elsewhere is refused; attempts are counted in the database, so that the
//! rate limits hold across instances. Hashing, tokens and the limits themselves are
//! [`crate::auth`]'s.

use super::ApiJson;
use super::responses::{AuthErrors, BodyErrors, Unavailable};
use crate::AppState;
use crate::auth::{self, Auth};
use crate::clock::now_i64;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use outpost_protocol::ClientId;
use outpost_protocol::api::{AccountId, Credentials, Session};
// Named only in the OpenAPI attributes (`#[utoipa::path]`) of the handlers.
use outpost_protocol::api::ErrorBody;
use std::net::SocketAddr;

/// Register an account
///
/// Creates the account and signs the device in: the reply carries its device token. The email
/// is compared without case and surrounding spaces; the password needs 8 to 1024 characters.
/// Attempts are rate limited per client address.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    operation_id = "register",
    request_body = Credentials,
    responses(
        (status = 201, description = "Registered and signed in: the device token.", body = Session),
        BodyErrors,
        Unavailable,
        (status = 400, description = "`invalid_json`: the body is not a `Credentials` object (syntax, types, unknown or missing fields, bad UTF-8); `bad_request`: not an email address, a password not of 8 to 1024 characters, or a body that cannot be read (e.g. broken gzip).", body = ErrorBody),
        (status = 409, description = "`email_taken`: an account with this email exists.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this address; the message says when to try again.", body = ErrorBody),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(creds): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let email = auth::normalize_email(&creds.email)?;
    auth::check_password(&creds.password)?;
    let now = now_i64();
    limit_address(&state, addr, now).await?;
    let hash = auth::hash_password(creds.password).await?;
    let account = state.storage.create_account(&email, &hash, now).await?;
    let session = issue_token(&state, account, &creds.client_id, creds.device_name, now).await?;
    tracing::info!(%account, client = %creds.client_id, "account registered");
    Ok((StatusCode::CREATED, Json(session)))
}

/// Sign in
///
/// Signs a device in to an existing account: the reply carries a new device token, bound to
/// `client_id`. Attempts are rate limited per client address and per account.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "accounts",
    operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in: the device token.", body = Session),
        BodyErrors,
        Unavailable,
        (status = 400, description = "`invalid_json`: the body is not a `Credentials` object; `bad_request`: not an email address, or a body that cannot be read.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: wrong email or password (the reply does not say which).", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this address or for this account; the message says when to try again.", body = ErrorBody),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(creds): ApiJson<Credentials>,
) -> Result<Json<Session>, ApiError> {
    let email = auth::normalize_email(&creds.email)?;
    let now = now_i64();
    limit_address(&state, addr, now).await?;
    auth::rate_limit(
        &state,
        &format!("email:{email}"),
        auth::ATTEMPTS_PER_ACCOUNT,
        now,
    )
    .await?;
    let stored = state.storage.password_hash(&email).await?;
    let (account, hash) = match stored {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    let verified = auth::verify_password(creds.password, hash).await;
    let (true, Some(account)) = (verified, account) else {
        tracing::info!("login refused");
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    let session = issue_token(&state, account, &creds.client_id, creds.device_name, now).await?;
    tracing::info!(%account, client = %creds.client_id, "signed in");
    Ok(Json(session))
}

/// Registering and signing in count against one limit per client address: the key is built
/// here only, so that both always share it.
async fn limit_address(state: &AppState, addr: SocketAddr, now: i64) -> Result<(), ApiError> {
    auth::rate_limit(
        state,
        &format!("ip:{}", addr.ip()),
        auth::ATTEMPTS_PER_ADDRESS,
        now,
    )
    .await
}

async fn issue_token(
    state: &AppState,
    account: AccountId,
    client: &ClientId,
    device_name: Option<String>,
    now: i64,
) -> Result<Session, ApiError> {
    let token = auth::new_token()?;
    state
        .storage
        .create_token(crate::storage::NewToken {
            hash: auth::token_hash(&token),
            account_id: account,
            client_id: *client,
            device_name: device_name.map(|n| n.chars().take(100).collect()),
            now_ms: now,
        })
        .await?;
    Ok(Session {
        account_id: account,
        token,
    })
}

/// Sign out
///
/// Revokes the device token of this request; the account's other devices stay signed in.
#[utoipa::path(
    delete,
    path = "/v1/sessions/current",
    tag = "accounts",
    operation_id = "logout",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out: the token no longer works."),
        AuthErrors,
    ),
)]
pub async fn logout(State(state): State<AppState>, auth: Auth) -> Result<StatusCode, ApiError> {
    state
        .storage
        .revoke_token(&auth.token_hash, now_i64())
        .await?;
    tracing::info!(account = %auth.account, client = %auth.client, "signed out");
    Ok(StatusCode::NO_CONTENT)
}
