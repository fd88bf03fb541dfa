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
