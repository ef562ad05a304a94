//! Admin keys: 401 for anything that is not a valid key (one body for all), 403 for a
//! missing capability, 404 for an app an app-bound key may not see.

use picloud_core::capability::Capability;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::{assert_error, send, TestServer};

both_backends!(
    invalid_keys_are_one_generic_401,
    capabilities_are_enforced,
    app_bound_keys_see_only_their_app,
    admin_keys_api,
);

async fn invalid_keys_are_one_generic_401(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    let valid = s.admin_key.clone();
    let (id_part, _) = valid.rsplit_once('_').unwrap();
    let wrong_secret = format!("{id_part}_{}", "A".repeat(43));
    let unknown_id = format!("pk_0123456789abcdef_{}", &valid[valid.len() - 43..]);
    let revoked = s.key(&[Capability::InstanceAdmin], None).await;
    let revoked_id = &revoked[3..19];
    assert_eq!(
        send(s.admin(Method::DELETE, &format!("/api/v1/admin-keys/{revoked_id}")))
            .await
            .0,
        StatusCode::NO_CONTENT
    );

    let mut bodies = Vec::new();
    bodies.push(send(s.anon(Method::GET, "/api/v1/apps")).await);
    for key in [wrong_secret.as_str(), &unknown_id, "garbage", "", &revoked] {
        bodies.push(send(s.with_key(key, Method::GET, "/api/v1/apps")).await);
    }
    bodies.push(
        send(
            s.anon(Method::GET, "/api/v1/apps")
                .header("authorization", format!("Basic {valid}")),
        )
        .await,
    );
    for got in &bodies {
        assert_error(got, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(got.1, bodies[0].1, "every 401 has the same body");
    }
    assert_eq!(
        send(s.admin(Method::GET, "/api/v1/apps")).await.0,
        StatusCode::OK
    );
}

async fn capabilities_are_enforced(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let reader = s.key(&[Capability::AppRead], None).await;
    assert_eq!(
        send(s.with_key(&reader, Method::GET, "/api/v1/apps/demo"))
            .await
            .0,
        StatusCode::OK
    );
    let cases = [
        (Method::POST, "/api/v1/apps", json!({"slug": "new-app"})),
        (Method::PATCH, "/api/v1/apps/demo", json!({"name": "x"})),
        (
            Method::POST,
            "/api/v1/apps/demo/domains",
            json!({"host": "d.example.com"}),
        ),
        (
            Method::POST,
            "/api/v1/admin-keys",
            json!({"capabilities": ["AppRead"]}),
        ),
    ];
    for (method, path, body) in cases {
        let got = send(s.with_key(&reader, method, path).json(&body)).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let got = send(s.with_key(&reader, Method::DELETE, "/api/v1/apps/demo")).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    let publisher = s.key(&[Capability::AppPublish], None).await;
    assert_error(
        &send(s.with_key(&publisher, Method::GET, "/api/v1/apps")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Nothing was written by the refused calls.
    let (_, list) = send(s.admin(Method::GET, "/api/v1/apps")).await;
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
    assert_eq!(list["apps"][0]["name"], "demo");
    assert!(send(s.admin(Method::GET, "/api/v1/apps/demo/domains"))
        .await
        .1["domains"]
        .as_array()
        .unwrap()
        .is_empty());
}

async fn app_bound_keys_see_only_their_app(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    let mine = s.create_app("mine").await;
    let theirs = s.create_app("theirs").await;
    let key = s
        .key(
            &[Capability::AppRead, Capability::AppWrite],
            Some(mine["id"].as_str().unwrap()),
        )
        .await;

    assert_eq!(
        send(s.with_key(&key, Method::GET, "/api/v1/apps/mine"))
            .await
            .0,
        StatusCode::OK
    );
    let (_, list) = send(s.with_key(&key, Method::GET, "/api/v1/apps")).await;
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
    assert_eq!(list["apps"][0]["slug"], "mine");

    // Another app is indistinguishable from one that does not exist.
    let missing = send(s.with_key(&key, Method::GET, "/api/v1/apps/no-such-app")).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let theirs_id = theirs["id"].as_str().unwrap();
    for path in [
        "/api/v1/apps/theirs".to_owned(),
        format!("/api/v1/apps/{theirs_id}"),
        "/api/v1/apps/theirs/domains".to_owned(),
    ] {
        let got = send(s.with_key(&key, Method::GET, &path)).await;
        assert_eq!(got, missing, "{path}");
    }
    let write = send(
        s.with_key(&key, Method::PATCH, "/api/v1/apps/theirs")
            .json(&json!({"name": "pwned"})),
    )
    .await;
    assert_eq!(write, missing);
    let del = send(s.with_key(&key, Method::DELETE, "/api/v1/apps/theirs")).await;
    assert_eq!(del, missing);
    assert_eq!(
        send(s.admin(Method::GET, "/api/v1/apps/theirs")).await.1["name"],
        "theirs"
    );

    // Instance-level operations are refused to app-bound keys whatever their capabilities.
    let create = send(
        s.with_key(&key, Method::POST, "/api/v1/apps")
            .json(&json!({"slug": "another"})),
    )
    .await;
    assert_error(&create, StatusCode::FORBIDDEN, "forbidden");
    // Within its app it works.
    let d = send(
        s.with_key(&key, Method::POST, "/api/v1/apps/mine/domains")
            .json(&json!({"host": "mine.example.com"})),
    )
    .await;
    assert_eq!(d.0, StatusCode::CREATED);
}

async fn admin_keys_api(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    let app = s.create_app("demo").await;
    let (status, created) = send(s.admin(Method::POST, "/api/v1/admin-keys").json(&json!({
        "capabilities": ["AppRead", "AppPublish"], "app": "demo", "label": "ci"
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["app_id"], app["id"]);
    assert_eq!(created["capabilities"], json!(["AppRead", "AppPublish"]));
    assert_eq!(
        send(s.with_key(&key, Method::GET, "/api/v1/apps/demo"))
            .await
            .0,
        StatusCode::OK
    );

    let (_, list) = send(s.admin(Method::GET, "/api/v1/admin-keys")).await;
    let listed = list["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        !list.to_string().contains(&key[20..]),
        "secrets are never listed"
    );

    for bad in [
        json!({"capabilities": []}),
        json!({"capabilities": ["Root"]}),
        json!({"capabilities": ["InstanceAdmin"], "app": "demo"}),
    ] {
        let got = send(s.admin(Method::POST, "/api/v1/admin-keys").json(&bad)).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    }
    let got = send(
        s.admin(Method::POST, "/api/v1/admin-keys")
            .json(&json!({"capabilities": ["AppRead"], "app": "nope"})),
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &send(s.with_key(&key, Method::GET, "/api/v1/admin-keys")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    let id = created["id"].as_str().unwrap();
    assert_eq!(
        send(s.admin(Method::DELETE, &format!("/api/v1/admin-keys/{id}")))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &send(s.with_key(&key, Method::GET, "/api/v1/apps/demo")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &send(s.admin(Method::DELETE, &format!("/api/v1/admin-keys/{id}"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Keys and apps are cached per node. A change through this node's API is seen at once; a
/// change behind its back (offline CLI, another node) within the cache TTL, never later.
#[tokio::test]
async fn cached_lookups_follow_revocation_and_app_changes() {
    use picloud_core::store::AdminKeyStore;
    let config = picloud_api::ApiConfig {
        admin_key_cache_ttl: std::time::Duration::from_millis(300),
        ..picloud_api::ApiConfig::default()
    };
    let s = TestServer::start_with(picloud_store::Backend::Sqlite, config).await;
    s.create_app("demo").await;
    let key = s.key(&[Capability::AppRead], None).await;
    let get = || s.with_key(&key, Method::GET, "/api/v1/apps/demo");
    assert_eq!(send(get()).await.0, StatusCode::OK);

    // Revoked straight in the database, as `picloud admin key revoke` does.
    assert!(s.store.delete_admin_key(&key[3..19]).await.unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = send(get()).await;
        if got.0 == StatusCode::UNAUTHORIZED {
            assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revoked key still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A cached app lookup does not outlive the app's deletion through the API.
    assert_eq!(
        send(s.admin(Method::GET, "/api/v1/apps/demo")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(s.admin(Method::DELETE, "/api/v1/apps/demo")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &send(s.admin(Method::GET, "/api/v1/apps/demo")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(
            s.admin(Method::POST, "/api/v1/apps/demo/topics/t/publish")
                .json(&serde_json::json!(1)),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
