//! Where the publisher's messages go: this node's hub, and in a cluster the relay to the
//! other nodes (after the hub, so local subscribers never wait on the relay).

use std::sync::Arc;

use picloud_core::message::{Broadcaster, Message};

use crate::cluster::Node;
use crate::hub::Hub;

pub(crate) struct Fanout {
    pub hub: Arc<Hub>,
    pub node: Option<Arc<Node>>,
}

impl Broadcaster for Fanout {
    fn broadcast(&self, message: Arc<Message>) {
        self.hub.broadcast(message.clone());
        if let Some(node) = &self.node {
            node.relay(std::slice::from_ref(&message));
        }
    }

    fn broadcast_committed(&self, messages: Vec<Arc<Message>>) {
        for m in &messages {
            self.hub.broadcast(m.clone());
        }
        if let Some(node) = &self.node {
            node.relay(&messages);
        }
    }
}
