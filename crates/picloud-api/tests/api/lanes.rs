//! Publish lanes (the publisher splits batches by topic; one by default, two here): one-topic
//! publishes and multi-topic batch publishes racing on the same topics still reach a live
//! subscriber of every topic with each seq exactly once, in order. A multi-topic batch goes
//! through its first topic's lane, so its broadcast can overtake or trail another lane's
//! message on the same topic; the stream repairs that from history (on PostgreSQL this test
//! made the streams repair 62–69 such gaps per run).

use std::collections::BTreeMap;
use std::time::Duration;

use picloud_api::ApiConfig;
use picloud_core::capability::Capability;
use picloud_store::testing::TestDatabase;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::sse::Sse;
use crate::support::{create_key, realtime_config, send, TestServer};

const TOPICS: [&str; 4] = ["a", "b", "c", "d"];
const SINGLES: usize = 150;
const BATCHES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_single_and_batch_publishes_arrive_in_order_on_postgres() {
    run(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_single_and_batch_publishes_arrive_in_order_on_sqlite() {
    run(Backend::Sqlite).await;
}

async fn run(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.open().await;
    let key = create_key(&store, &[Capability::InstanceAdmin], None).await;
    let rt = picloud_realtime::RealtimeConfig {
        publish_lanes: Some(2),
        ..realtime_config()
    };
    let s = TestServer::serve_with(db, store, ApiConfig::default(), rt, key).await;
    s.create_app("demo").await;
    for t in TOPICS {
        s.create_topic("demo", t, true, "public").await;
    }
    let query: Vec<String> = TOPICS.iter().map(|t| format!("topic={t}")).collect();
    let mut sse = Sse::open(s.app_get("demo", &format!("/realtime?{}", query.join("&"))))
        .await
        .expect("stream opens");
    // Subscribed (live from here) before anything is published.
    sse.start_position(Duration::from_secs(5)).await;

    let mut publishers = Vec::new();
    // One publisher per topic, one message per request.
    for t in TOPICS {
        let req = s.admin(
            Method::POST,
            &format!("/api/v1/apps/demo/topics/{t}/publish"),
        );
        publishers.push(tokio::spawn(async move {
            for i in 0..SINGLES {
                let req = req.try_clone().unwrap().json(&json!({ "i": i }));
                let (status, body) = send(req).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
        }));
    }
    // Two publishers of batches over every topic, each starting on a different topic (so
    // in a different lane when there are two).
    for first in [0, 2] {
        let req = s.admin(Method::POST, "/api/v1/apps/demo/publish");
        publishers.push(tokio::spawn(async move {
            for i in 0..BATCHES {
                let messages: Vec<_> = (0..TOPICS.len())
                    .map(|k| json!({ "topic": TOPICS[(first + k) % TOPICS.len()], "data": { "b": i } }))
                    .collect();
                let req = req.try_clone().unwrap().json(&json!({ "messages": messages }));
                let (status, body) = send(req).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }

    let per_topic = (SINGLES + 2 * BATCHES) as i64;
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    while seen.values().map(Vec::len).sum::<usize>() < TOPICS.len() * per_topic as usize {
        let f = sse
            .next_event(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("stream stalled; seen so far {:?}", counts(&seen)));
        match f.event.as_deref() {
            Some("message") => {
                let v = f.json();
                let topic = v["topic"].as_str().unwrap().to_owned();
                let seqs = seen.entry(topic.clone()).or_default();
                let expected = seqs.last().map_or(1, |l| l + 1);
                assert_eq!(v["seq"].as_i64(), Some(expected), "topic {topic}");
                seqs.push(expected);
            }
            Some("position") => {}
            other => panic!("unexpected event {other:?}: {f:?}"),
        }
    }
    for t in TOPICS {
        assert_eq!(seen[t], (1..=per_topic).collect::<Vec<_>>(), "topic {t}");
    }
}

fn counts(seen: &BTreeMap<String, Vec<i64>>) -> Vec<(&str, usize)> {
    seen.iter().map(|(t, s)| (t.as_str(), s.len())).collect()
}
