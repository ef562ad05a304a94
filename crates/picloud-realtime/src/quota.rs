//! Per-app quotas on this node (`picloud_core::quota`): open realtime connections, topics
//! per connection, and publish rates through the admin API. Rates are token buckets
//! (`governor`) holding one second's worth. Each app's quotas are read once and kept until
//! they change (`invalidate`, relayed to every node) or for [`CACHE_TTL`]; a re-read that
//! finds them unchanged keeps the buckets, and one the database cannot answer keeps what was
//! read before (a publish must not fail for want of its quotas while it could otherwise
//! go on). The map is read under a shared lock per publish: cheaper than a cache that
//! records every read (see `lookup_cache` in picloud-api).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hashbrown::HashMap;
use picloud_core::ids::AppId;
use picloud_core::quota::Effective;
use picloud_core::store::RuntimeStore;
use picloud_core::StoreError;

const CACHE_TTL: Duration = Duration::from_secs(30);

/// Which quota refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Connections,
    TopicsPerConnection,
    Publishes,
    EphemeralPublishes,
    ClientEvents,
    PresenceUpdates,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::TopicsPerConnection => "topics_per_connection",
            Self::Publishes => "publishes_per_sec",
            Self::EphemeralPublishes => "ephemeral_per_sec",
            Self::ClientEvents => "client_events_per_sec",
            Self::PresenceUpdates => "presence_per_sec",
        }
    }
}

/// Counts a refusal of `app` in `/metrics` (`picloud_quota_refusals_total{app,quota}`) and
/// answers the whole seconds to send as `Retry-After`: what every refusing answer does.
pub fn refusal(app: &str, limit: Limit, retry_after: Duration) -> u64 {
    metrics::counter!("picloud_quota_refusals_total", "app" => app.to_owned(), "quota" => limit.as_str())
        .increment(1);
    retry_after.as_secs_f64().ceil().max(1.0) as u64
}

#[derive(Debug)]
pub enum Refused {
    /// Over a quota: try again after `retry_after` (rates: when the bucket has room;
    /// connections and topics: a guess, nothing frees on a timer).
    Over {
        limit: Limit,
        retry_after: Duration,
    },
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// One app's quotas and rate buckets.
struct AppLimits {
    quotas: Effective,
    publishes: DefaultDirectRateLimiter,
    ephemeral: DefaultDirectRateLimiter,
}

/// An app's limits and when they were read.
type Read = (Arc<AppLimits>, Instant);

#[derive(Clone)]
pub struct QuotaService {
    store: Arc<dyn RuntimeStore>,
    apps: Arc<RwLock<HashMap<AppId, Read>>>,
    /// Open connections per app on this node (outside the cache: counts outlive a change).
    open: Arc<Mutex<HashMap<AppId, u32>>>,
}

fn bucket(per_sec: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate))
}

impl QuotaService {
    pub fn new(store: Arc<dyn RuntimeStore>) -> Self {
        Self {
            store,
            apps: Arc::default(),
            open: Arc::default(),
        }
    }

    async fn limits(&self, app: &AppId) -> Result<Arc<AppLimits>, StoreError> {
        let known = self.apps.read().expect("quota lock").get(app).cloned();
        if let Some((limits, read_at)) = &known {
            if read_at.elapsed() < CACHE_TTL {
                return Ok(limits.clone());
            }
        }
        let quotas = match self.store.get_quotas(app).await {
            Ok(q) => q.effective(),
            Err(e) => return known.map(|(l, _)| l).ok_or(e),
        };
        let limits = match known {
            Some((l, _)) if l.quotas == quotas => l,
            _ => Arc::new(AppLimits {
                quotas,
                publishes: bucket(quotas.publishes_per_sec),
                ephemeral: bucket(quotas.ephemeral_per_sec),
            }),
        };
        self.apps
            .write()
            .expect("quota lock")
            .insert(app.clone(), (limits.clone(), Instant::now()));
        Ok(limits)
    }

    /// What applies to the app now.
    pub async fn effective(&self, app: &AppId) -> Result<Effective, StoreError> {
        Ok(self.limits(app).await?.quotas)
    }

    /// The app's quotas changed: read them again on next use (its buckets start full).
    pub fn invalidate(&self, app: &AppId) {
        self.apps.write().expect("quota lock").remove(app);
    }

    /// Takes `n` publishes from the app's bucket (`durable` or ephemeral).
    pub async fn publish(&self, app: &AppId, durable: bool, n: u32) -> Result<(), Refused> {
        let limits = self.limits(app).await?;
        let (bucket, limit) = if durable {
            (&limits.publishes, Limit::Publishes)
        } else {
            (&limits.ephemeral, Limit::EphemeralPublishes)
        };
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match bucket.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refused::Over {
                limit,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }),
            // More than a second's worth in one request: it can never pass.
            Err(_) => Err(Refused::Over {
                limit,
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Admits a connection of `topics` topics, counted until the permit is dropped.
    pub async fn connect(&self, app: &AppId, topics: usize) -> Result<Permit, Refused> {
        let q = self.limits(app).await?.quotas;
        if topics > q.topics_per_connection as usize {
            return Err(Refused::Over {
                limit: Limit::TopicsPerConnection,
                retry_after: Duration::from_secs(60),
            });
        }
        let mut open = self.open.lock().expect("quota lock");
        let n = open.entry(app.clone()).or_insert(0);
        if *n >= q.connections {
            return Err(Refused::Over {
                limit: Limit::Connections,
                retry_after: Duration::from_secs(5),
            });
        }
        *n += 1;
        Ok(Permit {
            app: app.clone(),
            open: self.open.clone(),
        })
    }
}

/// A connection's own bucket: `per_sec`, in bursts of twice that.
pub fn per_connection(per_sec: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2"));
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// A bucket of `count` per `per_secs` seconds, all of it usable at once.
pub fn per_window(limit: picloud_core::topic::RateLimit) -> DefaultDirectRateLimiter {
    let count = NonZeroU32::new(limit.count).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs(u64::from(limit.per_secs.max(1))) / count.get();
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a non-zero period")
        .allow_burst(count);
    RateLimiter::direct(quota)
}

/// Takes one from `bucket`, or says how long until it has one.
pub fn take(bucket: &DefaultDirectRateLimiter) -> Result<(), Duration> {
    bucket
        .check()
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// One admitted connection; dropping it frees its place.
pub struct Permit {
    app: AppId,
    open: Arc<Mutex<HashMap<AppId, u32>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("quota lock");
        if let Some(n) = open.get_mut(&self.app) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.app);
            }
        }
    }
}
