//! The OpenAPI document at `/v1/openapi.json` matches the code:
//! - the router serves exactly the operations the document lists (read from the router's source
//!   and probed over HTTP), with the headers, the security and the error body;
//! - values of the real protocol types, made here and answered by a real server, validate
//!   against the document's schemas (a small JSON Schema checker below, strict about keywords
//!   it does not know, so that a schema it cannot check fails instead of passing);
//! - every status a real server answered is one the document lists for that operation, and its
//!   description names the error code;
//! - `docs/protocol.md` names every endpoint, error code, mutation name and limit.
//!
//! Error codes are the protocol's (`api::codes`) and the blob endpoints' (`blobs::codes`).

use outpost_protocol::api::{
    AccountId, Credentials, Cursor, ErrorBody, HEADER_CLIENT_ID, HEADER_PROTOCOL, Health,
    MAX_PULL_LIMIT, MAX_PUSH_MUTATIONS, MAX_REQUEST_BYTES, MAX_STAMP_SKEW_MS, Mutation,
    MutationNumber, MutationResult, Outcome, Poke, PullResponse, PushRequest, PushResponse, Record,
    Session, Version, codes,
};
use outpost_protocol::blobs::{
    self, BlobHash, BlobStart, BlobStatus, HEADER_CHUNK_SHA256, Limits, MAX_CHUNK_BYTES,
};
use outpost_protocol::mutation::names;
use outpost_protocol::{
    ClientId, Entity, Fields, MAX_BODY_BYTES, MAX_TITLE_BYTES, MUTATION_SCHEMA_VERSION, MutationId,
    NoteId, NotebookId, PROTOCOL_VERSION, STAMP_PATTERN, Stamp,
};
use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, openapi, routes, serve};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Every code an `ErrorBody` can carry: the protocol's and the blob endpoints'.
const ERROR_CODES: &[&str] = &[
    codes::BAD_REQUEST,
    codes::INVALID_JSON,
    codes::PAYLOAD_TOO_LARGE,
    codes::BATCH_TOO_LARGE,
    codes::EMPTY_BATCH,
    codes::UNAUTHORIZED,
    codes::FORBIDDEN,
    codes::NOT_FOUND,
    codes::EMAIL_TAKEN,
    codes::RATE_LIMITED,
    codes::CURSOR_FROM_THE_FUTURE,
    codes::RESET_REQUIRED,
    codes::HISTORY_CHANGED,
    codes::CLIENT_TOO_OLD,
    codes::UNSUPPORTED_PROTOCOL,
    codes::UNSUPPORTED_MEDIA_TYPE,
    codes::INTERNAL,
    codes::UNAVAILABLE,
    blobs::codes::OFFSET_MISMATCH,
    blobs::codes::CHUNK_DAMAGED,
    blobs::codes::BLOB_MISMATCH,
    blobs::codes::BLOB_TOO_LARGE,
    blobs::codes::OVER_QUOTA,
    blobs::codes::SERVER_FULL,
];

#[test]
fn the_list_of_error_codes_holds_every_protocol_code() {
    for code in codes::ERRORS {
        assert!(
            ERROR_CODES.contains(code),
            "{code} is missing from ERROR_CODES"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A real server on 127.0.0.1 with an ephemeral port and a temp SQLite database.

struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = SqliteStorage::open(dir.path()).expect("open sqlite storage");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            AppState::new(Arc::new(storage)),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            base,
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The document as JSON, the way it is served.
fn doc() -> Value {
    serde_json::to_value(openapi::document()).expect("the document serialises")
}

/// Every `(METHOD, path)` the document lists.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    op
}

/// The documented reply of an operation for `status` (it must be documented).
fn response<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let r = &operation(doc, method, path)["responses"][status.to_string()];
    assert!(
        r.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    r
}

// ---------------------------------------------------------------------------------------------
// The document is served, and is the generated one.

#[tokio::test]
async fn the_document_is_served_without_an_account() {
    let server = Server::start().await;
    let resp = http()
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served: Value = resp.json().await.expect("json");
    // `OUTPOST_OPENAPI_OUT=path cargo test -p outpost-server --test openapi` writes it out.
    if let Some(out) = std::env::var_os("OUTPOST_OPENAPI_OUT") {
        let text = serde_json::to_string_pretty(&served).expect("json");
        std::fs::write(out, text + "\n").expect("write the document");
    }
    assert_eq!(served, doc(), "the served document is the generated one");
    assert!(
        served["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.1")
    );
    assert_eq!(served["info"]["version"], PROTOCOL_VERSION.to_string());
    let bearer = &served["components"]["securitySchemes"][openapi::BEARER];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
}

// ---------------------------------------------------------------------------------------------
// The router serves exactly what the document lists.

/// The routes `router()` declares, read from its source: `(METHOD, path)`.
fn routes_in_the_router_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let start = source
        .find("let v1 = Router::new()")
        .expect("router() builds the /v1 routes as `let v1 = Router::new()...`");
    let end = start + source[start..].find(';').expect("the end of the v1 router");
    let v1 = &source[start..end];
    assert!(
        source.contains(".nest(\"/v1\", v1)"),
        "the v1 routes are nested under /v1"
    );
    assert_eq!(
        source.matches(".route(").count(),
        v1.matches(".route(").count(),
        "every route is in the v1 router (teach this test about any other)"
    );
    let mut routes = BTreeSet::new();
    for call in v1.split(".route(").skip(1) {
        let path = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|rest| rest.split_once('"'))
            .map(|(path, _)| path)
            .expect("a route path literal");
        // The method router: everything up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut end = call.len();
        for (i, c) in call.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let methods = &call[..end];
        let mut found = 0;
        for method in METHODS {
            let needle = format!("{method}(");
            for (at, _) in methods.match_indices(&needle) {
                let before = methods[..at].chars().last();
                if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                    routes.insert((method.to_uppercase(), format!("/v1{path}")));
                    found += 1;
                }
            }
        }
        assert!(
            found > 0 && !methods.contains("any("),
            "cannot read the methods of route {path}: {methods}"
        );
    }
    routes
}

