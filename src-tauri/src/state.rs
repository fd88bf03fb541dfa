//! What the commands run against: the open store with its sync engine and token vault, or why
//! the store could not be opened.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outpost_core::sync::vault::TokenVault;
use outpost_core::sync::{EngineConfig, EngineState, SyncEngine, SyncStatus};
use outpost_core::{APP_IDENTIFIER, ExternalEdits, Store};
use tokio::sync::watch;

use crate::error::AppError;

/// The desktop app's core objects: one store, one engine, one vault, for the app's life.
pub struct Outpost {
    pub store: Arc<Store>,
    pub vault: TokenVault,
    engine: Mutex<Option<SyncEngine>>,
    status: watch::Receiver<SyncStatus>,
    /// Notes open in an external editor, started on first use.
    external: Mutex<Option<Arc<ExternalEdits>>>,
}

impl Outpost {
    /// Starts the sync engine on the current tokio runtime. It syncs as soon as the device is
    /// signed in, and does nothing until then.
    pub fn start(store: Arc<Store>) -> Outpost {
        let vault = TokenVault::new(APP_IDENTIFIER, store.data_dir());
        // Two handles on the same keychain entry and file: the engine reads the token each cycle.
        let engine = SyncEngine::start(
            Arc::clone(&store),
            TokenVault::new(APP_IDENTIFIER, store.data_dir()),
            EngineConfig::default(),
        );
        let status = engine.status();
        Outpost {
            store,
            vault,
            engine: Mutex::new(Some(engine)),
            status,
            external: Mutex::new(None),
        }
    }

    pub fn status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe_status(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
    }

    /// Runs `f` on the engine, if it still runs (it does until the app quits).
    pub fn with_engine<T>(&self, f: impl FnOnce(&SyncEngine) -> T) -> Option<T> {
        let engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        engine.as_ref().map(f)
    }

    /// The watcher of notes open in an external editor; `started` is called once, with it, the
    /// first time (the app forwards its events to the window).
    pub fn external_edits(
        &self,
        started: impl FnOnce(&ExternalEdits),
    ) -> outpost_core::Result<Arc<ExternalEdits>> {
        let mut slot = self.external.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(edits) = slot.as_ref() {
            return Ok(Arc::clone(edits));
        }
        let dir = self.store.data_dir().join("open-in-editor");
        let edits = Arc::new(ExternalEdits::start(Arc::clone(&self.store), dir)?);
        started(&edits);
        *slot = Some(Arc::clone(&edits));
        Ok(edits)
    }

    /// Waits until no cycle is running (at most `limit`), so a check of the store against the
    /// server does not race a pull that is being applied.
    pub async fn settle(&self, limit: Duration) {
        let mut status = self.status.clone();
        let idle = async {
            while status.borrow_and_update().state == EngineState::Syncing {
                if status.changed().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(limit, idle).await;
    }

    /// Stops the engine after the cycle in progress (at most `limit`); whatever is not sent
    /// stays in the outbox for the next start.
    pub async fn shutdown(&self, limit: Duration) {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(engine) = engine {
            if tokio::time::timeout(limit, engine.shutdown())
                .await
                .is_err()
            {
                tracing::warn!(?limit, "sync engine did not stop in time; quitting anyway");
            } else {
                tracing::info!("sync engine stopped");
            }
        }
    }
}

/// The managed state: the app, or why it could not start.
pub enum AppState {
    Ready(Arc<Outpost>),
    Unavailable { code: &'static str, message: String },
}

impl AppState {
    pub fn app(&self) -> Result<Arc<Outpost>, AppError> {
        match self {
            AppState::Ready(app) => Ok(Arc::clone(app)),
            AppState::Unavailable { code, message } => Err(AppError::StoreUnavailable {
                code,
                message: message.clone(),
            }),
        }
    }
}
