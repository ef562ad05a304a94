//! Conformance for the script-side stores (scripts, routes, triggers, runtime settings,
//! kv/docs/files with their outbox rows, claims and leases, dead letters, cron, invocation
//! records), on SQLite and PostgreSQL through the same test bodies.

use picloud_core::app::{NewApp, Slug};
use picloud_core::data::{Collection, DocFilter, EnvName, FilePath, KvKey};
use picloud_core::dispatch::{AppRuntime, Invocation};
use picloud_core::ids::AppId;
use picloud_core::message::PublishItem;
use picloud_core::script::{NewRoute, RouteMethod, RoutePath, ScriptName};
use picloud_core::store::*;
use picloud_core::topic::TopicName;
use picloud_core::trigger::{NewTrigger, RetryPolicy, TriggerFilter, TriggerKind, TriggerPatch};
use picloud_core::StoreError;
use picloud_store::SqlStore;
use serde_json::json;

picloud_store::conformance!(
    scripts_version_and_roll_back,
    routes_are_unique_per_method_and_path,
    triggers_crud_and_runtime_settings,
    kv_docs_files_write_outbox_rows_in_their_transaction,
    kv_expiry_and_prefix_listing_are_exact,
    docs_find_by_equality,
    claims_lease_retry_complete,
    expired_lease_is_claimed_again_and_old_owner_cannot_complete,
    claims_rotate_across_apps,
    dead_letters_fan_out_and_replay,
    cron_fires_each_time_once_across_nodes,
    invocations_are_recorded_and_pruned,
    apps_are_isolated,
);

async fn app(store: &SqlStore, slug: &str) -> AppId {
    store
        .create_app(NewApp {
            slug: Slug::parse(&format!("app-{slug}")).unwrap(),
            name: slug.into(),
        })
        .await
        .unwrap()
        .id
}

fn name(s: &str) -> ScriptName {
    ScriptName::parse(s).unwrap()
}

async fn trigger(
    store: &SqlStore,
    app: &AppId,
    kind: TriggerKind,
    filter: serde_json::Value,
) -> String {
    trigger_with(store, app, kind, filter, RetryPolicy::default()).await
}

async fn trigger_with(
    store: &SqlStore,
    app: &AppId,
    kind: TriggerKind,
    filter: serde_json::Value,
    retry: RetryPolicy,
) -> String {
    store
        .create_trigger(
            app,
            NewTrigger {
                script: name("handler"),
                filter: TriggerFilter::parse(kind, &filter).unwrap(),
                enabled: true,
                retry,
            },
        )
        .await
        .unwrap()
        .id
}

const FAR: i64 = i64::MAX / 4;

/// Claims everything due as of `now` for `owner`.
async fn claim_all(
    store: &SqlStore,
    owner: &str,
    now: i64,
) -> Vec<picloud_core::dispatch::Delivery> {
    store
        .claim_deliveries(owner, now, 30_000, 1000, 1000, None)
        .await
        .unwrap()
}

async fn scripts_version_and_roll_back(store: SqlStore) {
    let a = app(&store, "a").await;
    let v1 = store.deploy_script(&a, &name("hello"), "1").await.unwrap();
    let v2 = store.deploy_script(&a, &name("hello"), "2").await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    let active = store
        .get_script_version(&a, &name("hello"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.source, "2");
    let info = store
        .activate_script_version(&a, &name("hello"), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.active_version, info.latest_version), (1, 2));
    assert_eq!(
        store
            .get_script_version(&a, &name("hello"), None)
            .await
            .unwrap()
            .unwrap()
            .source,
        "1"
    );
    assert!(store
        .activate_script_version(&a, &name("hello"), 9)
        .await
        .unwrap()
        .is_none());
    // A deploy after a rollback is a new version and becomes active.
    assert_eq!(
        store
            .deploy_script(&a, &name("hello"), "3")
            .await
            .unwrap()
            .version,
        3
    );
    let versions = store
        .list_script_versions(&a, &name("hello"))
        .await
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(store.list_scripts(&a).await.unwrap().len(), 1);
    assert!(store.delete_script(&a, &name("hello")).await.unwrap());
    assert!(store
        .get_script_version(&a, &name("hello"), Some(1))
        .await
        .unwrap()
        .is_none());
}

