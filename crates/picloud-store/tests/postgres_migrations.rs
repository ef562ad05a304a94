//! Upgrading a PostgreSQL database that already holds history: migration 0005 moves
//! `messages` from (app id, topic name) keys to topic ids, and nothing may be lost or reach
//! another topic on the way.

use picloud_core::ids::AppId;
use picloud_core::message::PublishItem;
use picloud_core::store::{MessageStore, TopicStore};
use picloud_core::topic::TopicName;
use picloud_store::testing::TestDatabase;
use picloud_store::Backend;
use sqlx::migrate::Migrator;
use sqlx::Connection;

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/postgres");

#[tokio::test]
async fn history_written_before_topic_ids_survives_the_upgrade() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.database_url.clone().expect("postgres");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    // The schema as it was before topic ids (migrations up to 0004).
    let before = Migrator {
        migrations: POSTGRES
            .migrations
            .iter()
            .filter(|m| m.version <= 4)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..Migrator::DEFAULT
    };
    before.run(&mut conn).await.expect("migrate to 0004");
    for sql in [
        "INSERT INTO apps (id, slug, name, created_at, updated_at) VALUES \
         ('a1', 'alpha', 'alpha', 1, 1), ('b1', 'bravo', 'bravo', 1, 1)",
        "INSERT INTO topics (app_id, name, last_seq, created_at, updated_at) VALUES \
         ('a1', 'x', 3, 1, 1), ('a1', 'y', 1, 1, 1), ('b1', 'x', 2, 1, 1)",
        "INSERT INTO messages (app_id, topic, seq, payload, published_at) VALUES \
         ('a1', 'x', 1, '{\"n\":1}', 11), ('a1', 'x', 2, '{\"n\":2}', 12), \
         ('a1', 'x', 3, '{\"n\":3}', 13), ('a1', 'y', 1, '{\"n\":4}', 14), \
         ('b1', 'x', 1, '{\"n\":5}', 15), ('b1', 'x', 2, '{\"n\":6}', 16)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    conn.close().await.expect("close");

    // Opening the store runs the rest (0005 and later).
    let store = db.open().await;
    let (a, b) = (AppId("a1".into()), AppId("b1".into()));
    let x = TopicName::parse("x").unwrap();
    let y = TopicName::parse("y").unwrap();
    let history = |app: AppId, topic: TopicName| {
        let store = store.clone();
        async move {
            store
                .read_after(&app, &topic, 0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.seq.unwrap(), m.payload.to_string(), m.published_at))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        history(a.clone(), x.clone()).await,
        [
            (1, r#"{"n":1}"#.to_owned(), 11),
            (2, r#"{"n":2}"#.to_owned(), 12),
            (3, r#"{"n":3}"#.to_owned(), 13)
        ]
    );
    assert_eq!(
        history(a.clone(), y.clone()).await,
        [(1, r#"{"n":4}"#.to_owned(), 14)]
    );
    assert_eq!(
        history(b.clone(), x.clone()).await,
        [
            (1, r#"{"n":5}"#.to_owned(), 15),
            (2, r#"{"n":6}"#.to_owned(), 16)
        ]
    );

    // Publishing goes on from the old last seq, into the same history.
    let next = store
        .publish_batch(&[PublishItem {
            app_id: a.clone(),
            topic: x.clone(),
            payload: r#"{"n":7}"#.into(),
            published_at: 17,
        }])
        .await
        .unwrap();
    assert_eq!(next.seqs, [4]);
    assert_eq!(history(a.clone(), x.clone()).await.len(), 4);

    // Deleting a topic still deletes its history, and only its own.
    assert!(store.delete_topic(&a, &x).await.unwrap());
    assert!(history(a.clone(), x.clone()).await.is_empty());
    assert_eq!(history(b, x).await.len(), 2);
    assert_eq!(history(a, y).await.len(), 1);
}
