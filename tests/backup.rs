//! Backups, end to end on the real binary: `picloud backup create --to FILE` while four
//! publishers keep publishing, `picloud backup restore FILE --data-dir NEW`, then a server
//! started on the restored data dir. Asserted: every message acknowledged before the backup
//! was asked for is in the restored history with its seq and payload, and the restored
//! history is exactly the original's up to its last seq (one commit's view: no gap, nothing
//! the original lacks); the outbox rows of the snapshot's messages run on the restored
//! server (the trigger saw every restored message); the same admin key works; scripts,
//! static files and streams serve (a stream resumes with `Last-Event-ID` and then gets a
//! newly published message with the next seq). A restore refuses a non-empty data dir and
//! a damaged file, leaving nothing behind; the API lists, serves and deletes backups, and
//! refuses app-bound keys. A scheduled backup (`PICLOUD_BACKUP_CRON`) keeps the newest
//! `PICLOUD_BACKUP_KEEP`.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{admin_post, call, read_until, Server, BIN};

const MANIFEST: &str = r#"
slug = "shop"
name = "The shop"
static = "site"

[[topics]]
name = "orders"
auth_mode = "public"
external_subscribable = true

[scripts]
hello = "scripts/hello.rhai"
seen = "scripts/seen.rhai"
record = "scripts/record.rhai"
greet = "scripts/greet.rhai"

[[routes]]
method = "post"
path = "/api/greet"
script = "greet"

[[routes]]
method = "get"
path = "/api/hello"
script = "hello"

[[routes]]
method = "get"
path = "/api/seen"
script = "seen"

[[triggers]]
kind = "pubsub"
script = "record"
filter = { topic = "orders" }
"#;

fn write_app(dir: &Path) {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("picloud.toml"), MANIFEST).unwrap();
    std::fs::write(
        dir.join("scripts/hello.rhai"),
        r#"`hello ${kv::get("greeting")}`"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("scripts/seen.rhai"),
        r#"kv::list("seen-", 1000).map(|e| e.key)"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("scripts/record.rhai"),
        r#"kv::set("seen-" + event.seq, event.message.n);"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("scripts/greet.rhai"),
        r#"kv::set("greeting", "from before"); 1"#,
    )
    .unwrap();
    std::fs::write(dir.join("site/index.html"), "<p>the shop</p>").unwrap();
}

fn cli(args: &[&str], server: Option<(&Server, &str)>) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear();
    if let Some((server, key)) = server {
        cmd.env("PICLOUD_URL", server.url(""))
            .env("PICLOUD_ADMIN_KEY", key);
    }
    let out = cmd.output().expect("run picloud");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn admin(server: &Server, key: &str, method: Method, path: &str) -> (u16, Value) {
    call(method, &server.url(path), "localhost", Some(key), None).await
}

/// The topic's whole history, by seq.
async fn history(server: &Server, key: &str) -> BTreeMap<i64, Value> {
    let mut out = BTreeMap::new();
    let mut before = String::new();
    loop {
        let (status, page) = admin(
            server,
            key,
            Method::GET,
            &format!("/api/v1/apps/shop/topics/orders/messages?limit=500{before}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap();
        let Some(oldest) = messages.last() else {
            return out;
        };
        for m in messages {
            out.insert(m["seq"].as_i64().unwrap(), m["message"].clone());
        }
        before = format!("&before_seq={}", oldest["seq"]);
    }
}

/// Acknowledged publishes: seq, message, when the answer arrived.
type Acked = Arc<Mutex<Vec<(i64, Value, Instant)>>>;

/// Publishers, each `per_sec` a second, until `stop`: every acknowledged publish with the
/// moment its answer arrived.
fn publishers(
    server: &Server,
    key: &str,
    n: usize,
    per_sec: u32,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<tokio::task::JoinHandle<()>>, Acked) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..n)
        .map(|p| {
            let (url, key, stop, acked) = (
                server.url("/api/v1/apps/shop/topics/orders/publish"),
                key.to_owned(),
                stop.clone(),
                acked.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    tick.tick().await;
                    let message = json!({"n": i, "p": p});
                    let res = client
                        .post(&url)
                        .header("host", "localhost")
                        .bearer_auth(&key)
                        .json(&message)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201, "durable publishes go on during a backup");
                    let seq = res.json::<Value>().await.unwrap()["seq"].as_i64().unwrap();
                    acked.lock().unwrap().push((seq, message, Instant::now()));
                }
            })
        })
        .collect();
    (tasks, acked)
}

