//! What the dashboard's overview and topic pages read besides the resources themselves:
//! the node's streams on a topic, the stats stream, the instance, keys' last use, and the
//! page's policy naming the apps' domains.

use std::time::Duration;

use picloud_core::capability::Capability;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::sse::Sse;
use crate::support::{assert_error, send, TestServer};

both_backends!(subscribers_lists_the_nodes_streams_on_a_topic);

const WAIT: Duration = Duration::from_secs(10);

async fn subscribers(s: &TestServer, key: &str, path: &str) -> (StatusCode, Value) {
    send(s.with_key(key, Method::GET, path)).await
}

/// A data-plane stream (with its token's subject) and an admin tail are listed, newest
/// first, each with where it came from and how far it got; a stream that closes leaves
/// the list. Other topics' and apps' streams are not listed, and keys see only their app.
async fn subscribers_lists_the_nodes_streams_on_a_topic(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    let demo = s.create_app("demo").await;
    let other = s.create_app("other").await;
    s.create_topic("demo", "chat", true, "token").await;
    s.create_topic("demo", "news", true, "public").await;
    s.create_topic("other", "chat", true, "public").await;
    let path = "/api/v1/apps/demo/topics/chat/subscribers";

    let (status, body) = subscribers(&s, &s.admin_key, path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"count": 0, "truncated": false, "streams": []}));

    let (_, minted) = send(
        s.admin(Method::POST, "/api/v1/apps/demo/tokens")
            .json(&json!({"topics": ["chat", "news"], "ttl_secs": 600, "subject": "ann"})),
    )
    .await;
    let token = minted["token"].as_str().unwrap();
    let mut browser = Sse::open(
        s.app_get("demo", "/realtime?topic=news&topic=chat")
            .bearer_auth(token),
    )
    .await
    .unwrap();
    browser.start_position(WAIT).await;
    let mut tail = Sse::open(s.admin(Method::GET, "/api/v1/apps/demo/topics/chat/stream"))
        .await
        .unwrap();
    tail.start_position(WAIT).await;
    // Streams elsewhere: not this topic's.
    let mut news = Sse::open(s.app_get("demo", "/realtime/topics/news"))
        .await
        .unwrap();
    news.start_position(WAIT).await;
    let mut elsewhere = Sse::open(s.app_get("other", "/realtime/topics/chat"))
        .await
        .unwrap();
    elsewhere.start_position(WAIT).await;

    let seq = s.publish("demo", "chat", json!({"n": 1})).await;
    browser.messages(1).await;
    tail.messages(1).await;
    // Each stream stores its position after the write that took it there.
    let body = eventually(|| async {
        let (_, body) = subscribers(&s, &s.admin_key, path).await;
        let done = body["streams"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["position"] == seq));
        done.then_some(body)
    })
    .await;
    assert_eq!(body["count"], 2);
    assert_eq!(body["truncated"], false);
    let streams = body["streams"].as_array().unwrap();
    let (newest, older) = (&streams[0], &streams[1]);
    assert_eq!(newest["kind"], "admin_tail");
    assert_eq!(newest["subject"], Value::Null);
    assert_eq!(newest["topics"], 1);
    assert_eq!(older["kind"], "subscriber");
    assert_eq!(older["subject"], "ann");
    assert_eq!(older["topics"], 2);
    for st in streams {
        let remote = st["remote_addr"].as_str().unwrap();
        assert!(remote.starts_with("127.0.0.1:"), "{remote}");
        assert!(
            st["since"].as_str().unwrap().ends_with('Z'),
            "RFC 3339: {st}"
        );
    }

    // Keys: an app-bound key sees its app's list, and nothing of another's.
    let other_id = other["id"].as_str().unwrap();
    let bound = s.key(&[Capability::AppRead], Some(other_id)).await;
    let got = subscribers(&s, &bound, path).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    let demo_reader = s
        .key(&[Capability::AppRead], Some(demo["id"].as_str().unwrap()))
        .await;
    assert_eq!(subscribers(&s, &demo_reader, path).await.1["count"], 2);
    let publisher = s.key(&[Capability::AppPublish], None).await;
    let got = subscribers(&s, &publisher, path).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = subscribers(
        &s,
        &s.admin_key,
        "/api/v1/apps/demo/topics/nope/subscribers",
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");

    drop(tail);
    let body = eventually(|| async {
        let (_, body) = subscribers(&s, &s.admin_key, path).await;
        (body["count"] == 1).then_some(body)
    })
    .await;
    assert_eq!(body["streams"][0]["subject"], "ann");
    drop(browser);
    eventually(|| async {
        let (_, body) = subscribers(&s, &s.admin_key, path).await;
        (body["count"] == 0).then_some(())
    })
    .await;
}

