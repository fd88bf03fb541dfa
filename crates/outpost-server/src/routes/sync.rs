//! The sync of one device: push, pull and pokes, the endpoints every device calls all day, so
//! they are the ones kept cheapest. The handlers only hold a request to the protocol's bounds
//! (batch size, mutation order, page size); what a push does is [`crate::plan`]'s, applied in
//! one transaction by [`crate::storage`]. A pull passes stored fields through as JSON text
//! ([`PullReply`]) rather than parse and re-serialise every record.

use super::ApiJson;
use super::responses::{AuthErrors, BodyErrors};
use crate::AppState;
use crate::auth::Auth;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::plan::{self, BatchError};
use crate::storage::PulledRecord;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use outpost_protocol::api::{
    Cursor, MAX_PULL_LIMIT, MAX_PUSH_MUTATIONS, MutationNumber, Poke, PushRequest, PushResponse,
    codes,
};
// Named only in the OpenAPI attributes (`#[utoipa::path]`) of the handlers.
use outpost_protocol::api::{ErrorBody, PullQuery, PullResponse};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;

/// Push mutations
///
/// A batch of the device's mutations, in increasing `number` order. Each gets an outcome, in
/// the order sent: `applied`, `duplicate`, `conflict` or `rejected`; every outcome acknowledges
/// the mutation. A batch refused as a whole (any 4xx) stores nothing.
#[utoipa::path(
    post,
    path = "/v1/sync/push",
    tag = "sync",
    operation_id = "push",
    security(("bearer" = [])),
    request_body = PushRequest,
    responses(
        (status = 200, description = "Handled: one result per mutation, in the order sent.", body = PushResponse),
        AuthErrors,
        BodyErrors,
        (status = 400, description = "`bad_request`: the `x-outpost-protocol` or `x-outpost-client` header is missing, or the client id is not a UUID, or mutation numbers do not increase within the batch, or the body cannot be read (e.g. broken gzip); `unsupported_protocol`: the server does not speak the protocol version in `x-outpost-protocol`; `invalid_json`: the body is not a `PushRequest` (syntax, types, unknown or missing fields, bad UTF-8); `empty_batch`: no mutations.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token belongs to another device than `x-outpost-client`, or the account no longer exists; or the batch touches a note or notebook id that belongs to another account (nothing is stored).", body = ErrorBody),
        (status = 413, description = "`batch_too_large`: more than `MAX_PUSH_MUTATIONS` (500) mutations; `payload_too_large`: the body is over `MAX_REQUEST_BYTES` (32 MiB) after decompression.", body = ErrorBody),
        (status = 426, description = "`client_too_old`: a mutation's `schema_version` is older than the server still applies; the app must be updated.", body = ErrorBody),
    ),
)]
pub async fn push(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    let n = req.mutations.len();
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::EMPTY_BATCH,
            "a push needs at least one mutation",
        ));
    }
    if n > MAX_PUSH_MUTATIONS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BATCH_TOO_LARGE,
            format!("a push carries at most {MAX_PUSH_MUTATIONS} mutations, this one {n}"),
        ));
    }
    plan::check_batch(&req.mutations).map_err(|e| match e {
        BatchError::OutOfOrder(..) | BatchError::BadNumber(_) => {
            ApiError::bad_request(e.to_string())
        }
        BatchError::ClientTooOld(_) => ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            codes::CLIENT_TOO_OLD,
            e.to_string(),
        ),
    })?;
    let now = now_ms();
    let outcome = state
        .storage
        .push(auth.account, auth.client, req.mutations, now)
        .await?;
    tracing::info!(
        account = %auth.account,
        client = %auth.client,
        mutations = n,
        last = %outcome.last_number,
        cursor = ?outcome.new_cursor,
        "push"
    );
    Ok(Json(PushResponse {
        results: outcome.results,
        last_mutation_number: outcome.last_number,
        server_time_ms: now,
    }))
}

