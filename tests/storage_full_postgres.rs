//! A full disk under PostgreSQL: the database's tablespace on a small tmpfs of the test's
//! own, on a private PostgreSQL server (`support::postgres`), the write-ahead log on the
//! ordinary disk (PostgreSQL stops itself when its WAL cannot be written; that is its own
//! documented behaviour, not ours to test: a full data volume is the case a user meets).
//!
//! Asserted: durable publishes answer only 201 or 507 `storage_full` (never 500), ephemeral
//! ones keep flowing to an open stream, `/readyz` says `"storage":"full"` and the server
//! stays up; once space is freed, writes resume by themselves with the next seq, and the
//! history holds every acknowledged message, each seq once, no gap.
//!
//! Needs root (it mounts a tmpfs and runs PostgreSQL as its user), like `pg_outage.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::postgres::PrivatePostgres;
use support::{admin_post, call, read_until, readyz, Server};

const FS_BYTES: u64 = 24 << 20;
const FILLER_BYTES: usize = 8 << 20;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_BYTES},mode=0755")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn psql(pg: &PrivatePostgres, sql: &str) {
    let out = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
        ])
        .arg(pg.url("postgres"))
        .args(["-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {out:?}");
}

async fn publish(server: &Server, key: &str, body: &Value, ephemeral: bool) -> (u16, Value) {
    let q = if ephemeral { "?ephemeral=true" } else { "" };
    let res = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/apps/full/topics/chat/publish{q}")))
        .header("host", "localhost")
        .bearer_auth(key)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("an answer, never a hang");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_postgresql_volume_acknowledges_only_what_is_stored() {
    // Declared first so it is dropped last: PostgreSQL must stop before the tmpfs unmounts.
    let disk = SmallDisk::mount();
    let pg = PrivatePostgres::start();
    let space: PathBuf = disk.path().join("pg");
    std::fs::create_dir(&space).unwrap();
    let chown = Command::new("chown")
        .arg("postgres:postgres")
        .arg(&space)
        .status()
        .unwrap();
    assert!(chown.success());
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![7u8; FILLER_BYTES]).unwrap();
    psql(
        &pg,
        &format!("CREATE TABLESPACE small LOCATION '{}'", space.display()),
    );
    psql(&pg, "CREATE DATABASE picloud TABLESPACE small");

    let data = tempfile::tempdir().unwrap();
    let url = pg.url("picloud");
    let server = Server::start(data.path(), &[("DATABASE_URL", url.as_str())]);
    let key = server.bootstrap_key().unwrap();
    let (status, body) = admin_post(
        &server,
        &key,
        "/api/v1/apps",
        json!({"slug": "full", "name": "Full"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_post(
        &server,
        &key,
        "/api/v1/apps/full/topics",
        json!({"name": "chat", "auth_mode": "public", "external_subscribable": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Fill the volume with 4 KB messages until PostgreSQL refuses to extend a file (the
    // padding random, or TOAST would compress it away).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut pad = move || -> String {
        (0..4000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'a' + (state % 26) as u8)
            })
            .collect()
    };
    let mut acked: Vec<(i64, usize)> = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    for n in 0.. {
        let (status, body) = publish(&server, &key, &json!({"n": n, "pad": pad()}), false).await;
        match status {
            201 => acked.push((body["seq"].as_i64().unwrap(), n)),
            507 => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
            other => panic!("only 201 or 507 while the volume fills, got {other}: {body}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the volume did not fill ({} acknowledged)",
            acked.len()
        );
    }
    assert!(
        acked.len() > 100,
        "{} acknowledged before it filled",
        acked.len()
    );
    assert_eq!(readyz(&server).await["storage"], "full");

    // Streams open and ephemeral publishes reach them; the server stays up.
    let mut stream = reqwest::Client::new()
        .get(server.url("/realtime/topics/chat"))
        .header("host", "full.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let (status, body) = publish(&server, &key, &json!({"eph": "still here"}), true).await;
    assert_eq!(status, 202, "{body}");
    read_until(&mut stream, &mut seen, "still here").await;
    assert!(
        server_alive(&server).await,
        "the server stays up on a full volume"
    );

    // Space returns: writes resume by themselves, with the next seq.
    std::fs::remove_file(&filler).unwrap();
    let last = acked.last().unwrap().0;
    let deadline = Instant::now() + Duration::from_secs(15);
    let resumed = loop {
        let (status, body) = publish(&server, &key, &json!({"n": "after"}), false).await;
        if status == 201 {
            break body["seq"].as_i64().unwrap();
        }
        assert_eq!(status, 507, "{body}");
        assert!(Instant::now() < deadline, "writes did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(resumed, last + 1, "no seq lost or reused");
    let deadline = Instant::now() + Duration::from_secs(5);
    while readyz(&server).await["storage"] != "ok" {
        assert!(Instant::now() < deadline, "readyz reports space again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every acknowledged message is stored with its seq, once; no gap.
    let mut history = std::collections::BTreeMap::new();
    let mut before = String::new();
    loop {
        let (status, page) = call(
            reqwest::Method::GET,
            &server.url(&format!(
                "/api/v1/apps/full/topics/chat/messages?limit=500{before}"
            )),
            "localhost",
            Some(&key),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap().clone();
        let Some(oldest) = messages.last() else { break };
        before = format!("&before_seq={}", oldest["seq"]);
        for m in messages {
            history.insert(m["seq"].as_i64().unwrap(), m["message"]["n"].clone());
        }
    }
    assert_eq!(
        history.keys().copied().collect::<Vec<_>>(),
        (1..=resumed).collect::<Vec<_>>(),
        "seqs contiguous"
    );
    for (seq, n) in &acked {
        assert_eq!(history[seq], json!(n), "seq {seq}");
    }
    eprintln!(
        "PostgreSQL volume full: {} acknowledged, {refused} refused with 507, 0 lost; \
         writes resumed at seq {resumed}",
        acked.len()
    );
    let (status, _, log) = server.stop("TERM");
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("panicked"),
        "no panic on a full volume: {log}"
    );
    drop(pg);
}

async fn server_alive(server: &Server) -> bool {
    let (status, _) = call(
        reqwest::Method::GET,
        &server.url("/healthz"),
        "localhost",
        None,
        None,
    )
    .await;
    status == 200
}
