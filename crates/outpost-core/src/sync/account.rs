//! Signing a device in and out of an account on a server. The server URL and account live in
//! the store's sync metadata; the device token lives in the [`TokenVault`] (OS keychain, else a
//! 0600 file), never in the database or the logs.

use super::client::{SyncClient, SyncError};
use super::vault::TokenVault;
use crate::meta;
use crate::store::Store;

use crate::meta::{ACCOUNT_ID, EMAIL, SERVER_URL};

/// A device that is signed in: a client ready to sync.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub client: SyncClient,
    pub server_url: String,
    pub account_id: String,
    pub email: String,
}

/// The current sign-in, if this device has an account and a token for it.
pub fn signed_in(store: &Store, vault: &TokenVault) -> Result<Option<SignedIn>, SyncError> {
    let get = |key| store.read(|c, p| meta::get(c, p, key));
    let (Some(server_url), Some(account_id)) = (get(SERVER_URL)?, get(ACCOUNT_ID)?) else {
        return Ok(None);
    };
    let Some(token) = vault.load(&account_id)? else {
        return Ok(None);
    };
    let client = SyncClient::new(&server_url, store.client_id(), Some(token))?;
    Ok(Some(SignedIn {
        client,
        server_url,
        account_id,
        email: get(EMAIL)?.unwrap_or_default(),
    }))
}

/// Which account a sign-in is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Account {
    /// Registers it first (`POST /v1/auth/register`).
    New,
    /// It exists (`POST /v1/auth/login`).
    Existing,
}

impl Account {
    /// [`Account::New`] when `register` (a "create an account" box, a `--register` flag).
    pub fn new_if(register: bool) -> Self {
        if register {
            Account::New
        } else {
            Account::Existing
        }
    }
}

/// Signs this device in to `account` on `server_url`, registering it first if it is new.
pub async fn sign_in(
    store: &Store,
    vault: &TokenVault,
    server_url: &str,
    email: &str,
    password: &str,
    account: Account,
) -> Result<SignedIn, SyncError> {
    let client = SyncClient::new(server_url, store.client_id(), None)?;
    let device = Some(format!("Outpost on {}", std::env::consts::OS));
    let session = if account == Account::New {
        client.register(email, password, device).await?
    } else {
        client.login(email, password, device).await?
    };
    let account_id = session.account_id.to_string();
    let previous = store.read(|c, p| meta::get(c, p, ACCOUNT_ID))?;
    if let Some(previous) = previous.filter(|p| *p != account_id) {
        // Mixing two accounts' notes in one data directory would sync one's notes into the
        // other's account.
        return Err(SyncError::Store(crate::Error::Invalid(format!(
            "this data directory holds the notes of another account ({previous}); use a new data directory for this account"
        ))));
    }
    vault.save(&account_id, &session.token)?;
    let url = client.base().to_owned();
    store.write(|tx| {
        meta::set(&tx.tx, tx.path, SERVER_URL, &url)?;
        meta::set(&tx.tx, tx.path, ACCOUNT_ID, &account_id)?;
        meta::set(&tx.tx, tx.path, EMAIL, email.trim())
    })?;
    tracing::info!(account = %account_id, server = %url, "signed in");
    signed_in(store, vault)?.ok_or(SyncError::NotSignedIn)
}

/// Signs this device out: the server revokes the token (if it can be reached) and the token is
/// deleted here. Notes and the outbox stay; signing in again continues where it stopped.
pub async fn logout(store: &Store, vault: &TokenVault) -> Result<(), SyncError> {
    let Some(session) = signed_in(store, vault)? else {
        return Ok(());
    };
    if let Err(e) = session.client.logout().await {
        tracing::warn!(error = %e, "could not revoke the token on the server; deleting it here");
    }
    vault.delete(&session.account_id)?;
    tracing::info!(account = %session.account_id, "signed out");
    Ok(())
}
