//! Cluster delivery under faults, with real processes: three `picloud` nodes on one fresh
//! PostgreSQL database, a private `redis-server`, and a fault proxy between each node and
//! Redis. SSE subscribers on every node; publishers through the admin API; a history
//! checker holds every subscriber to what PostgreSQL committed:
//! - every committed message of a topic reaches every subscriber of it (all subscribe
//!   before the first publish), once per seq after de-duplication, in seq order, with
//!   the payload PostgreSQL holds;
//! - every acknowledged publish is committed (so delivered to everyone); a publish whose
//!   client got no answer (its node was killed) is delivered to everyone if its row
//!   exists, and to no one if it does not (nothing but committed rows is ever delivered).
//!
//! The scenarios share a lock: each runs three nodes and they would starve each other of
//! the machine's two cores.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picloud_core::ids::AppId;
use picloud_core::store::{MessageStore, TopicStore};
use picloud_core::topic::TopicName;
use picloud_store::testing::{PrivateRedis, TcpProxy, TestDatabase};
use picloud_store::{Backend, SqlStore};
use serde_json::{json, Value};

use support::sse::{follow_once, Received};
use support::{admin_post, call, Server};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NODES: usize = 3;

/// Three nodes, their Redis proxies, and the app `demo`.
struct Cluster {
    db: TestDatabase,
    store: SqlStore,
    redis: PrivateRedis,
    /// Between each node and Redis, and each node and PostgreSQL.
    proxies: Vec<TcpProxy>,
    pg_proxies: Vec<TcpProxy>,
    nodes: Vec<Option<Server>>,
    dirs: Vec<tempfile::TempDir>,
    admin: String,
    app: AppId,
    /// Per node: while this file exists, its durable relay frames are dropped.
    drop_files: Vec<std::path::PathBuf>,
    /// File bytes, shared by the nodes (`PICLOUD_BLOB_DIR`).
    blobs: tempfile::TempDir,
    /// One cluster at a time.
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    async fn start() -> Self {
        let one = ONE_AT_A_TIME.lock().await;
        let db = TestDatabase::new(Backend::Postgres).await;
        let redis = PrivateRedis::start();
        let (mut proxies, mut pg_proxies) = (Vec::new(), Vec::new());
        for _ in 0..NODES {
            proxies.push(TcpProxy::start(([127, 0, 0, 1], redis.port).into()).await);
            pg_proxies.push(TcpProxy::start(db.postgres_addr()).await);
        }
        let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
        let drop_files = dirs.iter().map(|d| d.path().join("drop-relay")).collect();
        let store = db.open().await;
        let mut c = Self {
            db,
            store,
            redis,
            proxies,
            pg_proxies,
            nodes: (0..NODES).map(|_| None).collect(),
            dirs,
            admin: String::new(),
            app: AppId(String::new()),
            drop_files,
            blobs: tempfile::tempdir().unwrap(),
            _one: one,
        };
        for i in 0..NODES {
            c.start_node(i);
            if i == 0 {
                c.admin = c
                    .node(0)
                    .bootstrap_key()
                    .expect("the first node bootstraps");
            }
        }
        let (status, app) =
            admin_post(c.node(0), &c.admin, "/api/v1/apps", json!({"slug": "demo"})).await;
        assert_eq!(status, 201, "{app}");
        c.app = AppId(app["id"].as_str().unwrap().to_owned());
        c
    }

