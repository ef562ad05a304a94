//! One WebSocket connection: a loop that owes history first (one page per turn, as an SSE
//! stream does), then waits for whichever comes first — a client's frame, a live message,
//! a timer — and answers it. Writes wait for the socket (backpressure), at most
//! `RealtimeConfig::send_timeout`; a client that reads nothing that long is dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use governor::DefaultDirectRateLimiter;
use hashbrown::{HashMap, HashSet};
use picloud_core::app::AppRef;
use picloud_core::quota::Effective;
use picloud_core::topic::{AuthMode, Topic, TopicName};
use serde_json::{json, Value};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::StreamMap;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::request::{self, Refusal, Request};
use crate::catchup::{in_order, repair_page, Framing, InOrder, Lags, TopicState};
use crate::codes::Code;
use crate::frame::MessageFrame;
use crate::presence::{MemberJson, PresenceError, MAX_DATA_BYTES};
use crate::quota::{self, Limit, Permit};
use crate::stats::ConnectionGuard;
use crate::streams::{Peer, Registration, StreamKind};
use crate::token::Grant;
use crate::Realtime;

/// Longest a subscribe waits for the relay to listen to its topic.
const RELAY_WAIT: Duration = Duration::from_secs(3);
/// Frames gathered into one flush.
const MAX_GATHER: usize = 64;
/// Topics a connection keeps a client-event bucket for (their own limit), at most.
const MAX_TOPIC_BUCKETS: usize = 128;

type Live =
    Pin<Box<dyn Stream<Item = Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>> + Send>>;

/// What the handler hands over after the upgrade.
pub(super) struct Opened {
    pub rt: Realtime,
    pub app: AppRef,
    pub socket: WebSocket,
    pub grant: Option<Grant>,
    pub permit: Permit,
    pub quotas: Effective,
    pub remote: Option<SocketAddr>,
}

/// WebSocket frames: every message and presence event as its shared JSON frame, whose
/// `position` is its seq (a connection's topics resume independently).
struct Ws;

impl Framing for Ws {
    fn durable(&self, f: &MessageFrame, _: &[TopicState], _: usize) -> Bytes {
        f.ws().clone()
    }

    fn ephemeral(&self, f: &MessageFrame) -> Bytes {
        f.ws().clone()
    }

    fn resync(&self, topics: &[TopicState], i: usize, from: i64, to: i64, reason: &str) -> Bytes {
        request::answer(
            "resync",
            None,
            json!({"topic": topics[i].name.as_str(), "from": from, "to": to, "reason": reason,
                   "position": topics[i].pos.to_string()}),
        )
    }
}

/// History owed to a topic before its live messages.
struct Repair {
    topic: TopicName,
    until: Option<i64>,
    then: Option<Arc<MessageFrame>>,
}

/// How the connection ends: the final frame and close code, if it can still be told.
struct End {
    code: Option<Code>,
    close: u16,
}

impl End {
    fn with(code: Code, close: u16) -> Self {
        Self {
            code: Some(code),
            close,
        }
    }

    fn close(close: u16) -> Self {
        Self { code: None, close }
    }

    /// The socket is gone: nothing can be told.
    fn gone() -> Self {
        Self::close(0)
    }
}

