//! Caches for what every admin request looks up: the presented admin key and the `{app}`
//! path segment. A publish at full speed would otherwise spend two database round trips
//! per request before doing any work.
//!
//! Both hold misses too (random key ids or slugs cannot hammer the database). Changes made
//! through this node's API invalidate at once; changes made elsewhere (the offline CLI,
//! another node) are seen within the TTL, the same bound as Host resolution. The key TTL is
//! short because it bounds how long a key revoked offline keeps working.
//!
//! Each is two layers: moka loads (once for concurrent misses) and bounds the entries; a
//! plain map in front of it answers the hot keys. A moka read records itself for its
//! eviction policy and now and then runs its housekeeping, which cost a publish more than
//! the rest of its auth (~3 % of S4's server time, `perf`); the front's read is a shared
//! lock and one hash. Both layers age an entry from when it was loaded, so together they
//! still serve nothing older than the TTL.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use moka::future::Cache;
use picloud_core::app::App;
use picloud_core::store::StoredAdminKey;

/// Most entries the front holds; past it, it starts over (moka still has them).
const FRONT_ENTRIES: usize = 4096;

/// An admin key as the cache holds it.
pub struct CachedKey {
    pub stored: StoredAdminKey,
    /// Whether a verified use through this entry has been considered for the key's "last
    /// used" time: one write at most per entry, so per key cache lifetime.
    pub use_noted: AtomicBool,
}

impl From<StoredAdminKey> for CachedKey {
    fn from(stored: StoredAdminKey) -> Self {
        Self {
            stored,
            use_noted: AtomicBool::new(false),
        }
    }
}

#[derive(Clone)]
pub struct LookupCache {
    keys: Cached<Option<Arc<CachedKey>>>,
    apps: Cached<Option<Arc<App>>>,
}

impl LookupCache {
    pub fn new(key_ttl: Duration, app_ttl: Duration) -> Self {
        Self {
            keys: Cached::new(10_000, key_ttl),
            apps: Cached::new(100_000, app_ttl),
        }
    }

    pub fn keys(&self) -> &Cached<Option<Arc<CachedKey>>> {
        &self.keys
    }

    /// Keyed by the `{app}` segment as written (slug or id).
    pub fn apps(&self) -> &Cached<Option<Arc<App>>> {
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

/// One cache: moka behind a front map (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Cached<V>(Arc<Layers<V>>);

struct Layers<V> {
    /// Values with the instant they were loaded.
    loader: Cache<String, (V, Instant)>,
    front: RwLock<HashMap<Box<str>, (V, Instant)>>,
    /// Bumped by every invalidation: a value read before one is not put in front after it.
    generation: AtomicU64,
    ttl: Duration,
}

impl<V: Clone + Send + Sync + 'static> Cached<V> {
    fn new(capacity: u64, ttl: Duration) -> Self {
        Self(Arc::new(Layers {
            loader: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            front: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl,
        }))
    }

    fn invalidate_all(&self) {
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0
            .front
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.0.loader.invalidate_all();
    }

    /// The value if the front layer holds it, fresh at `now`: [`get_or_load`]'s answer
    /// without waiting.
    fn hit(&self, key: &str, now: Instant) -> Option<V> {
        let front = self.0.front.read().unwrap_or_else(|e| e.into_inner());
        let (value, loaded) = front.get(key)?;
        (now.saturating_duration_since(*loaded) < self.0.ttl).then(|| value.clone())
    }
}

/// `cache`'s value for `key`, loaded by `load` on a miss (once for concurrent misses). A
/// hit borrows `key`: only a miss builds the owned key (and ever polls `load`).
pub async fn get_or_load<V, E>(
    cache: &Cached<V>,
    key: &str,
    load: impl Future<Output = Result<V, E>>,
) -> Result<V, Arc<E>>
where
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    let now = Instant::now();
    if let Some(hit) = cache.hit(key, now) {
        return Ok(hit);
    }
    let layers = &cache.0;
    let generation = layers.generation.load(Ordering::Acquire);
    let (value, loaded) = match layers.loader.get(key).await {
        Some(hit) => hit,
        None => {
            let load = async { load.await.map(|v| (v, Instant::now())) };
            layers.loader.try_get_with(key.to_owned(), load).await?
        }
    };
    let mut front = layers.front.write().unwrap_or_else(|e| e.into_inner());
    if layers.generation.load(Ordering::Acquire) == generation {
        if front.len() >= FRONT_ENTRIES {
            front.clear();
        }
        front.insert(key.into(), (value.clone(), loaded));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn get(cache: &Cached<u32>, key: &str, loads: &AtomicUsize, value: u32) -> u32 {
        get_or_load(cache, key, async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(value)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn hits_are_served_until_the_ttl_or_an_invalidation() {
        let cache = Cached::new(100, Duration::from_millis(200));
        let loads = AtomicUsize::new(0);
        assert_eq!(get(&cache, "a", &loads, 1).await, 1);
        assert_eq!(get(&cache, "a", &loads, 2).await, 1, "cached");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        cache.invalidate_all();
        assert_eq!(
            get(&cache, "a", &loads, 3).await,
            3,
            "invalidated in both layers"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            get(&cache, "a", &loads, 4).await,
            4,
            "expired in both layers"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_front_ages_entries_from_their_load_not_its_own_insert() {
        let cache = Cached::new(100, Duration::from_millis(300));
        let loads = AtomicUsize::new(0);
        assert_eq!(get(&cache, "a", &loads, 1).await, 1);
        // Out of the front (a full front starts over) but still in moka.
        cache.0.front.write().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            get(&cache, "a", &loads, 2).await,
            1,
            "from moka, into the front"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            get(&cache, "a", &loads, 3).await,
            3,
            "350 ms after its load: too old, though put in front 150 ms ago"
        );
    }

    #[tokio::test]
    async fn a_value_read_before_an_invalidation_is_not_put_in_front_after_it() {
        let cache: Cached<u32> = Cached::new(100, Duration::from_secs(60));
        let stale = get_or_load(&cache, "a", async {
            cache.invalidate_all(); // lands while this load is in flight
            Ok::<_, ()>(1)
        })
        .await
        .unwrap();
        assert_eq!(stale, 1);
        assert!(cache.hit("a", Instant::now()).is_none());
    }
}
