//! Caches for what every admin request looks up: the presented admin key and the `{app}`
//! path segment. A publish at full speed would otherwise spend two database round trips
//! per request before doing any work.
//!
//! Both hold misses too (random key ids or slugs cannot hammer the database). Changes made
//! through this node's API invalidate at once; changes made elsewhere (the offline CLI,
//! another node) are seen within the TTL, the same bound as Host resolution. The key TTL is
//! short because it bounds how long a key revoked offline keeps working.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use picloud_core::app::App;
use picloud_core::store::StoredAdminKey;

#[derive(Clone)]
pub struct LookupCache {
    keys: Cache<String, Option<Arc<StoredAdminKey>>>,
    apps: Cache<String, Option<App>>,
}

impl LookupCache {
    pub fn new(key_ttl: Duration, app_ttl: Duration) -> Self {
        Self {
            keys: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(key_ttl)
                .build(),
            apps: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(app_ttl)
                .build(),
        }
    }

    pub fn keys(&self) -> &Cache<String, Option<Arc<StoredAdminKey>>> {
        &self.keys
    }

    /// Keyed by the `{app}` segment as written (slug or id).
    pub fn apps(&self) -> &Cache<String, Option<App>> {
        &self.apps
    }

    /// After a key is created or revoked, or an app (and with it its keys) deleted.
    pub fn invalidate_keys(&self) {
        self.keys.invalidate_all();
    }

    /// After any app change.
    pub fn invalidate_apps(&self) {
        self.apps.invalidate_all();
    }
}

/// `cache`'s value for `key`, loaded by `load` on a miss (once for concurrent misses). A
/// hit borrows `key`: only a miss builds the owned key (and ever polls `load`).
pub async fn get_or_load<V, E>(
    cache: &Cache<String, V>,
    key: &str,
    load: impl Future<Output = Result<V, E>>,
) -> Result<V, Arc<E>>
where
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    match cache.get(key).await {
        Some(hit) => Ok(hit),
        None => cache.try_get_with(key.to_owned(), load).await,
    }
}
