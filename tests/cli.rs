//! The real `picloud` binary as a user runs it: fresh start, bootstrap key, offline admin
//! commands, signals, a database that is not there, and logs that never carry a key.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use picloud_store::testing::TestDatabase;
use picloud_store::Backend;
use serde_json::{json, Value};

use support::{admin_post, call, read_until, rss_kib, sample, scrape, Server, BIN};

/// Runs a one-shot `picloud` command; returns (success, stdout, stderr).
fn run(args: &[&str], data_dir: &Path, database_url: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().env("PICLOUD_DATA_DIR", data_dir);
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    let out = cmd.output().expect("run picloud");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's promise: a fresh start on SQLite prints a bootstrap key once, the key
/// creates an app, and the app answers on `<slug>.localhost`. No log line carries the key.
#[tokio::test]
async fn fresh_sqlite_start_bootstraps_and_serves_an_app() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("PICLOUD_LOG_FORMAT", "json")]);
    let key = server
        .bootstrap_key()
        .expect("bootstrap key printed on first start");
    assert!(
        dir.path().join("picloud.db").exists(),
        "SQLite file in the data dir"
    );

    let (status, app) = admin_post(&server, &key, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(status, 201, "{app}");
    let (status, info) = call(
        reqwest::Method::GET,
        &server.url("/"),
        &format!("demo.localhost:{}", server.port),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        info,
        json!({"app": "demo", "version": env!("CARGO_PKG_VERSION")})
    );
    let (status, _) = call(
        reqwest::Method::GET,
        &server.url("/api/v1/apps"),
        "localhost",
        Some("pk_0000000000000000_wrong"),
        None,
    )
    .await;
    assert_eq!(status, 401);

    let (status, stdout, stderr) = server.stop("TERM");
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let secret = &key[20..];
    assert!(!stderr.contains(secret), "the key leaked into the logs");
    assert_eq!(
        stdout.matches(secret).count(),
        1,
        "the key is printed exactly once"
    );
    for line in stderr.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }

    // A second start finds a bootstrapped instance: no new key; the old one still works.
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.bootstrap_key(), None);
    let (status, list) = call(
        reqwest::Method::GET,
        &server.url("/api/v1/apps"),
        "localhost",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["apps"][0]["slug"], "demo");
    let (status, _, stderr) = server.stop("INT");
    assert!(status.success(), "graceful exit on SIGINT: {status}");
    assert!(
        !stderr.contains(secret),
        "the key leaked into the text logs"
    );
}

