//! `kill -9` under load, on SQLite and on PostgreSQL: the real `picloud serve` process is
//! killed with SIGKILL at random moments (seeded; `CRASH_SEED=<n>` replays a run) while 16
//! publishers write to 50 topics, SSE subscribers follow every topic and a `pubsub` trigger
//! runs a script for every message of five of them. After each kill the server restarts
//! on the same data (its port changes; clients follow it) and subscribers resume with
//! `Last-Event-ID`. Once the load stops, the database is held to what clients were told:
//! - every publish answered `201` is committed at its seq with its payload, and nothing is
//!   committed twice or without having been sent; each topic's seqs run 1..=last;
//! - a publish that got no answer may or may not be committed; whatever is committed, and
//!   nothing else, reaches every subscriber of its topic exactly once, in seq order;
//! - every committed message of a triggered topic has exactly one delivery, whose script
//!   ran (its kv mark is there) at least once; a run recorded twice as a success must have
//!   a kill between the two records (the crash made it run again, nothing else may); no
//!   dead letters;
//! - the outbox drains to empty within the lease and a margin after the last restart:
//!   no delivery is stranded by a crash.
//!
//! Both runs take the same lock: each needs the machine's two cores to itself.
//! A longer run: `CRASH_KILLS=40` (about 45 s per backend).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use picloud_core::ids::AppId;
use picloud_core::store::{DataStore, InvocationStore, MessageStore, OutboxStore, TopicStore};
use picloud_core::topic::TopicName;
use picloud_store::testing::{outbox_rows, TestDatabase};
use picloud_store::{Backend, SqlStore};
use serde_json::{json, Value};

use support::sse::{follow_once, Received};
use support::{admin_post, Server};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOPICS: usize = 50;
const PUBLISHERS: usize = 16;
/// Kills per run, unless `CRASH_KILLS` says otherwise (a longer run).
const KILLS: usize = 10;
/// Topics with a `pubsub` trigger.
const TRIGGERED: [usize; 5] = [0, 10, 20, 30, 40];
/// Short, so that deliveries claimed by a killed process run again within the test; long
/// enough that renewals (every third of it) keep up on a busy machine.
const LEASE_MS: u64 = 5_000;
/// Each publisher's pace (1,600 publishes/s at most in all): every kill lands on requests
/// in flight, and the tests sharing the machine are not starved.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

/// Writes one mark per message (idempotent: its key is the message's topic and seq) and
/// one per run (its key is the delivery and attempt, so re-runs are counted).
const SCRIPT: &str = r#"
kv::set("done:" + event.topic + ":" + event.seq, event.message.id);
kv::set("run:" + event.delivery_id + ":" + event.attempt, event.topic + ":" + event.seq);
"#;

