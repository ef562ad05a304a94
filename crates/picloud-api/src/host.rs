//! Host → app resolution, cached.
//!
//! Every data-plane request starts here, so hits must not touch the database. The cache
//! holds misses too (garbage Hosts cannot hammer the database) and is invalidated wholesale
//! whenever an app or a domain changes. Changes are rare and a refill is one query per Host.
//!
//! Cluster plan: other nodes learn of a change through the same [`HostResolver::invalidate_all`],
//! called by the cluster change feed once it exists (Redis/PostgreSQL notify); until then,
//! and as a safety net when a notification is lost, entries expire after a TTL.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use picloud_core::app::Slug;
use picloud_core::host::Host;
use picloud_core::store::{AppStore, DomainStore};
use picloud_core::StoreError;

/// The app a Host resolved to.
pub use picloud_core::app::AppRef as ResolvedApp;

#[derive(Clone)]
pub struct HostResolver {
    apps: Arc<dyn AppStore>,
    domains: Arc<dyn DomainStore>,
    cache: Cache<Host, Option<ResolvedApp>>,
}

impl HostResolver {
    pub fn new(apps: Arc<dyn AppStore>, domains: Arc<dyn DomainStore>, ttl: Duration) -> Self {
        Self {
            apps,
            domains,
            // 100k entries is a few MB at most and far more Hosts than a node serves.
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn resolve(&self, host: &Host) -> Result<Option<ResolvedApp>, StoreError> {
        // Loaded once for all concurrent requests on this Host.
        self.cache
            .try_get_with(host.clone(), self.lookup(host))
            .await
            .map_err(StoreError::from)
    }

    async fn lookup(&self, host: &Host) -> Result<Option<ResolvedApp>, StoreError> {
        let app = if let Some(label) = host.localhost_label() {
            match Slug::parse(label) {
                Ok(slug) => self.apps.get_app_by_slug(&slug).await?,
                Err(_) => None,
            }
        } else if host.is_localhost() {
            None
        } else {
            match self.domains.resolve_domain(host).await? {
                Some(id) => self.apps.get_app(&id).await?,
                None => None,
            }
        };
        Ok(app.map(|a| ResolvedApp {
            id: a.id,
            slug: a.slug,
        }))
    }

    /// Forgets every resolution. Called after any change to apps or domains.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}
