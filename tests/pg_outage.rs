//! PostgreSQL stopped and started again under load (issue 28, item 3), with real processes:
//! `picloud serve` on a PostgreSQL server of the test's own ([`PrivatePostgres`]), durable
//! publishers on four topics, one ephemeral publisher, SSE followers that resume with
//! `Last-Event-ID` whenever their stream ends, and a `/readyz` poller. PostgreSQL goes down
//! twice: 3 s after `pg_ctl stop -m fast` (sessions aborted, clean shutdown), 7 s after `-m
//! immediate` (every process killed: a crash, recovered at the next start).
//!
//! Asserted: a durable publish answers `201` or `503 unavailable`, nothing else, and none
//! takes longer than [`ANSWER_BOUND`]; nothing is acknowledged while PostgreSQL is down, a
//! publish that waited out the pool's acquire timeout is refused, and `/readyz` says not
//! ready; ephemeral publishes answer `202` throughout the short outage (in the long one,
//! once the admin key's 5 s cache entry has expired, `503`); within 5 s of
//! PostgreSQL's return a durable publish is acknowledged again; afterwards PostgreSQL holds
//! every acknowledged message with its seq, seqs are contiguous, no message is stored twice,
//! and every follower received every committed message exactly once, in order.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picloud_core::app::Slug;
use picloud_core::store::{AppStore, MessageStore};
use picloud_core::topic::TopicName;
use picloud_store::{DatabaseLocation, SqlStore};
use serde_json::{json, Value};
use support::postgres::PrivatePostgres;
use support::sse::{follow_once, Received};
use support::{admin_post, Server};

const TOPICS: usize = 4;
const DURABLE_PUBLISHERS: usize = 4;
const FOLLOWERS_PER_TOPIC: usize = 2;
/// `pg_ctl stop` modes and how long PostgreSQL stays down. The first is shorter than the
/// pool's acquire timeout (5 s): requests wait for PostgreSQL and are answered when it is
/// back. The second is longer: requests are refused with 503 once the timeout passes.
const OUTAGES: [(&str, Duration); 2] = [
    ("fast", Duration::from_secs(3)),
    ("immediate", Duration::from_secs(7)),
];
/// `/readyz` gives the database 2 s to answer (`READY_TIMEOUT`); a second on top.
const READY_BOUND: Duration = Duration::from_secs(3);
/// How long the server trusts an admin key it verified (`admin_key_cache_ttl`).
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// The pool's acquire timeout (`picloud-store`'s `connect.rs`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The promise: acknowledged again within 5 s of PostgreSQL's return.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// No request may wait longer than this for its answer. A publish batch waits at most the
/// pool's acquire timeout for a connection (the pool keeps trying to connect until then),
/// and a lane runs one batch at a time: a publish that arrives while the lane's batch
/// waits goes in the next batch, which waits in turn. Two acquire timeouts, plus a second
/// for a loaded two-core machine; well inside the request deadline (30 s), which must never
/// be what ends a request. (Measured: refusals at 5.0 s, a queued publish answered 201 at
/// 7.4 s when PostgreSQL returned after 7 s.)
const ANSWER_BOUND: Duration = Duration::from_secs(11);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Durable,
    Ephemeral,
}

/// One publish request and its answer.
#[derive(Clone, Debug)]
struct Attempt {
    kind: Kind,
    topic: String,
    id: String,
    sent: Instant,
    took: Duration,
    /// 0: no answer (transport error or client timeout).
    status: u16,
    seq: Option<i64>,
    code: Option<String>,
}

fn topic_name(i: usize) -> String {
    format!("t{i}")
}

