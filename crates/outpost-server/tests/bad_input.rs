//! S4: bad input gets a 4xx with a JSON `{code, message}` and stores nothing, on every backend.
//! Each case says what the client sees. After all of them the account's cursor has not moved.

mod common;

use common::{Backend, Device, TestServer, error_of, http};
use outpost_protocol::NoteId;
use outpost_protocol::api::{Cursor, MAX_PUSH_MUTATIONS, MAX_REQUEST_BYTES};
use serde_json::json;

backends!(
    malformed_requests_get_a_clear_4xx_and_store_nothing,
    missing_forged_or_foreign_credentials_are_refused,
    cursors_and_limits_out_of_range_are_refused,
    nothing_makes_the_server_answer_500,
    numbers_below_one_non_canonical_ids_and_odd_encodings_are_refused_clearly,
);

/// Posts raw bytes to the push endpoint as `device`.
async fn push_bytes(device: &Device, body: Vec<u8>, content_type: &str) -> reqwest::Response {
    device
        .request(reqwest::Method::POST, "/v1/sync/push")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("push")
}

async fn assert_nothing_stored(device: &Device) {
    let (records, cursor) = device.pull_all(Cursor(0)).await;
    assert!(records.is_empty(), "nothing may be stored: {records:?}");
    assert_eq!(cursor, Cursor(0));
}

async fn malformed_requests_get_a_clear_4xx_and_store_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut d = Device::register(&server, "ann@example.org").await;
    let valid = serde_json::to_value(outpost_protocol::api::PushRequest {
        mutations: vec![d.put(NoteId::new(), &[("title", json!("x"))], None)],
    })
    .expect("json");

    // Not JSON at all.
    let (code, message) = error_of(
        push_bytes(&d, b"{\"mutations\": [".to_vec(), "application/json").await,
        400,
    )
    .await;
    assert_eq!(code, "invalid_json");
    assert!(
        message.contains("EOF") || message.contains("parse"),
        "{message}"
    );

    // Wrong types: the number is text.
    let mut wrong = valid.clone();
    wrong["mutations"][0]["number"] = json!("seven");
    let (code, message) = error_of(
        push_bytes(&d, wrong.to_string().into_bytes(), "application/json").await,
        400,
    )
    .await;
    assert_eq!(code, "invalid_json");
    assert!(
        message.contains("mutations[0].number") || message.contains("invalid type"),
        "{message}"
    );

    // Unknown fields, at the top and inside a mutation.
    let mut extra = valid.clone();
    extra["admin"] = json!(true);
    let (code, message) = error_of(
        push_bytes(&d, extra.to_string().into_bytes(), "application/json").await,
        400,
    )
    .await;
    assert_eq!(code, "invalid_json");
    assert!(message.contains("unknown field `admin`"), "{message}");
    let mut inner = valid.clone();
    inner["mutations"][0]["sneaky"] = json!(1);
    let (code, _) = error_of(
        push_bytes(&d, inner.to_string().into_bytes(), "application/json").await,
        400,
    )
    .await;
    assert_eq!(code, "invalid_json");

    // Invalid UTF-8 inside a string.
    let mut bytes = valid.to_string().into_bytes();
    let at = bytes
        .windows(3)
        .position(|w| w == b"\"x\"")
        .expect("the title")
        + 1;
    bytes[at] = 0xff;
    let (code, _) = error_of(push_bytes(&d, bytes, "application/json").await, 400).await;
    assert_eq!(code, "invalid_json");

    // Not declared as JSON.
    let (code, _) = error_of(
        push_bytes(&d, valid.to_string().into_bytes(), "text/plain").await,
        415,
    )
    .await;
    assert_eq!(code, "unsupported_media_type");

    // An empty batch.
    let (code, message) = error_of(d.push_raw(vec![]).await, 400).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("empty_batch", "a push needs at least one mutation")
    );

    // A batch over the limit names the limit.
    let too_many: Vec<_> = (0..=MAX_PUSH_MUTATIONS)
        .map(|_| d.put(NoteId::new(), &[("title", json!("x"))], None))
        .collect();
    let (code, message) = error_of(d.push_raw(too_many).await, 413).await;
    assert_eq!(code, "batch_too_large");
    assert_eq!(
        message,
        format!(
            "a push carries at most {MAX_PUSH_MUTATIONS} mutations, this one {}",
            MAX_PUSH_MUTATIONS + 1
        )
    );

    // A body over the limit names the limit.
    let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
    let (code, message) = error_of(push_bytes(&d, huge, "application/json").await, 413).await;
    assert_eq!(code, "payload_too_large");
    assert!(
        message.contains(&MAX_REQUEST_BYTES.to_string()),
        "{message}"
    );

    // Numbers out of order within a batch are refused whole, so reordering cannot drop a write.
    let first = d.put(NoteId::new(), &[("title", json!("a"))], None);
    let second = d.put(NoteId::new(), &[("title", json!("b"))], None);
    let (code, message) = error_of(d.push_raw(vec![second, first]).await, 400).await;
    assert_eq!(code, "bad_request");
    assert!(message.contains("must increase"), "{message}");

    // A mutation schema older than the server supports: the app is told to update.
    let mut old = d.put(NoteId::new(), &[("title", json!("x"))], None);
    old.schema_version = 0;
    let (code, message) = error_of(d.push_raw(vec![old]).await, 426).await;
    assert_eq!(code, "client_too_old");
    assert!(message.contains("update Outpost"), "{message}");

    assert_nothing_stored(&d).await;
}

