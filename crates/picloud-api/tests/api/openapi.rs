//! The OpenAPI document is generated from the routes and committed at `docs/openapi.json`.
//! Regenerate with `PICLOUD_UPDATE_OPENAPI=1 cargo test -p picloud-api openapi`.

use picloud_store::Backend;

use crate::support::TestServer;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test]
async fn served_document_matches_the_committed_one() {
    let generated = picloud_api::openapi::document_json();
    if std::env::var_os("PICLOUD_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run PICLOUD_UPDATE_OPENAPI=1 cargo test -p picloud-api openapi"
    );

    let s = TestServer::start(Backend::Sqlite).await;
    let served = s.text("/api/v1/openapi.json").await;
    assert_eq!(served, generated);
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    for path in [
        "/api/v1/apps",
        "/api/v1/apps/{app}",
        "/api/v1/apps/{app}/domains",
        "/api/v1/apps/{app}/domains/{domain}",
        "/api/v1/admin-keys",
        "/api/v1/admin-keys/{id}",
        "/api/v1/apps/{app}/topics",
        "/api/v1/apps/{app}/topics/{topic}",
        "/api/v1/apps/{app}/topics/{topic}/publish",
        "/api/v1/apps/{app}/tokens",
        "/api/v1/apps/{app}/secrets",
        "/api/v1/apps/{app}/secrets/rotate",
        "/api/v1/apps/{app}/secrets/{kid}/retire",
        "/healthz",
        "/readyz",
        "/health/realtime",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}
