//! A full database (SQLite, filled through the `max_page_count` fault hook): writes fail
//! with `StorageFull` and nothing they touched is acknowledged; the store reports the
//! condition and clears it when space returns; every acknowledged seq is stored, once.
//! Its own test binary: the hook is configured through the process environment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use picloud_core::app::{NewApp, Slug};
use picloud_core::data::KvKey;
use picloud_core::message::PublishItem;
use picloud_core::store::{AppStore, DataStore, HealthStore, MessageStore};
use picloud_core::topic::TopicName;
use picloud_core::StoreError;
use picloud_store::{DatabaseLocation, Db};

async fn page_count(db: &Db) -> i64 {
    let Db::Sqlite(pool) = db else { unreachable!() };
    sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_full_sqlite_database_acknowledges_only_what_it_stores() {
    let dir = tempfile::tempdir().unwrap();
    let limit = dir.path().join("max_page_count");
    // Set before the first connection; the only test in this binary.
    std::env::set_var("PICLOUD_FAULT_SQLITE_MAX_PAGE_COUNT_FILE", &limit);
    let location = DatabaseLocation::SqliteFile(dir.path().join("picloud.db"));
    let store = picloud_store::connect(&location).await.unwrap();
    let app = store
        .create_app(NewApp {
            slug: Slug::parse("full").unwrap(),
            name: "full".into(),
        })
        .await
        .unwrap()
        .id;
    let topic = TopicName::parse("chat").unwrap();
    std::fs::write(&limit, (page_count(store.db()).await + 40).to_string()).unwrap();

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for n in 0..400 {
        let payload = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(2000));
        let item = PublishItem {
            app_id: app.clone(),
            topic: topic.clone(),
            payload: Arc::from(payload.as_str()),
            published_at: n,
        };
        match store.publish_batch(&[item]).await {
            Ok(c) => acknowledged.push((c.seqs[0], payload)),
            Err(StoreError::StorageFull(_)) => refused += 1,
            Err(e) => panic!("a full database answers StorageFull, not {e:?}"),
        }
        if refused >= 50 {
            break;
        }
    }
    assert!(
        refused >= 50 && acknowledged.len() >= 5,
        "{refused} refused, {} acknowledged",
        acknowledged.len()
    );
    until("the store reports it is full", || store.storage_full()).await;
    let err = store
        .kv_set(
            &app,
            &KvKey::parse("big").unwrap(),
            &format!("\"{}\"", "y".repeat(20_000)),
            None,
        )
        .await
        .expect_err("a kv write that needs space fails too");
    assert!(matches!(err, StoreError::StorageFull(_)), "{err:?}");
    // Reads go on.
    let stored = store.read_after(&app, &topic, 0, 1000).await.unwrap();
    assert_eq!(stored.len(), acknowledged.len());

    std::fs::write(&limit, "1000000").unwrap();
    let mut resumed = None;
    for n in 0..50 {
        let payload = format!(r#"{{"after":{n}}}"#);
        let item = PublishItem {
            app_id: app.clone(),
            topic: topic.clone(),
            payload: Arc::from(payload.as_str()),
            published_at: 1,
        };
        match store.publish_batch(&[item]).await {
            Ok(c) => {
                acknowledged.push((c.seqs[0], payload));
                resumed = Some(n);
                break;
            }
            Err(StoreError::StorageFull(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(resumed.is_some(), "writes resume once space returns");
    until("the store reports space again", || !store.storage_full()).await;
    store
        .kv_set(&app, &KvKey::parse("big").unwrap(), "1", None)
        .await
        .unwrap();

    let seqs: Vec<i64> = acknowledged.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "contiguous, none twice"
    );
    store.close().await;
    let reopened = picloud_store::connect(&location).await.unwrap();
    let stored: Vec<(i64, String)> = reopened
        .read_after(&app, &topic, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq.unwrap(), m.payload.to_string()))
        .collect();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged message is stored, as acknowledged"
    );
    reopened.close().await;
}
