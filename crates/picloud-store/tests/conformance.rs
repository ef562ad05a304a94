//! The store conformance suite: every store trait method, run against SQLite and against
//! PostgreSQL through the same test body. A backend that behaves differently fails here.

use chrono::Utc;
use picloud_core::admin_key::{self, AdminKey};
use picloud_core::app::{AppPatch, NewApp, Slug};
use picloud_core::capability::Capability;
use picloud_core::domain::parse_domain_host;
use picloud_core::host::Host;
use picloud_core::ids::AppId;
use picloud_core::store::{
    AdminKeyStore, AppStore, DomainStore, HealthStore, Page, StoredAdminKey, TopicStore,
};
use picloud_core::StoreError;
use picloud_store::SqlStore;

picloud_store::conformance!(
    apps_create_get_list_update_delete,
    duplicate_slugs_conflict,
    domains_belong_to_one_app,
    deleting_an_app_removes_its_domains_and_keys,
    admin_keys_round_trip,
    bootstrap_happens_once_even_when_raced,
    readiness_reports_migrated_database,
    what_the_dashboard_reads_across_apps,
);

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn host(s: &str) -> Host {
    parse_domain_host(s).unwrap()
}

async fn new_app(store: &SqlStore, s: &str) -> picloud_core::app::App {
    store
        .create_app(NewApp {
            slug: slug(s),
            name: format!("App {s}"),
        })
        .await
        .unwrap()
}

fn key(caps: &[Capability], app: Option<&AppId>) -> (StoredAdminKey, String) {
    let g = admin_key::generate();
    let stored = StoredAdminKey {
        key: AdminKey {
            id: g.id.clone(),
            capabilities: caps.to_vec(),
            app_id: app.cloned(),
            label: "test".into(),
            created_at: Utc::now(),
            last_used_at: None,
        },
        secret_hash: g.secret_hash,
    };
    (stored, g.plaintext)
}

