//! A subscriber that stops reading holds back no one, costs the server no more than its
//! bounded buffers, and later catches up from history without loss; one that takes nothing
//! for the send timeout is dropped, and resumes where it was when it reconnects.

use std::time::Duration;

use picloud_api::ApiConfig;
use picloud_core::capability::Capability;
use picloud_store::testing::TestDatabase;
use picloud_store::Backend;
use serde_json::json;

use crate::sse::Sse;
use crate::support::{create_key, realtime_config, TestServer};

const MESSAGES: i64 = 4000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_repaired_from_history_and_blocks_no_one() {
    let s = TestServer::firehose().await;

    let mut stalled = Sse::open(s.app_get("demo", "/realtime/topics/firehose"))
        .await
        .unwrap();
    let mut fast = Sse::open(s.app_get("demo", "/realtime/topics/firehose"))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let got = fast.messages(MESSAGES as usize).await;
        got.iter().map(|f| f.seq()).collect::<Vec<_>>()
    });

    // 4,000 × 4 KiB = 16 MiB: more than the loopback socket buffers can absorb for the
    // stalled reader, so the server must stop feeding it.
    let filler = "x".repeat(4096);
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            let (url, key, filler) = (
                s.url("/api/v1/apps/demo/topics/firehose/publish"),
                s.admin_key.clone(),
                filler.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..MESSAGES / 8 {
                    let res = client
                        .post(&url)
                        .header("host", "localhost")
                        .bearer_auth(&key)
                        .json(&json!({"p": p, "i": i, "pad": filler}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201);
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let fast_seqs = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("fast reader finished")
        .unwrap();
    assert_eq!(
        fast_seqs,
        (1..=MESSAGES).collect::<Vec<_>>(),
        "the fast subscriber was not held back"
    );

    // The stalled one now reads: everything, in order, once, though most of it was no
    // longer in the server's channel.
    let slow_seqs: Vec<_> = stalled
        .messages(MESSAGES as usize)
        .await
        .iter()
        .map(|f| f.seq())
        .collect();
    assert_eq!(slow_seqs, (1..=MESSAGES).collect::<Vec<_>>());
    let health = s.realtime_health().await;
    assert!(
        health["gap_repairs"].as_u64().unwrap() >= 1,
        "it was repaired from history: {health}"
    );
    assert_eq!(health["resyncs"], 0);
}

/// The stalled subscriber's socket fills, nothing of it is taken for the send timeout, and
/// the server drops it (once, counted) while a reading subscriber stays. What it had been
/// sent is still readable, then its stream ends; reconnecting with its last id, it gets
/// every later message: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_takes_nothing_for_the_send_timeout_is_dropped_and_resumes() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = db.open().await;
    let key = create_key(&store, &[Capability::InstanceAdmin], None).await;
    let rt = picloud_realtime::RealtimeConfig {
        send_timeout: Duration::from_secs(2),
        ..realtime_config()
    };
    let s = TestServer::serve_with(db, store, ApiConfig::default(), rt, key).await;
    s.create_app("demo").await;
    s.create_topic("demo", "firehose", true, "public").await;

    // A connection of its own, so that the stream is its first request (the server writes
    // those to the socket itself; hyper, serving the rest, knows no send timeout).
    let stream = |last_id: Option<String>| {
        let mut req = reqwest::Client::new()
            .get(s.url("/realtime/topics/firehose"))
            .header("host", format!("demo.localhost:{}", s.port));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        Sse::open(req)
    };
    let mut stalled = stream(None).await.unwrap();
    stalled.start_position(Duration::from_secs(10)).await;
    let mut reading = stream(None).await.unwrap();
    reading.start_position(Duration::from_secs(10)).await;
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0i64);
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Some(f) = reading.next_event(Duration::from_secs(30)).await {
            if f.event.as_deref() == Some("message") {
                seqs.push(f.seq());
                let _ = count_tx.send(f.seq());
            }
        }
        seqs
    });

    // 60 KB messages until the stalled stream is dropped: loopback buffers absorb some
    // megabytes first.
    let pad = "x".repeat(60_000);
    let slow = |h: &serde_json::Value| h["slow_consumer_disconnects"].as_u64().unwrap();
    let mut published = 0i64;
    let dropped_after = loop {
        assert!(published < 1500, "the stalled subscriber was never dropped");
        for _ in 0..20 {
            let res = s
                .admin(
                    reqwest::Method::POST,
                    "/api/v1/apps/demo/topics/firehose/publish",
                )
                .json(&json!({"i": published, "pad": pad}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            published += 1;
        }
        if slow(&s.realtime_health().await) > 0 {
            break published;
        }
        // Lets the send timeout run out while the socket stays full.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The reader keeps up and is not dropped.
    tokio::time::timeout(
        Duration::from_secs(30),
        count_rx.wait_for(|n| *n == published),
    )
    .await
    .expect("the reading subscriber got every message")
    .unwrap();
    let health = s.realtime_health().await;
    assert_eq!(
        slow(&health),
        1,
        "only the stalled one was dropped: {health}"
    );

    // What the stalled one was sent, then the end of its stream.
    let mut got = Vec::new();
    let mut last_id = None;
    while let Some(f) = stalled.next_frame(Duration::from_secs(10)).await {
        if f.event.as_deref() == Some("message") {
            got.push(f.seq());
            last_id = f.id.clone();
        }
    }
    assert!(
        (got.len() as i64) < dropped_after,
        "it was dropped before it had everything ({} of {dropped_after})",
        got.len()
    );
    let mut resumed = stream(Some(last_id.expect("it got some messages")))
        .await
        .unwrap();
    let rest = resumed
        .messages((published - got.len() as i64) as usize)
        .await;
    got.extend(rest.iter().map(|f| f.seq()));
    assert_eq!(
        got,
        (1..=published).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
    drop(s);
    let seqs = reader.await.unwrap();
    assert_eq!(seqs, (1..=published).collect::<Vec<_>>());
}
