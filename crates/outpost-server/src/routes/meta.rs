//! The server itself, for monitors and for a device deciding whether it can talk to this
//! server at all: needs no account and no headers, so that an old or misconfigured client
//! still learns the protocol version it would have to speak. (The OpenAPI document, the other
//! endpoint of this area, is served by [`crate::openapi`].)

use crate::AppState;
use axum::Json;
use axum::extract::State;
use outpost_protocol::PROTOCOL_VERSION;
use outpost_protocol::api::Health;

/// Is the server up?
///
/// Its version, protocol version, storage backend and clock. Needs no account and no headers.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "meta",
    operation_id = "health",
    responses(
        (status = 200, description = "The server is up.", body = Health),
    ),
)]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: PROTOCOL_VERSION,
        storage: state.storage.kind().into(),
        server_time_ms: Some(crate::clock::now_ms()),
    })
}