/// The connection's token and what it brings: expiry timers and its revocation.
struct Auth {
    grant: Option<Grant>,
    revoked: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    warn: Option<Pin<Box<tokio::time::Sleep>>>,
    expire: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Auth {
    fn new(rt: &Realtime, app: &AppRef, grant: Option<Grant>) -> Self {
        let revoked = grant
            .as_ref()
            .map(|g| Box::pin(rt.tokens.revocation(&app.id, &g.kid).cancelled_owned()));
        let expire = grant.as_ref().map(|g| g.expires_at);
        let warning = rt.config.token_warning.as_secs() as i64;
        Self {
            grant,
            revoked,
            warn: expire.map(|exp| Box::pin(tokio::time::sleep_until(deadline(exp - warning)))),
            expire: expire.map(|exp| Box::pin(tokio::time::sleep_until(deadline(exp)))),
        }
    }
}

struct Session {
    rt: Realtime,
    app: AppRef,
    socket: WebSocket,
    auth: Auth,
    quotas: Effective,
    remote: Option<SocketAddr>,
    /// The subscribed topics (`catchup` works on this list) and, at the same index, each
    /// one's entry in the node's stream list and whether it needs a token.
    topics: Vec<TopicState>,
    registered: Vec<(Registration, AuthMode)>,
    live: StreamMap<TopicName, Live>,
    work: VecDeque<Repair>,
    lags: Lags,
    /// This connection's id in presence, the topics it entered, and this node's presence
    /// incarnation (a new one takes the entered members away).
    conn: String,
    incarnation: tokio::sync::watch::Receiver<u64>,
    entered: HashSet<TopicName>,
    client_events: DefaultDirectRateLimiter,
    topic_events: HashMap<TopicName, DefaultDirectRateLimiter>,
    presence_updates: DefaultDirectRateLimiter,
    /// Frames that follow the answer being sent.
    after: Vec<Bytes>,
    last_heard: Instant,
    pinged: bool,
    _conn: ConnectionGuard,
    _permit: Permit,
}

pub(super) async fn run(o: Opened) {
    let conn = o.rt.presence.connection();
    let mut s = Session {
        incarnation: o.rt.presence.incarnation(),
        auth: Auth::new(&o.rt, &o.app, o.grant),
        _conn: ConnectionGuard::new(o.rt.stats.clone()),
        client_events: quota::per_connection(o.quotas.client_events_per_sec),
        presence_updates: quota::per_connection(o.quotas.presence_per_sec),
        rt: o.rt,
        app: o.app,
        socket: o.socket,
        quotas: o.quotas,
        remote: o.remote,
        topics: Vec::new(),
        registered: Vec::new(),
        live: StreamMap::new(),
        work: VecDeque::new(),
        lags: Lags::default(),
        conn,
        entered: HashSet::new(),
        topic_events: HashMap::new(),
        after: Vec::new(),
        last_heard: Instant::now(),
        pinged: false,
        _permit: o.permit,
    };
    let end = s.serve().await;
    s.leave_all();
    s.finish(end).await;
}

impl Session {
    async fn serve(&mut self) -> End {
        // Made once: a waiter registered per wait would cost more than the frame it guards.
        let mut shutdown = std::pin::pin!(self.rt.shutdown.clone().cancelled_owned());
        let mut check = tokio::time::interval(heartbeat_check(&self.rt));
        check.reset();
        loop {
            if !self.work.is_empty() {
                if let Err(end) = self.repair().await {
                    return end;
                }
                continue;
            }
            let warned = self.auth.warn.is_none();
            let holds_presence = !self.entered.is_empty();
            tokio::select! {
                biased;
                () = &mut shutdown => return End::with(Code::ServerShutdown, close_code::RESTART),
                () = or_never(self.auth.revoked.as_mut()) => return End::with(Code::TokenRevoked, close_code::POLICY),
                () = or_never(self.auth.expire.as_mut()) => {
                    self.rt.stats.token_expirations.add(1);
                    return End::with(Code::TokenExpired, close_code::POLICY);
                }
                () = or_never(self.auth.warn.as_mut()), if !warned => {
                    self.auth.warn = None;
                    let left = self.auth.grant.as_ref().map_or(0, |g| (g.expires_at - chrono::Utc::now().timestamp()).max(0));
                    let frame = request::answer("token_expiring", None, json!({"expires_in": left}));
                    if let Err(end) = self.send(frame).await {
                        return end;
                    }
                }
                changed = self.incarnation.changed(), if holds_presence => {
                    if changed.is_ok() {
                        // Its members were taken away: reconnecting enters them again.
                        self.entered.clear();
                        return End::close(close_code::RESTART);
                    }
                }
                received = self.socket.recv() => {
                    if let Err(end) = self.on_received(received).await {
                        return end;
                    }
                }
                Some((topic, item)) = self.live.next() => {
                    if let Err(end) = self.on_live(topic, item).await {
                        return end;
                    }
                }
                _ = check.tick() => {
                    if let Err(end) = self.heartbeat().await {
                        return end;
                    }
                }
            }
        }
    }

    /// Pings a connection silent for `ws_ping`; drops one still silent `ws_pong_wait` later.
    async fn heartbeat(&mut self) -> Result<(), End> {
        let silent = self.last_heard.elapsed();
        if silent >= self.rt.config.ws_ping + self.rt.config.ws_pong_wait {
            tracing::debug!("WebSocket dropped: no answer to a ping");
            return Err(End::gone());
        }
        if silent >= self.rt.config.ws_ping && !self.pinged {
            self.pinged = true;
            self.write(WsMessage::Ping(Bytes::new())).await?;
        }
        Ok(())
    }

