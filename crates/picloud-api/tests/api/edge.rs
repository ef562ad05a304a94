//! The HTTP edge against requests a careful client would not send, over raw sockets and on
//! every path that reads requests: the lean stream path (a connection whose first request
//! is a realtime `GET`), the keep-alive loop (first request an admin `POST`), and hyper
//! (everything else).

use picloud_store::Backend;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
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
