//! One conformance suite for every relay (the way centrifuge tests its brokers): the
//! in-process bus and Redis PUB/SUB behave alike for two nodes — a message reaches every
//! subscribed node, the sender included, in publish order, never an unsubscribed one; a
//! subscription is live when `subscribe` returns. Redis also subscribes again by itself after
//! its server restarts (a private `redis-server` on a free port, killed and started again).
//!
//! Redis: `PICLOUD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), required, never skipped.

use std::time::Duration;

use bytes::Bytes;
use picloud_realtime::relay::{LocalBus, Received, RedisRelay, Relay, RelayError};
use picloud_store::testing::PrivateRedis;
use tokio::sync::broadcast;

fn redis_url() -> String {
    std::env::var("PICLOUD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Channels of this run only: the shared Redis may serve other runs at once.
fn channel(name: &str) -> String {
    format!("picloud-test:{}:{name}", std::process::id())
}

async fn next(rx: &mut broadcast::Receiver<Received>) -> Option<Received> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .and_then(Result::ok)
}

/// Nothing arrives within a moment.
async fn quiet(rx: &mut broadcast::Receiver<Received>) -> bool {
    tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err()
}

async fn conformance(a: &dyn Relay, b: &dyn Relay) {
    let (room, other) = (channel("room"), channel("other"));
    let (mut ra, mut rb) = (a.received(), b.received());

    // Live as soon as subscribe returns: the very next publish is received.
    b.subscribe(&room).await.unwrap();
    a.publish(&room, Bytes::from_static(b"one")).await.unwrap();
    let got = next(&mut rb).await.expect("b receives");
    assert_eq!(
        (&*got.channel, got.payload.as_ref()),
        (room.as_str(), &b"one"[..])
    );
    assert!(quiet(&mut ra).await, "a is not subscribed");

    // The sender receives its own message when it is subscribed (the node drops its echo by seq).
    a.subscribe(&room).await.unwrap();
    a.publish(&room, Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(next(&mut ra).await.unwrap().payload.as_ref(), b"two");
    assert_eq!(next(&mut rb).await.unwrap().payload.as_ref(), b"two");

    // Publish order per sender, and channels kept apart.
    b.subscribe(&other).await.unwrap();
    for i in 0..200u32 {
        a.publish(&room, Bytes::from(i.to_string())).await.unwrap();
    }
    a.publish(&other, Bytes::from_static(b"elsewhere"))
        .await
        .unwrap();
    for i in 0..200u32 {
        let m = next(&mut rb).await.expect("in order");
        assert_eq!(
            (&*m.channel, m.payload.as_ref()),
            (room.as_str(), i.to_string().as_bytes())
        );
    }
    let m = next(&mut rb).await.unwrap();
    assert_eq!(
        (&*m.channel, m.payload.as_ref()),
        (other.as_str(), &b"elsewhere"[..])
    );
    for _ in 0..200 {
        next(&mut ra).await.unwrap();
    }
    assert!(
        quiet(&mut ra).await,
        "a never subscribed to the other channel"
    );

    // Unsubscribed: nothing more.
    b.unsubscribe(&room).await.unwrap();
    a.publish(&room, Bytes::from_static(b"after"))
        .await
        .unwrap();
    assert_eq!(next(&mut ra).await.unwrap().payload.as_ref(), b"after");
    assert!(quiet(&mut rb).await, "b unsubscribed");
    // Binary payloads pass unchanged.
    let binary = Bytes::from((0..=255u8).collect::<Vec<_>>());
    a.publish(&room, binary.clone()).await.unwrap();
    assert_eq!(next(&mut ra).await.unwrap().payload, binary);

    // Many at once (one round trip on Redis): in order, each on its channel.
    b.subscribe(&room).await.unwrap();
    let many: Vec<(String, Bytes)> = (0..300u32)
        .map(|i| {
            let ch = if i % 3 == 0 { &other } else { &room };
            (ch.clone(), Bytes::from(i.to_string()))
        })
        .collect();
    a.publish_all(many.clone()).await.unwrap();
    for (ch, payload) in &many {
        let m = next(&mut rb).await.expect("every one, in order");
        assert_eq!((&*m.channel, &m.payload), (ch.as_str(), payload));
    }
}

#[tokio::test]
async fn the_in_process_bus_conforms() {
    let bus = LocalBus::new();
    let (a, b) = (bus.node(), bus.node());
    conformance(&a, &b).await;
}

#[tokio::test]
async fn redis_conforms() {
    let url = redis_url();
    let connect = || async {
        RedisRelay::connect(&url, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("Redis is required by the tests at {url}: {e}"))
    };
    let (a, b) = (connect().await, connect().await);
    conformance(&a, &b).await;
}

/// A Redis restart: publishing fails while it is down (the caller falls back to the
/// database), and once it is back the node's subscriptions work again without being asked.
#[tokio::test]
async fn redis_subscriptions_survive_a_server_restart() {
    let mut server = PrivateRedis::start();
    let url = server.url();
    let (a, b) = (
        RedisRelay::connect(&url, Duration::from_secs(5))
            .await
            .unwrap(),
        RedisRelay::connect(&url, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    let room = channel("restart");
    let mut rb = b.received();
    b.subscribe(&room).await.unwrap();
    a.publish(&room, Bytes::from_static(b"before"))
        .await
        .unwrap();
    assert_eq!(next(&mut rb).await.unwrap().payload.as_ref(), b"before");

    server.kill();
    assert!(a.publish(&room, Bytes::from_static(b"lost")).await.is_err());
    let _server = PrivateRedis::start_on(server.port);
    // The subscription comes back by itself; until it has, publishes reach no one.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let _ = a.publish(&room, Bytes::from_static(b"after")).await;
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), rb.recv()).await {
            assert_eq!(m.payload.as_ref(), b"after");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no resubscription after the restart"
        );
    }
}

/// A node may start while Redis is down: every call answers `Unavailable` until the first
/// connection, made in the background as soon as Redis is up.
#[tokio::test]
async fn redis_started_before_the_server_connects_when_it_comes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    assert!(RedisRelay::connect(&url, Duration::from_millis(300))
        .await
        .is_err());
    let relay = RedisRelay::start(&url).unwrap();
    let room = channel("later");
    assert!(matches!(
        relay.publish(&room, Bytes::from_static(b"x")).await,
        Err(RelayError::Unavailable(_))
    ));
    let _server = PrivateRedis::start_on(port);
    let mut rx = relay.received();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while relay.subscribe(&room).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "connected once Redis is up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay
        .publish(&room, Bytes::from_static(b"now"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.unwrap().payload.as_ref(), b"now");
}
