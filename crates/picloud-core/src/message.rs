//! Messages: what a publish produces and what subscribers receive.

use std::sync::Arc;

use crate::ids::AppId;
use crate::topic::TopicName;

/// Largest message payload (serialised JSON) a publish accepts by default.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// One message, durable (`seq` set) or ephemeral (`seq` none). The payload is kept as the
/// JSON text it was published with: it is validated once on the way in and never parsed
/// again, only copied into frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub app_id: AppId,
    pub topic: TopicName,
    pub seq: Option<i64>,
    pub payload: Arc<str>,
    /// Unix epoch milliseconds.
    pub published_at: i64,
    pub kind: Kind,
}

/// What a [`Message`] carries to subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    /// A published message (or a client event).
    #[default]
    Publish,
    /// A presence event: the payload is `{"event","member"}`, never durable.
    Presence,
}

/// One item of a publish batch handed to [`crate::store::MessageStore::publish`].
/// How much history one topic holds (see `MessageStore::history_counts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCount {
    pub topic: String,
    /// Messages stored now.
    pub retained: i64,
    /// Of those, published at or after the given instant.
    pub since: i64,
}

#[derive(Debug, Clone)]
pub struct PublishItem {
    pub app_id: AppId,
    pub topic: TopicName,
    pub payload: Arc<str>,
    pub published_at: i64,
}

/// Where committed (and ephemeral) messages go to reach live subscribers: the seam between
/// publishing and fan-out. Implemented by `picloud-realtime`'s `Hub`; the `Publisher`
/// calls it after each commit.
pub trait Broadcaster: Send + Sync {
    /// Hands a committed (or ephemeral) message to live subscribers. Never fails the
    /// publish: delivery problems are counted and repaired from history by subscribers.
    fn broadcast(&self, message: Arc<Message>);
    /// Hands one committed batch's messages over, in commit order (in a cluster, one
    /// relay frame per topic rather than per message).
    fn broadcast_committed(&self, messages: Vec<Arc<Message>>) {
        for m in messages {
            self.broadcast(m);
        }
    }
}
