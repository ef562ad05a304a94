//! Soak (issue 28, item 5): the real binary under a mixed workload for `PICLOUD_SOAK_SECS`
//! seconds (default 120): durable and ephemeral publishes, a pubsub trigger on every
//! durable message, script endpoint calls, SSE and WebSocket subscribers connecting and
//! leaving, subscriber tokens minted, used and refreshed on open WebSocket connections, and
//! one SSE follower for the whole run. The server's RSS (`/proc/<pid>/status` VmRSS), open
//! fds (`/proc/<pid>/fd`) and live tokio tasks (`picloud_runtime_alive_tasks`) are sampled
//! 40 times over the run and printed as a table.
//!
//! The flatness rule: the first 40 % of the run is warm-up — SQLite's page caches (up to
//! 16 MiB per pooled connection) and the allocator fill during the first minute of the
//! 2-minute run (measured: +20 MiB by 90 s, then flat; over 30 minutes +6 %). The *level* is
//! the median of the samples taken in 40–60 % of the run, the *end* the median of those in
//! its last 20 %. A slow leak is the 30-minute run's to find (HANDBACK.md). For
//! each figure, |end − level| ≤ 10 % of the level; for fds and tasks, which count the
//! workload's connections in flight at the moment of the sample, at least ± 10 as well.
//!
//! Also asserted: no 5xx and no unexpected status anywhere; the follower received every
//! acknowledged message exactly once, in seq order, with its payload; the trigger ran for
//! each of the last 200 durable messages.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::{admin_post, open_fds as fds, rss_kib, sample, scrape, Server};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SAMPLES: u32 = 40;
/// Trigger results are kept under `done:<seq % MARKS>`: a bounded key set.
const MARKS: i64 = 200;

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    tasks: u64,
}

/// What went wrong in the workload, kept (the first 50) for the final assertion.
#[derive(Default)]
struct Problems {
    list: Mutex<Vec<String>>,
    count: AtomicU64,
}

impl Problems {
    fn add(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut l = self.list.lock().unwrap();
        if l.len() < 50 {
            l.push(what);
        }
    }
}

#[derive(Default)]
struct Counts {
    durable: AtomicU64,
    ephemeral: AtomicU64,
    script_calls: AtomicU64,
    sse_connects: AtomicU64,
    ws_connects: AtomicU64,
    tokens: AtomicU64,
    refreshes: AtomicU64,
}

struct Ctx {
    port: u16,
    key: String,
    stop: AtomicBool,
    problems: Problems,
    counts: Counts,
    /// (seq, id) of every acknowledged durable publish.
    acked: Mutex<Vec<(i64, String)>>,
}

impl Ctx {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    async fn mint(&self, client: &reqwest::Client, topics: &[&str]) -> Option<String> {
        let res = client
            .post(self.url("/api/v1/apps/soak/tokens"))
            .header("host", "localhost")
            .bearer_auth(&self.key)
            .json(&json!({"topics": topics, "ttl_secs": 60}))
            .send()
            .await;
        match res {
            Ok(r) if r.status() == 201 || r.status() == 200 => {
                self.counts.tokens.fetch_add(1, Ordering::Relaxed);
                let v: Value = r.json().await.unwrap();
                Some(v["token"].as_str().unwrap().to_owned())
            }
            Ok(r) => {
                self.problems.add(format!("mint: {}", r.status()));
                None
            }
            Err(e) => {
                self.problems.add(format!("mint: {e}"));
                None
            }
        }
    }
}

