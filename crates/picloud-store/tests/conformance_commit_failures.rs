//! A write whose commit fails is never reported as done, and the connection it failed on
//! never carries the next write into a half-open transaction: on both backends, for a
//! publish batch and for a kv write with its trigger's outbox row.
//!
//! The failure is a deferred foreign key, checked at `COMMIT` (PostgreSQL: at the end of
//! the publish's one autocommit statement). SQLite leaves the transaction open when its
//! `COMMIT` fails this way. Marked values (`fail_at_commit`) trip it; a test database
//! gets the tables and triggers that do so, nothing else changes.

use std::sync::Arc;

use picloud_core::app::{NewApp, Slug};
use picloud_core::data::KvKey;
use picloud_core::ids::AppId;
use picloud_core::message::PublishItem;
use picloud_core::script::ScriptName;
use picloud_core::store::{AppStore, DataStore, MessageStore, TriggerStore};
use picloud_core::topic::TopicName;
use picloud_core::trigger::{NewTrigger, RetryPolicy, TriggerFilter, TriggerKind};
use picloud_store::testing::{outbox_rows, TestDatabase};
use picloud_store::{Backend, Db, SqlStore};
use serde_json::json;

picloud_store::conformance!(
    a_publish_whose_commit_fails_is_never_acknowledged,
    a_kv_write_whose_commit_fails_leaves_no_value_and_no_delivery,
);

const MARK: &str = "fail_at_commit";

