//! The in-process fan-out: one [`Channel`] per (app, topic) with live subscribers.
//!
//! A channel exists only while someone listens: it is created by the first subscriber and
//! removed when the last one leaves, so idle topics cost nothing. A publish with no listener
//! is a map lookup. Each channel holds a frame only until all its subscribers have read it,
//! and at most `capacity` frames; a subscriber that falls further behind gets `Lagged` and
//! repairs the gap from history instead of holding memory.
//!
//! Durable messages reach a channel through its topic's [`Sequence`], from this node's
//! publisher and from the relay alike, so that the channel sees each seq once and in order;
//! a gap is held for [`HOLD`] and then repaired from history (`repair`). In a cluster the
//! hub also says which topics this node listens to (`Interest`), so that the relay
//! subscribes to them before a stream reads where it starts.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picloud_core::ids::AppId;
use picloud_core::message::{Broadcaster, Message};
use picloud_core::topic::TopicName;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use hashbrown::{DefaultHashBuilder, HashTable};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use bytes::Bytes;

use crate::channel::{ChannelKey, Receiver};
use crate::direct::SocketWriter;
use crate::frame::MessageFrame;
use crate::sequence::{Offered, Sends, Sequence};
use crate::stats::Stats;

/// How long a message past a gap waits for the missing ones before they are read from
/// history: the relay delivers different nodes' frames in no particular order between them.
pub const HOLD: Duration = Duration::from_millis(50);

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

/// What the hub keeps per topic with subscribers, in its channel.
#[derive(Default)]
pub(crate) struct TopicState {
    /// Taken by each durable delivery, and held while it sends (so sends are in seq order).
    order: Mutex<Sequence>,
    relayed: Arc<Relayed>,
}

/// Whether the relay delivers a topic's messages to this node yet.
#[derive(Default)]
pub(crate) struct Relayed {
    live: AtomicBool,
    changed: Notify,
}

impl Relayed {
    fn live() -> Arc<Self> {
        let r = Self::default();
        r.live.store(true, Ordering::Release);
        Arc::new(r)
    }

    /// The relay's subscription answered (live, or failed: position checks cover it then).
    pub(crate) fn settle(&self) {
        self.live.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let changed = self.changed.notified();
            if self.live.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }
}

/// A topic whose order has a gap to repair from history once `at` has passed.
pub(crate) struct Due {
    pub app: AppId,
    pub topic: TopicName,
    pub at: Instant,
}

/// Which topics this node listens to, in the order the hub's lock saw them come and go.
pub(crate) enum Interest {
    Watch(AppId, TopicName, Arc<Relayed>),
    Unwatch(AppId, TopicName),
}

pub struct Hub {
    /// A std Mutex: held for a map lookup only, never across an await. hashbrown's
    /// default hasher (foldhash, seeded per hub) rather than SipHash: a lookup per
    /// broadcast, on keys tenants choose but cannot see the seed of.
    channels: Mutex<HashTable<Arc<Channel>>>,
    hasher: DefaultHashBuilder,
    capacity: usize,
    stats: Arc<Stats>,
    repairs: mpsc::UnboundedSender<Due>,
    /// In a cluster only.
    interest: Option<mpsc::UnboundedSender<Interest>>,
}

/// Where a hub's events go: taken once by whoever serves them (`Realtime::start`).
pub(crate) struct HubEvents {
    pub repairs: mpsc::UnboundedReceiver<Due>,
    pub interest: Option<mpsc::UnboundedReceiver<Interest>>,
}