/// `picloud admin key create` works offline against PostgreSQL and prints the key alone on
/// the last line of stdout; the server then accepts it with exactly its capabilities.
#[tokio::test]
async fn offline_admin_keys_on_postgres() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.database_url.clone().unwrap();
    let dir = db.data_dir();

    let (ok, _, err) = run(&["migrate"], dir, Some(&url));
    assert!(ok, "{err}");
    let (ok, out, err) = run(
        &[
            "admin",
            "key",
            "create",
            "--capability",
            "AppRead",
            "--capability",
            "AppWrite",
            "--label",
            "ops",
        ],
        dir,
        Some(&url),
    );
    assert!(ok, "{err}");
    let writer = out.lines().last().unwrap().to_owned();
    assert!(
        writer.starts_with("pk_") && writer.len() == 3 + 16 + 1 + 43,
        "{out}"
    );

    let server = Server::start(dir, &[("DATABASE_URL", &url)]);
    // Keys already exist but the instance was never bootstrapped: it still gets its admin key.
    let admin = server
        .bootstrap_key()
        .expect("bootstrap on a fresh PostgreSQL database");
    let (status, _) = admin_post(&server, &writer, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(status, 201);
    let (status, _) = call(
        reqwest::Method::GET,
        &server.url("/api/v1/admin-keys"),
        "localhost",
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(status, 403, "AppRead+AppWrite is not InstanceAdmin");
    let (status, _) = call(
        reqwest::Method::GET,
        &server.url("/api/v1/admin-keys"),
        "localhost",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // An app-bound key, created offline while the server runs.
    let (ok, out, err) = run(
        &[
            "admin",
            "key",
            "create",
            "--capability",
            "AppRead",
            "--app",
            "demo",
        ],
        dir,
        Some(&url),
    );
    assert!(ok, "{err}");
    let bound = out.lines().last().unwrap().to_owned();
    let (status, list) = call(
        reqwest::Method::GET,
        &server.url("/api/v1/apps"),
        "localhost",
        Some(&bound),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);

    // Listing shows ids, never secrets; revoking offline takes effect on a running server
    // within its key cache TTL (5 s).
    // A table: a header, then a row per key; a bound key names its app by slug.
    let (ok, out, _) = run(&["admin", "key", "list"], dir, Some(&url));
    assert!(ok);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert_eq!(
        rows[0],
        [
            "ID",
            "CAPABILITIES",
            "APP",
            "CREATED",
            "LAST",
            "USED",
            "LABEL"
        ],
        "{out}"
    );
    let bound_row = rows
        .iter()
        .find(|r| r[0] == &bound[3..19])
        .expect("the bound key's row");
    assert_eq!((bound_row[1], bound_row[2]), ("AppRead", "demo"), "{out}");
    let writer_row = rows.iter().find(|r| r[0] == &writer[3..19]).unwrap();
    assert_eq!(writer_row[1..3], ["AppRead,AppWrite", "(all)"], "{out}");
    assert!(!out.contains(&writer[20..]));
    let (ok, _, err) = run(&["admin", "key", "revoke", &writer[3..19]], dir, Some(&url));
    assert!(ok, "{err}");
    let revoked_at = std::time::Instant::now();
    loop {
        let (status, _) = call(
            reqwest::Method::GET,
            &server.url("/api/v1/apps"),
            "localhost",
            Some(&writer),
            None,
        )
        .await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(8),
            "a revoked key still works after the cache TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Bad input to the CLI: clear message, non-zero exit, nothing created.
    let (ok, _, err) = run(
        &["admin", "key", "create", "--capability", "Root"],
        dir,
        Some(&url),
    );
    assert!(!ok && err.contains("unknown capability"), "{err}");
    let (ok, _, err) = run(
        &[
            "admin",
            "key",
            "create",
            "--capability",
            "AppRead",
            "--app",
            "nope",
        ],
        dir,
        Some(&url),
    );
    assert!(!ok && err.contains("no app"), "{err}");
    let (ok, _, err) = run(
        &[
            "admin",
            "key",
            "create",
            "--capability",
            "InstanceAdmin",
            "--app",
            "demo",
        ],
        dir,
        Some(&url),
    );
    assert!(!ok && err.contains("cannot be bound"), "{err}");
    let (_, out, _) = run(&["admin", "key", "list"], dir, Some(&url));
    assert_eq!(out.lines().count(), 3, "header and two keys: {out}");

    let (status, _, stderr) = server.stop("TERM");
    assert!(status.success());
    for key in [&admin, &writer, &bound] {
        assert!(!stderr.contains(&key[20..]), "a key leaked into the logs");
    }
}

/// A database that is not there at start: a clear message naming it (without its
/// password) and a non-zero exit, promptly.
#[test]
fn unreachable_database_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (ok, _, err) = run(
        &["serve", "--listen", "127.0.0.1:0"],
        dir.path(),
        Some("postgres://picloud:hunter2@127.0.0.1:1/nowhere"),
    );
    assert!(!ok);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        err.contains("cannot connect to PostgreSQL postgres://picloud:***@127.0.0.1:1/nowhere"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let (ok, _, err) = run(&["serve"], dir.path(), Some("mysql://localhost/x"));
    assert!(
        !ok && err.contains("unsupported DATABASE_URL scheme \"mysql\""),
        "{err}"
    );

    // A data dir that cannot be created (a file is in the way).
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let (ok, _, err) = run(&["migrate"], &file, None);
    assert!(!ok && err.contains("cannot create data dir"), "{err}");
}

/// Only `serve` and `migrate` create a database: an offline command run against the wrong
/// data dir, or an empty PostgreSQL database, fails naming where it looked and creates
/// nothing there.
#[tokio::test]
async fn offline_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("picloud-data");
    for args in [
        &["admin", "key", "list"][..],
        &["admin", "key", "create", "--capability", "AppRead"],
        &["admin", "key", "revoke", "0123456789abcdef"],
        &["token", "mint", "--app", "demo", "--topic", "chat"],
    ] {
        let (ok, out, err) = run(args, &nowhere, None);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            err.contains(&format!(
                "no PiCloud database at SQLite {}",
                nowhere.join("picloud.db").display()
            )) && err.contains("picloud serve"),
            "{args:?}: {err}"
        );
        assert!(!nowhere.exists(), "{args:?} created {}", nowhere.display());
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.database_url.clone().unwrap();
    let (ok, _, err) = run(&["admin", "key", "list"], dir.path(), Some(&url));
    assert!(
        !ok && err.contains("no PiCloud database at PostgreSQL"),
        "{err}"
    );
    let (ok, _, err) = run(&["migrate"], dir.path(), Some(&url));
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["admin", "key", "list"], dir.path(), Some(&url));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "the header, no keys: {out}");
}

