//! The resume invariant under load (DESIGN §5): a subscriber that reconnects with the last
//! id it saw receives every message committed after it, in order, exactly once, while
//! concurrent publishers keep going, and across a server restart.

use std::sync::atomic::{AtomicI64, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use picloud_store::Backend;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::json;

use crate::sse::Sse;
use crate::support::TestServer;

const PUBLISHERS: usize = 8;
const PER_PUBLISHER: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_under_concurrent_publishers_on_postgres() {
    run(Backend::Postgres, false, Transport::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_across_a_server_restart_on_postgres() {
    run(Backend::Postgres, true, Transport::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_under_concurrent_publishers_on_sqlite() {
    run(Backend::Sqlite, false, Transport::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_resume_across_a_server_restart_on_postgres() {
    run(Backend::Postgres, true, Transport::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_resume_under_concurrent_publishers_on_sqlite() {
    run(Backend::Sqlite, false, Transport::Ws).await;
}

#[derive(Clone, Copy)]
enum Transport {
    Sse,
    Ws,
}

async fn run(backend: Backend, restart: bool, transport: Transport) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    s.create_topic("demo", "hot", true, "public").await;
    let key = s.admin_key.clone();
    let port = Arc::new(AtomicU16::new(s.port));
    let published = Arc::new(AtomicUsize::new(0));
    // The last seq once every publisher is done; until then, unreachable.
    let target = Arc::new(AtomicI64::new(i64::MAX));

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (port, key, published) = (port.clone(), key.clone(), published.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..PER_PUBLISHER {
                    // Retry until accepted: during a restart there is briefly no server.
                    loop {
                        let url = format!(
                            "http://127.0.0.1:{}/api/v1/apps/demo/topics/hot/publish",
                            port.load(Ordering::SeqCst)
                        );
                        let res = client
                            .post(url)
                            .header("host", "localhost")
                            .bearer_auth(&key)
                            .json(&json!({"p": p, "i": i}))
                            .send()
                            .await;
                        if matches!(&res, Ok(r) if r.status() == StatusCode::CREATED) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    published.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    let subscriber = match transport {
        Transport::Sse => sse_subscriber(port.clone(), target.clone()),
        Transport::Ws => ws_subscriber(port.clone(), target.clone()),
    };

    let mut s = s;
    if restart {
        while published.load(Ordering::SeqCst) < PUBLISHERS * PER_PUBLISHER / 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s = s.restart().await;
        port.store(s.port, Ordering::SeqCst);
    }
    for p in publishers {
        p.await.unwrap();
    }
    let topic = crate::support::send(s.admin(reqwest::Method::GET, "/api/v1/apps/demo/topics/hot"))
        .await
        .1;
    let last_seq = topic["last_seq"].as_i64().unwrap();
    target.store(last_seq, Ordering::SeqCst);
    let (seen, reconnects) = tokio::time::timeout(Duration::from_secs(60), subscriber)
        .await
        .expect("subscriber finished")
        .unwrap();
    assert!(last_seq >= (PUBLISHERS * PER_PUBLISHER) as i64);
    assert_eq!(
        seen,
        (1..=last_seq).collect::<Vec<_>>(),
        "every seq exactly once, in order"
    );
    assert!(reconnects > 5, "the subscriber resumed {reconnects} times");
}

type Subscriber = tokio::task::JoinHandle<(Vec<i64>, usize)>;

/// Reads a few hundred events at a time, then hangs up and resumes with `Last-Event-ID`.
fn sse_subscriber(port: Arc<AtomicU16>, target: Arc<AtomicI64>) -> Subscriber {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        // "0": from the very beginning, whatever was published before we connected.
        let mut last: Option<String> = Some("0".into());
        let mut seen: Vec<i64> = Vec::new();
        let mut reconnects = 0;
        loop {
            let url = format!(
                "http://127.0.0.1:{}/realtime/topics/hot",
                port.load(Ordering::SeqCst)
            );
            let mut req = client.get(url).header("host", "demo.localhost");
            if let Some(id) = &last {
                req = req.header("last-event-id", id);
            }
            let Ok(mut sse) = Sse::open(req).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            reconnects += 1;
            // Read a few hundred events, then hang up and resume.
            let budget = rand::rng().random_range(150..400);
            let mut read = 0;
            while read < budget {
                if seen.last().copied().unwrap_or(0) == target.load(Ordering::SeqCst) {
                    return (seen, reconnects);
                }
                let Some(f) = sse.next_frame(Duration::from_secs(2)).await else {
                    break;
                };
                match f.event.as_deref() {
                    Some("message") => {
                        let seq = f.seq();
                        let expected = seen.last().map_or(1, |l| l + 1);
                        assert_eq!(
                            seq,
                            expected,
                            "after {:?}: got {seq}, wanted {expected}",
                            seen.last()
                        );
                        assert_eq!(f.id.as_deref(), Some(seq.to_string().as_str()));
                        seen.push(seq);
                        last = f.id;
                        read += 1;
                    }
                    // Where the stream starts: resuming from it loses nothing even
                    // if the connection drops before its first message.
                    Some("position") => last = f.id,
                    Some("error") => break, // server shutting down: reconnect
                    Some(other) => panic!("unexpected event {other}: {f:?}"),
                    None => {}
                }
            }
        }
    })
}

/// The same over WebSocket: subscribes with the last position, reads a few hundred
/// messages, hangs up and subscribes again on a new connection.
fn ws_subscriber(port: Arc<AtomicU16>, target: Arc<AtomicI64>) -> Subscriber {
    tokio::spawn(async move {
        let mut last = "0".to_owned();
        let mut seen: Vec<i64> = Vec::new();
        let mut reconnects = 0;
        loop {
            let p = port.load(Ordering::SeqCst);
            let Ok(mut ws) = crate::ws_client::open(p, &format!("demo.localhost:{p}"), "").await
            else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            reconnects += 1;
            let sub = json!({"type": "subscribe", "id": 1, "topic": "hot", "position": last});
            ws.send_text(sub.to_string()).await;
            let budget = rand::rng().random_range(150..400);
            let mut read = 0;
            while read < budget {
                if seen.last().copied().unwrap_or(0) == target.load(Ordering::SeqCst) {
                    return (seen, reconnects);
                }
                let Some(f) = ws.next_within(Duration::from_secs(2)).await else {
                    break;
                };
                match f["type"].as_str() {
                    Some("message") => {
                        let seq = f["seq"].as_i64().unwrap();
                        let expected = seen.last().map_or(1, |l| l + 1);
                        assert_eq!(
                            seq,
                            expected,
                            "after {:?}: got {seq}, wanted {expected}",
                            seen.last()
                        );
                        assert_eq!(f["position"], seq.to_string());
                        seen.push(seq);
                        last = seq.to_string();
                        read += 1;
                    }
                    Some("subscribed") => last = f["position"].as_str().unwrap().to_owned(),
                    Some("error") => break, // server shutting down: reconnect
                    other => panic!("unexpected frame {other:?}: {f}"),
                }
            }
            ws.close().await;
        }
    })
}