impl Hub {
    /// A hub for one node (`relayed`: of a cluster, whose relay must know the topics it
    /// listens to).
    pub(crate) fn new(capacity: usize, stats: Arc<Stats>, relayed: bool) -> (Arc<Self>, HubEvents) {
        let (repairs, repairs_rx) = mpsc::unbounded_channel();
        let (interest, interest_rx) = if relayed {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let hub = Arc::new(Self {
            channels: Mutex::new(HashTable::new()),
            hasher: DefaultHashBuilder::default(),
            capacity,
            stats,
            repairs,
            interest,
        });
        let events = HubEvents {
            repairs: repairs_rx,
            interest: interest_rx,
        };
        (hub, events)
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
            Some(t) => t.subscribe(),
            None => {
                let relayed = match &self.interest {
                    Some(interest) => {
                        let relayed = Arc::new(Relayed::default());
                        let watch = Interest::Watch(app.clone(), topic.clone(), relayed.clone());
                        let _ = interest.send(watch);
                        relayed
                    }
                    None => Relayed::live(),
                };
                let state = TopicState {
                    order: Mutex::default(),
                    relayed,
                };
                let t = Channel::keyed(self.capacity, key.to_key(), hash, state);
                let rx = t.subscribe();
                channels.insert_unique(hash, t, |t| t.hash());
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

    /// Tells the relay this node no longer listens to a topic (its channel is gone).
    fn unwatch(&self, app: &AppId, topic: &TopicName) {
        if let Some(interest) = &self.interest {
            let _ = interest.send(Interest::Unwatch(app.clone(), topic.clone()));
        }
    }

    /// Ends every live stream of a topic (it was deleted): their receivers see `Closed`.
    pub fn close_topic(&self, app: &AppId, topic: &TopicName) {
        let (key, hash) = self.key(app, topic);
        let mut channels = self.channels.lock().expect("hub lock");
        let removed = match channels.find_entry(hash, |c| key.matches(c)) {
            Ok(entry) => {
                self.unwatch(app, topic);
                Some(entry.remove().0)
            }
            Err(_) => None,
        };
        drop(channels);
        if let Some(t) = removed {
            t.close();
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

    /// Every topic with subscribers here.
    pub(crate) fn topics(&self) -> Vec<(AppId, TopicName)> {
        let channels = self.channels.lock().expect("hub lock");
        channels
            .iter()
            .filter_map(|t| {
                let key = std::str::from_utf8(t.key()).ok()?;
                let (app, topic) = key.split_once('\0')?;
                Some((AppId(app.into()), TopicName::from_trusted(topic.into())))
            })
            .collect()
    }

    /// A durable message through its topic's order to its channel.
    fn deliver(&self, t: &Channel, m: Arc<Message>) {
        let mut order = t.topic.order.lock().expect("order lock");
        match order.offer(m) {
            Offered::Send(ms) => send_all(t, ms),
            Offered::Skip => {}
            Offered::Held { opened } => {
                if let Some(first) = order.first_held().filter(|_| opened) {
                    self.due(&first.app_id, &first.topic, HOLD);
                }
            }
        }
    }

    fn due(&self, app: &AppId, topic: &TopicName, after: Duration) {
        let _ = self.repairs.send(Due {
            app: app.clone(),
            topic: topic.clone(),
            at: Instant::now() + after,
        });
    }

    /// A stream starts on a topic whose last committed seq it read after subscribing.
    pub(crate) fn started(&self, app: &AppId, topic: &TopicName, committed: i64) {
        if let Some(t) = self.channel(app, topic) {
            t.topic.order.lock().expect("order lock").started(committed);
        }
    }

    /// The topic's committed end is at least `end`: if this node has not delivered that
    /// far, a repair is due `after` from now (unless the relay catches up first).
    pub(crate) fn notice(&self, app: &AppId, topic: &TopicName, end: i64, after: Duration) {
        let Some(t) = self.channel(app, topic) else {
            return;
        };
        if t.topic.order.lock().expect("order lock").notice(end) {
            self.due(app, topic, after);
        }
    }

    /// What a topic's order misses now, `(after, up_to)`, if it still has subscribers here.
    pub(crate) fn gap(&self, app: &AppId, topic: &TopicName) -> Option<(i64, i64)> {
        self.channel(app, topic)?
            .topic
            .order
            .lock()
            .expect("order lock")
            .gap()
    }

    /// Messages read from history for a gap, in seq order.
    pub(crate) fn repaired(&self, app: &AppId, topic: &TopicName, messages: Vec<Message>) {
        let Some(t) = self.channel(app, topic) else {
            return;
        };
        for m in messages {
            self.deliver(&t, Arc::new(m));
        }
    }

    /// History had no more of a gap: go on past it.
    pub(crate) fn give_up_gap(&self, app: &AppId, topic: &TopicName) {
        if let Some(t) = self.channel(app, topic) {
            let mut order = t.topic.order.lock().expect("order lock");
            let ms = order.give_up_gap();
            send_all(&t, ms);
        }
    }
}

/// Sends in order (under the topic's order lock).
fn send_all(t: &Channel, ms: Sends) {
    for m in ms {
        t.send(Arc::new(MessageFrame::new(m)));
    }
}

impl Broadcaster for Hub {
    fn broadcast(&self, message: Arc<Message>) {
        let Some(t) = self.channel(&message.app_id, &message.topic) else {
            return;
        };
        if message.seq.is_some() {
            self.deliver(&t, message);
        } else {
            t.send(Arc::new(MessageFrame::new(message)));
        }
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

    /// Waits until the relay delivers the topic here (at once on one node), at most
    /// `limit`: a relay that cannot subscribe leaves the topic to position checks.
    pub(crate) async fn relayed(&self, limit: Duration) {
        if let Some(rx) = &self.stream {
            let relayed = rx.channel().topic.relayed.clone();
            let _ = tokio::time::timeout(limit, relayed.wait()).await;
        }
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
                self.hub.unwatch(&self.app, &self.topic);
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
            kind: Default::default(),
        })
    }

    #[test]
    fn a_broadcast_reaches_its_own_app_and_topic_only() {
        let (hub, _events) = Hub::new(8, Arc::new(Stats::default()), false);
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
        let (hub, _events) = Hub::new(8, Arc::new(Stats::default()), false);
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
