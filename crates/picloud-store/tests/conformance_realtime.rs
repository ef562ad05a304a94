//! Conformance for the realtime stores (topics, messages, secrets), on SQLite and
//! PostgreSQL through the same test bodies.

use std::collections::HashSet;
use std::sync::Arc;

use picloud_core::app::{NewApp, Slug};
use picloud_core::ids::AppId;
use picloud_core::message::PublishItem;
use picloud_core::secret::AppSecret;
use picloud_core::store::{AppStore, MessageStore, SecretStore, TopicStore};
use picloud_core::topic::{AuthMode, NewTopic, RateLimit, Retention, TopicName, TopicPatch};
use picloud_core::StoreError;
use picloud_store::testing::{insert_pubsub_trigger, outbox_rows};
use picloud_store::SqlStore;

picloud_store::conformance!(
    topics_crud,
    publish_assigns_gap_free_seqs_and_creates_internal_topics,
    concurrent_publishers_never_share_or_skip_a_seq,
    a_failed_batch_writes_nothing,
    publish_writes_outbox_rows_for_matching_triggers,
    retention_prunes_by_count_and_age,
    deleting_a_topic_deletes_its_history,
    deleting_an_app_deletes_its_history,
    secrets_rotate_and_retire,
);

/// These tests check seqs; what else a commit wrote is checked where it matters.
trait PublishSeqs {
    async fn publish(&self, items: &[PublishItem]) -> Result<Vec<i64>, StoreError>;
}

impl PublishSeqs for SqlStore {
    async fn publish(&self, items: &[PublishItem]) -> Result<Vec<i64>, StoreError> {
        Ok(self.publish_batch(items).await?.seqs)
    }
}

async fn app(store: &SqlStore, slug: &str) -> AppId {
    store
        .create_app(NewApp {
            slug: Slug::parse(slug).unwrap(),
            name: slug.into(),
        })
        .await
        .unwrap()
        .id
}

fn t(name: &str) -> TopicName {
    TopicName::parse(name).unwrap()
}

