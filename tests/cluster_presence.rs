//! Presence across nodes with real processes: three `picloud` nodes on one fresh PostgreSQL
//! database and a private `redis-server`. Members entered on any node are seen from every
//! node; when a node is killed (`kill -9`, no goodbye), a survivor emits exactly one leave
//! per member whose last connection was there — and none for members still connected
//! elsewhere — within the lease (15 s, plus the 5 s reaper round: under 30 s).

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use picloud_store::testing::{PrivateRedis, TestDatabase};
use picloud_store::Backend;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use support::{admin_post, call, Server};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(server: &Server, token: Option<&str>) -> Socket {
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    let mut req = format!("ws://127.0.0.1:{}/realtime/ws{query}", server.port)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "host",
        HeaderValue::from_str(&format!("demo.localhost:{}", server.port)).unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Sends `frame` and waits for its answer (`id` 1; earlier frames are skipped).
async fn request(socket: &mut Socket, mut frame: Value) -> Value {
    frame["id"] = json!("req");
    socket.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let f = next(socket, Duration::from_secs(5))
            .await
            .expect("an answer");
        if f["id"] == "req" {
            return f;
        }
    }
}

async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?
        {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Presence events as `event:sub`, until `wait` passes without one.
async fn presence_events(socket: &mut Socket, wait: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(f) = next(socket, wait).await {
        if f["type"] == "presence" {
            seen.push(format!(
                "{}:{}",
                f["event"].as_str().unwrap(),
                f["member"]["sub"].as_str().unwrap()
            ));
        }
    }
    seen
}

#[tokio::test]
async fn a_killed_nodes_members_leave_once_from_a_survivor() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.database_url.clone().unwrap();
    let redis = PrivateRedis::start();
    let redis_url = redis.url();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let env = |node| {
        [
            ("DATABASE_URL", url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("PICLOUD_NODE_ID", node),
        ]
    };
    let n1 = Server::start(dirs[0].path(), &env("n1"));
    let admin = n1.bootstrap_key().expect("the first node bootstraps");
    let n2 = Server::start(dirs[1].path(), &env("n2"));
    let n3 = Server::start(dirs[2].path(), &env("n3"));
    let (status, _) = admin_post(&n1, &admin, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(status, 201);
    let (status, body) = admin_post(
        &n1,
        &admin,
        "/api/v1/apps/demo/topics",
        json!({"name": "lobby", "external_subscribable": true, "auth_mode": "public", "presence": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = |sub: &'static str| {
        let (n1, admin) = (&n1, admin.clone());
        async move {
            let (status, body) = admin_post(
                n1,
                &admin,
                "/api/v1/apps/demo/tokens",
                json!({"topics": ["lobby"], "ttl_secs": 600, "subject": sub}),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let (ann, bob, cat) = (token("ann").await, token("bob").await, token("cat").await);

    let mut watch1 = ws(&n1, None).await;
    let mut watch3 = ws(&n3, None).await;
    for w in [&mut watch1, &mut watch3] {
        let got = request(w, json!({"type": "subscribe", "topic": "lobby"})).await;
        assert_eq!(got["type"], "subscribed");
    }
    // ann only on n2; bob on n2 and n3; cat only on n3.
    let enter = json!({"type": "presence.enter", "topic": "lobby", "data": {"hi": 1}});
    let mut members = Vec::new();
    for (server, t) in [(&n2, &ann), (&n2, &bob), (&n3, &bob), (&n3, &cat)] {
        let mut socket = ws(server, Some(t)).await;
        assert_eq!(request(&mut socket, enter.clone()).await["type"], "ok");
        members.push(socket);
    }
    for w in [&mut watch1, &mut watch3] {
        let mut joins = presence_events(w, Duration::from_secs(1)).await;
        joins.sort();
        assert_eq!(
            joins,
            ["join:ann", "join:bob", "join:cat"],
            "every node sees every join once"
        );
    }
    let (status, listed) = call(
        reqwest::Method::GET,
        &n3.url("/api/v1/apps/demo/topics/lobby/presence"),
        "localhost",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["members"].as_array().unwrap().len(), 3, "{listed}");

    let killed = Instant::now();
    n2.stop("KILL");
    let f = loop {
        let f = next(&mut watch1, Duration::from_secs(30))
            .await
            .expect("a leave within 30 s");
        if f["type"] == "presence" {
            break f;
        }
    };
    let took = killed.elapsed();
    assert_eq!(
        (f["event"].as_str(), f["member"]["sub"].as_str()),
        (Some("leave"), Some("ann"))
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    eprintln!("a killed node's member left after {took:?}");
    // Nothing else: not bob (still on n3), not ann twice; n3 saw the same one leave.
    assert_eq!(
        presence_events(&mut watch1, Duration::from_secs(6)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        presence_events(&mut watch3, Duration::from_secs(1)).await,
        ["leave:ann"]
    );
    let (_, listed) = call(
        reqwest::Method::GET,
        &n1.url("/api/v1/apps/demo/topics/lobby/presence"),
        "localhost",
        Some(&admin),
        None,
    )
    .await;
    let left: Vec<_> = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["sub"].as_str().unwrap().to_owned(),
                m["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(left, [("bob".to_owned(), 1), ("cat".to_owned(), 1)]);
    drop(members);
}
