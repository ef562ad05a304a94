//! The WebSocket endpoint (docs/protocol.md "WebSocket"): subscribe and resume, client
//! events on both transports, presence, rate limits and bad frames.

use std::time::Duration;

use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::sse::Sse;
use crate::support::{create_key, realtime_config, send, TestServer};
use crate::ws_client::{connect, open, Ws};

both_backends!(
    subscribe_resume_and_unsubscribe,
    client_events_reach_both_transports_and_are_refused_without_permission,
    client_events_are_rate_limited_and_the_connection_kept,
    presence_is_one_member_per_sub_and_updates_without_leaving,
    bad_frames_get_errors_or_documented_closes,
    tokens_before_and_after_the_upgrade,
    a_silent_connection_is_dropped_and_leaves,
);

async fn topic(s: &TestServer, name: &str, fields: Value) {
    let mut body = json!({"name": name, "external_subscribable": true, "auth_mode": "public"});
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let (status, got) = send(
        s.admin(Method::POST, "/api/v1/apps/demo/topics")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
}

async fn token(s: &TestServer, topics: &[&str], sub: Option<&str>, publish: &[&str]) -> String {
    let (status, body) = send(
        s.admin(Method::POST, "/api/v1/apps/demo/tokens")
            .json(&json!({"topics": topics, "ttl_secs": 600, "subject": sub, "publish": publish})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn subscribed(ws: &mut Ws, topic: &str, position: Option<&str>) -> Value {
    let mut req = json!({"type": "subscribe", "topic": topic});
    if let Some(p) = position {
        req["position"] = json!(p);
    }
    let got = ws.request(req).await;
    assert_eq!(got["type"], "subscribed", "{got}");
    got
}

async fn subscribe_resume_and_unsubscribe(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    topic(&s, "feed", json!({})).await;
    for i in 1..=3 {
        s.publish("demo", "feed", json!({"n": i})).await;
    }
    let mut ws = connect(s.port, "demo", None).await;
    // From "1": 2 and 3 from history, then live.
    let got = subscribed(&mut ws, "feed", Some("1")).await;
    assert_eq!(got["position"], "1");
    for seq in 2..=3 {
        let m = ws.next_of("message").await;
        assert_eq!(
            (m["seq"].as_i64(), m["position"].as_str()),
            (Some(seq), Some(seq.to_string().as_str()))
        );
        assert_eq!(m["message"], json!({"n": seq}));
        assert_eq!(m["topic"], "feed");
    }
    s.publish("demo", "feed", json!({"n": 4})).await;
    assert_eq!(ws.next_of("message").await["seq"], 4);

    // Without a position: from the topic's end, which the answer says.
    let mut fresh = connect(s.port, "demo", None).await;
    assert_eq!(subscribed(&mut fresh, "feed", None).await["position"], "4");
    // A position the topic never reached: resync to its end.
    let mut ahead = connect(s.port, "demo", None).await;
    assert_eq!(
        subscribed(&mut ahead, "feed", Some("99")).await["position"],
        "4"
    );
    let r = ahead.next_of("resync").await;
    assert_eq!(
        (
            r["reason"].as_str(),
            r["position"].as_str(),
            r["from"].as_i64()
        ),
        (Some("position_ahead"), Some("4"), Some(99))
    );

    // Errors keep the connection: unknown topics, twice the same.
    let again = ws
        .request(json!({"type": "subscribe", "topic": "feed"}))
        .await;
    assert_eq!(again["code"], "already_subscribed");
    let missing = ws
        .request(json!({"type": "subscribe", "topic": "nope"}))
        .await;
    assert_eq!(
        (missing["type"].as_str(), missing["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    topic(&s, "inside", json!({"external_subscribable": false})).await;
    let internal = ws
        .request(json!({"type": "subscribe", "topic": "inside"}))
        .await;
    assert_eq!(
        internal["code"], "not_found",
        "internal topics cannot be probed"
    );

    let done = ws
        .request(json!({"type": "unsubscribe", "topic": "feed"}))
        .await;
    assert_eq!(done["type"], "unsubscribed");
    s.publish("demo", "feed", json!({"n": 5})).await;
    assert_eq!(fresh.next_of("message").await["seq"], 5);
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "nothing of feed came before the pong");

    // A deleted topic ends that subscription only.
    let (status, _) = send(s.admin(Method::DELETE, "/api/v1/apps/demo/topics/feed")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let closed = fresh.next_of("unsubscribed").await;
    assert_eq!(
        (closed["topic"].as_str(), closed["code"].as_str()),
        (Some("feed"), Some("topic_closed"))
    );
    assert_eq!(fresh.request(json!({"type": "ping"})).await["type"], "pong");
    let health = s.realtime_health().await;
    assert_eq!(health["connections"], 3, "{health}");
}

async fn client_events_reach_both_transports_and_are_refused_without_permission(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    topic(&s, "room", json!({"client_publish": true})).await;
    topic(&s, "quiet", json!({"client_publish": false})).await;
    let sse = Sse::open(s.app_get("demo", "/realtime/topics/room"))
        .await
        .unwrap();
    let mut sse = sse;
    let mut listener = connect(s.port, "demo", None).await;
    subscribed(&mut listener, "room", None).await;

    let may = token(&s, &["room"], Some("ann"), &["room", "quiet"]).await;
    let mut ws = connect(s.port, "demo", Some(&may)).await;
    let sent = ws
        .request(json!({"type": "publish", "topic": "room", "data": {"typing": true}}))
        .await;
    assert_eq!(sent["type"], "published", "{sent}");
    let m = listener.next_of("message").await;
    assert_eq!(
        (&m["message"], &m["seq"]),
        (&json!({"typing": true}), &Value::Null)
    );
    assert!(
        m.get("position").is_none(),
        "client events have no position"
    );
    let f = loop {
        let f = sse
            .next_frame(Duration::from_secs(5))
            .await
            .expect("an SSE frame");
        if f.event.as_deref() == Some("message") {
            break f;
        }
    };
    assert_eq!(f.id, None);
    assert_eq!(f.json()["message"], json!({"typing": true}));

    // The topic does not allow them; the token has no publish claim; no token at all.
    let off = ws
        .request(json!({"type": "publish", "topic": "quiet", "data": 1}))
        .await;
    assert_eq!(off["code"], "forbidden");
    let plain = token(&s, &["room"], Some("bob"), &[]).await;
    let mut bob = connect(s.port, "demo", Some(&plain)).await;
    let denied = bob
        .request(json!({"type": "publish", "topic": "room", "data": 1}))
        .await;
    assert_eq!(denied["code"], "forbidden");
    let mut anon = connect(s.port, "demo", None).await;
    let denied = anon
        .request(json!({"type": "publish", "topic": "room", "data": 1}))
        .await;
    assert_eq!(denied["code"], "unauthorized");
    // Over the payload limit.
    let big = "x".repeat(65 * 1024);
    let too_big = ws
        .request(json!({"type": "publish", "topic": "room", "data": big}))
        .await;
    assert_eq!(too_big["code"], "payload_too_large");
    // Nothing refused reached the listener.
    let pong = listener.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

async fn client_events_are_rate_limited_and_the_connection_kept(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let (status, _) = send(
        s.admin(Method::PUT, "/api/v1/apps/demo/quotas")
            .json(&json!({"client_events_per_sec": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    topic(&s, "room", json!({"client_publish": true})).await;
    topic(
        &s,
        "typing",
        json!({"client_publish": true, "client_event_limit": {"count": 1, "per_secs": 60}}),
    )
    .await;
    let t = token(&s, &["room", "typing"], Some("ann"), &["room", "typing"]).await;
    let mut ws = connect(s.port, "demo", Some(&t)).await;

    // Bursts of twice the rate, then refused with how long to wait.
    let publish = json!({"type": "publish", "topic": "room", "data": 1});
    for _ in 0..4 {
        assert_eq!(ws.request(publish.clone()).await["type"], "published");
    }
    let refused = ws.request(publish.clone()).await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let wait = refused["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert_eq!(
        ws.request(publish).await["type"],
        "published",
        "accepted after the wait"
    );

    // A topic's own limit: one a minute.
    let typing = json!({"type": "publish", "topic": "typing", "data": 1});
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ws.request(typing.clone()).await["type"], "published");
    let refused = ws.request(typing).await;
    assert_eq!(refused["code"], "rate_limited");
    assert!(
        refused["retry_after_ms"].as_u64().unwrap() > 50_000,
        "{refused}"
    );
    let metrics = s.text("/metrics").await;
    assert!(
        metrics
            .contains(r#"picloud_quota_refusals_total{app="demo",quota="client_events_per_sec"}"#),
        "refusals counted"
    );
}

async fn presence_is_one_member_per_sub_and_updates_without_leaving(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    topic(&s, "lobby", json!({"presence": true})).await;
    topic(&s, "plain", json!({})).await;
    let mut watcher = connect(s.port, "demo", None).await;
    subscribed(&mut watcher, "lobby", None).await;
    let mut sse = Sse::open(s.app_get("demo", "/realtime/topics/lobby"))
        .await
        .unwrap();

    let ann = token(&s, &["lobby", "plain"], Some("ann"), &[]).await;
    let (mut tab1, mut tab2) = (
        connect(s.port, "demo", Some(&ann)).await,
        connect(s.port, "demo", Some(&ann)).await,
    );
    let enter = json!({"type": "presence.enter", "topic": "lobby", "data": {"page": "home"}});
    assert_eq!(tab1.request(enter.clone()).await["type"], "ok");
    assert_eq!(tab2.request(enter).await["type"], "ok");
    let join = watcher.next_of("presence").await;
    assert_eq!(
        join,
        json!({"type": "presence", "topic": "lobby", "event": "join", "member": {"sub": "ann", "data": {"page": "home"}}})
    );
    let f = loop {
        let f = sse
            .next_frame(Duration::from_secs(5))
            .await
            .expect("an SSE frame");
        if f.event.as_deref() == Some("presence") {
            break f;
        }
    };
    assert_eq!(f.json()["event"], "join");
    let members = tab1
        .request(json!({"type": "presence.get", "topic": "lobby"}))
        .await;
    assert_eq!(
        members["members"],
        json!([{"sub": "ann", "data": {"page": "home"}}])
    );
    let (_, listed) = send(s.admin(Method::GET, "/api/v1/apps/demo/topics/lobby/presence")).await;
    assert_eq!(
        listed["members"],
        json!([{"sub": "ann", "data": {"page": "home"}, "connections": 2}])
    );

    // 20 updates: 20 update events, no leave and join (the quota allows 5/s in bursts of 10).
    for i in 0..20 {
        let got = tab1
            .request(json!({"type": "presence.update", "topic": "lobby", "data": {"n": i}}))
            .await;
        if got["code"] == "rate_limited" {
            tokio::time::sleep(Duration::from_millis(
                got["retry_after_ms"].as_u64().unwrap() + 10,
            ))
            .await;
            let again = tab1
                .request(json!({"type": "presence.update", "topic": "lobby", "data": {"n": i}}))
                .await;
            assert_eq!(again["type"], "ok", "{again}");
        } else {
            assert_eq!(got["type"], "ok", "{got}");
        }
    }
    for i in 0..20 {
        let e = watcher.next_of("presence").await;
        assert_eq!(
            (e["event"].as_str(), &e["member"]["data"]),
            (Some("update"), &json!({"n": i}))
        );
    }

    // One tab closes: no leave. The last one: one leave.
    tab2.close().await;
    assert_eq!(
        watcher.quiet(Duration::from_millis(500)).await,
        None,
        "no leave while a tab is left"
    );
    tab1.close().await;
    let leave = watcher.next_of("presence").await;
    assert_eq!(
        (leave["event"].as_str(), leave["member"]["sub"].as_str()),
        (Some("leave"), Some("ann"))
    );
    assert_eq!(
        watcher.quiet(Duration::from_millis(300)).await,
        None,
        "exactly one leave"
    );
    let (_, listed) = send(s.admin(Method::GET, "/api/v1/apps/demo/topics/lobby/presence")).await;
    assert_eq!(listed["members"], json!([]));

    // Refusals: no presence on the topic; no sub; too much data; update before enter.
    let mut ws = connect(s.port, "demo", Some(&ann)).await;
    let plain = ws
        .request(json!({"type": "presence.enter", "topic": "plain"}))
        .await;
    assert_eq!(plain["code"], "forbidden");
    let anonymous = token(&s, &["lobby"], None, &[]).await;
    let mut nobody = connect(s.port, "demo", Some(&anonymous)).await;
    let no_sub = nobody
        .request(json!({"type": "presence.enter", "topic": "lobby"}))
        .await;
    assert_eq!(no_sub["code"], "forbidden");
    let big = ws
        .request(json!({"type": "presence.enter", "topic": "lobby", "data": "x".repeat(1100)}))
        .await;
    assert_eq!(big["code"], "payload_too_large");
    let early = ws
        .request(json!({"type": "presence.update", "topic": "lobby", "data": 1}))
        .await;
    assert_eq!(early["code"], "bad_request");
    let leave = ws
        .request(json!({"type": "presence.leave", "topic": "lobby"}))
        .await;
    assert_eq!(
        leave["type"], "ok",
        "leaving what was not entered is answered"
    );
}

async fn bad_frames_get_errors_or_documented_closes(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let mut ws = connect(s.port, "demo", None).await;
    ws.send_text("not json".into()).await;
    let e = ws.next().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    ws.send_text(r#"{"type":"teleport","id":9}"#.into()).await;
    let e = ws.next().await.unwrap();
    assert_eq!(
        (e["id"].as_u64(), e["code"].as_str()),
        (Some(9), Some("bad_request"))
    );
    assert_eq!(
        ws.request(json!({"type": "ping"})).await["type"],
        "pong",
        "still open"
    );

    ws.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ws.closed().await, Some(1003));

    let mut big = connect(s.port, "demo", None).await;
    big.send_text(format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    ))
    .await;
    assert_eq!(big.closed().await, Some(1009));
    // The server is fine.
    let mut after = connect(s.port, "demo", None).await;
    assert_eq!(after.request(json!({"type": "ping"})).await["type"], "pong");
    // Not an upgrade.
    let (status, body) = send(s.app_get("demo", "/realtime/ws")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
}

async fn tokens_before_and_after_the_upgrade(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    topic(&s, "secret", json!({"auth_mode": "token"})).await;
    let host = format!("demo.localhost:{}", s.port);
    assert_eq!(open(s.port, &host, "?token=forged").await.err(), Some(401));
    assert_eq!(
        open(s.port, &format!("nope.localhost:{}", s.port), "")
            .await
            .err(),
        Some(404)
    );

    // No token: token-mode topics are refused; a token in the first frame opens them.
    let mut ws = connect(s.port, "demo", None).await;
    let denied = ws
        .request(json!({"type": "subscribe", "topic": "secret"}))
        .await;
    assert_eq!(denied["code"], "unauthorized");
    let bad = ws.request(json!({"type": "auth", "token": "forged"})).await;
    assert_eq!(bad["code"], "unauthorized");
    let t = token(&s, &["secret"], Some("ann"), &[]).await;
    assert_eq!(
        ws.request(json!({"type": "auth", "token": t})).await["type"],
        "ok"
    );
    subscribed(&mut ws, "secret", None).await;
    // A refresh must still cover what is subscribed.
    let other = token(&s, &["elsewhere"], Some("ann"), &[]).await;
    let narrower = ws.request(json!({"type": "refresh", "token": other})).await;
    assert_eq!(narrower["code"], "unauthorized");
    let t2 = token(&s, &["secret"], Some("ann"), &[]).await;
    assert_eq!(
        ws.request(json!({"type": "refresh", "token": t2})).await["type"],
        "ok"
    );

    // Retiring the secret ends the connection with token_revoked and 1008.
    let (_, secrets) = send(s.admin(Method::GET, "/api/v1/apps/demo/secrets")).await;
    let kid = secrets["secrets"][0]["kid"].as_str().unwrap().to_owned();
    let (status, _) = send(s.admin(
        Method::POST,
        &format!("/api/v1/apps/demo/secrets/{kid}/retire"),
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let e = ws.next_of("error").await;
    assert_eq!(e["code"], "token_revoked");
    assert_eq!(ws.closed().await, Some(1008));

    // The connection quota is checked before the upgrade.
    let (status, _) = send(
        s.admin(Method::PUT, "/api/v1/apps/demo/quotas")
            .json(&json!({"connections": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let _one = connect(s.port, "demo", None).await;
    assert_eq!(open(s.port, &host, "").await.err(), Some(429));
}

/// A member whose connection stops answering (its client reads nothing, so it sends no
/// pong) is dropped after the ping and its wait, and leaves; a reading one stays.
async fn a_silent_connection_is_dropped_and_leaves(backend: Backend) {
    let db = picloud_store::testing::TestDatabase::new(backend).await;
    let store = db.open().await;
    let key = create_key(
        &store,
        &[picloud_core::capability::Capability::InstanceAdmin],
        None,
    )
    .await;
    let rt = picloud_realtime::RealtimeConfig {
        ws_ping: Duration::from_millis(600),
        ws_pong_wait: Duration::from_millis(600),
        ..realtime_config()
    };
    let s = TestServer::serve_with(db, store, Default::default(), rt, key).await;
    s.create_app("demo").await;
    topic(&s, "lobby", json!({"presence": true})).await;
    let mut watcher = connect(s.port, "demo", None).await;
    subscribed(&mut watcher, "lobby", None).await;
    let ann = token(&s, &["lobby"], Some("ann"), &[]).await;
    let mut member = connect(s.port, "demo", Some(&ann)).await;
    let entered = member
        .request(json!({"type": "presence.enter", "topic": "lobby"}))
        .await;
    assert_eq!(entered["type"], "ok");
    assert_eq!(watcher.next_of("presence").await["event"], "join");
    // The member reads nothing from now on; the watcher keeps reading (and so answers pings).
    let leave = watcher.next_of("presence").await;
    assert_eq!(
        (leave["event"].as_str(), leave["member"]["sub"].as_str()),
        (Some("leave"), Some("ann"))
    );
    assert_eq!(
        watcher.request(json!({"type": "ping"})).await["type"],
        "pong",
        "the reader stays"
    );
    assert_eq!(member.closed().await, None, "dropped without a close frame");
}