async fn missing_forged_or_foreign_credentials_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut d = Device::register(&server, "ann@example.org").await;
    let m = d.put(NoteId::new(), &[("title", json!("x"))], None);
    let body = json!({ "mutations": [m] });

    let no_token = http()
        .post(server.url("/v1/sync/push"))
        .header("x-outpost-client", d.client_id.to_string())
        .header("x-outpost-protocol", "1")
        .json(&body)
        .send()
        .await
        .expect("push");
    let (code, message) = error_of(no_token, 401).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("unauthorized", "sign in first: no device token was sent")
    );

    let mut forged = d.clone();
    forged.token = format!("opt_{}", "0".repeat(64));
    let (code, message) = error_of(forged.push_raw(vec![m.clone()]).await, 401).await;
    assert_eq!(code, "unauthorized");
    assert_eq!(message, "the device token is not valid; sign in again");

    let no_protocol = http()
        .post(server.url("/v1/sync/push"))
        .bearer_auth(&d.token)
        .header("x-outpost-client", d.client_id.to_string())
        .json(&body)
        .send()
        .await
        .expect("push");
    let (code, message) = error_of(no_protocol, 400).await;
    assert_eq!(code, "bad_request");
    assert!(message.contains("x-outpost-protocol"), "{message}");

    let bad_client = http()
        .post(server.url("/v1/sync/push"))
        .bearer_auth(&d.token)
        .header("x-outpost-client", "not-a-uuid")
        .header("x-outpost-protocol", "1")
        .json(&body)
        .send()
        .await
        .expect("push");
    let (code, message) = error_of(bad_client, 400).await;
    assert_eq!(code, "bad_request");
    assert!(message.contains("client id must be a UUID"), "{message}");

    let wrong_protocol = http()
        .get(server.url("/v1/sync/pull"))
        .bearer_auth(&d.token)
        .header("x-outpost-client", d.client_id.to_string())
        .header("x-outpost-protocol", "99")
        .send()
        .await
        .expect("pull");
    let (code, message) = error_of(wrong_protocol, 400).await;
    assert_eq!(code, "unsupported_protocol");
    assert!(
        message.contains("this server speaks protocol 1"),
        "{message}"
    );

    // Registration input.
    for (body, expect) in [
        (
            json!({"email": "not-an-email", "password": "long enough", "client_id": d.client_id}),
            "that is not an email address",
        ),
        (
            json!({"email": "b@example.org", "password": "short", "client_id": d.client_id}),
            "a password needs 8 to 1024 characters",
        ),
    ] {
        let resp = http()
            .post(server.url("/v1/accounts"))
            .json(&body)
            .send()
            .await
            .expect("register");
        let (code, message) = error_of(resp, 400).await;
        assert_eq!((code.as_str(), message.as_str()), ("bad_request", expect));
    }
    let missing = http()
        .post(server.url("/v1/accounts"))
        .json(&json!({"email": "c@example.org"}))
        .send()
        .await
        .expect("register");
    assert_eq!(error_of(missing, 400).await.0, "invalid_json");
}

