//! Per-app quotas: read by anyone who may read the app, set by an instance admin only, and
//! enforced on this node: publish rates through the admin API (`429` with `Retry-After`,
//! nothing published, the next one after the wait accepted), open realtime connections and
//! topics per connection (`429` before the stream), refusals counted in `/metrics`.

use std::time::{Duration, Instant};

use picloud_core::capability::Capability;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::{assert_error, send, TestServer};

both_backends!(quotas_are_set_by_an_instance_admin_and_enforced);

async fn set(s: &TestServer, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let req = match key {
        Some(k) => s.with_key(k, Method::PUT, "/api/v1/apps/demo/quotas"),
        None => s.admin(Method::PUT, "/api/v1/apps/demo/quotas"),
    };
    send(req.json(&body)).await
}

async fn publish(s: &TestServer, ephemeral: bool) -> reqwest::Response {
    let q = if ephemeral { "?ephemeral=true" } else { "" };
    s.admin(
        Method::POST,
        &format!("/api/v1/apps/demo/topics/t/publish{q}"),
    )
    .json(&json!({"n": 1}))
    .send()
    .await
    .unwrap()
}

async fn quotas_are_set_by_an_instance_admin_and_enforced(backend: Backend) {
    let s = TestServer::start(backend).await;
    let app = s.create_app("demo").await;
    s.create_topic("demo", "t", true, "public").await;
    s.create_topic("demo", "u", true, "public").await;

    let (status, got) = send(s.admin(Method::GET, "/api/v1/apps/demo/quotas")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["overrides"]["publishes_per_sec"], Value::Null);
    assert_eq!(got["effective"]["topics_per_connection"], 100);

    // An app's own admin may not raise its quotas; zero and over the cap are refused.
    let owner = s
        .key(
            &[Capability::AppWrite, Capability::AppRead],
            app["id"].as_str(),
        )
        .await;
    assert_error(
        &set(&s, Some(&owner), json!({"publishes_per_sec": 9})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for bad in [
        json!({"connections": 0}),
        json!({"topics_per_connection": 101}),
    ] {
        assert_error(
            &set(&s, None, bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
    }
    let (status, got) = set(
        &s,
        None,
        json!({"publishes_per_sec": 2, "ephemeral_per_sec": 1, "connections": 1, "topics_per_connection": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["effective"]["publishes_per_sec"], 2);
    assert_eq!(got["effective"]["ephemeral_per_sec"], 1);

    // Durable: two a second; the third waits, and is accepted after Retry-After.
    assert_eq!(publish(&s, false).await.status(), StatusCode::CREATED);
    assert_eq!(publish(&s, false).await.status(), StatusCode::CREATED);
    let over = publish(&s, false).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: Value = over.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded");
    // Ephemeral publishes have their own bucket.
    assert_eq!(publish(&s, true).await.status(), StatusCode::ACCEPTED);
    assert_eq!(
        publish(&s, true).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(publish(&s, false).await.status(), StatusCode::CREATED);
    // Nothing refused was stored: three durable messages.
    assert_eq!(s.store_history("demo", "t", 10).await.len(), 3);
    // A batch counts each message; more than a second's worth never passes.
    let batch = send(
        s.admin(Method::POST, "/api/v1/apps/demo/publish")
            .json(&json!({"messages": [{"topic": "t", "data": 1}, {"topic": "t", "data": 2}, {"topic": "t", "data": 3}]})),
    )
    .await;
    assert_error(&batch, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");

    // One connection at a time, of one topic.
    let mut first = s
        .app_get("demo", "/realtime/topics/t")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    first.chunk().await.unwrap();
    let second = s
        .app_get("demo", "/realtime/topics/u")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = s
            .app_get("demo", "/realtime/topics/u")
            .send()
            .await
            .unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "a closed stream frees its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let two = s
        .app_get("demo", "/realtime?topic=t&topic=u")
        .send()
        .await
        .unwrap();
    assert_eq!(
        two.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "two topics on one connection"
    );

    // A change applies at once (this node's quotas are dropped with it).
    let (status, _) = set(&s, None, json!({"publishes_per_sec": 100})).await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(publish(&s, false).await.status(), StatusCode::CREATED);
    }

    let metrics = s.text("/metrics").await;
    for quota in [
        "publishes_per_sec",
        "ephemeral_per_sec",
        "connections",
        "topics_per_connection",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("picloud_quota_refusals_total")
                    && l.contains("app=\"demo\"")
                    && l.contains(&format!("quota=\"{quota}\""))),
            "{quota} refusals counted"
        );
    }
}
