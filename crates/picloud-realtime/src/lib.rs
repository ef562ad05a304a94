//! PiCloud realtime: durable publish and live delivery to browsers over SSE.
//!
//! # Layout
//! - [`publisher`]: every publish goes through [`Publisher`]: group commit through the
//!   `MessageStore`, then broadcast after commit.
//! - [`hub`]: the in-process fan-out ([`Hub`], the `Broadcaster`): one bounded, hand-written
//!   fan-out channel (`channel`) per (app, topic) while it has subscribers.
//! - `codes`: the protocol's error codes, as the wire spells them.
//! - [`sse`]: the subscribe endpoint: request parsing, auth (404/401), and the per-connection
//!   stream (catch-up, live, dedupe, gap repair, resync, keepalive, token expiry).
//! - [`frame`]: SSE frames rendered once per message; [`position`]: resume ids.
//! - [`token`]: HS256 subscriber tokens and the app-secret cache ([`TokenService`]).
//! - [`quota`]: per-app quotas on this node (connections, topics per connection, publish
//!   rates through the admin API).
//! - [`pruner`]: retention; [`stats`]: counters for `/health/realtime` and `/metrics`.
//! - [`streams`]: this node's open streams (who, since when, from where, how far).
//! - `sequence`: a topic's delivery order on this node; `repair`: its gaps read from
//!   history, once for all of the topic's local subscribers.
//! - [`relay`]: messages between the nodes of a cluster (in-process, or Redis PUB/SUB);
//!   [`cluster`]: this node's frames out and in, relay subscriptions, liveness and
//!   position checks; `fanout`: the publisher's hub-then-relay.
//!
//! Data flow: publish → `Publisher` queue → one transaction per batch → `Fanout` → the
//! hub (each topic's order, then its channel → each subscriber's stream → its socket) and
//! the relay (→ other nodes' hubs). History (the store) backs every repair.

mod catchup;
mod channel;
pub mod cluster;
pub mod codes;
mod direct;
mod fanout;
pub mod frame;
pub mod hub;
mod order;
pub mod position;
pub mod presence;
pub mod pruner;
pub mod publisher;
pub mod quota;
pub mod relay;
mod repair;
mod sequence;
pub mod sse;
pub mod stats;
pub mod streams;
pub mod token;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use picloud_core::store::Store;
use tokio_util::sync::CancellationToken;

pub use hub::Hub;
pub use publisher::{Published, Publisher};
pub use stats::{Snapshot, Stats};
pub use streams::Streams;
pub use token::TokenService;

pub const LAG_HISTOGRAM: &str = "picloud_realtime_publish_to_send_seconds";
/// Messages per publish transaction: how much group commit is gathering.
pub const BATCH_HISTOGRAM: &str = "picloud_publish_batch_messages";
/// Time a publish transaction takes, from the writer handing it to the store to its commit.
pub const COMMIT_HISTOGRAM: &str = "picloud_publish_commit_seconds";

#[derive(Clone, Debug)]
pub struct RealtimeConfig {
    /// Keepalive comment interval (`PICLOUD_REALTIME_HEARTBEAT_SEC`).
    pub heartbeat: Duration,
    /// The `retry:` sent first on every stream, in milliseconds.
    pub retry_ms: u64,
    pub max_topics_per_stream: usize,
    /// Most frames a topic's channel holds for its slowest reader before that reader
    /// loses the oldest (`Lagged`) and must repair from history (an ephemeral frame, which
    /// has none, is then lost to it). Held only while someone lags, never allocated ahead.
    pub channel_capacity: usize,
    /// How long before expiry a stream sends `token_expiring`.
    pub token_warning: Duration,
    pub key_cache_ttl: Duration,
    pub prune_every: Duration,
    /// Largest accepted message payload.
    pub max_payload_bytes: usize,
    /// Publish lanes (`PICLOUD_PUBLISH_LANES`); `None`: the store's
    /// [`Store::publish_lanes`].
    pub publish_lanes: Option<usize>,
    /// How long a WebSocket may be silent before the server pings it
    /// (`PICLOUD_WS_PING_SEC`); it is dropped when nothing comes within [`Self::ws_pong_wait`].
    pub ws_ping: Duration,
    pub ws_pong_wait: Duration,
    /// Longest a write to a subscriber (SSE or WebSocket) may wait for its client to take
    /// any of it (`PICLOUD_SEND_TIMEOUT_SECS`): past it the client has stopped reading and
    /// is dropped, counted in `slow_consumer_disconnects`.
    pub send_timeout: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            retry_ms: 2000,
            max_topics_per_stream: 100,
            channel_capacity: 4096,
            token_warning: Duration::from_secs(60),
            key_cache_ttl: Duration::from_secs(30),
            prune_every: Duration::from_secs(30),
            max_payload_bytes: picloud_core::message::DEFAULT_MAX_PAYLOAD_BYTES,
            publish_lanes: None,
            ws_ping: Duration::from_secs(25),
            ws_pong_wait: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything realtime, shared by the admin API (publish, tokens, secrets) and the data
/// plane (subscribe). Cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub publisher: Publisher,
    pub tokens: TokenService,
    pub stats: Arc<Stats>,
    /// This node's open streams (the admin subscribers list).
    pub streams: Arc<Streams>,
    pub config: RealtimeConfig,
    /// Fired at server shutdown: streams tell clients to reconnect and end.
    pub shutdown: CancellationToken,
    /// This node in its cluster, if it is in one.
    pub cluster: Option<Arc<cluster::Node>>,
    /// Per-app quotas on this node.
    pub quotas: quota::QuotaService,
    /// Who is on presence topics (this process, or Redis in a cluster).
    pub presence: presence::Presence,
    /// Topic settings as WebSocket requests check them (kept 2 s).
    pub(crate) topics: ws::TopicCache,
    sends: SendRecorder,
}

