//! This node's open streams, for the admin API's subscribers list: who listens to a topic,
//! since when, from where, and how far each has got.
//!
//! A stream registers when it opens and leaves when its body is dropped. Its positions are
//! shared atomics: its task stores them after each write and a direct writer after each
//! frame it sends, so the list is current without the stream being asked.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;
use picloud_core::app::AppRef;
use picloud_core::ids::AppId;
use picloud_core::topic::TopicName;

/// Who opened a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// A data-plane subscriber (a browser, with or without a token).
    Subscriber,
    /// An administrator's tail (the admin API's topic stream).
    AdminTail,
}

/// Where a stream comes from and who it is, as its request told.
#[derive(Clone, Debug)]
pub struct Peer {
    pub kind: StreamKind,
    pub remote: Option<SocketAddr>,
}

/// One open stream.
pub struct StreamEntry {
    pub id: u64,
    pub app: AppId,
    pub topics: Box<[TopicName]>,
    /// The last seq sent, per topic (as `topics`).
    pub positions: Positions,
    /// Epoch milliseconds.
    pub since_ms: i64,
    /// The token's `sub`, when it had one.
    pub subject: Option<String>,
    pub peer: Peer,
}

/// A stream's positions, shared by its task, its direct writer and the registry.
pub type Positions = Arc<[AtomicI64]>;

#[derive(Default)]
pub struct Streams {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<StreamEntry>>>,
}

/// A registered stream: leaves the registry when dropped.
pub(crate) struct Registration {
    streams: Arc<Streams>,
    entry: Arc<StreamEntry>,
}

impl Registration {
    pub(crate) fn positions(&self) -> &Positions {
        &self.entry.positions
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.streams
            .open
            .lock()
            .expect("streams lock")
            .remove(&self.entry.id);
    }
}

/// One topic's streams as [`Streams::on_topic`] lists them.
pub struct TopicStreams {
    /// All of them.
    pub count: usize,
    /// The newest, at most the limit asked for.
    pub newest: Vec<Listed>,
}

/// A stream as listed for one of its topics.
pub struct Listed {
    pub entry: Arc<StreamEntry>,
    /// The stream's position on the topic listed.
    pub position: i64,
}

impl Streams {
    pub(crate) fn register(
        self: &Arc<Self>,
        app: &AppRef,
        topics: &[TopicName],
        subject: Option<String>,
        peer: Peer,
    ) -> Registration {
        let entry = Arc::new(StreamEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            app: app.id.clone(),
            topics: topics.into(),
            positions: topics.iter().map(|_| AtomicI64::new(0)).collect(),
            since_ms: chrono::Utc::now().timestamp_millis(),
            subject,
            peer,
        });
        self.open
            .lock()
            .expect("streams lock")
            .insert(entry.id, entry.clone());
        Registration {
            streams: self.clone(),
            entry,
        }
    }

    /// The streams of `app` on `topic`, newest first, at most `limit` of them.
    pub fn on_topic(&self, app: &AppId, topic: &TopicName, limit: usize) -> TopicStreams {
        let mut found: Vec<Listed> = {
            let open = self.open.lock().expect("streams lock");
            open.values()
                .filter(|e| &e.app == app)
                .filter_map(|e| {
                    let i = e.topics.iter().position(|t| t == topic)?;
                    Some(Listed {
                        entry: e.clone(),
                        position: e.positions[i].load(Ordering::Relaxed),
                    })
                })
                .collect()
        };
        let count = found.len();
        found.sort_unstable_by_key(|l| std::cmp::Reverse(l.entry.id));
        found.truncate(limit);
        TopicStreams {
            count,
            newest: found,
        }
    }

    /// Topic subscriptions of each app's open streams (by app id): a stream of three
    /// topics counts three, as the hub's subscriber gauge does.
    pub fn per_app(&self) -> HashMap<String, usize> {
        let open = self.open.lock().expect("streams lock");
        let mut counts: HashMap<String, usize> = HashMap::new();
        for e in open.values() {
            *counts.entry_ref(e.app.as_str()).or_default() += e.topics.len();
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picloud_core::app::Slug;

    fn app(id: &str) -> AppRef {
        AppRef {
            id: AppId(id.into()),
            slug: Slug::parse("some-app").unwrap(),
        }
    }

    fn topic(name: &str) -> TopicName {
        TopicName::parse(name).unwrap()
    }

    fn peer() -> Peer {
        Peer {
            kind: StreamKind::Subscriber,
            remote: None,
        }
    }

    #[test]
    fn lists_a_topics_streams_newest_first_with_their_positions_until_they_close() {
        let streams = Arc::new(Streams::default());
        let (a, b) = (app("a"), app("b"));
        let first = streams.register(&a, &[topic("x")], Some("ann".into()), peer());
        let second = streams.register(&a, &[topic("y"), topic("x")], None, peer());
        let _other_topic = streams.register(&a, &[topic("y")], None, peer());
        let _other_app = streams.register(&b, &[topic("x")], None, peer());
        first.positions()[0].store(7, Ordering::Relaxed);
        second.positions()[1].store(9, Ordering::Relaxed);

        let listed = streams.on_topic(&a.id, &topic("x"), 10);
        assert_eq!(listed.count, 2);
        let got: Vec<_> = listed
            .newest
            .iter()
            .map(|l| (l.entry.subject.clone(), l.position))
            .collect();
        assert_eq!(got, [(None, 9), (Some("ann".to_string()), 7)]);

        assert_eq!(streams.on_topic(&a.id, &topic("x"), 1).newest.len(), 1);
        assert_eq!(streams.on_topic(&a.id, &topic("x"), 1).count, 2);
        assert_eq!(streams.per_app().get("a"), Some(&4));

        drop(second);
        let listed = streams.on_topic(&a.id, &topic("x"), 10);
        assert_eq!(listed.count, 1);
        assert_eq!(listed.newest[0].position, 7);
        drop(first);
        assert_eq!(streams.on_topic(&a.id, &topic("x"), 10).count, 0);
    }
}
