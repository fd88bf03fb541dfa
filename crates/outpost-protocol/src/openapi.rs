//! OpenAPI schemas (utoipa) of the wire types whose serde is written by hand, so that the
//! document says exactly what goes on the wire: ids are UUID strings, a stamp is a fixed-width
//! string, cursors, versions and mutation numbers are plain integers. The other types derive
//! `utoipa::ToSchema` where they are defined. Only built with the `openapi` feature.

use crate::api::{AccountId, Cursor, MAX_PULL_LIMIT, MutationNumber, PullQuery, Version};
use crate::{ClientId, MutationId, NoteId, NotebookId, STAMP_PATTERN, Stamp};
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

fn uuid_schema(description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uuid".into())))
        .description(Some(description))
        .examples([example])
        .into()
}

fn integer_schema(description: &str, minimum: Option<i64>, example: i64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::Custom("int64".into())))
        .minimum(minimum)
        .description(Some(description))
        .examples([example])
        .into()
}

macro_rules! schema {
    ($name:ident => $schema:expr) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

schema!(NoteId => uuid_schema(
    "A note's id: a UUID (new ones are UUIDv7), hyphenated.",
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
));
schema!(NotebookId => uuid_schema(
    "A notebook's id: a UUID (new ones are UUIDv7), hyphenated.",
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
));
schema!(MutationId => uuid_schema(
    "A mutation's id, the idempotency key: a UUID that never changes across retries.",
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d",
));
schema!(ClientId => uuid_schema(
    "A device's id: a UUID, one per local database; the node of its clock stamps.",
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e",
));
schema!(AccountId => uuid_schema(
    "An account's id: a UUID.",
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5f",
));
schema!(Stamp => ObjectBuilder::new()
    .schema_type(Type::String)
    .pattern(Some(STAMP_PATTERN))
    .description(Some(
        "A hybrid-logical-clock stamp: 12 hex digits of milliseconds since the Unix epoch, \
         8 of counter, 32 of the issuing device's id, lowercase and fixed width, so comparing \
         two stamps as strings orders them.",
    ))
    .examples(["0000018c1a2b-00000000-0190a1b2c3d47e5f8a9b0c1d2e3f4a5e"])
    .into());
schema!(Cursor => integer_schema(
    "A position in the account's commit order: per account, increasing without gaps. \
     0 is before the first change.",
    Some(0),
    17,
));
schema!(Version => integer_schema(
    "A record's version: 1 when created, one more on every change the server applies to it.",
    None,
    3,
));
schema!(MutationNumber => integer_schema(
    "A device's number for a mutation: increasing in the order the device sends (gaps \
     allowed). Numbers start at 1; the server takes a number at or below the last one it \
     handled for the device as a duplicate.",
    None,
    42,
));

/// The query of `GET /v1/sync/pull`: both parameters are optional. The server's default page
/// size is its own; the server's document adds it.
impl IntoParams for PullQuery {
    fn into_params(parameter_in_provider: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let place = parameter_in_provider().unwrap_or(ParameterIn::Query);
        vec![
            ParameterBuilder::new()
                .name("cursor")
                .parameter_in(place.clone())
                .required(utoipa::openapi::Required::False)
                .description(Some(
                    "Return the changes after this cursor: 0 (the default) for everything, \
                     else the `next_cursor` of the last page applied.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::Custom("int64".into())))
                        .minimum(Some(0))
                        .default(Some(0.into())),
                ))
                .build(),
            ParameterBuilder::new()
                .name("chain")
                .parameter_in(place.clone())
                .required(utoipa::openapi::Required::False)
                .description(Some(
                    "The `next_chain` that came with `cursor`. The server checks that its \
                     commit at `cursor` is the one the device saw there and answers 409 \
                     `history_changed` if not (the server was restored from an older copy and \
                     has moved on since); the device then reconciles.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^[0-9a-f]{32}$")),
                ))
                .build(),
            ParameterBuilder::new()
                .name("limit")
                .parameter_in(place)
                .required(utoipa::openapi::Required::False)
                .description(Some(format!(
                    "The most records in this page: 1 to {MAX_PULL_LIMIT}."
                )))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::Custom("int32".into())))
                        .minimum(Some(1))
                        .maximum(Some(MAX_PULL_LIMIT)),
                ))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MAX_PUSH_MUTATIONS, PushRequest};

    #[test]
    fn the_push_limit_in_the_schema_is_the_constant() {
        let schema = serde_json::to_value(PushRequest::schema()).expect("json");
        assert_eq!(
            schema["properties"]["mutations"]["maxItems"],
            serde_json::json!(MAX_PUSH_MUTATIONS),
            "{schema}"
        );
        assert_eq!(schema["properties"]["mutations"]["minItems"], 1, "{schema}");
    }

    #[test]
    fn hand_written_schemas_describe_the_serialised_form() {
        let stamp = serde_json::to_value(Stamp::schema()).expect("json");
        assert_eq!(stamp["type"], "string");
        assert_eq!(stamp["pattern"], STAMP_PATTERN);
        let example: Stamp = serde_json::from_value(stamp["examples"][0].clone()).expect("stamp");
        assert_eq!(
            serde_json::to_value(example).expect("json"),
            stamp["examples"][0]
        );
        let id = serde_json::to_value(NoteId::schema()).expect("json");
        assert_eq!(
            (id["type"].as_str(), id["format"].as_str()),
            (Some("string"), Some("uuid"))
        );
        let cursor = serde_json::to_value(Cursor::schema()).expect("json");
        assert_eq!(cursor["type"], "integer");
        assert_eq!(
            serde_json::to_value(Cursor(17)).expect("json"),
            cursor["examples"][0]
        );
    }
}