async fn app_get(server: &Server, path: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(server.url(path))
        .header("host", "shop.localhost")
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_made_under_publish_load_restores_everything_acknowledged_before_it() {
    let work = tempfile::tempdir().unwrap();
    let original_dir = work.path().join("original");
    // Deliveries running when the snapshot is taken are leased in it: the restored server
    // runs them again once the lease has passed (a short one keeps the test short).
    let server = Server::start(&original_dir, &[("PICLOUD_DISPATCH_LEASE_MS", "3000")]);
    let key = server.bootstrap_key().unwrap();
    let app = work.path().join("app");
    write_app(&app);
    let (ok, out, err) = cli(
        &["app", "deploy", app.to_str().unwrap()],
        Some((&server, &key)),
    );
    assert!(ok, "{out}{err}");
    // A kv value written through a script is data a backup must carry too.
    let res = reqwest::Client::new()
        .post(server.url("/api/greet"))
        .header("host", "shop.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app_get(&server, "/api/hello").await,
        (200, "\"hello from before\"".into())
    );

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tasks, acked) = publishers(&server, &key, 4, 50, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let asked = Instant::now();
    let file = work.path().join("copy.tar.gz");
    let (ok, out, err) = {
        let (url, key, file) = (server.url(""), key.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            let out = Command::new(BIN)
                .args(["backup", "create", "--to", file.to_str().unwrap()])
                .env_clear()
                .env("PICLOUD_URL", url)
                .env("PICLOUD_ADMIN_KEY", key)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    };
    assert!(ok, "backup create: {out}{err}");
    let name = out.trim().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before: Vec<_> = acked.iter().filter(|(_, _, at)| *at < asked).collect();
    assert!(
        before.len() > 50 && acked.len() > before.len(),
        "publishes before ({}) and during/after ({}) the backup",
        before.len(),
        acked.len() - before.len()
    );

    // The server lists it, serves the same bytes, and refuses what it should.
    let (status, list) = admin(&server, &key, Method::GET, "/api/v1/backups").await;
    assert_eq!(status, 200);
    assert_eq!(list["backups"][0]["name"], name.as_str(), "{list}");
    assert_eq!(list["supported"], true);
    let on_server = original_dir.join("backups").join(&name);
    assert_eq!(
        std::fs::read(&on_server).unwrap(),
        std::fs::read(&file).unwrap(),
        "the download is the server's file"
    );
    let (status, _) = admin(
        &server,
        &key,
        Method::GET,
        "/api/v1/backups/..%2Fpicloud.db",
    )
    .await;
    assert_eq!(status, 404, "only backups are served");
    // A backup holds every app's data and secrets: instance admins only.
    let all_but_admin = json!([
        "AppRead",
        "AppWrite",
        "AppTopicManage",
        "AppPublish",
        "ScriptDeploy",
        "SecretsManage"
    ]);
    let mut lesser = Vec::new();
    for body in [
        json!({"capabilities": all_but_admin, "app": "shop"}),
        json!({"capabilities": all_but_admin}),
    ] {
        let (status, made) = admin_post(&server, &key, "/api/v1/admin-keys", body).await;
        assert_eq!(status, 201, "{made}");
        lesser.push(made["key"].as_str().unwrap().to_owned());
    }
    for other in &lesser {
        for (method, path) in [
            (Method::GET, "/api/v1/backups".to_owned()),
            (Method::POST, "/api/v1/backups".to_owned()),
            (Method::GET, format!("/api/v1/backups/{name}")),
            (Method::DELETE, format!("/api/v1/backups/{name}")),
        ] {
            let (status, body) = admin(&server, other, method.clone(), &path).await;
            assert_eq!(status, 403, "{method} {path} without InstanceAdmin: {body}");
        }
    }
    let original = history(&server, &key).await;
    let (_, _, log) = server.stop("TERM");
    assert!(!log.contains(&key), "keys never logged");

    // Restore refuses a non-empty data dir and a damaged file, leaving nothing behind.
    let (ok, _, err) = cli(
        &[
            "backup",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            original_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && err.contains("not empty"), "{err}");
    let damaged = work.path().join("damaged.tar.gz");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let nowhere = work.path().join("nowhere");
    let (ok, _, err) = cli(
        &[
            "backup",
            "restore",
            damaged.to_str().unwrap(),
            "--data-dir",
            nowhere.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && err.contains("cannot restore"), "{err}");
    assert!(
        !nowhere.exists(),
        "a failed restore leaves no data dir behind"
    );

    let restored_dir = work.path().join("restored");
    let (ok, out, err) = cli(
        &[
            "backup",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "restore: {out}{err}");
    let restored = Server::start(&restored_dir, &[]);
    assert_eq!(
        restored.bootstrap_key(),
        None,
        "the restored instance has its keys"
    );

    let got = history(&restored, &key).await;
    for (seq, message, _) in &before {
        assert_eq!(
            got.get(seq),
            Some(message),
            "acknowledged before the backup: seq {seq}"
        );
    }
    let last = *got.keys().last().unwrap();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "no gap"
    );
    assert!(
        original.range(..=last).eq(got.iter()),
        "the restored history is the original's up to seq {last}"
    );
    eprintln!(
        "backup {name}: {} bytes; {} publishes acknowledged, {} before the backup was asked \
         for, {last} in the backup, 0 lost",
        bytes.len(),
        acked.len(),
        before.len()
    );

    // The snapshot's outbox rows run here: the trigger records every restored message.
    let started = Instant::now();
    loop {
        let (status, body) = app_get(&restored, "/api/seen").await;
        assert_eq!(status, 200, "{body}");
        let seen: Vec<String> = serde_json::from_str(&body).unwrap();
        if seen.len() as i64 == last {
            let mut expected: Vec<String> = (1..=last).map(|s| format!("seen-{s}")).collect();
            expected.sort();
            let mut seen = seen;
            seen.sort();
            assert_eq!(seen, expected);
            eprintln!(
                "restored deliveries all ran {:?} after the start",
                started.elapsed()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "trigger deliveries of the restored messages: {} of {last}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    assert_eq!(
        app_get(&restored, "/api/hello").await,
        (200, "\"hello from before\"".into())
    );
    assert_eq!(
        app_get(&restored, "/").await,
        (200, "<p>the shop</p>".into()),
        "static files' bytes came along"
    );

    // A stream resumes from the last id it saw, then gets the next publish live.
    let mut stream = reqwest::Client::new()
        .get(restored.url("/realtime/topics/orders"))
        .header("host", "shop.localhost")
        .header("last-event-id", (last - 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, &format!("id: {last}\n")).await;
    let (status, body) = admin_post(
        &restored,
        &key,
        "/api/v1/apps/shop/topics/orders/publish",
        json!({"n": "after restore"}),
    )
    .await;
    assert_eq!(
        (status, body["seq"].as_i64()),
        (201, Some(last + 1)),
        "{body}"
    );
    read_until(&mut stream, &mut seen, "after restore").await;
    assert!(seen.contains(&format!("id: {}\n", last + 1)), "{seen}");
    assert_eq!(
        seen.matches("\"seq\":").count(),
        2,
        "nothing replayed twice: {seen}"
    );

    // The backup travelled with the data dir? No: backups stay on the original server.
    let (status, list) = admin(&restored, &key, Method::GET, "/api/v1/backups").await;
    assert_eq!(
        (status, list["backups"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

#[tokio::test]
async fn scheduled_backups_keep_the_newest_and_hand_made_ones_stay() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            ("PICLOUD_BACKUP_CRON", "* * * * * *"),
            ("PICLOUD_BACKUP_KEEP", "2"),
        ],
    );
    let key = server.bootstrap_key().unwrap();
    let (status, made) = admin(&server, &key, Method::POST, "/api/v1/backups").await;
    assert!(
        status == 201 || (status == 409 && made["error"]["code"] == "backup_running"),
        "{status} {made}"
    );
    let by_hand = loop {
        let (status, made) = admin(&server, &key, Method::POST, "/api/v1/backups").await;
        if status == 201 {
            break made["name"].as_str().unwrap().to_owned();
        }
    };
    assert!(!by_hand.contains("scheduled"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut scheduled_seen = std::collections::BTreeSet::new();
    loop {
        let (status, list) = admin(&server, &key, Method::GET, "/api/v1/backups").await;
        assert_eq!(status, 200);
        assert_eq!(list["schedule"], "* * * * * *");
        assert_eq!(list["keep"], 2);
        let backups = list["backups"].as_array().unwrap();
        let scheduled: Vec<&str> = backups
            .iter()
            .filter(|b| b["scheduled"] == true)
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert!(
            scheduled.len() <= 3,
            "pruned to 2 after each new one: {list}"
        );
        assert!(
            backups.iter().any(|b| b["name"] == by_hand.as_str()),
            "the hand-made backup is kept: {list}"
        );
        scheduled_seen.extend(scheduled.iter().map(|s| s.to_string()));
        if scheduled_seen.len() >= 4 && scheduled.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "scheduled backups: {list}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, _) = admin(
        &server,
        &key,
        Method::DELETE,
        &format!("/api/v1/backups/{by_hand}"),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin(
        &server,
        &key,
        Method::DELETE,
        &format!("/api/v1/backups/{by_hand}"),
    )
    .await;
    assert_eq!(status, 404);
}

#[test]
fn backups_of_postgresql_are_refused_with_directions() {
    let out = Command::new(BIN)
        .args(["serve"])
        .env_clear()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("PICLOUD_BACKUP_CRON", "0 3 * * *")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pg_dump"), "{err}");
}
