//! The HTTP edge against requests a careful client would not send, over raw sockets and on
//! every path that reads requests: the lean stream path (a connection whose first request
//! is a realtime `GET`), the keep-alive loop (first request an admin `POST`), and hyper
//! (everything else).

use picloud_store::Backend;
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

use picloud_api::ApiConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw::{read_answers, Answer};
use crate::support::{send, TestServer};

/// Sends `requests` on one connection and reads `n` answers.
async fn exchange(s: &TestServer, requests: &[String], n: usize) -> Vec<Answer> {
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    for r in requests {
        conn.write_all(r.as_bytes()).await.unwrap();
    }
    let mut buf = Vec::new();
    read_answers(&mut conn, &mut buf, n).await
}

/// A script that answers with an interim status fails its run (500, the reason in its
/// invocation record), and the connection stays in step: the next request on it gets its
/// own answer. Both the keep-alive loop (a `POST /api/v1/apps/…` route on the app's Host)
/// and hyper (any other route) serve it.
#[tokio::test]
async fn scripts_cannot_answer_with_an_interim_status() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.create_app("edge").await;
    for status in [100, 101, 199] {
        let name = format!("s{status}");
        s.deploy("edge", &name, &format!("#{{ status: {status} }}"))
            .await;
        s.route("edge", "POST", &format!("/api/v1/apps/{name}"), &name)
            .await;
        s.route("edge", "GET", &format!("/{name}"), &name).await;
    }
    s.deploy("edge", "ok", "#{ status: 204 }").await;
    s.route("edge", "POST", "/api/v1/apps/ok", "ok").await;
    s.route("edge", "GET", "/ok", "ok").await;
    let host = format!("edge.localhost:{}", s.port);
    for status in [100, 101, 199] {
        let keep_alive = |path: &str| {
            format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\n\r\n")
        };
        let hyper = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
        for (path, request) in [
            ("keep-alive loop", &keep_alive as &dyn Fn(&str) -> String),
            ("hyper", &hyper),
        ] {
            let prefix = if path == "hyper" { "" } else { "/api/v1/apps" };
            let answers = exchange(
                &s,
                &[
                    request(&format!("{prefix}/s{status}")),
                    request(&format!("{prefix}/ok")),
                ],
                2,
            )
            .await;
            assert_eq!(answers[0].status, 500, "{status} via {path}");
            assert_eq!(answers[0].json()["error"]["code"], "script_error");
            assert_eq!(answers[1].status, 204, "{status} via {path}: {answers:?}");
        }
    }
    let logs = s
        .eventually("the failed runs' records", || async {
            let (_, l) = send(s.admin(Method::GET, "/api/v1/apps/edge/logs")).await;
            let failed: Vec<Value> = l["invocations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["outcome"] == "error")
                .cloned()
                .collect();
            (failed.len() >= 6).then_some(failed)
        })
        .await;
    assert!(
        logs.iter().all(|i| i["error"]
            .as_str()
            .unwrap()
            .contains("status must be an integer from 200 to 599")),
        "{logs:?}"
    );
}

/// Two `Host` headers are a 400 on every path, and an absolute-form request target's
/// authority wins over `Host` (RFC 9112 §3.2).
#[tokio::test]
async fn host_ambiguity_is_refused_and_the_target_s_authority_wins() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.create_app("tenant").await;
    s.create_topic("tenant", "chat", true, "public").await;
    let port = s.port;
    let admin = format!("localhost:{port}");
    let tenant = format!("tenant.localhost:{port}");
    let key = s.admin_key.clone();
    let two_hosts = [
        // The lean stream path.
        format!("GET /realtime/topics/chat HTTP/1.1\r\nhost: {tenant}\r\nhost: {admin}\r\n\r\n"),
        // The keep-alive loop (and its answer-from-the-bytes publish).
        format!(
            "POST /api/v1/apps/tenant/topics/chat/publish HTTP/1.1\r\nhost: {admin}\r\n\
             host: {tenant}\r\nauthorization: Bearer {key}\r\ncontent-length: 2\r\n\r\n{{}}"
        ),
        // hyper.
        format!("GET / HTTP/1.1\r\nhost: {tenant}\r\nhost: {admin}\r\n\r\n"),
        format!("GET /api/v1/apps HTTP/1.1\r\nhost: {admin}\r\nhost: {admin}\r\nauthorization: Bearer {key}\r\n\r\n"),
    ];
    for request in &two_hosts {
        let answers = exchange(&s, std::slice::from_ref(request), 1).await;
        assert_eq!(answers[0].status, 400, "{request}");
        assert_eq!(answers[0].json()["error"]["code"], "bad_host", "{request}");
    }
    // Absolute form: the target names the tenant, the Host header the admin host.
    let answers = exchange(
        &s,
        &[format!(
            "GET http://{tenant}/ HTTP/1.1\r\nhost: {admin}\r\n\r\n"
        )],
        1,
    )
    .await;
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].json()["app"], "tenant");
    // And the other way round: an admin route reached through the target's authority.
    let answers = exchange(
        &s,
        &[format!(
            "GET http://{admin}/api/v1/apps HTTP/1.1\r\nhost: {tenant}\r\nauthorization: Bearer {key}\r\n\r\n"
        )],
        1,
    )
    .await;
    assert_eq!(answers[0].status, 200, "{:?}", answers[0]);
    assert!(answers[0].json()["apps"].is_array());
    // Nothing was published by the refused publish.
    assert!(s.store_history("tenant", "chat", 10).await.is_empty());
}