    async fn on_received(
        &mut self,
        received: Option<Result<WsMessage, axum::Error>>,
    ) -> Result<(), End> {
        let msg = match received {
            None => return Err(End::gone()),
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                let too_big = std::error::Error::source(&e).is_some_and(|s| {
                    matches!(
                        s.downcast_ref::<tungstenite::Error>(),
                        Some(tungstenite::Error::Capacity(_))
                    )
                });
                return Err(if too_big {
                    End::close(close_code::SIZE)
                } else {
                    End::gone()
                });
            }
        };
        self.last_heard = Instant::now();
        self.pinged = false;
        match msg {
            WsMessage::Text(text) => self.on_request(text.as_str()).await,
            WsMessage::Binary(_) => Err(End::close(close_code::UNSUPPORTED)),
            WsMessage::Close(_) => Err(End::close(close_code::NORMAL)),
            WsMessage::Ping(_) | WsMessage::Pong(_) => Ok(()),
        }
    }

    async fn on_request(&mut self, text: &str) -> Result<(), End> {
        let (id, parsed) = request::parse(text);
        let answer = match parsed {
            Err(r) => Err(Denied::from(r)),
            Ok(req) => self.handle(req, id.as_ref()).await?,
        };
        let frame = match answer {
            Ok(frame) => frame,
            Err(r) => {
                let mut fields = json!({"code": r.code.as_str(), "message": r.message});
                if let Some(wait) = r.retry_after {
                    fields["retry_after_ms"] = json!(wait.as_millis().max(1) as u64);
                }
                request::answer("error", id.as_ref(), fields)
            }
        };
        self.feed(frame).await?;
        for frame in std::mem::take(&mut self.after) {
            self.feed(frame).await?;
        }
        self.flush().await
    }

    /// The answer to one request (`Err(End)`: the connection ends).
    async fn handle(
        &mut self,
        req: Request,
        id: Option<&Value>,
    ) -> Result<Result<Bytes, Denied>, End> {
        let ok = || request::answer("ok", id, json!({}));
        Ok(match req {
            Request::Ping => Ok(request::answer("pong", id, json!({}))),
            Request::Auth { token } => self.authenticate(&token).await.map(|()| ok()),
            Request::Subscribe { topic, position } => {
                match self.subscribe(topic.clone(), position).await? {
                    Ok(pos) => {
                        let frame = request::answer(
                            "subscribed",
                            id,
                            json!({"topic": topic.as_str(), "position": pos.to_string()}),
                        );
                        Ok(frame)
                    }
                    Err(d) => Err(d),
                }
            }
            Request::Unsubscribe { topic } => {
                self.unsubscribe(&topic);
                Ok(request::answer(
                    "unsubscribed",
                    id,
                    json!({"topic": topic.as_str()}),
                ))
            }
            Request::Publish { topic, data } => self.publish(&topic, data).await.map(|at| {
                request::answer(
                    "published",
                    id,
                    json!({"topic": topic.as_str(), "published_at": rfc3339(at)}),
                )
            }),
            Request::Enter { topic, data } => {
                self.enter(&topic, &data, false).await?.map(|()| ok())
            }
            Request::Update { topic, data } => {
                self.enter(&topic, &data, true).await?.map(|()| ok())
            }
            Request::Leave { topic } => self.leave(&topic).await.map(|()| ok()),
            Request::Members { topic } => self.members(&topic).await.map(|members| {
                request::answer(
                    "members",
                    id,
                    json!({"topic": topic.as_str(), "members": members}),
                )
            }),
        })
    }

    async fn authenticate(&mut self, token: &str) -> Result<(), Denied> {
        let grant = match self.rt.tokens.verify(&self.app.id, token).await {
            Ok(g) => g,
            Err(crate::token::VerifyError::Invalid) => return Err(unauthorized()),
            Err(crate::token::VerifyError::Store(e)) => return Err(unavailable(&e)),
        };
        let covers = self
            .topics
            .iter()
            .zip(&self.registered)
            .all(|(t, (_, mode))| *mode == AuthMode::Public || grant.allows(t.name.as_str()));
        let same_member = self.entered.is_empty()
            || self.auth.grant.as_ref().and_then(|g| g.subject.as_ref()) == grant.subject.as_ref();
        if !covers || !same_member {
            return Err(Denied::new(
                Code::Unauthorized,
                "the token must cover every subscribed token-mode topic and, once presence was entered, have the same sub",
            ));
        }
        self.auth = Auth::new(&self.rt, &self.app, Some(grant));
        Ok(())
    }