async fn routes_are_unique_per_method_and_path(store: SqlStore) {
    let a = app(&store, "a").await;
    let new = || NewRoute {
        method: RouteMethod::Get,
        path: RoutePath::parse("/items/:id").unwrap(),
        script: name("items"),
    };
    let r = store.create_route(&a, new()).await.unwrap();
    assert!(matches!(
        store.create_route(&a, new()).await,
        Err(StoreError::Conflict("route"))
    ));
    let b = app(&store, "b").await;
    store.create_route(&b, new()).await.unwrap();
    let listed = store.list_routes(&a).await.unwrap();
    assert_eq!(listed, vec![r.clone()]);
    assert!(
        !store.delete_route(&b, &r.id).await.unwrap(),
        "another app's route id"
    );
    assert!(store.delete_route(&a, &r.id).await.unwrap());
}

async fn triggers_crud_and_runtime_settings(store: SqlStore) {
    let a = app(&store, "a").await;
    let id = trigger(&store, &a, TriggerKind::Pubsub, json!({"topic": "chat.*"})).await;
    let t = store.get_trigger(&a, &id).await.unwrap().unwrap();
    assert_eq!(t.filter.to_json(), json!({"topic": "chat.*"}));
    let patched = store
        .update_trigger(
            &a,
            &id,
            TriggerPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!patched.enabled);
    assert_eq!(store.list_triggers(&a).await.unwrap(), vec![patched]);
    assert_eq!(store.get_runtime(&a).await.unwrap(), AppRuntime::default());
    let rt = AppRuntime {
        limits: json!({"max_operations": 10}),
        max_concurrency: 3,
    };
    store.set_runtime(&a, &rt).await.unwrap();
    assert_eq!(store.get_runtime(&a).await.unwrap(), rt);
    let n = EnvName::parse("API_URL").unwrap();
    store.set_env(&a, &n, "https://x").await.unwrap();
    store.set_env(&a, &n, "https://y").await.unwrap();
    assert_eq!(
        store.get_env(&a, &n).await.unwrap().as_deref(),
        Some("https://y")
    );
    assert_eq!(store.list_env(&a).await.unwrap().len(), 1);
    assert!(store.delete_env(&a, &n).await.unwrap());
    assert!(store.delete_trigger(&a, &id).await.unwrap());
    assert!(store.get_trigger(&a, &id).await.unwrap().is_none());
}

