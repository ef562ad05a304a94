//! Liveness, readiness (including a database that goes away and comes back) and metrics.

use std::time::{Duration, Instant};

use picloud_api::ApiConfig;
use picloud_store::testing::{TcpProxy, TestDatabase};
use picloud_store::{connect, Backend, DatabaseLocation};
use reqwest::{Method, StatusCode};

use crate::support::{assert_error, send, TestServer};

/// A server on PostgreSQL reached through a proxy the test can cut.
async fn behind_proxy() -> (TestServer, TcpProxy) {
    let db = TestDatabase::new(Backend::Postgres).await;
    db.open().await.close().await; // migrate directly
    let proxy = TcpProxy::start(db.postgres_addr()).await;
    let store = connect(&DatabaseLocation::Postgres(db.url_via(&proxy)))
        .await
        .unwrap();
    (
        TestServer::serve(db, store, ApiConfig::default()).await,
        proxy,
    )
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let (s, proxy) = behind_proxy().await;

    assert_eq!(
        send(s.anon(Method::GET, "/readyz")).await.1["status"],
        "ready"
    );
    proxy.cut();
    assert_error(
        &send(s.anon(Method::GET, "/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
    );
    // Liveness does not depend on the database; the admin API reports it as 503, not 500.
    assert_eq!(
        send(s.anon(Method::GET, "/healthz")).await.0,
        StatusCode::OK
    );
    let got = send(s.admin(Method::GET, "/api/v1/apps")).await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = send(s.anon(Method::GET, "/readyz")).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        send(s.admin(Method::GET, "/api/v1/apps")).await.0,
        StatusCode::OK
    );
}

/// Durable publishes on PostgreSQL run on a kept connection: when the database connection
/// drops, the publish fails cleanly (503, nothing stored), the dead connection is not kept,
/// and publishing resumes with the next seq once the database is back.
#[tokio::test]
async fn durable_publish_recovers_after_the_database_connection_drops() {
    let (s, proxy) = behind_proxy().await;
    s.create_app("demo").await;
    s.create_topic("demo", "chat", true, "public").await;
    let publish = |n: i64| {
        send(
            s.admin(Method::POST, "/api/v1/apps/demo/topics/chat/publish")
                .json(&serde_json::json!({ "n": n })),
        )
    };
    assert_eq!(publish(1).await.1["seq"], 1);

    proxy.cut();
    assert_error(
        &publish(2).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let (status, body) = publish(3).await;
        if status == StatusCode::CREATED {
            break body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "publishing did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The failed publish stored nothing: no gap.
    assert_eq!(first["seq"], 2);
    assert_eq!(publish(4).await.1["seq"], 3);
    // History holds exactly the publishes that were answered 201.
    let history: Vec<(Option<i64>, String)> = s
        .store_history("demo", "chat", 10)
        .await
        .into_iter()
        .map(|m| (m.seq, m.payload.to_string()))
        .collect();
    assert_eq!(
        history,
        [
            (Some(1), r#"{"n":1}"#),
            (Some(2), r#"{"n":3}"#),
            (Some(3), r#"{"n":4}"#)
        ]
        .map(|(seq, p)| (seq, p.to_owned()))
    );
}

#[tokio::test]
async fn sqlite_readiness() {
    let s = TestServer::start(Backend::Sqlite).await;
    assert_eq!(
        send(s.anon(Method::GET, "/readyz")).await,
        (
            StatusCode::OK,
            serde_json::json!({"status": "ready", "storage": "ok"})
        )
    );
    assert_eq!(
        send(s.anon(Method::GET, "/healthz")).await,
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.create_app("metrics-demo").await;
    send(s.admin(Method::GET, "/api/v1/apps/metrics-demo")).await;
    send(s.on_host("metrics-demo.localhost", "/")).await;
    send(s.on_host("metrics-demo.localhost", "/no/such/path")).await;
    // A made-up method is answered, and counted under `other`: clients cannot mint labels.
    send(s.anon(Method::from_bytes(b"BREWCOFFEE").unwrap(), "/api/v1/apps")).await;
    let text = s.text("/metrics").await;
    for needle in [
        r#"picloud_http_requests_total{route="/api/v1/apps",method="POST",status="201"}"#,
        r#"picloud_http_requests_total{route="/api/v1/apps/{app}",method="GET",status="200"}"#,
        r#"picloud_http_requests_total{route="app:/",method="GET",status="200"}"#,
        r#"picloud_http_requests_total{route="unmatched",method="GET",status="404"}"#,
        r#"picloud_http_request_duration_seconds_bucket{route="/api/v1/apps/{app}",le="0.005"}"#,
        "picloud_build_info",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    assert!(
        !text.contains("metrics-demo"),
        "raw paths never become labels"
    );
    assert!(!text.contains("/no/such/path"));
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(!text.contains("BREWCOFFEE"));
}
