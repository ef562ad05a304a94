//! The in-process fan-out: one [`Channel`] per (app, topic) with live subscribers.
//!
//! A channel exists only while someone listens: it is created by the first subscriber and
//! removed when the last one leaves, so idle topics cost nothing. A publish with no listener
//! is a map lookup. Each channel holds a frame only until all its subscribers have read it,
//! and at most `capacity` frames; a subscriber that falls further behind gets `Lagged` and
//! repairs the gap from history instead of holding memory.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use picloud_core::ids::AppId;
use picloud_core::message::{Broadcaster, Message};
use picloud_core::topic::TopicName;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use hashbrown::{DefaultHashBuilder, HashTable};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use bytes::Bytes;

use crate::channel::{ChannelKey, Receiver};
use crate::direct::SocketWriter;
use crate::frame::MessageFrame;
use crate::stats::Stats;

/// A channel's (app, topic) as a lookup sees it. A channel keeps its own as `app`, a `\0`,
/// `topic` (neither can contain a `\0`), inline in its allocation, with the hash: so the
/// table holds only pointers, and a broadcast's lookup compares the key in the cache lines
/// it then reads anyway (the key in a separate allocation, and the table's wider buckets,
/// were most of S4's user-space cache misses by `perf`).
#[derive(Clone, Copy)]
struct KeyRef<'a>(&'a str, &'a str);

impl KeyRef<'_> {
    fn to_key(self) -> ChannelKey {
        let mut key = ChannelKey::with_capacity(self.0.len() + 1 + self.1.len());
        key.extend_from_slice(self.0.as_bytes());
        key.push(0);
        key.extend_from_slice(self.1.as_bytes());
        key
    }

    /// Whether `channel` is this key's.
    fn matches(self, channel: &Channel) -> bool {
        let key = channel.key();
        let (app, topic) = (self.0.as_bytes(), self.1.as_bytes());
        key.len() == app.len() + 1 + topic.len()
            && key[app.len()] == 0
            && key.starts_with(app)
            && key.ends_with(topic)
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(self.0.as_bytes());
        h.write_u8(0);
        h.write(self.1.as_bytes());
    }
}

/// A topic's channel: its subscribers' direct writers write to SSE sockets.
type Channel = crate::channel::Channel<SocketWriter>;

pub struct Hub {
    /// A std Mutex: held for a map lookup only, never across an await. hashbrown's
    /// default hasher (foldhash, seeded per hub) rather than SipHash: a lookup per
    /// broadcast, on keys tenants choose but cannot see the seed of.
    channels: Mutex<HashTable<Arc<Channel>>>,
    hasher: DefaultHashBuilder,
    capacity: usize,
    stats: Arc<Stats>,
}

impl Hub {
    pub fn new(capacity: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashTable::new()),
            hasher: DefaultHashBuilder::default(),
            capacity,
            stats,
        })
    }

    /// The borrowed key of (`app`, `topic`) and its hash: what a lookup takes.
    fn key<'a>(&self, app: &'a AppId, topic: &'a TopicName) -> (KeyRef<'a>, u64) {
        let key = KeyRef(app.as_str(), topic.as_str());
        (key, self.hasher.hash_one(key))
    }

    /// Starts listening to a topic. Frames broadcast from now on reach the receiver.
    pub fn subscribe(self: &Arc<Self>, app: &AppId, topic: &TopicName) -> Subscription {
        let (key, hash) = self.key(app, topic);
        let mut channels = self.channels.lock().expect("hub lock");
        let rx = match channels.find(hash, |c| key.matches(c)) {
            Some(channel) => channel.subscribe(),
            None => {
                let channel = Channel::keyed(self.capacity, key.to_key(), hash);
                let rx = channel.subscribe();
                channels.insert_unique(hash, channel, |c| c.hash());
                rx
            }
        };
        self.stats.subscribers.inc();
        Subscription {
            stream: Some(rx),
            app: app.clone(),
            topic: topic.clone(),
            hub: self.clone(),
        }
    }

    /// Ends every live stream of a topic (it was deleted): their receivers see `Closed`.
    pub fn close_topic(&self, app: &AppId, topic: &TopicName) {
        let (key, hash) = self.key(app, topic);
        let removed = match self
            .channels
            .lock()
            .expect("hub lock")
            .find_entry(hash, |c| key.matches(c))
        {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        };
        if let Some(channel) = removed {
            channel.close();
        }
    }

    /// Streams on this node subscribed to a topic now.
    pub fn subscribers(&self, app: &AppId, topic: &TopicName) -> usize {
        let (key, hash) = self.key(app, topic);
        let channels = self.channels.lock().expect("hub lock");
        channels
            .find(hash, |c| key.matches(c))
            .map_or(0, |c| c.receivers())
    }

    /// Topics with at least one subscriber.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().expect("hub lock").len()
    }

    fn channel(&self, app: &AppId, topic: &TopicName) -> Option<Arc<Channel>> {
        // Only for topics that have listeners is the frame ever rendered.
        let (key, hash) = self.key(app, topic);
        self.channels
            .lock()
            .expect("hub lock")
            .find(hash, |c| key.matches(c))
            .cloned()
    }
}

