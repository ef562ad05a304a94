//! Upgrades, on the real binaries: the `picloud` of an earlier commit ([`OLD_REV`], built once
//! and cached outside the clone) runs on a fresh data dir and is given every kind of object
//! through its own API: apps (one with a domain, quotas, runtime limits, a single-page
//! fallback), admin keys, signing secrets (one retired), env values, topics of each kind
//! with history (JSON objects, strings, numbers, arrays), scripts (versions, an endpoint,
//! pubsub, kv, dead-letter and a disabled cron trigger), the deliveries those triggers ran,
//! a dead letter, kv entries, documents, `files::` files and static files. What the old
//! binary answers for all of it is recorded, and two SSE streams follow topics until the old
//! binary stops (SIGTERM).
//!
//! Then the current binary starts on the same data (its migrations run on real rows) and
//! must answer the same JSON for every object, the only differences being the fields this
//! version adds, each named in [`TOPIC_ADDITIONS`] / [`QUOTA_ADDITIONS`] with the value it
//! must have on old rows; the endpoint answers the same; a token minted by the old binary
//! still opens a stream; static files are served with the same bytes and ETags; streams
//! resumed with their last ids get the next message published on the new binary and
//! nothing again; history read from seq 0 is byte-identical; seqs continue; triggers run on
//! the new binary and no old delivery runs twice.
//!
//! Run on SQLite and on PostgreSQL (a fresh database of `PICLOUD_TEST_POSTGRES_URL`).

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use picloud_store::testing::TestDatabase;
use picloud_store::Backend;
use reqwest::Method;
use serde_json::{json, Value};

use support::sse::{Frame, SseStream};
use support::{call, Server, BIN};

/// The commit whose binary the data is written with: the last one before issue 28 changed
/// a migration (0010 is the first migration it does not have). Move it forward at each
/// release to that release's commit, so that the test upgrades from what users run; then
/// drop from `TOPIC_ADDITIONS`/`QUOTA_ADDITIONS` what the old version already answers
/// (they are only checked where the old answer lacks them).
const OLD_REV: &str = "236980c94e7bc1eebfbdd92bcd5772dd33a31bf7";

/// Fields the current version adds to a topic, with their value on a topic written before.
const TOPIC_ADDITIONS: &[(&str, Value)] = &[
    ("client_publish", Value::Bool(false)),
    ("presence", Value::Bool(false)),
    ("client_event_limit", Value::Null),
];

/// Fields the current version adds to both halves (`overrides`, `effective`) of an app's
/// quotas: no override on old rows, so the effective value is the default.
const QUOTA_ADDITIONS: &[(&str, Option<u64>)] = &[
    ("client_events_per_sec", Some(10)),
    ("presence_per_sec", Some(5)),
];

const APP: &str = "upgraded";
const HOST: &str = "upgraded.localhost";
const DOMAIN: &str = "upgraded.example.com";

/// Payloads published to `events` on the old binary, with odd spacing and number forms
/// (`2.50`, `1e3`): the new binary must stream the same bytes as the old one did.
const EVENTS: &[&str] = &[
    r#"{"n": 1, "text": "héllo ✓", "ok": true}"#,
    r#""a plain string""#,
    r#"42"#,
    r#"[1, 2.50, {"a": null}, "x"]"#,
    r#"{"nested": {"deep": [true, false, 1e3]}, "neg": -7}"#,
];

const ORDERS: usize = 3;

// ---------------------------------------------------------------------------------------
// The old binary: built once per commit, cached in $HOME/.cache/picloud/upgrade-<rev>/.
// ---------------------------------------------------------------------------------------

/// The old commit's `picloud`, building it if no earlier run did.
fn old_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_old_binary).clone()
}

