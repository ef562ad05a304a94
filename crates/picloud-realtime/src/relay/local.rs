//! The relay inside one process: a bus that nodes (handles) join. One node in single-node
//! mode; several in tests, where it stands for Redis with nothing lost.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use super::{Received, Relay, RelayError, RECEIVED_CAPACITY};

struct Node {
    channels: Mutex<HashSet<Arc<str>>>,
    tx: broadcast::Sender<Received>,
}

/// The nodes of one process.
#[derive(Clone, Default)]
pub struct LocalBus {
    nodes: Arc<Mutex<Vec<Arc<Node>>>>,
}

/// One node's handle on a [`LocalBus`].
pub struct LocalRelay {
    bus: LocalBus,
    node: Arc<Node>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new node on the bus.
    pub fn node(&self) -> LocalRelay {
        let (tx, _) = broadcast::channel(RECEIVED_CAPACITY);
        let node = Arc::new(Node {
            channels: Mutex::new(HashSet::new()),
            tx,
        });
        self.nodes.lock().expect("bus lock").push(node.clone());
        LocalRelay {
            bus: self.clone(),
            node,
        }
    }
}

impl Drop for LocalRelay {
    fn drop(&mut self) {
        self.bus
            .nodes
            .lock()
            .expect("bus lock")
            .retain(|n| !Arc::ptr_eq(n, &self.node));
    }
}

#[async_trait]
impl Relay for LocalRelay {
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), RelayError> {
        let nodes = self.bus.nodes.lock().expect("bus lock").clone();
        let channel: Arc<str> = channel.into();
        for n in nodes {
            if n.channels.lock().expect("node lock").contains(&channel) {
                // No receiver yet is not an error: the message is simply not kept.
                let _ = n.tx.send(Received {
                    channel: channel.clone(),
                    payload: payload.clone(),
                });
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<(), RelayError> {
        self.node
            .channels
            .lock()
            .expect("node lock")
            .insert(channel.into());
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), RelayError> {
        self.node
            .channels
            .lock()
            .expect("node lock")
            .remove(channel);
        Ok(())
    }

    fn received(&self) -> broadcast::Receiver<Received> {
        self.node.tx.subscribe()
    }
}