/// The stats stream opens with the last minutes' samples, then sends one frame a second:
/// the node's counters as rates, and the apps the key may read with their topics,
/// subscribers and publishes in the last minute.
#[tokio::test]
async fn the_stats_stream_samples_every_second_and_shows_each_keys_apps() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    let demo = s.create_app("demo").await;
    s.create_app("other").await;
    s.create_topic("demo", "chat", true, "public").await;
    s.create_topic("demo", "news", true, "public").await;
    let mut sub = Sse::open(s.app_get("demo", "/realtime/topics/chat"))
        .await
        .unwrap();
    sub.start_position(WAIT).await;

    let mut stats = Sse::open(s.admin(Method::GET, "/api/v1/stats/stream"))
        .await
        .unwrap();
    assert_eq!(stats.headers["content-type"], "text/event-stream");
    let history = stats.next_event(WAIT).await.unwrap();
    assert_eq!(history.event.as_deref(), Some("history"));
    let history = history.json();
    assert_eq!(history["interval_ms"], 1000);
    assert!(history["samples"].is_array(), "{history}");

    for n in 0..3 {
        s.publish("demo", "chat", json!({ "n": n })).await;
    }
    // Within a few frames, the publishes show as a rate and in demo's row.
    let mut saw_rate = false;
    let mut row = Value::Null;
    for _ in 0..5 {
        let f = stats.next_event(WAIT).await.expect("a frame a second");
        assert_eq!(f.event.as_deref(), Some("stats"));
        let f = f.json();
        let sample = &f["sample"];
        assert!(sample["at_ms"].as_i64().unwrap() > 0);
        assert!(sample["connections"].as_i64().unwrap() >= 1, "{sample}");
        saw_rate |= sample["publishes_per_sec"].as_f64().unwrap() > 0.0;
        let apps = f["apps"].as_array().unwrap();
        let slugs: Vec<_> = apps.iter().map(|a| a["slug"].as_str().unwrap()).collect();
        assert_eq!(slugs, ["demo", "other"]);
        row = apps[0].clone();
        if saw_rate && row["publishes_last_minute"] == 3 {
            break;
        }
    }
    assert!(saw_rate, "a frame with publishes_per_sec > 0");
    assert_eq!(row["publishes_last_minute"], 3, "{row}");
    assert_eq!(row["topics"], 2);
    assert_eq!(row["id"], demo["id"]);
    // The data-plane stream's one topic (the stats stream is no topic's).
    assert_eq!(row["subscribers"], 1);

    // A bound key sees its own app's row only; a key that cannot read apps sees none.
    let bound = s
        .key(&[Capability::AppRead], Some(demo["id"].as_str().unwrap()))
        .await;
    let publisher = s.key(&[Capability::AppPublish], None).await;
    for (key, expect) in [(&bound, vec!["demo"]), (&publisher, vec![])] {
        let mut st = Sse::open(s.with_key(key, Method::GET, "/api/v1/stats/stream"))
            .await
            .unwrap();
        assert_eq!(
            st.next_event(WAIT).await.unwrap().event.as_deref(),
            Some("history")
        );
        let f = st.next_event(WAIT).await.unwrap().json();
        let slugs: Vec<_> = f["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["slug"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(slugs, expect);
    }
    let refused = Sse::open(s.with_key("pk_nope_nope", Method::GET, "/api/v1/stats/stream"))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);

    // A second stream's history holds the samples taken so far, oldest first.
    let mut again = Sse::open(s.admin(Method::GET, "/api/v1/stats/stream"))
        .await
        .unwrap();
    let samples = again.next_event(WAIT).await.unwrap().json()["samples"]
        .as_array()
        .unwrap()
        .clone();
    assert!(samples.len() >= 2, "{samples:?}");
    let at: Vec<i64> = samples
        .iter()
        .map(|x| x["at_ms"].as_i64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
}

