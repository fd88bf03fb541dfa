//! The OpenAPI document of protocol `/v1`, generated from the code and served at
//! `GET /v1/openapi.json`: the operations come from the `#[utoipa::path]` attributes on the
//! handlers in [`crate::routes`] (error replies several share from [`crate::routes::responses`]),
//! the schemas from the protocol types themselves (`outpost-protocol`'s `openapi` feature).
//! Here is only what those cannot say: the bearer scheme, the two headers, the reply every
//! endpoint can give (`internal`), the server's default page size, and one thing utoipa does
//! not carry over from serde (see [`Protocol`]). `tests/openapi.rs` holds the document to the
//! router, and example values of the real types to its schemas.

use crate::routes;
use axum::Json;
use outpost_protocol::PROTOCOL_VERSION;
use outpost_protocol::api::{ErrorBody, HEADER_CLIENT_ID, HEADER_PROTOCOL, Poke};
use std::sync::LazyLock;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The name of the security scheme the handlers' attributes refer to.
pub const BEARER: &str = "bearer";

/// The document. Every operation is listed in `paths(...)`; the router in [`crate::router`]
/// serves exactly these (a test compares the two).
#[derive(OpenApi)]
#[openapi(
    paths(
        routes::meta::health,
        openapi_json,
        routes::accounts::register,
        routes::accounts::login,
        routes::accounts::logout,
        routes::sync::push,
        routes::sync::pull,
        routes::sync::events,
        routes::doctor::digest,
        routes::doctor::digest_entries,
        routes::doctor::fetch_records,
        routes::blobs::limits,
        routes::blobs::start,
        routes::blobs::append,
        routes::blobs::download,
    ),
    components(schemas(ErrorBody, Poke)),
    modifiers(&Protocol),
    tags(
        (name = "meta", description = "The server itself: health and this document."),
        (name = "accounts", description = "Accounts and device tokens."),
        (name = "sync", description = "Push, pull and pokes: the sync of one device."),
        (name = "doctor", description = "The sync doctor: compare a device with the server and repair it."),
        (name = "blobs", description = "Attachments' bytes: uploads in chunks that resume, downloads that resume."),
    ),
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);
    &DOCUMENT
}

/// This document
///
/// The OpenAPI 3.1 description of protocol `/v1`, generated from the server's code. Needs no
/// account and no headers.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object),
    ),
)]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

const DESCRIPTION: &str = "\
The sync protocol of Outpost, an offline-first notes app: HTTP and JSON under `/v1`. The prose \
version, with the rules a client must follow (idempotency, cursors, conflicts), is \
`docs/protocol.md` in the repository.

* Bodies are JSON (`Content-Type: application/json`); unknown fields are refused. A blob's chunk \
(`PATCH /v1/blobs/{sha256}`) is the exception: raw bytes, at most 4 MiB. Requests may be sent \
with `Content-Encoding: gzip` or `br`, replies are compressed when `Accept-Encoding` allows (the \
event stream and blobs never are). A request body may be at most 32 MiB after decompression.
* Sync endpoints need `Authorization: Bearer <device token>` (from `POST /v1/accounts` or \
`POST /v1/sessions`) and the headers `x-outpost-client` (the device's id, which must be the one \
the token was issued to) and `x-outpost-protocol` (the protocol version, `1`).
* Every 4xx and 5xx reply with a body has an `ErrorBody`: a stable `code` and a `message` for \
people. Besides the replies listed per operation: an unknown path gets 404 `not_found`, a known \
path with another method 405 `bad_request`, and any endpoint can answer 500 `internal` (nothing \
was stored). A request with a `Content-Encoding` other than `gzip` or `br` gets 415 with an \
empty body and an `Accept-Encoding` header naming what the server takes.";

/// What the attributes on the handlers cannot say, added to the generated document.
pub struct Protocol;

impl Modify for Protocol {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info.title = "Outpost sync protocol".into();
        doc.info.version = PROTOCOL_VERSION.to_string();
        doc.info.description = Some(DESCRIPTION.into());

        let components = doc.components.get_or_insert_with(Default::default);
        // `Outcome` is `#[serde(deny_unknown_fields)]`, but utoipa closes only structs, not the
        // variants of a tagged enum: close them here, so the schema refuses what serde refuses.
        if let Some(RefOr::T(Schema::OneOf(outcome))) = components.schemas.get_mut("Outcome") {
            for variant in &mut outcome.items {
                if let RefOr::T(Schema::Object(object)) = variant {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A device token (`opt_` and 64 hex digits) from `POST /v1/accounts` or \
                         `POST /v1/sessions`, valid only with the `x-outpost-client` it was \
                         issued to, until `DELETE /v1/sessions/current`.",
                    ))
                    .build(),
            ),
        );

        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                add_headers(op);
                add_internal_error(op);
            }
        }

        // The default page size is the server's choice, not the protocol's.
        if let Some(pull) = doc
            .paths
            .paths
            .get_mut("/v1/sync/pull")
            .and_then(|item| item.get.as_mut())
        {
            for param in pull.parameters.iter_mut().flatten() {
                if param.name == "limit"
                    && let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(o))) =
                        param.schema.as_mut()
                {
                    o.default = Some(routes::sync::DEFAULT_PULL_LIMIT.into());
                    param.description = Some(format!(
                        "{} Default: {}.",
                        param.description.as_deref().unwrap_or_default(),
                        routes::sync::DEFAULT_PULL_LIMIT
                    ));
                }
            }
        }
    }
}

/// Every operation of a path, whatever its method.
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn is_authenticated(op: &Operation) -> bool {
    op.security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty())
}

/// `x-outpost-client` and `x-outpost-protocol`: required where the server checks them (every
/// endpoint that takes a device token), optional elsewhere.
fn add_headers(op: &mut Operation) {
    let required = is_authenticated(op);
    let checked = if required {
        "Required."
    } else {
        "Not checked by this endpoint; clients send it on every request."
    };
    let header = |name: &str, what: String| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(if required {
                Required::True
            } else {
                Required::False
            })
            .description(Some(format!("{what} {checked}")))
    };
    let params = op.parameters.get_or_insert_with(Vec::new);
    params.push(
        header(
            HEADER_CLIENT_ID,
            "The device's id (a UUID), the one its token was issued to.".to_owned(),
        )
        .schema(Some(Ref::from_schema_name("ClientId")))
        .build(),
    );
    params.push(
        header(
            HEADER_PROTOCOL,
            format!("The protocol version the client speaks: `{PROTOCOL_VERSION}`."),
        )
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([PROTOCOL_VERSION.to_string()])),
        ))
        .build(),
    );
}

/// A handler that panics, or storage that fails, answers 500 `internal` (see `lib.rs`'s
/// `CatchPanicLayer` and `error.rs`): any endpoint can, so it is added here rather than named by
/// every handler.
fn add_internal_error(op: &mut Operation) {
    op.responses
        .responses
        .entry("500".into())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description("`internal`: the server failed; nothing was stored, try again.")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        });
}