async fn cursors_and_limits_out_of_range_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let d = Device::register(&server, "ann@example.org").await;
    let get = |query: &'static str| {
        let d = d.clone();
        async move {
            d.request(reqwest::Method::GET, &format!("/v1/sync/pull{query}"))
                .send()
                .await
                .expect("pull")
        }
    };
    let (code, message) = error_of(get("?cursor=42").await, 400).await;
    assert_eq!(code, "cursor_from_the_future");
    assert!(message.contains("re-download"), "{message}");
    let (code, _) = error_of(get("?cursor=-1").await, 400).await;
    assert_eq!(code, "bad_request");
    let (code, message) = error_of(get("?cursor=0&limit=0").await, 400).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("bad_request", "limit must be 1 to 5000, got 0")
    );
    let (code, _) = error_of(get("?limit=999999").await, 400).await;
    assert_eq!(code, "bad_request");
    let (code, _) = error_of(get("?cursor=abc").await, 400).await;
    assert_eq!(code, "bad_request");
    let (code, _) = error_of(get("?cursor=1&color=red").await, 400).await;
    assert_eq!(code, "bad_request");

    let unknown = http()
        .get(server.url("/v1/nope"))
        .send()
        .await
        .expect("get");
    let (code, message) = error_of(unknown, 404).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("not_found", "no such endpoint: GET /v1/nope")
    );
    let wrong_method = http()
        .get(server.url("/v1/sync/push"))
        .send()
        .await
        .expect("get");
    assert_eq!(error_of(wrong_method, 405).await.0, "bad_request");
}

/// A small deterministic fuzz over mutation fields: every reply is 200 (with per-mutation
/// outcomes) or a 4xx with a JSON body; never a 5xx.
async fn nothing_makes_the_server_answer_500(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut d = Device::register(&server, "ann@example.org").await;
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1e308),
        json!(""),
        json!("x".repeat(5000)),
        json!([]),
        json!([1, 2]),
        json!(["ok", ""]),
        json!({"a": 1}),
        json!("\u{0}"),
        json!("0190a1b2-0000-7000-8000-000000000001"),
    ];
    let fields = [
        "title",
        "body",
        "tags",
        "pinned",
        "archived",
        "deleted",
        "notebook_id",
        "name",
        "value",
        "",
    ];
    let names = [
        "note.put",
        "note.purge",
        "notebook.put",
        "pref.put",
        "",
        "note.put\u{0}",
    ];
    let entities = ["note", "notebook", "pref"];
    let ids = [
        "",
        "theme",
        "not a uuid",
        "0190a1b2-0000-7000-8000-000000000001",
        "../../etc",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..60 {
        let mut m = serde_json::to_value(d.put(NoteId::new(), &[("title", json!("x"))], None))
            .expect("json");
        m["name"] = json!(names[next(names.len())]);
        m["entity"] = json!(entities[next(entities.len())]);
        m["entity_id"] = json!(ids[next(ids.len())]);
        let stamp = m["fields"]["title"]["stamp"].clone();
        m["fields"] = json!({ fields[next(fields.len())]: { "value": values[next(values.len())], "stamp": stamp } });
        if round % 7 == 0 {
            m["base_version"] = json!(-5);
        }
        let resp = push_bytes(
            &d,
            json!({ "mutations": [m] }).to_string().into_bytes(),
            "application/json",
        )
        .await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(status < 500, "round {round}: {status} {text}");
        let body: serde_json::Value = serde_json::from_str(&text).expect("JSON reply");
        if status == 200 {
            assert!(
                body["results"][0]["outcome"]["status"].is_string(),
                "{body}"
            );
        } else {
            assert!(
                body["code"].is_string() && body["message"].is_string(),
                "{body}"
            );
        }
    }
}

async fn numbers_below_one_non_canonical_ids_and_odd_encodings_are_refused_clearly(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let mut d = Device::register(&server, "ann@example.org").await;
    let mut zero = d.put(NoteId::new(), &[("title", json!("x"))], None);
    zero.number = outpost_protocol::api::MutationNumber(0);
    let (code, message) = error_of(d.push_raw(vec![zero]).await, 400).await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("bad_request", "mutation numbers start at 1, got 0")
    );

    let mut upper = d.put(NoteId::new(), &[("title", json!("x"))], None);
    upper.entity_id = upper.entity_id.to_uppercase();
    let reply = d.push(vec![upper]).await;
    assert!(
        matches!(&reply.results[0].outcome, outpost_protocol::api::Outcome::Rejected { code, message }
            if code == "invalid_field" && message.contains("lowercase hyphenated")),
        "{:?}",
        reply.results[0].outcome
    );

    let odd = d
        .request(reqwest::Method::POST, "/v1/sync/push")
        .header("content-type", "application/json")
        .header("content-encoding", "compress")
        .body("{}")
        .send()
        .await
        .expect("push");
    assert_eq!(error_of(odd, 415).await.0, "unsupported_media_type");

    // The auth scheme's name is case-insensitive.
    let lower = http()
        .get(server.url("/v1/sync/pull"))
        .header("authorization", format!("bearer {}", d.token))
        .header("x-outpost-client", d.client_id.to_string())
        .header("x-outpost-protocol", "1")
        .send()
        .await
        .expect("pull");
    assert_eq!(lower.status(), 200);
}
