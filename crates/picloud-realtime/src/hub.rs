//! The in-process fan-out: one [`Channel`] per (app, topic) with live subscribers.
//!
//! A channel exists only while someone listens: it is created by the first subscriber and
//! removed when the last one leaves, so idle topics cost nothing. A publish with no listener
//! is a map lookup. Each channel holds a frame only until all its subscribers have read it,
//! and at most `capacity` frames; a subscriber that falls further behind gets `Lagged` and
//! repairs the gap from history instead of holding memory.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use picloud_core::ids::AppId;
use picloud_core::message::{Broadcaster, Message};
use picloud_core::topic::TopicName;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use hashbrown::{Equivalent, HashMap};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use bytes::Bytes;

use crate::channel::{Channel, Direct, Receiver};
use crate::frame::MessageFrame;
use crate::stats::Stats;

/// A channel's key, owned by the map: the app id and the topic name in one allocation
/// (`app`, a `\0`, `topic`; neither can contain a `\0`), so that a lookup's comparison
/// reads one cold string rather than two. Lookups borrow ([`KeyRef`]) so that a broadcast
/// allocates nothing to find its channel.
#[derive(PartialEq, Eq)]
struct Key(Box<str>);

impl Key {
    fn new(app: &AppId, topic: &TopicName) -> Self {
        Self(format!("{}\0{}", app.as_str(), topic.as_str()).into_boxed_str())
    }

    fn parts(&self) -> (&str, &str) {
        self.0.split_once('\0').unwrap_or((&self.0, ""))
    }
}

/// A borrowed [`Key`]: hashes as the key does, compares equal to it.
struct KeyRef<'a>(&'a str, &'a str);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(self.0.as_bytes());
        h.write_u8(0);
        h.write(self.1.as_bytes());
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (app, topic) = self.parts();
        KeyRef(app, topic).hash(h)
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        let k = key.0.as_bytes();
        let (app, topic) = (self.0.as_bytes(), self.1.as_bytes());
        k.len() == app.len() + 1 + topic.len()
            && k[app.len()] == 0
            && k.starts_with(app)
            && k.ends_with(topic)
    }
}

pub struct Hub {
    /// A std Mutex: held for a map lookup only, never across an await. hashbrown's
    /// default hasher (foldhash, seeded per map) rather than SipHash: a lookup per
    /// broadcast, on keys tenants choose but cannot see the seed of.
    channels: Mutex<HashMap<Key, Arc<Channel>>>,
    capacity: usize,
    stats: Arc<Stats>,
}

impl Hub {
    pub fn new(capacity: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            capacity,
            stats,
        })
    }

    /// Starts listening to a topic. Frames broadcast from now on reach the receiver.
    pub fn subscribe(self: &Arc<Self>, app: &AppId, topic: &TopicName) -> Subscription {
        let mut channels = self.channels.lock().expect("hub lock");
        let rx = match channels.get(&KeyRef(app.as_str(), topic.as_str())) {
            Some(channel) => channel.subscribe(),
            None => {
                let channel = Channel::new(self.capacity);
                let rx = channel.subscribe();
                channels.insert(Key::new(app, topic), channel);
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
        let removed = self
            .channels
            .lock()
            .expect("hub lock")
            .remove(&KeyRef(app.as_str(), topic.as_str()));
        if let Some(channel) = removed {
            channel.close();
        }
    }

    /// Topics with at least one subscriber.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().expect("hub lock").len()
    }

    fn channel(&self, app: &AppId, topic: &TopicName) -> Option<Arc<Channel>> {
        // Only for topics that have listeners is the frame ever rendered.
        self.channels
            .lock()
            .expect("hub lock")
            .get(&KeyRef(app.as_str(), topic.as_str()))
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
    stream: Option<Receiver>,
    app: AppId,
    topic: TopicName,
    hub: Arc<Hub>,
}

/// Direct writing (see the `channel` module): only a live subscription has a receiver.
impl Subscription {
    pub(crate) fn set_direct(&mut self, direct: Box<dyn Direct>) {
        if let Some(rx) = self.stream.as_mut() {
            rx.set_direct(direct);
        }
    }

    pub(crate) fn allow_direct(&mut self) {
        if let Some(rx) = self.stream.as_mut() {
            rx.allow_direct();
        }
    }

    pub(crate) fn direct_mut(&mut self) -> Option<&mut (dyn Direct + 'static)> {
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
        let mut channels = self.hub.channels.lock().expect("hub lock");
        let key = KeyRef(self.app.as_str(), self.topic.as_str());
        if channels
            .get(&key)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            channels.remove(&key);
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
}
