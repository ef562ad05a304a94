//! A subscriber that stops reading holds back no one, costs the server no more than its
//! bounded buffers, and later catches up from history without loss.

use std::time::Duration;

use serde_json::json;

use crate::sse::Sse;
use crate::support::TestServer;

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