fn item(app: &AppId, topic: &str, n: i64) -> PublishItem {
    PublishItem {
        app_id: app.clone(),
        topic: t(topic),
        payload: Arc::from(format!(r#"{{"n":{n}}}"#)),
        published_at: 1_000 + n,
    }
}

fn new_topic(name: &str) -> NewTopic {
    NewTopic {
        name: t(name),
        description: "d".into(),
        external_subscribable: true,
        auth_mode: AuthMode::Public,
        retention: Retention {
            max_messages: Some(100),
            max_age_secs: None,
        },
        client_publish: false,
        presence: true,
        client_event_limit: Some(RateLimit {
            count: 60,
            per_secs: 60,
        }),
    }
}

async fn topics_crud(store: SqlStore) {
    let a = app(&store, "alpha").await;
    let b = app(&store, "bravo").await;
    let created = store.create_topic(&a, new_topic("chat")).await.unwrap();
    assert_eq!(created.last_seq, 0);
    assert!(created.external_subscribable);
    store.create_topic(&a, new_topic("alerts")).await.unwrap();
    store.create_topic(&b, new_topic("chat")).await.unwrap();
    let dup = store.create_topic(&a, new_topic("chat")).await;
    assert!(matches!(dup, Err(StoreError::Conflict("topic"))), "{dup:?}");

    assert_eq!(
        store.get_topic(&a, &t("chat")).await.unwrap(),
        Some(created.clone())
    );
    let names: Vec<_> = store
        .list_topics(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["alerts", "chat"]);

    let patched = store
        .update_topic(
            &a,
            &t("chat"),
            TopicPatch {
                auth_mode: Some(AuthMode::Token),
                retention: Some(Retention {
                    max_messages: None,
                    max_age_secs: Some(60),
                }),
                ..TopicPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.auth_mode, AuthMode::Token);
    assert_eq!(
        patched.retention,
        Retention {
            max_messages: None,
            max_age_secs: Some(60)
        }
    );
    assert_eq!(patched.description, "d", "absent fields are left alone");
    assert!(patched.external_subscribable);
    assert!(patched.presence && !patched.client_publish);
    assert_eq!(created.client_event_limit, patched.client_event_limit);

    let features = store
        .update_topic(
            &a,
            &t("chat"),
            TopicPatch {
                client_publish: Some(true),
                presence: Some(false),
                client_event_limit: Some(None),
                ..TopicPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(features.client_publish && !features.presence);
    assert_eq!(
        features.client_event_limit, None,
        "the topic's limit removed"
    );
    assert_eq!(
        features.auth_mode,
        AuthMode::Token,
        "the earlier patch kept"
    );
    assert_eq!(
        store
            .get_topic(&b, &t("chat"))
            .await
            .unwrap()
            .unwrap()
            .auth_mode,
        AuthMode::Public,
        "other app untouched"
    );
    assert!(store
        .update_topic(&a, &t("nope"), TopicPatch::default())
        .await
        .unwrap()
        .is_none());

    assert!(store.delete_topic(&a, &t("chat")).await.unwrap());
    assert!(!store.delete_topic(&a, &t("chat")).await.unwrap());
    assert!(store.get_topic(&b, &t("chat")).await.unwrap().is_some());
}

async fn publish_assigns_gap_free_seqs_and_creates_internal_topics(store: SqlStore) {
    let a = app(&store, "alpha").await;
    let b = app(&store, "bravo").await;
    // Interleaved topics and apps in one batch: each topic counts on its own.
    let batch = vec![
        item(&a, "x", 1),
        item(&a, "y", 2),
        item(&a, "x", 3),
        item(&b, "x", 4),
    ];
    assert_eq!(store.publish(&batch).await.unwrap(), vec![1, 1, 2, 1]);
    assert_eq!(store.publish(&[item(&a, "x", 5)]).await.unwrap(), vec![3]);
    assert_eq!(store.publish(&[]).await.unwrap(), Vec::<i64>::new());

    let x = store.get_topic(&a, &t("x")).await.unwrap().unwrap();
    assert_eq!(x.last_seq, 3);
    assert!(
        !x.external_subscribable,
        "publishing creates internal topics"
    );
    assert_eq!(x.retention, Retention::DEFAULT);

    let history = store.read_after(&a, &t("x"), 0, 10).await.unwrap();
    let got: Vec<_> = history
        .iter()
        .map(|m| (m.seq.unwrap(), m.payload.to_string(), m.published_at))
        .collect();
    assert_eq!(
        got,
        [
            (1, r#"{"n":1}"#.into(), 1001),
            (2, r#"{"n":3}"#.into(), 1003),
            (3, r#"{"n":5}"#.into(), 1005)
        ]
    );
    assert_eq!(
        store.read_after(&a, &t("x"), 1, 1).await.unwrap()[0].seq,
        Some(2)
    );
    assert!(store
        .read_after(&a, &t("x"), 3, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.read_after(&b, &t("x"), 0, 10).await.unwrap().len(),
        1,
        "apps do not share topics"
    );
    // One read for many topics, in the order asked, 0 for a topic never published to;
    // more pairs than one query takes.
    let mut asked = vec![
        (a.clone(), t("y")),
        (b.clone(), t("x")),
        (a.clone(), t("nope")),
        (a.clone(), t("x")),
    ];
    let many: Vec<_> = (0..450)
        .map(|i| (b.clone(), t(&format!("none{i}"))))
        .collect();
    asked.extend(many);
    let lasts = store.last_seqs(&asked).await.unwrap();
    assert_eq!(lasts[..4], [1, 1, 0, 3]);
    assert!(lasts[4..].iter().all(|l| *l == 0) && lasts.len() == 454);
}

async fn concurrent_publishers_never_share_or_skip_a_seq(store: SqlStore) {
    let a = app(&store, "alpha").await;
    let tasks: Vec<_> = (0..8)
        .map(|p| {
            let store = store.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let batch: Vec<_> = (0..(i % 3 + 1))
                        .map(|k| item(&a, "hot", p * 1000 + i * 10 + k))
                        .collect();
                    seqs.extend(store.publish(&batch).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one publisher's seqs increase"
        );
        all.extend(seqs);
    }
    let n = all.len() as i64;
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(unique.len() as i64, n);
    assert_eq!(unique, (1..=n).collect::<HashSet<_>>());
    let history = store.read_after(&a, &t("hot"), 0, 10_000).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
}

async fn a_failed_batch_writes_nothing(store: SqlStore) {
    let a = app(&store, "alpha").await;
    insert_pubsub_trigger(&store, &a, "x", true).await;
    store.publish(&[item(&a, "x", 1)]).await.unwrap();
    assert_eq!(outbox_rows(&store, &a).await.len(), 1);
    let ghost = AppId::new(); // no such app: the foreign key fails mid-batch
    let err = store
        .publish(&[item(&a, "x", 2), item(&ghost, "x", 3), item(&a, "y", 4)])
        .await;
    assert!(err.is_err());
    assert_eq!(
        store
            .get_topic(&a, &t("x"))
            .await
            .unwrap()
            .unwrap()
            .last_seq,
        1,
        "no seq consumed"
    );
    assert!(store.get_topic(&a, &t("y")).await.unwrap().is_none());
    assert_eq!(store.read_after(&a, &t("x"), 0, 10).await.unwrap().len(), 1);
    assert_eq!(
        outbox_rows(&store, &a).await.len(),
        1,
        "the rolled-back batch left no deliveries"
    );
    assert_eq!(
        store.publish(&[item(&a, "x", 5)]).await.unwrap(),
        vec![2],
        "no gap after a rollback"
    );
}

async fn publish_writes_outbox_rows_for_matching_triggers(store: SqlStore) {
    let a = app(&store, "alpha").await;
    let b = app(&store, "bravo").await;
    let exact = insert_pubsub_trigger(&store, &a, "orders", true).await;
    let prefix = insert_pubsub_trigger(&store, &a, "orders.*", true).await;
    insert_pubsub_trigger(&store, &a, "orders", false).await; // disabled
    let b_orders = insert_pubsub_trigger(&store, &b, "orders", true).await; // another app's
    let first = store
        .publish_batch(&[
            item(&a, "orders", 1),
            item(&a, "orders.eu", 2),
            item(&a, "ordersx", 3),
            item(&a, "other", 4),
        ])
        .await
        .unwrap();
    assert_eq!(first.seqs, vec![1, 1, 1, 1]);
    assert_eq!(first.deliveries, 2, "what wakes the dispatcher");
    let none = store.publish_batch(&[item(&a, "other", 6)]).await.unwrap();
    assert_eq!((none.seqs, none.deliveries), (vec![2], 0));
    store.publish(&[item(&a, "orders", 5)]).await.unwrap();
    let rows = outbox_rows(&store, &a).await;
    assert_eq!(
        rows,
        vec![
            (
                exact.clone(),
                r#"{"kind":"pubsub","topic":"orders","seq":1,"message":{"n":1}}"#.to_owned()
            ),
            (
                prefix.clone(),
                r#"{"kind":"pubsub","topic":"orders.eu","seq":1,"message":{"n":2}}"#.to_owned()
            ),
            (
                exact,
                r#"{"kind":"pubsub","topic":"orders","seq":2,"message":{"n":5}}"#.to_owned()
            ),
        ]
    );
    assert!(outbox_rows(&store, &b).await.is_empty());

    // One batch over two apps: each app's triggers get their own app's messages only.
    let mixed = store
        .publish_batch(&[item(&b, "orders", 7), item(&a, "orders.us", 8)])
        .await
        .unwrap();
    assert_eq!((mixed.seqs, mixed.deliveries), (vec![1, 1], 2));
    assert_eq!(
        outbox_rows(&store, &b).await,
        vec![(
            b_orders,
            r#"{"kind":"pubsub","topic":"orders","seq":1,"message":{"n":7}}"#.to_owned()
        )]
    );
    assert_eq!(
        outbox_rows(&store, &a).await.last().cloned(),
        Some((
            prefix,
            r#"{"kind":"pubsub","topic":"orders.us","seq":1,"message":{"n":8}}"#.to_owned()
        ))
    );
}

async fn retention_prunes_by_count_and_age(store: SqlStore) {
    let a = app(&store, "alpha").await;
    store
        .create_topic(
            &a,
            NewTopic {
                retention: Retention {
                    max_messages: Some(3),
                    max_age_secs: None,
                },
                ..new_topic("count")
            },
        )
        .await
        .unwrap();
    store
        .create_topic(
            &a,
            NewTopic {
                retention: Retention {
                    max_messages: None,
                    max_age_secs: Some(10),
                },
                ..new_topic("age")
            },
        )
        .await
        .unwrap();
    store
        .create_topic(
            &a,
            NewTopic {
                retention: Retention::default(),
                ..new_topic("forever")
            },
        )
        .await
        .unwrap();
    let batch: Vec<_> = (1..=5)
        .flat_map(|n| {
            [
                item(&a, "count", n),
                item(&a, "age", n),
                item(&a, "forever", n),
            ]
        })
        .collect();
    store.publish(&batch).await.unwrap();
    // "age" messages were published at 1001..1005 ms; at 11_003 ms the cutoff is 1_003.
    let pruned = store.prune_messages(11_003).await.unwrap();
    assert_eq!(pruned, 2 + 2);
    let seqs = |v: Vec<picloud_core::message::Message>| {
        v.into_iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(store.read_after(&a, &t("count"), 0, 10).await.unwrap()),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(store.read_after(&a, &t("age"), 0, 10).await.unwrap()),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(store.read_after(&a, &t("forever"), 0, 10).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.prune_messages(11_003).await.unwrap(), 0);
}

async fn deleting_a_topic_deletes_its_history(store: SqlStore) {
    let a = app(&store, "alpha").await;
    store
        .publish(&[item(&a, "x", 1), item(&a, "x", 2)])
        .await
        .unwrap();
    assert!(store.delete_topic(&a, &t("x")).await.unwrap());
    assert!(store
        .read_after(&a, &t("x"), 0, 10)
        .await
        .unwrap()
        .is_empty());
    // A new topic of that name starts again from 1.
    assert_eq!(store.publish(&[item(&a, "x", 3)]).await.unwrap(), vec![1]);
}

/// On PostgreSQL messages carry no foreign key (publishing checked it on every row); a
/// trigger on `topics` deletes a topic's history instead, also when the app's deletion
/// cascades to its topics.
async fn deleting_an_app_deletes_its_history(store: SqlStore) {
    let a = app(&store, "alpha").await;
    let b = app(&store, "bravo").await;
    store
        .publish(&[item(&a, "x", 1), item(&a, "y", 2), item(&b, "x", 3)])
        .await
        .unwrap();
    assert!(store.delete_app(&a).await.unwrap());
    for topic in ["x", "y"] {
        assert!(store
            .read_after(&a, &t(topic), 0, 10)
            .await
            .unwrap()
            .is_empty());
    }
    // Another app's history of a same-named topic stays.
    let kept = store.read_after(&b, &t("x"), 0, 10).await.unwrap();
    assert_eq!(kept.iter().map(|m| m.seq).collect::<Vec<_>>(), [Some(1)]);
}

async fn secrets_rotate_and_retire(store: SqlStore) {
    let a = app(&store, "alpha").await;
    let b = app(&store, "bravo").await;
    assert!(store.list_secrets(&a).await.unwrap().is_empty());
    let s1 = AppSecret::generate();
    let s2 = AppSecret::generate();
    store.add_secret(&a, &s1).await.unwrap();
    store.add_secret(&a, &s2).await.unwrap();
    let listed = store.list_secrets(&a).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s.is_active() && s.secret.len() == 32));
    assert!(listed.contains(&s1) && listed.contains(&s2));
    assert!(store.list_secrets(&b).await.unwrap().is_empty());
    assert!(
        !store.retire_secret(&b, &s1.kid).await.unwrap(),
        "another app cannot retire it"
    );
    assert!(store.retire_secret(&a, &s1.kid).await.unwrap());
    assert!(!store.retire_secret(&a, &s1.kid).await.unwrap());
    let after = store.list_secrets(&a).await.unwrap();
    assert!(after
        .iter()
        .find(|s| s.kid == s1.kid)
        .unwrap()
        .retired_at
        .is_some());
    assert!(after.iter().find(|s| s.kid == s2.kid).unwrap().is_active());
}
