//! Hostile and broken requests: each gets a clear JSON error and writes nothing.

use std::time::Duration;

use picloud_api::ApiConfig;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{assert_error, raw_http, send, short_deadline, TestServer};

async fn app_count(s: &TestServer) -> usize {
    send(s.admin(Method::GET, "/api/v1/apps")).await.1["apps"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn malformed_mistyped_and_oversized_bodies() {
    let config = ApiConfig {
        max_body_bytes: 1024,
        ..ApiConfig::default()
    };
    let s = TestServer::start_with(Backend::Sqlite, config).await;
    let post = || {
        s.admin(Method::POST, "/api/v1/apps")
            .header("content-type", "application/json")
    };

    assert_error(
        &send(post().body("{\"slug\":")).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &send(post().body("not json")).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &send(post().body("")).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    let unknown = send(post().body(r#"{"slug":"abc","admin":true}"#)).await;
    assert_error(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(unknown.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown field `admin`"));
    assert_error(
        &send(post().body(r#"{"slug":42}"#)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &send(post().body(r#"{"name":"x"}"#)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &send(post().body("[]")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let big = json!({"slug": "big", "name": "x".repeat(2000)}).to_string();
    assert_error(
        &send(post().body(big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // The same, without a Content-Length up front (chunked).
    let chunk = "y".repeat(4000);
    let request = format!(
        "POST /api/v1/apps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{{\"slug\":\"big\",\"name\":\"{chunk}\"}}\r\n0\r\n\r\n",
        s.admin_key,
        chunk.len() + 25
    );
    let (status, body) = raw_http(s.port, request.as_bytes()).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(body.contains("payload_too_large"), "{body}");

    assert_eq!(app_count(&s).await, 0, "nothing was created");

    // One rule for every JSON body: read as JSON whatever the Content-Type says (none,
    // curl's form default), as publishes always were.
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let slug = format!("ct-{}", content_type.map_or(0, str::len));
        let mut req = s
            .admin(Method::POST, "/api/v1/apps")
            .body(json!({ "slug": slug }).to_string());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::CREATED, "{content_type:?}: {body}");
    }
    let form = s
        .admin(Method::POST, "/api/v1/apps")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("slug=abc");
    assert_error(&send(form).await, StatusCode::BAD_REQUEST, "malformed_json");
    assert_eq!(app_count(&s).await, 3);
}

#[tokio::test]
async fn missing_garbage_and_unknown_hosts() {
    let s = TestServer::start(Backend::Sqlite).await;
    let (status, body) = raw_http(s.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(status.contains(" 400 "), "{status}");
    assert!(body.contains("\"bad_host\""), "{body}");
    let (status, body) = raw_http(s.port, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(status.contains(" 400 "), "HTTP/1.0 without Host: {status}");
    assert!(body.contains("\"bad_host\""), "{body}");
    for garbage in [
        "exa mple.com",
        "a..b",
        "x:99999",
        "[::1",
        "%00",
        "host/../etc",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {garbage}\r\nConnection: close\r\n\r\n");
        let (status, body) = raw_http(s.port, req.as_bytes()).await;
        assert!(status.contains(" 400 "), "{garbage:?}: {status}");
        assert!(body.contains("\"bad_host\""), "{garbage:?}: {body}");
    }
    assert_error(
        &send(s.on_host("nobody.example.com", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
    assert_error(
        &send(s.on_host("nobody.localhost", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
    assert_error(
        &send(s.on_host("a.b.localhost", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
    // An unknown Host never reaches the admin API.
    assert_error(
        &send(
            s.on_host("evil.example.com", "/api/v1/apps")
                .bearer_auth(&s.admin_key),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
    // Health answers on any Host, even unknown ones (load balancers probe by IP).
    assert_eq!(
        send(s.on_host("10.1.2.3:8080", "/healthz")).await.0,
        StatusCode::OK
    );
    // An app's data plane has no admin API.
    s.create_app("demo").await;
    assert_error(
        &send(
            s.on_host("demo.localhost", "/api/v1/apps")
                .bearer_auth(&s.admin_key),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(s.on_host("demo.localhost", "/metrics")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let s = TestServer::start(Backend::Sqlite).await;
    assert_error(
        &send(s.admin(Method::GET, "/api/v1/nope")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(s.admin(Method::PUT, "/api/v1/apps")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &send(s.admin(Method::GET, "/api/v1/apps/UPPER")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(s.admin(Method::GET, "/api/v1/apps?limit=abc")).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}

#[tokio::test]
async fn slow_requests_time_out_with_a_json_error() {
    // A client that promises a body and stalls (slowloris) is cut off at the deadline, with
    // the 408 every path gives a request that does not arrive in time.
    let s = TestServer::start_with(Backend::Sqlite, short_deadline()).await;
    let request = format!(
        "POST /api/v1/apps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"slug\":",
        s.admin_key
    );
    let (status, body) = raw_http(s.port, request.as_bytes()).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(body.contains("\"request_timeout\""), "{body}");
    assert_eq!(app_count(&s).await, 0);
}

#[tokio::test]
async fn a_connection_dropped_mid_request_writes_nothing() {
    let s = TestServer::start(Backend::Sqlite).await;
    for _ in 0..20 {
        use tokio::io::AsyncWriteExt;
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .unwrap();
        let head = format!(
            "POST /api/v1/apps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"slug\":\"half",
            s.admin_key
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        drop(conn);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app_count(&s).await, 0);
    // The server is unaffected.
    s.create_app("whole").await;
    assert_eq!(app_count(&s).await, 1);
}