impl Realtime {
    /// Starts the publisher's writer, gap repairs and the retention pruner (until
    /// `shutdown`), and in a cluster joins it.
    pub async fn start(
        store: Arc<dyn Store>,
        config: RealtimeConfig,
        shutdown: CancellationToken,
        cluster: Option<cluster::ClusterConfig>,
    ) -> Self {
        let stats = Arc::new(Stats::default());
        let (hub, events) = Hub::new(config.channel_capacity, stats.clone(), cluster.is_some());
        repair::spawn(
            hub.clone(),
            store.clone(),
            stats.clone(),
            events.repairs,
            shutdown.clone(),
        );
        let presence_store = cluster.as_ref().and_then(|c| c.presence.clone());
        let node = match (cluster, events.interest) {
            (Some(config), Some(interest)) => Some(
                cluster::Node::start(
                    config,
                    hub.clone(),
                    store.clone(),
                    stats.clone(),
                    interest,
                    shutdown.clone(),
                )
                .await,
            ),
            _ => None,
        };
        let lanes = config
            .publish_lanes
            .unwrap_or_else(|| store.publish_lanes());
        let fanout = Arc::new(fanout::Fanout {
            hub: hub.clone(),
            node: node.clone(),
        });
        let presence_store = match &presence_store {
            Some(p) => p.clone(),
            None => {
                Arc::new(presence::LocalPresence::default()) as Arc<dyn presence::PresenceStore>
            }
        };
        let presence = presence::Presence::start(presence_store, fanout.clone(), shutdown.clone());
        let publisher = Publisher::start(store.clone(), fanout, stats.clone(), lanes);
        let tokens = TokenService::new(store.clone(), store.clone(), config.key_cache_ttl);
        pruner::spawn(store.clone(), config.prune_every, shutdown.clone());
        metrics::describe_histogram!(
            LAG_HISTOGRAM,
            "Time from publish to the frame leaving for a subscriber"
        );
        let sends = SendRecorder {
            stats: stats.clone(),
            lag: metrics::histogram!(LAG_HISTOGRAM),
        };
        Self {
            quotas: quota::QuotaService::new(store.clone()),
            presence,
            topics: ws::TopicCache::new(store.clone()),
            store,
            hub,
            publisher,
            tokens,
            stats,
            streams: Arc::new(Streams::default()),
            config,
            shutdown,
            cluster: node,
            sends,
        }
    }

    /// See [`SendRecorder::record_send`].
    pub(crate) fn record_send(&self, published_at_ms: i64) {
        self.sends.record_send(published_at_ms);
    }

    /// What a stream's direct writer needs to count its sends (two handles, not the whole
    /// of `Realtime`: every subscriber holds one).
    pub(crate) fn send_recorder(&self) -> SendRecorder {
        self.sends.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.stats
            .snapshot(self.hub.channel_count(), self.cluster.as_deref())
    }
}

/// Counts live frames leaving (see [`Realtime::send_recorder`]).
#[derive(Clone)]
pub(crate) struct SendRecorder {
    pub(crate) stats: Arc<Stats>,
    lag: metrics::Histogram,
}

impl SendRecorder {
    /// Records a live frame leaving: counts it, and samples the publish→send lag for one
    /// frame in 16 (a clock read and a histogram insert per delivery would cost more than
    /// the delivery itself at fan-out rates).
    pub(crate) fn record_send(&self, published_at_ms: i64) {
        if self.stats.frames_sent.add(1).is_multiple_of(16) {
            let lag_ms = chrono::Utc::now().timestamp_millis() - published_at_ms;
            self.lag.record(lag_ms.max(0) as f64 / 1000.0);
        }
    }
}
