//! The control interface, HTTP on loopback: what `outpost-netem ctl ...` talks to, and what a
//! script can `curl`.
//!
//! - `POST /mode` with a JSON mode (`{"mode":"2g","latency_ms":400,"kbit_per_s":50}`)
//! - `POST /online`, `/offline`, `/2g[?latency_ms=400&kbit_per_s=50]`, `/flaky?p=30`,
//!   `/cut-reply[?next=1]`, `/stall`
//! - `GET /status`
//!
//! Every answer is the status as JSON; errors are `{"code","message"}` with a 4xx/5xx status.

use crate::{Mode, Netem, NetemError, TWO_G_KBIT_PER_S, TWO_G_LATENCY_MS};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The default control address, so `outpost-netem ctl offline` needs no flags.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:8789";

pub fn router(netem: Arc<Netem>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/mode", post(set_json))
        .route("/online", post(|s| switch(s, Mode::Online)))
        .route("/offline", post(|s| switch(s, Mode::Offline)))
        .route("/stall", post(|s| switch(s, Mode::Stall)))
        .route("/2g", post(two_g))
        .route("/flaky", post(flaky))
        .route("/cut-reply", post(cut_reply))
        .with_state(netem)
}

struct ControlError(NetemError);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (status, code) = match self.0 {
            NetemError::InvalidMode(_) => (StatusCode::BAD_REQUEST, "invalid_mode"),
            NetemError::Bind { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "bind_failed"),
            NetemError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped"),
        };
        let body = serde_json::json!({ "code": code, "message": self.0.to_string() });
        (status, Json(body)).into_response()
    }
}

type Answer = Result<Json<crate::Status>, ControlError>;

async fn status(State(netem): State<Arc<Netem>>) -> Json<crate::Status> {
    Json(netem.status())
}

async fn switch(State(netem): State<Arc<Netem>>, mode: Mode) -> Answer {
    netem.set_mode(mode).await.map_err(ControlError)?;
    Ok(Json(netem.status()))
}

async fn set_json(state: State<Arc<Netem>>, Json(mode): Json<Mode>) -> Answer {
    switch(state, mode).await
}

#[derive(Deserialize)]
struct TwoG {
    latency_ms: Option<u64>,
    kbit_per_s: Option<u64>,
}

async fn two_g(state: State<Arc<Netem>>, Query(q): Query<TwoG>) -> Answer {
    let mode = Mode::TwoG {
        latency_ms: q.latency_ms.unwrap_or(TWO_G_LATENCY_MS),
        kbit_per_s: q.kbit_per_s.unwrap_or(TWO_G_KBIT_PER_S),
    };
    switch(state, mode).await
}

#[derive(Deserialize)]
struct Flaky {
    p: u8,
}

async fn flaky(state: State<Arc<Netem>>, Query(q): Query<Flaky>) -> Answer {
    switch(state, Mode::Flaky { drop_percent: q.p }).await
}

#[derive(Deserialize)]
struct CutReply {
    next: Option<usize>,
}

async fn cut_reply(state: State<Arc<Netem>>, Query(q): Query<CutReply>) -> Answer {
    let next = q.next.unwrap_or(1);
    switch(state, Mode::CutReply { next }).await
}