#[test]
fn the_router_declares_exactly_the_documented_operations() {
    let declared = routes_in_the_router_source();
    let documented = documented_operations(&doc());
    assert!(declared.len() >= 8, "{declared:?}");
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in the document: {undocumented:?}; in the document but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn the_server_answers_every_documented_operation_and_only_those() {
    let server = Server::start().await;
    let doc = doc();
    let documented = documented_operations(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let resp = http()
                .request(m, server.url(path))
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            if documented.contains(&(method.to_owned(), path.clone())) {
                assert!(
                    status != 404 && status != 405,
                    "{method} {path} is documented but the router does not serve it: {status} {body}"
                );
                // Whatever it answered without credentials or a body is documented.
                response(&doc, method, path, status);
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answered: {body}"
                );
                let error: ErrorBody = serde_json::from_str(&body).expect("an error body");
                assert_eq!(error.code, codes::BAD_REQUEST);
            }
        }
    }
    let unknown = http()
        .get(server.url("/v1/no-such-endpoint"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        unknown.status(),
        404,
        "the probe tells served from unserved"
    );
}

// ---------------------------------------------------------------------------------------------
// Every operation says how to call it and how it fails.

#[test]
fn every_operation_declares_headers_security_and_error_bodies() {
    let doc = doc();
    let mut described = String::new();
    described.push_str(doc["info"]["description"].as_str().expect("description"));
    for (method, path) in documented_operations(&doc) {
        let op = operation(&doc, &method, &path);
        let authenticated = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get(openapi::BEARER).is_some()));
        assert_eq!(
            authenticated,
            !matches!(
                path.as_str(),
                "/v1/health" | "/v1/openapi.json" | "/v1/accounts" | "/v1/sessions"
            ),
            "{method} {path}: only health, this document, register and login need no token"
        );
        for header in [HEADER_CLIENT_ID, HEADER_PROTOCOL] {
            let param = op["parameters"]
                .as_array()
                .and_then(|ps| {
                    ps.iter()
                        .find(|p| p["name"] == header && p["in"] == "header")
                })
                .unwrap_or_else(|| panic!("{method} {path} documents the {header} header"));
            assert_eq!(
                param["required"].as_bool().unwrap_or(false),
                authenticated,
                "{method} {path}: {header} is required exactly where a token is"
            );
        }
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path} has a success reply"
        );
        assert!(responses.contains_key("500"), "{method} {path} can fail");
        if authenticated {
            for status in ["400", "401", "403"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: credentials can be refused with {status}"
                );
            }
        }
        for (status, reply) in responses {
            let description = reply["description"].as_str().expect("description");
            described.push_str(description);
            if status.as_str() >= "400" {
                assert_eq!(
                    reply["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} answers an ErrorBody"
                );
                assert!(
                    ERROR_CODES
                        .iter()
                        .any(|c| description.contains(&format!("`{c}`"))),
                    "{method} {path} {status} names its error codes: {description}"
                );
            }
        }
    }
    for code in ERROR_CODES {
        assert!(
            described.contains(&format!("`{code}`")),
            "the document never says when `{code}` is answered"
        );
    }
    let pull = operation(&doc, "GET", "/v1/sync/pull");
    let param = |name: &str| {
        pull["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name && p["in"] == "query"))
            .unwrap_or_else(|| panic!("pull documents `{name}`"))
            .clone()
    };
    assert_eq!(param("cursor")["schema"]["minimum"], 0);
    assert_eq!(param("limit")["schema"]["minimum"], 1);
    assert_eq!(param("limit")["schema"]["maximum"], MAX_PULL_LIMIT);
    assert_eq!(
        param("limit")["schema"]["default"],
        routes::sync::DEFAULT_PULL_LIMIT
    );
    let chunk_header = operation(&doc, "PATCH", "/v1/blobs/{sha256}")["parameters"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["name"] == HEADER_CHUNK_SHA256 && p["in"] == "header")
        })
        .cloned()
        .expect("PATCH documents the chunk's SHA-256 header");
    assert_eq!(chunk_header["required"], true);
    let download = operation(&doc, "GET", "/v1/blobs/{sha256}");
    for status in ["200", "206"] {
        assert!(
            download["responses"][status]["content"]["application/octet-stream"].is_object(),
            "a download is raw bytes: {status}"
        );
    }
    let events = response(&doc, "GET", "/v1/sync/events", 200);
    assert!(
        events["content"]["text/event-stream"].is_object(),
        "{events}"
    );
}

// ---------------------------------------------------------------------------------------------
// A small JSON Schema checker: the keywords utoipa writes, and nothing else.

struct Validator<'a> {
    doc: &'a Value,
}

