//! Custom domains: normalised, unique across apps, and resolved by the data plane.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::{assert_error, send, TestServer};

both_backends!(
    domain_lifecycle_and_resolution,
    domains_are_validated_and_unique
);

async fn domain_lifecycle_and_resolution(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("shop").await;
    // An unknown Host is cached as a miss; adding the domain must invalidate that.
    assert_error(
        &send(s.on_host("shop.example.com", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );

    let (status, d) = send(
        s.admin(Method::POST, "/api/v1/apps/shop/domains")
            .json(&json!({"host": "Shop.Example.COM."})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["host"], "shop.example.com");
    let id = d["id"].as_str().unwrap().to_owned();

    for host in [
        "shop.example.com",
        "SHOP.example.com:8443",
        "shop.example.com.",
    ] {
        let (status, info) = send(s.on_host(host, "/")).await;
        assert_eq!(status, StatusCode::OK, "{host}: {info}");
        assert_eq!(info["app"], "shop");
    }

    let by_host = send(s.admin(Method::GET, "/api/v1/apps/shop/domains/Shop.Example.com")).await;
    let by_id = send(s.admin(Method::GET, &format!("/api/v1/apps/shop/domains/{id}"))).await;
    assert_eq!(by_host, (StatusCode::OK, d.clone()));
    assert_eq!(by_id, (StatusCode::OK, d.clone()));
    let (_, list) = send(s.admin(Method::GET, "/api/v1/apps/shop/domains")).await;
    assert_eq!(list["domains"], json!([d]));

    let (status, moved) = send(
        s.admin(Method::PATCH, &format!("/api/v1/apps/shop/domains/{id}"))
            .json(&json!({"host": "store.example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["id"], id.as_str());
    assert_eq!(
        send(s.on_host("store.example.com", "/")).await.1["app"],
        "shop"
    );
    assert_error(
        &send(s.on_host("shop.example.com", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );

    assert_eq!(
        send(s.admin(
            Method::DELETE,
            "/api/v1/apps/shop/domains/store.example.com"
        ))
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &send(s.on_host("store.example.com", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
    assert_error(
        &send(s.admin(Method::GET, &format!("/api/v1/apps/shop/domains/{id}"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Deleting the app frees its domains.
    send(
        s.admin(Method::POST, "/api/v1/apps/shop/domains")
            .json(&json!({"host": "x.example.com"})),
    )
    .await;
    assert_eq!(
        send(s.on_host("x.example.com", "/")).await.0,
        StatusCode::OK
    );
    send(s.admin(Method::DELETE, "/api/v1/apps/shop")).await;
    assert_error(
        &send(s.on_host("x.example.com", "/")).await,
        StatusCode::NOT_FOUND,
        "unknown_host",
    );
}

async fn domains_are_validated_and_unique(backend: picloud_store::Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("alpha").await;
    s.create_app("bravo").await;
    let add = |app: &str, host: &str| {
        s.admin(Method::POST, &format!("/api/v1/apps/{app}/domains"))
            .json(&json!({ "host": host }))
    };
    assert_eq!(
        send(add("alpha", "a.example.com")).await.0,
        StatusCode::CREATED
    );
    // The same host, however spelled, cannot be claimed again, by any app.
    for (app, host) in [
        ("bravo", "a.example.com"),
        ("bravo", "A.EXAMPLE.COM."),
        ("alpha", "a.example.com"),
    ] {
        assert_error(
            &send(add(app, host)).await,
            StatusCode::CONFLICT,
            "conflict",
        );
    }
    for bad in [
        "a.example.com:8080",
        "bravo.localhost",
        "localhost",
        "127.0.0.1",
        "exa mple.com",
        "",
        "a..b",
        "ünï.com",
    ] {
        assert_error(
            &send(add("bravo", bad)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
    }
    assert!(send(s.admin(Method::GET, "/api/v1/apps/bravo/domains"))
        .await
        .1["domains"]
        .as_array()
        .unwrap()
        .is_empty());
    // Moving onto a taken host is a conflict too.
    let (_, b) = send(add("bravo", "b.example.com")).await;
    let moved = send(
        s.admin(
            Method::PATCH,
            &format!("/api/v1/apps/bravo/domains/{}", b["id"].as_str().unwrap()),
        )
        .json(&json!({"host": "a.example.com"})),
    )
    .await;
    assert_error(&moved, StatusCode::CONFLICT, "conflict");
    // One app cannot see or touch another's domain, even by id.
    let other = send(s.admin(
        Method::GET,
        &format!("/api/v1/apps/alpha/domains/{}", b["id"].as_str().unwrap()),
    ))
    .await;
    assert_error(&other, StatusCode::NOT_FOUND, "not_found");
    let del = send(s.admin(Method::DELETE, "/api/v1/apps/alpha/domains/b.example.com")).await;
    assert_error(&del, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        send(s.on_host("b.example.com", "/")).await.1["app"],
        "bravo"
    );
}
