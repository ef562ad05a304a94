//! Apps over the admin API, and the data plane following their slugs.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::{assert_error, send, TestServer};

both_backends!(app_lifecycle, slugs_are_validated_and_unique);

/// Create, read (by slug and id), page, rename, delete; `<slug>.localhost` follows along.
async fn app_lifecycle(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    let created = send(
        s.admin(Method::POST, "/api/v1/apps")
            .json(&json!({"slug": "demo", "name": "Demo"})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED);
    let app = created.1;
    assert_eq!(app["slug"], "demo");
    assert_eq!(app["name"], "Demo");
    let id = app["id"].as_str().unwrap().to_owned();
    s.create_app("alpha").await;
    s.create_app("zulu").await;

    let by_slug = send(s.admin(Method::GET, "/api/v1/apps/demo")).await;
    let by_id = send(s.admin(Method::GET, &format!("/api/v1/apps/{id}"))).await;
    assert_eq!(by_slug, (StatusCode::OK, app.clone()));
    assert_eq!(by_id, (StatusCode::OK, app.clone()));

    let (status, list) = send(s.admin(Method::GET, "/api/v1/apps")).await;
    assert_eq!(status, StatusCode::OK);
    let slugs: Vec<_> = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].clone())
        .collect();
    assert_eq!(slugs, [json!("alpha"), json!("demo"), json!("zulu")]);
    let (_, page) = send(s.admin(Method::GET, "/api/v1/apps?limit=2")).await;
    assert_eq!(page["apps"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after"], "demo");
    let (_, rest) = send(s.admin(Method::GET, "/api/v1/apps?limit=2&after=demo")).await;
    assert_eq!(rest["apps"][0]["slug"], "zulu");
    assert!(rest["next_after"].is_null());

    // The data plane answers on <slug>.localhost, with any port and case.
    let (status, info) = send(s.on_host("Demo.localhost:8080", "/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info,
        json!({"app": "demo", "version": env!("CARGO_PKG_VERSION")})
    );

    // Renaming moves the app to its new host at once (the resolver cache is invalidated).
    let (status, renamed) = send(
        s.admin(Method::PATCH, "/api/v1/apps/demo")
            .json(&json!({"slug": "demo-2"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Demo");
    assert_eq!(renamed["id"], id.as_str());
    assert_error(
        &send(s.on_host("demo.localhost", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
    assert_eq!(
        send(s.on_host("demo-2.localhost", "/")).await.1["app"],
        "demo-2"
    );
    let (_, named) = send(
        s.admin(Method::PATCH, &format!("/api/v1/apps/{id}"))
            .json(&json!({"name": "  New name "})),
    )
    .await;
    assert_eq!(named["name"], "New name");
    assert_eq!(named["slug"], "demo-2");

    let deleted = send(s.admin(Method::DELETE, "/api/v1/apps/demo-2")).await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT);
    assert_error(
        &send(s.admin(Method::GET, "/api/v1/apps/demo-2")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(s.admin(Method::DELETE, "/api/v1/apps/demo-2")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(s.on_host("demo-2.localhost", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
}

/// Invalid slugs are 422 with the rule that broke; a taken slug is 409; neither writes.
async fn slugs_are_validated_and_unique(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    for bad in [
        "ab",
        "Demo",
        "my_app",
        "-abc",
        "abc-",
        "a.b",
        &"a".repeat(64),
        "",
    ] {
        let got = send(
            s.admin(Method::POST, "/api/v1/apps")
                .json(&json!({ "slug": bad })),
        )
        .await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("slug:"),
            "{}",
            got.1
        );
    }
    let bad_name = send(
        s.admin(Method::POST, "/api/v1/apps")
            .json(&json!({"slug": "okay", "name": "a\u{7}b"})),
    )
    .await;
    assert_error(&bad_name, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");

    s.create_app("taken").await;
    s.create_app("other").await;
    let dup = send(
        s.admin(Method::POST, "/api/v1/apps")
            .json(&json!({"slug": "taken"})),
    )
    .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let rename = send(
        s.admin(Method::PATCH, "/api/v1/apps/other")
            .json(&json!({"slug": "taken"})),
    )
    .await;
    assert_error(&rename, StatusCode::CONFLICT, "conflict");
    let bad_rename = send(
        s.admin(Method::PATCH, "/api/v1/apps/other")
            .json(&json!({"slug": "NO"})),
    )
    .await;
    assert_error(
        &bad_rename,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );

    let (_, list) = send(s.admin(Method::GET, "/api/v1/apps")).await;
    let slugs: Vec<_> = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].clone())
        .collect();
    assert_eq!(
        slugs,
        [json!("other"), json!("taken")],
        "failed requests wrote nothing"
    );
}
