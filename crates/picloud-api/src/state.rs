//! Shared server state: the store, the host resolver, configuration, the metrics handle.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use picloud_core::host::Host;
use picloud_core::ids::AppId;
use picloud_core::script::Route;
use picloud_core::store::Store;
use picloud_dispatch::Invoker;
use picloud_realtime::Realtime;

use crate::activity::Activity;
use crate::host::HostResolver;
use crate::key_revocations::KeyRevocations;
use crate::lookup_cache::LookupCache;

/// HTTP-level configuration, decided by the binary from flags and env.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Hosts that serve the control plane (admin API, dashboard, metrics). Any other Host is
    /// resolved to an app.
    pub admin_hosts: Vec<Host>,
    /// Largest request body any endpoint accepts.
    pub max_body_bytes: usize,
    /// Deadline for receiving a request head (then `408`) and for producing a response
    /// head (not for streaming one: SSE streams outlive it).
    pub request_timeout: Duration,
    /// How long a connection may wait between requests before the server closes it (the
    /// keep-alive loop closes after between one and two such periods of silence).
    pub keep_alive_idle: Duration,
    /// Open connections at most; beyond it a new connection is accepted and closed at
    /// once (`picloud_connections_refused_total`).
    pub max_connections: usize,
    /// How long a Host → app resolution may be served from cache without a change event.
    /// Bounds staleness on nodes that missed an invalidation.
    pub host_cache_ttl: Duration,
    /// How long a verified admin key may be served from cache: how long a key revoked
    /// offline or on another node keeps working here.
    pub admin_key_cache_ttl: Duration,
    /// Most bytes an app's static files may hold together.
    pub static_quota_bytes: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            admin_hosts: ["localhost", "127.0.0.1"]
                .iter()
                .map(|h| Host::parse(h).expect("valid default host"))
                .collect(),
            max_body_bytes: 1024 * 1024,
            static_quota_bytes: 100 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            keep_alive_idle: Duration::from_secs(75),
            max_connections: 50_000,
            host_cache_ttl: Duration::from_secs(30),
            admin_key_cache_ttl: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub resolver: HostResolver,
    pub lookups: LookupCache,
    pub config: ApiConfig,
    pub metrics: PrometheusHandle,
    pub realtime: Realtime,
    pub invoker: Invoker,
    /// Each app's routes, for the data plane. Changes through this node invalidate at once;
    /// the TTL bounds how long another node's change takes to show here.
    pub routes: moka::future::Cache<AppId, Arc<Vec<Route>>>,
    /// The admin stats stream's samples.
    pub activity: Arc<Activity>,
    pub key_revocations: KeyRevocations,
    /// The cluster's control channel, when this node is in one (`join_cluster`).
    pub control: std::sync::OnceLock<crate::changes::ControlPlane>,
    /// Where `/api/v1/backups` writes, when the binary has a data dir (`with_backups`).
    pub backups: std::sync::OnceLock<Arc<crate::backups::Backups>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        config: ApiConfig,
        realtime: Realtime,
        invoker: Invoker,
    ) -> Self {
        let resolver = HostResolver::new(store.clone(), store.clone(), config.host_cache_ttl);
        let lookups = LookupCache::new(config.admin_key_cache_ttl, config.host_cache_ttl);
        let activity = Activity::start(store.clone(), realtime.clone());
        Self(Arc::new(Inner {
            store,
            resolver,
            lookups,
            config,
            metrics: crate::metrics::handle(),
            realtime,
            invoker,
            routes: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(2))
                .max_capacity(10_000)
                .build(),
            activity,
            key_revocations: KeyRevocations::default(),
            control: std::sync::OnceLock::new(),
            backups: std::sync::OnceLock::new(),
        }))
    }

    /// Serves `/api/v1/backups` from `backups`.
    pub fn with_backups(&self, backups: Arc<crate::backups::Backups>) {
        let _ = self.backups.set(backups);
    }

    /// Makes this node send its changes on `control` and apply the other nodes'.
    pub fn join_cluster(&self, control: crate::changes::ControlPlane) {
        if self.control.set(control.clone()).is_ok() {
            control.follow(self.clone());
        }
    }
}

impl axum::extract::FromRef<AppState> for Realtime {
    fn from_ref(state: &AppState) -> Realtime {
        state.realtime.clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
