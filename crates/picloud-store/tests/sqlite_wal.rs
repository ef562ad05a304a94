//! SQLite's WAL is checkpointed in the background (`checkpoint` in the crate), not only by
//! the commit that crosses `wal_autocheckpoint`, and that task ends with the store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use picloud_core::app::{NewApp, Slug};
use picloud_core::message::PublishItem;
use picloud_core::store::{AppStore, MessageStore};
use picloud_core::topic::TopicName;
use picloud_store::testing::TestDatabase;
use picloud_store::{connect, Backend, DatabaseLocation, SqlStore, SQLITE_FILE};

async fn open(dir: &Path) -> SqlStore {
    connect(&DatabaseLocation::SqliteFile(dir.join(SQLITE_FILE)))
        .await
        .expect("open SQLite")
}

/// Publishes `batches` × 100 messages of ~1 KiB on one app, 10 topics.
async fn publish(store: &SqlStore, batches: usize) {
    let app = store
        .create_app(NewApp {
            slug: Slug::parse("wal").unwrap(),
            name: "wal".into(),
        })
        .await
        .unwrap()
        .id;
    let pad = "x".repeat(1000);
    for b in 0..batches {
        let items: Vec<PublishItem> = (0..100)
            .map(|i| PublishItem {
                app_id: app.clone(),
                topic: TopicName::parse(&format!("t{}", i % 10)).unwrap(),
                payload: Arc::from(format!(r#"{{"b":{b},"pad":"{pad}"}}"#)),
                published_at: 1,
            })
            .collect();
        store.publish_batch(&items).await.unwrap();
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Polls `check` every 20 ms until it holds or `within` passes.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn commits_reach_the_database_file_without_waiting_for_the_writers_threshold() {
    let tdb = TestDatabase::new(Backend::Sqlite).await;
    let dir = tdb.data_dir.path();
    let store = open(dir).await;
    let db = dir.join(SQLITE_FILE);
    let before = size(&db);
    // ~4 MiB of messages: about 1,000 WAL pages, a tenth of the writers' own threshold, so
    // only the background task moves them into the database file.
    publish(&store, 40).await;
    let wal = size(&dir.join(format!("{SQLITE_FILE}-wal")));
    assert!(
        wal > 2 << 20,
        "the WAL holds the commits first ({wal} bytes)"
    );
    let grown = eventually(Duration::from_secs(5), || size(&db) > before + (3 << 20)).await;
    assert!(
        grown,
        "the database file grew from {before} to only {} bytes within 5 s",
        size(&db)
    );
}

/// Open file descriptors of this process on `path` (the database, its WAL or shm).
fn open_fds(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(path))
        .count()
}

#[tokio::test]
async fn the_checkpoint_task_ends_with_the_last_store_clone() {
    let tdb = TestDatabase::new(Backend::Sqlite).await;
    let dir = tdb.data_dir.path().canonicalize().unwrap();
    let store = open(&dir).await;
    publish(&store, 2).await;
    let clone = store.clone();
    assert!(open_fds(&dir) > 0, "the store holds the database open");
    drop(store);
    // Another clone still runs the task: a checkpoint still happens after the first drop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(open_fds(&dir) > 0);
    drop(clone);
    // Had the task outlived the store, its pool would keep the files open for good.
    let closed = eventually(Duration::from_secs(5), || open_fds(&dir) == 0).await;
    assert!(
        closed,
        "{} descriptors still open on {}",
        open_fds(&dir),
        dir.display()
    );
}
