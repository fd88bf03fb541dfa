//! Accounts and device tokens: argon2id password hashes, random tokens stored only as SHA-256
//! hashes (S3), the `Auth` extractor every sync endpoint takes, and login rate limits kept in
//! the database so they hold across instances.

use crate::AppState;
use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use outpost_protocol::api::{AccountId, HEADER_CLIENT_ID, HEADER_PROTOCOL, codes};
use outpost_protocol::{ClientId, PROTOCOL_VERSION};
use sha2::{Digest, Sha256};

/// Login attempts allowed per window, per account and per client address.
pub const ATTEMPTS_PER_ACCOUNT: u32 = 10;
pub const ATTEMPTS_PER_ADDRESS: u32 = 60;
pub const ATTEMPT_WINDOW_MS: i64 = 15 * 60 * 1000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash under which a token is stored and looked up. Tokens are 256 random bits, so a fast
/// hash is enough (no salt or stretching needed, unlike passwords).
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new random device token.
pub fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a token");
        ApiError::internal()
    })?;
    Ok(format!("opt_{}", hex(&bytes)))
}

pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| ApiError::internal())?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::internal())?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| ApiError::internal())
    })
    .await
    .map_err(|_| ApiError::internal())?
}

/// Verifies a password; with no stored hash it still does the work, so that timing does not
/// tell which emails have accounts.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3h8Ss8d4XyZ2G8/x9XPpbZdM7qGl2LtE9IYpQzGOeO8";
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY.to_owned());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

/// Normalises an email for lookups; refuses what cannot be one.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ApiError::bad_request("that is not an email address"));
    }
    Ok(email)
}

pub fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(ApiError::bad_request(
            "a password needs 8 to 1024 characters",
        ));
    }
    Ok(())
}

/// Counts an attempt under `key`; refuses once `max` is exceeded in the current window.
pub async fn rate_limit(
    state: &AppState,
    key: &str,
    max: u32,
    now_ms: i64,
) -> Result<(), ApiError> {
    let window = now_ms - now_ms.rem_euclid(ATTEMPT_WINDOW_MS);
    let count = state.storage.count_attempt(key, window).await?;
    if count > max {
        let wait_s = (window + ATTEMPT_WINDOW_MS - now_ms) / 1000 + 1;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("too many attempts; try again in {wait_s} seconds"),
        )
        .retry_after(wait_s));
    }
    Ok(())
}

/// The caller of a sync endpoint: a valid token, bound to the device named in the headers.
#[derive(Debug, Clone)]
pub struct Auth {
    pub account: AccountId,
    pub client: ClientId,
    pub token_hash: String,
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the protocol header: every request names the version it speaks.
pub fn check_protocol(parts: &Parts) -> Result<(), ApiError> {
    match header(parts, HEADER_PROTOCOL).map(str::trim) {
        None => Err(ApiError::bad_request(format!(
            "missing the {HEADER_PROTOCOL} header (this server speaks protocol {PROTOCOL_VERSION})"
        ))),
        Some(v) if v == PROTOCOL_VERSION.to_string() => Ok(()),
        Some(v) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::UNSUPPORTED_PROTOCOL,
            format!(
                "this server speaks protocol {PROTOCOL_VERSION}, the request protocol {:?}",
                v.chars().take(20).collect::<String>()
            ),
        )),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_protocol(parts)?;
        let token = header(parts, "authorization")
            // The scheme name is case-insensitive (RFC 9110 section 11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("sign in first: no device token was sent"))?;
        let client: ClientId = header(parts, HEADER_CLIENT_ID)
            .ok_or_else(|| ApiError::bad_request(format!("missing the {HEADER_CLIENT_ID} header")))?
            .parse()
            .map_err(|e: outpost_protocol::IdError| ApiError::bad_request(e.to_string()))?;
        let hash = token_hash(token);
        let owner = state.storage.token(&hash).await?.ok_or_else(|| {
            ApiError::unauthorized("the device token is not valid; sign in again")
        })?;
        if owner.client_id != client {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                "this token belongs to another device",
            ));
        }
        Ok(Auth {
            account: owner.account_id,
            client,
            token_hash: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.org ").expect("ok"),
            "ann@example.org"
        );
        for bad in [
            "", "ann", "@x", "ann@", "a@b@c", "a b@c", "a\u{0}@b", "a@b\u{7}",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[tokio::test]
    async fn passwords_verify_and_unknown_accounts_never_do() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
    }
}
