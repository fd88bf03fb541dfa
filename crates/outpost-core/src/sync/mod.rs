//! Sync: the HTTP client of protocol `/v1`, the store's side of a cycle (applying replies and
//! pull pages, merging), sign-in, and the background engine.

pub mod account;
pub(crate) mod apply;
pub mod client;
pub mod doctor;
pub mod engine;
pub mod merge;
pub(crate) mod plan;
mod resolve;
pub(crate) mod skew;
mod state;
pub mod transfer;
pub mod vault;
pub mod verify;

pub use apply::Applied;
pub use client::{SyncClient, SyncError};
pub use doctor::{Diagnosis, Difference, Problem, Repair};
pub use engine::{
    CycleReport, EngineConfig, EngineState, Progress, SyncEngine, SyncStatus, run_cycle,
};
pub use resolve::{Conflict, Resolution};
pub use state::{Resent, SYNC_ERRORS_KEPT, SyncErrorEntry};
pub use transfer::{TransferReport, run_transfers};

/// Runs SQLite or keychain work from the engine's async code without stalling the runtime: on a
/// multi-threaded runtime (the app's) the worker hands its other tasks to another thread first
/// and becomes a blocking thread for the call (`block_in_place`); on a current-thread runtime
/// (the CLI's, most tests') there is no other thread to hand them to, and it runs in place.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
