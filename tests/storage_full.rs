//! The issue-21 reproduction, replayed on the real binary: a server whose data dir is on a
//! small filesystem that fills up while a client publishes 4 KB durable messages one at a
//! time on one keep-alive connection.
//!
//! The filesystem is a real tmpfs, mounted in a user and mount namespace of the test's own
//! (`unshare --user --map-root-user --mount`: no root needed) and kept alive by a `sleep`
//! in it. Servers run in that namespace (`nsenter`); the test reaches the tmpfs through
//! `/proc/<pid>/root/…`. A filler file takes part of it; deleting the filler is "space
//! returns". The disk fills where it does
//! in production: SQLite's WAL writes at `COMMIT` fail with `ENOSPC`.
//!
//! Asserted: only 201 and 507 `storage_full` answers, never 500; `/readyz`, `/metrics` and
//! the log report the condition once; ephemeral publishes and open streams keep working;
//! a kv write through a script answers 507 and its trigger records no delivery; writes
//! resume by themselves once space returns, with the next seq; a second server on the same
//! data dir refuses to start; SIGTERM stops the server within its deadline; and after a
//! restart, history holds every acknowledged message with its seq and payload, each seq
//! acknowledged once; and `PRAGMA integrity_check` on the stopped server's database is `ok`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::sse::SseStream;
use support::{admin_post, call, readyz, sample, scrape, Server};

const FS_BYTES: u64 = 16 << 20;
const FILLER_BYTES: usize = 4 << 20;

/// A tmpfs of `FS_BYTES` in a namespace of our own, alive while this lives.
struct SmallDisk {
    anchor: Child,
    /// The mount point, inside the namespace.
    mount_point: PathBuf,
    /// The mount point as the test reaches it from outside.
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mount_point = dir.path().join("fs");
        std::fs::create_dir(&mount_point).unwrap();
        let script = format!(
            "mount -t tmpfs -o size={FS_BYTES} tmpfs '{}' && echo mounted && exec sleep 3600",
            mount_point.display()
        );
        let mut anchor = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) is required by this test");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(anchor.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            "mounted",
            "cannot mount a tmpfs in a user namespace (unprivileged user namespaces off?): {:?}",
            anchor
                .wait_with_output()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        );
        let outside = PathBuf::from(format!("/proc/{}/root", anchor.id()))
            .join(mount_point.strip_prefix("/").expect("an absolute temp dir"));
        Self {
            anchor,
            mount_point,
            outside,
            _dir: dir,
        }
    }

    /// The command prefix that runs a program inside the namespace.
    fn enter(&self) -> Vec<String> {
        vec![
            which("nsenter"),
            format!("--target={}", self.anchor.id()),
            "--user".into(),
            "--mount".into(),
            "--preserve-credentials".into(),
        ]
    }

    fn start_server(&self, data: &Path) -> Server {
        let enter = self.enter();
        let enter: Vec<&str> = enter.iter().map(String::as_str).collect();
        Server::start_via(&enter, data, &[("RUST_LOG", "info")])
    }
}

/// The absolute path of `program` (children run with a cleared environment).
fn which(program: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{program} (util-linux) is required by this test"
    );
    path
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

/// An SSE stream of the app's `chat` topic.
struct Frames(SseStream);

impl Frames {
    async fn open(server: &Server, query: &str) -> Self {
        let res = reqwest::Client::new()
            .get(server.url(&format!("/realtime/topics/chat{query}")))
            .header("host", "full.localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        Self(SseStream::new(res))
    }

    /// The next `message` frame's data.
    async fn message(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), self.0.next())
                .await
                .expect("a frame within 15 s")
                .expect("the stream stays open");
            if let Some(v) = frame.message() {
                return v;
            }
        }
    }
}