impl Broadcaster for Hub {
    fn broadcast(&self, message: Arc<Message>) {
        let Some(channel) = self.channel(&message.app_id, &message.topic) else {
            return;
        };
        channel.send(Arc::new(MessageFrame::new(message)));
    }
}

/// One subscriber's stream of frames (`Err` = lagged by n frames). Dropping it removes the
/// topic's channel if it was the last subscriber.
pub struct Subscription {
    stream: Option<Receiver<SocketWriter>>,
    app: AppId,
    topic: TopicName,
    hub: Arc<Hub>,
}

/// Direct writing (see the `channel` module): only a live subscription has a receiver.
impl Subscription {
    pub(crate) fn set_direct(&mut self, direct: SocketWriter) {
        if let Some(rx) = self.stream.as_mut() {
            rx.set_direct(direct);
        }
    }

    pub(crate) fn allow_direct(&mut self) {
        if let Some(rx) = self.stream.as_mut() {
            rx.allow_direct();
        }
    }

    pub(crate) fn direct_mut(&mut self) -> Option<&mut SocketWriter> {
        self.stream.as_mut()?.direct_mut()
    }

    pub(crate) fn disarm(&mut self) -> Option<Bytes> {
        self.stream.as_mut()?.disarm()
    }

    pub(crate) fn has_rest(&self) -> bool {
        self.stream.as_ref().is_some_and(Receiver::has_rest)
    }
}

impl Stream for Subscription {
    type Item = Result<Arc<MessageFrame>, BroadcastStreamRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.stream.as_mut() {
            Some(s) => s.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.stats.subscribers.dec();
        drop(self.stream.take());
        let (key, hash) = self.hub.key(&self.app, &self.topic);
        let mut channels = self.hub.channels.lock().expect("hub lock");
        if let Ok(entry) = channels.find_entry(hash, |c| key.matches(c)) {
            if entry.get().receiver_count() == 0 {
                entry.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(app: &str, topic: &str) -> Arc<Message> {
        Arc::new(Message {
            app_id: AppId(app.into()),
            topic: TopicName::parse(topic).unwrap(),
            seq: None,
            payload: Arc::from("{}"),
            published_at: 0,
        })
    }

    #[test]
    fn a_broadcast_reaches_its_own_app_and_topic_only() {
        let hub = Hub::new(8, Arc::new(Stats::default()));
        let mut sub = hub.subscribe(&AppId("ab".into()), &TopicName::parse("c").unwrap());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Same characters, split differently; then the same topic in another app.
        hub.broadcast(message("a", "bc"));
        hub.broadcast(message("abc", "c"));
        assert!(sub.poll_next_unpin(&mut cx).is_pending());
        hub.broadcast(message("ab", "c"));
        assert!(matches!(
            sub.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert_eq!(hub.channel_count(), 1);
        drop(sub);
        assert_eq!(hub.channel_count(), 0, "removed with its last subscriber");
    }

    #[test]
    fn keys_too_long_to_sit_inline_work_the_same() {
        let hub = Hub::new(8, Arc::new(Stats::default()));
        let app = "0190f1c2-7d3e-7a5b-9c1d-2e3f4a5b6c7d";
        let long = "t".repeat(picloud_core::topic::MAX_TOPIC_LEN);
        let other = format!("{}u", &long[..long.len() - 1]);
        let mut sub = hub.subscribe(&AppId(app.into()), &TopicName::parse(&long).unwrap());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        hub.broadcast(message(app, &other));
        assert!(
            sub.poll_next_unpin(&mut cx).is_pending(),
            "one byte differs"
        );
        hub.broadcast(message(app, &long));
        assert!(matches!(
            sub.poll_next_unpin(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        hub.close_topic(&AppId(app.into()), &TopicName::parse(&long).unwrap());
        assert_eq!(hub.channel_count(), 0, "closed by its key");
        assert!(matches!(sub.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }
}