/// splitmix64: a seeded sequence, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("CRASH_SEED") {
        Ok(s) => s.parse().expect("CRASH_SEED is a number"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

fn kill_count() -> usize {
    std::env::var("CRASH_KILLS").map_or(KILLS, |s| s.parse().expect("CRASH_KILLS is a number"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn topic(i: usize) -> String {
    format!("t{i}")
}

/// The server under test, restarted on the same data; `port` is where clients find it
/// (0 while it is down).
struct Target {
    /// Before `db`: a PostgreSQL database is dropped after its server is gone.
    server: Option<Server>,
    db: TestDatabase,
    env: Vec<(String, String)>,
    port: Arc<AtomicU16>,
    /// Warnings, errors and panics logged by the lives so far.
    complaints: Vec<String>,
}

impl Target {
    fn new(db: TestDatabase) -> Self {
        let mut env = vec![
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("PICLOUD_DISPATCH_LEASE_MS".to_owned(), LEASE_MS.to_string()),
        ];
        if let Some(url) = &db.database_url {
            env.push(("DATABASE_URL".to_owned(), url.clone()));
        }
        Self {
            server: None,
            db,
            env,
            port: Arc::new(AtomicU16::new(0)),
            complaints: Vec::new(),
        }
    }

    /// Starts the server and waits until it listens (blocking, off the runtime's workers).
    fn start(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let server = tokio::task::block_in_place(|| Server::start(self.db.data_dir(), &env));
        self.port.store(server.port, Ordering::SeqCst);
        self.server = Some(server);
    }

    /// SIGKILL; answers when (wall clock, ms) it died.
    fn kill(&mut self) -> i64 {
        let mut server = self.server.take().expect("server running");
        server.child.kill().unwrap();
        self.port.store(0, Ordering::SeqCst);
        tokio::task::block_in_place(|| server.child.wait().unwrap());
        let died = now_ms();
        self.collect_complaints(&server);
        died
    }

    fn collect_complaints(&mut self, server: &Server) {
        let lines = server.stderr.lock().unwrap();
        self.complaints.extend(
            lines
                .iter()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
                .cloned(),
        );
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }
}

/// One publish request and what came of it.
struct Attempt {
    topic: usize,
    id: String,
    payload: Value,
    outcome: Outcome,
}

enum Outcome {
    /// `201` with its seq.
    Acked(i64),
    /// The connection died (or the answer never came): may or may not be committed.
    Unanswered,
    /// Any other answer.
    Refused(u16, String),
}

/// Publishes until `stop`, to whatever port the server is on now.
async fn publisher(
    p: usize,
    key: String,
    port: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    seed: u64,
    log: Arc<Mutex<Vec<Attempt>>>,
    acks: Arc<AtomicU64>,
) {
    let mut rng = Rng(seed);
    let mut client = reqwest::Client::new();
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0.. {
        tick.tick().await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let at = port.load(Ordering::SeqCst);
        if at == 0 {
            continue;
        }
        let t = rng.below(TOPICS as u64) as usize;
        let id = format!("p{p}-{n}");
        let payload = json!({"id": id, "n": n, "pad": "x".repeat(rng.below(200) as usize)});
        let sent = client
            .post(format!(
                "http://127.0.0.1:{at}/api/v1/apps/demo/topics/{}/publish",
                topic(t)
            ))
            .header("host", "localhost")
            .bearer_auth(&key)
            .json(&payload)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let outcome = match sent {
            // Refused before anything was sent (the port just died): not an attempt.
            Err(e) if e.is_connect() => continue,
            Err(_) => Outcome::Unanswered,
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.text().await;
                match (status, body) {
                    (201, Ok(body)) => {
                        let v: Value = serde_json::from_str(&body).unwrap();
                        acks.fetch_add(1, Ordering::SeqCst);
                        Outcome::Acked(v["seq"].as_i64().expect("seq"))
                    }
                    (_, Err(_)) => Outcome::Unanswered,
                    (s, Ok(body)) => Outcome::Refused(s, body),
                }
            }
        };
        if matches!(outcome, Outcome::Unanswered) {
            // Pooled connections to a killed process are all dead.
            client = reqwest::Client::new();
        }
        log.lock().unwrap().push(Attempt {
            topic: t,
            id,
            payload,
            outcome,
        });
    }
}

struct Follower {
    topic: usize,
    got: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Connected (its `position` frame read) when this returns.
    async fn start(t: usize, port: Arc<AtomicU16>) -> Self {
        let got = Arc::new(Mutex::new(Received::default()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(follow(topic(t), port, got.clone(), ready_tx));
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("subscribed within 10 s")
            .unwrap();
        Self {
            topic: t,
            got,
            task,
        }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().frames.len()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows `topic` for ever: when its stream ends, reconnects where the server now is,
/// resuming after the last id it read.
async fn follow(
    topic: String,
    port: Arc<AtomicU16>,
    got: Arc<Mutex<Received>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let client = reqwest::Client::new();
    loop {
        let at = port.load(Ordering::SeqCst);
        if at != 0 {
            follow_once(&client, at, &topic, &got, &mut ready).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every committed message of topic `t`: seq → payload.
async fn history(store: &SqlStore, app: &AppId, t: usize) -> BTreeMap<i64, Value> {
    let name = TopicName::parse(&topic(t)).unwrap();
    let mut out = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.read_after(app, &name, after, 1000).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.seq.unwrap();
        for m in &page {
            out.insert(m.seq.unwrap(), serde_json::from_str(&m.payload).unwrap());
        }
    }
}

async fn setup(target: &Target, admin: &str) -> AppId {
    let server = target.server();
    let (status, app) = admin_post(server, admin, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(status, 201, "{app}");
    for t in 0..TOPICS {
        let (status, body) = admin_post(
            server,
            admin,
            "/api/v1/apps/demo/topics",
            json!({"name": topic(t), "external_subscribable": true, "auth_mode": "public"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = admin_post(
        server,
        admin,
        "/api/v1/apps/demo/scripts",
        json!({"name": "mark", "source": SCRIPT}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for t in TRIGGERED {
        let (status, body) = admin_post(
            server,
            admin,
            "/api/v1/apps/demo/triggers",
            json!({"kind": "pubsub", "script": "mark", "filter": {"topic": topic(t)}}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    AppId(app["id"].as_str().unwrap().to_owned())
}

async fn crash_run(backend: Backend) {
    let _one = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    let seed = seed();
    eprintln!("crash {backend:?}: seed {seed} (CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut target = Target::new(TestDatabase::new(backend).await);
    target.start();
    let admin = target
        .server()
        .bootstrap_key()
        .expect("a fresh server prints its bootstrap key");
    let app = setup(&target, &admin).await;

    let mut followers = Vec::new();
    for t in 0..TOPICS {
        followers.push(Follower::start(t, target.port.clone()).await);
    }
    for t in TRIGGERED {
        followers.push(Follower::start(t, target.port.clone()).await);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let acks = Arc::new(AtomicU64::new(0));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            tokio::spawn(publisher(
                p,
                admin.clone(),
                target.port.clone(),
                stop.clone(),
                rng.next(),
                log.clone(),
                acks.clone(),
            ))
        })
        .collect();

    // Kill at random moments, each life having acknowledged a publish first: from a
    // restart to listening, and to the first publish acknowledged.
    let mut kills = Vec::new();
    let mut last_restart = Instant::now();
    let (mut max_listen, mut max_recovery) = (Duration::ZERO, Duration::ZERO);
    let kill_count = kill_count();
    for k in 1..=kill_count {
        let pause = Duration::from_millis(300 + rng.below(1200));
        tokio::time::sleep(pause).await;
        kills.push(target.kill());
        let acked = acks.load(Ordering::SeqCst);
        last_restart = Instant::now();
        target.start();
        max_listen = max_listen.max(last_restart.elapsed());
        while acks.load(Ordering::SeqCst) == acked {
            assert!(
                last_restart.elapsed() < Duration::from_secs(15),
                "no publish acknowledged within 15 s of restart {k}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        max_recovery = max_recovery.max(last_restart.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    let load_ended = Instant::now();
    let attempts = std::mem::take(&mut *log.lock().unwrap());

    let store = target.db.open().await;
    let mut committed = Vec::new();
    for t in 0..TOPICS {
        let rows = history(&store, &app, t).await;
        let last = store
            .get_topic(&app, &TopicName::parse(&topic(t)).unwrap())
            .await
            .unwrap()
            .expect("topic exists")
            .last_seq;
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            (1..=last).collect::<Vec<_>>(),
            "{}: seqs 1..={last}, no gap, none twice",
            topic(t)
        );
        committed.push(rows);
    }

    // The ledger against the database.
    let mut where_is: HashMap<String, Vec<(usize, i64)>> = HashMap::new();
    for (t, rows) in committed.iter().enumerate() {
        for (seq, v) in rows {
            let id = v["id"]
                .as_str()
                .expect("every message has an id")
                .to_owned();
            where_is.entry(id).or_default().push((t, *seq));
        }
    }
    let duplicated = where_is.values().filter(|at| at.len() > 1).count();
    let sent: HashMap<&str, &Attempt> = attempts.iter().map(|a| (a.id.as_str(), a)).collect();
    let phantoms: Vec<_> = where_is
        .keys()
        .filter(|id| !sent.contains_key(id.as_str()))
        .collect();
    let (mut acked, mut unanswered, mut unanswered_committed) = (0, 0, 0);
    let mut lost = Vec::new();
    let mut refused = Vec::new();
    for a in &attempts {
        let stored = where_is
            .get(&a.id)
            .map(|at| (at[0].1, &committed[at[0].0][&at[0].1]));
        match &a.outcome {
            Outcome::Acked(seq) => {
                acked += 1;
                if committed[a.topic].get(seq) != Some(&a.payload) {
                    lost.push(format!("{} acknowledged as {}/{seq}", a.id, topic(a.topic)));
                }
            }
            Outcome::Unanswered => {
                unanswered += 1;
                if let Some((_, v)) = stored {
                    assert_eq!(v, &a.payload, "{}: committed as sent", a.id);
                    unanswered_committed += 1;
                }
            }
            Outcome::Refused(status, body) => {
                refused.push(format!("{status} {body} (committed: {})", stored.is_some()))
            }
        }
    }
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(duplicated, 0, "committed twice: {where_is:?}");
    assert!(phantoms.is_empty(), "committed, never sent: {phantoms:?}");
    assert!(
        refused.is_empty(),
        "a publish is answered 201 or not at all: {refused:?}"
    );
    // Sanity only (each life acknowledged a publish before it was killed): how much more
    // depends on how busy the machine is.
    assert!(
        acked > kill_count && unanswered > 0,
        "the kills came under load: {acked} acknowledged, {unanswered} unanswered"
    );

    // Subscribers: every committed message, once each, in order.
    let deadline = Instant::now() + Duration::from_secs(20);
    for f in &followers {
        let want = committed[f.topic].len();
        while f.count() < want {
            assert!(
                Instant::now() < deadline,
                "a subscriber of {} has {} of {want} messages 20 s after the load stopped",
                topic(f.topic),
                f.count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let delivered_in = load_ended.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await; // anything extra shows up
    let mut resumes = 0;
    for f in &followers {
        let got = f.got.lock().unwrap();
        let want: Vec<(i64, String)> = committed[f.topic]
            .iter()
            .map(|(seq, v)| (*seq, v["id"].as_str().unwrap().to_owned()))
            .collect();
        if got.frames != want {
            let first_bad = got
                .frames
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.frames.len()));
            panic!(
                "a subscriber of {} got {} frames for {} committed messages; first difference \
                 at index {first_bad}: got {:?}, committed {:?}",
                topic(f.topic),
                got.frames.len(),
                want.len(),
                got.frames.get(first_bad),
                want.get(first_bad)
            );
        }
        assert!(
            got.connections.len() > kill_count,
            "{}: resumed after every kill",
            topic(f.topic)
        );
        resumes += got.connections.len() - 1;
    }

    // Triggers: the outbox drains within the lease (and a margin) of the last restart.
    let drain_limit = Duration::from_millis(LEASE_MS) + Duration::from_secs(15);
    loop {
        let rows = outbox_rows(&store, &app).await;
        if rows.is_empty() {
            break;
        }
        assert!(
            last_restart.elapsed() < drain_limit,
            "{} outbox rows stranded {drain_limit:?} after the last restart: {:?}",
            rows.len(),
            &rows[..rows.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = last_restart.elapsed();
    let kv = |prefix: &'static str| {
        let store = store.clone();
        let app = app.clone();
        async move {
            store
                .kv_list(&app, prefix, u32::MAX, now_ms())
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect::<HashMap<_, _>>()
        }
    };
    let done = kv("done:").await;
    let runs = kv("run:").await;
    let mut triggered = 0;
    for t in TRIGGERED {
        for (seq, v) in &committed[t] {
            triggered += 1;
            assert_eq!(
                done.get(&format!("done:{}:{seq}", topic(t))),
                Some(&v["id"]),
                "{}/{seq}: its trigger ran",
                topic(t)
            );
        }
    }
    assert_eq!(done.len(), triggered, "no mark without a committed message");
    // Per message, its deliveries (one outbox row each) and how often each ran.
    let mut deliveries: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for (key, msg) in &runs {
        let rest = key.strip_prefix("run:").unwrap();
        let (delivery, _attempt) = rest.rsplit_once(':').unwrap();
        *deliveries
            .entry(msg.as_str().unwrap().to_owned())
            .or_default()
            .entry(delivery.to_owned())
            .or_default() += 1;
    }
    assert_eq!(deliveries.len(), triggered, "every triggered message ran");
    for (msg, ds) in &deliveries {
        assert_eq!(ds.len(), 1, "{msg}: one delivery, not {ds:?}");
    }
    let reruns = runs.len() - triggered;

    // Invocation records: a success recorded twice for one delivery needs a kill between.
    let mut records: HashMap<String, Vec<i64>> = HashMap::new();
    let mut before = None;
    loop {
        let page = store.list_invocations(&app, before, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for inv in page {
            assert_eq!(inv.outcome, "ok", "{inv:?}");
            let d = inv
                .delivery_id
                .clone()
                .expect("a trigger run has its delivery");
            records.entry(d).or_default().push(inv.started_at);
        }
    }
    let mut recorded_twice = 0;
    for (d, mut at) in records {
        at.sort_unstable();
        for w in at.windows(2) {
            recorded_twice += 1;
            assert!(
                kills.iter().any(|k| w[0] <= *k && *k <= w[1]),
                "delivery {d} recorded as a success at {} and again at {} with no kill between \
                 (kills at {kills:?})",
                w[0],
                w[1]
            );
        }
    }
    let last_life = target.server.take().expect("server running");
    target.collect_complaints(&last_life);
    let panics: Vec<_> = target
        .complaints
        .iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "the server panicked: {panics:?}");
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for l in &target.complaints {
        let at = l.find(" WARN ").or_else(|| l.find(" ERROR ")).unwrap_or(0);
        *kinds
            .entry(l[at..].chars().take(160).collect())
            .or_default() += 1;
    }
    eprintln!("server warnings and errors: {kinds:#?}");
    let dead = store.list_dead_letters(&app, 100).await.unwrap();
    assert!(dead.is_empty(), "no dead letters: {dead:?}");

    eprintln!(
        "crash {backend:?} seed {seed}: {} publishes tried, {acked} acknowledged, {unanswered} \
         unanswered ({unanswered_committed} of them committed), lost {}, duplicated {duplicated}; \
         {kill_count} kills, restart to listening ≤ {max_listen:?}, restart to first 201 ≤ \
         {max_recovery:?}; {} subscribers ({resumes} resumes) had everything {delivered_in:?} \
         after the load; {triggered} triggered messages, {reruns} re-runs, {recorded_twice} \
         successes recorded twice (across kills), outbox empty {drained:?} after the last \
         restart; run took {:?}",
        attempts.len(),
        lost.len(),
        followers.len(),
        began.elapsed()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_sqlite() {
    crash_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_postgres() {
    crash_run(Backend::Postgres).await;
}