    /// The topic as a subscriber may see it: it exists and is external, and a token-mode
    /// topic is covered by the token. `fresh`: read now, not from the settings cache.
    async fn visible(&mut self, topic: &TopicName, fresh: bool) -> Result<Arc<Topic>, Denied> {
        let found = if fresh {
            self.rt
                .store
                .get_topic(&self.app.id, topic)
                .await
                .map(|t| t.map(Arc::new))
        } else {
            self.rt.topics.get(&self.app.id, topic).await
        };
        let t = match found {
            Ok(Some(t)) if t.external_subscribable => t,
            Ok(_) => return Err(Denied::new(Code::NotFound, "topic not found")),
            Err(e) => return Err(unavailable(&e)),
        };
        if t.auth_mode == AuthMode::Token
            && !self
                .auth
                .grant
                .as_ref()
                .is_some_and(|g| g.allows(topic.as_str()))
        {
            return Err(unauthorized());
        }
        Ok(t)
    }

    /// Subscribes (before reading where the topic is, as SSE does) and answers the
    /// position it starts from; a resume's catch-up is queued.
    async fn subscribe(
        &mut self,
        topic: TopicName,
        position: Option<i64>,
    ) -> Result<Result<i64, Denied>, End> {
        if self.live.contains_key(&topic) {
            return Ok(Err(Denied::new(
                Code::AlreadySubscribed,
                "already subscribed to this topic",
            )));
        }
        if self.topics.len() >= self.quotas.topics_per_connection as usize {
            quota::refusal(
                self.app.slug.as_str(),
                Limit::TopicsPerConnection,
                Duration::ZERO,
            );
            return Ok(Err(Denied::new(
                Code::QuotaExceeded,
                "over the app's topics_per_connection quota",
            )));
        }
        let mode = match self.visible(&topic, true).await {
            Ok(t) => t.auth_mode,
            Err(d) => return Ok(Err(d)),
        };
        let sub = self.rt.hub.subscribe(&self.app.id, &topic);
        sub.relayed(RELAY_WAIT).await;
        let last = match self.rt.store.get_topic(&self.app.id, &topic).await {
            Ok(t) => t.map_or(0, |t| t.last_seq),
            Err(e) => return Ok(Err(unavailable(&e))),
        };
        self.rt.hub.started(&self.app.id, &topic, last);
        let subject = self.auth.grant.as_ref().and_then(|g| g.subject.clone());
        let peer = Peer {
            kind: StreamKind::Subscriber,
            remote: self.remote,
        };
        let registration =
            self.rt
                .streams
                .register(&self.app, std::slice::from_ref(&topic), subject, peer);
        let live: Live = Box::pin(sub.map(Some).chain(futures_util::stream::iter([None])));
        self.live.insert(topic.clone(), live);
        let mut pos = position.unwrap_or(last);
        let mut resync = None;
        match position {
            Some(from) if from > last => {
                // A position this topic never reached (it was recreated): start over.
                self.rt.stats.resyncs.add(1);
                pos = last;
                resync = Some(from);
            }
            Some(_) => self.work.push_back(Repair {
                topic: topic.clone(),
                until: None,
                then: None,
            }),
            None => {}
        }
        self.topics.push(TopicState {
            name: topic.clone(),
            pos,
        });
        self.registered.push((registration, mode));
        let i = self.topics.len() - 1;
        self.show_position(i);
        if let Some(from) = resync {
            // After the answer, which says where the topic continues.
            let frame = Ws.resync(&self.topics, i, from, last, "position_ahead");
            self.after.push(frame);
        }
        Ok(Ok(pos))
    }

    fn unsubscribe(&mut self, topic: &TopicName) {
        self.live.remove(topic);
        if let Some(i) = self.index(topic) {
            self.topics.swap_remove(i);
            self.registered.swap_remove(i);
        }
        self.work.retain(|r| r.topic != *topic);
    }

    fn index(&self, topic: &TopicName) -> Option<usize> {
        self.topics.iter().position(|t| t.name == *topic)
    }