/// Makes any commit that wrote a marked message or kv value fail.
async fn install_commit_failure(store: &SqlStore) {
    let statements: &[&str] = match store.db() {
        Db::Sqlite(_) => &[
            "CREATE TABLE fault_parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE fault_child (parent INTEGER \
             REFERENCES fault_parent (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER fault_messages AFTER INSERT ON messages \
             WHEN NEW.payload LIKE '%fail_at_commit%' \
             BEGIN INSERT INTO fault_child VALUES (1); END",
            "CREATE TRIGGER fault_kv AFTER INSERT ON kv \
             WHEN NEW.value LIKE '%fail_at_commit%' \
             BEGIN INSERT INTO fault_child VALUES (1); END",
        ],
        Db::Postgres(_) => &[
            "CREATE TABLE fault_parent (id INT PRIMARY KEY)",
            "CREATE TABLE fault_child (parent INT \
             REFERENCES fault_parent (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE FUNCTION fault_mark() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN INSERT INTO fault_child VALUES (1); RETURN NULL; END $$",
            "CREATE TRIGGER fault_messages AFTER INSERT ON messages FOR EACH ROW \
             WHEN (NEW.payload LIKE '%fail_at_commit%') EXECUTE FUNCTION fault_mark()",
            "CREATE TRIGGER fault_kv AFTER INSERT ON kv FOR EACH ROW \
             WHEN (NEW.value LIKE '%fail_at_commit%') EXECUTE FUNCTION fault_mark()",
        ],
    };
    for sql in statements {
        match store.db() {
            Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn app(store: &SqlStore) -> AppId {
    store
        .create_app(NewApp {
            slug: Slug::parse("app-a").unwrap(),
            name: "a".into(),
        })
        .await
        .unwrap()
        .id
}

fn item(app: &AppId, payload: String) -> PublishItem {
    PublishItem {
        app_id: app.clone(),
        topic: TopicName::parse("chat").unwrap(),
        payload: Arc::from(payload),
        published_at: 1,
    }
}

/// The topic's history as (seq, payload).
async fn history(store: &SqlStore, app: &AppId) -> Vec<(i64, String)> {
    store
        .read_after(app, &TopicName::parse("chat").unwrap(), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq.unwrap(), m.payload.to_string()))
        .collect()
}

/// A second store on the same database: what it reads was committed, not merely written
/// on the first store's connection.
async fn reopen(store: &SqlStore) -> SqlStore {
    let location = match store.db() {
        Db::Sqlite(pool) => picloud_store::DatabaseLocation::SqliteFile(
            pool.connect_options().get_filename().to_owned(),
        ),
        Db::Postgres(pool) => {
            let o = pool.connect_options();
            picloud_store::DatabaseLocation::Postgres(format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().expect("a database name"),
            ))
        }
    };
    picloud_store::connect(&location).await.unwrap()
}

async fn a_publish_whose_commit_fails_is_never_acknowledged(store: SqlStore) {
    install_commit_failure(&store).await;
    let a = app(&store).await;
    let mut acknowledged = Vec::new();
    // More rounds than the pool has connections: a connection left inside a transaction
    // would be handed out again within them.
    for round in 0..12 {
        let good = format!(r#"{{"n":{round}}}"#);
        let seqs = store
            .publish_batch(&[item(&a, good.clone())])
            .await
            .unwrap();
        acknowledged.push((seqs.seqs[0], good));
        let bad = format!(r#"{{"n":{round},"{MARK}":true}}"#);
        let err = store
            .publish_batch(&[item(&a, format!(r#"{{"before":{round}}}"#)), item(&a, bad)])
            .await
            .expect_err("a commit that fails is an error");
        assert!(
            matches!(err, picloud_core::StoreError::Internal(_)),
            "{err:?}"
        );
    }
    let seqs: Vec<i64> = acknowledged.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<_>>(),
        "no seq skipped or reused"
    );
    let other = reopen(&store).await;
    let stored = history(&other, &a).await;
    assert_eq!(
        stored, acknowledged,
        "exactly what was acknowledged is stored"
    );
    other.close().await;
}

async fn a_kv_write_whose_commit_fails_leaves_no_value_and_no_delivery(store: SqlStore) {
    install_commit_failure(&store).await;
    let a = app(&store).await;
    let trigger = store
        .create_trigger(
            &a,
            NewTrigger {
                script: ScriptName::parse("handler").unwrap(),
                filter: TriggerFilter::parse(TriggerKind::Kv, &json!({})).unwrap(),
                enabled: true,
                retry: RetryPolicy::default(),
            },
        )
        .await
        .unwrap()
        .id;
    for round in 0..12 {
        let good = KvKey::parse(&format!("good:{round}")).unwrap();
        store.kv_set(&a, &good, "1", None).await.unwrap();
        let bad = KvKey::parse(&format!("bad:{round}")).unwrap();
        store
            .kv_set(&a, &bad, &format!(r#""{MARK}""#), None)
            .await
            .expect_err("a commit that fails is an error");
    }
    let other = reopen(&store).await;
    for round in 0..12 {
        let good = KvKey::parse(&format!("good:{round}")).unwrap();
        let bad = KvKey::parse(&format!("bad:{round}")).unwrap();
        assert!(
            other.kv_get(&a, &good, 0).await.unwrap().is_some(),
            "{round}"
        );
        assert!(
            other.kv_get(&a, &bad, 0).await.unwrap().is_none(),
            "{round}"
        );
    }
    let rows = outbox_rows(&other, &a).await;
    assert_eq!(rows.len(), 12, "one delivery per committed write: {rows:?}");
    assert!(rows
        .iter()
        .all(|(t, e)| *t == trigger && e.contains("good:")));
    other.close().await;
}

/// PostgreSQL: every backend but one is terminated between two publishes, the kept
/// publish connection's among them. Publishes on dead connections fail (they are not
/// acknowledged); publishing resumes on new connections with the next seq.
#[tokio::test]
async fn postgres_a_terminated_writer_backend_loses_nothing_acknowledged() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = db.open().await;
    let a = app(&store).await;
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    let publish = |n: usize| {
        let payload = format!(r#"{{"n":{n}}}"#);
        let store = store.clone();
        let a = a.clone();
        async move {
            let r = store.publish_batch(&[item(&a, payload.clone())]).await;
            r.map(|c| (c.seqs[0], payload))
        }
    };
    for n in 0..3 {
        acknowledged.push(publish(n).await.unwrap());
    }
    let Db::Postgres(pool) = store.db() else {
        unreachable!()
    };
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(pool)
    .await
    .unwrap();
    for n in 3..40 {
        match publish(n).await {
            Ok(ack) => acknowledged.push(ack),
            Err(e) => {
                assert!(e.is_storage_condition(), "{e:?}");
                failed += 1;
            }
        }
    }
    assert!(failed >= 1, "the kept writer's backend was terminated");
    assert!(
        acknowledged.len() >= 30,
        "publishing resumed: {acknowledged:?}"
    );
    let seqs: Vec<i64> = acknowledged.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let stored = history(&store, &a).await;
    assert_eq!(stored, acknowledged);
    store.close().await;
}
