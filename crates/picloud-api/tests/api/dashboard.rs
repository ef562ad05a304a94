//! What the dashboard needs from the server: the embedded build at `/_/` with its security
//! headers, `GET /api/v1/me`, the admin tail stream and the history pages.

use std::time::Duration;

use picloud_core::capability::Capability;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::sse::Sse;
use crate::support::{assert_error, send, TestServer};

both_backends!(
    admin_tail_streams_any_topic_and_resumes,
    history_pages_back_by_seq
);

/// The dashboard is on the admin hosts only, with a strict CSP on every answer; its own
/// routes get `index.html`, missing files a 404; a revalidation with the ETag is a 304.
#[tokio::test]
async fn the_dashboard_is_served_with_its_security_headers() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = no_redirects.get(s.url("/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(root.headers()["location"], "/_/");

    for (path, kind) in [
        ("/_/", "text/html"),
        ("/_/apps/demo/topics/chat", "text/html"),
        ("/_/assets/index.js", "javascript"),
        ("/_/assets/index.css", "text/css"),
    ] {
        let res = reqwest::get(s.url(path)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval';",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        // Compiling WebAssembly is the one allowance: no inline script, no JS eval.
        assert!(
            !csp.replace("'wasm-unsafe-eval'", "").contains("unsafe"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-type"].to_str().unwrap().contains(kind), "{path}");
        let etag = h["etag"].clone();
        let again = reqwest::Client::new()
            .get(s.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let missing = reqwest::get(s.url("/_/assets/nope.js")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("content-security-policy"));

    // Not on an app's Host: there `/_/` is the app's own path.
    s.create_app("demo").await;
    let on_app = s.on_host("demo.localhost", "/_/").send().await.unwrap();
    assert!(!on_app.headers().contains_key("content-security-policy"));
}

/// `GET /api/v1/me` names the calling key, whatever its capabilities; a bad key is the
/// usual 401.
#[tokio::test]
async fn me_names_the_calling_key() {
    let s = TestServer::start(picloud_store::Backend::Sqlite).await;
    let app = s.create_app("demo").await;
    let app_id = app["id"].as_str().unwrap();
    let (status, me) = send(s.admin(Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["capabilities"], json!(["InstanceAdmin"]));
    assert_eq!(me["app_id"], json!(null));
    assert!(
        me.get("secret").is_none() && me.get("key").is_none(),
        "{me}"
    );

    let bound = s.key(&[Capability::AppRead], Some(app_id)).await;
    let (status, me) = send(s.with_key(&bound, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["capabilities"], json!(["AppRead"]));
    assert_eq!(me["app_id"], app_id);
    assert!(bound.contains(me["id"].as_str().unwrap()));

    let got = send(s.with_key("pk_nope_nope", Method::GET, "/api/v1/me")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// The admin tail reads internal and token-mode topics with the admin key alone (no token),
/// with the subscriber stream's frames, and resumes from `Last-Event-ID`; keys that may not
/// read the app, or no key, are refused as everywhere in the admin API.
async fn admin_tail_streams_any_topic_and_resumes(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let other = s.create_app("other").await;
    s.create_topic("demo", "secret.room", false, "token").await;
    let path = "/api/v1/apps/demo/topics/secret.room/stream";
    let mut tail = Sse::open(s.admin(Method::GET, path)).await.unwrap();
    assert_eq!(tail.headers["content-type"], "text/event-stream");
    tail.start_position(Duration::from_secs(10)).await;
    let first = s.publish("demo", "secret.room", json!({"n": 1})).await;
    let second = s.publish("demo", "secret.room", json!({"n": 2})).await;
    let got = tail.messages(2).await;
    assert_eq!(
        got.iter().map(|f| f.seq()).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(got[1].id.as_deref(), Some("2"));
    drop(tail);

    // Resumed after the first: only the second, then what comes next.
    let resumed = s
        .admin(Method::GET, path)
        .header("last-event-id", "secret.room=1");
    let mut tail = Sse::open(resumed).await.unwrap();
    assert_eq!(tail.messages(1).await[0].json()["message"], json!({"n": 2}));

    let reader_elsewhere = s.key(&[Capability::AppRead], other["id"].as_str()).await;
    let publisher = s.key(&[Capability::AppPublish], None).await;
    for (key, status) in [
        (reader_elsewhere.as_str(), StatusCode::NOT_FOUND),
        (publisher.as_str(), StatusCode::FORBIDDEN),
        ("pk_nope_nope", StatusCode::UNAUTHORIZED),
    ] {
        let refused = Sse::open(s.with_key(key, Method::GET, path)).await;
        assert_eq!(refused.err().map(|e| e.0), Some(status), "{key}");
    }
    let missing = Sse::open(s.admin(Method::GET, "/api/v1/apps/demo/topics/nope/stream")).await;
    assert_eq!(missing.err().map(|e| e.0), Some(StatusCode::NOT_FOUND));
}

/// History newest first, paged by seq, with where retention begins; the topics' counts.
async fn history_pages_back_by_seq(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    s.create_topic("demo", "log", false, "token").await;
    for n in 1..=5 {
        s.publish("demo", "log", json!({"n": n})).await;
    }
    let page = |q: &str| {
        send(s.admin(
            Method::GET,
            &format!("/api/v1/apps/demo/topics/log/messages{q}"),
        ))
    };
    let (status, first) = page("?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let seqs = |v: &serde_json::Value| {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&first), vec![5, 4]);
    assert_eq!(first["messages"][0]["message"], json!({"n": 5}));
    assert_eq!(first["oldest_seq"], 1);
    assert_eq!(first["next_before_seq"], 4);
    let (_, last) = page("?limit=10&before_seq=4").await;
    assert_eq!(seqs(&last), vec![3, 2, 1]);
    assert!(last["next_before_seq"].is_null(), "{last}");

    assert_error(
        &page("?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_error(
        &page("?limit=501").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    let missing = send(s.admin(Method::GET, "/api/v1/apps/demo/topics/nope/messages")).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    // The topics API says how much each topic holds and who listens on this node.
    s.create_topic("demo", "quiet", false, "token").await;
    let _tail = Sse::open(s.admin(Method::GET, "/api/v1/apps/demo/topics/log/stream"))
        .await
        .unwrap();
    let (_, list) = send(s.admin(Method::GET, "/api/v1/apps/demo/topics")).await;
    let stats = |name: &str| {
        list["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["stats"]
            .clone()
    };
    assert_eq!(
        stats("log"),
        json!({"retained_messages": 5, "live_subscribers": 1, "publishes_last_minute": 5})
    );
    assert_eq!(
        stats("quiet"),
        json!({"retained_messages": 0, "live_subscribers": 0, "publishes_last_minute": 0})
    );
    let (_, one) = send(s.admin(Method::GET, "/api/v1/apps/demo/topics/log")).await;
    assert_eq!(one["stats"], stats("log"));
}
