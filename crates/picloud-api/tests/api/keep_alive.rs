//! Publish connections, which the server's own keep-alive loop serves until a request it
//! does not take, then hands to hyper: raw sockets, so the bytes on the wire are what is
//! tested.

use std::time::Duration;

use picloud_api::ApiConfig;
use picloud_store::Backend;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::raw::{closes, read_answers};
use crate::support::{send, short_deadline, TestServer};

fn publish(s: &TestServer, topic: &str, body: &str, extra: &str) -> String {
    format!(
        "POST /api/v1/apps/demo/topics/{topic}/publish HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        s.admin_key,
        body.len()
    )
}

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", s.port)).await.unwrap()
}

async fn demo() -> TestServer {
    demo_with(ApiConfig::default()).await
}

/// App `demo` with internal topic `t`, on SQLite.
async fn demo_with(config: ApiConfig) -> TestServer {
    let s = TestServer::start_with(Backend::Sqlite, config).await;
    s.create_app("demo").await;
    s.create_topic("demo", "t", false, "token").await;
    s
}

#[tokio::test]
async fn pipelined_publishes_then_other_requests_on_one_connection() {
    let s = demo().await;
    let mut conn = connect(&s).await;
    // Two publishes, a GET (hyper's), then a publish hyper now serves, and one of each kind
    // of error answer the loop passes through: all in one write.
    let get = format!(
        "GET /api/v1/apps/demo/topics/t HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        s.admin_key
    );
    let wire = [
        publish(&s, "t", r#"{"n":1}"#, ""),
        publish(&s, "t", r#"{"n":2}"#, ""),
        get,
        publish(&s, "t", r#"{"n":3}"#, ""),
    ]
    .concat();
    conn.write_all(wire.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answers = read_answers(&mut conn, &mut buf, 4).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [201, 201, 200, 201], "{answers:?}");
    let seqs: Vec<Value> = [0, 1, 3]
        .iter()
        .map(|&i| answers[i].json()["seq"].clone())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(answers[2].json()["name"], "t");
    for a in &answers {
        assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
        assert!(
            a.header("date").is_some_and(|d| d.ends_with(" gmt")),
            "{a:?}"
        );
        assert_eq!(a.header("connection"), None, "kept alive: {a:?}");
    }

    // A fresh connection: the loop's error answers are the service's.
    let mut conn = connect(&s).await;
    let wire = [
        publish(&s, "t", "{nope", ""),
        publish(&s, "bad*name", "{}", ""),
        publish(&s, "t", r#"{"n":4}"#, ""),
    ]
    .concat();
    conn.write_all(wire.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answers = read_answers(&mut conn, &mut buf, 3).await;
    assert_eq!(answers[0].status, 400);
    assert_eq!(answers[0].json()["error"]["code"], "malformed_json");
    assert_eq!(answers[1].status, 422);
    assert_eq!(answers[1].json()["error"]["code"], "invalid_field");
    assert_eq!(answers[2].json()["seq"], 4);
}

#[tokio::test]
async fn unusual_requests_are_hyper_s_mid_connection() {
    let s = demo().await;
    let mut conn = connect(&s).await;
    let mut buf = Vec::new();
    // Served by the loop first.
    conn.write_all(publish(&s, "t", r#"{"n":1}"#, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_answers(&mut conn, &mut buf, 1).await[0].status, 201);
    // `Expect: 100-continue`: hyper says continue, then takes the body.
    let head = publish(&s, "t", r#"{"n":2}"#, "Expect: 100-continue\r\n");
    let (head, body) = head.split_at(head.len() - r#"{"n":2}"#.len());
    conn.write_all(head.as_bytes()).await.unwrap();
    let cont = read_answers(&mut conn, &mut buf, 1).await;
    assert_eq!(cont[0].status, 100);
    conn.write_all(body.as_bytes()).await.unwrap();
    let answers = read_answers(&mut conn, &mut buf, 1).await;
    assert_eq!(answers[0].status, 201, "{answers:?}");
    assert_eq!(answers[0].json()["seq"], 2);
    // A chunked body, on the same connection, now hyper's.
    let chunked = format!(
        "POST /api/v1/apps/demo/topics/t/publish HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{{\"n\"\r\n3\r\n:3}}\r\n0\r\n\r\n",
        s.admin_key
    );
    conn.write_all(chunked.as_bytes()).await.unwrap();
    let answers = read_answers(&mut conn, &mut buf, 1).await;
    assert_eq!(answers[0].status, 201, "{answers:?}");
    assert_eq!(answers[0].json()["seq"], 3);

    // A body over the request limit (1 MiB): hyper and the router refuse it.
    let mut conn = connect(&s).await;
    let huge = publish(&s, "t", &format!(r#""{}""#, "x".repeat(1 << 20)), "");
    conn.write_all(huge.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answers = read_answers(&mut conn, &mut buf, 1).await;
    assert_eq!(answers[0].status, 413, "{answers:?}");

    // HTTP/1.0 (no keep-alive by default): hyper answers and closes.
    let mut conn = connect(&s).await;
    let old = publish(&s, "t", r#"{"n":4}"#, "").replacen("HTTP/1.1", "HTTP/1.0", 1);
    conn.write_all(old.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answers = read_answers(&mut conn, &mut buf, 1).await;
    assert_eq!(answers[0].json()["seq"], 4);
    assert!(closes(&mut conn).await);
}

#[tokio::test]
async fn connection_close_and_a_stalled_body_end_the_connection() {
    let s = demo_with(short_deadline()).await;

    let mut conn = connect(&s).await;
    let wire = publish(&s, "t", r#"{"n":1}"#, "Connection: close\r\n");
    conn.write_all(wire.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answers = read_answers(&mut conn, &mut buf, 1).await;
    assert_eq!(answers[0].status, 201);
    assert_eq!(answers[0].header("connection"), Some("close"));
    assert!(closes(&mut conn).await, "the server closes after it");

    // A publish whose body stalls (slowloris) gets the 408 every path gives; a
    // publish earlier on the same connection stands, the stalled one is not stored.
    let mut conn = connect(&s).await;
    let whole = publish(&s, "t", r#"{"n":2}"#, "");
    let stalled = publish(&s, "t", r#"{"n":3,"pad":"xxxxxxxxxx"}"#, "");
    let cut = &stalled[..stalled.len() - 10];
    conn.write_all(format!("{whole}{cut}").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let answers = read_answers(&mut conn, &mut buf, 2).await;
    assert_eq!(answers[0].json()["seq"], 2);
    assert_eq!(answers[1].status, 408, "{answers:?}");
    assert_eq!(answers[1].json()["error"]["code"], "request_timeout");
    assert_eq!(answers[1].header("connection"), Some("close"));
    assert!(closes(&mut conn).await);

    // A client that vanishes mid-body publishes nothing either.
    let mut conn = connect(&s).await;
    conn.write_all(cut.as_bytes()).await.unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, topic) = send(s.admin(Method::GET, "/api/v1/apps/demo/topics/t")).await;
    assert_eq!(status, 200);
    assert_eq!(topic["last_seq"], 2, "{topic}");
}

/// A publish connection silent between requests for the idle limit is closed (within
/// twice the limit: see `keep_alive::Idle`); one that publishes more often than that stays
/// open however long it lives.
#[tokio::test]
async fn an_idle_publish_connection_is_closed_a_busy_one_is_not() {
    let idle = Duration::from_millis(300);
    let s = demo_with(ApiConfig {
        keep_alive_idle: idle,
        ..ApiConfig::default()
    })
    .await;
    let mut busy = connect(&s).await;
    let mut buf = Vec::new();
    // Four idle periods long, never silent for one.
    for i in 0..12 {
        let wire = publish(&s, "t", &format!(r#"{{"n":{i}}}"#), "");
        busy.write_all(wire.as_bytes()).await.unwrap();
        assert_eq!(read_answers(&mut busy, &mut buf, 1).await[0].status, 201);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut quiet = connect(&s).await;
    quiet
        .write_all(publish(&s, "t", "{}", "").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answers(&mut quiet, &mut buf, 1).await[0].status, 201);
    let silent_since = std::time::Instant::now();
    assert!(closes(&mut quiet).await, "closed within 5 s");
    // Never before a whole period of silence (the answer was read just after the server
    // counted the request, hence the tenth).
    assert!(
        silent_since.elapsed() >= idle * 9 / 10,
        "closed {:?} after its last request",
        silent_since.elapsed()
    );
}

#[tokio::test]
async fn a_stopping_server_closes_idle_publish_connections() {
    let mut s = demo().await;
    let mut conn = connect(&s).await;
    conn.write_all(publish(&s, "t", "{}", "").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answers(&mut conn, &mut buf, 1).await[0].status, 201);
    // The connection is idle and kept alive; stopping must not wait for the client.
    assert!(s.shut_down().await, "the server stopped within 10 s");
    assert!(closes(&mut conn).await);
}

/// The loop answers a plain one-message publish from its bytes, without building a request
/// (`HttpService::call_parsed`), when the Host is an admin host in normal form; with
/// the Host in another form (`LOCALHOST`) the same request goes through the service. The
/// answers must be the same, errors included.
#[tokio::test]
async fn publishes_answered_from_the_bytes_match_the_service_s_answers() {
    let s = demo().await;
    let key = s.admin_key.clone();
    let long = "x".repeat(300);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        // (what, target, authorization, body)
        (
            "durable",
            "/api/v1/apps/demo/topics/t/publish".into(),
            &key,
            r#"{"n":1}"#,
        ),
        (
            "ephemeral",
            "/api/v1/apps/demo/topics/t/publish?ephemeral=true".into(),
            &key,
            r#"[1, 2]"#,
        ),
        (
            "malformed",
            "/api/v1/apps/demo/topics/t/publish".into(),
            &key,
            "{nope",
        ),
        (
            "bad topic",
            format!("/api/v1/apps/demo/topics/{long}/publish"),
            &key,
            "{}",
        ),
        (
            "no topic",
            "/api/v1/apps/demo/topics/none/publish".into(),
            &key,
            "{}",
        ),
        (
            "no app",
            "/api/v1/apps/nope/topics/t/publish".into(),
            &key,
            "{}",
        ),
        (
            "bad key",
            "/api/v1/apps/demo/topics/t/publish".into(),
            "pk_x.y",
            "{}",
        ),
        (
            "no key",
            "/api/v1/apps/demo/topics/t/publish".into(),
            "",
            "{}",
        ),
    ];
    for (what, target, auth, body) in cases {
        let mut answers = Vec::new();
        for host in ["localhost", "LOCALHOST"] {
            let auth = if auth.is_empty() {
                String::new()
            } else {
                format!("Authorization: Bearer {auth}\r\n")
            };
            let wire = format!(
                "POST {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut conn = connect(&s).await;
            conn.write_all(wire.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            let answer = read_answers(&mut conn, &mut buf, 1).await.remove(0);
            let mut json = answer.json();
            // Per publish, not per path.
            for field in ["seq", "published_at"] {
                if let Some(v) = json.get_mut(field) {
                    *v = Value::from(v.is_null());
                }
            }
            // Per publish too: the length follows `published_at`, which drops ".000" on a
            // whole second (as chrono writes it); the answer was read by that length.
            let headers: Vec<String> = answer
                .headers
                .iter()
                .filter(|h| !h.starts_with("date: ") && !h.starts_with("content-length: "))
                .cloned()
                .collect();
            answers.push((answer.status, headers, json));
        }
        assert_eq!(answers[0], answers[1], "{what}");
        assert_ne!(answers[0].2["error"]["code"], "unknown_host", "{what}");
    }
}