/// The pull query as it arrives (so that a bad value gets our error, not a bare 400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullParams {
    #[serde(default)]
    cursor: i64,
    #[serde(default)]
    chain: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub const DEFAULT_PULL_LIMIT: u32 = 1000;

/// A pull's reply as sent: `PullResponse` (the type the OpenAPI document and clients know),
/// with records whose stored fields are passed through as JSON text (see [`PulledRecord`]).
/// Same fields in the same order, so the same JSON; the tests below hold it to that.
#[derive(Debug, Serialize)]
pub struct PullReply {
    pub records: Vec<PulledRecord>,
    pub next_cursor: Cursor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_chain: Option<String>,
    pub has_more: bool,
    pub remaining: u64,
    pub last_mutation_number: MutationNumber,
    pub server_time_ms: u64,
}

/// Pull changes
///
/// The account's records changed after `cursor`, in commit order, each at its newest version,
/// with the cursor to ask from next time and whether more pages follow.
#[utoipa::path(
    get,
    path = "/v1/sync/pull",
    tag = "sync",
    operation_id = "pull",
    security(("bearer" = [])),
    params(PullQuery),
    responses(
        (status = 200, description = "A page of changes.", body = PullResponse),
        AuthErrors,
        (status = 400, description = "`bad_request`: the `x-outpost-protocol` or `x-outpost-client` header is missing, or the client id is not a UUID, or `cursor` is negative or not a number, `limit` is not 1 to `MAX_PULL_LIMIT` (5000), or the query has an unknown parameter; `unsupported_protocol`: the server does not speak the protocol version in `x-outpost-protocol`; `cursor_from_the_future`: the cursor is ahead of the account's newest change (the server's data was replaced): re-download from 0, keeping the outbox.", body = ErrorBody),
        (status = 409, description = "`history_changed`: the commit at `cursor` is not the one `chain` names: the server was restored from an older copy and has moved on since. Reconcile: re-download from 0, keeping the outbox and every record the server lacks, and send those again.", body = ErrorBody),
        (status = 410, description = "`reset_required`: changes after this cursor were compacted away: re-download from 0, keeping the outbox.", body = ErrorBody),
    ),
)]
pub async fn pull(
    State(state): State<AppState>,
    auth: Auth,
    query: Result<Query<PullParams>, QueryRejection>,
) -> Result<Json<PullReply>, ApiError> {
    let Query(params) = query?;
    if params.cursor < 0 {
        return Err(ApiError::bad_request("cursor must be 0 or more"));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PULL_LIMIT);
    if limit == 0 || limit > MAX_PULL_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PULL_LIMIT}, got {limit}"
        )));
    }
    let page = state
        .storage
        .pull(
            auth.account,
            auth.client,
            Cursor(params.cursor),
            params.chain,
            limit,
        )
        .await?;
    Ok(Json(PullReply {
        records: page.records,
        next_cursor: page.next_cursor,
        next_chain: page.next_chain,
        has_more: page.has_more,
        remaining: page.remaining,
        last_mutation_number: page.last_number,
        server_time_ms: now_ms(),
    }))
}

