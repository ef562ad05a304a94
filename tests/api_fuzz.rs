//! The admin API under schema fuzzing: [Schemathesis](https://schemathesis.io) (pinned,
//! installed by `scripts/ensure-schemathesis`) reads `/api/v1/openapi.json` from the real
//! `picloud serve` (SQLite) and sends every operation generated requests, valid and
//! invalid, checking every answer against the document: no 5xx, documented status codes,
//! content types, headers and bodies, invalid data refused, valid data accepted (settings
//! and the checks left out, with why, in `tests/fuzz/schemathesis.toml`).
//!
//! Two runs on one server, holding two apps with content (topics with history, a script
//! with a route and a trigger, a kv entry, a secret, an env value, a domain, a bound key):
//! 1. with a key bound to app A, holding every capability a bound key may hold. App B's
//!    state is read through the instance admin key before and after and must be equal,
//!    and the bound key's requests on B's paths must answer 403/404 (a few direct checks,
//!    besides the fuzzer's own: its `DELETE /apps/{app}` is pinned to B).
//! 2. then with the instance admin key, which may change anything; it goes second so that
//!    nothing it does can spoil the isolation comparison.
//!
//! `{app}` is pinned to A's id (an id, since a fuzzed `PATCH` may rename the slug): random
//! slugs would only ever meet 404s. Deleting apps and keys is pinned to a decoy app and a
//! decoy key, since a fuzzer that deletes its own app or key (its stateful phase follows
//! `GET /admin-keys` to `DELETE /admin-keys/{id}`) tests nothing afterwards.
//!
//! `PICLOUD_FUZZ_EXAMPLES` sets the cases per operation and phase (default 10: about
//! 30 s a run on two cores); `PICLOUD_FUZZ_SEED` the seed (default fixed, so the test
//! command is repeatable; a longer run may take any). `PICLOUD_SCHEMATHESIS` names the
//! `st` binary (default: the venv `scripts/ensure-schemathesis` makes).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{admin_post, call, Server};

const DEFAULT_EXAMPLES: u32 = 10;
const DEFAULT_SEED: &str = "28";
/// A run's hard limit: far above the default run's ~30 s, so only a hang reaches it.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// A key bound to one app may hold every capability but `InstanceAdmin`.
const BOUND_CAPABILITIES: [&str; 6] = [
    "AppRead",
    "AppWrite",
    "AppTopicManage",
    "AppPublish",
    "ScriptDeploy",
    "SecretsManage",
];

/// Counts kv visits when its route is called; `peek` reads the count without changing it.
const COUNTER: &str =
    r#"let n = kv::get("visits") ?? 0; n += 1; kv::set("visits", n); #{ visits: n }"#;
const PEEK: &str = r#"#{ visits: kv::get("visits") }"#;

fn schemathesis() -> PathBuf {
    let st = std::env::var_os("PICLOUD_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/picloud/venv-schemathesis/bin/st")
        });
    assert!(
        st.is_file(),
        "schemathesis is required and missing at {}: run scripts/ensure-schemathesis \
         (or set PICLOUD_SCHEMATHESIS to an `st` binary)",
        st.display()
    );
    st
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn ok(server: &Server, key: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, body) = call(
        method.clone(),
        &server.url(path),
        "localhost",
        Some(key),
        body,
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {body}"
    );
    body
}

async fn get(server: &Server, key: &str, path: &str) -> Value {
    ok(server, key, Method::GET, path, None).await
}