async fn publisher(ctx: Arc<Ctx>, tag: usize, ephemeral: bool) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut n = 0u64;
    while ctx.running() {
        let (topic, q) = if ephemeral {
            ("e", "?ephemeral=true")
        } else {
            ("d", "")
        };
        let id = format!("p{tag}-{n}");
        let res = client
            .post(ctx.url(&format!("/api/v1/apps/soak/topics/{topic}/publish{q}")))
            .header("host", "localhost")
            .bearer_auth(&ctx.key)
            .json(&json!({"id": id, "pad": "x".repeat(200)}))
            .send()
            .await;
        match res {
            Ok(r) if !ephemeral && r.status() == 201 => {
                let v: Value = r.json().await.unwrap();
                ctx.acked
                    .lock()
                    .unwrap()
                    .push((v["seq"].as_i64().unwrap(), id));
                ctx.counts.durable.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) if ephemeral && r.status() == 202 => {
                ctx.counts.ephemeral.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => ctx.problems.add(format!(
                "publish {topic}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => ctx.problems.add(format!("publish {topic}: {e}")),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn script_caller(ctx: Arc<Ctx>) {
    let client = reqwest::Client::new();
    let mut n = 0u64;
    while ctx.running() {
        let res = client
            .get(ctx.url(&format!("/echo/{n}")))
            .header("host", "soak.localhost")
            .send()
            .await;
        match res {
            Ok(r) if r.status() == 200 => {
                let v: Value = r.json().await.unwrap();
                if v["n"] != json!(n.to_string()) {
                    ctx.problems.add(format!("echo {n}: {v}"));
                }
                ctx.counts.script_calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => ctx.problems.add(format!("echo: {}", r.status())),
            Err(e) => ctx.problems.add(format!("echo: {e}")),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads `res` until a frame whose `event:` is `event` (or 10 s pass).
async fn read_to_event(res: &mut reqwest::Response, event: &str) -> bool {
    let needle = format!("event: {event}\n");
    let mut buf = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !buf.contains(&needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, res.chunk()).await {
            Ok(Ok(Some(c))) => buf.push_str(&String::from_utf8_lossy(&c)),
            _ => return false,
        }
    }
    true
}

/// SSE subscribers that connect, read their `position` frame (and, on the durable topic,
/// resuming a little behind its end, the first message of the catch-up), and leave.
async fn sse_churn(ctx: Arc<Ctx>) {
    let client = reqwest::Client::new();
    let mut n = 0u64;
    while ctx.running() {
        let last = ctx.acked.lock().unwrap().last().map_or(0, |a| a.0);
        let (path, want) = if n.is_multiple_of(2) && last > 5 {
            (
                format!("/realtime/topics/d?last_event_id={}", last - 5),
                "message",
            )
        } else {
            ("/realtime?topic=d&topic=e".to_owned(), "position")
        };
        match client
            .get(ctx.url(&path))
            .header("host", "soak.localhost")
            .send()
            .await
        {
            Ok(mut r) if r.status() == 200 => {
                if !read_to_event(&mut r, want).await {
                    ctx.problems.add(format!("sse {path}: no {want} frame"));
                }
                ctx.counts.sse_connects.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => ctx.problems.add(format!("sse {path}: {}", r.status())),
            Err(e) => ctx.problems.add(format!("sse {path}: {e}")),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Subscribes to the token-mode topic with a fresh token (SSE), then leaves.
async fn token_churn(ctx: Arc<Ctx>) {
    let client = reqwest::Client::new();
    while ctx.running() {
        if let Some(token) = ctx.mint(&client, &["tok"]).await {
            match client
                .get(ctx.url("/realtime/topics/tok"))
                .header("host", "soak.localhost")
                .bearer_auth(&token)
                .send()
                .await
            {
                Ok(mut r) if r.status() == 200 => {
                    if !read_to_event(&mut r, "position").await {
                        ctx.problems.add("token sse: no position".into());
                    }
                    ctx.counts.sse_connects.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => ctx.problems.add(format!("token sse: {}", r.status())),
                Err(e) => ctx.problems.add(format!("token sse: {e}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as JSON (10 s at most).
async fn ws_next(ws: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// The answer to request `id` (frames in between, live messages, are skipped).
async fn ws_request(ws: &mut Socket, frame: Value) -> Option<Value> {
    let id = frame["id"].clone();
    ws.send(Message::text(frame.to_string())).await.ok()?;
    loop {
        let v = ws_next(ws).await?;
        if v["id"] == id {
            return Some(v);
        }
    }
}

/// WebSocket subscribers: connect with a token, subscribe to the token-mode topic and the
/// durable one, refresh the token on the open connection, wait for a live message, leave.
async fn ws_churn(ctx: Arc<Ctx>) {
    let client = reqwest::Client::new();
    while ctx.running() {
        let Some(token) = ctx.mint(&client, &["tok"]).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut req = ctx
            .url(&format!("/realtime/ws?token={token}"))
            .replace("http://", "ws://")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("host", HeaderValue::from_static("soak.localhost"));
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("picloud.v1"),
        );
        let mut ws = match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                ctx.problems.add(format!("ws connect: {e}"));
                continue;
            }
        };
        ctx.counts.ws_connects.fetch_add(1, Ordering::Relaxed);
        let steps = [
            (
                json!({"type": "subscribe", "id": 1, "topic": "tok"}),
                "subscribed",
            ),
            (
                json!({"type": "subscribe", "id": 2, "topic": "d"}),
                "subscribed",
            ),
            (
                json!({"type": "subscribe", "id": 3, "topic": "e"}),
                "subscribed",
            ),
        ];
        let mut ok = true;
        for (frame, want) in steps {
            match ws_request(&mut ws, frame.clone()).await {
                Some(v) if v["type"] == want => {}
                other => {
                    ctx.problems.add(format!("ws {frame}: {other:?}"));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Some(fresh) = ctx.mint(&client, &["tok"]).await {
                match ws_request(&mut ws, json!({"type": "refresh", "id": 4, "token": fresh})).await
                {
                    Some(v) if v["type"] == "ok" => {
                        ctx.counts.refreshes.fetch_add(1, Ordering::Relaxed);
                    }
                    other => ctx.problems.add(format!("ws refresh: {other:?}")),
                }
            }
            // A live message on one of its topics (publishers run all the time). Tokens
            // live 60 s, so `token_expiring` comes first, at once.
            loop {
                match ws_next(&mut ws).await {
                    Some(v) if v["type"] == "message" => break,
                    Some(v) if v["type"] == "token_expiring" => continue,
                    // The publishers stopped with the run while this one waited: no message
                    // was owed to it.
                    None if !ctx.running() => break,
                    other => {
                        ctx.problems.add(format!("ws live message: {other:?}"));
                        break;
                    }
                }
            }
        }
        let _ = ws.close(None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One SSE stream on the durable topic for the whole run: (seq, id) of every message.
async fn follower(ctx: Arc<Ctx>, got: Arc<Mutex<Vec<(i64, String)>>>) {
    let mut res = reqwest::Client::new()
        .get(ctx.url("/realtime/topics/d"))
        .header("host", "soak.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut buf = String::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if !frame.contains("event: message\n") {
                continue;
            }
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            let v: Value = serde_json::from_str(data).unwrap();
            got.lock().unwrap().push((
                v["seq"].as_i64().unwrap(),
                v["message"]["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
}

async fn set_up(server: &Server, key: &str) {
    let setup = [
        ("/api/v1/apps", json!({"slug": "soak"})),
        (
            "/api/v1/apps/soak/topics",
            json!({"name": "d", "external_subscribable": true, "auth_mode": "public",
                   "retention": {"max_messages": 20_000, "max_age_secs": null}}),
        ),
        (
            "/api/v1/apps/soak/topics",
            json!({"name": "e", "external_subscribable": true, "auth_mode": "public"}),
        ),
        (
            "/api/v1/apps/soak/topics",
            json!({"name": "tok", "external_subscribable": true, "auth_mode": "token"}),
        ),
        (
            "/api/v1/apps/soak/scripts",
            json!({"name": "echo", "source": "#{ n: request.params.n }"}),
        ),
        (
            "/api/v1/apps/soak/routes",
            json!({"method": "GET", "path": "/echo/:n", "script": "echo"}),
        ),
        (
            "/api/v1/apps/soak/scripts",
            json!({"name": "mark",
                   "source": format!("kv::set(\"done:\" + (event.seq % {MARKS}), event.seq)")}),
        ),
        (
            "/api/v1/apps/soak/triggers",
            json!({"kind": "pubsub", "script": "mark", "filter": {"topic": "d"}}),
        ),
        (
            "/api/v1/apps/soak/scripts",
            json!({"name": "marks",
                   "source": format!("#{{ seqs: kv::list(\"done:\", {MARKS}).map(|e| e.value) }}")}),
        ),
        (
            "/api/v1/apps/soak/routes",
            json!({"method": "GET", "path": "/marks", "script": "marks"}),
        ),
    ];
    for (path, body) in setup {
        let (status, answer) = admin_post(server, key, path, body).await;
        assert_eq!(status, 201, "{path}: {answer}");
    }
}

/// A sampled figure's name, how to read it from a sample, and its absolute slack.
type Figure = (&'static str, fn(&Sample) -> u64, u64);

fn median(mut v: Vec<u64>) -> u64 {
    assert!(!v.is_empty(), "no samples in a window");
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_workload_stays_flat() {
    let secs: u64 = std::env::var("PICLOUD_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("PICLOUD_SOAK_SECS is a number of seconds"))
        .unwrap_or(120);
    let run = Duration::from_secs(secs);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("RUST_LOG", "info")]);
    let pid = server.child.id();
    let key = server.bootstrap_key().expect("bootstrap key");
    set_up(&server, &key).await;

    let ctx = Arc::new(Ctx {
        port: server.port,
        key: key.clone(),
        stop: AtomicBool::new(false),
        problems: Problems::default(),
        counts: Counts::default(),
        acked: Mutex::new(Vec::new()),
    });
    let got = Arc::new(Mutex::new(Vec::new()));
    let follow = tokio::spawn(follower(ctx.clone(), got.clone()));
    // The follower's stream is open before the first publish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tasks = vec![
        tokio::spawn(publisher(ctx.clone(), 0, false)),
        tokio::spawn(publisher(ctx.clone(), 1, false)),
        tokio::spawn(publisher(ctx.clone(), 2, true)),
        tokio::spawn(script_caller(ctx.clone())),
        tokio::spawn(sse_churn(ctx.clone())),
        tokio::spawn(token_churn(ctx.clone())),
        tokio::spawn(ws_churn(ctx.clone())),
    ];

    let began = Instant::now();
    let every = run / SAMPLES;
    let mut samples = Vec::new();
    for i in 1..=SAMPLES {
        tokio::time::sleep_until((began + every * i).into()).await;
        let metrics = scrape(&server, &key).await;
        samples.push(Sample {
            at: began.elapsed(),
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            tasks: sample(&metrics, "picloud_runtime_alive_tasks") as u64,
        });
        if let Ok(Some(status)) = server.child.try_wait_ref() {
            panic!("the server exited during the soak: {status}");
        }
    }
    ctx.stop.store(true, Ordering::Relaxed);
    for t in tasks.drain(..) {
        t.await.unwrap();
    }

    println!("soak: {secs} s, samples every {every:?}");
    println!(
        "{:>8} {:>10} {:>6} {:>6}",
        "t (s)", "RSS (KiB)", "fds", "tasks"
    );
    for s in &samples {
        println!(
            "{:>8.1} {:>10} {:>6} {:>6}",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.fds,
            s.tasks
        );
    }
    let c = &ctx.counts;
    println!(
        "soak: durable {}, ephemeral {}, script calls {}, SSE connects {}, WS connects {}, \
         tokens minted {}, WS refreshes {}, problems {}",
        c.durable.load(Ordering::Relaxed),
        c.ephemeral.load(Ordering::Relaxed),
        c.script_calls.load(Ordering::Relaxed),
        c.sse_connects.load(Ordering::Relaxed),
        c.ws_connects.load(Ordering::Relaxed),
        c.tokens.load(Ordering::Relaxed),
        c.refreshes.load(Ordering::Relaxed),
        ctx.problems.count.load(Ordering::Relaxed),
    );

    // Nothing went wrong on the way: no 5xx, no unexpected answer, no missing frame.
    let problems = ctx.problems.list.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:#?}");

    // Every acknowledged message reached the follower once, in order.
    let mut acked = ctx.acked.lock().unwrap().clone();
    acked.sort();
    assert_eq!(
        acked.iter().map(|a| a.0).collect::<Vec<_>>(),
        (1..=acked.len() as i64).collect::<Vec<_>>(),
        "acknowledged seqs are contiguous"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < acked.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*got.lock().unwrap(), acked, "the follower's messages");
    follow.abort();

    // The trigger ran for each of the last MARKS messages.
    let last = acked.len() as i64;
    let want: Vec<i64> = ((last - MARKS + 1).max(1)..=last).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = support::call(
            reqwest::Method::GET,
            &server.url("/marks"),
            "soak.localhost",
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let mut seqs: Vec<i64> = body["seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        seqs.sort_unstable();
        if seqs == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the trigger's marks: {seqs:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Flat after warm-up.
    let window = |from: f64, to: f64| -> Vec<Sample> {
        samples
            .iter()
            .filter(|s| {
                let f = s.at.as_secs_f64() / run.as_secs_f64();
                f > from && f <= to + 1e-9
            })
            .copied()
            .collect()
    };
    let (level, end) = (window(0.4, 0.6), window(0.8, 1.0));
    let figures: [Figure; 3] = [
        ("RSS (KiB)", |s| s.rss_kib, 0),
        ("fds", |s| s.fds, 10),
        ("tasks", |s| s.tasks, 10),
    ];
    for (name, get, slack) in figures {
        let l = median(level.iter().map(get).collect());
        let e = median(end.iter().map(get).collect());
        let allowed = (l / 10).max(slack);
        println!("soak: {name}: level {l}, end {e}, allowed ± {allowed}");
        assert!(
            e.abs_diff(l) <= allowed,
            "{name} is not flat: level (median of 40–60 % of the run) {l}, end (median of the \
             last 20 %) {e}, allowed ± {allowed}"
        );
    }
    drop(server);
}

/// `Child::try_wait` needs `&mut`; the server is borrowed elsewhere, so look at /proc.
trait TryWaitRef {
    fn try_wait_ref(&self) -> std::io::Result<Option<String>>;
}

impl TryWaitRef for std::process::Child {
    fn try_wait_ref(&self) -> std::io::Result<Option<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.id()))?;
        // The state follows the command name's closing parenthesis.
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        Ok(matches!(state, Some('Z') | Some('X')).then(|| "exited".to_owned()))
    }
}