fn build_old_binary() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is needed for the build cache");
    let dir = PathBuf::from(home)
        .join(".cache/picloud")
        .join(format!("upgrade-{OLD_REV}"));
    let bin = dir.join("picloud");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(&dir).unwrap();
    // Another test process may be building it: wait for it (flock, released on exit).
    let lock = File::create(dir.join("lock")).unwrap();
    lock.lock().expect("lock the build cache");
    if bin.exists() {
        return bin;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .status()
            .expect("git is required to build the old binary")
    };
    let commit = format!("{OLD_REV}^{{commit}}");
    if !git(&["cat-file", "-e", &commit]).success() {
        // A shallow or partial clone: ask its remote for the commit.
        let fetched = git(&["fetch", "--quiet", "origin", OLD_REV]).success();
        assert!(
            fetched && git(&["cat-file", "-e", &commit]).success(),
            "the upgrade test needs commit {OLD_REV} (OLD_REV in tests/upgrade.rs) and this \
             clone lacks it; `git fetch origin {OLD_REV}` (or an unshallow clone) fixes it"
        );
    }
    let src = dir.join("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["archive", "--format=tar", OLD_REV])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&src)
        .stdin(archive.stdout.take().unwrap())
        .status()
        .expect("tar");
    assert!(
        archive.wait().unwrap().success() && untar.success(),
        "git archive {OLD_REV}"
    );
    let target = dir.join("target");
    eprintln!(
        "building picloud at {OLD_REV} (once; cached in {}): several minutes",
        dir.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let built = Command::new(cargo)
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "-p", "picloud", "--locked"])
        .status()
        .expect("run cargo");
    assert!(built.success(), "building picloud at {OLD_REV} failed");
    let tmp = dir.join("picloud.tmp");
    std::fs::copy(target.join("debug/picloud"), &tmp).unwrap();
    std::fs::rename(&tmp, &bin).unwrap();
    // Only the binary is reused: the sources and the build tree (gigabytes) go.
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&target);
    bin
}

/// `bin serve` on `db` (its data dir; its `DATABASE_URL` for PostgreSQL), listening.
fn start(bin: &Path, db: &TestDatabase) -> Server {
    let mut env = vec![("RUST_LOG", "info")];
    if let Some(url) = &db.database_url {
        env.push(("DATABASE_URL", url.as_str()));
    }
    Server::start_bin(bin, &[], db.data_dir(), &env)
}

// ---------------------------------------------------------------------------------------
// HTTP and SSE helpers.
// ---------------------------------------------------------------------------------------

/// An admin request that must answer `want`; its JSON body.
async fn admin(
    s: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let (status, got) = call(method.clone(), &s.url(path), "localhost", Some(key), body).await;
    assert_eq!(status, want, "{method} {path}: {got}");
    got
}

async fn get(s: &Server, key: &str, path: &str) -> Value {
    admin(s, key, Method::GET, path, None, 200).await
}

/// A raw request: (status, named headers, body bytes).
async fn raw(
    s: &Server,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Vec<Option<String>>, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .request(method, s.url(path))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let named = ["content-type", "etag", "content-encoding", "cache-control"]
        .iter()
        .map(|h| {
            res.headers()
                .get(*h)
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    (status, named, res.bytes().await.unwrap().to_vec())
}

/// Publishes `body` (JSON text, sent as is) to `topic`: its seq.
async fn publish(s: &Server, key: &str, topic: &str, body: &str) -> i64 {
    let res = reqwest::Client::new()
        .post(s.url(&format!("/api/v1/apps/{APP}/topics/{topic}/publish")))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .bearer_auth(key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "publish to {topic}");
    res.json::<Value>().await.unwrap()["seq"].as_i64().unwrap()
}

/// An SSE stream on the app's Host, read frame by frame.
struct Sse(SseStream);

impl Sse {
    /// Opens `/realtime/topics/{topic}`, resuming after `last_id` (header form).
    async fn open(s: &Server, topic: &str, token: Option<&str>, last_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new()
            .get(s.url(&format!("/realtime/topics/{topic}")))
            .header("host", HOST);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "stream of {topic}");
        Self(SseStream::new(res))
    }

    /// The next frame; `None` once the server closed the stream.
    async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(15), self.0.next())
            .await
            .expect("a frame within 15 s")
    }

    /// Frames up to and including the message with `seq`.
    async fn until_seq(&mut self, seq: i64) -> Vec<Frame> {
        let mut got = Vec::new();
        loop {
            let f = self.next().await.expect("stream ended early");
            let done = f.event == "message" && seq_of(&f) == Some(seq);
            got.push(f);
            if done {
                return got;
            }
        }
    }
}