async fn apps_create_get_list_update_delete(store: SqlStore) {
    let a = new_app(&store, "alpha").await;
    let b = new_app(&store, "bravo").await;
    let c = new_app(&store, "charlie").await;
    assert_eq!(store.get_app(&a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(
        store.get_app_by_slug(&slug("bravo")).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.get_app(&AppId::new()).await.unwrap(), None);
    assert_eq!(store.get_app_by_slug(&slug("nope")).await.unwrap(), None);

    let all = store
        .list_apps(Page {
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(all, vec![a.clone(), b.clone(), c.clone()]);
    let page = store
        .list_apps(Page {
            after: Some("alpha".into()),
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(page, vec![b.clone()]);

    let renamed = store
        .update_app(
            &b.id,
            AppPatch {
                slug: Some(slug("bravo-2")),
                name: None,
                max_token_ttl_secs: None,
                static_spa: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.slug.as_str(), "bravo-2");
    assert_eq!(
        renamed.max_token_ttl_secs,
        picloud_core::app::DEFAULT_MAX_TOKEN_TTL_SECS
    );
    let shortened = store
        .update_app(
            &b.id,
            AppPatch {
                max_token_ttl_secs: Some(3600),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (shortened.slug.as_str(), shortened.max_token_ttl_secs),
        ("bravo-2", 3600)
    );
    assert_eq!(renamed.name, b.name, "a patch leaves absent fields alone");
    assert!(renamed.updated_at >= b.updated_at);
    assert_eq!(store.get_app(&b.id).await.unwrap(), Some(shortened));
    let missing = store
        .update_app(
            &AppId::new(),
            AppPatch {
                slug: None,
                name: Some("x".into()),
                max_token_ttl_secs: None,
                static_spa: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(missing, None);

    assert!(store.delete_app(&c.id).await.unwrap());
    assert!(!store.delete_app(&c.id).await.unwrap());
    assert_eq!(store.get_app(&c.id).await.unwrap(), None);
}

async fn duplicate_slugs_conflict(store: SqlStore) {
    new_app(&store, "taken").await;
    let other = new_app(&store, "other").await;
    let dup = store
        .create_app(NewApp {
            slug: slug("taken"),
            name: "x".into(),
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict("app slug"))),
        "{dup:?}"
    );
    let rename = store
        .update_app(
            &other.id,
            AppPatch {
                slug: Some(slug("taken")),
                name: None,
                max_token_ttl_secs: None,
                static_spa: None,
            },
        )
        .await;
    assert!(
        matches!(rename, Err(StoreError::Conflict("app slug"))),
        "{rename:?}"
    );
    assert_eq!(
        store
            .list_apps(Page {
                after: None,
                limit: 10
            })
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn domains_belong_to_one_app(store: SqlStore) {
    let a = new_app(&store, "alpha").await;
    let b = new_app(&store, "bravo").await;
    let d = store
        .add_domain(&a.id, &host("shop.example.com"))
        .await
        .unwrap();
    store
        .add_domain(&a.id, &host("api.example.com"))
        .await
        .unwrap();
    assert_eq!(d.app_id, a.id);

    let hosts: Vec<_> = store
        .list_domains(&a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.host.to_string())
        .collect();
    assert_eq!(hosts, ["api.example.com", "shop.example.com"]);
    assert!(store.list_domains(&b.id).await.unwrap().is_empty());

    // Lookups by id or host, only within the owning app.
    assert_eq!(
        store.get_domain(&a.id, &d.id).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(
        store.get_domain(&a.id, "shop.example.com").await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(store.get_domain(&b.id, &d.id).await.unwrap(), None);
    assert_eq!(
        store
            .resolve_domain(&host("shop.example.com"))
            .await
            .unwrap(),
        Some(a.id.clone())
    );
    assert_eq!(
        store
            .resolve_domain(&host("nope.example.com"))
            .await
            .unwrap(),
        None
    );

    // One host, one app.
    let dup = store.add_domain(&b.id, &host("shop.example.com")).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict("domain"))),
        "{dup:?}"
    );

    // Moving a domain; another app cannot move it; moving onto a taken host conflicts.
    assert_eq!(
        store
            .update_domain(&b.id, &d.id, &host("x.example.com"))
            .await
            .unwrap(),
        None
    );
    let moved = store
        .update_domain(&a.id, &d.id, &host("store.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.host.as_str(), "store.example.com");
    assert_eq!(
        store
            .resolve_domain(&host("shop.example.com"))
            .await
            .unwrap(),
        None
    );
    let taken = store
        .update_domain(&a.id, &d.id, &host("api.example.com"))
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("domain"))),
        "{taken:?}"
    );

    assert!(
        !store.delete_domain(&b.id, &d.id).await.unwrap(),
        "another app cannot delete it"
    );
    assert!(store.delete_domain(&a.id, &d.id).await.unwrap());
    assert!(!store.delete_domain(&a.id, &d.id).await.unwrap());
    assert_eq!(
        store
            .resolve_domain(&host("store.example.com"))
            .await
            .unwrap(),
        None
    );
}

async fn deleting_an_app_removes_its_domains_and_keys(store: SqlStore) {
    let a = new_app(&store, "alpha").await;
    store
        .add_domain(&a.id, &host("a.example.com"))
        .await
        .unwrap();
    let (k, _) = key(&[Capability::AppRead], Some(&a.id));
    store.create_admin_key(k.clone()).await.unwrap();
    assert!(store.delete_app(&a.id).await.unwrap());
    assert_eq!(
        store.resolve_domain(&host("a.example.com")).await.unwrap(),
        None
    );
    assert!(store.find_admin_key(&k.key.id).await.unwrap().is_none());
    // The host is free again.
    let b = new_app(&store, "bravo").await;
    store
        .add_domain(&b.id, &host("a.example.com"))
        .await
        .unwrap();
}

async fn admin_keys_round_trip(store: SqlStore) {
    let a = new_app(&store, "alpha").await;
    let (k1, plain) = key(&[Capability::AppWrite, Capability::AppRead], None);
    let (k2, _) = key(&[Capability::AppPublish], Some(&a.id));
    store.create_admin_key(k1.clone()).await.unwrap();
    store.create_admin_key(k2.clone()).await.unwrap();

    let found = store.find_admin_key(&k1.key.id).await.unwrap().unwrap();
    assert_eq!(
        found.key.capabilities,
        vec![Capability::AppRead, Capability::AppWrite]
    );
    assert_eq!(found.key.app_id, None);
    assert_eq!(
        found.key.created_at.timestamp_millis(),
        k1.key.created_at.timestamp_millis()
    );
    let (_, secret) = admin_key::parse(&plain).unwrap();
    assert!(admin_key::verify(secret, Some(&found.secret_hash)));
    assert_eq!(
        store
            .find_admin_key(&k2.key.id)
            .await
            .unwrap()
            .unwrap()
            .key
            .app_id,
        Some(a.id.clone())
    );
    assert!(store
        .find_admin_key("0000000000000000")
        .await
        .unwrap()
        .is_none());

    let ids: Vec<_> = store
        .list_admin_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&k1.key.id) && ids.contains(&k2.key.id));

    let dup = store.create_admin_key(k1.clone()).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict("admin key"))),
        "{dup:?}"
    );
    assert!(store.delete_admin_key(&k1.key.id).await.unwrap());
    assert!(!store.delete_admin_key(&k1.key.id).await.unwrap());
    assert!(store.find_admin_key(&k1.key.id).await.unwrap().is_none());
}

async fn bootstrap_happens_once_even_when_raced(store: SqlStore) {
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let (k, _) = key(&[Capability::InstanceAdmin], None);
                store.create_bootstrap_admin_key(k).await
            })
        })
        .collect();
    let mut winners = 0;
    for a in attempts {
        if a.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.list_admin_keys().await.unwrap().len(), 1);
    // Even after the bootstrap key is deleted, the instance stays bootstrapped.
    let only = store.list_admin_keys().await.unwrap().remove(0);
    store.delete_admin_key(&only.id).await.unwrap();
    let (k, _) = key(&[Capability::InstanceAdmin], None);
    assert!(!store.create_bootstrap_admin_key(k).await.unwrap());
}