/// A start that cannot listen (the port is taken) exits with the reason and spends no
/// bootstrap key: the next start that listens prints it.
#[test]
fn a_start_that_cannot_listen_keeps_the_bootstrap_key_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, out, err) = run(&["serve", "--listen", &addr], dir.path(), None);
    assert!(!ok);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        !out.contains("pk_"),
        "a key printed by a start that failed: {out}"
    );
    drop(taken);
    let server = Server::start(dir.path(), &[]);
    assert!(
        server.bootstrap_key().is_some(),
        "the first start that listens bootstraps"
    );
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
}

/// `picloud token mint` (offline) gives a token the server accepts, and `picloud publish`
/// goes through the server so a live subscriber receives the message.
#[tokio::test]
async fn token_mint_and_publish_commands_reach_a_live_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.bootstrap_key().unwrap();
    let (apps, topics) = (
        server.url("/api/v1/apps"),
        server.url("/api/v1/apps/demo/topics"),
    );
    let created = call(
        reqwest::Method::POST,
        &apps,
        "localhost",
        Some(&key),
        Some(json!({"slug": "demo"})),
    )
    .await;
    assert_eq!(created.0, 201);
    let topic = json!({"name": "chat", "external_subscribable": true, "auth_mode": "token"});
    assert_eq!(
        call(
            reqwest::Method::POST,
            &topics,
            "localhost",
            Some(&key),
            Some(topic)
        )
        .await
        .0,
        201
    );

    let (ok, out, err) = run(
        &[
            "token",
            "mint",
            "--app",
            "demo",
            "--topic",
            "chat",
            "--ttl-secs",
            "120",
        ],
        dir.path(),
        None,
    );
    assert!(ok, "{err}");
    let token = out.lines().last().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a compact JWT: {token}");

    let mut stream = reqwest::Client::new()
        .get(server.url("/realtime/topics/chat"))
        .header("host", "demo.localhost")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let server_url = server.url("");
    let publish = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("publish")
            .args(args)
            .env_clear()
            .env("PICLOUD_URL", &server_url)
            .env("PICLOUD_ADMIN_KEY", &key);
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = publish(&["demo", "chat", r#"{"hello":"world"}"#]);
    assert!(ok, "{err}");
    let published: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(published["seq"], 1);

    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: message").await;
    assert!(seen.contains("id: 1\nevent: message\ndata: {\"topic\":\"chat\",\"seq\":1,\"message\":{\"hello\":\"world\"}"), "{seen}");

    // The publish and lag histograms record in the real binary: their handles are taken
    // at start, which once came before the recorder existed (they recorded nowhere). The
    // lag is sampled one frame in 16, so 16 frames.
    let publish_url = server.url("/api/v1/apps/demo/topics/chat/publish");
    for n in 2..=16 {
        let (status, _) = call(
            reqwest::Method::POST,
            &publish_url,
            "localhost",
            Some(&key),
            Some(json!({ "n": n })),
        )
        .await;
        assert_eq!(status, 201);
    }
    read_until(&mut stream, &mut seen, "\"seq\":16").await;
    let metrics = scrape(&server, &key).await;
    let count = |name: &str| sample(&metrics, &format!("{name}_count")) as u64;
    assert_eq!(
        count("picloud_publish_batch_messages"),
        count("picloud_publish_commit_seconds")
    );
    let batches = count("picloud_publish_batch_messages");
    assert!(
        (1..=16).contains(&batches),
        "{batches} publish batches for 16 publishes"
    );
    assert!(count("picloud_realtime_publish_to_send_seconds") >= 1);

    // Bad input: clear errors, non-zero exits.
    let (ok, _, err) = publish(&["demo", "chat", "{not json"]);
    assert!(!ok && err.contains("not valid JSON"), "{err}");
    let (ok, _, err) = publish(&["demo", "bad*topic", "1"]);
    assert!(!ok && err.contains("422"), "{err}");
    let (ok, _, err) = run(
        &[
            "token",
            "mint",
            "--app",
            "demo",
            "--topic",
            "a*",
            "--ttl-secs",
            "60",
        ],
        dir.path(),
        None,
    );
    assert!(!ok && err.contains("topic"), "{err}");
    let (status, _, stderr) = server.stop("TERM");
    assert!(status.success());
    assert!(!stderr.contains(&token), "a token leaked into the logs");
}

/// A subscriber that stops reading does not make the server hold what it misses: the real
/// binary's RSS stays bounded while far more than that is published to it. Ephemeral
/// publishes: durable ones also fill SQLite's page caches (bounded, up to 16 MiB per
/// connection, and the retention pruner's connection joins in when it runs), which would
/// blur an RSS reading; the durable path is measured by counting heap bytes in
/// `picloud-api/tests/memory.rs`, which also checks the catch-up from history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_grow_server_memory() {
    use tokio::io::AsyncWriteExt;
    const MESSAGES: usize = 8_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("RUST_LOG", "info")]);
    let key = server.bootstrap_key().unwrap();
    let post = |url: String, body: Value| {
        let key = key.clone();
        async move {
            call(
                reqwest::Method::POST,
                &url,
                "localhost",
                Some(&key),
                Some(body),
            )
            .await
            .0
        }
    };
    assert_eq!(
        post(server.url("/api/v1/apps"), json!({"slug": "demo"})).await,
        201
    );
    let topic = json!({"name": "firehose", "external_subscribable": true, "auth_mode": "public"});
    assert_eq!(
        post(server.url("/api/v1/apps/demo/topics"), topic).await,
        201
    );

    // A subscriber with a tiny receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket
        .connect(([127, 0, 0, 1], server.port).into())
        .await
        .unwrap();
    stalled
        .write_all(b"GET /realtime/topics/firehose HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, health) = call(
        reqwest::Method::GET,
        &server.url("/health/realtime"),
        "localhost",
        None,
        None,
    )
    .await;
    assert_eq!(
        health["connections"], 1,
        "the stalled subscriber is connected: {health}"
    );
    let pid = server.child.id();
    let before = rss_kib(pid);

    // Two rounds of 8,000 × 2 KiB (16 MiB each). Bounded buffers fill during the first
    // round; if the server kept what the stalled subscriber misses, the second round would
    // grow memory by about as much again.
    let pad = "x".repeat(2000);
    let url = server.url("/api/v1/apps/demo/topics/firehose/publish?ephemeral=true");
    let mut rss = vec![before];
    for round in 0..2 {
        let publishers: Vec<_> = (0..8)
            .map(|p| {
                let (url, key, pad) = (url.clone(), key.clone(), pad.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    for i in 0..MESSAGES / 8 {
                        let body = json!({"r": round, "p": p, "i": i, "pad": pad});
                        let res = client
                            .post(&url)
                            .header("host", "localhost")
                            .bearer_auth(&key)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 202);
                    }
                })
            })
            .collect();
        for p in publishers {
            p.await.unwrap();
        }
        rss.push(rss_kib(pid));
    }
    let round_kib = (MESSAGES * 2) as u64;
    eprintln!("server RSS (KiB) before / after round 1 / after round 2: {rss:?}; {round_kib} KiB published per round to a stalled subscriber");
    let second = rss[2].saturating_sub(rss[1]);
    assert!(
        second < round_kib / 4,
        "RSS grew {second} KiB in the second round of {round_kib} KiB: the stalled subscriber is being buffered"
    );
    drop(stalled);
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
}