fn seq_of(f: &Frame) -> Option<i64> {
    serde_json::from_str::<Value>(&f.data).ok()?["seq"].as_i64()
}

fn messages(frames: &[Frame]) -> Vec<&Frame> {
    frames.iter().filter(|f| f.event == "message").collect()
}

/// Polls `probe` until it answers `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The objects, and what the servers answer about them.
// ---------------------------------------------------------------------------------------

/// The endpoint's script: everything a script can read, as JSON.
const STATE_V1: &str = r#"#{ version: 1 }"#;
const STATE_V2: &str = r#"
#{
    greeting: env::get("GREETING"),
    secret: env::get("API_TOKEN"),
    count: kv::get("count"),
    profile: kv::get("profile"),
    kv: kv::list(""),
    notes: docs::find("notes", #{}),
    audit: docs::find("audit", #{}),
    files: files::list(""),
    note: files::get_text("notes/a.txt"),
    order_file: files::get_text("orders/1.txt"),
}
"#;
const SEED: &str = r#"
kv::set("count", 41);
kv::set("profile", #{ name: "Ada", tags: ["x", "y"], score: 1.5 });
kv::set("user:ada", #{ admin: true });
docs::insert("notes", #{ title: "first", body: "written by the old binary" });
files::put("notes/a.txt", "file bytes ✓ 😀");
#{ status: 201, body: "seeded" }
"#;
const ON_ORDER: &str = r#"
kv::set(`order:${event.seq}`, event.message);
files::put(`orders/${event.seq}.txt`, `order ${event.message.id} attempt ${event.attempt}`);
"#;
const ON_USER: &str = r#"docs::insert("audit", #{ key: event.key, op: event.op });"#;
const FAIL: &str = r#"throw "this handler always fails";"#;
const ON_DEAD: &str = r#"
kv::set(`dead:${event.dead_letter_id}`, #{ error: event.error, attempts: event.attempts });
"#;

const INDEX_HTML: &[u8] = b"<!doctype html><title>up</title><p>static, from the old binary\n";

fn app_js() -> Vec<u8> {
    // Text of 256 bytes or more is stored with compressed variants too.
    "console.log('upgrade');\n".repeat(40).into_bytes()
}

/// What a server answers about everything, read through the admin API (and the app's
/// Host for static files).
async fn snapshot(s: &Server, key: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let a = format!("/api/v1/apps/{APP}");
    let mut paths = vec![
        "/api/v1/apps".to_owned(),
        a.clone(),
        "/api/v1/admin-keys".to_owned(),
        format!("{a}/domains"),
        format!("{a}/domains/{DOMAIN}"),
        format!("{a}/quotas"),
        format!("{a}/runtime"),
        format!("{a}/env"),
        format!("{a}/secrets"),
        format!("{a}/topics"),
        format!("{a}/scripts"),
        format!("{a}/routes"),
        format!("{a}/triggers"),
        format!("{a}/dead-letters"),
        format!("{a}/dead-letters/count"),
        format!("{a}/logs?limit=500"),
        format!("{a}/static"),
        "/api/v1/apps/other".to_owned(),
        "/api/v1/apps/other/topics".to_owned(),
    ];
    for t in ["events", "orders", "jobs"] {
        paths.push(format!("{a}/topics/{t}"));
        paths.push(format!("{a}/topics/{t}/messages?limit=500"));
    }
    for name in ["state", "seed", "on_order", "on_user", "fail", "on_dead"] {
        paths.push(format!("{a}/scripts/{name}"));
    }
    for p in paths {
        let v = get(s, key, &p).await;
        out.push((p, v));
    }
    let triggers = out
        .iter()
        .find(|(p, _)| p.ends_with("/triggers"))
        .unwrap()
        .1
        .clone();
    for t in triggers["triggers"].as_array().unwrap() {
        let p = format!("{a}/triggers/{}", t["id"].as_str().unwrap());
        let v = get(s, key, &p).await;
        out.push((p, v));
    }
    for file in ["index.html", "app.js"] {
        let p = format!("{a}/static/{file}");
        let (status, _, bytes) = raw(
            s,
            Method::GET,
            "localhost",
            &p,
            &[("authorization", &format!("Bearer {key}"))],
            None,
        )
        .await;
        assert_eq!(status, 200, "{p}");
        out.push((p, json!(bytes)));
    }
    // Served on the app's Host and its domain, plain and compressed.
    for (host, path, enc) in [
        (HOST, "/", None),
        (DOMAIN, "/index.html", None),
        (HOST, "/app.js", None),
        (HOST, "/app.js", Some("gzip")),
        (HOST, "/app.js", Some("br")),
    ] {
        let headers: Vec<(&str, &str)> = enc.map(|e| ("accept-encoding", e)).into_iter().collect();
        let (status, named, bytes) = raw(s, Method::GET, host, path, &headers, None).await;
        assert_eq!(status, 200, "{host}{path}");
        out.push((
            format!("static {host}{path} {enc:?}"),
            json!({"headers": named, "bytes": bytes}),
        ));
    }
    out
}

/// Every object, created through the old binary's API. Returns the reader key.
async fn populate(s: &Server, key: &str) -> String {
    const PATCH: Method = Method::PATCH;
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    let a = format!("/api/v1/apps/{APP}");
    admin(
        s,
        key,
        POST,
        "/api/v1/apps",
        Some(json!({"slug": APP, "name": "Upgrade target"})),
        201,
    )
    .await;
    admin(
        s,
        key,
        POST,
        "/api/v1/apps",
        Some(json!({"slug": "other"})),
        201,
    )
    .await;
    admin(
        s,
        key,
        PATCH,
        &a,
        Some(json!({"max_token_ttl_secs": 86400, "static_spa": true})),
        200,
    )
    .await;
    admin(
        s,
        key,
        POST,
        &format!("{a}/domains"),
        Some(json!({"host": DOMAIN})),
        201,
    )
    .await;
    admin(
        s,
        key,
        PUT,
        &format!("{a}/quotas"),
        Some(json!({"connections": 50, "topics_per_connection": 7, "publishes_per_sec": 900, "ephemeral_per_sec": 300})),
        200,
    )
    .await;
    admin(
        s,
        key,
        PUT,
        &format!("{a}/runtime"),
        Some(json!({"limits": {"max_operations": 2_000_000, "timeout_ms": 3000}, "max_concurrency": 4})),
        200,
    )
    .await;
    let reader = admin(
        s,
        key,
        POST,
        "/api/v1/admin-keys",
        Some(json!({"capabilities": ["AppRead"], "app": APP, "label": "reader"})),
        201,
    )
    .await;
    admin(
        s,
        key,
        POST,
        "/api/v1/admin-keys",
        Some(json!({"capabilities": ["InstanceAdmin"], "label": "ops"})),
        201,
    )
    .await;
    let retired = admin(s, key, POST, &format!("{a}/secrets/rotate"), None, 201).await;
    admin(s, key, POST, &format!("{a}/secrets/rotate"), None, 201).await;
    let kid = retired["kid"].as_str().unwrap();
    admin(
        s,
        key,
        POST,
        &format!("{a}/secrets/{kid}/retire"),
        None,
        204,
    )
    .await;
    for (name, value) in [("GREETING", "hello from before"), ("API_TOKEN", "s3cr3t-✓")] {
        admin(
            s,
            key,
            PUT,
            &format!("{a}/env/{name}"),
            Some(json!({"value": value})),
            204,
        )
        .await;
    }
    for topic in [
        json!({"name": "events", "description": "public, with history", "external_subscribable": true, "auth_mode": "public"}),
        json!({"name": "orders", "external_subscribable": true, "auth_mode": "token", "retention": {"max_messages": 1000, "max_age_secs": 604800}}),
        json!({"name": "jobs", "retention": {"max_messages": null, "max_age_secs": 3600}}),
    ] {
        admin(s, key, POST, &format!("{a}/topics"), Some(topic), 201).await;
    }
    admin(
        s,
        key,
        POST,
        "/api/v1/apps/other/topics",
        Some(json!({"name": "misc"})),
        201,
    )
    .await;
    for (name, source) in [
        ("state", STATE_V1),
        ("state", STATE_V2),
        ("seed", SEED),
        ("on_order", ON_ORDER),
        ("on_user", ON_USER),
        ("fail", FAIL),
        ("on_dead", ON_DEAD),
    ] {
        admin(
            s,
            key,
            POST,
            &format!("{a}/scripts"),
            Some(json!({"name": name, "source": source})),
            201,
        )
        .await;
    }
    for (method, path, script) in [("GET", "/state", "state"), ("POST", "/seed", "seed")] {
        admin(
            s,
            key,
            POST,
            &format!("{a}/routes"),
            Some(json!({"method": method, "path": path, "script": script})),
            201,
        )
        .await;
    }
    for trigger in [
        json!({"kind": "pubsub", "script": "on_order", "filter": {"topic": "orders"}}),
        json!({"kind": "kv", "script": "on_user", "filter": {"prefix": "user:"}}),
        json!({"kind": "pubsub", "script": "fail", "filter": {"topic": "jobs"},
               "retry": {"max_attempts": 1, "base_delay_ms": 1000, "max_delay_ms": 1000}}),
        json!({"kind": "dead_letter", "script": "on_dead", "filter": {}}),
        json!({"kind": "cron", "script": "on_order", "filter": {"schedule": "0 0 1 1 *"}, "enabled": false}),
    ] {
        admin(s, key, POST, &format!("{a}/triggers"), Some(trigger), 201).await;
    }
    for (file, bytes) in [("index.html", INDEX_HTML.to_vec()), ("app.js", app_js())] {
        let (status, _, body) = raw(
            s,
            PUT,
            "localhost",
            &format!("{a}/static/{file}"),
            &[("authorization", &format!("Bearer {key}"))],
            Some(bytes),
        )
        .await;
        assert_eq!(status, 201, "{file}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _, body) = raw(s, POST, HOST, "/seed", &[], None).await;
    assert_eq!((status, body.as_slice()), (201, &b"seeded"[..]));
    for (i, payload) in EVENTS.iter().enumerate() {
        assert_eq!(publish(s, key, "events", payload).await, i as i64 + 1);
    }
    for i in 1..=ORDERS {
        let body = json!({"id": format!("o{i}"), "total": i * 100}).to_string();
        assert_eq!(publish(s, key, "orders", &body).await, i as i64);
    }
    assert_eq!(publish(s, key, "jobs", r#"{"job": "doomed"}"#).await, 1);
    admin(
        s,
        key,
        POST,
        "/api/v1/apps/other/topics/misc/publish",
        Some(json!("other app")),
        201,
    )
    .await;
    reader["key"].as_str().unwrap().to_owned()
}

/// The app's invocation records, newest first.
async fn invocations(s: &Server, key: &str) -> Vec<Value> {
    get(s, key, &format!("/api/v1/apps/{APP}/logs?limit=500")).await["invocations"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the app has `n` invocation records (a run's record is written just after
/// its effects commit).
async fn settle(s: &Server, key: &str, n: usize) {
    eventually(&format!("{n} invocation records"), || async {
        let got = invocations(s, key).await.len();
        assert!(got <= n, "{got} invocations, expected {n}");
        (got == n).then_some(())
    })
    .await;
}

/// Removes from `new` the fields the current version adds where `old` lacks them,
/// asserting each has its documented value.
fn drop_additions(what: &str, old: &Value, new: &mut Value, added: &[(&str, Value)]) {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object_mut()) else {
        panic!("{what}: not objects: {old} / {new}");
    };
    for (field, value) in added {
        if !o.contains_key(*field) {
            let got = n.remove(*field);
            assert_eq!(got.as_ref(), Some(value), "{what}: new field {field}");
        }
    }
}

fn topic_additions(what: &str, old: &Value, new: &mut Value) {
    drop_additions(what, old, new, TOPIC_ADDITIONS);
    // A count over the last 60 s of wall clock: time passes between the two reads.
    let (o, n) = (
        &old["stats"]["publishes_last_minute"],
        &mut new["stats"]["publishes_last_minute"],
    );
    assert!(
        n.as_i64().unwrap() <= o.as_i64().unwrap(),
        "{what}: {n} > {o}"
    );
    *n = o.clone();
}

/// `new` without the fields this version adds (checked), to compare with `old`.
fn normalise(path: &str, old: &Value, new: &Value, bootstrap_id: &str) -> Value {
    let mut new = new.clone();
    if path.ends_with("/quotas") {
        for half in ["overrides", "effective"] {
            let added: Vec<(&str, Value)> = QUOTA_ADDITIONS
                .iter()
                .map(|(f, d)| {
                    let v = match half {
                        "overrides" => Value::Null,
                        _ => json!(d),
                    };
                    (*f, v)
                })
                .collect();
            drop_additions(
                &format!("{path} {half}"),
                &old[half],
                &mut new[half],
                &added,
            );
        }
    } else if path.ends_with("/topics") {
        let (o, n) = (
            old["topics"].as_array().unwrap(),
            new["topics"].as_array_mut().unwrap(),
        );
        assert_eq!(o.len(), n.len(), "{path}");
        for (o, n) in o.iter().zip(n.iter_mut()) {
            topic_additions(path, o, n);
        }
    } else if path.contains("/topics/") && !path.contains("/messages") {
        topic_additions(path, old, &mut new);
    } else if path == "/api/v1/admin-keys" {
        // The key this test authenticates with may record a later use; nothing else moves.
        let find = |v: &Value| {
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .position(|k| k["id"] == bootstrap_id)
                .expect("the bootstrap key is listed")
        };
        let (i, j) = (find(old), find(&new));
        let used =
            |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().expect("used")).unwrap();
        let (was, now) = (
            &old["keys"][i]["last_used_at"],
            &new["keys"][j]["last_used_at"],
        );
        assert!(
            used(now) >= used(was),
            "last_used_at went back: {was} → {now}"
        );
        new["keys"][j]["last_used_at"] = was.clone();
    }
    new
}

// ---------------------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------------------

async fn upgrade(backend: Backend) {
    let old_bin = old_binary();
    let db = TestDatabase::new(backend).await;
    let t0 = Instant::now();

    // The old binary: everything created, then read back.
    let old = start(&old_bin, &db);
    let key = old
        .bootstrap_key()
        .expect("the old binary bootstraps a key");
    let me = get(&old, &key, "/api/v1/me").await;
    let bootstrap_id = me["id"].as_str().unwrap().to_owned();
    let reader = populate(&old, &key).await;
    // seed + on_user + ORDERS × on_order + fail + on_dead.
    let old_runs = 1 + 1 + ORDERS + 1 + 1;
    settle(&old, &key, old_runs).await;
    let dead = get(
        &old,
        &key,
        &format!("/api/v1/apps/{APP}/dead-letters/count"),
    )
    .await;
    assert_eq!(dead, json!({"waiting": 1}));
    let (status, _, state_old) = raw(&old, Method::GET, HOST, "/state", &[], None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&state_old));
    let state_old: Value = serde_json::from_slice(&state_old).unwrap();
    assert_eq!(state_old["secret"], "s3cr3t-✓", "{state_old}");
    assert_eq!(state_old["count"], 41, "{state_old}");
    assert_eq!(state_old["order_file"], "order o1 attempt 1", "{state_old}");
    assert_eq!(
        state_old["audit"].as_array().unwrap().len(),
        1,
        "{state_old}"
    );
    let dead_keys = state_old["kv"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["key"].as_str().unwrap().starts_with("dead:"))
        .count();
    assert_eq!(dead_keys, 1, "{state_old}");
    settle(&old, &key, old_runs + 1).await;
    let before = snapshot(&old, &key).await;

    // Streams that follow the old binary until it stops.
    let token = admin(
        &old,
        &key,
        Method::POST,
        &format!("/api/v1/apps/{APP}/tokens"),
        Some(json!({"topics": ["orders"], "ttl_secs": 3600, "subject": "u1"})),
        201,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let last_event = EVENTS.len() as i64;
    let mut events = Sse::open(&old, "events", None, Some("0")).await;
    let history_old = events.until_seq(last_event).await;
    let history_old: Vec<Frame> = messages(&history_old).into_iter().cloned().collect();
    assert_eq!(
        history_old.iter().map(seq_of).collect::<Vec<_>>(),
        (1..=last_event).map(Some).collect::<Vec<_>>()
    );
    for (f, sent) in history_old.iter().zip(EVENTS) {
        let sent: Value = serde_json::from_str(sent).unwrap();
        let got: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(got["message"], sent, "{}", f.data);
    }
    let mut orders = Sse::open(&old, "orders", Some(&token), Some("0")).await;
    orders.until_seq(ORDERS as i64).await;

    let (status, _, _) = old.stop("TERM");
    assert!(status.success(), "the old binary's SIGTERM exit: {status}");
    for (name, stream) in [("events", &mut events), ("orders", &mut orders)] {
        let mut tail = Vec::new();
        while let Some(f) = stream.next().await {
            tail.push(f);
        }
        assert_eq!(messages(&tail).len(), 0, "{name}: {tail:?}");
        let last = tail.last().expect("a final frame");
        assert_eq!(
            (last.event.as_str(), last.data.as_str()),
            ("error", r#"{"code":"server_shutdown"}"#),
            "{name}"
        );
    }
    let old_secs = t0.elapsed().as_secs_f64();

    // The current binary on the same data.
    let t1 = Instant::now();
    let new = start(Path::new(BIN), &db);
    let ready = eventually("/readyz 200", || async {
        let (status, body) = call(Method::GET, &new.url("/readyz"), "localhost", None, None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(ready["storage"], "ok");
    let startup = t1.elapsed();
    let after = snapshot(&new, &key).await;
    // (The admin key list compared below also shows no key was added.)
    let printed = new.stdout.lock().unwrap().clone();
    assert!(
        !printed.iter().any(|l| l.starts_with("pk_")),
        "a bootstrap key on existing data: {printed:?}"
    );
    assert_eq!(before.len(), after.len());
    let mut compared = 0;
    for ((path, was), (path2, now)) in before.iter().zip(&after) {
        assert_eq!(path, path2);
        let now = normalise(path, was, now, &bootstrap_id);
        assert!(
            *was == now,
            "{path} reads back differently after the upgrade:\nold: {was:#}\nnew: {now:#}"
        );
        compared += 1;
    }
    let (status, _, state_new) = raw(&new, Method::GET, HOST, "/state", &[], None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&state_new));
    let state_new: Value = serde_json::from_slice(&state_new).unwrap();
    assert_eq!(state_new, state_old, "the endpoint answers differently");

    // Keys made by the old binary: still valid, still bounded by their capabilities.
    let app = get(&new, &reader, &format!("/api/v1/apps/{APP}")).await;
    assert_eq!(
        app,
        before
            .iter()
            .find(|(p, _)| *p == format!("/api/v1/apps/{APP}"))
            .unwrap()
            .1
    );
    admin(
        &new,
        &reader,
        Method::POST,
        &format!("/api/v1/apps/{APP}/topics"),
        Some(json!({"name": "nope"})),
        403,
    )
    .await;

    // Streams resume from their last ids: the next message, nothing again.
    let mut events = Sse::open(&new, "events", None, Some(&last_event.to_string())).await;
    let mut orders = Sse::open(&new, "orders", Some(&token), Some(&ORDERS.to_string())).await;
    for (stream, at) in [(&mut events, last_event), (&mut orders, ORDERS as i64)] {
        let f = stream.next().await.unwrap();
        assert_eq!((f.event.as_str(), f.id), ("position", Some(at.to_string())));
    }
    let next_event = publish(&new, &key, "events", r#"{"after": "upgrade"}"#).await;
    assert_eq!(next_event, last_event + 1, "seqs continue");
    let next_order = publish(&new, &key, "orders", r#"{"id": "o-new", "total": 1}"#).await;
    assert_eq!(next_order, ORDERS as i64 + 1, "seqs continue");
    for (name, stream, seq) in [
        ("events", &mut events, next_event),
        ("orders", &mut orders, next_order),
    ] {
        let got = stream.until_seq(seq).await;
        let seqs: Vec<_> = messages(&got).iter().map(|f| seq_of(f)).collect();
        assert_eq!(seqs, vec![Some(seq)], "{name}: {got:?}");
    }
    // History from the start: what the old binary streamed, byte for byte, then the new one.
    let mut replay = Sse::open(&new, "events", None, Some("0")).await;
    let replayed = replay.until_seq(next_event).await;
    let replayed: Vec<&Frame> = messages(&replayed);
    assert_eq!(replayed.len(), EVENTS.len() + 1);
    for (o, n) in history_old.iter().zip(&replayed) {
        assert_eq!(o, *n, "a message streams differently after the upgrade");
    }

    // Triggers run on the new binary; no delivery of the old one runs again.
    // The old runs and the old binary's /state, the new binary's /state, the new order's
    // handler.
    let expected = old_runs + 3;
    let runs = eventually("the new order's trigger run", || async {
        let runs = invocations(&new, &key).await;
        (runs.len() >= expected).then_some(runs)
    })
    .await;
    // Long enough for a stray re-run of an old delivery to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs_now = invocations(&new, &key).await;
    assert_eq!(runs_now.len(), expected, "unexpected runs: {runs_now:#?}");
    assert_eq!(runs, runs_now);
    let newest = &runs_now[0];
    assert_eq!(
        (newest["script"].as_str(), newest["outcome"].as_str()),
        (Some("on_order"), Some("ok")),
        "{newest}"
    );
    let (status, _, state) = raw(&new, Method::GET, HOST, "/state", &[], None).await;
    assert_eq!(status, 200);
    let state: Value = serde_json::from_slice(&state).unwrap();
    let order = state["kv"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == format!("order:{next_order}"))
        .unwrap_or_else(|| panic!("order:{next_order} in {state}"));
    assert_eq!(order["value"], json!({"id": "o-new", "total": 1}));

    let (status, _, _) = new.stop("TERM");
    assert!(status.success(), "the new binary's SIGTERM exit: {status}");
    eprintln!(
        "{backend:?}: old binary {old_secs:.1} s, new binary up in {:.2} s, {compared} answers \
         compared, whole upgrade {:.1} s",
        startup.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn upgrade_on_sqlite_reads_back_everything_and_resumes_streams() {
    upgrade(Backend::Sqlite).await;
}

#[tokio::test]
async fn upgrade_on_postgres_reads_back_everything_and_resumes_streams() {
    upgrade(Backend::Postgres).await;
}