async fn readiness_reports_migrated_database(store: SqlStore) {
    store.readiness().await.unwrap();
    store.close().await;
    let err = store.readiness().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// Every app with its topic count, every domain host, and a key's last use (a later time
/// already recorded is kept).
async fn what_the_dashboard_reads_across_apps(store: SqlStore) {
    let b = new_app(&store, "bbb").await;
    let a = new_app(&store, "aaa").await;
    for name in ["x", "y"] {
        let topic = picloud_core::topic::NewTopic {
            name: picloud_core::topic::TopicName::parse(name).unwrap(),
            description: String::new(),
            external_subscribable: false,
            auth_mode: picloud_core::topic::AuthMode::Public,
            ..picloud_core::topic::NewTopic::internal(
                picloud_core::topic::TopicName::parse(name).unwrap(),
            )
        };
        store.create_topic(&b.id, topic).await.unwrap();
    }
    let counts: Vec<_> = store
        .apps_with_topic_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|(app, n)| (app.id, app.slug.to_string(), n))
        .collect();
    assert_eq!(
        counts,
        [
            (a.id.clone(), "aaa".to_string(), 0),
            (b.id.clone(), "bbb".to_string(), 2)
        ]
    );

    store
        .add_domain(&b.id, &host("b.example.com"))
        .await
        .unwrap();
    store
        .add_domain(&a.id, &host("a.example.com"))
        .await
        .unwrap();
    store
        .add_domain(&a.id, &host("c.example.com"))
        .await
        .unwrap();
    assert_eq!(
        store.all_domain_hosts(10).await.unwrap(),
        ["a.example.com", "b.example.com", "c.example.com"]
    );
    assert_eq!(store.all_domain_hosts(2).await.unwrap().len(), 2);

    let (stored, _) = key(&[Capability::AppRead], None);
    let id = stored.key.id.clone();
    store.create_admin_key(stored).await.unwrap();
    let last_used = || async {
        store
            .find_admin_key(&id)
            .await
            .unwrap()
            .unwrap()
            .key
            .last_used_at
    };
    assert_eq!(last_used().await, None);
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap();
    store.touch_admin_key(&id, at(2_000_000)).await.unwrap();
    assert_eq!(last_used().await, Some(at(2_000_000)));
    store.touch_admin_key(&id, at(1_000_000)).await.unwrap();
    assert_eq!(
        last_used().await,
        Some(at(2_000_000)),
        "an older use is ignored"
    );
    let listed = store.list_admin_keys().await.unwrap();
    let mine = listed.iter().find(|k| k.id == id).unwrap();
    assert_eq!(mine.last_used_at, Some(at(2_000_000)));
    store
        .touch_admin_key("nobody", at(3_000_000))
        .await
        .unwrap();
}