/// A fresh connection to the server.
async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", s.port)).await.unwrap()
}

fn edge_config() -> ApiConfig {
    ApiConfig {
        request_timeout: Duration::from_millis(1000),
        keep_alive_idle: Duration::from_millis(1000),
        ..ApiConfig::default()
    }
}

/// The first line of a request on each path: the lean stream path, the keep-alive loop,
/// and hyper (a first request of any other kind).
fn first_lines(host: &str) -> [(&'static str, String); 3] {
    [
        (
            "lean",
            format!("GET /realtime/topics/chat HTTP/1.1\r\nhost: {host}\r\n"),
        ),
        (
            "keep-alive",
            "POST /api/v1/apps/edge/topics/chat/publish HTTP/1.1\r\nhost: localhost\r\n".into(),
        ),
        (
            "hyper",
            "GET /healthz HTTP/1.1\r\nhost: localhost\r\n".into(),
        ),
    ]
}

/// Sends a header line every 200 ms until the server answers; then reads until it closes.
/// `None` if nothing came within `within`.
async fn trickle_until_answered(conn: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut i = 0;
    loop {
        tokio::select! {
            n = conn.read(&mut chunk) => {
                match n {
                    Ok(0) | Err(_) => return Some(got),
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
            () = tokio::time::sleep(Duration::from_millis(200)), if got.is_empty() => {
                i += 1;
                let _ = conn.write_all(format!("x-{i}: y\r\n").as_bytes()).await;
            }
            () = tokio::time::sleep_until(deadline) => return (!got.is_empty()).then_some(got),
        }
    }
}

/// A client that trickles its head (slowloris) gets `408 request_timeout` and the
/// connection closed once the head timeout has passed, on every path, first request or
/// not: the connection is not held for as long as the client keeps trickling.
#[tokio::test]
async fn a_trickled_head_gets_408_on_every_path() {
    let s = TestServer::start_with(Backend::Sqlite, edge_config()).await;
    s.create_app("edge").await;
    s.create_topic("edge", "chat", true, "public").await;
    let host = format!("edge.localhost:{}", s.port);
    let mut cases: Vec<(String, Option<String>, String)> = first_lines(&host)
        .into_iter()
        .map(|(path, line)| (path.to_owned(), None, line))
        .collect();
    // hyper, after a first request it answered.
    cases.push((
        "hyper, second request".into(),
        Some("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n".into()),
        "GET /healthz HTTP/1.1\r\n".into(),
    ));
    for (path, prelude, start) in cases {
        let mut conn = connect(&s).await;
        if let Some(first) = prelude {
            conn.write_all(first.as_bytes()).await.unwrap();
            let answered = read_answers(&mut conn, &mut Vec::new(), 1).await;
            assert_eq!(answered[0].status, 200);
        }
        conn.write_all(start.as_bytes()).await.unwrap();
        let began = Instant::now();
        let got = trickle_until_answered(&mut conn, Duration::from_secs(6))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer within 6 s"));
        let text = String::from_utf8_lossy(&got);
        let last = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
        assert!(last.starts_with("408"), "{path}: {text}");
        assert!(
            text.contains(r#""code":"request_timeout""#),
            "{path}: {text}"
        );
        assert!(began.elapsed() >= Duration::from_millis(900), "{path}");
    }
}

/// A request head over 16 KiB is answered `431` on every path (hyper took 400 KB before).
#[tokio::test]
async fn a_head_over_16_kib_gets_431_on_every_path() {
    let s = TestServer::start_with(Backend::Sqlite, edge_config()).await;
    s.create_app("edge").await;
    s.create_topic("edge", "chat", true, "public").await;
    let host = format!("edge.localhost:{}", s.port);
    let big = format!("x-big: {}\r\n", "a".repeat(17 * 1024));
    for (path, line) in first_lines(&host) {
        let mut conn = connect(&s).await;
        let request = format!("{line}{big}content-length: 0\r\n\r\n");
        // The server may answer and close before it has read everything we send.
        let _ = conn.write_all(request.as_bytes()).await;
        let answers = read_answers(&mut conn, &mut Vec::new(), 1).await;
        assert_eq!(answers[0].status, 431, "{path}");
    }
}

/// A connection with nothing in flight is closed after the idle limit on every path; a
/// stream is a request in flight, and stays open however quiet it is.
#[tokio::test]
async fn idle_connections_close_and_streams_stay_on_every_path() {
    let s = TestServer::start_with(Backend::Sqlite, edge_config()).await;
    s.create_app("edge").await;
    s.create_topic("edge", "chat", true, "public").await;
    let host = format!("edge.localhost:{}", s.port);
    let key = s.admin_key.clone();
    let publish = format!(
        "POST /api/v1/apps/edge/topics/chat/publish HTTP/1.1\r\nhost: localhost\r\n\
         authorization: Bearer {key}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    for (path, first) in [
        ("keep-alive", publish.clone()),
        (
            "hyper",
            "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n".to_owned(),
        ),
    ] {
        let mut conn = connect(&s).await;
        conn.write_all(first.as_bytes()).await.unwrap();
        let answered = read_answers(&mut conn, &mut Vec::new(), 1).await;
        assert!(answered[0].status < 300, "{path}: {answered:?}");
        let quiet = Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{path}: still open after 5 s idle"))
            .unwrap();
        assert!(
            rest.is_empty(),
            "{path}: {}",
            String::from_utf8_lossy(&rest)
        );
        assert!(quiet.elapsed() >= Duration::from_millis(900), "{path}");
    }
    // Streams: on the lean path, and on hyper (a stream as a connection's second request).
    let subscribe = format!("GET /realtime/topics/chat HTTP/1.1\r\nhost: {host}\r\n\r\n");
    let mut lean = connect(&s).await;
    lean.write_all(subscribe.as_bytes()).await.unwrap();
    let mut via_hyper = connect(&s).await;
    via_hyper
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n{subscribe}").as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.publish("edge", "chat", serde_json::json!({"late": true}))
        .await;
    for (path, conn) in [("lean", &mut lean), ("hyper", &mut via_hyper)] {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(r#"{"late":true}"#) {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("{path}: no message"))
                .unwrap();
            assert!(
                n > 0,
                "{path}: the stream was closed: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Beyond the configured number of open connections, a new one is accepted and closed at
/// once and counted; once one closes, connections are taken again.
#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let s = TestServer::start_with(
        Backend::Sqlite,
        ApiConfig {
            max_connections: 3,
            ..edge_config()
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&s).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        read_answers(&mut c, &mut Vec::new(), 1).await;
        held.push(c);
    }
    let mut extra = connect(&s).await;
    let mut got = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_millis(500), extra.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "the fourth connection is closed at once");
    assert!(got.is_empty());
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = send(s.anon(Method::GET, "/healthz")).await;
    assert_eq!(status, 200);
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .header("host", "localhost")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("picloud_connections_refused_total "))
        .unwrap_or_else(|| panic!("no refusal counted:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(refused >= 1.0);
}

/// A body promised and not sent is the same `408` on the keep-alive loop and on hyper.
#[tokio::test]
async fn a_stalled_body_gets_408_on_every_path() {
    let s = TestServer::start_with(Backend::Sqlite, edge_config()).await;
    s.create_app("edge").await;
    let key = s.admin_key.clone();
    for (path, head) in [
        (
            "keep-alive",
            format!(
                "POST /api/v1/apps/edge/topics/chat/publish HTTP/1.1\r\nhost: localhost\r\n\
                 authorization: Bearer {key}\r\ncontent-length: 10\r\n\r\n{{\"a\""
            ),
        ),
        (
            "hyper",
            format!(
                "PUT /api/v1/apps/edge/runtime HTTP/1.1\r\nhost: localhost\r\n\
                 content-type: application/json\r\nauthorization: Bearer {key}\r\n\
                 content-length: 10\r\n\r\n{{\"a\""
            ),
        ),
    ] {
        let mut conn = connect(&s).await;
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{path}: still open"))
            .unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(text.contains("request_timeout"), "{path}: {text}");
    }
}

/// A path on the wrong plane answers 404 naming the host it belongs on: a realtime URL on
/// an admin host, the admin API or the dashboard on an app's Host (when no route of the
/// app claims the path; a tenant's own `/api/v1/…` route still wins).
#[tokio::test]
async fn wrong_plane_paths_name_the_right_host() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.create_app("demo").await;
    let message = |v: &Value| {
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (status, body) = send(s.admin(Method::GET, "/realtime/topics/chat")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(
        message(&body).contains(&format!(
            "served on an app's Host, not on an admin host: http://<slug>.localhost:{}/realtime/topics/chat",
            s.port
        )),
        "{body}"
    );
    let (status, body) = send(s.app_get("demo", "/api/v1/apps")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(
        message(&body).contains(&format!(
            "the admin API is served on an admin host, not on an app's Host: http://localhost:{}/api/v1/apps",
            s.port
        )),
        "{body}"
    );
    let (_, body) = send(s.app_get("demo", "/_/")).await;
    assert!(message(&body).contains("the dashboard"), "{body}");
    let (_, body) = send(s.app_get("demo", "/elsewhere")).await;
    assert_eq!(message(&body), "route not found");

    s.deploy("demo", "mine", "\"tenant's own\"").await;
    s.route("demo", "GET", "/api/v1/mine", "mine").await;
    let (status, body) = send(s.app_get("demo", "/api/v1/mine")).await;
    assert_eq!(
        (status, body),
        (reqwest::StatusCode::OK, Value::from("tenant's own"))
    );
}
