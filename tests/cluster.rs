//! Cluster mode with real processes: three `picloud` nodes on one fresh PostgreSQL database
//! and a private `redis-server` on a free port. A change made through one node reaches the
//! others' caches at once through the relay's control channel, well inside the caches' TTLs
//! (admin keys 5 s, Hosts 30 s): a key revoked on node 1 is refused by node 3 within 1 s, a
//! domain added on node 2 resolves on node 1 within 1 s. A node refuses REDIS_URL without
//! PostgreSQL. (Message delivery across nodes: `cluster_delivery.rs`.)

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use picloud_store::testing::{PrivateRedis, TestDatabase};
use picloud_store::Backend;
use serde_json::json;

use support::{admin_post, call, Server, BIN};

/// Polls `f` until it is true; returns how long that took (panics after 5 s).
async fn within<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: not after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn changes_reach_every_node_at_once() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.database_url.clone().unwrap();
    let redis = PrivateRedis::start();
    let redis_url = redis.url();
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let env = |node| {
        [
            ("DATABASE_URL", url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("PICLOUD_NODE_ID", node),
        ]
    };
    let node1 = Server::start(d1.path(), &env("n1"));
    let admin = node1.bootstrap_key().expect("the first node bootstraps");
    let node2 = Server::start(d2.path(), &env("n2"));
    assert_eq!(node2.bootstrap_key(), None, "one instance, one bootstrap");
    let node3 = Server::start(d3.path(), &env("n3"));

    let (status, _) = admin_post(&node1, &admin, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(status, 201);
    let (status, key) = admin_post(
        &node1,
        &admin,
        "/api/v1/admin-keys",
        json!({"capabilities": ["AppRead"], "label": "reader"}),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let reader = key["key"].as_str().unwrap().to_owned();
    let reader_id = key["id"].as_str().unwrap().to_owned();
    let apps_on = |server: &Server, key: &str| {
        let (url, key) = (server.url("/api/v1/apps"), key.to_owned());
        async move {
            call(reqwest::Method::GET, &url, "localhost", Some(&key), None)
                .await
                .0
        }
    };
    // Node 3 knows the key (and now caches it for 5 s).
    assert_eq!(apps_on(&node3, &reader).await, 200);

    // Revoked on node 1: refused on node 3 within a second.
    let (status, _) = call(
        reqwest::Method::DELETE,
        &node1.url(&format!("/api/v1/admin-keys/{reader_id}")),
        "localhost",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let took = within("the revoked key refused on node 3", || async {
        apps_on(&node3, &reader).await == 401
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A domain added on node 2 resolves on node 1 within a second (node 1 has cached the
    // miss, for 30 s).
    let on_domain = |server: &Server| {
        let url = server.url("/");
        async move { call(reqwest::Method::GET, &url, "shop.example.test", None, None).await }
    };
    assert_eq!(on_domain(&node1).await.0, 404);
    let (status, body) = admin_post(
        &node2,
        &admin,
        "/api/v1/apps/demo/domains",
        json!({"host": "shop.example.test"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let took = within("the new domain on node 1", || async {
        on_domain(&node1).await.0 == 200
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(on_domain(&node1).await.1["app"], "demo");

    // A secret retired on node 1 ends the streams its tokens opened on node 3.
    let (status, body) = admin_post(
        &node1,
        &admin,
        "/api/v1/apps/demo/topics",
        json!({"name": "private", "external_subscribable": true, "auth_mode": "token"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, secret) = admin_post(
        &node1,
        &admin,
        "/api/v1/apps/demo/secrets/rotate",
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{secret}");
    let (status, token) = admin_post(
        &node1,
        &admin,
        "/api/v1/apps/demo/tokens",
        json!({"topics": ["private"], "ttl_secs": 600}),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let mut stream = reqwest::Client::new()
        .get(node3.url("/realtime/topics/private"))
        .header("host", "demo.localhost")
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    support::read_until(&mut stream, &mut seen, "event: position").await;
    let kid = secret["kid"].as_str().unwrap();
    let retired = Instant::now();
    let (status, _) = admin_post(
        &node1,
        &admin,
        &format!("/api/v1/apps/demo/secrets/{kid}/retire"),
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    support::read_until(&mut stream, &mut seen, "token_revoked").await;
    let took = retired.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");

    for node in [node1, node2, node3] {
        let (status, _, _) = node.stop("TERM");
        assert!(status.success());
    }
}

/// REDIS_URL makes a cluster on PostgreSQL; with SQLite the node refuses to start.
#[test]
fn a_cluster_needs_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("PICLOUD_DATA_DIR", dir.path())
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set DATABASE_URL"), "{err}");
}