async fn publish(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    body: &Value,
    ephemeral: bool,
) -> (u16, Value) {
    let q = if ephemeral { "?ephemeral=true" } else { "" };
    let res = client
        .post(server.url(&format!("/api/v1/apps/full/topics/chat/publish{q}")))
        .header("host", "localhost")
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn app_call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(method, &server.url(path), "full.localhost", None, body).await
}

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Warnings and errors in `log` other than the one "storage is full" line: none.
fn assert_quiet(log: &str) {
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains("storage is full"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

fn stderr_of(server: &Server) -> String {
    server.stderr.lock().unwrap().join("\n")
}

/// Sets up the app: a public topic that keeps everything, kv endpoints and a kv trigger
/// that marks each key it sees.
async fn set_up(server: &Server, key: &str) {
    let setup = [
        ("/api/v1/apps", json!({"slug": "full"})),
        (
            "/api/v1/apps/full/topics",
            json!({"name": "chat", "external_subscribable": true,
            "auth_mode": "public", "retention": {"max_messages": 1_000_000, "max_age_secs": null}}),
        ),
        (
            "/api/v1/apps/full/scripts",
            json!({"name": "put",
            "source": "kv::set(\"item:\" + request.params.k, request.json); #{ ok: true }"}),
        ),
        (
            "/api/v1/apps/full/scripts",
            json!({"name": "put_doc",
            "source": "docs::insert(\"items\", #{ k: request.params.k, pad: request.json.pad }); #{ ok: true }"}),
        ),
        (
            "/api/v1/apps/full/scripts",
            json!({"name": "mark_doc",
            "source": "kv::set(\"seen:doc:\" + event.doc.k, true)"}),
        ),
        (
            "/api/v1/apps/full/routes",
            json!({"method": "POST", "path": "/doc/:k", "script": "put_doc"}),
        ),
        (
            "/api/v1/apps/full/triggers",
            json!({"kind": "docs", "script": "mark_doc",
            "filter": {"collection": "items"}, "retry": {"max_attempts": 100, "base_delay_ms": 100, "max_delay_ms": 500}}),
        ),
        (
            "/api/v1/apps/full/scripts",
            json!({"name": "seen",
            "source": "#{ keys: kv::list(\"seen:\", 1000).map(|e| e.key) }"}),
        ),
        (
            "/api/v1/apps/full/scripts",
            json!({"name": "mark",
            "source": "kv::set(\"seen:\" + event.key, true)"}),
        ),
        (
            "/api/v1/apps/full/routes",
            json!({"method": "POST", "path": "/item/:k", "script": "put"}),
        ),
        (
            "/api/v1/apps/full/routes",
            json!({"method": "GET", "path": "/seen", "script": "seen"}),
        ),
        (
            "/api/v1/apps/full/triggers",
            json!({"kind": "kv", "script": "mark",
            "filter": {"prefix": "item:"}, "retry": {"max_attempts": 100, "base_delay_ms": 100, "max_delay_ms": 500}}),
        ),
    ];
    for (path, body) in setup {
        let (status, answer) = admin_post(server, key, path, body).await;
        assert_eq!(status, 201, "{path}: {answer}");
    }
}

async fn seen_keys(server: &Server) -> BTreeSet<String> {
    let (status, body) = app_call(server, reqwest::Method::GET, "/seen", None).await;
    assert_eq!(status, 200, "{body}");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().trim_start_matches("seen:").to_owned())
        .collect()
}

fn message(n: usize) -> Value {
    json!({"n": n, "pad": "x".repeat(4000)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_acknowledges_only_what_is_stored() {
    let disk = SmallDisk::mount();
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(disk.outside.join("data"))
        .unwrap();
    let data: &Path = &disk.mount_point.join("data");
    let filler = disk.outside.join("filler");
    std::fs::write(&filler, vec![7u8; FILLER_BYTES]).unwrap();

    let server = disk.start_server(data);
    let key = server.bootstrap_key().expect("bootstrap key");
    set_up(&server, &key).await;
    let mut live = Frames::open(&server, "").await;
    let client = reqwest::Client::new();

    // Fill the disk: publish until the server has refused 30 in a row.
    let mut acknowledged: BTreeMap<i64, Value> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut refused_in_a_row = 0;
    let mut n = 0;
    while refused_in_a_row < 30 {
        assert!(n < 20_000, "the disk never filled: {statuses:?}");
        let body = message(n);
        let (status, answer) = publish(&client, &server, &key, &body, false).await;
        *statuses.entry(status).or_default() += 1;
        match status {
            201 => {
                refused_in_a_row = 0;
                let seq = answer["seq"].as_i64().unwrap();
                assert!(
                    acknowledged.insert(seq, body).is_none(),
                    "seq {seq} acknowledged twice"
                );
            }
            507 => {
                refused_in_a_row += 1;
                assert_eq!(answer["error"]["code"], "storage_full", "{answer}");
            }
            _ => panic!("a full disk answers 201 or 507, not {status} {answer} ({statuses:?})"),
        }
        n += 1;
    }
    assert!(acknowledged.len() >= 100, "{statuses:?}");

    // The node says so: readiness (still 200: reads and streams work), metrics, one log line.
    wait_for("readyz reports storage_full", 10, async || {
        readyz(&server).await["storage"] == "full"
    })
    .await;
    assert_eq!(readyz(&server).await["status"], "storage_full");
    assert_eq!(
        sample(&scrape(&server, &key).await, "picloud_storage_full"),
        1.0
    );

    // Ephemeral publishes and the open stream go on; the stream saw every durable message
    // that was acknowledged, in order, and nothing else.
    for (seq, body) in &acknowledged {
        let m = live.message().await;
        assert_eq!(m["seq"], *seq);
        assert_eq!(m["message"], *body);
    }
    let (status, _) = publish(&client, &server, &key, &json!({"ephemeral": 1}), true).await;
    assert_eq!(status, 202);
    let m = live.message().await;
    assert_eq!(
        (m["seq"].clone(), m["message"].clone()),
        (Value::Null, json!({"ephemeral": 1}))
    );

    // A script's kv or docs write is refused the same way, and its trigger records no
    // delivery: the triggers mark what they see, and only committed writes are seen.
    let mut kv_acknowledged = BTreeSet::new();
    for what in ["item", "doc"] {
        let mut refused = 0;
        for k in 0..10 {
            let (status, body) = app_call(
                &server,
                reqwest::Method::POST,
                &format!("/{what}/full{k}"),
                Some(json!({"pad": "y".repeat(30_000)})),
            )
            .await;
            match status {
                200 => {
                    kv_acknowledged.insert(format!("{what}:full{k}"));
                }
                507 => {
                    refused += 1;
                    assert_eq!(body["error"]["code"], "storage_full", "{body}");
                }
                _ => panic!("{what} write while full: {status} {body}"),
            }
        }
        assert!(refused > 0, "no {what} write was refused");
    }

    // One server per data dir.
    let enter = disk.enter();
    let second = Command::new(&enter[0])
        .args(&enter[1..])
        .arg(support::BIN)
        .arg("serve")
        .env_clear()
        .env("PICLOUD_LISTEN", "127.0.0.1:0")
        .env("PICLOUD_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another PiCloud server is already using the database"),
        "{said}"
    );

    // The log said it once, and nothing else about it: no line per refused request or per
    // failed background write.
    let log = stderr_of(&server);
    assert_eq!(log.matches("storage is full").count(), 1, "{log}");
    assert_quiet(&log);

    // SIGTERM ends it within its deadline (10 s by default), full disk or not.
    let asked = Instant::now();
    drop(live);
    let (status, _, _) = server.stop("TERM");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(11), "{took:?}");
    assert!(status.success(), "{status}");

    // A restart on the full disk serves; durable writes are still refused, and it says so.
    let server = disk.start_server(data);
    let last = *acknowledged.keys().last().unwrap();
    let mut live = Frames::open(&server, &format!("?last_event_id={last}")).await;
    let (status, answer) = publish(&client, &server, &key, &message(99_999), false).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (507, &json!("storage_full")),
        "{answer}"
    );
    wait_for(
        "readyz reports storage_full after the restart",
        10,
        async || readyz(&server).await["storage"] == "full",
    )
    .await;

    // Space returns: writes resume by themselves, with the next seq.
    std::fs::remove_file(&filler).unwrap();
    wait_for("readyz reports space again", 15, async || {
        readyz(&server).await["storage"] == "ok"
    })
    .await;
    for i in 0..20 {
        let body = message(100_000 + i);
        let (status, answer) = publish(&client, &server, &key, &body, false).await;
        assert_eq!(status, 201, "after space returned: {answer}");
        let seq = answer["seq"].as_i64().unwrap();
        assert_eq!(
            seq,
            last + 1 + i as i64,
            "seqs continue with no gap and no reuse"
        );
        acknowledged.insert(seq, body);
        let m = live.message().await;
        assert_eq!(m["seq"], seq);
    }
    for what in ["item", "doc"] {
        for k in 0..5 {
            let (status, body) = app_call(
                &server,
                reqwest::Method::POST,
                &format!("/{what}/after{k}"),
                Some(json!({"pad": k})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            kv_acknowledged.insert(format!("{what}:after{k}"));
        }
    }
    wait_for("the triggers saw every committed write", 30, async || {
        seen_keys(&server).await == kv_acknowledged
    })
    .await;
    assert_eq!(
        sample(&scrape(&server, &key).await, "picloud_storage_full"),
        0.0
    );
    let log = stderr_of(&server);
    assert_eq!(log.matches("storage is full").count(), 1, "{log}");
    assert_eq!(log.matches("storage has space again").count(), 1, "{log}");
    assert_quiet(&log);
    drop(live);
    let (status, _, _) = server.stop("TERM");
    assert!(status.success(), "{status}");

    // After a restart, history holds every acknowledged message, as acknowledged.
    let server = disk.start_server(data);
    let mut history = Frames::open(&server, "?last_event_id=0").await;
    let mut seqs = Vec::new();
    for (seq, body) in &acknowledged {
        let m = history.message().await;
        assert_eq!(
            m["seq"], *seq,
            "history is contiguous and holds every acknowledged seq"
        );
        assert_eq!(
            m["message"], *body,
            "seq {seq} holds what was acknowledged for it"
        );
        seqs.push(*seq);
    }
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    drop(history);
    // Nothing beyond them either: the next publish takes the next seq.
    let (status, answer) = publish(&client, &server, &key, &json!({"last": true}), false).await;
    assert_eq!(status, 201);
    assert_eq!(answer["seq"], seqs.len() as i64 + 1);
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());

    // The file itself survived the refused commits: SQLite finds nothing wrong in it. A
    // copy is checked (SQLite resolves the `/proc/<pid>/root` link, which would lead it out
    // of the namespace); the server stopped cleanly, so the copy is the whole database.
    let copy = tempfile::tempdir().unwrap();
    for file in ["picloud.db", "picloud.db-wal"] {
        let from = disk.outside.join("data").join(file);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(file)).unwrap();
        }
    }
    if let Err(e) = picloud_store::check_sqlite_file(&copy.path().join("picloud.db")).await {
        panic!("integrity_check: {e}");
    }
}
