//! The relay between nodes of a cluster (issue 26): messages on named channels, delivered to
//! every node subscribed to the channel, the sender included. Lossy by contract — a node that
//! misses a frame repairs the gap from the database — so `publish` succeeding means only that
//! the transport took the message.
//!
//! Two implementations under one conformance suite (`tests/relay.rs`): [`LocalBus`] for one
//! process (a single node, or several in a test) and [`RedisRelay`] over Redis PUB/SUB.

mod local;
mod redis;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::broadcast;

pub use self::redis::RedisRelay;
pub use local::{LocalBus, LocalRelay};

/// Subscribes to `channel` now if the relay answers, else keeps trying every second in the
/// background: a node starts while Redis is down and rides the outage out.
pub async fn keep_subscribed(relay: Arc<dyn Relay>, channel: String) {
    if relay.subscribe(&channel).await.is_ok() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if relay.subscribe(&channel).await.is_ok() {
                return;
            }
        }
    });
}

/// How many received messages wait for a slow reader before it lags (and repairs).
pub const RECEIVED_CAPACITY: usize = 16 * 1024;

/// A message as a node receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub channel: Arc<str>,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    #[error("relay unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Relay: Send + Sync {
    /// Sends `payload` to every node subscribed to `channel`.
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), RelayError>;
    /// Sends each `(channel, payload)`, in order (one round trip where the transport can).
    async fn publish_all(&self, messages: Vec<(String, Bytes)>) -> Result<(), RelayError> {
        for (channel, payload) in messages {
            self.publish(&channel, payload).await?;
        }
        Ok(())
    }
    /// Starts receiving `channel` on this node; returns once the subscription is live, so a
    /// message published after it returns is received (subscribe before reading a position).
    async fn subscribe(&self, channel: &str) -> Result<(), RelayError>;
    async fn unsubscribe(&self, channel: &str) -> Result<(), RelayError>;
    /// What this node receives, on every channel it subscribed to, in the order the
    /// transport delivered it (per channel and sender: the publish order).
    fn received(&self) -> broadcast::Receiver<Received>;
}