async fn kv_docs_files_write_outbox_rows_in_their_transaction(store: SqlStore) {
    let a = app(&store, "a").await;
    let kv = trigger(&store, &a, TriggerKind::Kv, json!({"prefix": "user:"})).await;
    let docs = trigger(
        &store,
        &a,
        TriggerKind::Docs,
        json!({"collection": "orders"}),
    )
    .await;
    let files = trigger(&store, &a, TriggerKind::Files, json!({"prefix": "img/"})).await;
    let key = KvKey::parse("user:1").unwrap();
    store.kv_set(&a, &key, r#"{"n":1}"#, None).await.unwrap();
    store
        .kv_set(&a, &KvKey::parse("other").unwrap(), "1", None)
        .await
        .unwrap();
    assert!(store.kv_delete(&a, &key).await.unwrap());
    let orders = Collection::parse("orders").unwrap();
    store
        .docs_insert(&a, &orders, "o1", r#"{"total":5}"#)
        .await
        .unwrap();
    assert!(store
        .docs_update(&a, &orders, "o1", r#"{"total":6}"#)
        .await
        .unwrap());
    assert!(!store.docs_update(&a, &orders, "nope", "{}").await.unwrap());
    store
        .docs_insert(&a, &Collection::parse("other").unwrap(), "x", "{}")
        .await
        .unwrap();
    let p = FilePath::parse("img/cat.png").unwrap();
    assert_eq!(store.file_put(&a, &p, "blob1", 3).await.unwrap(), None);
    assert_eq!(
        store.file_put(&a, &p, "blob2", 4).await.unwrap().as_deref(),
        Some("blob1")
    );
    store
        .file_put(&a, &FilePath::parse("doc/x").unwrap(), "blob3", 1)
        .await
        .unwrap();
    assert_eq!(
        store.file_delete(&a, &p).await.unwrap().as_deref(),
        Some("blob2")
    );
    assert!(store.blob_in_use("blob3").await.unwrap());
    assert!(!store.blob_in_use("blob2").await.unwrap());

    let claimed = claim_all(&store, "w", FAR).await;
    let events = |t: &str| -> Vec<serde_json::Value> {
        claimed
            .iter()
            .filter(|d| d.trigger_id == t)
            .map(|d| d.event.clone())
            .collect()
    };
    assert_eq!(
        events(&kv),
        vec![
            json!({"kind":"kv","key":"user:1","op":"set","value":{"n":1}}),
            json!({"kind":"kv","key":"user:1","op":"delete","value":null}),
        ]
    );
    assert_eq!(
        events(&docs),
        vec![
            json!({"kind":"docs","collection":"orders","id":"o1","op":"insert","doc":{"total":5}}),
            json!({"kind":"docs","collection":"orders","id":"o1","op":"update","doc":{"total":6}}),
        ]
    );
    assert_eq!(
        events(&files),
        vec![
            json!({"kind":"files","path":"img/cat.png","size":3,"op":"put"}),
            json!({"kind":"files","path":"img/cat.png","size":4,"op":"put"}),
            json!({"kind":"files","path":"img/cat.png","size":4,"op":"delete"}),
        ]
    );
    assert_eq!(claimed.len(), 7);
    assert!(claimed.iter().all(|d| d.attempt == 1));

    // A disabled trigger gets nothing.
    store
        .update_trigger(
            &a,
            &kv,
            TriggerPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.kv_set(&a, &key, "2", None).await.unwrap();
    assert!(claim_all(&store, "w", FAR).await.is_empty());
}

async fn kv_expiry_and_prefix_listing_are_exact(store: SqlStore) {
    let a = app(&store, "a").await;
    let now = 1_000_000;
    for (k, exp) in [
        ("Ab", None),
        ("ab", None),
        ("ab_c", Some(now - 1)),
        ("abc", Some(now + 10)),
        ("a%", None),
    ] {
        store
            .kv_set(&a, &KvKey::parse(k).unwrap(), "1", exp)
            .await
            .unwrap();
    }
    let keys =
        |v: Vec<picloud_core::data::KvEntry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.kv_list(&a, "ab", 100, now).await.unwrap()),
        vec!["ab", "abc"]
    );
    assert_eq!(
        keys(store.kv_list(&a, "a%", 100, now).await.unwrap()),
        vec!["a%"]
    );
    assert_eq!(store.kv_list(&a, "", 100, now).await.unwrap().len(), 4);
    assert!(store
        .kv_get(&a, &KvKey::parse("ab_c").unwrap(), now)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .kv_get(&a, &KvKey::parse("abc").unwrap(), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.kv_sweep_expired(now).await.unwrap(), 1);
    assert_eq!(store.kv_sweep_expired(now).await.unwrap(), 0);
}

async fn docs_find_by_equality(store: SqlStore) {
    let a = app(&store, "a").await;
    let c = Collection::parse("people").unwrap();
    for (id, doc) in [
        (
            "1",
            json!({"name": "ann", "age": 30, "tags": ["x"], "admin": true}),
        ),
        ("2", json!({"name": "bob", "age": 30.0, "admin": false})),
        ("3", json!({"name": "cy", "age": "30", "admin": null})),
    ] {
        store
            .docs_insert(&a, &c, id, &doc.to_string())
            .await
            .unwrap();
    }
    let find = |f: serde_json::Value| {
        let store = store.clone();
        let (a, c) = (a.clone(), c.clone());
        async move {
            let filter = DocFilter::parse(f.as_object().unwrap().clone()).unwrap();
            store
                .docs_find(&a, &c, &filter, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(find(json!({"age": 30})).await, vec!["1", "2"]);
    assert_eq!(find(json!({"age": "30"})).await, vec!["3"]);
    assert_eq!(find(json!({"admin": true})).await, vec!["1"]);
    assert_eq!(find(json!({"admin": false})).await, vec!["2"]);
    assert_eq!(find(json!({"name": "bob", "age": 30})).await, vec!["2"]);
    assert_eq!(find(json!({"tags": ["x"]})).await, vec!["1"]);
    assert_eq!(find(json!({})).await, vec!["1", "2", "3"]);
    assert!(find(json!({"name": "zed"})).await.is_empty());
    assert_eq!(
        store.docs_get(&a, &c, "2").await.unwrap().unwrap().doc["name"],
        "bob"
    );
    assert!(matches!(
        store.docs_insert(&a, &c, "1", "{}").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.docs_delete(&a, &c, "1").await.unwrap());
    assert!(!store.docs_delete(&a, &c, "1").await.unwrap());
}

async fn publish_one(store: &SqlStore, app: &AppId, topic: &str) -> i64 {
    store
        .publish_batch(&[PublishItem {
            app_id: app.clone(),
            topic: TopicName::parse(topic).unwrap(),
            payload: "{}".into(),
            published_at: 0,
        }])
        .await
        .unwrap()
        .seqs[0]
}

async fn claims_lease_retry_complete(store: SqlStore) {
    let a = app(&store, "a").await;
    let t = trigger(&store, &a, TriggerKind::Pubsub, json!({"topic": "t"})).await;
    publish_one(&store, &a, "t").await;
    let now = chrono::Utc::now().timestamp_millis();
    let d = store
        .claim_deliveries("w1", now, 1000, 10, 10, None)
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].trigger_id.as_str(), d[0].attempt), (t.as_str(), 1));
    // Leased: nobody else gets it.
    assert!(store
        .claim_deliveries("w2", now + 10, 1000, 10, 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .renew_leases("w1", &[d[0].id], now + 5000)
        .await
        .unwrap()
        .is_empty());
    assert!(
        store
            .claim_deliveries("w2", now + 2000, 1000, 10, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "renewed"
    );
    assert!(
        !store.retry_delivery("w2", d[0].id, now, "x").await.unwrap(),
        "not the owner"
    );
    assert!(store
        .retry_delivery("w1", d[0].id, now + 100, "boom")
        .await
        .unwrap());
    assert!(
        store
            .claim_deliveries("w2", now + 50, 1000, 10, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = store
        .claim_deliveries("w2", now + 100, 1000, 10, 10, None)
        .await
        .unwrap();
    assert_eq!(
        (again[0].id, again[0].attempt),
        (d[0].id, 2),
        "same delivery id, next attempt"
    );
    assert_eq!(
        store.complete_deliveries("w1", &[d[0].id]).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        store.complete_deliveries("w2", &[d[0].id]).await.unwrap(),
        vec![d[0].id]
    );
    assert_eq!(store.next_due().await.unwrap(), None);
}

async fn expired_lease_is_claimed_again_and_old_owner_cannot_complete(store: SqlStore) {
    let a = app(&store, "a").await;
    trigger(&store, &a, TriggerKind::Pubsub, json!({"topic": "t"})).await;
    publish_one(&store, &a, "t").await;
    let now = chrono::Utc::now().timestamp_millis();
    let d = store
        .claim_deliveries("dead", now, 1000, 10, 10, None)
        .await
        .unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(now + 1000));
    let rescued = store
        .claim_deliveries("alive", now + 1000, 1000, 10, 10, None)
        .await
        .unwrap();
    assert_eq!((rescued[0].id, rescued[0].attempt), (d[0].id, 2));
    assert!(store
        .complete_deliveries("dead", &[d[0].id])
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .dead_letter_delivery("dead", d[0].id, "x")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .renew_leases("dead", &[d[0].id], now + 9000)
            .await
            .unwrap(),
        vec![d[0].id]
    );
    assert_eq!(
        store
            .complete_deliveries("alive", &[d[0].id])
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn claims_rotate_across_apps(store: SqlStore) {
    let mut apps = Vec::new();
    for s in ["a1", "a2", "a3"] {
        let a = app(&store, s).await;
        trigger(&store, &a, TriggerKind::Pubsub, json!({"topic": "t"})).await;
        apps.push(a);
    }
    // a1 has a storm of 50 deliveries; a2 and a3 one each.
    for _ in 0..50 {
        publish_one(&store, &apps[0], "t").await;
    }
    publish_one(&store, &apps[1], "t").await;
    publish_one(&store, &apps[2], "t").await;
    let now = chrono::Utc::now().timestamp_millis();
    let first = store
        .claim_deliveries("w", now, 10_000, 6, 2, None)
        .await
        .unwrap();
    let count = |ds: &[picloud_core::dispatch::Delivery], a: &AppId| {
        ds.iter().filter(|d| &d.app_id == a).count()
    };
    assert_eq!(first.len(), 4, "2 per app at most: a1 2, a2 1, a3 1");
    assert_eq!(
        (
            count(&first, &apps[0]),
            count(&first, &apps[1]),
            count(&first, &apps[2])
        ),
        (2, 1, 1)
    );
    // Rotation: starting after the last app served still reaches every app.
    let mut sorted = apps.clone();
    sorted.sort();
    let next = store
        .claim_deliveries("w", now, 10_000, 1, 1, Some(&sorted[0]))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].app_id, sorted[0],
        "only a1 has work left; it wraps around"
    );
}

async fn dead_letters_fan_out_and_replay(store: SqlStore) {
    let a = app(&store, "a").await;
    let failing = trigger(&store, &a, TriggerKind::Pubsub, json!({"topic": "t"})).await;
    let catch_all = trigger(&store, &a, TriggerKind::DeadLetter, json!({})).await;
    let only_other = trigger(
        &store,
        &a,
        TriggerKind::DeadLetter,
        json!({"trigger": "someone-else"}),
    )
    .await;
    publish_one(&store, &a, "t").await;
    let now = chrono::Utc::now().timestamp_millis();
    let d = store
        .claim_deliveries("w", now, 1000, 10, 10, None)
        .await
        .unwrap();
    let dl = store
        .dead_letter_delivery("w", d[0].id, "boom")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (dl.trigger_id.as_str(), dl.attempts, dl.last_error.as_str()),
        (failing.as_str(), 1, "boom")
    );
    let fanned = claim_all(&store, "w", FAR).await;
    assert_eq!(
        fanned.len(),
        1,
        "catch-all only; not the one filtered to another trigger"
    );
    assert_eq!(fanned[0].trigger_id, catch_all);
    assert_ne!(fanned[0].trigger_id, only_other);
    assert_eq!(fanned[0].event["kind"], "dead_letter");
    assert_eq!(fanned[0].event["trigger"], failing.as_str());
    assert_eq!(fanned[0].event["error"], "boom");
    assert_eq!(fanned[0].event["event"]["kind"], "pubsub");
    // The dead_letter handler failing too: its letter fans out to nobody.
    store
        .dead_letter_delivery("w", fanned[0].id, "again")
        .await
        .unwrap()
        .unwrap();
    assert!(claim_all(&store, "w", FAR).await.is_empty());
    let listed = store.list_dead_letters(&a, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(store.count_waiting_dead_letters(&a).await.unwrap(), 2);
    let other = app(&store, "b").await;
    assert_eq!(store.count_waiting_dead_letters(&other).await.unwrap(), 0);
    assert!(
        store
            .replay_dead_letter(&other, &dl.id)
            .await
            .unwrap()
            .is_none(),
        "another app's letter"
    );
    let replayed = store.replay_dead_letter(&a, &dl.id).await.unwrap().unwrap();
    let again = claim_all(&store, "w", FAR).await;
    assert_eq!(
        (again[0].id, again[0].attempt, again[0].trigger_id.as_str()),
        (replayed, 1, failing.as_str())
    );
    assert_eq!(again[0].event, d[0].event);
    assert!(store
        .list_dead_letters(&a, 10)
        .await
        .unwrap()
        .iter()
        .any(|l| l.id == dl.id && l.replayed_at.is_some()));
    assert_eq!(store.count_waiting_dead_letters(&a).await.unwrap(), 1);
}

async fn cron_fires_each_time_once_across_nodes(store: SqlStore) {
    let a = app(&store, "a").await;
    let t = trigger(
        &store,
        &a,
        TriggerKind::Cron,
        json!({"schedule": "* * * * * *"}),
    )
    .await;
    let created = store
        .get_trigger(&a, &t)
        .await
        .unwrap()
        .unwrap()
        .created_at
        .timestamp_millis();
    let now = created + 5_500;
    // Two "nodes" fire concurrently over the same window.
    let (x, y) = tokio::join!(store.fire_cron(now, 100), store.fire_cron(now, 100));
    let expected = (now / 1000 - created / 1000) as u64;
    assert_eq!(x.unwrap() + y.unwrap(), expected, "each second once");
    assert_eq!(store.fire_cron(now, 100).await.unwrap(), 0);
    let ds = claim_all(&store, "w", FAR).await;
    let mut times: Vec<String> = ds
        .iter()
        .map(|d| d.event["scheduled_for"].as_str().unwrap().to_owned())
        .collect();
    times.dedup();
    assert_eq!(times.len() as u64, expected);
    assert_eq!(ds[0].event["schedule"], "* * * * * *");
    // After "downtime", catch-up is bounded.
    assert_eq!(store.fire_cron(now + 3_600_000, 3).await.unwrap(), 3);
}

async fn invocations_are_recorded_and_pruned(store: SqlStore) {
    let a = app(&store, "a").await;
    let b = app(&store, "b").await;
    let inv = |started_at: i64| Invocation {
        id: 0,
        script: "s".into(),
        version: 1,
        source: "route:GET /".into(),
        delivery_id: None,
        started_at,
        duration_us: 10,
        operations: 5,
        outcome: "ok".into(),
        error: None,
        logs: json!([{"level": "info", "message": "hi"}]),
    };
    let items: Vec<_> = (0..10)
        .map(|i| (a.clone(), inv(1000 + i)))
        .chain([(b.clone(), inv(5))])
        .collect();
    store.record_invocations(&items).await.unwrap();
    let page = store.list_invocations(&a, None, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|i| i.started_at).collect::<Vec<_>>(),
        vec![1009, 1008, 1007]
    );
    let next = store
        .list_invocations(&a, Some(page[2].id), 100)
        .await
        .unwrap();
    assert_eq!(next.len(), 7);
    assert_eq!(page[0].logs[0]["message"], "hi");
    // b's record is old; a keeps its newest 4.
    assert_eq!(store.prune_invocations(4, 100).await.unwrap(), 1 + 6);
    assert_eq!(
        store.list_invocations(&a, None, 100).await.unwrap().len(),
        4
    );
    assert!(store
        .list_invocations(&b, None, 100)
        .await
        .unwrap()
        .is_empty());
}

async fn apps_are_isolated(store: SqlStore) {
    let a = app(&store, "a").await;
    let b = app(&store, "b").await;
    let k = KvKey::parse("secret").unwrap();
    store.kv_set(&a, &k, "1", None).await.unwrap();
    assert!(store.kv_get(&b, &k, 0).await.unwrap().is_none());
    assert!(store.kv_list(&b, "", 100, 0).await.unwrap().is_empty());
    assert!(!store.kv_delete(&b, &k).await.unwrap());
    let c = Collection::parse("c").unwrap();
    store.docs_insert(&a, &c, "1", "{}").await.unwrap();
    assert!(store.docs_get(&b, &c, "1").await.unwrap().is_none());
    assert!(store
        .docs_find(&b, &c, &DocFilter::default(), 10)
        .await
        .unwrap()
        .is_empty());
    let p = FilePath::parse("f").unwrap();
    store.file_put(&a, &p, "blob", 1).await.unwrap();
    assert!(store.file_get(&b, &p).await.unwrap().is_none());
    assert!(store.file_delete(&b, &p).await.unwrap().is_none());
    store.deploy_script(&a, &name("s"), "1").await.unwrap();
    assert!(store
        .get_script_version(&b, &name("s"), None)
        .await
        .unwrap()
        .is_none());
    let t = trigger(&store, &a, TriggerKind::Kv, json!({})).await;
    assert!(store.get_trigger(&b, &t).await.unwrap().is_none());
    assert!(!store.delete_trigger(&b, &t).await.unwrap());
}