/// Creates an app holding one of everything the admin API can make; returns its id.
async fn populate(server: &Server, admin: &str, slug: &str) -> String {
    let (status, app) = admin_post(server, admin, "/api/v1/apps", json!({ "slug": slug })).await;
    assert_eq!(status, 201, "{app}");
    let base = format!("/api/v1/apps/{slug}");
    let post = |path: &str, body: Value| {
        let path = format!("{base}{path}");
        async move { ok(server, admin, Method::POST, &path, Some(body)).await }
    };
    for (topic, count) in [("news", 3), ("jobs", 2)] {
        post(
            "/topics",
            json!({"name": topic, "external_subscribable": true, "auth_mode": "public"}),
        )
        .await;
        for n in 0..count {
            post(&format!("/topics/{topic}/publish"), json!({ "n": n })).await;
        }
    }
    post("/scripts", json!({"name": "counter", "source": COUNTER})).await;
    post("/scripts", json!({"name": "peek", "source": PEEK})).await;
    post(
        "/routes",
        json!({"method": "GET", "path": "/count", "script": "counter"}),
    )
    .await;
    post(
        "/routes",
        json!({"method": "GET", "path": "/peek", "script": "peek"}),
    )
    .await;
    post(
        "/triggers",
        json!({"kind": "pubsub", "script": "counter", "filter": {"topic": "jobs"}}),
    )
    .await;
    post("/secrets/rotate", json!({})).await;
    post(
        "/domains",
        json!({ "host": format!("{slug}.example.test") }),
    )
    .await;
    ok(
        server,
        admin,
        Method::PUT,
        &format!("{base}/env/GREETING"),
        Some(json!({"value": "hello"})),
    )
    .await;
    let (status, _) = call(
        Method::POST,
        &server.url("/api/v1/admin-keys"),
        "localhost",
        Some(admin),
        Some(json!({"capabilities": ["AppRead"], "app": slug, "label": format!("{slug} reader")})),
    )
    .await;
    assert_eq!(status, 201);
    // The kv entry, through the data plane: one visit.
    assert_eq!(
        data_plane(server, slug, "/count").await,
        json!({"visits": 1})
    );
    app["id"].as_str().unwrap().to_owned()
}