impl Validator<'_> {
    fn named(&self, name: &str, value: &impl Serialize) -> Result<(), String> {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        let value = serde_json::to_value(value).expect("serialise");
        self.check(&schema, &value, name)
    }

    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let Some(schema) = schema.as_object() else {
            return match schema {
                Value::Bool(true) => Ok(()),
                Value::Bool(false) => Err(format!("{at}: nothing is allowed here")),
                _ => Err(format!("{at}: not a schema: {schema}")),
            };
        };
        for (keyword, arg) in schema {
            match keyword.as_str() {
                "$ref" => {
                    let name = arg
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        .ok_or_else(|| format!("{at}: unsupported $ref {arg}"))?;
                    let target = &self.doc["components"]["schemas"][name];
                    if target.is_null() {
                        return Err(format!("{at}: $ref to a missing schema {name}"));
                    }
                    self.check(target, value, at)?;
                }
                "type" => {
                    let types: Vec<&str> = match arg {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => return Err(format!("{at}: bad type {arg}")),
                    };
                    let ok = types.iter().any(|t| match *t {
                        "null" => value.is_null(),
                        "boolean" => value.is_boolean(),
                        "string" => value.is_string(),
                        "array" => value.is_array(),
                        "object" => value.is_object(),
                        "number" => value.is_number(),
                        "integer" => value.is_i64() || value.is_u64(),
                        _ => false,
                    });
                    if !ok {
                        return Err(format!("{at}: {value} is not of type {arg}"));
                    }
                }
                "enum" => {
                    let allowed = arg.as_array().ok_or(format!("{at}: bad enum"))?;
                    if !allowed.contains(value) {
                        return Err(format!("{at}: {value} is not one of {arg}"));
                    }
                }
                "const" if arg != value => {
                    return Err(format!("{at}: {value} is not {arg}"));
                }
                "const" => {}
                "format" => check_format(arg.as_str().unwrap_or_default(), value, at)?,
                "pattern" => {
                    if let Some(s) = value.as_str() {
                        let pattern = arg.as_str().ok_or(format!("{at}: bad pattern"))?;
                        if !matches_pattern(pattern, s) {
                            return Err(format!("{at}: {s:?} does not match {pattern}"));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(v), Some(limit)) = (value.as_f64(), arg.as_f64()) {
                        let ok = if keyword == "minimum" {
                            v >= limit
                        } else {
                            v <= limit
                        };
                        if !ok {
                            return Err(format!("{at}: {v} is out of range ({keyword} {limit})"));
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let (Some(items), Some(limit)) = (value.as_array(), arg.as_u64()) {
                        let n = items.len() as u64;
                        let ok = if keyword == "minItems" {
                            n >= limit
                        } else {
                            n <= limit
                        };
                        if !ok {
                            return Err(format!("{at}: {n} items ({keyword} {limit})"));
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            self.check(arg, item, &format!("{at}[{i}]"))?;
                        }
                    }
                }
                "required" => {
                    if let Some(object) = value.as_object() {
                        for name in arg.as_array().ok_or(format!("{at}: bad required"))? {
                            let name = name.as_str().unwrap_or_default();
                            if !object.contains_key(name) {
                                return Err(format!("{at}: the required `{name}` is missing"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(object) = value.as_object() {
                        let properties = arg.as_object().ok_or(format!("{at}: bad properties"))?;
                        for (name, v) in object {
                            if let Some(s) = properties.get(name) {
                                self.check(s, v, &format!("{at}.{name}"))?;
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(object) = value.as_object() {
                        let known = schema.get("properties").and_then(Value::as_object);
                        for (name, v) in object {
                            if known.is_none_or(|k| !k.contains_key(name)) {
                                self.check(arg, v, &format!("{at}.{name}"))?;
                            }
                        }
                    }
                }
                "propertyNames" => {
                    if let Some(object) = value.as_object() {
                        for name in object.keys() {
                            self.check(arg, &Value::String(name.clone()), &format!("{at}.{name}"))?;
                        }
                    }
                }
                "allOf" => {
                    for s in arg.as_array().ok_or(format!("{at}: bad allOf"))? {
                        self.check(s, value, at)?;
                    }
                }
                "anyOf" | "oneOf" => {
                    let branches = arg.as_array().ok_or(format!("{at}: bad {keyword}"))?;
                    let errors: Vec<String> = branches
                        .iter()
                        .filter_map(|s| self.check(s, value, at).err())
                        .collect();
                    let passed = branches.len() - errors.len();
                    if passed == 0 || (keyword == "oneOf" && passed > 1) {
                        return Err(format!(
                            "{at}: {passed} of the {keyword} branches match {value}: {errors:?}"
                        ));
                    }
                }
                // Annotations: they assert nothing.
                "description" | "title" | "examples" | "example" | "default" | "deprecated"
                | "readOnly" | "writeOnly" | "discriminator" => {}
                other => return Err(format!("{at}: the checker does not know `{other}`")),
            }
        }
        Ok(())
    }
}

fn check_format(format: &str, value: &Value, at: &str) -> Result<(), String> {
    let ok = match format {
        "uuid" => value.as_str().is_none_or(|s| {
            s.len() == 36 && uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
        }),
        "int64" => value.is_i64() || !value.is_number(),
        "int32" => value.as_i64().is_none_or(|n| i32::try_from(n).is_ok()) && !value.is_f64(),
        _ => return Err(format!("{at}: the checker does not know format {format}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {value} is not a {format}"))
    }
}

/// A regular expression of the subset the schemas use: `^`, `$`, literal characters, classes
/// like `[0-9a-f]` and counts like `{12}`. Anything else fails loudly.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let body = pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .unwrap_or_else(|| panic!("only anchored patterns are supported: {pattern}"));
    let mut atoms: Vec<(Vec<(char, char)>, usize)> = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let class = match c {
            '[' => {
                let mut ranges = Vec::new();
                loop {
                    let lo = chars.next().expect("a closed class");
                    if lo == ']' {
                        break;
                    }
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        let hi = chars.next().expect("a range end");
                        ranges.push((lo, hi));
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                ranges
            }
            '{' => {
                let count: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let last = atoms.last_mut().expect("a count follows an atom");
                last.1 = count.parse().expect("a fixed count");
                continue;
            }
            '\\' | '(' | ')' | '|' | '*' | '+' | '?' | '.' => {
                panic!("the checker does not support {c:?} in {pattern}")
            }
            literal => vec![(literal, literal)],
        };
        atoms.push((class, 1));
    }
    let mut text = text.chars();
    for (class, count) in atoms {
        for _ in 0..count {
            match text.next() {
                Some(c) if class.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) => {}
                _ => return false,
            }
        }
    }
    text.next().is_none()
}

#[test]
fn the_stamp_pattern_accepts_exactly_what_the_parser_accepts() {
    let node = ClientId::new();
    let mut samples: Vec<String> = [0, 1, 1_732_000_000_123, outpost_protocol::MAX_PHYSICAL_MS]
        .into_iter()
        .flat_map(|ms| {
            [0, 7, u32::MAX].map(|counter| {
                Stamp {
                    physical_ms: ms,
                    counter,
                    node,
                }
                .to_string()
            })
        })
        .collect();
    samples.extend(outpost_protocol::test_util::MALFORMED_STAMPS.map(String::from));
    for s in samples {
        assert_eq!(
            matches_pattern(STAMP_PATTERN, &s),
            s.parse::<Stamp>().is_ok(),
            "{s:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Values of the real types validate against the schemas.

fn stamp(offset_ms: u64, node: ClientId) -> Stamp {
    Stamp {
        physical_ms: 1_732_000_000_000 + offset_ms,
        counter: 3,
        node,
    }
}

fn fields(pairs: &[(&str, Value)], node: ClientId) -> Fields {
    outpost_protocol::test_util::fields(pairs, stamp(1, node))
}

fn mutation(
    number: i64,
    name: &str,
    entity: Entity,
    entity_id: String,
    fields: Fields,
    base: Option<i64>,
) -> Mutation {
    Mutation::put(entity, entity_id, number)
        .named(name)
        .with_fields(fields)
        .base(base)
        .build()
}

fn sample_push(node: ClientId) -> PushRequest {
    let note = NoteId::new().to_string();
    let notebook = NotebookId::new();
    PushRequest {
        mutations: vec![
            mutation(
                1,
                names::NOTEBOOK_PUT,
                Entity::Notebook,
                notebook.to_string(),
                fields(&[("name", json!("Site visits"))], node),
                None,
            ),
            mutation(
                2,
                names::NOTE_PUT,
                Entity::Note,
                note.clone(),
                fields(
                    &[
                        ("title", json!("Pump 3")),
                        ("body", json!("Bearing *noisy*.")),
                        ("notebook_id", json!(notebook)),
                        ("tags", json!(["pumps", "urgent"])),
                        ("pinned", json!(true)),
                        ("archived", json!(false)),
                        ("deleted", json!(false)),
                    ],
                    node,
                ),
                None,
            ),
            mutation(
                5,
                names::NOTE_PUT,
                Entity::Note,
                note.clone(),
                fields(&[("notebook_id", Value::Null)], node),
                Some(1),
            ),
            mutation(
                6,
                names::PREF_PUT,
                Entity::Pref,
                "editor.font_size".into(),
                fields(&[("value", json!({"px": 14}))], node),
                None,
            ),
            mutation(
                7,
                names::NOTE_PURGE,
                Entity::Note,
                note,
                Fields::new(),
                Some(2),
            ),
        ],
    }
}

fn sample_record(node: ClientId) -> Record {
    Record {
        entity: Entity::Note,
        id: NoteId::new().to_string(),
        version: Version(4),
        cursor: Cursor(17),
        purged: false,
        fields: fields(
            &[("title", json!("Pump 3")), ("body", json!("theirs"))],
            node,
        ),
    }
}

fn every_outcome(node: ClientId) -> Vec<Outcome> {
    let applied = Outcome::Applied {
        version: Version(3),
        cursor: Cursor(17),
        clamped_skew_ms: None,
    };
    vec![
        applied.clone(),
        Outcome::Applied {
            version: Version(1),
            cursor: Cursor(18),
            clamped_skew_ms: Some(86_400_000),
        },
        Outcome::Duplicate {
            first: Some(Box::new(applied)),
        },
        Outcome::Duplicate { first: None },
        Outcome::Duplicate {
            first: Some(Box::new(Outcome::Rejected {
                code: codes::INVALID_FIELD.into(),
                message: "note.pinned must be true or false".into(),
            })),
        },
        Outcome::Conflict {
            current: sample_record(node),
        },
        Outcome::Rejected {
            code: codes::TOO_LARGE.into(),
            message: "body is 10485761 bytes; the limit is 10485760 bytes".into(),
        },
    ]
}

#[test]
fn values_of_the_real_types_validate_against_the_schemas() {
    let doc = doc();
    let v = Validator { doc: &doc };
    let node = ClientId::new();
    let ok = |name: &str, value: &dyn erased::Value| {
        if let Err(e) = v.named(name, &value.json()) {
            panic!("{name} must validate: {e}\n{}", value.json());
        }
    };

    ok("PushRequest", &sample_push(node));
    let outcomes = every_outcome(node);
    let statuses: BTreeSet<String> = outcomes
        .iter()
        .map(|o| {
            serde_json::to_value(o).expect("json")["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["applied", "duplicate", "conflict", "rejected"].map(String::from)),
        "every outcome is tried"
    );
    for outcome in &outcomes {
        ok("Outcome", outcome);
    }
    ok(
        "PushResponse",
        &PushResponse {
            results: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| MutationResult {
                    id: MutationId::new(),
                    number: MutationNumber(i as i64 + 1),
                    outcome,
                })
                .collect(),
            last_mutation_number: MutationNumber(7),
            server_time_ms: 1_732_000_000_000,
        },
    );
    ok(
        "PullResponse",
        &PullResponse {
            records: vec![
                sample_record(node),
                Record {
                    entity: Entity::Note,
                    id: NoteId::new().to_string(),
                    version: Version(2),
                    cursor: Cursor(19),
                    purged: true,
                    fields: Fields::new(),
                },
                Record {
                    entity: Entity::Pref,
                    id: "theme".into(),
                    version: Version(1),
                    cursor: Cursor(20),
                    purged: false,
                    fields: fields(&[("value", json!("dark"))], node),
                },
            ],
            next_cursor: Cursor(20),
            next_chain: Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
            has_more: true,
            remaining: 4711,
            last_mutation_number: MutationNumber(7),
            server_time_ms: 1_732_000_000_000,
        },
    );
    ok(
        "ErrorBody",
        &ErrorBody {
            code: codes::EMPTY_BATCH.into(),
            message: "a push needs at least one mutation".into(),
        },
    );
    ok(
        "Credentials",
        &Credentials {
            email: "ann@example.org".into(),
            password: "correct horse battery".into(),
            client_id: node,
            device_name: None,
        },
    );
    ok(
        "Session",
        &Session {
            account_id: AccountId(uuid::Uuid::now_v7()),
            token: format!("opt_{}", "ab".repeat(32)),
        },
    );
    ok(
        "Health",
        &Health {
            status: "ok".into(),
            version: "0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            storage: "sqlite".into(),
            server_time_ms: Some(1_733_382_405_123),
        },
    );
    ok("Poke", &Poke { cursor: Cursor(0) });
    ok("BlobStart", &BlobStart { size: 1_048_576 });
    ok(
        "BlobStatus",
        &BlobStatus {
            sha256: BlobHash::of(b"pump 3.jpg"),
            size: 3_000_000,
            received: 1_048_576,
            complete: false,
            chunks: 1,
            chunks_lost: 2,
        },
    );
    for quota_bytes in [None, Some(1 << 30)] {
        ok(
            "Limits",
            &Limits {
                max_blob_bytes: 256 << 20,
                chunk_bytes: 1 << 20,
                quota_bytes,
                used_bytes: 12_345,
            },
        );
    }
}

#[test]
fn values_the_server_would_refuse_do_not_validate() {
    let doc = doc();
    let v = Validator { doc: &doc };
    let node = ClientId::new();
    let push = serde_json::to_value(sample_push(node)).expect("json");
    let mut bad: Vec<(&str, Value)> = Vec::new();
    let mut with = |name: &'static str, value: &Value, edit: &dyn Fn(&mut Value)| {
        let mut value = value.clone();
        edit(&mut value);
        bad.push((name, value));
    };
    with("PushRequest", &push, &|p| p["extra"] = json!(1));
    with("PushRequest", &push, &|p| p["mutations"] = json!([]));
    with("PushRequest", &push, &|p| {
        p["mutations"][0]["fields"]["name"]["stamp"] =
            json!("0000018C1A2B-00000000-0190a1b2c3d47e5f8a9b0c1d2e3f4a5e");
    });
    with("PushRequest", &push, &|p| {
        p["mutations"][0]["id"] = json!("not-a-uuid")
    });
    with("PushRequest", &push, &|p| {
        p["mutations"][0]["number"] = json!("7")
    });
    with("PushRequest", &push, &|p| {
        p["mutations"][0]["entity"] = json!("folder")
    });
    with("PushRequest", &push, &|p| {
        if let Some(m) = p["mutations"][0].as_object_mut() {
            m.remove("schema_version");
        }
    });
    with("PushRequest", &push, &|p| {
        p["mutations"][0]["fields"]["name"]["extra"] = json!(1)
    });
    let applied = serde_json::to_value(Outcome::Applied {
        version: Version(1),
        cursor: Cursor(1),
        clamped_skew_ms: None,
    })
    .expect("json");
    with("Outcome", &applied, &|o| o["status"] = json!("maybe"));
    with("Outcome", &applied, &|o| {
        if let Some(m) = o.as_object_mut() {
            m.remove("cursor");
        }
    });
    with("Outcome", &applied, &|o| o["cursor"] = json!(-1));
    with("Outcome", &applied, &|o| o["extra"] = json!(true));
    with("ErrorBody", &json!({"code": "x", "message": "y"}), &|e| {
        if let Some(m) = e.as_object_mut() {
            m.remove("message");
        }
    });
    with("ErrorBody", &json!({"code": "x", "message": "y"}), &|e| {
        e["code"] = json!(400)
    });
    let status = serde_json::to_value(BlobStatus {
        sha256: BlobHash::of(b"x"),
        size: 1,
        received: 0,
        complete: false,
        chunks: 0,
        chunks_lost: 0,
    })
    .expect("json");
    with("BlobStatus", &status, &|s| {
        s["sha256"] = json!("../../etc/passwd")
    });
    with("BlobStatus", &status, &|s| {
        s["sha256"] = json!("AB".repeat(32))
    });
    with("BlobStatus", &status, &|s| s["received"] = json!(-1));
    for (name, value) in bad {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        assert!(
            v.check(&schema, &value, name).is_err(),
            "{name} must not validate: {value}"
        );
        let parsed = match name {
            "PushRequest" => serde_json::from_value::<PushRequest>(value.clone()).is_ok(),
            "Outcome" => serde_json::from_value::<Outcome>(value.clone()).is_ok(),
            "BlobStatus" => serde_json::from_value::<BlobStatus>(value.clone()).is_ok(),
            _ => serde_json::from_value::<ErrorBody>(value.clone()).is_ok(),
        };
        // Except for limits the server checks after parsing (an empty batch, a negative
        // cursor), what the schema refuses serde refuses too.
        let checked_after_parsing = value["mutations"] == json!([]) || value["cursor"] == json!(-1);
        assert!(
            !parsed || checked_after_parsing,
            "{name}: the schema refuses what serde accepts: {value}"
        );
    }
}

/// `&dyn` access to "serialise me" for the table of samples above.
mod erased {
    pub trait Value {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Value for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("serialise")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A real server's replies validate against the documented replies.

struct Checked<'a> {
    doc: &'a Value,
    server: &'a Server,
}

impl Checked<'_> {
    /// Sends, then checks the reply against the document: the status is listed for the
    /// operation, the body validates against its schema, and an error's code is named in the
    /// reply's description. Returns the status and the body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let op_path = path.split('?').next().unwrap_or(path);
        let resp = request.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        let documented = response(self.doc, method, op_path, status);
        if text.is_empty() {
            assert!(
                documented.get("content").is_none(),
                "{method} {path} {status}: the document promises a body"
            );
            return (status, Value::Null);
        }
        let media = &documented["content"][&content_type];
        assert!(
            media.is_object(),
            "{method} {path} {status}: {content_type} is not documented: {documented}"
        );
        let body: Value = serde_json::from_str(&text).expect("a JSON reply");
        Validator { doc: self.doc }
            .check(
                &media["schema"],
                &body,
                &format!("{method} {path} {status}"),
            )
            .unwrap_or_else(|e| panic!("{e}\n{body}"));
        if status >= 400 {
            let code = body["code"].as_str().expect("code");
            let description = documented["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("`{code}`")),
                "{method} {path} {status}: the document does not name `{code}`: {description}"
            );
        }
        (status, body)
    }

    fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        http().request(m, self.server.url(path))
    }

    /// Checks a request body against the documented request body of the operation.
    fn check_request(&self, method: &str, path: &str, body: &impl Serialize) {
        let schema = &operation(self.doc, method, path)["requestBody"]["content"]["application/json"]
            ["schema"];
        let body = serde_json::to_value(body).expect("json");
        Validator { doc: self.doc }
            .check(schema, &body, &format!("{method} {path} request"))
            .unwrap_or_else(|e| panic!("{e}\n{body}"));
    }
}

struct Device {
    client: ClientId,
    token: String,
}

impl Device {
    fn sign(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .bearer_auth(&self.token)
            .header(HEADER_CLIENT_ID, self.client.to_string())
            .header(HEADER_PROTOCOL, PROTOCOL_VERSION.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_of_a_real_server_validate_against_the_document() {
    let server = Server::start().await;
    let doc = doc();
    let c = Checked {
        doc: &doc,
        server: &server,
    };
    let (status, _) = c
        .send("GET", "/v1/health", c.request("GET", "/v1/health"))
        .await;
    assert_eq!(status, 200);

    // Accounts.
    let creds = |client_id, password: &str| Credentials {
        email: "ann@example.org".into(),
        password: password.into(),
        client_id,
        device_name: Some("laptop".into()),
    };
    let a = ClientId::new();
    c.check_request("POST", "/v1/accounts", &creds(a, "correct horse battery"));
    let (status, session) = c
        .send(
            "POST",
            "/v1/accounts",
            c.request("POST", "/v1/accounts")
                .json(&creds(a, "correct horse battery")),
        )
        .await;
    assert_eq!(status, 201);
    let a = Device {
        client: a,
        token: serde_json::from_value::<Session>(session)
            .expect("session")
            .token,
    };
    let (status, _) = c
        .send(
            "POST",
            "/v1/accounts",
            c.request("POST", "/v1/accounts")
                .json(&creds(ClientId::new(), "another password")),
        )
        .await;
    assert_eq!(status, 409);
    let b = ClientId::new();
    let (status, session) = c
        .send(
            "POST",
            "/v1/sessions",
            c.request("POST", "/v1/sessions")
                .json(&creds(b, "correct horse battery")),
        )
        .await;
    assert_eq!(status, 200);
    let b = Device {
        client: b,
        token: serde_json::from_value::<Session>(session)
            .expect("session")
            .token,
    };

    // Push: every outcome.
    let note = NoteId::new().to_string();
    let put = |number: i64, pairs: &[(&str, Value)], base: Option<i64>| {
        mutation(
            number,
            names::NOTE_PUT,
            Entity::Note,
            note.clone(),
            fields(pairs, a.client),
            base,
        )
    };
    let first = put(
        1,
        &[("title", json!("Pump 3")), ("body", json!("v1"))],
        None,
    );
    let mut fast = put(3, &[("pinned", json!(true))], Some(1));
    for change in fast.fields.values_mut() {
        change.stamp.physical_ms = outpost_server::clock::now_ms() + 24 * 3600 * 1000;
    }
    let batch = PushRequest {
        mutations: vec![
            first.clone(),
            put(2, &[("body", json!("v2"))], Some(1)),
            fast,
            put(4, &[("title", json!(5))], None),
        ],
    };
    c.check_request("POST", "/v1/sync/push", &batch);
    let (status, reply) = c
        .send(
            "POST",
            "/v1/sync/push",
            a.sign(c.request("POST", "/v1/sync/push")).json(&batch),
        )
        .await;
    assert_eq!(status, 200);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut note_outcomes = |reply: &Value| {
        for r in reply["results"].as_array().expect("results") {
            seen.insert(r["outcome"]["status"].as_str().expect("status").to_owned());
        }
    };
    note_outcomes(&reply);
    assert!(
        reply["results"][2]["outcome"]["clamped_skew_ms"].is_u64(),
        "a fast clock is reported: {reply}"
    );
    // Number 2 again, but another mutation: refused, never taken as a duplicate.
    let reused = put(2, &[("title", json!("reused"))], Some(1));
    let again = PushRequest {
        mutations: vec![first, reused, put(5, &[("body", json!("stale"))], Some(1))],
    };
    let (status, reply) = c
        .send(
            "POST",
            "/v1/sync/push",
            a.sign(c.request("POST", "/v1/sync/push")).json(&again),
        )
        .await;
    assert_eq!(status, 200);
    note_outcomes(&reply);
    assert_eq!(
        reply["results"][1]["outcome"]["code"],
        codes::NUMBER_REUSED,
        "{reply}"
    );
    assert_eq!(
        seen,
        BTreeSet::from(["applied", "duplicate", "conflict", "rejected"].map(String::from)),
        "a real server gave every outcome"
    );

    // Pull, whole and in pages.
    for query in [
        "/v1/sync/pull",
        "/v1/sync/pull?cursor=0&limit=1",
        "/v1/sync/pull?cursor=1",
    ] {
        let (status, page) = c.send("GET", query, b.sign(c.request("GET", query))).await;
        assert_eq!(status, 200, "{page}");
    }

    // Server-sent events: the content type is the documented one, each event a Poke.
    let resp = b
        .sign(c.request("GET", "/v1/sync/events"))
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(response(&doc, "GET", "/v1/sync/events", 200)["content"][&content_type].is_object());
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        use futures_util::StreamExt;
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the first poke at once")
            .expect("open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let event = text.split("\n\n").next().unwrap_or_default();
    assert!(event.lines().any(|l| l == "event: poke"), "{event}");
    let data = event
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("data");
    let poke: Value = serde_json::from_str(data.trim()).expect("json");
    Validator { doc: &doc }
        .check(&json!({"$ref": "#/components/schemas/Poke"}), &poke, "poke")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(stream);

    // Refusals: each status and code is the documented one.
    let push = "/v1/sync/push";
    let one = PushRequest {
        mutations: vec![put(10, &[("title", json!("x"))], None)],
    };
    let cases: Vec<(&str, &str, reqwest::RequestBuilder, u16)> = vec![
        (
            "POST",
            push,
            a.sign(c.request("POST", push))
                .json(&PushRequest { mutations: vec![] }),
            400,
        ),
        (
            "POST",
            push,
            a.sign(c.request("POST", push))
                .header("content-type", "application/json")
                .body("{\"mutations\": ["),
            400,
        ),
        (
            "POST",
            push,
            a.sign(c.request("POST", push))
                .header("content-type", "text/plain")
                .body("{}"),
            415,
        ),
        (
            "POST",
            push,
            a.sign(c.request("POST", push)).json(&PushRequest {
                mutations: (0..=MAX_PUSH_MUTATIONS as i64)
                    .map(|n| put(100 + n, &[("title", json!("x"))], None))
                    .collect(),
            }),
            413,
        ),
        (
            "POST",
            push,
            a.sign(c.request("POST", push)).json(&PushRequest {
                mutations: vec![Mutation {
                    schema_version: 0,
                    ..put(20, &[("title", json!("x"))], None)
                }],
            }),
            426,
        ),
        (
            "POST",
            push,
            c.request("POST", push)
                .header(HEADER_CLIENT_ID, a.client.to_string())
                .header(HEADER_PROTOCOL, "1")
                .json(&one),
            401,
        ),
        (
            "POST",
            push,
            c.request("POST", push)
                .bearer_auth(&a.token)
                .header(HEADER_CLIENT_ID, b.client.to_string())
                .header(HEADER_PROTOCOL, "1")
                .json(&one),
            403,
        ),
        (
            "POST",
            push,
            c.request("POST", push)
                .bearer_auth(&a.token)
                .header(HEADER_CLIENT_ID, a.client.to_string())
                .header(HEADER_PROTOCOL, "2")
                .json(&one),
            400,
        ),
        (
            "GET",
            "/v1/sync/pull?cursor=999",
            b.sign(c.request("GET", "/v1/sync/pull?cursor=999")),
            400,
        ),
        (
            "GET",
            "/v1/sync/pull?limit=0",
            b.sign(c.request("GET", "/v1/sync/pull?limit=0")),
            400,
        ),
        (
            "GET",
            "/v1/sync/events",
            c.request("GET", "/v1/sync/events")
                .bearer_auth(&b.token)
                .header(HEADER_PROTOCOL, "1"),
            400,
        ),
        (
            "POST",
            "/v1/sessions",
            c.request("POST", "/v1/sessions")
                .json(&creds(ClientId::new(), "wrong password")),
            401,
        ),
        (
            "POST",
            "/v1/accounts",
            c.request("POST", "/v1/accounts")
                .json(&json!({"email": "bob@example.org"})),
            400,
        ),
    ];
    for (method, path, request, expected) in cases {
        let (status, body) = c.send(method, path, request).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
    // Too many sign-in attempts for one account.
    let mut limited = false;
    for _ in 0..=outpost_server::auth::ATTEMPTS_PER_ACCOUNT {
        let (status, _) = c
            .send(
                "POST",
                "/v1/sessions",
                c.request("POST", "/v1/sessions")
                    .json(&creds(ClientId::new(), "wrong password")),
            )
            .await;
        limited |= status == 429;
    }
    assert!(limited, "sign-in attempts are rate limited");

    // The sync doctor: the sums, a bucket's entries, a record fetched for a repair.
    let (status, digest) = c
        .send(
            "GET",
            "/v1/sync/digest",
            a.sign(c.request("GET", "/v1/sync/digest")),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(digest["buckets"].as_array().map(Vec::len), Some(256));
    let bucket = outpost_protocol::digest::bucket(Entity::Note, &note);
    let entries = json!({"buckets": [bucket]});
    c.check_request("POST", "/v1/sync/digest/entries", &entries);
    let (status, reply) = c
        .send(
            "POST",
            "/v1/sync/digest/entries",
            a.sign(c.request("POST", "/v1/sync/digest/entries"))
                .json(&entries),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        reply["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["id"] == json!(note)),
        "{reply}"
    );
    let fetch = json!({"keys": [{"entity": "note", "id": note}]});
    c.check_request("POST", "/v1/sync/records", &fetch);
    let (status, reply) = c
        .send(
            "POST",
            "/v1/sync/records",
            a.sign(c.request("POST", "/v1/sync/records")).json(&fetch),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["records"][0]["id"], json!(note));
    let (status, _) = c
        .send(
            "POST",
            "/v1/sync/digest/entries",
            a.sign(c.request("POST", "/v1/sync/digest/entries"))
                .json(&json!({"buckets": [256]})),
        )
        .await;
    assert_eq!(status, 400, "a bucket is 0 to 255");

    // Blobs: the limits, an upload begun, chunks refused and kept, the blob fetched.
    let (status, limits) = c
        .send("GET", "/v1/blobs", a.sign(c.request("GET", "/v1/blobs")))
        .await;
    assert_eq!(status, 200, "{limits}");
    let photo: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let hash = BlobHash::of(&photo);
    let blob = "/v1/blobs/{sha256}";
    let at = |offset: usize| format!("/v1/blobs/{hash}?offset={offset}");
    let start = BlobStart {
        size: photo.len() as u64,
    };
    c.check_request("POST", blob, &start);
    let (status, reply) = c
        .send(
            "POST",
            blob,
            a.sign(c.request("POST", &format!("/v1/blobs/{hash}")))
                .json(&start),
        )
        .await;
    assert_eq!((status, &reply["received"]), (200, &json!(0)), "{reply}");
    let chunk = |from: usize, to: usize, declared: &[u8]| {
        a.sign(c.request("PATCH", &at(from)))
            .header(HEADER_CHUNK_SHA256, BlobHash::of(declared).as_str())
            .body(photo[from..to].to_vec())
    };
    let refusals = [
        (chunk(1000, 2000, &photo[1000..2000]), 409),
        (chunk(0, 1000, b"something else"), 422),
        (
            a.sign(c.request("PATCH", &at(0)))
                .body(photo[..1000].to_vec()),
            400,
        ),
        (
            a.sign(c.request("POST", "/v1/blobs/not-a-hash"))
                .json(&start),
            400,
        ),
        (
            a.sign(c.request("POST", &format!("/v1/blobs/{hash}")))
                .json(&BlobStart { size: 1 << 40 }),
            413,
        ),
        (a.sign(c.request("GET", &format!("/v1/blobs/{hash}"))), 404),
    ];
    for (request, expected) in refusals {
        let method = request
            .try_clone()
            .and_then(|r| r.build().ok())
            .map(|r| r.method().to_string())
            .expect("a request");
        let (status, body) = c.send(&method, blob, request).await;
        assert_eq!(status, expected, "{method} {blob}: {body}");
    }
    let (status, reply) = c.send("PATCH", blob, chunk(0, 1000, &photo[..1000])).await;
    assert_eq!((status, &reply["received"]), (200, &json!(1000)), "{reply}");
    let (status, reply) = c
        .send("PATCH", blob, chunk(1000, 3000, &photo[1000..]))
        .await;
    assert_eq!((status, &reply["complete"]), (200, &json!(true)), "{reply}");
    for (range, expected) in [(None, 200), (Some("bytes=2000-"), 206)] {
        let mut request = a.sign(c.request("GET", &format!("/v1/blobs/{hash}")));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let resp = request.send().await.expect("download");
        let status = resp.status().as_u16();
        assert_eq!(status, expected);
        let content_type = resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            response(&doc, "GET", blob, status)["content"][&content_type].is_object(),
            "{content_type} is documented for {status}"
        );
    }
    let (status, _) = c
        .send(
            "GET",
            blob,
            a.sign(c.request("GET", &format!("/v1/blobs/{hash}")))
                .header("range", "bytes=3000-"),
        )
        .await;
    assert_eq!(status, 416);

    // Sign out.
    let (status, _) = c
        .send(
            "DELETE",
            "/v1/sessions/current",
            b.sign(c.request("DELETE", "/v1/sessions/current")),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = c
        .send(
            "GET",
            "/v1/sync/pull",
            b.sign(c.request("GET", "/v1/sync/pull")),
        )
        .await;
    assert_eq!(status, 401, "a signed-out token no longer works");
}

// ---------------------------------------------------------------------------------------------
// docs/protocol.md describes the same protocol.

#[test]
fn the_protocol_document_names_every_endpoint_code_and_limit() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let prose = std::fs::read_to_string(path).expect("docs/protocol.md exists");
    let doc = doc();
    let mut missing = Vec::new();
    let mut expect = |what: String| {
        if !prose.contains(&what) {
            missing.push(what);
        }
    };
    for (method, path) in documented_operations(&doc) {
        expect(format!("{method} {path}"));
    }
    for code in ERROR_CODES.iter().chain(codes::REJECTIONS) {
        expect(format!("`{code}`"));
    }
    for name in [
        names::NOTE_PUT,
        names::NOTE_PURGE,
        names::NOTEBOOK_PUT,
        names::PREF_PUT,
    ] {
        expect(format!("`{name}`"));
    }
    for header in [HEADER_CLIENT_ID, HEADER_PROTOCOL, HEADER_CHUNK_SHA256] {
        expect(format!("`{header}`"));
    }
    for limit in [
        MAX_PUSH_MUTATIONS as u64,
        MAX_REQUEST_BYTES as u64,
        u64::from(MAX_PULL_LIMIT),
        u64::from(routes::sync::DEFAULT_PULL_LIMIT),
        MAX_STAMP_SKEW_MS,
        MAX_BODY_BYTES as u64,
        MAX_TITLE_BYTES as u64,
        outpost_server::plan::MIN_SCHEMA_VERSION.into(),
        MUTATION_SCHEMA_VERSION.into(),
        MAX_CHUNK_BYTES as u64,
        outpost_server::blobs::DEFAULT_CHUNK_BYTES,
        outpost_server::blobs::DEFAULT_MAX_BLOB_BYTES,
    ] {
        expect(limit.to_string());
    }
    // Every (code, status) the OpenAPI document gives appears as a row of the error table:
    // "| `code` | status |".
    let mut pairs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path) in documented_operations(&doc) {
        for (status, reply) in operation(&doc, &method, &path)["responses"]
            .as_object()
            .expect("responses")
        {
            let description = reply["description"].as_str().unwrap_or_default();
            for code in ERROR_CODES {
                if status.as_str() >= "400" && description.contains(&format!("`{code}`")) {
                    pairs
                        .entry((*code).to_owned())
                        .or_default()
                        .insert(status.clone());
                }
            }
        }
    }
    for (code, statuses) in pairs {
        for status in statuses {
            let row = prose.lines().any(|l| {
                l.starts_with(&format!("| `{code}` |")) && l.contains(&format!("| {status} |"))
            });
            if !row {
                missing.push(format!("a table row `{code}` with status {status}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/protocol.md lacks: {missing:#?}");
}