/// `picloud deploy APP NAME FILE` deploys through the server: compile errors come back as
/// `file:line:column`, a good script becomes the next version and answers on the app's
/// Host through a route.
#[tokio::test]
async fn deploy_command_compiles_and_versions_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.bootstrap_key().unwrap();
    let created = admin_post(&server, &key, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(created.0, 201);
    let server_url = server.url("");
    let deploy = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("deploy")
            .args(args)
            .env_clear()
            .env("PICLOUD_URL", &server_url)
            .env("PICLOUD_ADMIN_KEY", &key)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let bad = dir.path().join("bad.rhai");
    std::fs::write(&bad, "let a = 1;\nlet b = ;\n").unwrap();
    let (ok, _, err) = deploy(&["demo", "hello", bad.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(err.contains("bad.rhai:2:"), "file:line:column in {err}");
    let good = dir.path().join("hello.rhai");
    std::fs::write(&good, "#{ hello: request.params.who }").unwrap();
    let (ok, out, err) = deploy(&["demo", "hello", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap()["version"],
        1
    );
    let (ok, out, _) = deploy(&["demo", "hello", good.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap()["version"],
        2
    );
    let (ok, _, err) = deploy(&["demo", "hello", "/no/such/file.rhai"]);
    assert!(!ok && err.contains("cannot read"), "{err}");
    let route = admin_post(
        &server,
        &key,
        "/api/v1/apps/demo/routes",
        json!({"method": "GET", "path": "/hi/:who", "script": "hello"}),
    )
    .await;
    assert_eq!(route.0, 201);
    let res = reqwest::Client::new()
        .get(server.url("/hi/ann"))
        .header("host", "demo.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"hello": "ann"}));
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
}

/// DESIGN §3's group commit, in the real binary: publishers that each wait for their answer
/// share transactions (the publish histogram counts transactions and their messages)
/// instead of paying one commit each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_share_transactions_on_sqlite() {
    concurrent_publishes_share_transactions(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_share_transactions_on_postgres() {
    concurrent_publishes_share_transactions(Backend::Postgres).await;
}

async fn concurrent_publishes_share_transactions(backend: Backend) {
    const PUBLISHERS: usize = 8;
    const EACH: usize = 30;
    let db = TestDatabase::new(backend).await;
    let url = db.database_url.clone();
    let mut env = vec![("RUST_LOG", "info")];
    if let Some(u) = &url {
        env.push(("DATABASE_URL", u));
    }
    let server = Server::start(db.data_dir(), &env);
    let key = server.bootstrap_key().expect("bootstrap key");
    let created = admin_post(&server, &key, "/api/v1/apps", json!({"slug": "demo"})).await;
    assert_eq!(created.0, 201);
    for t in 0..PUBLISHERS {
        let (status, _) = admin_post(
            &server,
            &key,
            "/api/v1/apps/demo/topics",
            json!({ "name": format!("t{t}") }),
        )
        .await;
        assert_eq!(status, 201);
    }
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (client, key) = (reqwest::Client::new(), key.clone());
            let url = server.url(&format!("/api/v1/apps/demo/topics/t{p}/publish"));
            tokio::spawn(async move {
                for n in 1..=EACH {
                    let res = client
                        .post(&url)
                        .header("host", "localhost")
                        .bearer_auth(&key)
                        .json(&json!({ "n": n }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201);
                    let body: Value = res.json().await.unwrap();
                    assert_eq!(body["seq"], n as i64, "seqs of t{p} in order, no gaps");
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let metrics = scrape(&server, &key).await;
    let messages = sample(&metrics, "picloud_publish_batch_messages_sum");
    let transactions = sample(&metrics, "picloud_publish_batch_messages_count");
    assert_eq!(messages, (PUBLISHERS * EACH) as f64);
    // One transaction per publish would be 240; shared, about 240 / 8. Half of one per
    // publish is far from both, so a slow host does not make this flaky.
    assert!(
        transactions <= messages / 2.0,
        "{transactions} transactions for {messages} concurrent publishes"
    );
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
}

/// The data dir holds every app's secrets: private to the server's user whatever the umask
/// it starts with, and a data dir left readable by others is tightened at start.
#[tokio::test]
async fn the_data_dir_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let umask_022 = ["/bin/sh", "-c", "umask 022; exec \"$0\" \"$@\""];
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let files = [
        "picloud.db",
        "picloud.db-wal",
        "picloud.db-shm",
        "picloud.db.lock",
    ];

    let server = Server::start_via(&umask_022, &data, &[]);
    let key = server.bootstrap_key().unwrap();
    let (status, _) = admin_post(&server, &key, "/api/v1/apps", json!({"slug": "private"})).await;
    assert_eq!(status, 201);
    assert_eq!(mode(&data), 0o700);
    for f in files {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());

    // Left wide by hand (or by an older version): tightened at the next start.
    for (p, m) in [(data.clone(), 0o755), (data.join("picloud.db"), 0o644)] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let server = Server::start_via(&umask_022, &data, &[]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("picloud.db")), 0o600);
    let (_, _, stderr) = server.stop("TERM");
    assert!(
        stderr.contains("group and other permissions removed"),
        "{stderr}"
    );
}

/// The test command's setup creates the PostgreSQL database its URL names when it is
/// missing, and a second run changes nothing (scripts/ensure-postgres).
#[test]
fn the_test_setup_creates_a_missing_database() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-postgres");
    let base = std::env::var("PICLOUD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let server = &base[..base.rfind('/').unwrap()];
    let name = format!("picloud_ensure_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([&format!("{server}/postgres"), "-tAc", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let exists = || {
        psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ))
    };
    assert_eq!(exists(), "0");
    for _ in 0..2 {
        let out = Command::new(&script)
            .arg(format!("{server}/{name}"))
            .output()
            .expect("run scripts/ensure-postgres");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(exists(), "1");
    }
    psql(&format!("DROP DATABASE {name}"));
}

/// Runs `picloud app …` against a running server; returns (success, stdout, stderr).
fn app_cmd(args: &[&str], server: &Server, key: &str) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("app")
        .args(args)
        .env_clear()
        .env("PICLOUD_URL", server.url(""))
        .env("PICLOUD_ADMIN_KEY", key)
        .output()
        .expect("run picloud app");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MANIFEST: &str = r#"
slug = "shop"
name = "The shop"
static = "site"
spa = true
env = ["GREETING"]

[[topics]]
name = "orders"
auth_mode = "public"
external_subscribable = true
description = "New orders"
retention = { max_messages = 100, max_age_secs = 3600 }

[scripts]
hello = "scripts/hello.rhai"
tally = "scripts/tally.rhai"

[[routes]]
method = "get"
path = "/api/hello"
script = "hello"

[[triggers]]
kind = "pubsub"
script = "tally"
filter = { topic = "orders" }
"#;

fn write_app(dir: &Path, hello: &str) {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::create_dir_all(dir.join("site/assets")).unwrap();
    std::fs::write(dir.join("picloud.toml"), MANIFEST).unwrap();
    std::fs::write(dir.join("scripts/hello.rhai"), hello).unwrap();
    std::fs::write(
        dir.join("scripts/tally.rhai"),
        "kv::set(\"n\", (kv::get(\"n\") ?? 0) + 1);",
    )
    .unwrap();
    std::fs::write(dir.join("site/index.html"), "<p>shop</p>").unwrap();
    std::fs::write(dir.join("site/assets/app.js"), "console.log(1)").unwrap();
}

/// `picloud app deploy DIR` makes the server match the manifest (a plan first, `--dry-run`
/// changing nothing), changes nothing when run again, updates what changed (a script as a
/// new version), deletes only with `--prune`, refuses a script that would not compile
/// before changing anything; `picloud app export` writes a manifest that deploys to no
/// change.
#[tokio::test]
async fn app_manifests_deploy_export_and_prune() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let key = server.bootstrap_key().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("shop");
    write_app(&app, "#{ hello: env::get(\"GREETING\") ?? \"world\" }");
    let app_arg = app.to_str().unwrap();
    let get = |path: &str| {
        let (url, key) = (server.url(path), key.clone());
        async move { call(reqwest::Method::GET, &url, "localhost", Some(&key), None).await }
    };
    let on_app = |path: &str| {
        let (url, host) = (server.url(path), format!("shop.localhost:{}", server.port));
        async move { call(reqwest::Method::GET, &url, &host, None, None).await }
    };

    let (ok, out, err) = app_cmd(&["deploy", app_arg, "--dry-run"], &server, &key);
    assert!(ok, "{err}");
    assert!(
        out.contains("+ app shop") && out.contains("dry run"),
        "{out}"
    );
    assert_eq!(
        get("/api/v1/apps/shop").await.0,
        404,
        "a dry run changes nothing"
    );

    let (ok, out, err) = app_cmd(&["deploy", app_arg], &server, &key);
    assert!(ok, "{err}");
    for line in [
        "+ app shop",
        "+ topic orders",
        "+ script hello",
        "+ route GET /api/hello → hello",
        "+ pubsub trigger → tally",
        "+ static index.html",
        "! env GREETING is not set",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let (_, shop) = get("/api/v1/apps/shop").await;
    assert_eq!(
        (shop["name"].clone(), shop["static_spa"].clone()),
        (json!("The shop"), json!(true))
    );
    let (_, topic) = get("/api/v1/apps/shop/topics/orders").await;
    assert_eq!(topic["auth_mode"], "public");
    assert_eq!(
        topic["retention"],
        json!({"max_messages": 100, "max_age_secs": 3600})
    );
    assert_eq!(on_app("/api/hello").await.1, json!({"hello": "world"}));
    let (status, _) = on_app("/some/page").await;
    assert_eq!(status, 200, "the single-page fallback");

    let (ok, out, _) = app_cmd(&["deploy", app_arg], &server, &key);
    assert!(ok);
    assert_eq!(
        out.lines()
            .filter(|l| !l.starts_with('!'))
            .collect::<Vec<_>>(),
        ["shop: nothing to change"],
        "{out}"
    );

    // A changed script is a new version; a script that does not compile stops the deploy
    // before anything changes.
    std::fs::write(app.join("scripts/hello.rhai"), "#{ hello: \"again\" }").unwrap();
    std::fs::write(app.join("site/assets/app.js"), "console.log(2)").unwrap();
    let (ok, out, _) = app_cmd(&["deploy", app_arg], &server, &key);
    assert!(ok);
    assert!(
        out.contains("~ script hello") && out.contains("~ static assets/app.js"),
        "{out}"
    );
    assert_eq!(on_app("/api/hello").await.1, json!({"hello": "again"}));
    let (_, detail) = get("/api/v1/apps/shop/scripts/hello").await;
    assert_eq!(detail["active_version"], 2);
    let (_, before) = get("/api/v1/apps/shop/static").await;
    std::fs::write(app.join("scripts/hello.rhai"), "let = ;").unwrap();
    std::fs::write(app.join("site/index.html"), "<p>changed</p>").unwrap();
    let (ok, _, err) = app_cmd(&["deploy", app_arg], &server, &key);
    assert!(!ok);
    assert!(err.contains("hello.rhai:1:"), "{err}");
    assert_eq!(
        get("/api/v1/apps/shop/static").await.1,
        before,
        "nothing changed"
    );
    assert_eq!(
        get("/api/v1/apps/shop/scripts/hello").await.1["active_version"],
        2
    );
    std::fs::write(app.join("scripts/hello.rhai"), "#{ hello: \"again\" }").unwrap();
    std::fs::write(app.join("site/index.html"), "<p>shop</p>").unwrap();

    // What the manifest does not name stays, unless pruned.
    admin_post(
        &server,
        &key,
        "/api/v1/apps/shop/topics",
        json!({"name": "stray"}),
    )
    .await;
    let (_, out, _) = app_cmd(&["deploy", app_arg], &server, &key);
    assert!(!out.contains("stray"), "{out}");
    let (ok, out, _) = app_cmd(&["deploy", app_arg, "--prune"], &server, &key);
    assert!(ok && out.contains("- topic stray"), "{out}");
    assert_eq!(get("/api/v1/apps/shop/topics/stray").await.0, 404);

    // Export, then deploy the export: nothing to change.
    let exported = dir.path().join("exported");
    let (ok, _, err) = app_cmd(
        &["export", "shop", exported.to_str().unwrap()],
        &server,
        &key,
    );
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(exported.join("scripts/hello.rhai")).unwrap(),
        "#{ hello: \"again\" }"
    );
    assert_eq!(
        std::fs::read(exported.join("static/assets/app.js")).unwrap(),
        b"console.log(2)"
    );
    let (ok, out, err) = app_cmd(&["deploy", exported.to_str().unwrap()], &server, &key);
    assert!(ok, "{err}");
    assert!(out.contains("shop: nothing to change"), "{out}");
    let (ok, _, err) = app_cmd(
        &["export", "shop", exported.to_str().unwrap()],
        &server,
        &key,
    );
    assert!(!ok && err.contains("--force"), "{err}");

    // Bad input: a manifest naming a script it does not list; a wrong key.
    std::fs::write(
        app.join("picloud.toml"),
        MANIFEST.replace("script = \"tally\"", "script = \"nope\""),
    )
    .unwrap();
    let (ok, _, err) = app_cmd(&["deploy", app_arg], &server, &key);
    assert!(
        !ok && err.contains("\"nope\", which is not under [scripts]"),
        "{err}"
    );
    std::fs::write(app.join("picloud.toml"), MANIFEST).unwrap();
    let (ok, _, err) = app_cmd(&["deploy", app_arg], &server, "pk_0000000000000000_nope");
    assert!(!ok && err.contains("401"), "{err}");

    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
}