    fn start_node(&mut self, i: usize) {
        let url = self.db.url_via(&self.pg_proxies[i]);
        let redis = format!("redis://{}", self.proxies[i].addr);
        let id = format!("n{}", i + 1);
        let drop_file = self.drop_files[i].to_string_lossy().into_owned();
        let blobs = self.blobs.path().to_string_lossy().into_owned();
        let env = [
            ("DATABASE_URL", url.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("PICLOUD_NODE_ID", id.as_str()),
            ("PICLOUD_FAULT_RELAY_DROP_FILE", drop_file.as_str()),
            ("PICLOUD_BLOB_DIR", blobs.as_str()),
            ("RUST_LOG", "info"),
        ];
        self.nodes[i] = Some(Server::start(self.dirs[i].path(), &env));
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node running")
    }

    fn port(&self, i: usize) -> u16 {
        self.node(i).port
    }

    /// SIGKILL.
    fn kill(&mut self, i: usize) {
        let mut server = self.nodes[i].take().expect("node running");
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }

    fn signal(&self, i: usize, signal: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.node(i).child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    async fn topics(&self, names: &[String]) {
        for name in names {
            let (status, body) = admin_post(
                self.node(0),
                &self.admin,
                "/api/v1/apps/demo/topics",
                json!({"name": name, "external_subscribable": true, "auth_mode": "public"}),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }
    }

    async fn health(&self, i: usize) -> Value {
        let (status, body) = call(
            reqwest::Method::GET,
            &self.node(i).url("/health/realtime"),
            "localhost",
            Some(&self.admin),
            None,
        )
        .await;
        assert_eq!(status, 200);
        body
    }

    /// Every committed message of `topic`, by seq: its `id`.
    async fn committed(&self, topic: &str) -> BTreeMap<i64, String> {
        let name = TopicName::parse(topic).unwrap();
        let mut out = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .read_after(&self.app, &name, after, 1000)
                .await
                .unwrap();
            if page.is_empty() {
                return out;
            }
            for m in page {
                let v: Value = serde_json::from_str(&m.payload).unwrap();
                after = m.seq.unwrap();
                out.insert(after, v["id"].as_str().unwrap().to_owned());
            }
        }
    }

    async fn last_seq(&self, topic: &str) -> i64 {
        let name = TopicName::parse(topic).unwrap();
        self.store
            .get_topic(&self.app, &name)
            .await
            .unwrap()
            .map_or(0, |t| t.last_seq)
    }
}

/// What a subscriber received: per seq, the message's `id`, in arrival order.
/// An SSE subscriber of one topic. When its stream ends it reconnects, with
/// `Last-Event-ID`, to the next port of `ports` that answers.
struct Subscriber {
    topic: String,
    home: u16,
    got: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connected (its `position` frame read) when this returns.
    async fn start(topic: &str, ports: Vec<u16>) -> Self {
        let got = Arc::new(Mutex::new(Received::default()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(follow(
            topic.to_owned(),
            ports.clone(),
            got.clone(),
            ready_tx,
        ));
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("subscribed within 10 s")
            .unwrap();
        Self {
            topic: topic.to_owned(),
            home: ports[0],
            got,
            task,
        }
    }

    fn seqs(&self) -> Vec<i64> {
        self.got
            .lock()
            .unwrap()
            .frames
            .iter()
            .map(|f| f.0)
            .collect()
    }

    /// Has every seq up to `last`.
    fn reached(&self, last: i64) -> bool {
        let got = self.got.lock().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for (s, _) in &got.frames {
            seen.insert(*s);
        }
        (1..=last).all(|s| seen.contains(&s))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(
    topic: String,
    ports: Vec<u16>,
    got: Arc<Mutex<Received>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let client = reqwest::Client::new();
    let mut at = 0;
    loop {
        let port = ports[at % ports.len()];
        follow_once(&client, port, &topic, &got, &mut ready).await;
        // Ended (its node died or shut down): the next node.
        at += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes one message through a node: `Some(seq)` if acknowledged.
async fn publish(
    client: &reqwest::Client,
    port: u16,
    key: &str,
    topic: &str,
    id: &str,
) -> Option<i64> {
    let res = client
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/apps/demo/topics/{topic}/publish"
        ))
        .header("host", "localhost")
        .bearer_auth(key)
        .json(&json!({"id": id}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if res.status() != 201 {
        return None;
    }
    res.json::<Value>().await.ok()?["seq"].as_i64()
}

/// The publishes made, acknowledged or not.
#[derive(Default, Clone)]
struct Ledger {
    acked: Vec<(String, i64, String)>,
    unanswered: Vec<(String, String)>,
}

/// `count` publishes spread over `topics`, through `ports` in turn, `per_sec` a second.
async fn publish_run(
    key: &str,
    topics: &[String],
    ports: &[u16],
    count: usize,
    per_sec: u32,
    tag: &str,
    ledger: &Mutex<Ledger>,
) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
    for n in 0..count {
        tick.tick().await;
        let topic = &topics[n % topics.len()];
        let port = ports[n % ports.len()];
        let id = format!("{tag}-{n}");
        match publish(&client, port, key, topic, &id).await {
            Some(seq) => ledger.lock().unwrap().acked.push((topic.clone(), seq, id)),
            None => ledger.lock().unwrap().unanswered.push((topic.clone(), id)),
        }
    }
}

/// Publishers running in the background, `per_sec` each, through `ports` in turn.
struct Publishing {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Publishing {
    /// `publishers` in parallel (so that some are in flight when a node dies), `count`
    /// messages each, tagged `tag`.
    fn start(
        c: &Cluster,
        topics: &[String],
        ports: Vec<u16>,
        publishers: usize,
        count: usize,
        tag: &str,
    ) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let tasks = (0..publishers)
            .map(|p| {
                let (key, topics, ports, ledger) = (
                    c.admin.clone(),
                    topics.to_vec(),
                    ports.clone(),
                    ledger.clone(),
                );
                let tag = format!("{tag}{p}");
                tokio::spawn(async move {
                    publish_run(&key, &topics, &ports, count, 100, &tag, &ledger).await
                })
            })
            .collect();
        Self { tasks, ledger }
    }

    async fn finish(self) -> Ledger {
        for t in self.tasks {
            t.await.unwrap();
        }
        self.ledger.lock().unwrap().clone()
    }
}

/// Waits until every subscriber holds its topic's every committed message (at most
/// `limit`), then checks them against PostgreSQL and the ledger. Answers how long it took.
async fn check(c: &Cluster, subs: &[Subscriber], ledger: &Ledger, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut lasts = HashMap::new();
    for s in subs {
        if !lasts.contains_key(&s.topic) {
            lasts.insert(s.topic.clone(), c.last_seq(&s.topic).await);
        }
    }
    loop {
        if subs.iter().all(|s| s.reached(lasts[&s.topic])) {
            break;
        }
        if start.elapsed() > limit {
            if let Some(s) = subs.iter().find(|s| !s.reached(lasts[&s.topic])) {
                let seqs = s.seqs();
                let got = s.got.lock().unwrap();
                panic!(
                    "a subscriber of {} (first on port {}) lacks messages after {limit:?}: last \
                     committed {}, got {} frames, tail {:?}, connections {:?}",
                    s.topic,
                    s.home,
                    lasts[&s.topic],
                    seqs.len(),
                    &seqs[seqs.len().saturating_sub(10)..],
                    got.connections.iter().map(|c| c.0).collect::<Vec<_>>()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    let mut committed = HashMap::new();
    for topic in lasts.keys() {
        let rows = c.committed(topic).await;
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            (1..=lasts[topic]).collect::<Vec<_>>(),
            "history of {topic} is contiguous"
        );
        committed.insert(topic.clone(), rows);
    }
    for s in subs {
        let rows = &committed[&s.topic];
        let got = s.got.lock().unwrap();
        let mut highest = 0;
        for (seq, id) in &got.frames {
            // In order: a seq at or below the highest is a duplicate (allowed only as the
            // same message, across a reconnect).
            assert_eq!(
                rows.get(seq),
                Some(id),
                "{}: seq {seq} is what PostgreSQL holds",
                s.topic
            );
            if *seq <= highest {
                assert!(
                    got.connections.len() > 1,
                    "{}: seq {seq} again on one connection",
                    s.topic
                );
            } else {
                assert_eq!(
                    *seq,
                    highest + 1,
                    "{}: seq {seq} after {highest}: out of order",
                    s.topic
                );
                highest = *seq;
            }
        }
    }
    let ids: std::collections::HashSet<&String> =
        committed.values().flat_map(|rows| rows.values()).collect();
    for (topic, seq, id) in &ledger.acked {
        assert_eq!(
            committed[topic].get(seq),
            Some(id),
            "acknowledged {id} is committed as {topic}/{seq}"
        );
    }
    let lost = ledger
        .unanswered
        .iter()
        .filter(|(_, id)| !ids.contains(id))
        .count();
    eprintln!(
        "checked {} subscribers: {} acknowledged, {} unanswered ({} of them never committed, and \
         delivered to no one), all delivered in {took:?}",
        subs.len(),
        ledger.acked.len(),
        ledger.unanswered.len(),
        lost
    );
    took
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

impl Cluster {
    /// `n` topics named `prefix<i>`, each with two subscribers on every node of `nodes`.
    async fn subscribed(
        &self,
        prefix: &str,
        n: usize,
        nodes: &[usize],
    ) -> (Vec<String>, Vec<Subscriber>) {
        let topics = names(prefix, n);
        self.topics(&topics).await;
        let subs = subscribe_all(self, &topics, nodes).await;
        (topics, subs)
    }
}

/// Subscribers of every topic on every node listed (two each).
async fn subscribe_all(c: &Cluster, topics: &[String], nodes: &[usize]) -> Vec<Subscriber> {
    let mut subs = Vec::new();
    for &i in nodes {
        // Failover order: the home node, then the others.
        let mut ports = vec![c.port(i)];
        ports.extend(
            (0..NODES)
                .filter(|j| *j != i && c.nodes[*j].is_some())
                .map(|j| c.port(j)),
        );
        for t in topics {
            for _ in 0..2 {
                subs.push(Subscriber::start(t, ports.clone()).await);
            }
        }
    }
    subs
}

async fn counter(c: &Cluster, i: usize, name: &str) -> u64 {
    c.health(i).await[name].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_the_relay_delivers_everything_without_repairs() {
    let c = Cluster::start().await;
    let (topics, subs) = c.subscribed("base", 10, &[0, 1, 2]).await;
    let ledger = Mutex::new(Ledger::default());
    let ports: Vec<u16> = (0..NODES).map(|i| c.port(i)).collect();
    publish_run(&c.admin, &topics, &ports, 600, 200, "b", &ledger).await;
    let ledger = ledger.into_inner().unwrap();
    assert!(ledger.unanswered.is_empty(), "every publish answered");
    check(&c, &subs, &ledger, Duration::from_secs(10)).await;
    for i in 0..NODES {
        let h = c.health(i).await;
        assert_eq!(h["node_id"], format!("n{}", i + 1));
        assert_eq!(h["relay"], "live");
        assert_eq!(
            h["relay_repairs"], 0,
            "node {i}: the relay delivered everything: {h}"
        );
        assert_eq!(h["gap_repairs"], 0, "node {i}: no stream repaired: {h}");
        assert_eq!(h["relay_dropped"], 0, "node {i}: {h}");
        assert!(h["relay_received"].as_u64().unwrap() > 0, "node {i}: {h}");
        let m = support::scrape(c.node(i), &c.admin).await;
        assert_eq!(support::sample(&m, "picloud_relay_live"), 1.0);
        assert_eq!(support::sample(&m, "picloud_relay_repairs_total"), 0.0);
    }

    // A static file uploaded through one node is served by another (shared blob dir).
    let res = reqwest::Client::new()
        .put(c.node(0).url("/api/v1/apps/demo/static/hello.txt"))
        .header("host", "localhost")
        .bearer_auth(&c.admin)
        .body("hello from node 1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = reqwest::Client::new()
        .get(c.node(2).url("/hello.txt"))
        .header("host", "demo.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from node 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_frame_lost_after_commit_is_repaired_by_the_position_check() {
    let c = Cluster::start().await;
    let (topics, subs) = c.subscribed("lost", 2, &[1, 2]).await;
    let ledger = Mutex::new(Ledger::default());
    // The tail is lost: nothing published after it reveals the gap.
    std::fs::write(&c.drop_files[0], "").unwrap();
    publish_run(&c.admin, &topics, &[c.port(0)], 4, 100, "l", &ledger).await;
    std::fs::remove_file(&c.drop_files[0]).unwrap();
    assert!(counter(&c, 0, "relay_dropped").await >= 4);
    let ledger = ledger.into_inner().unwrap();
    let took = check(&c, &subs, &ledger, Duration::from_secs(8)).await;
    eprintln!("a lost tail repaired within {took:?}");
    for i in [1, 2] {
        assert!(counter(&c, i, "relay_repairs").await >= 1);
        assert!(counter(&c, i, "position_checks").await >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publishing_node_killed_mid_run_loses_nothing_acknowledged() {
    let mut c = Cluster::start().await;
    let (topics, subs) = c.subscribed("kp", 5, &[1, 2]).await;
    let run = Publishing::start(&c, &topics, vec![c.port(0)], 4, 300, "k");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill(0);
    let ledger = run.finish().await;
    assert!(!ledger.acked.is_empty() && !ledger.unanswered.is_empty());
    check(&c, &subs, &ledger, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_node_killed_its_clients_resume_elsewhere_missing_nothing() {
    let mut c = Cluster::start().await;
    let (topics, subs) = c.subscribed("ks", 5, &[0, 2]).await;
    let run = Publishing::start(&c, &topics, vec![c.port(1)], 1, 400, "s");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill(2);
    let killed = Instant::now();
    let ledger = run.finish().await;
    assert!(ledger.unanswered.is_empty());
    check(&c, &subs, &ledger, Duration::from_secs(10)).await;
    let orphans: Vec<_> = subs.iter().filter(|s| s.home != c.port(0)).collect();
    let resumed = orphans
        .iter()
        .map(|s| {
            let got = s.got.lock().unwrap();
            let (_, at) = got.connections.last().copied().unwrap();
            assert!(got.connections.len() >= 2, "an orphan reconnected");
            at.duration_since(killed)
        })
        .max()
        .unwrap();
    eprintln!(
        "C3: {} orphaned subscribers resumed on another node within {resumed:?} of the kill",
        orphans.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_faults_on_one_node_blackhole_reset_delay() {
    let c = Cluster::start().await;
    let (topics, subs) = c.subscribed("rf", 4, &[1, 2]).await;
    let run = Publishing::start(&c, &topics, vec![c.port(0), c.port(2)], 1, 1200, "r");
    // Node 2 (index 1): its Redis connection blackholed, then reset, then slow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.proxies[1].blackhole();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        c.health(1).await["relay"],
        "stale",
        "a blackholed relay is noticed"
    );
    c.proxies[1].cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.proxies[1].restore();
    c.proxies[1].delay(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.proxies[1].restore();
    let ledger = run.finish().await;
    assert!(
        ledger.unanswered.is_empty(),
        "publishes do not wait on the relay"
    );
    check(&c, &subs, &ledger, Duration::from_secs(10)).await;
    let h = c.health(1).await;
    assert_eq!(h["relay"], "live", "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    let mut c = Cluster::start().await;
    let (topics, subs) = c.subscribed("rk", 4, &[1, 2]).await;
    let run = Publishing::start(&c, &topics, vec![c.port(1)], 1, 800, "k");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let port = c.redis.port;
    c.redis.kill();
    // A node restarted meanwhile starts, and polls PostgreSQL until Redis is back.
    c.kill(0);
    c.start_node(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(c.health(0).await["relay"], "stale");
    c.redis = PrivateRedis::start_on(port);
    let ledger = run.finish().await;
    assert!(
        ledger.unanswered.is_empty(),
        "durable publishes commit without Redis"
    );
    check(&c, &subs, &ledger, Duration::from_secs(10)).await;
    // The relay is back: a message now goes through it at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..NODES {
        assert_eq!(c.health(i).await["relay"], "live");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_for_20_s_catches_up_when_resumed() {
    let c = Cluster::start().await;
    let (topics, subs) = c.subscribed("ps", 4, &[1, 2]).await;
    let run = Publishing::start(&c, &topics, vec![c.port(0)], 1, 2400, "p");
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.signal(2, "STOP");
    tokio::time::sleep(Duration::from_secs(20)).await;
    c.signal(2, "CONT");
    let ledger = run.finish().await;
    check(&c, &subs, &ledger, Duration::from_secs(15)).await;
}

/// Deploys `source` as script `name` and adds a trigger of `kind` with `filter` for it.
async fn handler(c: &Cluster, name: &str, source: &str, kind: &str, filter: Value) {
    let (status, body) = admin_post(
        c.node(0),
        &c.admin,
        "/api/v1/apps/demo/scripts",
        json!({"name": name, "source": source}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_post(
        c.node(0),
        &c.admin,
        "/api/v1/apps/demo/triggers",
        json!({"kind": kind, "script": name, "filter": filter}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Every message of `topic` in PostgreSQL, as JSON.
async fn history(c: &Cluster, topic: &str) -> Vec<Value> {
    let name = TopicName::parse(topic).unwrap();
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .store
            .read_after(&c.app, &name, after, 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { return out };
        after = last.seq.unwrap();
        out.extend(
            page.iter()
                .map(|m| serde_json::from_str::<Value>(&m.payload).unwrap()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_dispatchers_run_each_delivery_and_each_cron_time_once() {
    let c = Cluster::start().await;
    handler(
        &c,
        "work",
        r#"pubsub::publish("done", #{ seq: event.seq })"#,
        "pubsub",
        json!({"topic": "jobs"}),
    )
    .await;
    handler(
        &c,
        "tick",
        r#"pubsub::publish("ticks", #{ at: event.scheduled_for })"#,
        "cron",
        json!({"schedule": "* * * * * *"}),
    )
    .await;
    let ledger = Mutex::new(Ledger::default());
    let ports: Vec<u16> = (0..NODES).map(|i| c.port(i)).collect();
    let started = Instant::now();
    publish_run(
        &c.admin,
        &["jobs".to_owned()],
        &ports,
        300,
        100,
        "j",
        &ledger,
    )
    .await;
    // Ten cron times at least, and every job handled.
    while history(&c, "done").await.len() < 300 || started.elapsed() < Duration::from_secs(11) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "jobs not all handled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut handled: BTreeMap<i64, usize> = BTreeMap::new();
    for m in history(&c, "done").await {
        *handled.entry(m["seq"].as_i64().unwrap()).or_default() += 1;
    }
    assert_eq!(handled.len(), 300, "every job handled");
    assert!(
        handled.values().all(|n| *n == 1),
        "no job handled twice: {handled:?}"
    );

    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for m in history(&c, "ticks").await {
        *fired
            .entry(m["at"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(fired.len() >= 10, "ten cron times: {fired:?}");
    assert!(
        fired.values().all(|n| *n == 1),
        "each cron time once per cluster: {fired:?}"
    );
    let times: Vec<i64> = fired
        .keys()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp())
        .collect();
    assert!(
        times.windows(2).all(|w| w[1] == w[0] + 1),
        "no second skipped: {fired:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postgresql_durable_publishes_fail_and_ephemeral_ones_still_cross_nodes() {
    let c = Cluster::start().await;
    let (_, subs) = c.subscribed("pg", 1, &[1]).await;
    let client = reqwest::Client::new();
    let url = |eph: bool| {
        format!(
            "http://127.0.0.1:{}/api/v1/apps/demo/topics/pg0/publish{}",
            c.port(0),
            if eph { "?ephemeral=true" } else { "" }
        )
    };
    // The publishing node has its key and app cached (the key for 5 s: what an ephemeral
    // publish can go on with while the database is away; docs/cluster.md).
    let warm = client
        .post(url(true))
        .header("host", "localhost")
        .bearer_auth(&c.admin)
        .json(&json!({"id": "w"}))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 202);
    for p in &c.pg_proxies {
        p.cut();
    }
    let durable = client
        .post(url(false))
        .header("host", "localhost")
        .bearer_auth(&c.admin)
        .json(&json!({"id": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        durable.status(),
        503,
        "not acknowledged without its database"
    );
    for n in 0..5 {
        let res = client
            .post(url(true))
            .header("host", "localhost")
            .bearer_auth(&c.admin)
            .json(&json!({"id": format!("e{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for s in &subs {
        loop {
            let got = s.got.lock().unwrap().ephemeral.clone();
            if got.len() == 6 {
                assert_eq!(got, ["w", "e0", "e1", "e2", "e3", "e4"], "in order");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ephemeral messages crossed nodes: {got:?}"
            );
            drop(got);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(s.seqs().is_empty(), "nothing durable was delivered");
    }
    for p in &c.pg_proxies {
        p.restore();
    }
}
