//! Outpost's desktop app: opens the local store, starts the sync engine, exposes both to the
//! window through IPC commands and forwards the core's change stream and sync status to the
//! window as events.
//!
//! This crate is a thin adapter. What a note is, how it is stored and synced lives in
//! `outpost-core`, which has no Tauri dependency and is tested headless.

// Release builds on Windows must not open a console window next to the app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod args;
mod bindings;
mod commands;
mod error;
mod events;
mod logs;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use error::AppError;
use outpost_core::Store;
use state::{AppState, Outpost};
use tauri::{AppHandle, Manager, RunEvent};

/// Overrides where the store lives; tests and QA point it at a temp dir.
const DATA_DIR_ENV: &str = "OUTPOST_DATA_DIR";
/// How long quitting waits for a sync cycle in progress; what is not sent stays queued.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

fn main() {
    #[cfg(target_os = "linux")]
    webkit_defaults();
    let started = Instant::now();
    let custom_data_dir = std::env::var_os(DATA_DIR_ENV).is_some_and(|d| !d.is_empty());
    let mut builder = tauri::Builder::default();
    // One app per user and data directory. The plugin knows only the app's identifier, so it
    // guards the default data directory; a second instance on another OUTPOST_DATA_DIR (QA
    // running two "devices" on one machine) is allowed, and one on the same directory is
    // refused by the store's own lock with a clear message.
    if !custom_data_dir {
        builder = builder.plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tracing::info!("a second launch: showing the running window instead");
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
        }));
    }
    let app = builder
        .plugin(tauri_plugin_window_state::Builder::default().build())
        // Used from Rust only (no JavaScript permission granted): the folder picker of import
        // and export, and opening a note's file in the user's editor.
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .setup(move |app| {
            logs::init(app.handle());
            let state = match open_store(app.handle()) {
                Ok(store) => {
                    events::forward_changes(app.handle().clone(), store.subscribe());
                    // The engine spawns its tasks on Tauri's tokio runtime.
                    let outpost =
                        tauri::async_runtime::block_on(async { Arc::new(Outpost::start(store)) });
                    events::forward_sync_status(app.handle().clone(), outpost.subscribe_status());
                    AppState::Ready(outpost)
                }
                Err(err) => {
                    tracing::error!(code = err.code(), error = %err, "could not open the store");
                    AppState::Unavailable {
                        code: match &err {
                            AppError::Core(e) => e.code(),
                            _ => "internal",
                        },
                        message: err.to_string(),
                    }
                }
            };
            app.manage(state);
            quit_on_terminate(app.handle().clone());
            tracing::info!(ms = started.elapsed().as_millis(), "set up");
            Ok(())
        })
        .on_page_load(move |_window, payload| {
            tracing::info!(ms = started.elapsed().as_millis(), event = ?payload.event(), "page load");
        })
        .invoke_handler(tauri::generate_handler![
            commands::list_notes,
            commands::count_notes,
            commands::get_note,
            commands::create_note,
            commands::update_note,
            commands::trash_note,
            commands::restore_note,
            commands::purge_note,
            commands::empty_trash,
            commands::search_notes,
            commands::list_notebooks,
            commands::create_notebook,
            commands::rename_notebook,
            commands::delete_notebook,
            commands::list_prefs,
            commands::set_pref,
            commands::local_status,
            commands::sync_status,
            commands::sync_now,
            commands::list_outbox,
            commands::list_dead_letters,
            commands::retry_dead_letter,
            commands::discard_dead_letter,
            commands::list_sync_errors,
            commands::list_conflicts,
            commands::resolve_conflict,
            commands::run_doctor,
            commands::account_info,
            commands::sign_in,
            commands::sign_out,
            commands::app_paths,
            commands::open_in_editor,
            commands::export_markdown,
            commands::import_markdown,
            commands::list_attachments,
            commands::attach_files,
            commands::attach_bytes,
            commands::open_attachment,
            commands::remove_attachment,
            commands::retry_transfers,
            commands::transfer_queue,
        ])
        // The symlink src-tauri/tauri.conf.json -> ../tauri.conf.json: see build.rs for why.
        .build(tauri::generate_context!("tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = %err, "Outpost could not start");
            eprintln!("Outpost could not start: {err}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            stop_engine(handle);
        }
    });
}

/// WebKitGTK's accelerated compositing costs about 90 MiB in the web process (BENCHMARKS.md,
/// "Desktop app") and, with some GPU drivers, shows a blank window; a notes window does not need
/// it. WebKit turns it off when `WEBKIT_DISABLE_COMPOSITING_MODE` is set at all (any value), so
/// the way to keep it on is our own `OUTPOST_WEBKIT_COMPOSITING=1`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn webkit_defaults() {
    const VAR: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    let keep_on = std::env::var_os("OUTPOST_WEBKIT_COMPOSITING").is_some_and(|v| v == "1");
    if !keep_on && std::env::var_os(VAR).is_none() {
        // SAFETY: the first thing `main` does, before any other thread exists that could read
        // or change the environment at the same time.
        unsafe { std::env::set_var(VAR, "1") };
    }
}

/// SIGTERM (a logout, a shutdown, `kill`) quits like the window's close button does, so the
/// engine stops after its cycle instead of the process vanishing mid-request.
#[cfg(unix)]
fn quit_on_terminate(handle: AppHandle) {
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                if term.recv().await.is_some() {
                    tracing::info!("SIGTERM: quitting");
                    handle.exit(0);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for SIGTERM"),
        }
    });
}

#[cfg(not(unix))]
fn quit_on_terminate(_handle: AppHandle) {}

/// On quit: let a cycle in progress finish (briefly) so its replies are applied; anything not
/// acknowledged stays in the outbox and goes with the next start.
fn stop_engine(handle: &AppHandle) {
    if let Some(state) = handle.try_state::<AppState>()
        && let Ok(app) = state.app()
    {
        tauri::async_runtime::block_on(app.shutdown(SHUTDOWN_LIMIT));
    }
    tracing::info!("Outpost quit");
}

fn open_store(app: &AppHandle) -> Result<Arc<Store>, AppError> {
    let dir = data_dir(app)?;
    tracing::info!(dir = %dir.display(), "opening the store");
    Ok(Arc::new(Store::open(&dir)?))
}

/// `OUTPOST_DATA_DIR` if set and not empty, else the platform's app data dir for our identifier.
fn data_dir(app: &AppHandle) -> tauri::Result<PathBuf> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => app.path().app_data_dir(),
    }
}