async fn publisher(
    port: u16,
    key: String,
    kind: Kind,
    tag: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
) {
    // Far beyond the server's own deadline: the test measures the server, not the client.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let topic = topic_name(n % TOPICS);
        let id = format!("{tag}-{n}");
        let q = if kind == Kind::Ephemeral {
            "?ephemeral=true"
        } else {
            ""
        };
        let sent = Instant::now();
        let res = client
            .post(format!(
                "http://127.0.0.1:{port}/api/v1/apps/demo/topics/{topic}/publish{q}"
            ))
            .header("host", "localhost")
            .bearer_auth(&key)
            .json(&json!({ "id": id }))
            .send()
            .await;
        let (status, body) = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        };
        log.lock().unwrap().push(Attempt {
            kind,
            topic,
            id,
            sent,
            took: sent.elapsed(),
            status,
            seq: body["seq"].as_i64(),
            code: body["error"]["code"].as_str().map(str::to_owned),
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Follows one topic; when the stream ends (or a reconnect is refused) it reconnects with
/// the last id it processed.
async fn follow(
    port: u16,
    topic: String,
    got: Arc<Mutex<Received>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let client = reqwest::Client::new();
    loop {
        follow_once(&client, port, &topic, &got, &mut ready).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/readyz` every 100 ms: (sent, status), 0 for no answer within 5 s.
async fn poll_ready(
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, u16, Duration)>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let status = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .header("host", "localhost")
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        log.lock().unwrap().push((sent, status, sent.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every committed message of `topic`: seq → id.
async fn committed(
    store: &SqlStore,
    app: &picloud_core::ids::AppId,
    topic: &str,
) -> Vec<(i64, String)> {
    let name = TopicName::parse(topic).unwrap();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after(app, &name, after, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        for m in page {
            let v: Value = serde_json::from_str(&m.payload).unwrap();
            after = m.seq.unwrap();
            out.push((after, v["id"].as_str().unwrap().to_owned()));
        }
    }
}

struct Outage {
    mode: &'static str,
    outage: Duration,
    /// `pg_ctl stop` was asked: PostgreSQL refuses new connections from here on.
    stopping: Instant,
    /// `pg_ctl stop` returned: PostgreSQL is gone.
    down: Instant,
    /// `pg_ctl start` was asked.
    starting: Instant,
    /// `pg_ctl start -w` returned: PostgreSQL accepts connections.
    up: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_under_load_lose_nothing() {
    let began = Instant::now();
    let pg = Arc::new(
        tokio::task::spawn_blocking(PrivatePostgres::start)
            .await
            .unwrap(),
    );
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("DATABASE_URL", url.as_str()), ("RUST_LOG", "info")],
    );
    let key = server.bootstrap_key().expect("bootstrap key");
    let (status, app) = admin_post(&server, &key, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(status, 201, "{app}");
    for t in 0..TOPICS {
        let (status, body) = admin_post(
            &server,
            &key,
            "/api/v1/apps/demo/topics",
            json!({"name": topic_name(t), "external_subscribable": true, "auth_mode": "public",
                   "retention": {"max_messages": 1_000_000, "max_age_secs": null}}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    let mut followers = Vec::new();
    for t in 0..TOPICS {
        for _ in 0..FOLLOWERS_PER_TOPIC {
            let got = Arc::new(Mutex::new(Received::default()));
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(follow(server.port, topic_name(t), got.clone(), tx));
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .expect("subscribed within 10 s")
                .unwrap();
            followers.push((topic_name(t), got, task));
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let ready_log = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for p in 0..DURABLE_PUBLISHERS {
        load.push(tokio::spawn(publisher(
            server.port,
            key.clone(),
            Kind::Durable,
            format!("d{p}"),
            stop.clone(),
            attempts.clone(),
        )));
    }
    load.push(tokio::spawn(publisher(
        server.port,
        key.clone(),
        Kind::Ephemeral,
        "e".into(),
        stop.clone(),
        attempts.clone(),
    )));
    load.push(tokio::spawn(poll_ready(
        server.port,
        stop.clone(),
        ready_log.clone(),
    )));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut outages = Vec::new();
    let mut recoveries = Vec::new();
    for (mode, outage) in OUTAGES {
        let stopping = Instant::now();
        let p = pg.clone();
        tokio::task::spawn_blocking(move || p.stop(mode))
            .await
            .unwrap();
        let down = Instant::now();
        tokio::time::sleep(outage).await;
        let starting = Instant::now();
        let p = pg.clone();
        tokio::task::spawn_blocking(move || p.start_again())
            .await
            .unwrap();
        let up = Instant::now();
        // The first durable publish sent after PostgreSQL's return that is acknowledged.
        let deadline = up + Duration::from_secs(15);
        let recovered = loop {
            let first = attempts
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.kind == Kind::Durable && a.status == 201 && a.sent >= up)
                .map(|a| a.sent + a.took)
                .min();
            if let Some(at) = first {
                break at - up;
            }
            assert!(
                Instant::now() < deadline,
                "no durable publish acknowledged within 15 s of PostgreSQL's return ({mode})\n{}",
                server.stderr.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        recoveries.push(recovered);
        outages.push(Outage {
            mode,
            outage,
            stopping,
            down,
            starting,
            up,
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // What PostgreSQL holds.
    let store =
        picloud_store::connect(&DatabaseLocation::from_config(Some(&url), dir.path()).unwrap())
            .await
            .unwrap();
    let app_id = store
        .get_app_by_slug(&Slug::parse("demo").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut stored: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for t in 0..TOPICS {
        let name = topic_name(t);
        stored.insert(name.clone(), committed(&store, &app_id, &name).await);
    }

    let attempts = attempts.lock().unwrap().clone();
    let durable: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.kind == Kind::Durable)
        .collect();
    let ephemeral: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.kind == Kind::Ephemeral)
        .collect();
    let mut statuses: BTreeMap<(u16, Option<String>), usize> = BTreeMap::new();
    for a in &durable {
        *statuses.entry((a.status, a.code.clone())).or_default() += 1;
    }
    let slowest = durable.iter().map(|a| a.took).max().unwrap();
    let slowest_refusal = durable
        .iter()
        .filter(|a| a.status != 201)
        .map(|a| a.took)
        .max()
        .unwrap_or_default();
    let acked: Vec<&&Attempt> = durable.iter().filter(|a| a.status == 201).collect();
    let refused: Vec<&&Attempt> = durable.iter().filter(|a| a.status == 503).collect();

    // Seqs contiguous, nothing stored twice.
    let mut stored_ids: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
    let mut duplicated = 0;
    for (topic, rows) in &stored {
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            seqs,
            (1..=rows.len() as i64).collect::<Vec<_>>(),
            "{topic}: seqs contiguous from 1"
        );
        for (seq, id) in rows {
            if stored_ids.insert(id, (topic, *seq)).is_some() {
                duplicated += 1;
            }
        }
    }
    // Every acknowledged message is stored, with the seq it was acknowledged with.
    let mut lost = Vec::new();
    for a in &acked {
        if stored_ids.get(a.id.as_str()) != Some(&(a.topic.as_str(), a.seq.unwrap())) {
            lost.push((a.topic.clone(), a.seq, a.id.clone()));
        }
    }
    // A refusal whose message is stored anyway: the connection died between COMMIT and its
    // answer, so the server could not know. Counted, and held to the same delivery rule.
    let refused_but_stored = refused
        .iter()
        .filter(|a| stored_ids.contains_key(a.id.as_str()))
        .count();

    // Every follower got every committed message exactly once, in order.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (topic, got, _) in &followers {
        let want = &stored[topic];
        loop {
            let have = got.lock().unwrap().frames.clone();
            if have.len() >= want.len() || Instant::now() > deadline {
                assert_eq!(
                    &have, want,
                    "a follower of {topic} received every committed message once, in order"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let reconnects: usize = followers
        .iter()
        .map(|f| f.1.lock().unwrap().connections.len() - 1)
        .sum();
    for (_, _, task) in &followers {
        task.abort();
    }

    let ready = ready_log.lock().unwrap().clone();
    let recovery_max = recoveries.iter().max().unwrap();
    println!(
        "pg_outage: requests {} (durable {}, ephemeral {}), acknowledged {}, 503 {}, \
         refused but stored {refused_but_stored}, lost {}, duplicated {duplicated}, outages {} \
         ({:?}), time to recover {:?} (max {recovery_max:?}), slowest durable answer \
         {slowest:?} (slowest refusal {slowest_refusal:?}), follower reconnects {reconnects}, \
         durable statuses {statuses:?}, pg_ctl stop took {:?}, run {:?}",
        attempts.len(),
        durable.len(),
        ephemeral.len(),
        acked.len(),
        refused.len(),
        lost.len(),
        outages.len(),
        OUTAGES,
        recoveries,
        outages
            .iter()
            .map(|o| o.down - o.stopping)
            .collect::<Vec<_>>(),
        began.elapsed()
    );

    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(duplicated, 0, "a message stored twice");
    for a in &durable {
        assert!(
            a.status == 201 || (a.status == 503 && a.code.as_deref() == Some("unavailable")),
            "a durable publish answers 201 or 503 unavailable: {a:?}"
        );
        assert!(
            a.took <= ANSWER_BOUND,
            "a durable publish waited {:?} for its answer (bound {ANSWER_BOUND:?}): {a:?}",
            a.took
        );
    }
    // An ephemeral publish stores nothing, but its admin key is verified against the
    // database once the key's cache entry (5 s, `admin_key_cache_ttl`: a revoked key stops
    // working within that) has expired. So: 202 throughout an outage shorter than that, and
    // a clear 503 (never a hang, never a 5xx of another kind) once it has expired.
    let short = &outages[0];
    assert!(short.outage < KEY_CACHE_TTL);
    for a in &ephemeral {
        assert!(
            a.status == 202 || (a.status == 503 && a.code.as_deref() == Some("unavailable")),
            "an ephemeral publish answers 202 or 503 unavailable: {a:?}"
        );
        assert!(a.took <= ANSWER_BOUND, "{a:?}");
        if a.sent >= short.down - Duration::from_secs(1) && a.sent < short.up {
            assert_eq!(a.status, 202, "ephemeral during a short outage: {a:?}");
        }
    }
    for (o, recovered) in outages.iter().zip(&recoveries) {
        let during = |t: Instant| t >= o.down && t < o.starting;
        assert!(
            durable
                .iter()
                .all(|a| !(during(a.sent + a.took) && a.status == 201)),
            "a durable publish acknowledged while PostgreSQL was down ({})",
            o.mode
        );
        if o.outage > ACQUIRE_TIMEOUT + Duration::from_secs(1) {
            // Long enough for a publish's wait for a connection to run out while
            // PostgreSQL was still down: it was refused, not left hanging.
            assert!(
                durable
                    .iter()
                    .any(|a| a.sent >= o.down && a.sent + a.took < o.starting && a.status == 503),
                "a durable publish refused during the outage ({})",
                o.mode
            );
        }
        // (sent after `pg_ctl stop` was asked, status, took), for the messages below.
        let around: Vec<(Duration, u16, Duration)> = ready
            .iter()
            .filter(|r| r.0 >= o.stopping && r.0 < o.up)
            .map(|r| (r.0 - o.stopping, r.1, r.2))
            .collect();
        assert!(
            ready
                .iter()
                .any(|(t, s, _)| *t >= o.stopping && *t < o.starting && *s == 503),
            "/readyz said not ready during the outage ({}; stopped after {:?}, started at \
             {:?}): {around:?}",
            o.mode,
            o.down - o.stopping,
            o.starting - o.stopping
        );
        assert!(
            ready.iter().all(|r| r.2 <= READY_BOUND),
            "/readyz answered within {READY_BOUND:?}: {around:?}"
        );
        assert!(
            ready
                .iter()
                .any(|(t, s, _)| *t >= o.up && *t < o.up + RECOVERY_BOUND && *s == 200),
            "/readyz ready again within {RECOVERY_BOUND:?} of PostgreSQL's return ({})",
            o.mode
        );
        assert!(
            *recovered <= RECOVERY_BOUND,
            "acknowledged again {recovered:?} after PostgreSQL's return ({})",
            o.mode
        );
    }
    drop(server);
}