    fn show_position(&self, i: usize) {
        if let Some(shown) = self.registered[i].0.positions().first() {
            shown.store(self.topics[i].pos, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A client event: the topic allows them, the token's `publish` claim covers it, the
    /// rates have room. Sent as an ephemeral message; answers when it was.
    async fn publish(&mut self, topic: &TopicName, data: String) -> Result<i64, Denied> {
        let Some(grant) = &self.auth.grant else {
            return Err(unauthorized());
        };
        let may = grant.allows_publish(topic.as_str());
        let t = match self.rt.topics.get(&self.app.id, topic).await {
            Ok(Some(t)) if t.external_subscribable => t,
            Ok(_) => return Err(Denied::new(Code::NotFound, "topic not found")),
            Err(e) => return Err(unavailable(&e)),
        };
        if !may || !t.client_publish {
            return Err(Denied::new(
                Code::Forbidden,
                "client events need the topic's client_publish and the token's publish claim",
            ));
        }
        if data.len() > self.rt.config.max_payload_bytes {
            return Err(Denied::new(
                Code::PayloadTooLarge,
                &format!("data is over {} bytes", self.rt.config.max_payload_bytes),
            ));
        }
        self.take_client_event(topic, &t)?;
        Ok(self
            .rt
            .publisher
            .publish_ephemeral(self.app.id.clone(), topic.clone(), Arc::from(data)))
    }

    fn take_client_event(&mut self, topic: &TopicName, t: &Topic) -> Result<(), Denied> {
        let app = self.app.slug.as_str();
        let refused = |wait: Duration| {
            quota::refusal(app, Limit::ClientEvents, wait);
            Denied::rate_limited(wait)
        };
        if let Some(limit) = t.client_event_limit {
            if !self.topic_events.contains_key(topic)
                && self.topic_events.len() >= MAX_TOPIC_BUCKETS
            {
                self.topic_events.clear();
            }
            let bucket = self
                .topic_events
                .entry(topic.clone())
                .or_insert_with(|| quota::per_window(limit));
            quota::take(bucket).map_err(refused)?;
        }
        quota::take(&self.client_events).map_err(refused)
    }

    /// Enters (or, `update`, changes the data of an entered) presence.
    async fn enter(
        &mut self,
        topic: &TopicName,
        data: &str,
        update: bool,
    ) -> Result<Result<(), Denied>, End> {
        let sub = match self.presence_topic(topic).await {
            Ok(sub) => sub,
            Err(d) => return Ok(Err(d)),
        };
        if update && !self.entered.contains(topic) {
            return Ok(Err(Denied::new(
                Code::BadRequest,
                "enter the topic's presence first",
            )));
        }
        if data.len() > MAX_DATA_BYTES {
            return Ok(Err(Denied::new(
                Code::PayloadTooLarge,
                "presence data is over 1024 bytes",
            )));
        }
        if !self.entered.contains(topic)
            && self.entered.len() >= self.quotas.topics_per_connection as usize
        {
            return Ok(Err(Denied::new(
                Code::QuotaExceeded,
                "over the app's topics_per_connection quota",
            )));
        }
        if let Err(d) = self.take_presence() {
            return Ok(Err(d));
        }
        if self.entered.is_empty() {
            // From here on a new incarnation matters (the enter below fails under a lost one).
            self.incarnation.borrow_and_update();
        }
        match self
            .rt
            .presence
            .enter(&self.app.id, topic, &sub, &self.conn, data)
            .await
        {
            Ok(()) => {
                self.entered.insert(topic.clone());
                Ok(Ok(()))
            }
            Err(PresenceError::LeaseLost) => Err(End::close(close_code::RESTART)),
            Err(e) => Ok(Err(Denied::new(Code::Unavailable, &e.to_string()))),
        }
    }

    async fn leave(&mut self, topic: &TopicName) -> Result<(), Denied> {
        if !self.entered.contains(topic) {
            return Ok(());
        }
        self.take_presence()?;
        let sub = self.subject().unwrap_or_default();
        self.rt
            .presence
            .leave(&self.app.id, topic, &sub, &self.conn)
            .await
            .map_err(|e| Denied::new(Code::Unavailable, &e.to_string()))?;
        self.entered.remove(topic);
        Ok(())
    }

    async fn members(&mut self, topic: &TopicName) -> Result<Vec<Value>, Denied> {
        let t = self.visible(topic, false).await?;
        if !t.presence {
            return Err(Denied::new(Code::Forbidden, "the topic has no presence"));
        }
        let members = self
            .rt
            .presence
            .members(&self.app.id, topic)
            .await
            .map_err(|e| Denied::new(Code::Unavailable, &e.to_string()))?;
        Ok(members
            .iter()
            .map(|m| serde_json::to_value(MemberJson::new(&m.sub, &m.data)).expect("serialises"))
            .collect())
    }

    /// The member a presence request is for: the token's `sub`, on a presence topic the
    /// token covers.
    async fn presence_topic(&mut self, topic: &TopicName) -> Result<String, Denied> {
        let Some(grant) = &self.auth.grant else {
            return Err(unauthorized());
        };
        if !grant.allows(topic.as_str()) {
            return Err(unauthorized());
        }
        let subject = grant.subject.clone();
        let t = self.visible(topic, false).await?;
        match (subject, t.presence) {
            (Some(sub), true) => Ok(sub),
            _ => Err(Denied::new(
                Code::Forbidden,
                "presence needs the topic's presence setting and a token with a sub",
            )),
        }
    }

    fn subject(&self) -> Option<String> {
        self.auth.grant.as_ref()?.subject.clone()
    }

    fn take_presence(&self) -> Result<(), Denied> {
        quota::take(&self.presence_updates).map_err(|wait| {
            quota::refusal(self.app.slug.as_str(), Limit::PresenceUpdates, wait);
            Denied::rate_limited(wait)
        })
    }

    /// What this connection entered leaves (in the background: the socket is done).
    fn leave_all(&mut self) {
        let Some(sub) = self.subject() else { return };
        if self.entered.is_empty() {
            return;
        }
        let presence = self.rt.presence.clone();
        let app = self.app.id.clone();
        let conn = std::mem::take(&mut self.conn);
        let topics: Vec<TopicName> = self.entered.drain().collect();
        tokio::spawn(async move {
            for topic in topics {
                if let Err(e) = presence.leave(&app, &topic, &sub, &conn).await {
                    // The lease will take it: its node's members go when it is not renewed.
                    tracing::debug!(error = %e, "presence leave failed on close");
                }
            }
        });
    }

    /// A live item: in order → sent with whatever else is ready (one flush); a gap or a
    /// lag → repaired from history; a closed topic → unsubscribed.
    async fn on_live(
        &mut self,
        topic: TopicName,
        item: Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>,
    ) -> Result<(), End> {
        let mut next = Some((topic, item));
        let mut fed = 0;
        while let Some((topic, item)) = next.take() {
            let Some(i) = self.index(&topic) else {
                continue;
            };
            match item {
                None => {
                    self.unsubscribe(&topic);
                    let frame = request::answer(
                        "unsubscribed",
                        None,
                        json!({"topic": topic.as_str(), "code": Code::TopicClosed.as_str()}),
                    );
                    self.feed(frame).await?;
                    fed += 1;
                }
                Some(Ok(f)) => match in_order(&self.rt, &Ws, &mut self.topics, i, &f) {
                    InOrder::Skip => {}
                    InOrder::Gap(seq) => {
                        self.rt.stats.gap_repairs.add(1);
                        self.work.push_back(Repair {
                            topic,
                            until: Some(seq - 1),
                            then: Some(f),
                        });
                        break;
                    }
                    InOrder::Send(bytes) => {
                        self.show_position(i);
                        self.feed(bytes).await?;
                        fed += 1;
                    }
                },
                Some(Err(BroadcastStreamRecvError::Lagged(_))) => {
                    self.lagged(topic)?;
                    break;
                }
            }
            if fed < MAX_GATHER && self.work.is_empty() {
                next = self.live.next().now_or_never().flatten();
            }
        }
        self.flush().await
    }

    fn lagged(&mut self, topic: TopicName) -> Result<(), End> {
        if self.lags.too_slow() {
            self.rt.stats.slow_consumer_disconnects.add(1);
            return Err(End::with(Code::SlowConsumer, close_code::AGAIN));
        }
        self.rt.stats.gap_repairs.add(1);
        self.work.push_back(Repair {
            topic,
            until: None,
            then: None,
        });
        Ok(())
    }

    /// One page of the first owed repair, and once it is done the live message that
    /// waited for it, if it is next in line.
    async fn repair(&mut self) -> Result<(), End> {
        let Some(front) = self.work.front() else {
            return Ok(());
        };
        let Some(i) = self.index(&front.topic) else {
            self.work.pop_front();
            return Ok(());
        };
        let until = front.until;
        let mut out = Vec::new();
        let more = repair_page(
            &self.rt,
            &Ws,
            &self.app,
            &mut self.topics,
            i,
            until,
            &mut out,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "WebSocket ended by a database error");
            End::with(Code::Unavailable, close_code::ERROR)
        })?;
        self.rt.stats.frames_sent.add(out.len() as u64);
        if !more {
            if let Some(f) = self.work.pop_front().and_then(|r| r.then) {
                let seq = f.message.seq.unwrap_or_default();
                if seq == self.topics[i].pos + 1 {
                    self.topics[i].pos = seq;
                    self.rt.record_send(f.message.published_at);
                    out.push(f.ws().clone());
                }
            }
        }
        self.show_position(i);
        for frame in out {
            self.feed(frame).await?;
        }
        self.flush().await
    }

    async fn send(&mut self, frame: Bytes) -> Result<(), End> {
        self.feed(frame).await?;
        self.flush().await
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), End> {
        let text = Utf8Bytes::try_from(frame).map_err(|_| End::gone())?;
        let done = tokio::time::timeout(
            self.rt.config.send_timeout,
            self.socket.feed(WsMessage::Text(text)),
        )
        .await;
        self.written(done)
    }

    async fn flush(&mut self) -> Result<(), End> {
        let done = tokio::time::timeout(self.rt.config.send_timeout, self.socket.flush()).await;
        self.written(done)
    }

    async fn write(&mut self, msg: WsMessage) -> Result<(), End> {
        let done = tokio::time::timeout(self.rt.config.send_timeout, self.socket.send(msg)).await;
        self.written(done)
    }

    /// A write that failed or waited past the send timeout ends the connection.
    fn written(
        &self,
        done: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>,
    ) -> Result<(), End> {
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::gone()),
            Err(_) => {
                self.rt.stats.slow_consumer_disconnects.add(1);
                Err(End::gone())
            }
        }
    }

    /// The final frame and the close, where the socket still takes them.
    async fn finish(mut self, end: End) {
        if end.close == 0 {
            return;
        }
        if let Some(code) = end.code {
            let _ = self.feed(request::error(None, code, code.as_str())).await;
        }
        let close = WsMessage::Close(Some(CloseFrame {
            code: end.close,
            reason: Utf8Bytes::from_static(""),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.send(close)).await;
    }
}

/// Why a request was refused; the connection stays.
struct Denied {
    code: Code,
    message: String,
    retry_after: Option<Duration>,
}

impl Denied {
    fn new(code: Code, message: &str) -> Self {
        Self {
            code,
            message: message.to_owned(),
            retry_after: None,
        }
    }

    fn rate_limited(wait: Duration) -> Self {
        Self {
            code: Code::RateLimited,
            message: "over the rate limit; send again after retry_after_ms".to_owned(),
            retry_after: Some(wait),
        }
    }
}

impl From<Refusal> for Denied {
    fn from(r: Refusal) -> Self {
        Self {
            code: r.code,
            message: r.message,
            retry_after: None,
        }
    }
}

fn unauthorized() -> Denied {
    Denied::new(
        Code::Unauthorized,
        "a valid subscriber token covering the topic is required",
    )
}

fn unavailable(e: &picloud_core::StoreError) -> Denied {
    tracing::warn!(error = %e, "WebSocket request failed on the database");
    Denied::new(
        Code::Unavailable,
        "the database is unavailable; retry shortly",
    )
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How often the heartbeat is checked: often enough to ping on time.
fn heartbeat_check(rt: &Realtime) -> Duration {
    (rt.config.ws_pong_wait / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

fn deadline(unix_secs: i64) -> tokio::time::Instant {
    let now = chrono::Utc::now().timestamp();
    tokio::time::Instant::now() + Duration::from_secs(unix_secs.saturating_sub(now).max(0) as u64)
}

/// Completes when `f` does; never when there is no `f`.
async fn or_never<F: std::future::Future + Unpin>(f: Option<&mut F>) {
    match f {
        Some(f) => {
            f.await;
        }
        None => std::future::pending().await,
    }
}