/// Server-sent events: the account's newest cursor now, then after every commit, from any
/// instance. Ends when the server shuts down, so shutdown never waits on an open stream.
#[utoipa::path(
    get,
    path = "/v1/sync/events",
    tag = "sync",
    operation_id = "events",
    summary = "Listen for pokes",
    description = "A stream of server-sent events (never compressed). Each event is `event: poke` with `data:` a `Poke` as JSON: the account's newest cursor, first at once, then after every commit to the account from any device and any server instance. A device whose cursor is behind pulls. Comment lines keep the connection alive every 15 seconds; the stream ends when the server shuts down: reconnect.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event stream: `event: poke` / `data: {\"cursor\": 17}` per event; each `data` is a `Poke`.", content_type = "text/event-stream", body = String),
        AuthErrors,
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribe before reading the cursor, so no commit falls in between.
    let pokes = tokio_stream::wrappers::BroadcastStream::new(state.storage.pokes());
    let current = state.storage.cursor(auth.account).await?;
    let account = auth.account;
    let mut shutdown = state.shutdown.clone();
    let event = |cursor: Cursor| {
        Event::default()
            .event("poke")
            .json_data(Poke { cursor })
            .unwrap_or_else(|_| Event::default().event("poke"))
    };
    // Pokes can arrive late or twice (this instance's own commit, then the same commit through
    // PostgreSQL's NOTIFY), and the subscription above sees commits older than `current`. A
    // device is only told of a cursor newer than the last one it was told.
    let newest_sent = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(current.0));
    let stream = futures_util::stream::once(async move { Ok(event(current)) })
        .chain(pokes.filter_map(move |poke| {
            let newest_sent = newest_sent.clone();
            async move {
                match poke {
                    Ok((a, cursor))
                        if a == account
                            && newest_sent
                                .fetch_max(cursor.0, std::sync::atomic::Ordering::SeqCst)
                                < cursor.0 =>
                    {
                        Some(Ok(event(cursor)))
                    }
                    // Another account's poke, an old one, or this listener fell behind: the next
                    // poke (or the device's timer) catches up.
                    _ => None,
                }
            }
        }))
        .take_until(async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::api::{Record, Version};
    use outpost_protocol::test_util::fields;
    use outpost_protocol::{ClientId, Entity, Fields, Stamp};
    use serde_json::json;

    /// A pull page passed through from stored text is byte for byte the `PullResponse` the
    /// protocol defines, and decodes as one.
    #[test]
    fn a_passed_through_page_is_the_protocol_page() {
        let stamp = Stamp {
            physical_ms: 1_732_000_000_000,
            counter: 7,
            node: ClientId::new(),
        };
        let records = vec![
            Record {
                entity: Entity::Note,
                id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
                version: Version(4),
                cursor: Cursor(118),
                purged: false,
                fields: fields(
                    &[
                        ("title", json!("Pump \"3\" — ça va 🚰")),
                        ("body", json!("line\n\tnext \u{0} end")),
                        ("tags", json!(["a", "b"])),
                        ("notebook_id", json!(null)),
                        ("pinned", json!(true)),
                    ],
                    stamp,
                ),
            },
            Record {
                entity: Entity::Pref,
                id: "editor.font_size".into(),
                version: Version(1),
                cursor: Cursor(119),
                purged: false,
                fields: fields(&[("value", json!({"n": 14, "x": [1.5, -2]}))], stamp),
            },
            Record {
                entity: Entity::Note,
                id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60".into(),
                version: Version(7),
                cursor: Cursor(121),
                purged: true,
                fields: Fields::new(),
            },
        ];
        let protocol = PullResponse {
            records: records.clone(),
            next_cursor: Cursor(121),
            next_chain: Some("4f1d2c0e9a8b7c6d5e4f3a2b1c0d9e8f".into()),
            has_more: true,
            remaining: 2480,
            last_mutation_number: MutationNumber(43),
            server_time_ms: 1_732_000_005_123,
        };
        // What storage does: the text it stored (serde_json of the fields), passed through.
        let passed = PullReply {
            records: records
                .iter()
                .map(|r| {
                    PulledRecord::new(
                        r.entity,
                        r.id.clone(),
                        r.version,
                        r.cursor,
                        r.purged,
                        serde_json::to_string(&r.fields).expect("fields to JSON"),
                    )
                    .expect("stored JSON")
                })
                .collect(),
            next_cursor: protocol.next_cursor,
            next_chain: protocol.next_chain.clone(),
            has_more: protocol.has_more,
            remaining: protocol.remaining,
            last_mutation_number: protocol.last_mutation_number,
            server_time_ms: protocol.server_time_ms,
        };
        let sent = serde_json::to_string(&passed).expect("serialise");
        assert_eq!(sent, serde_json::to_string(&protocol).expect("serialise"));
        let decoded: PullResponse = serde_json::from_str(&sent).expect("decodes");
        assert_eq!(decoded, protocol);
    }
}
