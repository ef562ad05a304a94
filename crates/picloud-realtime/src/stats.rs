//! Realtime counters: plain atomics on the hot path, read by `/health/realtime` and copied
//! into Prometheus at scrape time (a registry lookup per frame would cost more than the
//! frame).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use hashbrown::HashMap;
use serde::Serialize;

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; returns the value before.
    pub fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Stats {
    /// Open SSE streams and WebSocket connections.
    pub connections: Gauge,
    /// Topic subscriptions across connections (a multi-topic stream counts each topic).
    pub subscribers: Gauge,
    pub published_durable: Counter,
    pub published_ephemeral: Counter,
    pub frames_sent: Counter,
    pub gap_repairs: Counter,
    pub resyncs: Counter,
    pub slow_consumer_disconnects: Counter,
    pub token_expirations: Counter,
    /// Relay frames this node sent, received from other nodes, and dropped (a full queue,
    /// a relay error, frames missed while this node lagged).
    pub relay_sent: Counter,
    pub relay_received: Counter,
    pub relay_dropped: Counter,
    /// Gaps in a topic's order on this node read from history (once for all its local
    /// subscribers); position checks run.
    pub relay_repairs: Counter,
    pub position_checks: Counter,
    /// Messages published per app (by app id), durable and ephemeral, since the node
    /// started: what the admin activity table's publishes per minute are taken from. One
    /// entry per app that ever published here; an uncontended lock per publish request.
    pub app_publishes: Mutex<HashMap<String, u64>>,
}

/// The `/health/realtime` document.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub connections: i64,
    pub subscribers: i64,
    pub topics_with_subscribers: usize,
    pub published_durable: u64,
    pub published_ephemeral: u64,
    pub frames_sent: u64,
    pub gap_repairs: u64,
    pub resyncs: u64,
    pub slow_consumer_disconnects: u64,
    pub token_expirations: u64,
    /// `PICLOUD_NODE_ID` in a cluster.
    pub node_id: Option<String>,
    pub relay: crate::cluster::RelayState,
    pub relay_sent: u64,
    pub relay_received: u64,
    pub relay_dropped: u64,
    pub relay_repairs: u64,
    pub position_checks: u64,
}

impl Stats {
    /// Counts `n` messages published by `app`.
    pub fn count_app_publishes(&self, app: &str, n: u64) {
        *self
            .app_publishes
            .lock()
            .expect("app publishes lock")
            .entry_ref(app)
            .or_default() += n;
    }

    /// Messages published per app since the node started.
    pub fn app_publishes(&self) -> HashMap<String, u64> {
        self.app_publishes
            .lock()
            .expect("app publishes lock")
            .clone()
    }

    pub fn snapshot(
        &self,
        topics_with_subscribers: usize,
        node: Option<&crate::cluster::Node>,
    ) -> Snapshot {
        Snapshot {
            connections: self.connections.get(),
            subscribers: self.subscribers.get(),
            topics_with_subscribers,
            published_durable: self.published_durable.get(),
            published_ephemeral: self.published_ephemeral.get(),
            frames_sent: self.frames_sent.get(),
            gap_repairs: self.gap_repairs.get(),
            resyncs: self.resyncs.get(),
            slow_consumer_disconnects: self.slow_consumer_disconnects.get(),
            token_expirations: self.token_expirations.get(),
            node_id: node.map(|n| n.id.to_string()),
            relay: node.map_or(crate::cluster::RelayState::Off, crate::cluster::Node::state),
            relay_sent: self.relay_sent.get(),
            relay_received: self.relay_received.get(),
            relay_dropped: self.relay_dropped.get(),
            relay_repairs: self.relay_repairs.get(),
            position_checks: self.position_checks.get(),
        }
    }
}

/// Counts a connection while it lives.
pub(crate) struct ConnectionGuard(std::sync::Arc<Stats>);

impl ConnectionGuard {
    pub(crate) fn new(stats: std::sync::Arc<Stats>) -> Self {
        stats.connections.inc();
        Self(stats)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