async fn data_plane(server: &Server, slug: &str, path: &str) -> Value {
    let (status, body) = call(
        Method::GET,
        &server.url(path),
        &format!("{slug}.localhost"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{slug} {path}: {body}");
    body
}

/// Drops what changes by itself (live counters, a key's last use) from a snapshot.
fn without_live_fields(mut v: Value) -> Value {
    match &mut v {
        Value::Object(map) => {
            map.remove("stats");
            map.remove("last_used_at");
            for (_, child) in map.iter_mut() {
                *child = without_live_fields(child.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = without_live_fields(item.take());
            }
        }
        _ => {}
    }
    v
}

/// Everything the admin API and the app's own routes show about app `id`.
async fn snapshot(server: &Server, admin: &str, id: &str) -> Value {
    let app = get(server, admin, &format!("/api/v1/apps/{id}")).await;
    let slug = app["slug"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/apps/{id}");
    let mut snap = json!({ "app": app });
    for part in [
        "domains",
        "topics",
        "scripts",
        "routes",
        "triggers",
        "env",
        "secrets",
        "runtime",
        "quotas",
        "static",
        "dead-letters",
        "dead-letters/count",
        "logs",
    ] {
        snap[part] = get(server, admin, &format!("{base}/{part}")).await;
    }
    let mut history = serde_json::Map::new();
    for topic in snap["topics"]["topics"].as_array().unwrap() {
        let name = topic["name"].as_str().unwrap();
        let messages = get(server, admin, &format!("{base}/topics/{name}/messages")).await;
        history.insert(name.to_owned(), messages);
    }
    snap["history"] = Value::Object(history);
    let mut scripts = serde_json::Map::new();
    for script in snap["scripts"]["scripts"].as_array().unwrap() {
        let name = script["name"].as_str().unwrap();
        let detail = get(server, admin, &format!("{base}/scripts/{name}")).await;
        scripts.insert(name.to_owned(), detail);
    }
    snap["script_details"] = Value::Object(scripts);
    let keys = get(server, admin, "/api/v1/admin-keys").await;
    snap["keys"] = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["app_id"] == json!(id))
        .cloned()
        .collect();
    snap["kv"] = data_plane(server, &slug, "/peek").await;
    // The snapshot's own `/peek` runs are logged (a little later); they are not changes.
    if let Some(runs) = snap["logs"]["invocations"].as_array_mut() {
        runs.retain(|r| r["source"] != json!("route:GET /peek"));
    }
    without_live_fields(snap)
}

/// Waits until app `id`'s log holds the run of `/count` that `populate` made: runs are
/// logged after they answer, and a late entry would look like a change.
async fn await_logged_count(server: &Server, admin: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = get(server, admin, &format!("/api/v1/apps/{id}/logs")).await;
        let logged = logs["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == json!("route:GET /count"));
        if logged {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the /count run was never logged: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests a key bound to app A makes on app B: each must find nothing (404, as for an
/// app that does not exist) or be refused (403 for instance-level operations).
async fn assert_cannot_touch(server: &Server, bound: &str, b_id: &str, b_slug: &str) {
    for app in [b_id, b_slug] {
        let base = format!("/api/v1/apps/{app}");
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, base.clone(), None),
            (Method::PATCH, base.clone(), Some(json!({"name": "taken"}))),
            (Method::DELETE, base.clone(), None),
            (Method::GET, format!("{base}/topics"), None),
            (Method::GET, format!("{base}/topics/news/messages"), None),
            (
                Method::POST,
                format!("{base}/topics/news/publish"),
                Some(json!({"x": 1})),
            ),
            (Method::DELETE, format!("{base}/topics/news"), None),
            (Method::GET, format!("{base}/scripts/counter"), None),
            (
                Method::POST,
                format!("{base}/scripts"),
                Some(json!({"name": "evil", "source": "1"})),
            ),
            (Method::GET, format!("{base}/secrets"), None),
            (
                Method::POST,
                format!("{base}/secrets/rotate"),
                Some(json!({})),
            ),
            (Method::GET, format!("{base}/env"), None),
            (
                Method::PUT,
                format!("{base}/env/GREETING"),
                Some(json!({"value": "evil"})),
            ),
            (
                Method::POST,
                format!("{base}/tokens"),
                Some(json!({"topics": ["news"], "ttl_secs": 600})),
            ),
            (Method::GET, format!("{base}/topics/news/stream"), None),
        ];
        for (method, path, body) in attempts {
            let (status, answer) = call(
                method.clone(),
                &server.url(&path),
                "localhost",
                Some(bound),
                body,
            )
            .await;
            assert_eq!(
                status, 404,
                "bound key: {method} {path} → {status} {answer}"
            );
        }
    }
    for (method, path, body) in [
        (Method::GET, "/api/v1/admin-keys", None),
        (
            Method::POST,
            "/api/v1/admin-keys",
            Some(json!({"capabilities": ["AppRead"], "app": b_slug})),
        ),
        (
            Method::POST,
            "/api/v1/apps",
            Some(json!({"slug": "by-bound-key"})),
        ),
    ] {
        let (status, answer) = call(
            method.clone(),
            &server.url(path),
            "localhost",
            Some(bound),
            body,
        )
        .await;
        assert_eq!(
            status, 403,
            "bound key: {method} {path} → {status} {answer}"
        );
    }
    let listed = get(server, bound, "/api/v1/apps").await;
    assert!(
        listed["apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != json!(b_id)),
        "the bound key lists app B: {listed}"
    );
}

/// The figures of one run, from schemathesis's summary.
#[derive(Debug)]
struct Figures {
    operations: String,
    cases: String,
    seconds: f64,
}

struct Run<'a> {
    name: &'a str,
    key: &'a str,
    app: &'a str,
    doomed_app: &'a str,
    doomed_key: &'a str,
}

fn fuzz(server: &Server, work: &Path, run: Run) -> Figures {
    let st = schemathesis();
    let examples = env_or("PICLOUD_FUZZ_EXAMPLES", &DEFAULT_EXAMPLES.to_string());
    let seed = env_or("PICLOUD_FUZZ_SEED", DEFAULT_SEED);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/schemathesis.toml");
    let output = work.join(format!("{}.txt", run.name));
    let started = Instant::now();
    let mut child = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args(["run", &server.url("/api/v1/openapi.json")])
        .args(["--max-examples", &examples, "--seed", &seed])
        .env("PICLOUD_FUZZ_KEY", run.key)
        .env("PICLOUD_FUZZ_APP", run.app)
        .env("PICLOUD_FUZZ_DOOMED_APP", run.doomed_app)
        .env("PICLOUD_FUZZ_DOOMED_KEY", run.doomed_key)
        // Its cache and reports stay in the throwaway directory, out of the clone.
        .current_dir(work)
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", st.display()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("schemathesis ({}) ran past {RUN_LIMIT:?}", run.name);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let seconds = started.elapsed().as_secs_f64();
    let report = std::fs::read_to_string(&output).unwrap();
    let after = |label: &str| {
        report
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(label))
            .nth(1)
            .map(|l| l.trim().to_owned())
            .unwrap_or_default()
    };
    let operations = report
        .lines()
        .find(|l| l.trim_start().starts_with("Tested:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    let figures = Figures {
        operations,
        cases: after("Test cases:"),
        seconds,
    };
    eprintln!(
        "schemathesis ({}, {examples} examples, seed {seed}): {}; {}; {:.0} s",
        run.name, figures.operations, figures.cases, figures.seconds
    );
    assert!(
        status.success(),
        "schemathesis ({}) failed ({status}); its report:\n{report}",
        run.name
    );
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_as_documented_and_a_bound_key_stays_in_its_app() {
    schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = Server::start(&data, &[("RUST_LOG", "info")]);
    let admin = server.bootstrap_key().expect("bootstrap key on stdout");

    let a_id = populate(&server, &admin, "fuzz-a").await;
    let b_id = populate(&server, &admin, "fuzz-b").await;
    let (status, doomed_app) = admin_post(
        &server,
        &admin,
        "/api/v1/apps",
        json!({"slug": "fuzz-doomed"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, bound) = admin_post(
        &server,
        &admin,
        "/api/v1/admin-keys",
        json!({"capabilities": BOUND_CAPABILITIES, "app": a_id, "label": "fuzzer, app A"}),
    )
    .await;
    assert_eq!(status, 201, "{bound}");
    let bound = bound["key"].as_str().unwrap().to_owned();
    let (status, doomed_key) = admin_post(
        &server,
        &admin,
        "/api/v1/admin-keys",
        json!({"capabilities": ["AppRead"], "label": "decoy"}),
    )
    .await;
    assert_eq!(status, 201);

    await_logged_count(&server, &admin, &b_id).await;
    let before = snapshot(&server, &admin, &b_id).await;
    assert_cannot_touch(&server, &bound, &b_id, "fuzz-b").await;
    let bound_run = fuzz(
        &server,
        dir.path(),
        Run {
            name: "app-bound",
            key: &bound,
            app: &a_id,
            // The bound key's deletes aim at app B, which it must not see.
            doomed_app: &b_id,
            doomed_key: doomed_key["id"].as_str().unwrap(),
        },
    );
    let after = snapshot(&server, &admin, &b_id).await;
    assert_eq!(
        before, after,
        "app B changed while a key bound to app A was fuzzed"
    );
    assert_cannot_touch(&server, &bound, &b_id, "fuzz-b").await;
    // The bound run really reached app A: its requests were answered, not refused.
    get(&server, &bound, &format!("/api/v1/apps/{a_id}")).await;

    let admin_run = fuzz(
        &server,
        dir.path(),
        Run {
            name: "instance-admin",
            key: &admin,
            app: &a_id,
            doomed_app: doomed_app["id"].as_str().unwrap(),
            doomed_key: doomed_key["id"].as_str().unwrap(),
        },
    );
    // The fuzzer's own key outlived the run, so every operation was tried authenticated.
    get(&server, &admin, "/api/v1/me").await;
    eprintln!("figures: app-bound {bound_run:?}; instance admin {admin_run:?}");

    let (status, _, err) = server.stop("TERM");
    assert!(status.success(), "picloud exited with {status}: {err}");
    assert!(
        !err.contains("panicked"),
        "picloud panicked under fuzzing:\n{err}"
    );
}
