//! The account this device syncs as: who, sign in (or register), sign out.

use outpost_core::sync::account;
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::args::Arg;
use crate::error::AppError;
use crate::state::AppState;

/// Who this device syncs as, if anyone.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AccountInfo {
    pub signed_in: bool,
    /// The server signed in to; signed out, the one to offer (`OUTPOST_SERVER_URL`, which
    /// `scripts/run-app` sets to the local server it starts), if any.
    pub server_url: Option<String>,
    pub email: Option<String>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn account_info(state: State<'_, AppState>) -> Result<AccountInfo, AppError> {
    blocking(state, move |app| {
        Ok(match account::signed_in(&app.store, &app.vault)? {
            Some(s) => AccountInfo {
                signed_in: true,
                server_url: Some(s.server_url),
                email: Some(s.email),
            },
            None => AccountInfo {
                server_url: offered_server(),
                ..AccountInfo::default()
            },
        })
    })
    .await
}

/// The server the sign-in form starts with, from the environment (a local or company server).
fn offered_server() -> Option<String> {
    std::env::var("OUTPOST_SERVER_URL")
        .ok()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// Registers a new account (or, with `new_account` false, signs in to one) and syncs at once.
/// The password goes to the server and nowhere else: it is not stored or logged.
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in(
    state: State<'_, AppState>,
    server_url: Arg<String>,
    email: Arg<String>,
    password: Arg<String>,
    new_account: Arg<bool>,
) -> Result<AccountInfo, AppError> {
    let server_url = server_url.parse("server_url")?;
    let email = email.parse("email")?;
    let password = password.parse_secret("password")?;
    let new_account = new_account.parse("new_account")?;
    let app = state.app()?;
    let which = account::Account::new_if(new_account);
    let session = account::sign_in(
        &app.store,
        &app.vault,
        &server_url,
        &email,
        &password,
        which,
    )
    .await?;
    app.with_engine(|engine| engine.sync_now());
    Ok(AccountInfo {
        signed_in: true,
        server_url: Some(session.server_url),
        email: Some(session.email),
    })
}

/// Signs out: the token is revoked and deleted; notes and the outbox stay on this device.
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out(state: State<'_, AppState>) -> Result<(), AppError> {
    let app = state.app()?;
    account::logout(&app.store, &app.vault).await?;
    app.with_engine(|engine| engine.sync_now());
    Ok(())
}
