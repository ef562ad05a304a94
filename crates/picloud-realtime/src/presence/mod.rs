//! Presence: who is on a topic, server-authoritative. A member is a token's `sub`; it
//! joins with its first connection, leaves after its last, and updates its data without a
//! leave and join. The members live behind [`PresenceStore`] — in this process on one node
//! ([`LocalPresence`]), in Redis in a cluster ([`RedisPresence`]), both held to one
//! conformance suite (`tests/presence.rs`) — and every change the store reports becomes one
//! presence event, sent like an ephemeral message to the topic's subscribers on every node.

mod local;
mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use picloud_core::ids::AppId;
use picloud_core::message::{Broadcaster, Kind, Message};
use picloud_core::topic::TopicName;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use self::redis::RedisPresence;
pub use local::LocalPresence;

/// Largest member data (serialised JSON).
pub const MAX_DATA_BYTES: usize = 1024;
/// How often a cluster node looks for nodes whose lease ran out.
const REAP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Join,
    Leave,
    Update,
}

/// A change of a topic's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub sub: String,
    /// The member's data, JSON.
    pub data: String,
}

impl Event {
    pub fn new(kind: EventKind, sub: &str, data: impl Into<String>) -> Self {
        Self {
            kind,
            sub: sub.to_owned(),
            data: data.into(),
        }
    }
}

/// A member as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub sub: String,
    /// JSON.
    pub data: String,
    /// Its connections, on every node.
    pub connections: usize,
}

/// A change found by a reaper: a dead node's member left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub app: AppId,
    pub topic: TopicName,
    pub event: Event,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PresenceError {
    /// The store did not answer (Redis down).
    #[error("presence unavailable: {0}")]
    Unavailable(String),
    /// This node's lease ran out and its members were taken away: its connections must
    /// reconnect and enter again.
    #[error("this node lost its presence lease")]
    LeaseLost,
}

/// Where members live. `conn` is unique in the cluster (see [`Presence::connection`]).
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// `conn` holds `sub` on the topic, with `data`: `Join` on the sub's first connection,
    /// `Update` when the data changed, nothing otherwise.
    async fn enter(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
        data: &str,
    ) -> Result<Option<Event>, PresenceError>;
    /// `conn` no longer holds `sub`: `Leave` when it was the sub's last connection.
    async fn leave(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
    ) -> Result<Option<Event>, PresenceError>;
    async fn members(&self, app: &AppId, topic: &TopicName) -> Result<Vec<Member>, PresenceError>;
    /// Takes the members of nodes that stopped renewing their lease: one `Leave` per
    /// member whose last connection was there, reported to exactly one caller.
    async fn reap(&self) -> Result<Vec<Reaped>, PresenceError> {
        Ok(Vec::new())
    }
    /// Changes when this node lost its lease (its connections must enter again).
    fn incarnation(&self) -> watch::Receiver<u64>;
    /// This node's prefix for connection ids (new with each incarnation).
    fn prefix(&self) -> String;
}

/// Presence for this node: the store, and the events it reports sent to subscribers.
#[derive(Clone)]
pub struct Presence {
    store: Arc<dyn PresenceStore>,
    out: Arc<dyn Broadcaster>,
    next_conn: Arc<AtomicU64>,
}

impl Presence {
    pub(crate) fn start(
        store: Arc<dyn PresenceStore>,
        out: Arc<dyn Broadcaster>,
        shutdown: CancellationToken,
    ) -> Self {
        let p = Self {
            store,
            out,
            next_conn: Arc::default(),
        };
        tokio::spawn(reaper(p.clone(), shutdown));
        p
    }

    /// A new connection's id, unique in the cluster.
    pub fn connection(&self) -> String {
        let n = self.next_conn.fetch_add(1, Ordering::Relaxed);
        format!("{}{n}", self.store.prefix())
    }

    pub fn incarnation(&self) -> watch::Receiver<u64> {
        self.store.incarnation()
    }

    pub async fn enter(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
        data: &str,
    ) -> Result<(), PresenceError> {
        let event = self.store.enter(app, topic, sub, conn, data).await?;
        self.emit(app, topic, event);
        Ok(())
    }

    pub async fn leave(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
    ) -> Result<(), PresenceError> {
        let event = self.store.leave(app, topic, sub, conn).await?;
        self.emit(app, topic, event);
        Ok(())
    }

    pub async fn members(
        &self,
        app: &AppId,
        topic: &TopicName,
    ) -> Result<Vec<Member>, PresenceError> {
        self.store.members(app, topic).await
    }

    fn emit(&self, app: &AppId, topic: &TopicName, event: Option<Event>) {
        let Some(event) = event else { return };
        metrics::counter!("picloud_presence_events_total", "event" => match event.kind {
            EventKind::Join => "join",
            EventKind::Leave => "leave",
            EventKind::Update => "update",
        })
        .increment(1);
        self.out.broadcast(Arc::new(Message {
            app_id: app.clone(),
            topic: topic.clone(),
            seq: None,
            payload: Arc::from(event_json(&event)),
            published_at: chrono::Utc::now().timestamp_millis(),
            kind: Kind::Presence,
        }));
    }
}

/// `{"event","member":{"sub","data"}}`.
pub fn event_json(e: &Event) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        event: EventKind,
        member: MemberJson<'a>,
    }
    serde_json::to_string(&Out {
        event: e.kind,
        member: MemberJson::new(&e.sub, &e.data),
    })
    .expect("serialises")
}

/// `{"sub","data"}` with the data as the JSON it is.
#[derive(Serialize)]
pub struct MemberJson<'a> {
    pub sub: &'a str,
    pub data: &'a RawValue,
}

impl<'a> MemberJson<'a> {
    pub fn new(sub: &'a str, data: &'a str) -> Self {
        // Member data is JSON the server serialised itself.
        let data: &RawValue = serde_json::from_str(data)
            .unwrap_or_else(|_| serde_json::from_str("null").expect("null"));
        Self { sub, data }
    }
}

/// Every few seconds, the members of dead nodes leave (cluster only: one node's store
/// never reaps).
async fn reaper(p: Presence, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(REAP_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match p.store.reap().await {
            Ok(reaped) => {
                for r in reaped {
                    p.emit(&r.app, &r.topic, Some(r.event));
                }
            }
            Err(e) => tracing::debug!(error = %e, "presence reaper skipped a round"),
        }
    }
}
