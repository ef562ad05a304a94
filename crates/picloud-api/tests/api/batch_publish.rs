//! `POST /api/v1/apps/{app}/publish`: many messages in one request and one transaction.

use std::time::Duration;

use picloud_core::capability::Capability;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::sse::Sse;
use crate::support::{assert_error, send, TestServer};

const WAIT: Duration = Duration::from_secs(10);

both_backends!(batch_publish_is_ordered_and_atomic, batch_publish_bad_input,);

async fn batch(s: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    send(s.admin(Method::POST, path).json(&body)).await
}

/// Seqs per topic in request order, delivered in that order, answers in request order; an
/// ephemeral batch reaches live subscribers without seqs; a batch with one bad message
/// publishes nothing.
async fn batch_publish_is_ordered_and_atomic(backend: Backend) {
    let s = TestServer::start(backend).await;
    let demo = s.create_app("demo").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.create_topic("demo", "a", true, "public").await;
    s.create_topic("demo", "b", true, "public").await;
    let mut sse = Sse::open(s.app_get("demo", "/realtime?topic=a&topic=b"))
        .await
        .unwrap();
    assert_eq!(s.publish("demo", "a", json!("before")).await, 1);

    let (status, body) = batch(
        &s,
        "/api/v1/apps/demo/publish",
        json!({"messages": [
            {"topic": "a", "data": {"n": 1}},
            {"topic": "b", "data": {"n": 2, "text": "line\nbreak"}},
            {"topic": "a", "data": [3]},
            {"topic": "new.internal", "data": null},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let answers = body["messages"].as_array().unwrap();
    let got: Vec<(String, i64)> = answers
        .iter()
        .map(|m| {
            (
                m["topic"].as_str().unwrap().to_owned(),
                m["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_owned(), 2),
            ("b".to_owned(), 1),
            ("a".to_owned(), 3),
            ("new.internal".to_owned(), 1)
        ]
    );
    let frames = sse.messages(4).await;
    let seen: Vec<(String, i64, Value)> = frames
        .iter()
        .map(|f| {
            let d = f.json();
            (
                d["topic"].as_str().unwrap().to_owned(),
                d["seq"].as_i64().unwrap(),
                d["message"].clone(),
            )
        })
        .collect();
    assert_eq!(seen[0], ("a".to_owned(), 1, json!("before")));
    // Within a topic, in seq order; the three batch messages all arrive.
    let a: Vec<_> = seen.iter().filter(|m| m.0 == "a").map(|m| m.1).collect();
    assert_eq!(a, [1, 2, 3]);
    assert!(seen.contains(&("b".to_owned(), 1, json!({"n": 2, "text": "line\nbreak"}))));

    // One invalid topic: 422 naming it, and nothing of the batch is stored.
    let r = batch(
        &s,
        "/api/v1/apps/demo/publish",
        json!({"messages": [{"topic": "a", "data": 1}, {"topic": "bad*", "data": 2}]}),
    )
    .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(r.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages[1].topic"));
    assert_eq!(
        s.publish("demo", "a", json!("after")).await,
        4,
        "no seq taken"
    );
    assert_eq!(sse.messages(1).await[0].seq(), 4);

    // Ephemeral: live only, no seqs, nothing stored.
    let (status, body) = batch(
        &s,
        "/api/v1/apps/demo/publish?ephemeral=true",
        json!({"messages": [{"topic": "b", "data": "typing"}, {"topic": "a", "data": "cursor"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["messages"][0].get("seq").is_none());
    let e1 = sse.next_event(WAIT).await.unwrap();
    let e2 = sse.next_event(WAIT).await.unwrap();
    assert_eq!((e1.id.clone(), e2.id.clone()), (None, None));
    // Order is kept within a topic; these are on two topics.
    let mut live = [e1.json()["message"].clone(), e2.json()["message"].clone()];
    live.sort_by_key(|v| v.to_string());
    assert_eq!(live, [json!("cursor"), json!("typing")]);
    assert_eq!(s.publish("demo", "b", json!("x")).await, 2);

    // The capability is AppPublish, and an app-bound key cannot publish to another app.
    s.create_app("other").await;
    let reader = s.key(&[Capability::AppRead], Some(&demo)).await;
    let one = json!({"messages": [{"topic": "a", "data": 1}]});
    let r = send(
        s.with_key(&reader, Method::POST, "/api/v1/apps/demo/publish")
            .json(&one),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let publisher = s.key(&[Capability::AppPublish], Some(&demo)).await;
    let r = send(
        s.with_key(&publisher, Method::POST, "/api/v1/apps/other/publish")
            .json(&one),
    )
    .await;
    assert!(
        r.0 == StatusCode::FORBIDDEN || r.0 == StatusCode::NOT_FOUND,
        "{r:?}"
    );
    let r = send(s.anon(Method::POST, "/api/v1/apps/demo/publish").json(&one)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn batch_publish_bad_input(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let path = "/api/v1/apps/demo/publish";
    let r = send(
        s.admin(Method::POST, path)
            .header("content-type", "application/json")
            .body("{\"messages\": [{\"topic\": \"a\", \"data\": "),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = batch(
        &s,
        path,
        json!({"messages": [{"topic": "a", "data": 1, "x": 2}]}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = batch(&s, path, json!({"messages": [{"topic": "a"}]})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = batch(&s, path, json!({"messages": []})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"topic": "a", "data": i}))
        .collect();
    let r = batch(&s, path, json!({ "messages": many })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let big = "x".repeat(64 * 1024);
    let r = batch(
        &s,
        path,
        json!({"messages": [{"topic": "a", "data": 1}, {"topic": "a", "data": big}]}),
    )
    .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(r.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages[1].data"));
    // Over the request body limit (1 MiB): 413 before any parsing.
    let huge: Vec<Value> = (0..20)
        .map(|_| json!({"topic": "a", "data": "y".repeat(60 * 1024)}))
        .collect();
    let r = batch(&s, path, json!({ "messages": huge })).await;
    assert_eq!(r.0, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.1);
    // Nothing of the above was stored: the first publish to `a` gets seq 1.
    assert_eq!(s.publish("demo", "a", json!(1)).await, 1);
    let r = batch(
        &s,
        "/api/v1/apps/nope/publish",
        json!({"messages": [{"topic": "a", "data": 1}]}),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}