/// `GET /api/v1/instance` says what runs and for how long.
#[tokio::test]
async fn instance_names_the_version_and_uptime() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    let (status, body) = send(s.admin(Method::GET, "/api/v1/instance")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_secs"].as_u64().is_some(), "{body}");
    let started = chrono::DateTime::parse_from_rfc3339(body["started_at"].as_str().unwrap());
    assert!(started.is_ok(), "{body}");
    let got = send(s.anon(Method::GET, "/api/v1/instance")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// A key's "last used" is empty until it is used, then recorded (off the request's path);
/// a failed attempt with the right id but a wrong secret records nothing.
#[tokio::test]
async fn a_keys_last_use_is_recorded() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    let key = s.key(&[Capability::AppRead], None).await;
    let id = key.split('_').nth(1).unwrap().to_owned();
    let last_used = || async {
        let (_, body) = send(s.admin(Method::GET, "/api/v1/admin-keys")).await;
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap()["last_used_at"]
            .clone()
    };
    assert_eq!(last_used().await, Value::Null);
    let forged = format!("pk_{id}_{}", "x".repeat(43));
    let got = send(s.with_key(&forged, Method::GET, "/api/v1/apps")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(last_used().await, Value::Null, "a refused key is not used");

    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let (status, _) = send(s.with_key(&key, Method::GET, "/api/v1/apps")).await;
    assert_eq!(status, StatusCode::OK);
    let at = eventually(|| async { last_used().await.as_str().map(str::to_owned) }).await;
    let at = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{at}");
}

/// The page's policy lets the subscriber view reach every app's own domains (read when
/// the page is); the files keep the base policy.
#[tokio::test]
async fn the_pages_policy_names_the_apps_domains() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    s.create_app("demo").await;
    let csp = |path: &'static str| {
        let url = s.url(path);
        async move {
            let res = reqwest::get(url).await.unwrap();
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert!(!csp("/_/").await.contains("chat.example.com"));
    let (status, body) = send(
        s.admin(Method::POST, "/api/v1/apps/demo/domains")
            .json(&json!({"host": "chat.example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for page in ["/_/", "/_/apps/demo/topics", "/_/index.html"] {
        let policy = csp(page).await;
        let connect = policy
            .split(';')
            .find(|d| d.trim().starts_with("connect-src"))
            .unwrap();
        assert!(connect.contains(" chat.example.com:*"), "{page}: {policy}");
        assert!(policy.contains("default-src 'self'"), "{policy}");
    }
    assert!(!csp("/_/assets/index.js").await.contains("chat.example.com"));
}

/// Polls `f` until it gives a value (10 s at most).
async fn eventually<T, F, Fut>(f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

/// Revoking a key ends the streams it opened (its topic tail with `token_revoked`, its
/// stats stream) and leaves other keys' streams open.
#[tokio::test]
async fn revoking_a_key_ends_its_open_streams() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    s.create_app("demo").await;
    s.create_topic("demo", "chat", false, "token").await;
    let key = s.key(&[Capability::AppRead], None).await;
    let id = key.split('_').nth(1).unwrap().to_owned();
    let tail_path = "/api/v1/apps/demo/topics/chat/stream";
    let mut tail = Sse::open(s.with_key(&key, Method::GET, tail_path))
        .await
        .unwrap();
    tail.start_position(WAIT).await;
    let mut stats = Sse::open(s.with_key(&key, Method::GET, "/api/v1/stats/stream"))
        .await
        .unwrap();
    stats.next_event(WAIT).await.unwrap();
    let mut admins = Sse::open(s.admin(Method::GET, tail_path)).await.unwrap();
    admins.start_position(WAIT).await;

    let (status, _) = send(s.admin(Method::DELETE, &format!("/api/v1/admin-keys/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let last = tail.next_event(WAIT).await.expect("a final error");
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json()["code"], "token_revoked");
    assert!(tail.next_frame(WAIT).await.is_none(), "the tail ended");
    let mut ended = false;
    for _ in 0..3 {
        if stats.next_event(WAIT).await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stats stream ended");

    let seq = s.publish("demo", "chat", json!({"still": "here"})).await;
    assert_eq!(admins.messages(1).await[0].seq(), seq);
}
